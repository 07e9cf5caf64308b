/* Ping-pong with full data verification at every size around protocol
 * cut-offs (eager / medium / long), in three variants: blocking Send/Recv,
 * nonblocking Isend/Irecv, synchronous Ssend.
 * Usage: pingpong [-m maxsize] [-v] [extra sizes...]  (ranks paired 2k,2k+1) */
#include "common.h"

#define MAXSIZES 512
static size_t sizes[MAXSIZES];
static int nsizes;

static void add_size(size_t s)
{
    for (int i = 0; i < nsizes; i++) if (sizes[i] == s) return;
    if (nsizes < MAXSIZES) sizes[nsizes++] = s;
}

static int cmp_size(const void *a, const void *b)
{
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    return x < y ? -1 : x > y;
}

static int iters_for(size_t s)
{
    if (s <= 65536) return 6;
    if (s <= (1u << 20) + 1) return 3;
    if (s <= (8u << 20) + 1) return 2;
    return 1;
}

enum mode { M_BLOCKING, M_NONBLOCKING, M_SYNC };
static const char *mode_name[] = { "blocking", "nonblocking", "ssend" };

int main(int argc, char **argv)
{
    test_init(&argc, &argv, "pingpong");
    int np, verbose = 0;
    size_t maxsize = (64u << 20) + 1;
    MPI_Comm_size(MPI_COMM_WORLD, &np);
    CHECK(np >= 2, "needs at least 2 ranks");

    size_t base[] = { 0, 1, 2, 3, 7, 8, 9, 1471, 1472, 1473, 1500, 4095, 4096, 4097,
                      8191, 8192, 8193, 16383, 16384, 16385, 65506, 65507, 65508,
                      65535, 65536, 65537, 8971, 8972, 8973, 1000000, 1048576 };
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-m") && i + 1 < argc) maxsize = strtoull(argv[++i], NULL, 0);
        else if (!strcmp(argv[i], "-v")) verbose = 1;
        else add_size(strtoull(argv[i], NULL, 0));
    }
    for (size_t i = 0; i < sizeof base / sizeof base[0]; i++) add_size(base[i]);
    for (int k = 4; k <= 26; k++) {
        size_t p = (size_t)1 << k;
        add_size(p - 1); add_size(p); add_size(p + 1);
    }
    qsort(sizes, nsizes, sizeof sizes[0], cmp_size);
    size_t bufmax = 0;
    for (int i = 0; i < nsizes; i++) if (sizes[i] <= maxsize && sizes[i] > bufmax) bufmax = sizes[i];

    int peer = g_rank ^ 1;
    int active = peer < np;
    int pinger = (g_rank & 1) == 0;
    uint8_t *sbuf = xmalloc(bufmax), *rbuf = xmalloc(bufmax);
    char what[160];

    for (int mode = M_BLOCKING; mode <= M_SYNC && active; mode++) {
        for (int si = 0; si < nsizes; si++) {
            size_t n = sizes[si];
            if (n > maxsize) continue;
            int iters = iters_for(n);
            double t0 = MPI_Wtime();
            for (int it = 0; it < iters; it++) {
                int tag = (int)(si * 16 + it) % 32000;
                uint32_t sseed = make_seed((uint32_t)n, (uint32_t)g_rank, (uint32_t)it, (uint32_t)mode);
                uint32_t rseed = make_seed((uint32_t)n, (uint32_t)peer, (uint32_t)it, (uint32_t)mode);
                pat_fill(sbuf, n, sseed);
                /* Poison the receive buffer (one extra byte too) so stale data cannot pass. */
                memset(rbuf, 0xA5 ^ it, n < bufmax ? n + 1 : n);
                MPI_Status st;
                snprintf(what, sizeof what, "%s size %zu iter %d", mode_name[mode], n, it);
                if (mode == M_NONBLOCKING) {
                    MPI_Request rq[2];
                    MPI_CHECK(MPI_Irecv(rbuf, (int)n, MPI_BYTE, peer, tag, MPI_COMM_WORLD, &rq[0]));
                    if (pinger) {
                        MPI_CHECK(MPI_Isend(sbuf, (int)n, MPI_BYTE, peer, tag, MPI_COMM_WORLD, &rq[1]));
                        MPI_Status sts[2];
                        MPI_CHECK(MPI_Waitall(2, rq, sts));
                        st = sts[0];
                    } else {
                        MPI_CHECK(MPI_Wait(&rq[0], &st));
                        MPI_CHECK(MPI_Isend(sbuf, (int)n, MPI_BYTE, peer, tag, MPI_COMM_WORLD, &rq[1]));
                        MPI_CHECK(MPI_Wait(&rq[1], MPI_STATUS_IGNORE));
                    }
                } else {
                    int (*sendfn)(const void *, int, MPI_Datatype, int, int, MPI_Comm) =
                        mode == M_SYNC ? MPI_Ssend : MPI_Send;
                    if (pinger) {
                        MPI_CHECK(sendfn(sbuf, (int)n, MPI_BYTE, peer, tag, MPI_COMM_WORLD));
                        MPI_CHECK(MPI_Recv(rbuf, (int)n, MPI_BYTE, peer, tag, MPI_COMM_WORLD, &st));
                    } else {
                        MPI_CHECK(MPI_Recv(rbuf, (int)n, MPI_BYTE, peer, tag, MPI_COMM_WORLD, &st));
                        MPI_CHECK(sendfn(sbuf, (int)n, MPI_BYTE, peer, tag, MPI_COMM_WORLD));
                    }
                }
                check_status(&st, peer, tag, (long)n, what);
                pat_verify(rbuf, n, rseed, what);
                if (n < bufmax && rbuf[n] != (uint8_t)(0xA5 ^ it))
                    fail("%s: byte past the end of the message was overwritten", what);
            }
            if (verbose && g_rank == 0)
                printf("%-11s %9zu B x%d  %.3f ms/iter\n", mode_name[mode], n, iters,
                       (MPI_Wtime() - t0) * 1e3 / iters);
        }
    }
    free(sbuf); free(rbuf);
    test_pass();
    return 0;
}
