/* One-sided communication over MPI windows: Put, Get, Accumulate (SUM),
 * Fetch_and_op, Compare_and_swap, with fence and lock/unlock epochs.
 * run.sh runs it with --mca osc pt2pt (one-sided over pml cm, so over the
 * provider's tagged path; DESIGN §8: osc rdma crashes in CAS on this build).
 * Any number of ranks >= 2. */
#include "common.h"

#define WN 65536   /* ints per window */

int main(int argc, char **argv)
{
    test_init(&argc, &argv, "onesided");
    int np;
    MPI_Comm_size(MPI_COMM_WORLD, &np);
    CHECK(np >= 2, "needs at least 2 ranks");
    int *base;
    MPI_Win win;
    MPI_CHECK(MPI_Win_allocate(WN * sizeof(int), sizeof(int), MPI_INFO_NULL, MPI_COMM_WORLD, &base, &win));
    int right = (g_rank + 1) % np, left = (g_rank + np - 1) % np;
    int *buf = xmalloc(WN * sizeof(int));
    static const int cnts[] = { 1, 3, 1000, WN };

    for (size_t ci = 0; ci < sizeof cnts / sizeof cnts[0]; ci++) {
        int n = cnts[ci];
        /* Put to the right neighbour inside a fence epoch. */
        for (int i = 0; i < WN; i++) base[i] = -1;
        for (int i = 0; i < n; i++) buf[i] = (int)mix32(g_rank * 7919u + i + n);
        MPI_CHECK(MPI_Win_fence(0, win));
        MPI_CHECK(MPI_Put(buf, n, MPI_INT, right, 0, n, MPI_INT, win));
        MPI_CHECK(MPI_Win_fence(0, win));
        for (int i = 0; i < n; i++)
            CHECK(base[i] == (int)mix32(left * 7919u + i + n), "Put count %d: element %d", n, i);
        CHECK(n == WN || base[n] == -1, "Put count %d wrote past the end", n);
        /* Get it back from the right neighbour with lock/unlock. */
        memset(buf, 0, n * sizeof(int));
        MPI_CHECK(MPI_Win_lock(MPI_LOCK_SHARED, right, 0, win));
        MPI_CHECK(MPI_Get(buf, n, MPI_INT, right, 0, n, MPI_INT, win));
        MPI_CHECK(MPI_Win_unlock(right, win));
        for (int i = 0; i < n; i++)
            CHECK(buf[i] == (int)mix32(g_rank * 7919u + i + n), "Get count %d: element %d", n, i);
        MPI_CHECK(MPI_Barrier(MPI_COMM_WORLD));
        /* Everybody accumulates into rank 0. */
        MPI_CHECK(MPI_Win_fence(0, win));
        if (g_rank == 0) for (int i = 0; i < n; i++) base[i] = 0;
        MPI_CHECK(MPI_Win_fence(0, win));
        for (int i = 0; i < n; i++) buf[i] = g_rank + i;
        MPI_CHECK(MPI_Win_lock(MPI_LOCK_SHARED, 0, 0, win));
        MPI_CHECK(MPI_Accumulate(buf, n, MPI_INT, 0, 0, n, MPI_INT, MPI_SUM, win));
        MPI_CHECK(MPI_Win_unlock(0, win));
        MPI_CHECK(MPI_Barrier(MPI_COMM_WORLD));
        if (g_rank == 0) {
            MPI_CHECK(MPI_Win_lock(MPI_LOCK_EXCLUSIVE, 0, 0, win));
            for (int i = 0; i < n; i++)
                CHECK(base[i] == np * (np - 1) / 2 + np * i, "Accumulate count %d: element %d = %d", n, i, base[i]);
            MPI_CHECK(MPI_Win_unlock(0, win));
        }
        MPI_CHECK(MPI_Barrier(MPI_COMM_WORLD));
    }

    /* Fetch_and_op: every rank adds 1 to rank 0's counter 50 times; the fetched
     * values are distinct, and the final value is 50 * np. */
    MPI_CHECK(MPI_Win_fence(0, win));
    if (g_rank == 0) base[0] = 0;
    MPI_CHECK(MPI_Win_fence(0, win));
    int one = 1, old, prev = -1;
    for (int k = 0; k < 50; k++) {
        MPI_CHECK(MPI_Win_lock(MPI_LOCK_SHARED, 0, 0, win));
        MPI_CHECK(MPI_Fetch_and_op(&one, &old, MPI_INT, 0, 0, MPI_SUM, win));
        MPI_CHECK(MPI_Win_unlock(0, win));
        CHECK(old > prev && old < 50 * np, "Fetch_and_op returned %d after %d", old, prev);
        prev = old;
    }
    MPI_CHECK(MPI_Barrier(MPI_COMM_WORLD));
    MPI_CHECK(MPI_Win_fence(0, win));
    if (g_rank == 0) CHECK(base[0] == 50 * np, "Fetch_and_op total %d want %d", base[0], 50 * np);
    /* Compare_and_swap: ranks take turns turning slot 1 from k to k+1 for their k. */
    if (g_rank == 0) base[1] = 0;
    MPI_CHECK(MPI_Win_fence(0, win));
    for (int k = 0; k < np; k++) {
        if (k == g_rank) {
            int cmp = k, nv = k + 1, res = -1, cmp_bad = 12345;
            MPI_CHECK(MPI_Win_lock(MPI_LOCK_EXCLUSIVE, 0, 0, win));
            MPI_CHECK(MPI_Compare_and_swap(&nv, &cmp_bad, &res, MPI_INT, 0, 1, win));
            MPI_CHECK(MPI_Win_flush(0, win));
            CHECK(res == k, "CAS with wrong compare value fetched %d want %d", res, k);
            MPI_CHECK(MPI_Compare_and_swap(&nv, &cmp, &res, MPI_INT, 0, 1, win));
            MPI_CHECK(MPI_Win_unlock(0, win));
            CHECK(res == k, "CAS fetched %d want %d", res, k);
        }
        MPI_CHECK(MPI_Barrier(MPI_COMM_WORLD));
    }
    MPI_CHECK(MPI_Win_fence(0, win));
    if (g_rank == 0) CHECK(base[1] == np, "CAS final value %d want %d", base[1], np);
    MPI_CHECK(MPI_Win_fence(0, win));
    MPI_Win_free(&win);
    free(buf);
    test_pass();
    return 0;
}
