#ifndef TESSERA_PREFETCH_H
#define TESSERA_PREFETCH_H
/// Hints the CPU to start loading a cache line that a hot loop will touch a few rows later.
static inline void tessera_prefetch(const void *address) { __builtin_prefetch(address, 1, 3); }
#endif
