# stdio functions: call environment and answers (unit), the runner and the
# whole path through `dockscaler serve` on the real engine (docker).
dockscaler_add_test(NAME test_functions_unit SOURCES test_functions_unit.cpp LIBS dockscaler::functions)
# The init is also run directly (no Docker) to check its side of the protocol.
target_compile_definitions(test_functions_unit PRIVATE
  DOCKSCALER_FN_INIT_BIN="$<TARGET_FILE:dockscaler-fn-init>")
# The runner's calls against the scripted fake daemon of tests/test_fake_daemon.hpp (no engine).
dockscaler_add_test(NAME test_runner SOURCES test_runner.cpp
  LIBS dockscaler::functions dockscaler::dockerapi Threads::Threads LABELS net)
dockscaler_add_test(NAME test_functions_e2e SOURCES test_functions_e2e.cpp
  LIBS dockscaler::dockerapi dockscaler::admin Threads::Threads LABELS docker TIMEOUT 900)
add_dependencies(test_functions_e2e dockscaler dockscaler_echo hello-stdio)
target_compile_definitions(test_functions_e2e PRIVATE DOCKSCALER_BIN="$<TARGET_FILE:dockscaler>"
  DOCKSCALER_HELLO_BIN="$<TARGET_FILE:hello-http>" DOCKSCALER_ECHO_BIN="$<TARGET_FILE:dockscaler_echo>"
  DOCKSCALER_HELLO_STDIO_BIN="$<TARGET_FILE:hello-stdio>")
# Hostile functions (flooding, over max_output_bytes, forging their exit):
# tests/hostile_fn.cpp, static for a FROM scratch image.
add_executable(dockscaler_hostile_fn hostile_fn.cpp)
target_link_options(dockscaler_hostile_fn PRIVATE -static)
dockscaler_add_test(NAME test_hostile_functions SOURCES test_hostile_functions.cpp
  LIBS dockscaler::dockerapi dockscaler::admin Threads::Threads LABELS docker TIMEOUT 600)
add_dependencies(test_hostile_functions dockscaler dockscaler_hostile_fn)
target_compile_definitions(test_hostile_functions PRIVATE DOCKSCALER_BIN="$<TARGET_FILE:dockscaler>"
  DOCKSCALER_HOSTILE_FN_BIN="$<TARGET_FILE:dockscaler_hostile_fn>"
  DOCKSCALER_ECHO_BIN="$<TARGET_FILE:dockscaler_echo>" DOCKSCALER_HELLO_BIN="$<TARGET_FILE:hello-http>")
# function_pool over the real proxy_pool and proxy (127.0.0.1:0) with a fake function source.
dockscaler_add_test(NAME test_functions_pool SOURCES test_functions_pool.cpp
  LIBS dockscaler::functions LABELS net)
# The runner's bounded pool and timer thread on their own (no Docker).
dockscaler_add_test(NAME test_functions_concurrency SOURCES test_functions_concurrency.cpp
  LIBS dockscaler::functions Threads::Threads)
# Hot functions' framing (format: http, json) with injected input: no container.
dockscaler_add_test(NAME test_hot_frame SOURCES test_hot_frame.cpp
  LIBS dockscaler::functions dockscaler::rapidjson)
# Hot functions on the real engine: tests/hot_fn.cpp (both formats, faults on
# request), static for a FROM scratch image, behind `dockscaler serve`.
add_executable(dockscaler_hot_fn hot_fn.cpp)
target_link_options(dockscaler_hot_fn PRIVATE -static)
target_link_libraries(dockscaler_hot_fn PRIVATE dockscaler::rapidjson)
dockscaler_add_test(NAME test_hot_functions_e2e SOURCES test_hot_functions_e2e.cpp
  LIBS dockscaler::dockerapi dockscaler::admin Threads::Threads LABELS docker TIMEOUT 900)
add_dependencies(test_hot_functions_e2e dockscaler dockscaler_hot_fn dockscaler_echo)
target_compile_definitions(test_hot_functions_e2e PRIVATE DOCKSCALER_BIN="$<TARGET_FILE:dockscaler>"
  DOCKSCALER_HOT_FN_BIN="$<TARGET_FILE:dockscaler_hot_fn>"
  DOCKSCALER_ECHO_BIN="$<TARGET_FILE:dockscaler_echo>" DOCKSCALER_HELLO_BIN="$<TARGET_FILE:hello-http>")
# The init's hot mode run directly (no Docker) with the daemon's end of its socket.
dockscaler_add_test(NAME test_hot_init SOURCES test_hot_init.cpp LIBS dockscaler::functions)
target_compile_definitions(test_hot_init PRIVATE
  DOCKSCALER_FN_INIT_BIN="$<TARGET_FILE:dockscaler-fn-init>")
