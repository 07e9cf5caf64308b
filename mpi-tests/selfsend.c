/* Messages a rank sends to itself: Isend to self then Irecv from self, at
 * sizes around the protocol cut-offs, data verified. An eager send to
 * oneself is delivered in process, so it is complete by the time its
 * receive is: MPI_Test of the send right after the receive's MPI_Wait must
 * report it done (mpi4py's test_util_pkl5 relies on this). Larger sends
 * must complete within MPI_Wait.
 * Usage: selfsend [-n iterations] */
#include "common.h"

int main(int argc, char **argv)
{
    test_init(&argc, &argv, "selfsend");
    int iters = 200;
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "-n") && i + 1 < argc) iters = atoi(argv[++i]);
    static const size_t sizes[] = { 0, 1, 8, 64, 1024, 4096, 16384, 65536, 1 << 20 };
    size_t maxs = 1 << 20;
    unsigned char *a = xmalloc(maxs), *b = xmalloc(maxs);
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        size_t s = sizes[k];
        int n = s <= 4096 ? iters : 10;
        for (int it = 0; it < n; it++) {
            for (size_t j = 0; j < s; j++) a[j] = (unsigned char)(j * 7 + it + g_rank);
            memset(b, 0xee, s);
            MPI_Request sr, rr;
            MPI_Status st;
            MPI_CHECK(MPI_Isend(a, (int)s, MPI_BYTE, g_rank, 11, MPI_COMM_WORLD, &sr));
            MPI_CHECK(MPI_Irecv(b, (int)s, MPI_BYTE, g_rank, 11, MPI_COMM_WORLD, &rr));
            MPI_CHECK(MPI_Wait(&rr, &st));
            check_status(&st, g_rank, 11, (long)s, "self receive");
            int done = 0;
            MPI_CHECK(MPI_Test(&sr, &done, MPI_STATUS_IGNORE));
            if (s <= 64)
                CHECK(done, "%zu B send to self not complete after its receive (iteration %d)", s, it);
            if (!done) MPI_CHECK(MPI_Wait(&sr, MPI_STATUS_IGNORE));
            for (size_t j = 0; j < s; j++)
                CHECK(b[j] == (unsigned char)(j * 7 + it + g_rank), "%zu B: byte %zu wrong", s, j);
        }
    }
    free(a);
    free(b);
    test_pass();
    return 0;
}
