/* 1000 outstanding nonblocking receives and 1000 sends per rank, in both
 * directions between rank pairs (2k, 2k+1), completed with one MPI_Waitall.
 * Round 0: unique tags, receives posted in a shuffled order, sizes across
 *          the protocol cut-offs.
 * Round 1: repeated tags (i % 7): the k-th receive for a tag must get the k-th
 *          message with that tag; every fourth receive is MPI_ANY_TAG
 *          (posted after all exact ones, so it gets the leftovers in order).
 * Round 2: like round 0 but completed with MPI_Testsome polling. */
#include "common.h"

#define NOPS 1000
static const size_t msizes[] = { 0, 1, 8, 64, 1000, 1472, 4096, 8193, 16384, 65536, 65537, 3, 200 };
#define NMS (sizeof msizes / sizeof msizes[0])

static size_t size_of(int i, int round)
{
    if (i % 97 == 13) return 300000 + i;   /* a few long-protocol messages */
    return msizes[(i * 7 + round) % NMS];
}

int main(int argc, char **argv)
{
    test_init(&argc, &argv, "manyops");
    int np;
    MPI_Comm_size(MPI_COMM_WORLD, &np);
    CHECK(np >= 2, "needs at least 2 ranks");
    int peer = g_rank ^ 1;
    if (peer >= np) {   /* odd rank count: the last rank only joins the barriers */
        for (int round = 0; round < 3; round++) MPI_Barrier(MPI_COMM_WORLD);
        test_pass();
        return 0;
    }

    size_t off[NOPS + 1];
    size_t maxmsg = 0;
    MPI_Request rq[2 * NOPS];
    MPI_Status st[2 * NOPS];
    int order[NOPS], slot_msg[NOPS];
    char what[128];

    for (int round = 0; round < 3; round++) {
        off[0] = 0;
        for (int i = 0; i < NOPS; i++) {
            off[i + 1] = off[i] + size_of(i, round);
            if (size_of(i, round) > maxmsg) maxmsg = size_of(i, round);
        }
        uint8_t *sb = xmalloc(off[NOPS]);
        /* Round 1 ANY_TAG receives may get any size: give every receive room for the largest. */
        size_t rslot = round == 1 ? maxmsg : 0;
        uint8_t *rb = xmalloc(round == 1 ? rslot * NOPS : off[NOPS]);
        for (int i = 0; i < NOPS; i++)
            pat_fill(sb + off[i], size_of(i, round), make_seed(g_rank, i, round, 5));
        memset(rb, 0xEE, round == 1 ? rslot * NOPS : off[NOPS]);

        for (int i = 0; i < NOPS; i++) order[i] = i;
        if (round != 1) {
            uint32_t r = 12345 + g_rank;
            for (int i = NOPS - 1; i > 0; i--) {
                r = mix32(r + i);
                int j = (int)(r % (uint32_t)(i + 1));
                int t = order[i]; order[i] = order[j]; order[j] = t;
            }
        }
        /* Receives first (half of them), then all sends, then the rest of the receives. */
        int nposted = 0;
        int exact_cnt = 0;
        for (int k = 0; k < NOPS; k++) {
            int i = order[k];
            if (round == 1) {
                /* exact receives for i%4 != 3, ANY_TAG later */
                if (i % 4 == 3) continue;
                slot_msg[exact_cnt] = i;
                MPI_CHECK(MPI_Irecv(rb + rslot * exact_cnt, (int)rslot, MPI_BYTE, peer, i % 7,
                                    MPI_COMM_WORLD, &rq[exact_cnt]));
                exact_cnt++;
                nposted++;
            } else {
                MPI_CHECK(MPI_Irecv(rb + off[i], (int)size_of(i, round), MPI_BYTE, peer,
                                    i, MPI_COMM_WORLD, &rq[nposted]));
                slot_msg[nposted] = i;
                nposted++;
            }
            if (k == NOPS / 2) {
                for (int s = 0; s < NOPS; s++)
                    MPI_CHECK(MPI_Isend(sb + off[s], (int)size_of(s, round), MPI_BYTE, peer,
                                        round == 1 ? s % 7 : s, MPI_COMM_WORLD, &rq[NOPS + s]));
            }
        }
        if (round == 1) {
            for (int j = exact_cnt; j < NOPS; j++) {
                MPI_CHECK(MPI_Irecv(rb + rslot * j, (int)rslot, MPI_BYTE, peer, MPI_ANY_TAG,
                                    MPI_COMM_WORLD, &rq[j]));
                slot_msg[j] = -1;
            }
            /* Work out which message each receive must get: the k-th exact receive
             * for tag t gets the k-th message with tag t that is not... all messages
             * with i%4 != 3 have an exact receive, but exact receives take the
             * EARLIEST messages of their tag. */
            int cnt_exact[7] = {0};
            int msgs_by_tag[7][NOPS / 7 + 2], nby[7] = {0};
            for (int i = 0; i < NOPS; i++) msgs_by_tag[i % 7][nby[i % 7]++] = i;
            for (int j = 0; j < exact_cnt; j++) {
                int t = slot_msg[j] % 7;
                slot_msg[j] = msgs_by_tag[t][cnt_exact[t]++];
            }
            /* Leftover messages, in send order, go to the ANY_TAG receives. */
            int taken[NOPS];
            memset(taken, 0, sizeof taken);
            for (int t = 0; t < 7; t++) for (int k = 0; k < cnt_exact[t]; k++) taken[msgs_by_tag[t][k]] = 1;
            int j = exact_cnt;
            for (int i = 0; i < NOPS; i++) if (!taken[i]) slot_msg[j++] = i;
            CHECK(j == NOPS, "internal: leftover count %d", j);
        }
        if (round == 2) {
            int done = 0, outc, idx[2 * NOPS];
            while (done < 2 * NOPS) {
                MPI_CHECK(MPI_Testsome(2 * NOPS, rq, &outc, idx, st));
                CHECK(outc != MPI_UNDEFINED, "Testsome: no active requests but %d not done", 2 * NOPS - done);
                for (int k = 0; k < outc; k++) {
                    int j = idx[k];
                    if (j < NOPS) {
                        int i = slot_msg[j];
                        snprintf(what, sizeof what, "round 2 recv of msg %d", i);
                        check_status(&st[k], peer, i, (long)size_of(i, round), what);
                    }
                }
                done += outc;
            }
        } else {
            MPI_CHECK(MPI_Waitall(2 * NOPS, rq, st));
        }
        for (int j = 0; j < NOPS; j++) {
            int i = slot_msg[j];
            size_t n = size_of(i, round);
            uint8_t *p = round == 1 ? rb + rslot * j : rb + off[i];
            snprintf(what, sizeof what, "round %d recv slot %d (msg %d size %zu)", round, j, i, n);
            if (round != 2) check_status(&st[j], peer, round == 1 ? i % 7 : i, (long)n, what);
            pat_verify(p, n, make_seed(peer, i, round, 5), what);
        }
        free(sb); free(rb);
        MPI_Barrier(MPI_COMM_WORLD);
    }
    test_pass();
    return 0;
}
