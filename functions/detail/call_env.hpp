// What a stdio function sees of its call and what the client sees of its
// result: the IronFunctions environment variables (ROUTE for every container,
// the rest of a cold call's own), and the HTTP answer for each way a run can
// end. Pure functions (unit-tested).
#pragma once

#include <chrono>
#include <map>
#include <string>
#include <string_view>

#include "config/config.hpp"
#include "lb/handler.hpp"

namespace dockscaler::functions {

// The ROUTE a stdio function sees: "/<name>" under the default /r/<app>/<name>
// URL, else the route's path prefix.
std::string function_route(const config::service_config& svc);

// "Content-Type" -> "HEADER_CONTENT_TYPE": upper case, every character that
// cannot be in an environment variable name becomes '_'.
std::string header_env_name(std::string_view header);

// The environment of a cold call's container: the configured env, then
// APP_NAME, ROUTE, METHOD, REQUEST_URL ("http://<host><target>") and one
// HEADER_<NAME> per request header (repeated headers joined with ", ").
std::map<std::string, std::string> call_env(const config::service_config& svc,
                                            const lb::function_call& call);

// How a run ended, and the answer it gives.
struct run_end {
  enum class kind { exited, timed_out, output_too_large, failed, cancelled, bad_answer };
  kind how = kind::exited;
  int exit_code = 0;
  std::string stdout_data;
  std::string error;  // for `failed` and `bad_answer`: what went wrong
};
// exit 0 -> 200 with stdout and the service's content_type; exit != 0 -> 502,
// timeout -> 504, output over the limit, a Docker failure or (hot) an answer
// that is not a frame -> 502, each with
// a JSON {"message": ...}.
lb::function_result answer(const config::service_config& svc, run_end end);

}  // namespace dockscaler::functions
