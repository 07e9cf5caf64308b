/* One-sided bandwidth from rank 0 into rank 1's window, our own code.
 *
 *   putbw [-g] [-i iters] [-s size,size,...] [-k slices]
 *     (default) MPI_Put: a window of 64 puts into rank 1's memory under a
 *               passive-target lock, then MPI_Win_flush; MB/s
 *     -g        MPI_Get from rank 1's memory instead
 *     -i        operations per size (default 640; rounded up to whole windows)
 *     -k        time the loop in this many equal slices, report the best one
 * Prints "put <size> <MB/s>" or "get <size> <MB/s>" from rank 0. Run with
 * osc rdma over btl ofi to drive the provider's fi_write / fi_read:
 *   --mca btl ofi,self --mca osc rdma --mca osc_rdma_btls ofi
 * The bytes are checked after each size: rank 1's window holds what rank 0
 * put (each put writes its own slot), or rank 0's buffer what it got. */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WINDOW 64

static unsigned char pattern(size_t slot, size_t i, size_t size)
{
    return (unsigned char)(slot * 131 + i * 7 + size);
}

static void fail(const char *what, size_t size, size_t slot, size_t i)
{
    fprintf(stderr, "FAIL: %s mismatch at size %zu slot %zu byte %zu\n", what, size, slot, i);
    MPI_Abort(MPI_COMM_WORLD, 1);
}

int main(int argc, char **argv)
{
    int rank, np, get = 0, slices = 1;
    long iters = 640;
    size_t list[32];
    int nlist = 0;
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &np);
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-g")) get = 1;
        else if (!strcmp(argv[i], "-i") && i + 1 < argc) iters = atol(argv[++i]);
        else if (!strcmp(argv[i], "-k") && i + 1 < argc) slices = atoi(argv[++i]);
        else if (!strcmp(argv[i], "-s") && i + 1 < argc) {
            char *s = argv[++i];
            while (*s && nlist < 32) {
                list[nlist++] = strtoul(s, &s, 0);
                if (*s == ',') s++;
            }
        }
    }
    if (np < 2) {
        if (rank == 0) fprintf(stderr, "putbw: needs 2 ranks\n");
        MPI_Finalize();
        return 1;
    }
    if (!nlist) {
        list[nlist++] = 65536;
        list[nlist++] = 1 << 20;
    }
    if (slices < 1) slices = 1;
    long rounds = (iters + WINDOW - 1) / WINDOW;
    if (rounds < slices) rounds = slices;
    size_t maxsize = 0;
    for (int i = 0; i < nlist; i++)
        if (list[i] > maxsize) maxsize = list[i];
    /* Rank 1's window and rank 0's buffer hold one slot per operation of a
     * round, so every byte of a round lands in its own place. */
    size_t span = maxsize * WINDOW;
    unsigned char *buf;
    MPI_Win win;
    MPI_Win_allocate(rank == 1 ? (MPI_Aint)span : 0, 1, MPI_INFO_NULL, MPI_COMM_WORLD, &buf, &win);
    unsigned char *local = malloc(span ? span : 1);
    for (int n = 0; n < nlist; n++) {
        size_t size = list[n];
        if (!size) continue;
        /* The side that is read from holds the pattern. */
        unsigned char *src = get ? (rank == 1 ? buf : NULL) : (rank == 0 ? local : NULL);
        if (src)
            for (size_t w = 0; w < WINDOW; w++)
                for (size_t i = 0; i < size; i++) src[w * size + i] = pattern(w, i, size);
        if (get && rank == 0) memset(local, 0, span);
        if (!get && rank == 1) {
            MPI_Win_lock(MPI_LOCK_EXCLUSIVE, 1, 0, win);
            memset(buf, 0, span);
            MPI_Win_unlock(1, win);
        }
        MPI_Barrier(MPI_COMM_WORLD);
        double best = 0;
        if (rank == 0) {
            MPI_Win_lock(MPI_LOCK_SHARED, 1, 0, win);
            long done = 0;
            for (int k = 0; k < slices; k++) {
                long r = rounds / slices + (k < rounds % slices);
                double t0 = MPI_Wtime();
                for (long j = 0; j < r; j++) {
                    for (size_t w = 0; w < WINDOW; w++) {
                        if (get)
                            MPI_Get(local + w * size, (int)size, MPI_BYTE, 1, (MPI_Aint)(w * size), (int)size, MPI_BYTE, win);
                        else
                            MPI_Put(local + w * size, (int)size, MPI_BYTE, 1, (MPI_Aint)(w * size), (int)size, MPI_BYTE, win);
                    }
                    MPI_Win_flush(1, win);
                }
                double t = MPI_Wtime() - t0;
                double mbs = (double)r * WINDOW * size / t / 1e6;
                if (r && mbs > best) best = mbs;
                done += r;
            }
            MPI_Win_unlock(1, win);
            if (get)
                for (size_t w = 0; w < WINDOW; w++)
                    for (size_t i = 0; i < size; i++)
                        if (local[w * size + i] != pattern(w, i, size)) fail("get", size, w, i);
            printf("%s %zu %.3f\n", get ? "get" : "put", size, best);
            fflush(stdout);
        }
        MPI_Barrier(MPI_COMM_WORLD);
        if (!get && rank == 1) {
            MPI_Win_lock(MPI_LOCK_EXCLUSIVE, 1, 0, win);
            for (size_t w = 0; w < WINDOW; w++)
                for (size_t i = 0; i < size; i++)
                    if (buf[w * size + i] != pattern(w, i, size)) fail("put", size, w, i);
            MPI_Win_unlock(1, win);
        }
        MPI_Barrier(MPI_COMM_WORLD);
    }
    free(local);
    MPI_Win_free(&win);
    MPI_Finalize();
    return 0;
}
