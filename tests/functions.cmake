# stdio functions: call environment and answers (unit), the runner and the
# whole path through `dockscaler serve` on the real engine (docker).
dockscaler_add_test(NAME test_functions_unit SOURCES test_functions_unit.cpp LIBS dockscaler::functions)
dockscaler_add_test(NAME test_functions_e2e SOURCES test_functions_e2e.cpp
  LIBS dockscaler::dockerapi Threads::Threads LABELS docker TIMEOUT 900)
add_dependencies(test_functions_e2e dockscaler dockscaler_echo hello-stdio)
target_compile_definitions(test_functions_e2e PRIVATE DOCKSCALER_BIN="$<TARGET_FILE:dockscaler>"
  DOCKSCALER_HELLO_BIN="$<TARGET_FILE:hello-http>" DOCKSCALER_ECHO_BIN="$<TARGET_FILE:dockscaler_echo>"
  DOCKSCALER_HELLO_STDIO_BIN="$<TARGET_FILE:hello-stdio>")
