# dockerapi suites. Unit: pure parsing/encoding (no Docker). fake: a scripted
# daemon on a private unix socket (bad input, deadlines, pooling). engine:
# against the real Docker engine (DOCKER_HOST or the default socket). private:
# runs its own second dockerd (restart, TLS) and needs root.
dockscaler_add_test(NAME test_docker_unit SOURCES test_docker_unit.cpp
  LIBS dockscaler::dockerapi TIMEOUT 120)
dockscaler_add_test(NAME test_docker_fake SOURCES test_docker_fake.cpp
  LIBS dockscaler::dockerapi Threads::Threads LABELS net TIMEOUT 180)
foreach(t test_docker_engine test_docker_private)
  dockscaler_add_test(NAME ${t} SOURCES ${t}.cpp
    LIBS dockscaler::dockerapi Threads::Threads LABELS docker TIMEOUT 600)
  add_dependencies(${t} dockscaler_echo)
  target_compile_definitions(${t} PRIVATE DOCKSCALER_ECHO_BIN="$<TARGET_FILE:dockscaler_echo>")
endforeach()
# Swarm calls: JSON mapping, error mapping and the update retry loop against
# the scripted fake daemon (no swarm needed).
dockscaler_add_test(NAME test_dockerapi_swarm SOURCES test_dockerapi_swarm.cpp
  LIBS dockscaler::dockerapi Threads::Threads LABELS net TIMEOUT 180)
# Swarm calls against a real Swarm manager's engine, DOCKSCALER_TEST_SWARM_HOST
# (scripts/swarm-test-node up prints one). Skipped (77) when unset, failed
# when unset under CI=true.
dockscaler_add_test(NAME test_dockerapi_swarm_e2e SOURCES test_dockerapi_swarm_e2e.cpp
  LIBS dockscaler::dockerapi Threads::Threads LABELS swarm TIMEOUT 600)
add_dependencies(test_dockerapi_swarm_e2e hello-http dockscaler_echo)
target_compile_definitions(test_dockerapi_swarm_e2e PRIVATE
  DOCKSCALER_HELLO_BIN="$<TARGET_FILE:hello-http>" DOCKSCALER_ECHO_BIN="$<TARGET_FILE:dockscaler_echo>")
set_tests_properties(test_dockerapi_swarm_e2e PROPERTIES SKIP_RETURN_CODE 77)
