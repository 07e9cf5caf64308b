/* Unexpected-message storms: every rank but one or two floods a receiver
 * that is busy elsewhere, so the receiver's unexpected-message storage fills
 * while a message it needs to get on (a barrier's, an exact receive's) comes
 * from another rank, behind the flood. Correct MPI programs: they must end.
 *
 *   storm     ranks 1..n-1: Barrier, then Isend M one-int messages (tag 5)
 *             to rank 0, Waitall. Rank 0: Barrier, busy-waits W seconds,
 *             then receives the (n-1)*M messages with ANY_SOURCE, tag 5.
 *   barrier   ranks 2..n-1 storm rank 0 as above; rank 0 and rank 1 then
 *             meet in a Barrier of their own communicator, rank 1 arriving
 *             W/2 seconds late (its message comes behind the flood); then
 *             rank 0 receives the flood.
 *   wildcard  ranks 2..n-1 storm rank 0 with tags 0..7; rank 1 sends one
 *             tag-99 message W/2 seconds late, which rank 0 receives first
 *             with an exact (1, 99) receive; then the flood with
 *             ANY_SOURCE/ANY_TAG.
 *   probe     the storm, rank 0 taking each message with Probe(ANY_SOURCE)
 *             and a Recv of the probed source and tag.
 *   alltoall  every rank floods every other, waits a random 0..W seconds,
 *             then receives (n-1)*M messages with ANY_SOURCE.
 *
 * Per-source order (the payload is a sequence number), tags and the total
 * count are checked. Options: -p pattern (storm), -m messages per sender
 * (2000), -w busy-wait seconds (0.2), -k random start skew in ms (0),
 * -s seed, -r repetitions in one job (1). */
#include "common.h"
#include <time.h>

enum pattern { STORM, BARRIER, WILDCARD, PROBE, ALLTOALL };
static const char *const NAMES[] = { "storm", "barrier", "wildcard", "probe", "alltoall" };

static uint32_t rng;
static uint32_t rnd(void) { rng = mix32(rng + 0x9E3779B9U); return rng; }

static void busy_wait(double secs)
{
    double t = MPI_Wtime();
    while (MPI_Wtime() - t < secs) {
    }
}

static void sleep_ms(long ms)
{
    if (ms <= 0) return;
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
    nanosleep(&ts, NULL);
}

/* Payload of message k from src: identifies both. */
static int payload(int src, int k) { return src * 1000003 + k; }

/* Receives n messages (tag: 5, or ANY_TAG with tags k % ntag) and checks
 * per-source order. `next` counts what each source delivered. */
static void drain(long n, int np, int *next, int ntag, int probe)
{
    for (long i = 0; i < n; i++) {
        int v = -1;
        MPI_Status st;
        int tag = ntag == 1 ? 5 : MPI_ANY_TAG;
        if (probe) {
            MPI_Status pst;
            MPI_CHECK(MPI_Probe(MPI_ANY_SOURCE, tag, MPI_COMM_WORLD, &pst));
            MPI_CHECK(MPI_Recv(&v, 1, MPI_INT, pst.MPI_SOURCE, pst.MPI_TAG, MPI_COMM_WORLD, &st));
            CHECK(st.MPI_SOURCE == pst.MPI_SOURCE && st.MPI_TAG == pst.MPI_TAG,
                  "probe said (%d, %d), recv got (%d, %d)", pst.MPI_SOURCE, pst.MPI_TAG,
                  st.MPI_SOURCE, st.MPI_TAG);
        } else {
            MPI_CHECK(MPI_Recv(&v, 1, MPI_INT, MPI_ANY_SOURCE, tag, MPI_COMM_WORLD, &st));
        }
        int s = st.MPI_SOURCE;
        CHECK(s >= 0 && s < np && s != g_rank, "message %ld from bad source %d", i, s);
        int k = next[s]++;
        CHECK(v == payload(s, k), "message %d of %d: got %d want %d (order or content)", k, s, v,
              payload(s, k));
        if (ntag > 1) CHECK(st.MPI_TAG == k % ntag, "message %d of %d: tag %d", k, s, st.MPI_TAG);
    }
}

/* Isends M messages to each rank in dsts[0..nd); returns the requests. */
static void flood(const int *dsts, int nd, int M, int ntag, int *buf, MPI_Request *rq)
{
    for (int k = 0; k < M; k++)
        for (int d = 0; d < nd; d++) {
            int i = k * nd + d;
            buf[i] = payload(g_rank, k);
            MPI_CHECK(MPI_Isend(&buf[i], 1, MPI_INT, dsts[d], ntag == 1 ? 5 : k % ntag,
                                MPI_COMM_WORLD, &rq[i]));
        }
}

static void run(enum pattern pat, int np, int M, double wait, int skew_ms, MPI_Comm pair)
{
    int ntag = pat == WILDCARD ? 8 : 1;
    int *next = xmalloc(sizeof(int) * np);
    int *dsts = xmalloc(sizeof(int) * np);
    int *buf = xmalloc(sizeof(int) * (size_t)M * np);
    MPI_Request *rq = xmalloc(sizeof(MPI_Request) * (size_t)M * np);
    for (int i = 0; i < np; i++) next[i] = 0;
    int nd = 0;
    if (pat == ALLTOALL) {
        for (int d = 0; d < np; d++)
            if (d != g_rank) dsts[nd++] = d;
    } else if (g_rank != 0 && !(g_rank == 1 && (pat == BARRIER || pat == WILDCARD))) {
        dsts[nd++] = 0;
    }
    MPI_CHECK(MPI_Barrier(MPI_COMM_WORLD));
    sleep_ms(skew_ms > 0 ? (long)(rnd() % (uint32_t)skew_ms) : 0);
    if (nd > 0) flood(dsts, nd, M, ntag, buf, rq);
    if (pat == ALLTOALL) {
        busy_wait(wait * (rnd() % 1000) / 1000.0);
        drain((long)(np - 1) * M, np, next, 1, 0);
    } else if (g_rank == 0) {
        long senders = np - 1;
        busy_wait(wait);
        if (pat == BARRIER) {
            MPI_CHECK(MPI_Barrier(pair));
            senders = np - 2;
        } else if (pat == WILDCARD) {
            int v = -1;
            MPI_CHECK(MPI_Recv(&v, 1, MPI_INT, 1, 99, MPI_COMM_WORLD, MPI_STATUS_IGNORE));
            CHECK(v == payload(1, 0), "tag 99 from 1: got %d want %d", v, payload(1, 0));
            senders = np - 2;
        }
        drain(senders * M, np, next, ntag, pat == PROBE);
        for (int s = 1; s < np; s++) {
            int want = (s == 1 && senders == np - 2) ? 0 : M;
            CHECK(next[s] == want, "from %d: %d messages, want %d", s, next[s], want);
        }
    } else if (g_rank == 1 && pat == BARRIER) {
        sleep_ms((long)(wait * 500));
        MPI_CHECK(MPI_Barrier(pair));
    } else if (g_rank == 1 && pat == WILDCARD) {
        sleep_ms((long)(wait * 500));
        int v = payload(1, 0);
        MPI_CHECK(MPI_Send(&v, 1, MPI_INT, 0, 99, MPI_COMM_WORLD));
    }
    if (nd > 0) MPI_CHECK(MPI_Waitall(nd * M, rq, MPI_STATUSES_IGNORE));
    if (pat == ALLTOALL)
        for (int s = 0; s < np; s++)
            CHECK(s == g_rank || next[s] == M, "from %d: %d messages, want %d", s, next[s], M);
    free(next);
    free(dsts);
    free(buf);
    free(rq);
}

int main(int argc, char **argv)
{
    test_init(&argc, &argv, "storm");
    int np, M = 2000, reps = 1, skew_ms = 0;
    double wait = 0.2;
    const char *name = "storm";
    uint32_t seed = (uint32_t)time(NULL);
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "-p")) name = argv[i + 1];
        else if (!strcmp(argv[i], "-m")) M = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "-w")) wait = atof(argv[i + 1]);
        else if (!strcmp(argv[i], "-k")) skew_ms = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "-s")) seed = (uint32_t)strtoul(argv[i + 1], NULL, 0);
        else if (!strcmp(argv[i], "-r")) reps = atoi(argv[i + 1]);
    }
    int pat = -1;
    for (int i = 0; i < 5; i++)
        if (!strcmp(name, NAMES[i])) pat = i;
    CHECK(pat >= 0, "unknown pattern %s", name);
    MPI_Comm_size(MPI_COMM_WORLD, &np);
    CHECK(np >= (pat == BARRIER || pat == WILDCARD ? 3 : 2), "too few ranks for %s", name);
    rng = mix32(seed ^ (uint32_t)g_rank * 0x85EBCA77U);
    MPI_Comm pair;
    MPI_CHECK(MPI_Comm_split(MPI_COMM_WORLD, g_rank < 2 ? 0 : MPI_UNDEFINED, g_rank, &pair));
    for (int r = 0; r < reps; r++) run((enum pattern)pat, np, M, wait, skew_ms, pair);
    if (pair != MPI_COMM_NULL) MPI_Comm_free(&pair);
    test_pass();
    return 0;
}
