// dockscaler's entry point: everything happens in cli::run.
#include "app.hpp"

int main(int argc, char** argv) { return dockscaler::cli::run(argc, argv); }
