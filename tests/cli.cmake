dockscaler_add_test(NAME test_cli SOURCES test_cli.cpp ${PROJECT_SOURCE_DIR}/cli/table.cpp LIBS)
target_compile_definitions(test_cli PRIVATE DOCKSCALER_BIN="$<TARGET_FILE:dockscaler>"
  DOCKSCALER_BUILD_DIR="${PROJECT_BINARY_DIR}")
add_dependencies(test_cli dockscaler)
# The operator's surface without Docker: --help, usage errors, no daemon,
# the systemd unit, cmake --install.
dockscaler_add_test(NAME test_operator SOURCES test_operator.cpp LIBS TIMEOUT 300)
target_compile_definitions(test_operator PRIVATE DOCKSCALER_BIN="$<TARGET_FILE:dockscaler>"
  DOCKSCALER_BUILD_DIR="${PROJECT_BINARY_DIR}")
add_dependencies(test_operator dockscaler)
# The CLI binary against a daemon on the real engine.
dockscaler_add_test(NAME test_cli_e2e SOURCES test_cli_e2e.cpp
  LIBS dockscaler::admin dockscaler::dockerapi Threads::Threads LABELS docker TIMEOUT 900)
add_dependencies(test_cli_e2e dockscaler hello-http)
target_compile_definitions(test_cli_e2e PRIVATE DOCKSCALER_BIN="$<TARGET_FILE:dockscaler>"
  DOCKSCALER_HELLO_BIN="$<TARGET_FILE:hello-http>" DOCKSCALER_ECHO_BIN="$<TARGET_FILE:dockscaler_echo>")
target_link_libraries(test_cli_e2e PRIVATE dockscaler::rapidjson)
# A newcomer's first hour against the build (scripts/newcomer-walk): the demo's
# config on ports of its own, invoke, status, a scale and its event, the
# dashboard, a broken then a good reload.
add_test(NAME test_newcomer_walk COMMAND ${PROJECT_SOURCE_DIR}/scripts/newcomer-walk ${PROJECT_BINARY_DIR})
set_tests_properties(test_newcomer_walk PROPERTIES LABELS docker TIMEOUT 600)
