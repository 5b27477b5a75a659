#define _GNU_SOURCE
#include "intrinsics.h"
#include <stdint.h>
#include <stdlib.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

void tessera_malloc_own_memory_from(size_t bytes) {
#ifdef __GLIBC__
    mallopt(M_MMAP_THRESHOLD, (int)bytes);
#else
    (void)bytes;
#endif
}

// Below this, state memory comes from malloc; from it up, from a mapping of its own.
static const size_t own_mapping = (size_t)2 << 20;

void *tessera_map_own(size_t bytes) {
    void *region = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (region == MAP_FAILED) return NULL;
#ifdef MADV_NOHUGEPAGE
    madvise(region, bytes, MADV_NOHUGEPAGE);  // also where the system's default is `always`
#endif
    return region;
}

void *tessera_map(size_t bytes) {
    if (bytes < own_mapping) return calloc(1, bytes);
    return tessera_map_own(bytes);
}

void tessera_unmap_own(void *pointer, size_t bytes) {
    if (pointer != NULL) munmap(pointer, bytes);
}

void tessera_unmap(void *pointer, size_t bytes) {
    if (pointer == NULL) return;
    if (bytes < own_mapping) { free(pointer); return; }
    munmap(pointer, bytes);
}

// A bytewise table CRC of a reflected polynomial: the fallback of both CRCs below.
typedef struct {
    uint32_t polynomial;
    int ready;
    uint32_t entries[256];
} crc_table;

static crc_table crc32c_table = {0x82F63B78u, 0, {0}}, crc32_table = {0xEDB88320u, 0, {0}};

static uint32_t crc_bytewise(crc_table *t, uint32_t crc, const unsigned char *p, size_t n) {
    if (!__atomic_load_n(&t->ready, __ATOMIC_ACQUIRE)) {
        for (uint32_t i = 0; i < 256; i++) {  // idempotent: racing threads write the same table
            uint32_t c = i;
            for (int k = 0; k < 8; k++) c = (c >> 1) ^ (t->polynomial & (0u - (c & 1)));
            t->entries[i] = c;
        }
        __atomic_store_n(&t->ready, 1, __ATOMIC_RELEASE);
    }
    while (n--) crc = t->entries[(crc ^ *p++) & 0xff] ^ (crc >> 8);
    return crc;
}

#if defined(__x86_64__)
#include <string.h>
__attribute__((target("sse4.2")))
static uint32_t crc_hardware(uint32_t crc, const unsigned char *p, size_t n) {
    uint64_t c = crc;
    while (n >= 8) {
        uint64_t word;
        memcpy(&word, p, 8);
        c = __builtin_ia32_crc32di(c, word);
        p += 8;
        n -= 8;
    }
    uint32_t c32 = (uint32_t)c;
    while (n--) c32 = __builtin_ia32_crc32qi(c32, *p++);
    return c32;
}
#endif

unsigned int tessera_crc32c(unsigned int crc, const void *bytes, size_t count) {
    uint32_t c = ~crc;
#if defined(__x86_64__)
    if (__builtin_cpu_supports("sse4.2")) return ~crc_hardware(c, bytes, count);
#endif
    return ~crc_bytewise(&crc32c_table, c, bytes, count);
}

// CRC-32 of the gzip polynomial (0xEDB88320 reflected), as Parquet's page checksums use it.

#if defined(__x86_64__)
#include <immintrin.h>
// Carry-less multiplication folding (Gopal et al., "Fast CRC computation for generic polynomials
// using PCLMULQDQ", Intel 2009): four 128-bit lanes folded 512 bits ahead, then into one lane,
// 128 → 64 → 32 bits, and a Barrett reduction. The constants are x^k mod P for the reflected
// polynomial (k = 4·128 ± 32, 128 ± 32, 64), then μ = x^64 / P and P itself.
// `n` is at least 64 and a multiple of 16; `crc` is the running (inverted) remainder.
__attribute__((target("pclmul,sse4.1")))
static uint32_t crc_ieee_folded(uint32_t crc, const unsigned char *p, size_t n) {
    const __m128i k512 = _mm_set_epi64x(0x01c6e41596LL, 0x0154442bd4LL);
    const __m128i k128 = _mm_set_epi64x(0x00ccaa009eLL, 0x01751997d0LL);
    const __m128i k64 = _mm_set_epi64x(0, 0x0163cd6124LL);
    const __m128i barrett = _mm_set_epi64x(0x01f7011641LL, 0x01db710641LL);
    const __m128i low32 = _mm_setr_epi32(-1, 0, -1, 0);
    __m128i a = _mm_xor_si128(_mm_loadu_si128((const __m128i *)p), _mm_cvtsi32_si128((int)crc));
    __m128i b = _mm_loadu_si128((const __m128i *)(p + 16));
    __m128i c = _mm_loadu_si128((const __m128i *)(p + 32));
    __m128i d = _mm_loadu_si128((const __m128i *)(p + 48));
    p += 64;
    n -= 64;
#define FOLD(x, k, next) _mm_xor_si128(_mm_xor_si128(_mm_clmulepi64_si128(x, k, 0x00), _mm_clmulepi64_si128(x, k, 0x11)), next)
    while (n >= 64) {
        a = FOLD(a, k512, _mm_loadu_si128((const __m128i *)p));
        b = FOLD(b, k512, _mm_loadu_si128((const __m128i *)(p + 16)));
        c = FOLD(c, k512, _mm_loadu_si128((const __m128i *)(p + 32)));
        d = FOLD(d, k512, _mm_loadu_si128((const __m128i *)(p + 48)));
        p += 64;
        n -= 64;
    }
    a = FOLD(a, k128, b);
    a = FOLD(a, k128, c);
    a = FOLD(a, k128, d);
    while (n >= 16) {
        a = FOLD(a, k128, _mm_loadu_si128((const __m128i *)p));
        p += 16;
        n -= 16;
    }
#undef FOLD
    __m128i t = _mm_clmulepi64_si128(a, k128, 0x10);
    a = _mm_xor_si128(_mm_srli_si128(a, 8), t);
    t = _mm_srli_si128(a, 4);
    a = _mm_xor_si128(_mm_clmulepi64_si128(_mm_and_si128(a, low32), k64, 0x00), t);
    t = _mm_clmulepi64_si128(_mm_and_si128(a, low32), barrett, 0x10);
    t = _mm_clmulepi64_si128(_mm_and_si128(t, low32), barrett, 0x00);
    a = _mm_xor_si128(a, t);
    return (uint32_t)_mm_extract_epi32(a, 1);
}
#endif

unsigned int tessera_crc32(const void *bytes, size_t count) {
    const unsigned char *p = bytes;
    uint32_t c = 0xFFFFFFFFu;
#if defined(__x86_64__)
    if (count >= 64 && __builtin_cpu_supports("pclmul") && __builtin_cpu_supports("sse4.1")) {
        size_t bulk = count & ~(size_t)15;
        c = crc_ieee_folded(c, p, bulk);
        p += bulk;
        count -= bulk;
    }
#endif
    return ~crc_bytewise(&crc32_table, c, p, count);
}

#include <signal.h>

static const int fatal_signals[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE};
static struct sigaction previous[sizeof fatal_signals / sizeof fatal_signals[0]];

static void end_on_fatal_signal(int signal_number, siginfo_t *info, void *context) {
    for (size_t i = 0; i < sizeof fatal_signals / sizeof fatal_signals[0]; i++) {
        if (fatal_signals[i] != signal_number) continue;
        struct sigaction *before = &previous[i];
        if (before->sa_flags & SA_SIGINFO) {
            if (before->sa_sigaction != NULL) before->sa_sigaction(signal_number, info, context);
        } else if (before->sa_handler != SIG_DFL && before->sa_handler != SIG_IGN && before->sa_handler != NULL) {
            before->sa_handler(signal_number);
        }
    }
    // The earlier handler returned (the signal did not come from a fault it re-raised): end here.
    signal(signal_number, SIG_DFL);
    sigset_t unblock;
    sigemptyset(&unblock);
    sigaddset(&unblock, signal_number);
    sigprocmask(SIG_UNBLOCK, &unblock, NULL);
    raise(signal_number);
}

void tessera_end_on_fatal_signals(void) {
    for (size_t i = 0; i < sizeof fatal_signals / sizeof fatal_signals[0]; i++) {
        struct sigaction action = {0};
        action.sa_sigaction = end_on_fatal_signal;
        action.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_NODEFER;
        sigemptyset(&action.sa_mask);
        sigaction(fatal_signals[i], &action, &previous[i]);
    }
}

int tessera_create_direct(const char *path) {
#ifdef O_DIRECT
    return open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_DIRECT, 0644);
#else
    (void)path;
    errno = EINVAL;
    return -1;
#endif
}

int tessera_end_direct(int fd) {
#ifdef O_DIRECT
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0) return -1;
    return fcntl(fd, F_SETFL, flags & ~O_DIRECT);
#else
    (void)fd;
    return 0;
#endif
}

#include <sys/prctl.h>

void tessera_name_this_thread(const char *name) { prctl(PR_SET_NAME, (unsigned long)name, 0, 0, 0); }
