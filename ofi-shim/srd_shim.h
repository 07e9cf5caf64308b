/*
 * srd-fabric C shim: the libfabric-facing layouts of our objects and their
 * ops tables. Every op forwards to a Rust function `srd_rs_*` (src/ffi/),
 * which checks arguments, catches panics and returns 0 or -FI_E*.
 *
 * Each object is a container holding the libfabric fid struct first (so the
 * core and applications can cast) and `rs`, the Rust object it stands for.
 */
#ifndef SRD_SHIM_H
#define SRD_SHIM_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>
#include <rdma/fabric.h>
#include <rdma/fi_atomic.h>
#include <rdma/fi_cm.h>
#include <rdma/fi_domain.h>
#include <rdma/fi_endpoint.h>
#include <rdma/fi_eq.h>
#include <rdma/fi_errno.h>
#include <rdma/fi_rma.h>
#include <rdma/fi_tagged.h>
#include <rdma/providers/fi_prov.h>

#define SRD_HIDDEN __attribute__((visibility("hidden")))

struct srd_fabric { struct fid_fabric fid; void *rs; };
struct srd_domain { struct fid_domain fid; void *rs; };
struct srd_av     { struct fid_av fid;     void *rs; };
struct srd_cq     { struct fid_cq fid;     void *rs; };
struct srd_cntr   { struct fid_cntr fid;   void *rs; };
struct srd_mr     { struct fid_mr fid;     void *rs; };
struct srd_ep     { struct fid_ep fid;     void *rs; };
struct srd_eq     { struct fid_eq fid;     void *rs; };
struct srd_wait   { struct fid_wait fid;   void *rs; };
struct srd_poll   { struct fid_poll fid;   void *rs; };

SRD_HIDDEN struct fi_provider *srd_shim_provider(void);

/* The Rust object behind one of our fids, or NULL if `fid` is not ours or not
 * of `fclass` (0 = any class). */
SRD_HIDDEN void *srd_shim_rs_of(const struct fid *fid, size_t fclass);

/* Constructors: allocate a container, wire its ops, store `rs`. Return NULL
 * when out of memory. `context` is the application's. */
SRD_HIDDEN struct fid_fabric *srd_shim_new_fabric(void *rs, void *context, uint32_t api_version);
SRD_HIDDEN struct fid_domain *srd_shim_new_domain(void *rs, void *context);
SRD_HIDDEN struct fid_av *srd_shim_new_av(void *rs, void *context);
SRD_HIDDEN struct fid_cq *srd_shim_new_cq(void *rs, void *context);
SRD_HIDDEN struct fid_cntr *srd_shim_new_cntr(void *rs, void *context);
SRD_HIDDEN struct fid_mr *srd_shim_new_mr(void *rs, void *context, void *desc, uint64_t key);
SRD_HIDDEN struct fid_ep *srd_shim_new_ep(void *rs, void *context, int ep_type, uint64_t caps);
SRD_HIDDEN struct fid_eq *srd_shim_new_eq(void *rs, void *context);
SRD_HIDDEN struct fid_wait *srd_shim_new_wait(void *rs);
SRD_HIDDEN struct fid_poll *srd_shim_new_poll(void *rs);
SRD_HIDDEN void srd_shim_free(struct fid *fid);

/* Logging through the core (FI_LOG). */
SRD_HIDDEN int srd_shim_log_enabled(int level, int subsys);
SRD_HIDDEN void srd_shim_log(int level, int subsys, const char *func, int line, const char *msg);

/* ---- Rust entry points (src/ffi) ---- */
int srd_rs_getinfo(uint32_t version, const char *node, const char *service,
		   uint64_t flags, const struct fi_info *hints, struct fi_info **info);
int srd_rs_fabric(struct fi_fabric_attr *attr, struct fid_fabric **fabric, void *context);
void srd_rs_cleanup(void);

int srd_rs_close(void *rs, size_t fclass);
int srd_rs_bind(void *rs, size_t fclass, struct fid *bfid, uint64_t flags);
int srd_rs_control(void *rs, size_t fclass, int command, void *arg);

int srd_rs_domain_open(void *fabric, struct fi_info *info, struct fid_domain **dom, void *context);

#endif

/* Event queue */
int srd_rs_eq_open(void *fabric, struct fi_eq_attr *attr, struct fid_eq **eq, void *context);
ssize_t srd_rs_eq_read(void *eq, uint32_t *event, void *buf, size_t len, uint64_t flags,
		       int timeout, int blocking);
ssize_t srd_rs_eq_readerr(void *eq, struct fi_eq_err_entry *buf, uint64_t flags);
ssize_t srd_rs_eq_write(void *eq, uint32_t event, const void *buf, size_t len, uint64_t flags);

/* Wait sets, poll sets, fi_trywait (src/ffi/wait.rs) */
int srd_rs_wait_open(void *fabric, struct fi_wait_attr *attr, struct fid_wait **waitset);
int srd_rs_wait_wait(void *ws, int timeout);
int srd_rs_poll_open(void *domain, struct fi_poll_attr *attr, struct fid_poll **pollset);
int srd_rs_poll_add(void *ps, struct fid *fid, uint64_t flags);
int srd_rs_poll_del(void *ps, struct fid *fid, uint64_t flags);
int srd_rs_poll_poll(void *ps, void **context, int count);
int srd_rs_trywait(struct fid **fids, int count);

/* Domain-level constructors (Rust decides what is built; -FI_ENOSYS otherwise). */
int srd_rs_av_open(void *domain, struct fi_av_attr *attr, struct fid_av **av, void *context);
int srd_rs_cq_open(void *domain, struct fi_cq_attr *attr, struct fid_cq **cq, void *context);
int srd_rs_cntr_open(void *domain, struct fi_cntr_attr *attr, struct fid_cntr **cntr, void *context);
int srd_rs_endpoint(void *domain, struct fi_info *info, struct fid_ep **ep, void *context);
int srd_rs_query_atomic(void *domain, enum fi_datatype datatype, enum fi_op op,
			struct fi_atomic_attr *attr, uint64_t flags);
int srd_rs_mr_reg(void *domain, const struct iovec *iov, size_t count, uint64_t access,
		  uint64_t offset, uint64_t requested_key, uint64_t flags,
		  struct fid_mr **mr, void *context);
int srd_rs_mr_regattr(void *domain, const struct fi_mr_attr *attr, uint64_t flags, struct fid_mr **mr);

/* AV */
int srd_rs_av_insert(void *av, const void *addr, size_t count, fi_addr_t *fi_addr,
		     uint64_t flags, void *context);
int srd_rs_av_remove(void *av, fi_addr_t *fi_addr, size_t count, uint64_t flags);
int srd_rs_av_lookup(void *av, fi_addr_t fi_addr, void *addr, size_t *addrlen);
const char *srd_rs_av_straddr(void *av, const void *addr, char *buf, size_t *len);

/* CQ: read, readfrom, sread and sreadfrom in one (blocking != 0 waits). */
ssize_t srd_rs_cq_read(void *cq, void *buf, size_t count, fi_addr_t *src_addr,
		       const void *cond, int timeout, int blocking);
ssize_t srd_rs_cq_readerr(void *cq, struct fi_cq_err_entry *buf, uint64_t flags);
int srd_rs_cq_signal(void *cq);
const char *srd_rs_cq_strerror(void *cq, int prov_errno, const void *err_data, char *buf, size_t len);

/* Counter */
uint64_t srd_rs_cntr_read(void *cntr, int err);
int srd_rs_cntr_update(void *cntr, uint64_t value, int err, int set);
int srd_rs_cntr_wait(void *cntr, uint64_t threshold, int timeout);

/* Endpoint. `mode` of a data call: */
#define SRD_OP_DEFAULT 0   /* fi_send/fi_recv...: the endpoint's op_flags apply */
#define SRD_OP_MSG     1   /* fi_*msg: the flags given are all that apply */
#define SRD_OP_INJECT  2   /* fi_inject*: FI_INJECT, no completion */
ssize_t srd_rs_ep_send(void *ep, const struct iovec *iov, void **desc, size_t count,
		       fi_addr_t addr, uint64_t tag, uint64_t data, void *context,
		       uint64_t flags, int tagged, int mode);
ssize_t srd_rs_ep_recv(void *ep, const struct iovec *iov, void **desc, size_t count,
		       fi_addr_t addr, uint64_t tag, uint64_t ignore, void *context,
		       uint64_t flags, int tagged, int mode);
/* RMA: one entry for read and write forms; `rma_iov` has rma_count ranges. */
ssize_t srd_rs_ep_rma(void *ep, int is_read, const struct iovec *iov, void **desc, size_t count,
		      fi_addr_t addr, const struct fi_rma_iov *rma_iov, size_t rma_count,
		      uint64_t data, void *context, uint64_t flags, int mode);
/* Atomics: kind 0 = write, 1 = fetch (readwrite), 2 = compare. */
ssize_t srd_rs_ep_atomic(void *ep, int kind, const struct fi_ioc *iov, size_t count,
			 const struct fi_ioc *comparev, size_t compare_count,
			 struct fi_ioc *resultv, size_t result_count, fi_addr_t addr,
			 const struct fi_rma_ioc *rma_iov, size_t rma_count,
			 enum fi_datatype datatype, enum fi_op op, uint64_t data,
			 void *context, uint64_t flags, int mode);
int srd_rs_ep_atomicvalid(void *ep, int kind, enum fi_datatype datatype, enum fi_op op, size_t *count);
ssize_t srd_rs_ep_cancel(void *ep, void *context);
int srd_rs_ep_getopt(void *ep, int level, int optname, void *optval, size_t *optlen);
int srd_rs_ep_setopt(void *ep, int level, int optname, const void *optval, size_t optlen);
ssize_t srd_rs_ep_size_left(void *ep, int tx);
int srd_rs_ep_getname(void *ep, void *addr, size_t *addrlen);

/* Shared "not supported" ops for table slots we do not implement. */
SRD_HIDDEN int srd_shim_enosys_ops_open(struct fid *fid, const char *name, uint64_t flags, void **ops, void *context);
SRD_HIDDEN int srd_shim_enosys_tostr(const struct fid *fid, char *buf, size_t len);
SRD_HIDDEN int srd_shim_enosys_ops_set(struct fid *fid, const char *name, uint64_t flags, void *ops, void *context);
SRD_HIDDEN int srd_shim_close(struct fid *fid);
SRD_HIDDEN int srd_shim_bind(struct fid *fid, struct fid *bfid, uint64_t flags);
SRD_HIDDEN int srd_shim_control(struct fid *fid, int command, void *arg);
SRD_HIDDEN struct fi_ops *srd_shim_fi_ops(size_t fclass);
