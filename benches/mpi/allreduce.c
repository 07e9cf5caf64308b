/* MPI_Allreduce time, OSU style, our own code.
 *
 *   allreduce [-s size[,size...]] [-i iters] [-k slices]
 * For each size (bytes, summed as MPI_INT; default 8,65536,1048576) every
 * rank runs iters allreduces (after a tenth as warm-up, behind a barrier),
 * timed in k equal slices; rank 0 prints "ar <ranks> <size> <usec>": the
 * best slice's mean time per allreduce, the slowest rank's slice (max over
 * ranks). The result is checked at its first and last element. Meant for
 * more ranks than cores, where a waiting rank must let the one it waits
 * for run. */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
    int rank, np, iters = 200, slices = 1;
    char sizes_arg[256] = "8,65536,1048576";
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &np);
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-s") && i + 1 < argc) snprintf(sizes_arg, sizeof sizes_arg, "%s", argv[++i]);
        else if (!strcmp(argv[i], "-i") && i + 1 < argc) iters = atoi(argv[++i]);
        else if (!strcmp(argv[i], "-k") && i + 1 < argc) slices = atoi(argv[++i]);
    }
    if (iters < 1 || slices < 1 || slices > iters) {
        if (!rank) fprintf(stderr, "allreduce needs iters >= slices >= 1\n");
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
    for (char *tok = strtok(sizes_arg, ","); tok; tok = strtok(NULL, ",")) {
        size_t s = strtoull(tok, NULL, 0);
        int n = (int)(s / sizeof(int));
        if (n < 1) n = 1;
        /* Large messages take longer: fewer iterations keep each size short. */
        int it = s > 65536 ? (iters / 10 > slices ? iters / 10 : slices)
                 : s > 8192 ? (iters / 4 > slices ? iters / 4 : slices) : iters;
        int *in = malloc(sizeof(int) * (size_t)n), *out = malloc(sizeof(int) * (size_t)n);
        if (!in || !out) MPI_Abort(MPI_COMM_WORLD, 1);
        for (int i = 0; i < n; i++) in[i] = rank + i;
        for (int w = 0; w < it / 10 + 1; w++)
            MPI_Allreduce(in, out, n, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
        double best = 1e30;
        int per = it / slices;
        for (int k = 0; k < slices; k++) {
            MPI_Barrier(MPI_COMM_WORLD);
            double t0 = MPI_Wtime();
            for (int i = 0; i < per; i++)
                MPI_Allreduce(in, out, n, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
            double t = (MPI_Wtime() - t0) / per, tmax;
            MPI_Allreduce(&t, &tmax, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
            if (tmax < best) best = tmax;
        }
        long long sum0 = (long long)np * (np - 1) / 2;
        if (out[0] != (int)sum0 || out[n - 1] != (int)(sum0 + (long long)np * (n - 1))) {
            fprintf(stderr, "FAIL: allreduce result wrong at size %zu on rank %d\n", s, rank);
            MPI_Abort(MPI_COMM_WORLD, 1);
        }
        if (!rank) printf("ar %d %zu %.2f\n", np, s, best * 1e6);
        free(in);
        free(out);
    }
    MPI_Finalize();
    return 0;
}
