# admin suites: routing/JSON and the HTTP reader are unit tests; the server
# tests open a Unix socket under /tmp and a TCP listener on port 0 (label "net").
dockscaler_add_test(NAME test_metrics SOURCES test_metrics.cpp LIBS dockscaler::admin)
dockscaler_add_test(NAME test_history SOURCES test_history.cpp LIBS dockscaler::admin Threads::Threads)
dockscaler_add_test(NAME test_admin SOURCES test_admin.cpp LIBS dockscaler::admin LABELS net TIMEOUT 120)
dockscaler_add_test(NAME test_access_log SOURCES test_access_log.cpp
  LIBS dockscaler::admin dockscaler::rapidjson)
# The daemon's access log end to end (real engine, hello-http containers).
dockscaler_add_test(NAME test_access_log_e2e SOURCES test_access_log_e2e.cpp
  LIBS dockscaler::admin dockscaler::dockerapi dockscaler::rapidjson Threads::Threads
  LABELS docker TIMEOUT 600)
add_dependencies(test_access_log_e2e dockscaler hello-http dockscaler_echo)
target_compile_definitions(test_access_log_e2e PRIVATE DOCKSCALER_BIN="$<TARGET_FILE:dockscaler>"
  DOCKSCALER_HELLO_BIN="$<TARGET_FILE:hello-http>" DOCKSCALER_ECHO_BIN="$<TARGET_FILE:dockscaler_echo>")
# The dashboard's API: routing, JSON, the token and Host rules (without
# sockets), and once on a TCP listener on port 0 (label "net").
dockscaler_add_test(NAME test_dashboard SOURCES test_dashboard.cpp
  LIBS dockscaler::admin dockscaler::rapidjson LABELS net)
# The dashboard end to end: a daemon under load, headless Chromium reading the
# rendered page (Debian's chromium, installed by scripts/setup).
dockscaler_add_test(NAME test_dashboard_e2e SOURCES test_dashboard_e2e.cpp
  LIBS dockscaler::admin dockscaler::dockerapi dockscaler::rapidjson Threads::Threads
  LABELS docker TIMEOUT 300)
add_dependencies(test_dashboard_e2e dockscaler hello-http dockscaler_echo)
target_compile_definitions(test_dashboard_e2e PRIVATE DOCKSCALER_BIN="$<TARGET_FILE:dockscaler>"
  DOCKSCALER_HELLO_BIN="$<TARGET_FILE:hello-http>" DOCKSCALER_ECHO_BIN="$<TARGET_FILE:dockscaler_echo>")
