/* Bidirectional bandwidth between rank 0 and rank 1, our own code.
 *
 *   bibw [-m maxsize] [-i iters] [-f factor] [-w window]
 * Both ranks post a window of nonblocking receives and a window of
 * nonblocking sends at once, wait for all, then exchange a 1-byte sync.
 * Rank 0 prints "bibw <size> <MB/s>" (bytes moved in both directions per
 * second). Sizes go from 1 B up by `factor` (default 2) and end on maxsize.
 * Every received message is checked at its first and last byte. */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int iters_for(size_t s, int base)
{
    if (s <= 8192) return base;
    if (s <= 131072) return base / 4 > 5 ? base / 4 : 5;
    return base / 20 > 3 ? base / 20 : 3;
}

int main(int argc, char **argv)
{
    int rank, np, base = 200, window = 64;
    size_t maxsize = 4u << 20, factor = 2;
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &np);
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-m") && i + 1 < argc) maxsize = strtoull(argv[++i], NULL, 0);
        else if (!strcmp(argv[i], "-i") && i + 1 < argc) base = atoi(argv[++i]);
        else if (!strcmp(argv[i], "-f") && i + 1 < argc) factor = strtoull(argv[++i], NULL, 0);
        else if (!strcmp(argv[i], "-w") && i + 1 < argc) window = atoi(argv[++i]);
    }
    if (np < 2 || factor < 2 || window < 1) {
        if (!rank) fprintf(stderr, "bibw needs 2 ranks, factor >= 2, window >= 1\n");
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
    /* Each message of the window gets its own slot: overlapping receive
     * buffers would make the check meaningless. Cap the buffer at 64 MiB. */
    size_t slots = (size_t)window;
    while (slots > 1 && maxsize * slots > (64u << 20)) slots /= 2;
    char *sbuf = malloc(maxsize ? maxsize : 1);
    char *rbuf = malloc((maxsize ? maxsize : 1) * slots);
    MPI_Request *req = malloc(sizeof(MPI_Request) * 2 * window);
    if (!sbuf || !rbuf || !req) MPI_Abort(MPI_COMM_WORLD, 1);
    int peer = 1 - rank;
    for (size_t s = 1; s <= maxsize;) {
        int iters = iters_for(s, base);
        char want = 'a' + (int)(s % 26);
        memset(sbuf, want, s);
        if (rank < 2) {
            for (int warm = 0; warm < 2; warm++) {
                int n = warm ? iters : 1;
                MPI_Barrier(MPI_COMM_WORLD);
                double t0 = MPI_Wtime();
                for (int i = 0; i < n; i++) {
                    for (int w = 0; w < window; w++)
                        MPI_Irecv(rbuf + (w % slots) * s, (int)s, MPI_CHAR, peer, 2, MPI_COMM_WORLD, &req[w]);
                    for (int w = 0; w < window; w++)
                        MPI_Isend(sbuf, (int)s, MPI_CHAR, peer, 2, MPI_COMM_WORLD, &req[window + w]);
                    MPI_Waitall(2 * window, req, MPI_STATUSES_IGNORE);
                    for (size_t w = 0; w < slots && w < (size_t)window; w++) {
                        const char *b = rbuf + w * s;
                        if (b[0] != want || b[s - 1] != want) {
                            fprintf(stderr, "FAIL: bibw data mismatch at size %zu\n", s);
                            MPI_Abort(MPI_COMM_WORLD, 1);
                        }
                    }
                    char c = 0;
                    MPI_Sendrecv(&c, 1, MPI_CHAR, peer, 3, &c, 1, MPI_CHAR, peer, 3,
                                 MPI_COMM_WORLD, MPI_STATUS_IGNORE);
                }
                double t = MPI_Wtime() - t0;
                if (warm && rank == 0)
                    printf("bibw %zu %.3f\n", s, 2.0 * (double)s * window * n / t / 1e6);
            }
        } else {
            MPI_Barrier(MPI_COMM_WORLD);
            MPI_Barrier(MPI_COMM_WORLD);
        }
        fflush(stdout);
        if (s == maxsize) break;
        s = s * factor > maxsize ? maxsize : s * factor;
    }
    free(req);
    free(sbuf);
    free(rbuf);
    MPI_Finalize();
    return 0;
}
