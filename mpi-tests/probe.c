/* MPI_Probe, MPI_Iprobe, MPI_Mprobe, MPI_Improbe + MPI_Mrecv with sizes below
 * and above the eager/medium thresholds; status source, tag and count checked;
 * a matched (Mprobe'd) message is removed from matching. Needs >= 2 ranks
 * (ranks beyond 1 only join barriers). */
#include "common.h"

static const size_t psizes[] = { 0, 1, 100, 1472, 4095, 4096, 8192, 8193, 16384, 65507,
                                 65536, 65537, 262144, 1048576, 4194305 };
#define NPS (sizeof psizes / sizeof psizes[0])
enum { P_PROBE, P_IPROBE, P_MPROBE, P_IMPROBE, P_NMETHODS };
static const char *mname[] = { "Probe", "Iprobe", "Mprobe", "Improbe" };

int main(int argc, char **argv)
{
    test_init(&argc, &argv, "probe");
    int np;
    MPI_Comm_size(MPI_COMM_WORLD, &np);
    CHECK(np >= 2, "needs at least 2 ranks");
    size_t maxn = psizes[NPS - 1];
    uint8_t *sbuf = xmalloc(2 * maxn), *rbuf = xmalloc(maxn + 1);
    char what[128];

    /* Nothing was sent with tag 999: Iprobe and Improbe must say so. */
    if (g_rank == 0) {
        int flag = 1;
        MPI_Message m;
        MPI_CHECK(MPI_Iprobe(MPI_ANY_SOURCE, 999, MPI_COMM_WORLD, &flag, MPI_STATUS_IGNORE));
        CHECK(!flag, "Iprobe found a message that was never sent");
        MPI_CHECK(MPI_Improbe(1, 999, MPI_COMM_WORLD, &flag, &m, MPI_STATUS_IGNORE));
        CHECK(!flag, "Improbe found a message that was never sent");
    }
    MPI_Barrier(MPI_COMM_WORLD);

    for (size_t si = 0; si < NPS; si++) {
        size_t n = psizes[si];
        for (int meth = 0; meth < P_NMETHODS; meth++) {
            for (int wild = 0; wild < 2; wild++) {
                int tag = (int)(si * 10 + meth * 2 + wild);
                uint32_t seed = make_seed((uint32_t)n, meth, wild, 1);
                snprintf(what, sizeof what, "%s%s size %zu", mname[meth], wild ? " (wildcard)" : "", n);
                if (g_rank == 1) {
                    pat_fill(sbuf, n, seed);
                    MPI_CHECK(MPI_Send(sbuf, (int)n, MPI_BYTE, 0, tag, MPI_COMM_WORLD));
                } else if (g_rank == 0) {
                    int src = wild ? MPI_ANY_SOURCE : 1, ptag = wild ? MPI_ANY_TAG : tag;
                    MPI_Status st;
                    MPI_Message msg = MPI_MESSAGE_NULL;
                    int flag = 0;
                    long spins = 0;
                    switch (meth) {
                    case P_PROBE:
                        MPI_CHECK(MPI_Probe(src, ptag, MPI_COMM_WORLD, &st));
                        break;
                    case P_IPROBE:
                        while (!flag) { MPI_CHECK(MPI_Iprobe(src, ptag, MPI_COMM_WORLD, &flag, &st)); spins++; }
                        break;
                    case P_MPROBE:
                        MPI_CHECK(MPI_Mprobe(src, ptag, MPI_COMM_WORLD, &msg, &st));
                        break;
                    case P_IMPROBE:
                        while (!flag) { MPI_CHECK(MPI_Improbe(src, ptag, MPI_COMM_WORLD, &flag, &msg, &st)); spins++; }
                        break;
                    }
                    check_status(&st, 1, tag, (long)n, what);
                    memset(rbuf, 0x5A, n + 1);
                    MPI_Status rst;
                    if (meth == P_MPROBE || meth == P_IMPROBE) {
                        CHECK(msg != MPI_MESSAGE_NULL, "%s: no message handle", what);
                        int cnt = (int)n;
                        MPI_CHECK(MPI_Mrecv(rbuf, cnt, MPI_BYTE, &msg, &rst));
                        CHECK(msg == MPI_MESSAGE_NULL, "%s: Mrecv did not reset the handle", what);
                    } else {
                        /* Probe again: the message is still there. */
                        MPI_Status st2;
                        MPI_CHECK(MPI_Probe(st.MPI_SOURCE, st.MPI_TAG, MPI_COMM_WORLD, &st2));
                        check_status(&st2, 1, tag, (long)n, what);
                        MPI_CHECK(MPI_Recv(rbuf, (int)n, MPI_BYTE, st.MPI_SOURCE, st.MPI_TAG, MPI_COMM_WORLD, &rst));
                    }
                    check_status(&rst, 1, tag, (long)n, what);
                    pat_verify(rbuf, n, seed, what);
                    CHECK(rbuf[n] == 0x5A, "%s: wrote past the end", what);
                }
            }
        }
        /* A matched message leaves the matching queue: Mprobe A, then a Recv
         * with the same envelope gets B, then Mrecv delivers A. */
        if (g_rank == 1) {
            MPI_Request rq[2];
            pat_fill(sbuf, n, make_seed(n, 1, 2, 3));
            pat_fill(sbuf + maxn, n, make_seed(n, 4, 5, 6));
            MPI_CHECK(MPI_Isend(sbuf, (int)n, MPI_BYTE, 0, 4000, MPI_COMM_WORLD, &rq[0]));
            MPI_CHECK(MPI_Isend(sbuf + maxn, (int)n, MPI_BYTE, 0, 4000, MPI_COMM_WORLD, &rq[1]));
            MPI_CHECK(MPI_Waitall(2, rq, MPI_STATUSES_IGNORE));
        } else if (g_rank == 0) {
            MPI_Message m;
            MPI_Status st;
            snprintf(what, sizeof what, "Mprobe-then-Recv size %zu", n);
            MPI_CHECK(MPI_Mprobe(1, 4000, MPI_COMM_WORLD, &m, &st));
            check_status(&st, 1, 4000, (long)n, what);
            uint8_t *b2 = xmalloc(n);
            MPI_CHECK(MPI_Recv(b2, (int)n, MPI_BYTE, MPI_ANY_SOURCE, MPI_ANY_TAG, MPI_COMM_WORLD, &st));
            check_status(&st, 1, 4000, (long)n, what);
            pat_verify(b2, n, make_seed(n, 4, 5, 6), "Recv after Mprobe got the wrong message");
            MPI_CHECK(MPI_Mrecv(rbuf, (int)n, MPI_BYTE, &m, &st));
            check_status(&st, 1, 4000, (long)n, what);
            pat_verify(rbuf, n, make_seed(n, 1, 2, 3), "Mrecv after Recv");
            free(b2);
        }
        MPI_Barrier(MPI_COMM_WORLD);
    }
    free(sbuf); free(rbuf);
    test_pass();
    return 0;
}
