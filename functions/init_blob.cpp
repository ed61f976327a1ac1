// The init program (functions/init), built first and embedded here byte for
// byte; see container.hpp.
#include <string_view>

#ifndef DOCKSCALER_FN_INIT_PATH
#error "DOCKSCALER_FN_INIT_PATH (the built dockscaler-fn-init) must be defined"
#endif

asm(".section .rodata\n"
    ".balign 16\n"
    ".global dockscaler_fn_init_start\n"
    "dockscaler_fn_init_start:\n"
    ".incbin \"" DOCKSCALER_FN_INIT_PATH
    "\"\n"
    ".global dockscaler_fn_init_end\n"
    "dockscaler_fn_init_end:\n"
    ".previous\n");

extern "C" const char dockscaler_fn_init_start[];
extern "C" const char dockscaler_fn_init_end[];

namespace dockscaler::functions {

std::string_view init_program() {
  return {dockscaler_fn_init_start,
          static_cast<std::size_t>(dockscaler_fn_init_end - dockscaler_fn_init_start)};
}

}  // namespace dockscaler::functions
