dockscaler_add_test(NAME test_policy SOURCES test_policy.cpp LIBS dockscaler::scaler)
dockscaler_add_test(NAME test_autoscaler SOURCES test_autoscaler.cpp LIBS dockscaler::scaler)
# End to end: the dockscaler binary against the real engine with hello-http containers.
dockscaler_add_test(NAME test_serve_e2e SOURCES test_serve_e2e.cpp
  LIBS dockscaler::admin dockscaler::dockerapi Threads::Threads LABELS docker TIMEOUT 900)
add_dependencies(test_serve_e2e dockscaler hello-http dockscaler_echo)
target_compile_definitions(test_serve_e2e PRIVATE DOCKSCALER_BIN="$<TARGET_FILE:dockscaler>"
  DOCKSCALER_HELLO_BIN="$<TARGET_FILE:hello-http>" DOCKSCALER_ECHO_BIN="$<TARGET_FILE:dockscaler_echo>")
# Scale-down loses no request: 4 -> 1 under load, a drain that waits for a
# slow request, one cut by drain_timeout; asserted on what clients saw.
dockscaler_add_test(NAME test_scale_down_e2e SOURCES test_scale_down_e2e.cpp
  LIBS dockscaler::admin dockscaler::dockerapi Threads::Threads LABELS docker TIMEOUT 900)
add_dependencies(test_scale_down_e2e dockscaler hello-http)
target_compile_definitions(test_scale_down_e2e PRIVATE DOCKSCALER_BIN="$<TARGET_FILE:dockscaler>"
  DOCKSCALER_HELLO_BIN="$<TARGET_FILE:hello-http>" DOCKSCALER_ECHO_BIN="$<TARGET_FILE:dockscaler_echo>")
# Two daemons on one host (listeners, instance lock, admin socket, each
# other's containers), a service whose image is missing, validate's image check.
dockscaler_add_test(NAME test_instances_e2e SOURCES test_instances_e2e.cpp
  LIBS dockscaler::dockerapi Threads::Threads LABELS docker TIMEOUT 600)
add_dependencies(test_instances_e2e dockscaler hello-http)
target_compile_definitions(test_instances_e2e PRIVATE DOCKSCALER_BIN="$<TARGET_FILE:dockscaler>"
  DOCKSCALER_HELLO_BIN="$<TARGET_FILE:hello-http>" DOCKSCALER_ECHO_BIN="$<TARGET_FILE:dockscaler_echo>")
