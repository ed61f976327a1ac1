dockscaler_add_test(NAME test_cli SOURCES test_cli.cpp LIBS)
target_compile_definitions(test_cli PRIVATE DOCKSCALER_BIN="$<TARGET_FILE:dockscaler>")
add_dependencies(test_cli dockscaler)
