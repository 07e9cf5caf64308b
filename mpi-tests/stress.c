/* Matching stress for many (oversubscribed) ranks. In each round every rank
 * sends K messages of random size (seeded) with random tags (0..NTAG-1) to
 * random peers. Every rank derives the whole schedule from the seed, so each
 * receiver knows what it will get and posts one receive per incoming message:
 * exact (source, tag) receives first, then partial wildcards (odd rounds:
 * ANY_SOURCE + tag, even rounds: source + ANY_TAG), then full
 * ANY_SOURCE/ANY_TAG receives. Posting the narrower receives first guarantees a
 * complete matching. After Waitall, each receive is identified by its status:
 * in posting order the receives that got (src, tag) must hold the messages of
 * (src, tag) in send order (MPI non-overtaking); count and every byte checked.
 * Usage: stress [-r rounds] [-k msgs per rank per round] [-m maxsize] [-s seed] */
#include "common.h"

#define NTAG 6

struct msg { int src, dst, tag, k; size_t size; };

static uint32_t rng_state;
static uint32_t rnd(void) { rng_state = mix32(rng_state + 0x9E3779B9U); return rng_state; }

static size_t rand_size(size_t maxsize)
{
    uint32_t p = rnd() % 100;
    size_t s;
    if (p < 55) s = rnd() % 257;
    else if (p < 85) s = rnd() % 16385;
    else if (p < 97) s = rnd() % 70001;
    else s = rnd() % (maxsize + 1);
    return s > maxsize ? maxsize : s;
}

int main(int argc, char **argv)
{
    test_init(&argc, &argv, "stress");
    int np, rounds = 8, K = 40;
    size_t maxsize = 262144;
    uint32_t seed = 20261125;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "-r")) rounds = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "-k")) K = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "-m")) maxsize = strtoull(argv[i + 1], NULL, 0);
        else if (!strcmp(argv[i], "-s")) seed = (uint32_t)strtoul(argv[i + 1], NULL, 0);
    }
    MPI_Comm_size(MPI_COMM_WORLD, &np);
    CHECK(np >= 2, "needs at least 2 ranks");
    int total = np * K;
    struct msg *all = xmalloc(sizeof(struct msg) * total);
    int *in = xmalloc(sizeof(int) * total);            /* indices into all[] of my incoming messages */
    int *kind = xmalloc(sizeof(int) * total);
    MPI_Request *rq = xmalloc(sizeof(MPI_Request) * (total + K));
    MPI_Status *st = xmalloc(sizeof(MPI_Status) * (total + K));
    size_t *roff = xmalloc(sizeof(size_t) * (total + 1));
    /* per (src, tag): list of my incoming messages in send order */
    int *nst = xmalloc(sizeof(int) * np * NTAG), *cexact = xmalloc(sizeof(int) * np * NTAG);
    int *nextk = xmalloc(sizeof(int) * np * NTAG);
    int **lst = xmalloc(sizeof(int *) * np * NTAG);
    for (int i = 0; i < np * NTAG; i++) lst[i] = xmalloc(sizeof(int) * K);
    long long nmsgs = 0, nbytes = 0, nexact = 0, npart = 0, nwild = 0;
    double t0 = MPI_Wtime();

    for (int round = 0; round < rounds; round++) {
        /* 1. Global schedule of this round. */
        for (int s = 0; s < np; s++) {
            rng_state = make_seed(seed, round, s, 1);
            for (int k = 0; k < K; k++) {
                struct msg *m = &all[s * K + k];
                m->src = s; m->k = k;
                m->dst = (int)(rnd() % (np - 1)); if (m->dst >= s) m->dst++;
                m->tag = (int)(rnd() % NTAG);
                m->size = rand_size(maxsize);
            }
        }
        /* 2. My incoming messages grouped by (src, tag), in send order. */
        int nin = 0;
        memset(nst, 0, sizeof(int) * np * NTAG);
        memset(cexact, 0, sizeof(int) * np * NTAG);
        memset(nextk, 0, sizeof(int) * np * NTAG);
        for (int i = 0; i < total; i++) {
            if (all[i].dst != g_rank) continue;
            in[nin++] = i;
            int key = all[i].src * NTAG + all[i].tag;
            lst[key][nst[key]++] = i;
        }
        rng_state = make_seed(seed, round, g_rank, 2);
        for (int j = 0; j < nin; j++) {
            uint32_t p = rnd() % 10;
            kind[j] = p < 4 ? 0 : p < 7 ? 1 : 2;     /* exact / partial / full wildcard */
            if (kind[j] == 0) cexact[all[in[j]].src * NTAG + all[in[j]].tag]++;
        }
        /* Buffer sizes: exact receives for (s,t) get its first cexact messages. */
        size_t maxrest = 0, maxtag[NTAG] = {0}, *maxsrc = xmalloc(sizeof(size_t) * np);
        memset(maxsrc, 0, sizeof(size_t) * np);
        for (int key = 0; key < np * NTAG; key++)
            for (int k = cexact[key]; k < nst[key]; k++) {
                struct msg *m = &all[lst[key][k]];
                if (m->size > maxrest) maxrest = m->size;
                if (m->size > maxtag[m->tag]) maxtag[m->tag] = m->size;
                if (m->size > maxsrc[m->src]) maxsrc[m->src] = m->size;
            }
        int npart_tag[NTAG] = {0}, *npart_src = xmalloc(sizeof(int) * np), nfull = 0;
        memset(npart_src, 0, sizeof(int) * np);
        for (int j = 0; j < nin; j++) {
            struct msg *m = &all[in[j]];
            if (kind[j] == 1) { if (round & 1) npart_tag[m->tag]++; else npart_src[m->src]++; }
            if (kind[j] == 2) nfull++;
        }
        /* 3. Post receives: exact, then partial, then full wildcards. */
        int nr = 0;
        size_t *rsz = xmalloc(sizeof(size_t) * (nin + 1));
        int *rsrc = xmalloc(sizeof(int) * (nin + 1)), *rtag = xmalloc(sizeof(int) * (nin + 1));
        for (int key = 0; key < np * NTAG; key++)
            for (int k = 0; k < cexact[key]; k++) {
                rsz[nr] = all[lst[key][k]].size; rsrc[nr] = key / NTAG; rtag[nr] = key % NTAG; nr++;
            }
        nexact += nr;
        if (round & 1) {
            for (int t = 0; t < NTAG; t++)
                for (int k = 0; k < npart_tag[t]; k++) { rsz[nr] = maxtag[t]; rsrc[nr] = MPI_ANY_SOURCE; rtag[nr] = t; nr++; }
        } else {
            for (int s = 0; s < np; s++)
                for (int k = 0; k < npart_src[s]; k++) { rsz[nr] = maxsrc[s]; rsrc[nr] = s; rtag[nr] = MPI_ANY_TAG; nr++; }
        }
        npart += nr - nexact;
        for (int k = 0; k < nfull; k++) { rsz[nr] = maxrest; rsrc[nr] = MPI_ANY_SOURCE; rtag[nr] = MPI_ANY_TAG; nr++; }
        nwild += nfull;
        CHECK(nr == nin, "internal: %d receives for %d messages", nr, nin);
        roff[0] = 0;
        for (int j = 0; j < nr; j++) roff[j + 1] = roff[j] + rsz[j];
        uint8_t *rb = xmalloc(roff[nr]);
        memset(rb, 0xC3, roff[nr]);
        for (int j = 0; j < nr; j++)
            MPI_CHECK(MPI_Irecv(rb + roff[j], (int)rsz[j], MPI_BYTE, rsrc[j], rtag[j], MPI_COMM_WORLD, &rq[j]));

        /* 4. Send my K messages in order. */
        size_t soff = 0;
        for (int k = 0; k < K; k++) soff += all[g_rank * K + k].size;
        uint8_t *sb = xmalloc(soff);
        soff = 0;
        for (int k = 0; k < K; k++) {
            struct msg *m = &all[g_rank * K + k];
            pat_fill(sb + soff, m->size, make_seed(seed + round, m->src, m->dst, m->k));
            MPI_CHECK(MPI_Isend(sb + soff, (int)m->size, MPI_BYTE, m->dst, m->tag, MPI_COMM_WORLD, &rq[nr + k]));
            soff += m->size;
        }
        MPI_CHECK(MPI_Waitall(nr + K, rq, st));
        /* 5. Verify in posting order. */
        for (int j = 0; j < nr; j++) {
            int s = st[j].MPI_SOURCE, t = st[j].MPI_TAG;
            CHECK(s >= 0 && s < np && t >= 0 && t < NTAG, "round %d recv %d: bad status source %d tag %d", round, j, s, t);
            CHECK(rsrc[j] == MPI_ANY_SOURCE || rsrc[j] == s, "round %d recv %d: source %d for a receive on %d", round, j, s, rsrc[j]);
            CHECK(rtag[j] == MPI_ANY_TAG || rtag[j] == t, "round %d recv %d: tag %d for a receive on %d", round, j, t, rtag[j]);
            int key = s * NTAG + t;
            CHECK(nextk[key] < nst[key], "round %d: more messages from %d tag %d than sent (%d)", round, s, t, nst[key]);
            struct msg *m = &all[lst[key][nextk[key]++]];
            char what[160];
            snprintf(what, sizeof what, "round %d recv %d (from %d tag %d, its msg %d, size %zu)", round, j, s, t, m->k, m->size);
            check_status(&st[j], s, t, (long)m->size, what);
            pat_verify(rb + roff[j], m->size, make_seed(seed + round, m->src, m->dst, m->k), what);
            nmsgs++; nbytes += m->size;
        }
        for (int key = 0; key < np * NTAG; key++)
            CHECK(nextk[key] == nst[key], "round %d: got %d of %d messages from %d tag %d", round, nextk[key], nst[key], key / NTAG, key % NTAG);
        free(rb); free(sb); free(rsz); free(rsrc); free(rtag); free(maxsrc); free(npart_src);
        MPI_Barrier(MPI_COMM_WORLD);
    }
    long long tot[4] = { nmsgs, nbytes, nexact, nwild }, sum[4];
    MPI_Allreduce(tot, sum, 4, MPI_LONG_LONG, MPI_SUM, MPI_COMM_WORLD);
    if (g_rank == 0)
        printf("stress: %d ranks, %d rounds: %lld messages, %lld bytes verified (%lld exact, %lld full-wildcard receives) in %.2f s\n",
               np, rounds, sum[0], sum[1], sum[2], sum[3], MPI_Wtime() - t0);
    (void)npart;
    test_pass();
    return 0;
}
