/* Collectives with verification at several sizes (up to several MiB per rank):
 * Bcast (every root), Reduce (every root), Allreduce, Allgather, Alltoall,
 * Alltoallv (uneven counts, some zero), Barrier (a rank that leaves early is
 * detected). Any number of ranks >= 2. */
#include "common.h"
#include <time.h>

static const int counts[] = { 1, 7, 1000, 16385, 262144 };   /* ints */
#define NCNT (sizeof counts / sizeof counts[0])

static inline int val(int rank, int i, int salt) { return (int)(mix32(rank * 1000003u + i * 31u + salt) & 0xFFFF); }

int main(int argc, char **argv)
{
    test_init(&argc, &argv, "collectives");
    int np;
    MPI_Comm_size(MPI_COMM_WORLD, &np);
    MPI_Comm comm = MPI_COMM_WORLD;
    int maxc = counts[NCNT - 1];
    /* Alltoall buffers hold np * count ints; limit the big alltoall to 1 MiB per peer. */
    int *a = xmalloc((size_t)maxc * np * sizeof(int));
    int *b = xmalloc((size_t)maxc * np * sizeof(int));
    char what[128];

    for (size_t ci = 0; ci < NCNT; ci++) {
        int n = counts[ci];
        /* Bcast from each root (at most 4 roots for time). */
        for (int root = 0; root < np; root += (np > 4 ? np / 4 : 1)) {
            snprintf(what, sizeof what, "Bcast count %d root %d", n, root);
            for (int i = 0; i < n; i++) a[i] = g_rank == root ? val(root, i, 1) : -1;
            MPI_CHECK(MPI_Bcast(a, n, MPI_INT, root, comm));
            for (int i = 0; i < n; i++)
                CHECK(a[i] == val(root, i, 1), "%s: element %d = %d want %d", what, i, a[i], val(root, i, 1));
        }
        /* Allreduce SUM and MAX. */
        snprintf(what, sizeof what, "Allreduce count %d", n);
        for (int i = 0; i < n; i++) a[i] = val(g_rank, i, 2);
        MPI_CHECK(MPI_Allreduce(a, b, n, MPI_INT, MPI_SUM, comm));
        for (int i = 0; i < n; i++) {
            int want = 0;
            for (int r = 0; r < np; r++) want += val(r, i, 2);
            CHECK(b[i] == want, "%s SUM: element %d = %d want %d", what, i, b[i], want);
        }
        MPI_CHECK(MPI_Allreduce(a, b, n, MPI_INT, MPI_MAX, comm));
        for (int i = 0; i < n; i++) {
            int want = 0;
            for (int r = 0; r < np; r++) if (val(r, i, 2) > want) want = val(r, i, 2);
            CHECK(b[i] == want, "%s MAX: element %d = %d want %d", what, i, b[i], want);
        }
        /* Reduce to two roots. */
        for (int root = 0; root < np; root += np - 1) {
            snprintf(what, sizeof what, "Reduce count %d root %d", n, root);
            for (int i = 0; i < n; i++) { a[i] = val(g_rank, i, 3); b[i] = -7; }
            MPI_CHECK(MPI_Reduce(a, b, n, MPI_INT, MPI_SUM, root, comm));
            if (g_rank == root)
                for (int i = 0; i < n; i++) {
                    int want = 0;
                    for (int r = 0; r < np; r++) want += val(r, i, 3);
                    CHECK(b[i] == want, "%s: element %d = %d want %d", what, i, b[i], want);
                }
            if (np == 1) break;
        }
        /* Allgather. */
        snprintf(what, sizeof what, "Allgather count %d", n);
        for (int i = 0; i < n; i++) a[i] = val(g_rank, i, 4);
        memset(b, 0xFF, (size_t)n * np * sizeof(int));
        MPI_CHECK(MPI_Allgather(a, n, MPI_INT, b, n, MPI_INT, comm));
        for (int r = 0; r < np; r++)
            for (int i = 0; i < n; i++)
                CHECK(b[(size_t)r * n + i] == val(r, i, 4), "%s: block %d element %d", what, r, i);
        /* Alltoall: block j of rank r goes to rank j. */
        snprintf(what, sizeof what, "Alltoall count %d", n);
        for (int j = 0; j < np; j++)
            for (int i = 0; i < n; i++) a[(size_t)j * n + i] = val(g_rank * 131 + j, i, 5);
        memset(b, 0xFF, (size_t)n * np * sizeof(int));
        MPI_CHECK(MPI_Alltoall(a, n, MPI_INT, b, n, MPI_INT, comm));
        for (int r = 0; r < np; r++)
            for (int i = 0; i < n; i++)
                CHECK(b[(size_t)r * n + i] == val(r * 131 + g_rank, i, 5), "%s: from %d element %d", what, r, i);
        /* Alltoallv: rank r sends cnt(r, j) = ((r + 2j) % 3) * n / 2 ints to j (some zero). */
        snprintf(what, sizeof what, "Alltoallv count %d", n);
        {
            int *sc = xmalloc(np * sizeof(int)), *sd = xmalloc(np * sizeof(int));
            int *rc = xmalloc(np * sizeof(int)), *rd = xmalloc(np * sizeof(int));
            int so = 0, ro = 0;
            for (int j = 0; j < np; j++) {
                sc[j] = ((g_rank + 2 * j) % 3) * n / 2; sd[j] = so; so += sc[j];
                rc[j] = ((j + 2 * g_rank) % 3) * n / 2; rd[j] = ro; ro += rc[j];
            }
            for (int j = 0; j < np; j++)
                for (int i = 0; i < sc[j]; i++) a[sd[j] + i] = val(g_rank * 977 + j, i, 6);
            memset(b, 0xFF, (size_t)ro * sizeof(int));
            MPI_CHECK(MPI_Alltoallv(a, sc, sd, MPI_INT, b, rc, rd, MPI_INT, comm));
            for (int j = 0; j < np; j++)
                for (int i = 0; i < rc[j]; i++)
                    CHECK(b[rd[j] + i] == val(j * 977 + g_rank, i, 6), "%s: from %d element %d", what, j, i);
            free(sc); free(sd); free(rc); free(rd);
        }
    }

    /* Barrier: rank 0 sends to everybody right after each barrier; the others
     * sleep before entering and then check that nothing has arrived yet. */
    for (int rep = 0; rep < 5; rep++) {
        int token = rep;
        if (g_rank == 0) {
            MPI_CHECK(MPI_Barrier(comm));
            for (int r = 1; r < np; r++) MPI_CHECK(MPI_Send(&token, 1, MPI_INT, r, 77, comm));
        } else {
            struct timespec ts = { 0, 10 * 1000 * 1000 };
            nanosleep(&ts, NULL);
            int flag = 0;
            MPI_CHECK(MPI_Iprobe(0, 77, comm, &flag, MPI_STATUS_IGNORE));
            CHECK(!flag, "Barrier rep %d: rank 0 left the barrier before this rank entered", rep);
            MPI_CHECK(MPI_Barrier(comm));
            MPI_Status st;
            MPI_CHECK(MPI_Recv(&token, 1, MPI_INT, 0, 77, comm, &st));
            CHECK(token == rep, "Barrier rep %d: token %d", rep, token);
        }
    }
    for (int rep = 0; rep < 50; rep++) MPI_CHECK(MPI_Barrier(comm));
    free(a); free(b);
    test_pass();
    return 0;
}
