/* Latency and bandwidth between rank 0 and rank 1, OSU style, our own code.
 *
 *   latbw [-l] [-b] [-m maxsize] [-i iters] [-f factor] [-s size,size,...] [-k slices]
 *     -l  one-way latency (half the round trip of blocking ping-pong), us
 *     -b  bandwidth: a window of 64 nonblocking sends, then one reply, MB/s
 *         (after iters/40 + 1 untimed windows of the size, as -l warms up)
 *     -f  size step: 0 B, 1 B, then times factor (default 2), ending on maxsize
 *     -s  exactly these sizes instead (those above maxsize are skipped)
 *     -k  time the loop in this many equal slices and report the best one
 *         (default 1: the whole loop); on a machine shared with other jobs a
 *         slice in which a rank lost its core then does not count
 *     -p  latency: also time every round trip on its own and print
 *         "pct <size> <mean> <p50> <p99> <p99.9>" (one-way, half of each
 *         round trip, us) over all timed iterations
 * Prints "lat <size> <usec>" and "bw <size> <MB/s>" lines from rank 0.
 * Every received message is checked at its first and last byte. */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* The q-quantile (0..1) of n sorted values, nearest rank. */
static double quantile(const double *v, int n, double q)
{
    int i = (int)(q * n + 0.999999) - 1;
    if (i < 0) i = 0;
    if (i >= n) i = n - 1;
    return v[i];
}

#define WINDOW 64

static int iters_for(size_t s, int base)
{
    if (s <= 8192) return base;
    if (s <= 131072) return base / 4 > 10 ? base / 4 : 10;
    return base / 20 > 5 ? base / 20 : 5;
}

static void check(const char *buf, size_t s, char want, const char *what)
{
    if (s && (buf[0] != want || buf[s - 1] != want)) {
        fprintf(stderr, "FAIL: %s data mismatch at size %zu\n", what, s);
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
}

/* One bandwidth window: rank 0 sends WINDOW messages of s bytes, rank 1
 * receives them (checking the bytes when want != 0) and replies with one
 * byte, so a window is timed whole on rank 0. */
static void bw_window(int rank, char *sbuf, char *rbuf, size_t s, char want)
{
    MPI_Request req[WINDOW];
    if (rank == 0) {
        for (int w = 0; w < WINDOW; w++)
            MPI_Isend(sbuf, (int)s, MPI_CHAR, 1, 2, MPI_COMM_WORLD, &req[w]);
        MPI_Waitall(WINDOW, req, MPI_STATUSES_IGNORE);
        MPI_Recv(rbuf, 1, MPI_CHAR, 1, 3, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    } else {
        for (int w = 0; w < WINDOW; w++)
            MPI_Irecv(rbuf, (int)s, MPI_CHAR, 0, 2, MPI_COMM_WORLD, &req[w]);
        MPI_Waitall(WINDOW, req, MPI_STATUSES_IGNORE);
        if (want) check(rbuf, s, want, "bandwidth");
        MPI_Send(sbuf, 1, MPI_CHAR, 0, 3, MPI_COMM_WORLD);
    }
}

int main(int argc, char **argv)
{
    int rank, np, lat = 0, bw = 0, base = 1000, slices = 1, pct = 0;
    size_t maxsize = 4u << 20, factor = 2;
    size_t list[32];
    int nlist = 0;
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &np);
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-l")) lat = 1;
        else if (!strcmp(argv[i], "-b")) bw = 1;
        else if (!strcmp(argv[i], "-p")) pct = 1;
        else if (!strcmp(argv[i], "-m") && i + 1 < argc) maxsize = strtoull(argv[++i], NULL, 0);
        else if (!strcmp(argv[i], "-i") && i + 1 < argc) base = atoi(argv[++i]);
        else if (!strcmp(argv[i], "-f") && i + 1 < argc) factor = strtoull(argv[++i], NULL, 0);
        else if (!strcmp(argv[i], "-k") && i + 1 < argc) slices = atoi(argv[++i]);
        else if (!strcmp(argv[i], "-s") && i + 1 < argc) {
            for (char *p = argv[++i]; *p && nlist < 32;) {
                list[nlist++] = strtoull(p, &p, 0);
                if (*p == ',') p++;
                else break;
            }
        }
    }
    if (factor < 2) factor = 2;
    if (slices < 1) slices = 1;
    if (!lat && !bw) lat = bw = 1;
    if (np < 2) {
        if (!rank) fprintf(stderr, "latbw needs 2 ranks\n");
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
    if (nlist) {
        int k = 0;
        for (int j = 0; j < nlist; j++)
            if (list[j] <= maxsize) list[k++] = list[j];
        nlist = k;
        if (!nlist) {
            MPI_Finalize();
            return 0;
        }
    }
    char *sbuf = malloc(maxsize ? maxsize : 1), *rbuf = malloc(maxsize ? maxsize : 1);
    int li = 0;
    for (size_t s = nlist ? list[0] : 0; s <= maxsize;) {
        int iters = iters_for(s, base);
        memset(sbuf, 'a' + (int)(s % 26), s);
        char want = 'a' + (int)(s % 26);
        if (lat && rank < 2) {
            int peer = 1 - rank;
            for (int warm = 0; warm < 2; warm++) {
                int n = warm ? iters : iters / 10 + 1;
                int k = warm && slices < n ? slices : warm ? n : 1, done = 0;
                double best = 0, *one = pct && warm ? malloc(sizeof(double) * (size_t)n) : NULL;
                MPI_Barrier(MPI_COMM_WORLD);
                /* Slice j runs iterations [n*j/k, n*(j+1)/k): k = 1 is the whole loop. */
                for (int j = 0; j < k; j++) {
                    int m = (int)((long)n * (j + 1) / k) - done;
                    double t0 = MPI_Wtime();
                    for (int i = 0; i < m; i++) {
                        if (rank == 0) {
                            double t1 = one ? MPI_Wtime() : 0;
                            MPI_Send(sbuf, (int)s, MPI_CHAR, peer, 1, MPI_COMM_WORLD);
                            MPI_Recv(rbuf, (int)s, MPI_CHAR, peer, 1, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
                            if (one) one[done + i] = (MPI_Wtime() - t1) * 1e6 / 2.0;
                        } else {
                            MPI_Recv(rbuf, (int)s, MPI_CHAR, peer, 1, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
                            MPI_Send(sbuf, (int)s, MPI_CHAR, peer, 1, MPI_COMM_WORLD);
                        }
                    }
                    double per = (MPI_Wtime() - t0) * 1e6 / (2.0 * m);
                    if (!j || per < best) best = per;
                    done += m;
                }
                check(rbuf, s, want, "latency");
                if (warm && rank == 0) printf("lat %zu %.2f\n", s, best);
                if (one && rank == 0 && n > 0) {
                    double sum = 0;
                    for (int i = 0; i < n; i++) sum += one[i];
                    qsort(one, (size_t)n, sizeof(double), cmp_double);
                    printf("pct %zu %.2f %.2f %.2f %.2f\n", s, sum / n, quantile(one, n, 0.5),
                           quantile(one, n, 0.99), quantile(one, n, 0.999));
                }
                free(one);
            }
        } else if (lat) {
            MPI_Barrier(MPI_COMM_WORLD);
            MPI_Barrier(MPI_COMM_WORLD);
        }
        if (bw && rank < 2 && s > 0) {
            int n = iters / 4 > 3 ? iters / 4 : 3;
            int k = slices < n ? slices : n, done = 0;
            double best = 0;
            MPI_Barrier(MPI_COMM_WORLD);
            /* Untimed warm-up windows first (as the latency loop above and
             * osu_bw do): the first use of a size's buffers and of the path
             * is not part of its rate. */
            for (int i = 0; i < n / 10 + 1; i++)
                bw_window(rank, sbuf, rbuf, s, 0);
            /* Each window ends with the receiver's reply, so a slice is timed whole. */
            for (int j = 0; j < k; j++) {
                int m = (int)((long)n * (j + 1) / k) - done;
                double t0 = MPI_Wtime();
                for (int i = 0; i < m; i++)
                    bw_window(rank, sbuf, rbuf, s, want);
                double rate = (double)s * WINDOW * m / (MPI_Wtime() - t0) / 1e6;
                if (rate > best) best = rate;
                done += m;
            }
            if (rank == 0) printf("bw %zu %.3f\n", s, best);
        } else if (bw && s > 0) {
            MPI_Barrier(MPI_COMM_WORLD);
        }
        fflush(stdout);
        if (nlist) {
            if (++li == nlist) break;
            s = list[li];
            continue;
        }
        if (s == maxsize) break;
        s = !s ? 1 : s * factor > maxsize ? maxsize : s * factor; /* end on maxsize exactly */
    }
    free(sbuf);
    free(rbuf);
    MPI_Finalize();
    return 0;
}
