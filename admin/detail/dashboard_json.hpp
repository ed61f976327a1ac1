// The dashboard API's JSON (dashboard_json.cpp), apart from its routing so
// each file reads at once.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "admin/dashboard.hpp"

namespace dockscaler::admin::detail {

// {"message": "..."} with `status`: how the dashboard's API says no.
http_response json_error(unsigned status, std::string_view message);

// GET /api/status: the admin API's status, each service with its
// "thresholds" and "route", and a "dashboard" object (invoke, time_ms).
std::string dashboard_status_json(const daemon_info& info,
                                  const std::vector<scaler::service_status>& all,
                                  const dashboard_settings& s, std::int64_t now_ms);
// GET /api/history: the points in columns ({"time_ms": [...], "ready": [...], ...}),
// the form the charts take.
std::string history_json(std::string_view service, const std::vector<history_point>& points);
// POST /api/invoke/{service}: the body's call sent with src.invoke, the
// answer as JSON; 400 for a body that is no such call.
http_response invoke_reply(const http_request& req, const dashboard_service& service,
                           const dashboard_sources& src);

}  // namespace dockscaler::admin::detail
