dockscaler_add_test(NAME test_config SOURCES test_config.cpp LIBS dockscaler::config)
