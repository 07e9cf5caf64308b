/* Aggregate message rate of P sender/receiver pairs, our own code.
 *
 *   msgrate [-s size[,size...]] [-i iters] [-w window]
 * Run with 2P ranks: even rank 2k sends to rank 2k+1 (so `--map-by node`
 * puts every pair across two hosts). Each round a sender
 * posts a window of nonblocking sends and waits for them; its receiver
 * posts the matching window of receives and answers with a 1-byte ack
 * when all have arrived (so a round is complete end to end). Rank 0
 * prints "mr <pairs> <size> <msgs/s>": all pairs' messages over the
 * slowest sender's time. Received data is checked at its first and last
 * byte. */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
    int rank, np, iters = 200, window = 64;
    char sizes_arg[256] = "8";
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &np);
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-s") && i + 1 < argc) snprintf(sizes_arg, sizeof sizes_arg, "%s", argv[++i]);
        else if (!strcmp(argv[i], "-i") && i + 1 < argc) iters = atoi(argv[++i]);
        else if (!strcmp(argv[i], "-w") && i + 1 < argc) window = atoi(argv[++i]);
    }
    if (np < 2 || np % 2 || iters < 1 || window < 1) {
        if (!rank) fprintf(stderr, "msgrate needs an even number of ranks, iters >= 1, window >= 1\n");
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
    int pairs = np / 2, sender = rank % 2 == 0;
    int peer = rank ^ 1;
    MPI_Request *req = malloc(sizeof(MPI_Request) * window);
    for (char *tok = strtok(sizes_arg, ","); tok; tok = strtok(NULL, ",")) {
        size_t s = strtoull(tok, NULL, 0);
        char want = 'A' + (int)(s % 26);
        /* Receivers get one slot per message of the window. */
        char *buf = malloc((s ? s : 1) * (sender ? 1 : (size_t)window));
        if (!buf || !req) MPI_Abort(MPI_COMM_WORLD, 1);
        if (sender) memset(buf, want, s);
        double tmax = 0;
        for (int warm = 0; warm < 2; warm++) {
            int n = warm ? iters : iters / 10 + 1;
            MPI_Barrier(MPI_COMM_WORLD);
            double t0 = MPI_Wtime();
            for (int i = 0; i < n; i++) {
                if (sender) {
                    for (int w = 0; w < window; w++)
                        MPI_Isend(buf, (int)s, MPI_CHAR, peer, 5, MPI_COMM_WORLD, &req[w]);
                    MPI_Waitall(window, req, MPI_STATUSES_IGNORE);
                    char c;
                    MPI_Recv(&c, 1, MPI_CHAR, peer, 6, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
                } else {
                    for (int w = 0; w < window; w++)
                        MPI_Irecv(buf + (size_t)w * s, (int)s, MPI_CHAR, peer, 5, MPI_COMM_WORLD, &req[w]);
                    MPI_Waitall(window, req, MPI_STATUSES_IGNORE);
                    for (int w = 0; s && w < window; w++) {
                        const char *b = buf + (size_t)w * s;
                        if (b[0] != want || b[s - 1] != want) {
                            fprintf(stderr, "FAIL: msgrate data mismatch at size %zu\n", s);
                            MPI_Abort(MPI_COMM_WORLD, 1);
                        }
                    }
                    char c = 0;
                    MPI_Send(&c, 1, MPI_CHAR, peer, 6, MPI_COMM_WORLD);
                }
            }
            double t = MPI_Wtime() - t0;
            MPI_Reduce(&t, &tmax, 1, MPI_DOUBLE, MPI_MAX, 0, MPI_COMM_WORLD);
            if (warm && rank == 0)
                printf("mr %d %zu %.0f\n", pairs, s, (double)pairs * window * n / tmax);
        }
        fflush(stdout);
        free(buf);
    }
    free(req);
    MPI_Finalize();
    return 0;
}
