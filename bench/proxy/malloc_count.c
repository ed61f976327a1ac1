/* An LD_PRELOAD allocation counter for bench/proxy/count: counts every call
 * of malloc, calloc, realloc and the aligned allocators (C++ operator new
 * ends in one of them) in the process, and on SIGURG appends the total to
 * the file named by MALLOC_COUNT_OUT. The count is what matters, not the
 * time: the caller reads it before and after a known number of requests. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

extern void* __libc_malloc(size_t);
extern void* __libc_calloc(size_t, size_t);
extern void* __libc_realloc(void*, size_t);
extern void* __libc_memalign(size_t, size_t);

static atomic_ulong count;

void* malloc(size_t n) {
  atomic_fetch_add_explicit(&count, 1, memory_order_relaxed);
  return __libc_malloc(n);
}
void* calloc(size_t k, size_t n) {
  atomic_fetch_add_explicit(&count, 1, memory_order_relaxed);
  return __libc_calloc(k, n);
}
void* realloc(void* p, size_t n) {
  atomic_fetch_add_explicit(&count, 1, memory_order_relaxed);
  return __libc_realloc(p, n);
}
void* memalign(size_t a, size_t n) {
  atomic_fetch_add_explicit(&count, 1, memory_order_relaxed);
  return __libc_memalign(a, n);
}
void* aligned_alloc(size_t a, size_t n) { return memalign(a, n); }
int posix_memalign(void** out, size_t a, size_t n) {
  void* p = memalign(a, n);
  if (!p) return 12; /* ENOMEM */
  *out = p;
  return 0;
}

/* Formats with no allocation, so that the dump does not count itself. */
static void dump(void) {
  const char* path = getenv("MALLOC_COUNT_OUT");
  if (!path) return;
  char buf[32];
  char* e = buf + sizeof buf;
  *--e = '\n';
  unsigned long v = atomic_load(&count);
  do *--e = (char)('0' + v % 10); while ((v /= 10) != 0);
  const int fd = open(path, O_WRONLY | O_CREAT | O_APPEND, 0644);
  if (fd < 0) return;
  (void)!write(fd, e, (size_t)(buf + sizeof buf - e));
  close(fd);
}

static void* listen_fifo(void* arg) {
  const char* fifo = arg;
  for (;;) {
    const int fd = open(fifo, O_RDONLY);
    if (fd < 0) return NULL;
    char c;
    while (read(fd, &c, 1) == 1) dump();
    close(fd);
  }
}

__attribute__((constructor)) static void install(void) {
  const char* fifo = getenv("MALLOC_COUNT_FIFO");
  if (!fifo) return;
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, &old);  /* the thread takes no signal of the program */
  pthread_t t;
  if (pthread_create(&t, NULL, listen_fifo, (void*)fifo) == 0) pthread_detach(t);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
}
