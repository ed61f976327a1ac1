dockscaler_add_test(NAME test_policy SOURCES test_policy.cpp LIBS dockscaler::scaler)
dockscaler_add_test(NAME test_autoscaler SOURCES test_autoscaler.cpp LIBS dockscaler::scaler)
