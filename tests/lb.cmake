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
dockscaler_add_test(NAME test_lb_tls SOURCES test_lb_tls.cpp LIBS dockscaler::lb OpenSSL::SSL)
dockscaler_add_test(NAME test_lb_tls_proxy SOURCES test_lb_tls_proxy.cpp LIBS dockscaler::lb OpenSSL::SSL LABELS net TIMEOUT 300)
dockscaler_add_test(NAME test_lb_outcome SOURCES test_lb_outcome.cpp LIBS dockscaler::lb LABELS net TIMEOUT 300)
dockscaler_add_test(NAME test_lb_rate_limiter SOURCES test_lb_rate_limiter.cpp LIBS dockscaler::lb)
dockscaler_add_test(NAME test_lb_admission SOURCES test_lb_admission.cpp LIBS dockscaler::lb LABELS net TIMEOUT 300)
dockscaler_add_test(NAME test_lb_auth SOURCES test_lb_auth.cpp LIBS dockscaler::lb ${LIBCRYPT_LIBRARY})
dockscaler_add_test(NAME test_lb_tunnel SOURCES test_lb_tunnel.cpp LIBS dockscaler::lb OpenSSL::SSL LABELS net TIMEOUT 300)
# WebSocket through the daemon to the ws-echo image on the real engine.
dockscaler_add_test(NAME test_tunnel_e2e SOURCES test_tunnel_e2e.cpp
  LIBS dockscaler::admin dockscaler::dockerapi Threads::Threads LABELS docker TIMEOUT 600)
add_dependencies(test_tunnel_e2e dockscaler hello-http dockscaler_echo ws-echo)
target_compile_definitions(test_tunnel_e2e PRIVATE DOCKSCALER_BIN="$<TARGET_FILE:dockscaler>"
  DOCKSCALER_HELLO_BIN="$<TARGET_FILE:hello-http>" DOCKSCALER_ECHO_BIN="$<TARGET_FILE:dockscaler_echo>"
  DOCKSCALER_WS_ECHO_BIN="$<TARGET_FILE:ws-echo>")
target_link_libraries(test_tunnel_e2e PRIVATE dockscaler::rapidjson)
