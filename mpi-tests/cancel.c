/* MPI_Cancel of receives. Needs >= 2 ranks (ranks beyond 1 only join barriers).
 * 1. Posted receives that never match (exact, ANY_SOURCE, ANY_TAG, on a
 *    duplicated communicator nobody sends on) are cancelled:
 *    MPI_Test_cancelled is true; later messages with the same envelope are
 *    not swallowed by the cancelled receives.
 * 2. A receive that already completed is "cancelled": not cancelled, data intact.
 * 3. Racing cancel: either cancelled (then the message is still delivered to a
 *    new receive) or completed with the correct data. */
#include "common.h"

static const size_t csizes[] = { 0, 8, 4096, 65536, 1048576 };
#define NCS (sizeof csizes / sizeof csizes[0])
#define NPOST 64

int main(int argc, char **argv)
{
    test_init(&argc, &argv, "cancel");
    int np;
    MPI_Comm_size(MPI_COMM_WORLD, &np);
    CHECK(np >= 2, "needs at least 2 ranks");
    MPI_Comm quiet;
    MPI_Comm_dup(MPI_COMM_WORLD, &quiet);
    size_t maxn = csizes[NCS - 1];
    uint8_t *sbuf = xmalloc(maxn), *rbuf = xmalloc(maxn + 1);
    char what[128];

    /* Part 1: cancel receives that never match. */
    for (size_t si = 0; si < NCS; si++) {
        size_t n = csizes[si];
        if (g_rank == 0) {
            MPI_Request rq[NPOST];
            uint8_t *bufs = xmalloc(n * NPOST);
            for (int i = 0; i < NPOST; i++) {
                MPI_Comm c = i % 4 == 3 ? quiet : MPI_COMM_WORLD;
                int src = i % 4 == 1 ? MPI_ANY_SOURCE : 1;
                int tag = i % 4 == 2 ? MPI_ANY_TAG : 100 + i % 4;
                if (i % 4 == 2) c = quiet;   /* ANY_TAG only where nothing is ever sent */
                MPI_CHECK(MPI_Irecv(bufs + n * i, (int)n, MPI_BYTE, src, tag, c, &rq[i]));
            }
            /* Let progress run a little, then cancel in an interleaved order. */
            int flag;
            MPI_CHECK(MPI_Testany(NPOST, rq, &(int){0}, &flag, MPI_STATUS_IGNORE));
            CHECK(!flag, "a never-matching receive completed (size %zu)", n);
            for (int i = 0; i < NPOST; i += 2) MPI_CHECK(MPI_Cancel(&rq[i]));
            for (int i = 1; i < NPOST; i += 2) MPI_CHECK(MPI_Cancel(&rq[i]));
            MPI_Status st[NPOST];
            MPI_CHECK(MPI_Waitall(NPOST, rq, st));
            for (int i = 0; i < NPOST; i++) {
                int c = 0;
                MPI_Test_cancelled(&st[i], &c);
                CHECK(c, "posted receive %d (size %zu) not reported cancelled", i, n);
                CHECK(rq[i] == MPI_REQUEST_NULL, "request %d not freed after wait", i);
            }
            free(bufs);
        }
        MPI_Barrier(MPI_COMM_WORLD);
        /* Now send on the envelopes that had cancelled receives: they must
         * arrive at fresh receives, not vanish into the cancelled ones. */
        for (int t = 100; t < 102; t++) {
            uint32_t seed = make_seed(n, t, 9, 9);
            snprintf(what, sizeof what, "after cancel, tag %d size %zu", t, n);
            if (g_rank == 1) {
                pat_fill(sbuf, n, seed);
                MPI_CHECK(MPI_Send(sbuf, (int)n, MPI_BYTE, 0, t, MPI_COMM_WORLD));
            } else if (g_rank == 0) {
                MPI_Status st;
                memset(rbuf, 0, n + 1);
                MPI_CHECK(MPI_Recv(rbuf, (int)n, MPI_BYTE, 1, t, MPI_COMM_WORLD, &st));
                check_status(&st, 1, t, (long)n, what);
                pat_verify(rbuf, n, seed, what);
            }
        }
        MPI_Barrier(MPI_COMM_WORLD);
    }

    /* Part 2: cancel of a receive that has already completed. */
    for (size_t si = 0; si < NCS; si++) {
        size_t n = csizes[si];
        uint32_t seed = make_seed(n, 2, 2, 2);
        snprintf(what, sizeof what, "cancel after completion, size %zu", n);
        if (g_rank == 1) {
            pat_fill(sbuf, n, seed);
            MPI_CHECK(MPI_Send(sbuf, (int)n, MPI_BYTE, 0, 200, MPI_COMM_WORLD));
        } else if (g_rank == 0) {
            MPI_Request rq;
            memset(rbuf, 0, n + 1);
            MPI_CHECK(MPI_Irecv(rbuf, (int)n, MPI_BYTE, 1, 200, MPI_COMM_WORLD, &rq));
            int flag = 0;
            double t0 = MPI_Wtime();
            while (!flag) {
                MPI_CHECK(MPI_Request_get_status(rq, &flag, MPI_STATUS_IGNORE));
                CHECK(MPI_Wtime() - t0 < 60, "%s: receive never completed", what);
            }
            MPI_CHECK(MPI_Cancel(&rq));
            MPI_Status st;
            MPI_CHECK(MPI_Wait(&rq, &st));
            int c = 1;
            MPI_Test_cancelled(&st, &c);
            CHECK(!c, "%s: completed receive reported cancelled", what);
            check_status(&st, 1, 200, (long)n, what);
            pat_verify(rbuf, n, seed, what);
        }
        MPI_Barrier(MPI_COMM_WORLD);
    }

    /* Part 3: cancel racing with the matching send. */
    int ncancelled = 0, ncompleted = 0;
    for (int rep = 0; rep < 20; rep++) {
        size_t n = csizes[rep % NCS];
        uint32_t seed = make_seed(n, rep, 3, 3);
        snprintf(what, sizeof what, "racing cancel rep %d size %zu", rep, n);
        if (g_rank == 1) {
            pat_fill(sbuf, n, seed);
            MPI_CHECK(MPI_Send(sbuf, (int)n, MPI_BYTE, 0, 300, MPI_COMM_WORLD));
        } else if (g_rank == 0) {
            MPI_Request rq;
            MPI_Status st;
            memset(rbuf, 0, n + 1);
            MPI_CHECK(MPI_Irecv(rbuf, (int)n, MPI_BYTE, 1, 300, MPI_COMM_WORLD, &rq));
            if (rep & 1) { int f; MPI_Iprobe(1, 301, MPI_COMM_WORLD, &f, MPI_STATUS_IGNORE); }
            MPI_CHECK(MPI_Cancel(&rq));
            MPI_CHECK(MPI_Wait(&rq, &st));
            int c = 0;
            MPI_Test_cancelled(&st, &c);
            if (c) {
                ncancelled++;
                MPI_CHECK(MPI_Recv(rbuf, (int)n, MPI_BYTE, 1, 300, MPI_COMM_WORLD, &st));
            } else {
                ncompleted++;
            }
            check_status(&st, 1, 300, (long)n, what);
            pat_verify(rbuf, n, seed, what);
        }
        MPI_Barrier(MPI_COMM_WORLD);
    }
    if (g_rank == 0) printf("cancel: racing cancels: %d cancelled, %d completed\n", ncancelled, ncompleted);
    MPI_Comm_free(&quiet);
    free(sbuf); free(rbuf);
    test_pass();
    return 0;
}
