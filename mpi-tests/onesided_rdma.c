/* One-sided communication under every synchronisation mode: Put, Get,
 * Accumulate (SUM), Get_accumulate (SUM), Fetch_and_op (SUM) and
 * Compare_and_swap, each under fence, lock/unlock, lock_all (+flush) and
 * PSCW (post/start/complete/wait), with contiguous and strided (vector
 * datatype, stride 3) target layouts at 1 to 20000 ints.
 *
 * run.sh runs it with osc rdma over btl ofi (so over the provider's RMA and
 * atomics) and with osc pt2pt (over pml cm, the tagged path).
 *
 * The window is MPI_Win_create over malloc'd memory by default: osc rdma
 * reaches same-node peers of an MPI_Win_allocate window through shared
 * memory, bypassing the btl; a created window is reached through the btl.
 * Options: -a  use MPI_Win_allocate instead
 *          -g  skip Get_accumulate with a strided (derived) target datatype
 *          -m MAX  strided layouts only up to MAX ints (osc pt2pt in 4.1.4
 *                  crashes or misplaces data on a 20000-element vector,
 *                  with the tcp provider too)
 *          -v  print each step on rank 0
 *          -o NAME  require the window name (set by the osc component,
 *                   "rdma window <n>" / "pt2pt window <n>") to start with NAME
 * Any number of ranks >= 2. */
#include "common.h"
#include <unistd.h>

#define WN 65536  /* ints per window */
#define STRIDE 3  /* strided layout: every third int */
#define NFOP 20   /* Fetch_and_op rounds per rank */

enum mode { FENCE, LOCK, LOCKALL, PSCW, NMODES };
static const char *mode_name[] = { "fence", "lock", "lock_all", "pscw" };

static MPI_Win win;
static int *base;
static int np, right, left;
static MPI_Group grp_left, grp_right;
/* -g: no Get_accumulate with a derived target datatype. Open MPI 4.1.4's
 * osc rdma returns wrong fetched values for it (the target is updated
 * right); reproduced over btl vader too, so not a libfabric matter. */
static int skip_gacc_derived;

/* The target of a mode's operations: the right neighbour under PSCW (each
 * rank exposes to its left neighbour only), rank 0 (every rank at once)
 * under the others. */
static int target_of(enum mode m) { return m == PSCW ? right : 0; }
/* How many ranks operate on a given rank's window. */
static int origins_of(enum mode m, int rank) { return m == PSCW ? 1 : (rank == 0 ? np : 0); }

/* A phase brackets several access epochs: lock_all stays open across it. */
static void phase_begin(enum mode m) { if (m == LOCKALL) MPI_CHECK(MPI_Win_lock_all(0, win)); }
static void phase_end(enum mode m) { if (m == LOCKALL) MPI_CHECK(MPI_Win_unlock_all(win)); }

/* One access epoch towards t; under fence and PSCW every rank calls these. */
static void epoch_begin(enum mode m, int t, int lock_type)
{
    switch (m) {
    case FENCE: MPI_CHECK(MPI_Win_fence(0, win)); break;
    case LOCK: MPI_CHECK(MPI_Win_lock(lock_type, t, 0, win)); break;
    case LOCKALL: break;
    case PSCW:
        MPI_CHECK(MPI_Win_post(grp_left, 0, win));
        MPI_CHECK(MPI_Win_start(grp_right, 0, win));
        break;
    default: break;
    }
}

static void epoch_end(enum mode m, int t)
{
    switch (m) {
    case FENCE: MPI_CHECK(MPI_Win_fence(0, win)); break;
    case LOCK: MPI_CHECK(MPI_Win_unlock(t, win)); break;
    case LOCKALL: MPI_CHECK(MPI_Win_flush(t, win)); break;
    case PSCW:
        MPI_CHECK(MPI_Win_complete(win));
        MPI_CHECK(MPI_Win_wait(win));
        break;
    default: break;
    }
}

/* Local stores to the own window, outside any epoch, then everybody waits. */
static void reset_window(int v)
{
    for (int i = 0; i < WN; i++) base[i] = v;
    MPI_CHECK(MPI_Barrier(MPI_COMM_WORLD));
}

static int val(int rank, int i, int n) { return (int)(mix32((uint32_t)rank * 7919u + (uint32_t)i * 31u + (uint32_t)n) & 0x3fffffff); }

/* Elements of the own window outside the n touched positions (stride s)
 * must still hold v. */
static void check_untouched(int n, int s, int v, const char *what)
{
    for (int j = 0; j < WN; j++) {
        if (j < n * s && j % s == 0) continue;
        CHECK(base[j] == v, "%s n=%d stride=%d: window[%d] = %d, want untouched %d", what, n, s, j, base[j], v);
    }
}

static void test_put_get(enum mode m, int n, int s, int tcount, MPI_Datatype tdt, int *buf)
{
    char what[64];
    /* Put: to the right neighbour (every rank, in every mode). */
    snprintf(what, sizeof what, "Put %s", mode_name[m]);
    reset_window(-1);
    for (int i = 0; i < n; i++) buf[i] = val(g_rank, i, n);
    phase_begin(m);
    epoch_begin(m, right, MPI_LOCK_SHARED);
    MPI_CHECK(MPI_Put(buf, n, MPI_INT, right, 0, tcount, tdt, win));
    epoch_end(m, right);
    phase_end(m);
    MPI_CHECK(MPI_Barrier(MPI_COMM_WORLD));
    for (int i = 0; i < n; i++)
        CHECK(base[i * s] == val(left, i, n), "%s n=%d stride=%d: element %d = %d want %d", what, n, s, i, base[i * s], val(left, i, n));
    check_untouched(n, s, -1, what);
    /* Get it back from the right neighbour into a contiguous buffer. */
    snprintf(what, sizeof what, "Get %s", mode_name[m]);
    for (int i = 0; i <= n; i++) buf[i] = -7;
    phase_begin(m);
    epoch_begin(m, right, MPI_LOCK_SHARED);
    MPI_CHECK(MPI_Get(buf, n, MPI_INT, right, 0, tcount, tdt, win));
    epoch_end(m, right);
    phase_end(m);
    for (int i = 0; i < n; i++)
        CHECK(buf[i] == val(g_rank, i, n), "%s n=%d stride=%d: element %d = %d want %d", what, n, s, i, buf[i], val(g_rank, i, n));
    CHECK(buf[n] == -7, "%s n=%d: wrote past the end of the origin buffer", what, n);
    MPI_CHECK(MPI_Barrier(MPI_COMM_WORLD));
}

static void test_acc(enum mode m, int n, int s, int tcount, MPI_Datatype tdt, int *buf, int *res)
{
    char what[64];
    int t = target_of(m);
    /* Accumulate SUM, twice per origin in one epoch: rank 0 gets every
     * rank's (r + i) twice (the right neighbour's own under PSCW). */
    snprintf(what, sizeof what, "Accumulate %s", mode_name[m]);
    reset_window(0);
    for (int i = 0; i < n; i++) buf[i] = g_rank + i;
    phase_begin(m);
    epoch_begin(m, t, MPI_LOCK_SHARED);
    MPI_CHECK(MPI_Accumulate(buf, n, MPI_INT, t, 0, tcount, tdt, MPI_SUM, win));
    MPI_CHECK(MPI_Accumulate(buf, n, MPI_INT, t, 0, tcount, tdt, MPI_SUM, win));
    epoch_end(m, t);
    phase_end(m);
    MPI_CHECK(MPI_Barrier(MPI_COMM_WORLD));
    int o = origins_of(m, g_rank);
    if (o > 0) {
        for (int i = 0; i < n; i++) {
            int want = m == PSCW ? 2 * (left + i) : 2 * (np * (np - 1) / 2 + np * i);
            CHECK(base[i * s] == want, "%s n=%d stride=%d: element %d = %d want %d", what, n, s, i, base[i * s], want);
        }
        check_untouched(n, s, 0, what);
    } else {
        check_untouched(0, s, 0, what);
    }
    MPI_CHECK(MPI_Barrier(MPI_COMM_WORLD));

    /* Get_accumulate SUM to the right neighbour: fetches its initial values,
     * leaves initial + added. */
    if (skip_gacc_derived && tdt != MPI_INT) return;
    snprintf(what, sizeof what, "Get_accumulate %s", mode_name[m]);
    for (int i = 0; i < WN; i++) base[i] = -1;
    for (int i = 0; i < n; i++) base[i * s] = g_rank * 5 + i;
    MPI_CHECK(MPI_Barrier(MPI_COMM_WORLD));
    for (int i = 0; i < n; i++) buf[i] = 1000 + i;
    for (int i = 0; i <= n; i++) res[i] = -7;
    phase_begin(m);
    epoch_begin(m, right, MPI_LOCK_SHARED);
    MPI_CHECK(MPI_Get_accumulate(buf, n, MPI_INT, res, n, MPI_INT, right, 0, tcount, tdt, MPI_SUM, win));
    epoch_end(m, right);
    phase_end(m);
    for (int i = 0; i < n; i++)
        CHECK(res[i] == right * 5 + i, "%s n=%d stride=%d: fetched %d = %d want %d", what, n, s, i, res[i], right * 5 + i);
    CHECK(res[n] == -7, "%s n=%d: wrote past the end of the result buffer", what, n);
    MPI_CHECK(MPI_Barrier(MPI_COMM_WORLD));
    for (int i = 0; i < n; i++)
        CHECK(base[i * s] == g_rank * 5 + i + 1000 + i, "%s n=%d stride=%d: element %d = %d want %d", what, n, s, i, base[i * s], g_rank * 5 + 1000 + 2 * i);
    check_untouched(n, s, -1, what);
    MPI_CHECK(MPI_Barrier(MPI_COMM_WORLD));
}

static void test_fop_cas(enum mode m)
{
    int t = target_of(m);
    /* Fetch_and_op: NFOP increments of window[2] at the target, one epoch
     * each. Fetched values rise; with a single origin they are exactly k. */
    reset_window(0);
    int one = 1, old = -1, prev = -1;
    phase_begin(m);
    for (int k = 0; k < NFOP; k++) {
        epoch_begin(m, t, MPI_LOCK_SHARED);
        MPI_CHECK(MPI_Fetch_and_op(&one, &old, MPI_INT, t, 2, MPI_SUM, win));
        epoch_end(m, t);
        if (m == PSCW)
            CHECK(old == k, "Fetch_and_op %s round %d fetched %d", mode_name[m], k, old);
        else
            CHECK(old > prev && old < NFOP * np, "Fetch_and_op %s fetched %d after %d", mode_name[m], old, prev);
        prev = old;
    }
    phase_end(m);
    MPI_CHECK(MPI_Barrier(MPI_COMM_WORLD));
    int o = origins_of(m, g_rank);
    if (o > 0) CHECK(base[2] == NFOP * o, "Fetch_and_op %s total %d want %d", mode_name[m], base[2], NFOP * o);
    else CHECK(base[2] == 0, "Fetch_and_op %s touched rank %d", mode_name[m], g_rank);
    MPI_CHECK(MPI_Barrier(MPI_COMM_WORLD));

    /* Compare_and_swap on window[1]: a wrong compare value leaves it, the
     * right one swaps. PSCW: each rank on its right neighbour (0 -> origin+1).
     * Others: ranks take turns turning rank 0's value from k to k+1. */
    reset_window(0);
    int nv, cmp, bad = 12345, r1, r2;
    if (m == PSCW) {
        nv = g_rank + 1, cmp = 0, r1 = r2 = -1;
        epoch_begin(m, t, MPI_LOCK_EXCLUSIVE);
        MPI_CHECK(MPI_Compare_and_swap(&nv, &bad, &r1, MPI_INT, t, 1, win));
        MPI_CHECK(MPI_Compare_and_swap(&nv, &cmp, &r2, MPI_INT, t, 1, win));
        epoch_end(m, t);
        CHECK(r1 == 0 && r2 == 0, "CAS %s fetched %d, %d want 0, 0", mode_name[m], r1, r2);
        MPI_CHECK(MPI_Barrier(MPI_COMM_WORLD));
        CHECK(base[1] == left + 1, "CAS %s final %d want %d", mode_name[m], base[1], left + 1);
    } else {
        phase_begin(m);
        for (int k = 0; k < np; k++) {
            /* Under fence every rank takes part in the epoch; only rank k
             * operates. */
            if (m == FENCE || k == g_rank) epoch_begin(m, t, MPI_LOCK_EXCLUSIVE);
            if (k == g_rank) {
                nv = k + 1, cmp = k, r1 = r2 = -1;
                MPI_CHECK(MPI_Compare_and_swap(&nv, &bad, &r1, MPI_INT, t, 1, win));
                MPI_CHECK(MPI_Compare_and_swap(&nv, &cmp, &r2, MPI_INT, t, 1, win));
            }
            if (m == FENCE || k == g_rank) epoch_end(m, t);
            if (k == g_rank)
                CHECK(r1 == k && r2 == k, "CAS %s turn %d fetched %d, %d want %d, %d", mode_name[m], k, r1, r2, k, k);
            MPI_CHECK(MPI_Barrier(MPI_COMM_WORLD));
        }
        phase_end(m);
        MPI_CHECK(MPI_Barrier(MPI_COMM_WORLD));
        if (g_rank == 0) CHECK(base[1] == np, "CAS %s final %d want %d", mode_name[m], base[1], np);
    }
    MPI_CHECK(MPI_Barrier(MPI_COMM_WORLD));
}

int main(int argc, char **argv)
{
    test_init(&argc, &argv, "onesided_rdma");
    int allocate = 0, verbose = 0, maxstrided = WN, opt;
    const char *want_name = NULL;
    while ((opt = getopt(argc, argv, "agm:o:v")) != -1) {
        if (opt == 'a') allocate = 1;
        else if (opt == 'g') skip_gacc_derived = 1;
        else if (opt == 'v') verbose = 1;
        else if (opt == 'm') maxstrided = atoi(optarg);
        else if (opt == 'o') want_name = optarg;
        else fail("usage: onesided_rdma [-a] [-g] [-m max-strided-count] [-v] [-o window-name-prefix]");
    }
    MPI_Comm_size(MPI_COMM_WORLD, &np);
    CHECK(np >= 2, "needs at least 2 ranks");
    right = (g_rank + 1) % np;
    left = (g_rank + np - 1) % np;
    MPI_Group world;
    MPI_CHECK(MPI_Comm_group(MPI_COMM_WORLD, &world));
    MPI_CHECK(MPI_Group_incl(world, 1, &left, &grp_left));
    MPI_CHECK(MPI_Group_incl(world, 1, &right, &grp_right));

    if (allocate) {
        MPI_CHECK(MPI_Win_allocate(WN * sizeof(int), sizeof(int), MPI_INFO_NULL, MPI_COMM_WORLD, &base, &win));
    } else {
        base = xmalloc(WN * sizeof(int));
        MPI_CHECK(MPI_Win_create(base, WN * sizeof(int), sizeof(int), MPI_INFO_NULL, MPI_COMM_WORLD, &win));
    }
    MPI_CHECK(MPI_Win_set_errhandler(win, MPI_ERRORS_RETURN));
    char name[MPI_MAX_OBJECT_NAME] = "";
    int len = 0;
    MPI_CHECK(MPI_Win_get_name(win, name, &len));
    if (g_rank == 0) { printf("window: %s (%s)\n", name, allocate ? "MPI_Win_allocate" : "MPI_Win_create"); fflush(stdout); }
    if (want_name)
        CHECK(strncmp(name, want_name, strlen(want_name)) == 0, "window name '%s', want one from osc %s", name, want_name);

    int *buf = xmalloc((WN + 1) * sizeof(int)), *res = xmalloc((WN + 1) * sizeof(int));
    static const int cnts[] = { 1, 7, 1000, 20000 };
    for (int m = 0; m < NMODES; m++) {
        for (int s = 1; s <= STRIDE; s += STRIDE - 1) {
            for (size_t ci = 0; ci < sizeof cnts / sizeof cnts[0]; ci++) {
                int n = cnts[ci];
                if (s > 1 && n > maxstrided) continue;
                /* Contiguous: n MPI_INTs; strided: one vector of n. */
                MPI_Datatype tdt = MPI_INT;
                int tcount = n;
                if (s > 1) {
                    MPI_CHECK(MPI_Type_vector(n, 1, s, MPI_INT, &tdt));
                    MPI_CHECK(MPI_Type_commit(&tdt));
                    tcount = 1;
                }
                if (verbose && g_rank == 0) fprintf(stderr, "%s n=%d stride=%d\n", mode_name[m], n, s);
                test_put_get((enum mode)m, n, s, tcount, tdt, buf);
                test_acc((enum mode)m, n, s, tcount, tdt, buf, res);
                if (s > 1) MPI_Type_free(&tdt);
            }
        }
        test_fop_cas((enum mode)m);
        if (g_rank == 0) { printf("ok %s\n", mode_name[m]); fflush(stdout); }
    }
    MPI_Win_free(&win);
    if (!allocate) free(base);
    free(buf);
    free(res);
    MPI_Group_free(&grp_left);
    MPI_Group_free(&grp_right);
    MPI_Group_free(&world);
    test_pass();
    return 0;
}
