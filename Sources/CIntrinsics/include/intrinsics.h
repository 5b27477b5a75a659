#ifndef TESSERA_INTRINSICS_H
#define TESSERA_INTRINSICS_H
/// Compiler builtins and C library calls the aggregation core uses, so that it needs no C
/// library module of its own.
#include <stddef.h>

/// Hints the CPU to start loading a cache line that a hot loop will touch a few rows later.
static inline void tessera_prefetch(const void *address) { __builtin_prefetch(address, 1, 3); }

/// The natural logarithm and exponential (libm), for the quantile sketch's bucket mapping.
static inline double tessera_log(double x) { return __builtin_log(x); }
static inline double tessera_exp(double x) { return __builtin_exp(x); }

/// Zeroed memory for state, mapped lazily by the kernel (pages are touched only when used).
/// Regions of 2 MiB and more are mappings of their own, returned to the system when released.
/// They are kept out of transparent huge pages: a huge page's first touch zeroes (and, on a
/// VM, has the host back) 2 MiB at once, most of which a growing slab's last chunk never uses —
/// measured end to end, the state's peak resident memory was 150 MiB larger and the run slower.
/// Release with `tessera_unmap`.
void *tessera_map(size_t bytes);
void tessera_unmap(void *pointer, size_t bytes);

/// `tessera_map` as a mapping of its own whatever the size: for a table most of which stays
/// unused (only its touched pages become resident). Release with `tessera_unmap_own`.
void *tessera_map_own(size_t bytes);
void tessera_unmap_own(void *pointer, size_t bytes);

/// Makes malloc serve blocks of `bytes` and more with memory of their own, returned to the
/// system when freed (glibc's `M_MMAP_THRESHOLD`, which also ends its adaptive threshold).
void tessera_malloc_own_memory_from(size_t bytes);

/// CRC-32C (Castagnoli) of `count` bytes, continuing from `crc` (0 to start): the SSE 4.2
/// instruction where the CPU has it (8 bytes per instruction), a table otherwise.
unsigned int tessera_crc32c(unsigned int crc, const void *bytes, size_t count);

/// CRC-32 of the gzip polynomial (what Parquet's page headers hold) of `count` bytes:
/// carry-less multiplication folding where the CPU has it (`TesseraCore.PageChecksum`), a table otherwise.
unsigned int tessera_crc32(const void *bytes, size_t count);

/// Creates (or truncates) `path` for writing with direct I/O (`O_DIRECT`: no copy into the page
/// cache; writes must be aligned to 4 KiB in memory, offset and length). -1 with `errno` set when
/// it cannot, EINVAL where the file system does not take direct I/O.
int tessera_create_direct(const char *path);

/// Turns direct I/O off for a descriptor opened by `tessera_create_direct` (its later writes go
/// through the page cache, with no alignment asked). 0, or -1 with `errno` set.
int tessera_end_direct(int fd);

/// Makes SIGSEGV, SIGBUS, SIGILL and SIGFPE end the process even when they come from outside
/// (`kill -SEGV`): the handler installed before (the Swift runtime's, which prints a backtrace)
/// still runs, then the signal is raised again with its default action. Call once, early.
void tessera_end_on_fatal_signals(void);

/// Names the calling thread for the kernel (`/proc/PID/task/*/comm`, `top -H`, `perf`): at most
/// 15 bytes are kept.
void tessera_name_this_thread(const char *name);
#endif
