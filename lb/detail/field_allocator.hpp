// The allocator of the proxy's header fields: Beast's basic_fields allocates
// one block per field (and one for the request target and the reason), about
// eight per proxied request, each freed when the next request's parser
// replaces the last one. This keeps the freed blocks in per-thread lists by
// size class and hands them out again, so a session in the steady state
// allocates no memory for its heads. Stateless: blocks may be freed on any
// thread (they go to that thread's lists). Under AddressSanitizer the lists
// are bypassed, so a use after free is still caught.
#pragma once

#include <array>
#include <cstddef>
#include <new>

namespace dockscaler::lb::detail {

class field_block_cache {
 public:
  // Size classes of 64, 128, 256, 512 and 1024 bytes; larger blocks (a long
  // cookie) go to operator new.
  static constexpr std::size_t classes = 5;
  static constexpr std::size_t smallest = 64;
  // Per class and thread: enough for the heads of a few hundred sessions
  // (at most ~500 KiB per thread when every list is full).
  static constexpr std::size_t max_kept = 256;

  static void* allocate(std::size_t bytes) {
    const std::size_t c = class_of(bytes);
    if (c < classes) {
      if (void* p = mine().take(c)) return p;
      return ::operator new(smallest << c);
    }
    return ::operator new(bytes);
  }
  static void deallocate(void* p, std::size_t bytes) noexcept {
    const std::size_t c = class_of(bytes);
    if (c < classes && mine().keep(c, p)) return;
    ::operator delete(p);
  }

  // Blocks this thread keeps for the size class of `bytes` (for the tests).
  static std::size_t kept(std::size_t bytes) {
    const std::size_t c = class_of(bytes);
    return c < classes ? mine().counts_[c] : 0;
  }

  field_block_cache() = default;
  field_block_cache(const field_block_cache&) = delete;
  field_block_cache& operator=(const field_block_cache&) = delete;
  ~field_block_cache() {
    for (std::size_t c = 0; c < classes; ++c)
      while (void* p = take(c)) ::operator delete(p);
  }

 private:
  struct node {
    node* next;
  };

  static std::size_t class_of(std::size_t bytes) {
#if defined(__SANITIZE_ADDRESS__)
    (void)bytes;
    return classes;  // never cached: ASan sees every block's life
#else
    std::size_t c = 0;
    while (c < classes && (smallest << c) < bytes) ++c;
    return c;
#endif
  }
  static field_block_cache& mine() {
    thread_local field_block_cache cache;
    return cache;
  }
  void* take(std::size_t c) {
    node* n = heads_[c];
    if (!n) return nullptr;
    heads_[c] = n->next;
    --counts_[c];
    return n;
  }
  bool keep(std::size_t c, void* p) {
    if (counts_[c] >= max_kept) return false;
    heads_[c] = new (p) node{heads_[c]};
    ++counts_[c];
    return true;
  }

  std::array<node*, classes> heads_{};
  std::array<std::size_t, classes> counts_{};
};

template <class T>
struct field_allocator {
  using value_type = T;

  field_allocator() noexcept = default;
  template <class U>
  field_allocator(const field_allocator<U>& /*unused*/) noexcept {
  }  // NOLINT(google-explicit-constructor)

  T* allocate(std::size_t n) {
    static_assert(alignof(T) <= __STDCPP_DEFAULT_NEW_ALIGNMENT__);
    return static_cast<T*>(field_block_cache::allocate(n * sizeof(T)));
  }
  void deallocate(T* p, std::size_t n) noexcept { field_block_cache::deallocate(p, n * sizeof(T)); }

  template <class U>
  bool operator==(const field_allocator<U>& /*unused*/) const noexcept {
    return true;
  }
};

}  // namespace dockscaler::lb::detail
