#include "intrinsics.h"
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>

static const size_t huge = (size_t)2 << 20;

void *tessera_map(size_t bytes) {
    if (bytes < huge) return calloc(1, bytes);
    // Over-map by 2 MiB and trim, so the region starts on a huge-page boundary.
    size_t length = (bytes + huge - 1) & ~(huge - 1);
    char *raw = mmap(NULL, length + huge, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (raw == MAP_FAILED) return NULL;
    char *aligned = (char *)(((uintptr_t)raw + huge - 1) & ~(uintptr_t)(huge - 1));
    if (aligned > raw) munmap(raw, (size_t)(aligned - raw));
    char *end = aligned + length, *rawEnd = raw + length + huge;
    if (rawEnd > end) munmap(end, (size_t)(rawEnd - end));
#ifdef MADV_HUGEPAGE
    madvise(aligned, length, MADV_HUGEPAGE);
#endif
    return aligned;
}

void tessera_unmap(void *pointer, size_t bytes) {
    if (pointer == NULL) return;
    if (bytes < huge) { free(pointer); return; }
    munmap(pointer, (bytes + huge - 1) & ~(huge - 1));
}
