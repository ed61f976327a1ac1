dockscaler_add_test(NAME test_policy SOURCES test_policy.cpp LIBS dockscaler::scaler)
