# Instrumented builds: DOCKSCALER_SANITIZE=address (ASan + UBSan) or thread
# (TSan) for every target, and DOCKSCALER_FUZZ (clang only) for the libFuzzer
# harnesses in fuzz/. scripts/test-sanitizers and scripts/fuzz drive them.
# Included from the root CMakeLists before the first target; the statically
# linked programs (function images, the containers' init) are taken back out
# by dockscaler_unsanitize_static() once every target exists: the sanitizer
# runtimes cannot be linked -static, and those programs run inside containers.
set(DOCKSCALER_SANITIZE "" CACHE STRING "Instrument every target: address (ASan+UBSan) or thread (TSan)")
set_property(CACHE DOCKSCALER_SANITIZE PROPERTY STRINGS "" address thread)
option(DOCKSCALER_FUZZ "Build the libFuzzer harnesses in fuzz/ (clang)" OFF)

set(dockscaler_san_flags "")
if(DOCKSCALER_SANITIZE STREQUAL "address")
  # Frame pointers for usable stacks; UBSan findings abort instead of printing and going on.
  set(dockscaler_san_flags -fsanitize=address,undefined -fno-sanitize-recover=undefined
      -fno-omit-frame-pointer)
elseif(DOCKSCALER_SANITIZE STREQUAL "thread")
  set(dockscaler_san_flags -fsanitize=thread -fno-omit-frame-pointer)
  if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
    # g++ warns that TSan does not model the fences of Asio's fenced_block; the
    # handler queues they sit beside are mutex-protected, which TSan does see.
    add_compile_options(-Wno-tsan)
  endif()
elseif(NOT DOCKSCALER_SANITIZE STREQUAL "")
  message(FATAL_ERROR "DOCKSCALER_SANITIZE must be address, thread or empty, not '${DOCKSCALER_SANITIZE}'")
endif()

if(DOCKSCALER_FUZZ)
  if(NOT CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
    message(FATAL_ERROR "DOCKSCALER_FUZZ needs clang (libFuzzer): -DCMAKE_CXX_COMPILER=clang++")
  endif()
  if(DOCKSCALER_SANITIZE)
    message(FATAL_ERROR "DOCKSCALER_FUZZ brings its own sanitizers; leave DOCKSCALER_SANITIZE empty")
  endif()
  # Coverage hooks everywhere; only the harnesses link libFuzzer's main (fuzz/CMakeLists.txt).
  # Without -fsanitize=function: clang 14 cannot assemble its prologue data
  # for C++20 coroutines ("Cannot represent a difference across sections", lb/).
  # pointer-overflow stays recoverable only so that fuzz/ubsan.supp can name
  # RapidJSON's; UBSAN_OPTIONS=halt_on_error=1 (scripts/fuzz) stops on any other.
  set(dockscaler_san_flags -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize=function
      -fno-sanitize-recover=undefined -fsanitize-recover=pointer-overflow -fno-omit-frame-pointer)
endif()

if(dockscaler_san_flags)
  add_compile_options(${dockscaler_san_flags})
  add_link_options(${dockscaler_san_flags})
endif()

# Every target under `dir` that links with -static loses the instrumentation again.
function(dockscaler_unsanitize_static dir)
  if(NOT dockscaler_san_flags)
    return()
  endif()
  get_property(targets DIRECTORY "${dir}" PROPERTY BUILDSYSTEM_TARGETS)
  foreach(t IN LISTS targets)
    get_target_property(opts ${t} LINK_OPTIONS)
    if(opts AND "-static" IN_LIST opts)
      target_compile_options(${t} PRIVATE -fno-sanitize=all)
      target_link_options(${t} PRIVATE -fno-sanitize=all)
    endif()
  endforeach()
  get_property(subdirs DIRECTORY "${dir}" PROPERTY SUBDIRECTORIES)
  foreach(sub IN LISTS subdirs)
    dockscaler_unsanitize_static("${sub}")
  endforeach()
endfunction()
