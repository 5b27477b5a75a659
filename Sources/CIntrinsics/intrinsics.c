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

void *tessera_map(size_t bytes) {
    if (bytes < own_mapping) return calloc(1, bytes);
    void *region = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (region == MAP_FAILED) return NULL;
#ifdef MADV_NOHUGEPAGE
    madvise(region, bytes, MADV_NOHUGEPAGE);  // also where the system's default is `always`
#endif
    return region;
}

void tessera_unmap(void *pointer, size_t bytes) {
    if (pointer == NULL) return;
    if (bytes < own_mapping) { free(pointer); return; }
    munmap(pointer, bytes);
}

static uint32_t crc_table[256];

static void crc_table_init(void) {
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0x82F63B78u & (0u - (c & 1)));
        crc_table[i] = c;
    }
}

static uint32_t crc_software(uint32_t crc, const unsigned char *p, size_t n) {
    static int ready = 0;
    if (!__atomic_load_n(&ready, __ATOMIC_ACQUIRE)) {
        crc_table_init();  // idempotent: racing threads write the same table
        __atomic_store_n(&ready, 1, __ATOMIC_RELEASE);
    }
    while (n--) crc = crc_table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
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
    return ~crc_software(c, bytes, count);
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
