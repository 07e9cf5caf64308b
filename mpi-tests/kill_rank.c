/* A rank dies in the middle of a job: rank 3 of 4 raises SIGKILL.
 * The job must end (non-zero exit, Open MPI's error report) instead of
 * hanging, whoever notices first: Open MPI's daemon, or the srd provider
 * failing the survivors' operations toward the dead rank.
 *
 *   kill_rank stream   ring exchanges (eager, medium, long messages, data
 *                      checked) among all 4 ranks; rank 3 dies right after
 *                      posting its sends of iteration 20.
 *   kill_rank blocked  after one verified exchange, ranks 0-2 block in
 *                      MPI_Recv from rank 3, which dies without sending.
 *
 * MPI_ERRORS_RETURN is set so that an error the provider reports is printed
 * ("DETECTED ...", with the time since the kill) before MPI_Abort.
 * run-kill.sh runs it. */
#include "common.h"
#include <signal.h>
#include <time.h>
#include <unistd.h>

#define NP 4
#define VICTIM 3
#define KILL_AT 20
#define ITERS 100000

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static void fill(unsigned char *b, size_t n, int from, int it)
{
    for (size_t i = 0; i < n; i++)
        b[i] = (unsigned char)(mix32((uint32_t)(i * 131 + from * 7 + it)) & 0xff);
}

static int check(const unsigned char *b, size_t n, int from, int it)
{
    for (size_t i = 0; i < n; i++)
        if (b[i] != (unsigned char)(mix32((uint32_t)(i * 131 + from * 7 + it)) & 0xff))
            return 0;
    return 1;
}

static void detected(const char *what, int rc, double since)
{
    int cls = 0;
    MPI_Error_class(rc, &cls);
    printf("DETECTED rank %d: %s failed (class %d) %.2f s after start of the fatal phase\n",
           g_rank, what, cls, now() - since);
    fflush(stdout);
    MPI_Abort(MPI_COMM_WORLD, 3);
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "stream";
    int np;
    MPI_Init(&argc, &argv);
    g_name = "kill_rank";
    MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &np);
    CHECK(np == NP, "needs %d ranks", NP);
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);

    static const size_t sizes[] = {100, 40000, 1 << 20};
    size_t max = 1 << 20;
    unsigned char *out = malloc(max), *in = malloc(max);
    CHECK(out && in, "malloc");
    int to = (g_rank + 1) % NP, from = (g_rank + NP - 1) % NP;
    int blocked = strcmp(mode, "blocked") == 0;
    double start = now();

    for (int it = 0; it < ITERS; it++) {
        size_t n = sizes[it % 3];
        MPI_Request r[2];
        fill(out, n, g_rank, it);
        int rc = MPI_Irecv(in, (int)n, MPI_BYTE, from, it, MPI_COMM_WORLD, &r[0]);
        if (rc == MPI_SUCCESS)
            rc = MPI_Isend(out, (int)n, MPI_BYTE, to, it, MPI_COMM_WORLD, &r[1]);
        if (rc != MPI_SUCCESS)
            detected("posting", rc, start);
        if (g_rank == VICTIM && !blocked && it == KILL_AT) {
            printf("rank %d: raising SIGKILL at iteration %d\n", g_rank, it);
            fflush(stdout);
            raise(SIGKILL);
        }
        if (it == KILL_AT)
            start = now();
        rc = MPI_Waitall(2, r, MPI_STATUSES_IGNORE);
        if (rc != MPI_SUCCESS)
            detected("exchange", rc, start);
        CHECK(check(in, n, from, it), "bad data from %d at iteration %d", from, it);
        if (blocked && it == 0) {
            if (g_rank == VICTIM) {
                printf("rank %d: raising SIGKILL before sending\n", g_rank);
                fflush(stdout);
                raise(SIGKILL);
            }
            start = now();
            int x = 0;
            rc = MPI_Recv(&x, 1, MPI_INT, VICTIM, 999, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
            detected(rc == MPI_SUCCESS ? "nothing (a receive from the dead rank returned)"
                                       : "receive from the dead rank", rc == MPI_SUCCESS ? MPI_ERR_OTHER : rc,
                     start);
        }
    }
    /* Not reached: the job ends at the kill. */
    printf("FAIL: rank %d finished %d iterations with a dead peer\n", g_rank, ITERS);
    MPI_Finalize();
    return 1;
}
