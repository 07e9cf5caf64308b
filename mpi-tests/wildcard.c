/* MPI_ANY_SOURCE / MPI_ANY_TAG matching and ordering (needs >= 3 ranks).
 * A: non-overtaking from one source with exact, ANY_SOURCE, ANY_TAG and
 *    fully wildcard receives, with sizes alternating across protocol cut-offs.
 * B: many senders to rank 0, all received with ANY_SOURCE/ANY_TAG; per-source
 *    order must be send order; status fields checked.
 * C: exact receives posted before wildcard ones, both when the messages arrive
 *    after posting (expected) and before (unexpected). */
#include "common.h"

/* Sizes alternate small/large so an unordered transport must reorder. */
static const size_t asizes[] = { 4, 70000, 0, 9000, 1, 300000, 65536, 16, 2000000, 1472 };
#define NASZ (sizeof asizes / sizeof asizes[0])
#define MAXSZ 2000000
#define NA 40

/* Header: first 4 bytes carry the sequence number when the message has room. */
static void make_msg(uint8_t *buf, size_t n, int src, int seq, int tag)
{
    pat_fill(buf, n, make_seed(src, seq, tag, 77));
    if (n >= 4) memcpy(buf, &seq, 4);
}

static void check_body(const uint8_t *buf, size_t n, int src, int seq, int tag, const char *what)
{
    uint32_t seed = make_seed(src, seq, tag, 77);
    if (n >= 4) {
        int got;
        memcpy(&got, buf, 4);
        if (got != seq) fail("%s: got sequence %d want %d (overtaking?)", what, got, seq);
    }
    for (size_t i = (n >= 4 ? 4 : 0); i < n; i++)
        if (buf[i] != pat_byte(seed, i))
            fail("%s: seq %d size %zu data mismatch at byte %zu", what, seq, n, i);
}

static void part_a(int np, uint8_t *sbuf, uint8_t *rbuf)
{
    (void)np;
    /* Rank 1 sends NA messages per variant to rank 0 with tag 5. */
    const int tag = 5;
    for (int variant = 0; variant < 4; variant++) {
        int rsrc = (variant & 1) ? MPI_ANY_SOURCE : 1;
        int rtag = (variant & 2) ? MPI_ANY_TAG : tag;
        char what[128];
        for (int i = 0; i < NA; i++) {
            size_t n = asizes[i % NASZ];
            snprintf(what, sizeof what, "A variant %d msg %d size %zu", variant, i, n);
            if (g_rank == 1) {
                make_msg(sbuf, n, 1, i, tag);
                MPI_CHECK(MPI_Send(sbuf, (int)n, MPI_BYTE, 0, tag, MPI_COMM_WORLD));
            } else if (g_rank == 0) {
                MPI_Status st;
                MPI_CHECK(MPI_Recv(rbuf, MAXSZ, MPI_BYTE, rsrc, rtag, MPI_COMM_WORLD, &st));
                check_status(&st, 1, tag, (long)n, what);
                check_body(rbuf, n, 1, i, tag, what);
            }
        }
        MPI_Barrier(MPI_COMM_WORLD);
    }
    /* Same with all receives pre-posted as Irecv (wildcards) before the sends. */
    MPI_Request rq[NA];
    uint8_t *bufs = NULL;
    if (g_rank == 0) {
        bufs = xmalloc((size_t)NA * 128 * 1024);
        for (int i = 0; i < NA; i++)
            MPI_CHECK(MPI_Irecv(bufs + (size_t)i * 128 * 1024, 128 * 1024, MPI_BYTE,
                                MPI_ANY_SOURCE, MPI_ANY_TAG, MPI_COMM_WORLD, &rq[i]));
    }
    MPI_Barrier(MPI_COMM_WORLD);
    if (g_rank == 1) {
        for (int i = 0; i < NA; i++) {
            size_t n = asizes[i % NASZ] > 128 * 1024 ? 100000 : asizes[i % NASZ];
            make_msg(sbuf, n, 1, i, tag);
            MPI_CHECK(MPI_Send(sbuf, (int)n, MPI_BYTE, 0, tag, MPI_COMM_WORLD));
        }
    } else if (g_rank == 0) {
        MPI_Status st[NA];
        MPI_CHECK(MPI_Waitall(NA, rq, st));
        for (int i = 0; i < NA; i++) {
            size_t n = asizes[i % NASZ] > 128 * 1024 ? 100000 : asizes[i % NASZ];
            char what[96];
            snprintf(what, sizeof what, "A preposted wildcard msg %d", i);
            check_status(&st[i], 1, tag, (long)n, what);
            check_body(bufs + (size_t)i * 128 * 1024, n, 1, i, tag, what);
        }
        free(bufs);
    }
    MPI_Barrier(MPI_COMM_WORLD);
}

#define NB 60
static void part_b(int np, uint8_t *sbuf, uint8_t *rbuf)
{
    /* Ranks 1..np-1 send NB messages each to rank 0, tags i%3, with Isend bursts. */
    if (g_rank != 0) {
        for (int i = 0; i < NB; i++) {
            size_t n = asizes[(i + g_rank) % NASZ] % 200000;
            int tag = 10 + i % 3;
            make_msg(sbuf, n, g_rank, i, tag);
            MPI_CHECK(MPI_Send(sbuf, (int)n, MPI_BYTE, 0, tag, MPI_COMM_WORLD));
        }
    } else {
        int *next = calloc(np, sizeof(int));
        for (int k = 0; k < NB * (np - 1); k++) {
            MPI_Status st;
            MPI_CHECK(MPI_Recv(rbuf, MAXSZ, MPI_BYTE, MPI_ANY_SOURCE, MPI_ANY_TAG, MPI_COMM_WORLD, &st));
            int s = st.MPI_SOURCE;
            CHECK(s > 0 && s < np, "B: bad source %d", s);
            int i = next[s]++;
            CHECK(i < NB, "B: too many messages from %d", s);
            size_t n = asizes[(i + s) % NASZ] % 200000;
            char what[96];
            snprintf(what, sizeof what, "B from %d msg %d", s, i);
            check_status(&st, s, 10 + i % 3, (long)n, what);
            check_body(rbuf, n, s, i, 10 + i % 3, what);
        }
        free(next);
    }
    MPI_Barrier(MPI_COMM_WORLD);
}

#define KC 30
static void part_c(uint8_t *sbuf)
{
    /* Rank 2 sends 2*KC messages to rank 0: seq even -> tag 5, odd -> tag 7.
     * Rank 0 posts KC Irecv(src 2, tag 7) then KC Irecv(ANY, ANY). */
    for (int unexpected = 0; unexpected < 2; unexpected++) {
        MPI_Request rq[2 * KC];
        const size_t slot = 80000;
        uint8_t *bufs = NULL;
        if (g_rank == 2 && unexpected) {
            /* Send first (nonblocking), receiver posts after the barrier. */
            uint8_t *sb = xmalloc(2 * KC * slot);
            for (int i = 0; i < 2 * KC; i++) {
                size_t n = asizes[i % NASZ] % slot;
                make_msg(sb + i * slot, n, 2, i, i & 1 ? 7 : 5);
                MPI_CHECK(MPI_Isend(sb + i * slot, (int)n, MPI_BYTE, 0, i & 1 ? 7 : 5, MPI_COMM_WORLD, &rq[i]));
            }
            MPI_Barrier(MPI_COMM_WORLD);
            MPI_CHECK(MPI_Waitall(2 * KC, rq, MPI_STATUSES_IGNORE));
            free(sb);
        } else if (g_rank == 0) {
            bufs = xmalloc(2 * KC * slot);
            if (unexpected) {
                MPI_Barrier(MPI_COMM_WORLD);
                /* Let the eager ones land in the unexpected queue. */
                double t = MPI_Wtime();
                int f;
                while (MPI_Wtime() - t < 0.05) MPI_Iprobe(2, 5, MPI_COMM_WORLD, &f, MPI_STATUS_IGNORE);
            }
            for (int i = 0; i < KC; i++)
                MPI_CHECK(MPI_Irecv(bufs + i * slot, slot, MPI_BYTE, 2, 7, MPI_COMM_WORLD, &rq[i]));
            for (int i = 0; i < KC; i++)
                MPI_CHECK(MPI_Irecv(bufs + (KC + i) * slot, slot, MPI_BYTE, MPI_ANY_SOURCE, MPI_ANY_TAG,
                                    MPI_COMM_WORLD, &rq[KC + i]));
            if (!unexpected) MPI_Barrier(MPI_COMM_WORLD);
            MPI_Status st[2 * KC];
            MPI_CHECK(MPI_Waitall(2 * KC, rq, st));
            for (int j = 0; j < 2 * KC; j++) {
                int seq = j < KC ? 2 * j + 1 : 2 * (j - KC); /* exact get odd, wildcard get even */
                int tag = seq & 1 ? 7 : 5;
                size_t n = asizes[seq % NASZ] % slot;
                char what[96];
                snprintf(what, sizeof what, "C %s recv %d (seq %d)", unexpected ? "unexpected" : "expected", j, seq);
                check_status(&st[j], 2, tag, (long)n, what);
                check_body(bufs + j * slot, n, 2, seq, tag, what);
            }
            free(bufs);
        } else {
            if (!unexpected) {
                MPI_Barrier(MPI_COMM_WORLD);
                if (g_rank == 2)
                    for (int i = 0; i < 2 * KC; i++) {
                        size_t n = asizes[i % NASZ] % slot;
                        make_msg(sbuf, n, 2, i, i & 1 ? 7 : 5);
                        MPI_CHECK(MPI_Send(sbuf, (int)n, MPI_BYTE, 0, i & 1 ? 7 : 5, MPI_COMM_WORLD));
                    }
            } else {
                MPI_Barrier(MPI_COMM_WORLD);
            }
        }
        MPI_Barrier(MPI_COMM_WORLD);
    }
}

int main(int argc, char **argv)
{
    test_init(&argc, &argv, "wildcard");
    int np;
    MPI_Comm_size(MPI_COMM_WORLD, &np);
    CHECK(np >= 3, "needs at least 3 ranks");
    uint8_t *sbuf = xmalloc(MAXSZ), *rbuf = xmalloc(MAXSZ);
    part_a(np, sbuf, rbuf);
    part_b(np, sbuf, rbuf);
    part_c(sbuf);
    free(sbuf); free(rbuf);
    test_pass();
    return 0;
}
