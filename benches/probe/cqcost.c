/* CPU cost of the same-host small-message path, in one thread, our own code.
 *
 *   cqcost [-n messages] [-e empty_reads] [-s size] [-c]
 * Opens one RDM endpoint (FI_PROVIDER / FI_PROVIDER_PATH pick the
 * provider), inserts its own address and then (1) reads an empty CQ
 * `empty_reads` times, (2) sends `messages` tagged messages of `size`
 * bytes to itself (fi_tinject, one posted fi_trecv each), reading the CQ
 * until each receive completes; with -c the sends are fi_tsend and their
 * completions are read too (as MPI's Isend). Prints the thread CPU time per empty read
 * and per message (send + receive + completion), the best of 5 passes:
 * a figure of the path's own cost that the load of the machine barely
 * changes (unlike latency between two processes).
 *
 *   cc -O2 -o cqcost benches/probe/cqcost.c -lfabric */
#include <rdma/fabric.h>
#include <rdma/fi_cm.h>
#include <rdma/fi_domain.h>
#include <rdma/fi_endpoint.h>
#include <rdma/fi_tagged.h>
#include <rdma/fi_errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CK(x) do { int _r = (int)(x); if (_r < 0) { fprintf(stderr, "%s: %s\n", #x, fi_strerror(-_r)); exit(1); } } while (0)

static double cpu_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return t.tv_sec * 1e9 + t.tv_nsec;
}

int main(int argc, char **argv)
{
    long n = 200000, empty = 2000000;
    size_t size = 8;
    int with_send_cq = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-n") && i + 1 < argc) n = atol(argv[++i]);
        else if (!strcmp(argv[i], "-e") && i + 1 < argc) empty = atol(argv[++i]);
        else if (!strcmp(argv[i], "-s") && i + 1 < argc) size = strtoul(argv[++i], NULL, 0);
        else if (!strcmp(argv[i], "-c")) with_send_cq = 1;
    }
    struct fi_info *hints = fi_allocinfo(), *info;
    hints->ep_attr->type = FI_EP_RDM;
    hints->caps = FI_TAGGED;
    hints->mode = FI_CONTEXT;
    hints->domain_attr->mr_mode = 0;
    hints->domain_attr->threading = FI_THREAD_DOMAIN;
    CK(fi_getinfo(FI_VERSION(1, 5), NULL, NULL, 0, hints, &info));
    struct fid_fabric *fab;
    struct fid_domain *dom;
    struct fid_ep *ep;
    struct fid_cq *cq;
    struct fid_av *av;
    CK(fi_fabric(info->fabric_attr, &fab, NULL));
    CK(fi_domain(fab, info, &dom, NULL));
    struct fi_cq_attr cqa = { .format = FI_CQ_FORMAT_TAGGED, .size = 1024 };
    struct fi_av_attr ava = { .type = FI_AV_MAP };
    CK(fi_cq_open(dom, &cqa, &cq, NULL));
    CK(fi_av_open(dom, &ava, &av, NULL));
    CK(fi_endpoint(dom, info, &ep, NULL));
    CK(fi_ep_bind(ep, &cq->fid, FI_TRANSMIT | FI_RECV));
    CK(fi_ep_bind(ep, &av->fid, 0));
    CK(fi_enable(ep));
    char name[256];
    size_t len = sizeof name;
    CK(fi_getname(&ep->fid, name, &len));
    fi_addr_t self;
    if (fi_av_insert(av, name, 1, &self, 0, NULL) != 1) { fprintf(stderr, "av_insert\n"); return 1; }
    char *sbuf = calloc(1, size + 1), *rbuf = calloc(1, size + 1);
    struct fi_cq_tagged_entry e;
    struct fi_context ctx, sctx;
    double best_empty = 1e30, best_msg = 1e30;
    for (int pass = 0; pass < 5; pass++) {
        double t0 = cpu_ns();
        for (long i = 0; i < empty; i++)
            if (fi_cq_read(cq, &e, 1) != -FI_EAGAIN) { fprintf(stderr, "unexpected entry\n"); return 1; }
        double t1 = cpu_ns();
        for (long i = 0; i < n; i++) {
            sbuf[0] = (char)i;
            CK(fi_trecv(ep, rbuf, size, NULL, self, 7, 0, &ctx));
            ssize_t r;
            if (with_send_cq) {
                CK(fi_tsend(ep, sbuf, size, NULL, self, 7, &sctx));
                int got_send = 0, got_recv = 0;
                while (!got_send || !got_recv) {
                    while ((r = fi_cq_read(cq, &e, 1)) == -FI_EAGAIN)
                        ;
                    if (r == 1 && e.op_context == &sctx && !got_send) got_send = 1;
                    else if (r == 1 && e.op_context == &ctx && !got_recv) got_recv = 1;
                    else { fprintf(stderr, "bad completion %zd\n", r); return 1; }
                }
                if (size && rbuf[0] != (char)i) { fprintf(stderr, "bad data\n"); return 1; }
                continue;
            }
            while ((r = fi_tinject(ep, sbuf, size, self, 7)) == -FI_EAGAIN)
                fi_cq_read(cq, &e, 0);
            CK(r);
            while ((r = fi_cq_read(cq, &e, 1)) == -FI_EAGAIN)
                ;
            if (r != 1 || e.op_context != &ctx || (size && rbuf[0] != (char)i)) {
                fprintf(stderr, "bad completion %zd\n", r);
                return 1;
            }
        }
        double t2 = cpu_ns();
        if ((t1 - t0) / empty < best_empty) best_empty = (t1 - t0) / empty;
        if ((t2 - t1) / n < best_msg) best_msg = (t2 - t1) / n;
    }
    printf("empty_read_ns %.1f msg_ns %.1f size %zu provider %s\n", best_empty, best_msg, size,
           info->fabric_attr->prov_name);
    fi_close(&ep->fid);
    fi_close(&av->fid);
    fi_close(&cq->fid);
    fi_close(&dom->fid);
    fi_close(&fab->fid);
    fi_freeinfo(info);
    fi_freeinfo(hints);
    return 0;
}
