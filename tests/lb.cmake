# lb suites: the dispatcher logic and statistics are unit tests; the proxy
# suites open real sockets (label "net") against backends on port 0.
dockscaler_add_test(NAME test_lb_dispatcher SOURCES test_lb_dispatcher.cpp LIBS dockscaler::lb)
dockscaler_add_test(NAME test_wait_stats SOURCES test_wait_stats.cpp LIBS dockscaler::lb)
dockscaler_add_test(NAME test_lb_proxy SOURCES test_lb_proxy.cpp LIBS dockscaler::lb LABELS net TIMEOUT 300)
dockscaler_add_test(NAME test_lb_bad_input SOURCES test_lb_bad_input.cpp LIBS dockscaler::lb LABELS net TIMEOUT 300)
dockscaler_add_test(NAME test_lb_functions SOURCES test_lb_functions.cpp LIBS dockscaler::lb LABELS net TIMEOUT 300)
dockscaler_add_test(NAME test_hostile_proxy SOURCES test_hostile_proxy.cpp LIBS dockscaler::lb LABELS net TIMEOUT 300)
dockscaler_add_test(NAME test_lb_http_rules SOURCES test_lb_http_rules.cpp LIBS dockscaler::lb)
dockscaler_add_test(NAME test_lb_conformance SOURCES test_lb_conformance.cpp LIBS dockscaler::lb LABELS net TIMEOUT 300)
dockscaler_add_test(NAME test_lb_dead_host SOURCES test_lb_dead_host.cpp LIBS dockscaler::lb LABELS net TIMEOUT 300)
dockscaler_add_test(NAME test_lb_rfc9112 SOURCES test_lb_rfc9112.cpp LIBS dockscaler::lb)
dockscaler_add_test(NAME test_lb_tunnel SOURCES test_lb_tunnel.cpp LIBS dockscaler::lb LABELS net TIMEOUT 300)
