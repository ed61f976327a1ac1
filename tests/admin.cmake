# admin suites: routing/JSON and the HTTP reader are unit tests; the server
# tests open a Unix socket under /tmp and a TCP listener on port 0 (label "net").
dockscaler_add_test(NAME test_metrics SOURCES test_metrics.cpp LIBS dockscaler::admin)
dockscaler_add_test(NAME test_admin SOURCES test_admin.cpp LIBS dockscaler::admin LABELS net TIMEOUT 120)
