/* Shared helpers for the srd-fabric MPI tests: failure reporting and
 * position-dependent data patterns so that misplaced, stale or truncated
 * bytes are detected. */
#ifndef MPI_TESTS_COMMON_H
#define MPI_TESTS_COMMON_H
#include <mpi.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdarg.h>

static int g_rank = -1;
static const char *g_name = "test";

/* Print FAIL and abort the whole job so no rank is left waiting. */
static inline void fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "FAIL: [%s rank %d] ", g_name, g_rank);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    fflush(stderr);
    va_end(ap);
    MPI_Abort(MPI_COMM_WORLD, 1);
    exit(1);
}

#define CHECK(cond, ...) do { if (!(cond)) fail(__VA_ARGS__); } while (0)
#define MPI_CHECK(call) do { int rc_ = (call); \
    if (rc_ != MPI_SUCCESS) fail("%s returned %d (%s:%d)", #call, rc_, __FILE__, __LINE__); } while (0)

static inline uint32_t mix32(uint32_t x)
{
    x ^= x >> 16; x *= 0x7feb352dU;
    x ^= x >> 15; x *= 0x846ca68bU;
    x ^= x >> 16;
    return x;
}

static inline uint32_t make_seed(uint32_t a, uint32_t b, uint32_t c, uint32_t d)
{
    return mix32(a * 0x9E3779B1U ^ mix32(b + 0x632BE5ABU) ^ mix32(c * 0x85EBCA77U + 1) ^ mix32(d + 0xC2B2AE3DU));
}

/* Byte i of a buffer with this seed: depends on i and seed, never constant. */
static inline uint8_t pat_byte(uint32_t seed, size_t i)
{
    uint32_t v = (uint32_t)i * 2654435761U + seed;
    return (uint8_t)((v >> 24) ^ (v >> 11) ^ (uint32_t)i);
}

static inline void pat_fill(void *buf, size_t n, uint32_t seed)
{
    uint8_t *p = buf;
    for (size_t i = 0; i < n; i++) p[i] = pat_byte(seed, i);
}

/* Returns index of first mismatch or (size_t)-1 when all match. */
static inline size_t pat_check(const void *buf, size_t n, uint32_t seed)
{
    const uint8_t *p = buf;
    for (size_t i = 0; i < n; i++)
        if (p[i] != pat_byte(seed, i)) return i;
    return (size_t)-1;
}

static inline void pat_verify(const void *buf, size_t n, uint32_t seed, const char *what)
{
    size_t bad = pat_check(buf, n, seed);
    if (bad != (size_t)-1)
        fail("%s: data mismatch at byte %zu of %zu (got 0x%02x want 0x%02x)", what, bad, n,
             ((const uint8_t *)buf)[bad], pat_byte(seed, bad));
}

static inline void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) fail("malloc(%zu) failed", n);
    return p;
}

static inline void check_status(const MPI_Status *st, int src, int tag, long count, const char *what)
{
    int c = -1;
    MPI_Get_count(st, MPI_BYTE, &c);
    if (src >= 0 && st->MPI_SOURCE != src) fail("%s: status source %d want %d", what, st->MPI_SOURCE, src);
    if (tag >= 0 && st->MPI_TAG != tag) fail("%s: status tag %d want %d", what, st->MPI_TAG, tag);
    if (count >= 0 && c != count) fail("%s: status count %d want %ld", what, c, count);
}

static inline void test_init(int *argc, char ***argv, const char *name)
{
    MPI_Init(argc, argv);
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
    g_name = name;
}

static inline void test_pass(void)
{
    MPI_Barrier(MPI_COMM_WORLD);
    if (g_rank == 0) { printf("PASS %s\n", g_name); fflush(stdout); }
    MPI_Finalize();
}
#endif
