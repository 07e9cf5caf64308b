/* Generic fid ops, the fabric and the domain. */
#include <stdlib.h>
#include <string.h>
#include "srd_shim.h"

int srd_shim_enosys_ops_open(struct fid *fid, const char *name, uint64_t flags, void **ops, void *context)
{
	return -FI_ENOSYS;
}

int srd_shim_enosys_tostr(const struct fid *fid, char *buf, size_t len)
{
	return -FI_ENOSYS;
}

int srd_shim_enosys_ops_set(struct fid *fid, const char *name, uint64_t flags, void *ops, void *context)
{
	return -FI_ENOSYS;
}

int srd_shim_close(struct fid *fid)
{
	void *rs = srd_shim_rs_of(fid, 0);
	int ret;

	if (!rs)
		return -FI_EINVAL;
	ret = srd_rs_close(rs, fid->fclass);
	if (ret == 0)
		srd_shim_free(fid);
	return ret;
}

int srd_shim_bind(struct fid *fid, struct fid *bfid, uint64_t flags)
{
	void *rs = srd_shim_rs_of(fid, 0);

	if (!rs)
		return -FI_EINVAL;
	return srd_rs_bind(rs, fid->fclass, bfid, flags);
}

int srd_shim_control(struct fid *fid, int command, void *arg)
{
	void *rs = srd_shim_rs_of(fid, 0);

	if (!rs)
		return -FI_EINVAL;
	return srd_rs_control(rs, fid->fclass, command, arg);
}

/* One fi_ops per class so that srd_shim_rs_of can tell our fids from others'. */
#define SRD_FID_OPS(name) \
	static struct fi_ops name = { \
		.size = sizeof(struct fi_ops), \
		.close = srd_shim_close, \
		.bind = srd_shim_bind, \
		.control = srd_shim_control, \
		.ops_open = srd_shim_enosys_ops_open, \
		.tostr = srd_shim_enosys_tostr, \
		.ops_set = srd_shim_enosys_ops_set, \
	}

SRD_FID_OPS(srd_fabric_fi_ops);
SRD_FID_OPS(srd_domain_fi_ops);
SRD_FID_OPS(srd_av_fi_ops);
SRD_FID_OPS(srd_cq_fi_ops);
SRD_FID_OPS(srd_cntr_fi_ops);
SRD_FID_OPS(srd_mr_fi_ops);
SRD_FID_OPS(srd_ep_fi_ops);
SRD_FID_OPS(srd_eq_fi_ops);
SRD_FID_OPS(srd_wait_fi_ops);
SRD_FID_OPS(srd_poll_fi_ops);

/* ---- fabric ---- */

static int srd_fabric_domain(struct fid_fabric *fabric, struct fi_info *info,
			     struct fid_domain **dom, void *context)
{
	void *rs = srd_shim_rs_of(&fabric->fid, FI_CLASS_FABRIC);

	if (!rs)
		return -FI_EINVAL;
	return srd_rs_domain_open(rs, info, dom, context);
}

static int srd_fabric_domain2(struct fid_fabric *fabric, struct fi_info *info,
			      struct fid_domain **dom, uint64_t flags, void *context)
{
	if (flags)
		return -FI_EINVAL;
	return srd_fabric_domain(fabric, info, dom, context);
}

static int srd_fabric_passive_ep(struct fid_fabric *fabric, struct fi_info *info,
				 struct fid_pep **pep, void *context)
{
	return -FI_ENOSYS;
}

static int srd_fabric_eq_open(struct fid_fabric *fabric, struct fi_eq_attr *attr,
			      struct fid_eq **eq, void *context)
{
	void *rs = srd_shim_rs_of(&fabric->fid, FI_CLASS_FABRIC);

	return rs ? srd_rs_eq_open(rs, attr, eq, context) : -FI_EINVAL;
}

static int srd_fabric_wait_open(struct fid_fabric *fabric, struct fi_wait_attr *attr,
				struct fid_wait **waitset)
{
	void *rs = srd_shim_rs_of(&fabric->fid, FI_CLASS_FABRIC);

	return rs ? srd_rs_wait_open(rs, attr, waitset) : -FI_EINVAL;
}

static int srd_fabric_trywait(struct fid_fabric *fabric, struct fid **fids, int count)
{
	void *rs = srd_shim_rs_of(&fabric->fid, FI_CLASS_FABRIC);

	return rs ? srd_rs_trywait(fids, count) : -FI_EINVAL;
}

static struct fi_ops_fabric srd_fabric_ops = {
	.size = sizeof(struct fi_ops_fabric),
	.domain = srd_fabric_domain,
	.passive_ep = srd_fabric_passive_ep,
	.eq_open = srd_fabric_eq_open,
	.wait_open = srd_fabric_wait_open,
	.trywait = srd_fabric_trywait,
	.domain2 = srd_fabric_domain2,
};

struct fid_fabric *srd_shim_new_fabric(void *rs, void *context, uint32_t api_version)
{
	struct srd_fabric *f = calloc(1, sizeof(*f));

	if (!f)
		return NULL;
	f->fid.fid.fclass = FI_CLASS_FABRIC;
	f->fid.fid.context = context;
	f->fid.fid.ops = &srd_fabric_fi_ops;
	f->fid.ops = &srd_fabric_ops;
	f->fid.api_version = api_version;
	f->rs = rs;
	return &f->fid;
}

/* ---- domain ---- */

#define DOMAIN_RS(d) srd_shim_rs_of(&(d)->fid, FI_CLASS_DOMAIN)

static int srd_domain_av_open(struct fid_domain *d, struct fi_av_attr *attr,
			      struct fid_av **av, void *context)
{
	void *rs = DOMAIN_RS(d);
	return rs ? srd_rs_av_open(rs, attr, av, context) : -FI_EINVAL;
}

static int srd_domain_cq_open(struct fid_domain *d, struct fi_cq_attr *attr,
			      struct fid_cq **cq, void *context)
{
	void *rs = DOMAIN_RS(d);
	return rs ? srd_rs_cq_open(rs, attr, cq, context) : -FI_EINVAL;
}

static int srd_domain_endpoint(struct fid_domain *d, struct fi_info *info,
			       struct fid_ep **ep, void *context)
{
	void *rs = DOMAIN_RS(d);
	return rs ? srd_rs_endpoint(rs, info, ep, context) : -FI_EINVAL;
}

static int srd_domain_endpoint2(struct fid_domain *d, struct fi_info *info,
				struct fid_ep **ep, uint64_t flags, void *context)
{
	if (flags)
		return -FI_EINVAL;
	return srd_domain_endpoint(d, info, ep, context);
}

static int srd_domain_scalable_ep(struct fid_domain *d, struct fi_info *info,
				  struct fid_ep **sep, void *context)
{
	return -FI_ENOSYS;
}

static int srd_domain_cntr_open(struct fid_domain *d, struct fi_cntr_attr *attr,
				struct fid_cntr **cntr, void *context)
{
	void *rs = DOMAIN_RS(d);
	return rs ? srd_rs_cntr_open(rs, attr, cntr, context) : -FI_EINVAL;
}

static int srd_domain_poll_open(struct fid_domain *d, struct fi_poll_attr *attr,
				struct fid_poll **pollset)
{
	void *rs = DOMAIN_RS(d);
	return rs ? srd_rs_poll_open(rs, attr, pollset) : -FI_EINVAL;
}

static int srd_domain_stx_ctx(struct fid_domain *d, struct fi_tx_attr *attr,
			      struct fid_stx **stx, void *context)
{
	return -FI_ENOSYS;
}

static int srd_domain_srx_ctx(struct fid_domain *d, struct fi_rx_attr *attr,
			      struct fid_ep **rx_ep, void *context)
{
	return -FI_ENOSYS;
}

static int srd_domain_query_atomic(struct fid_domain *d, enum fi_datatype datatype,
				   enum fi_op op, struct fi_atomic_attr *attr, uint64_t flags)
{
	void *rs = DOMAIN_RS(d);
	return rs ? srd_rs_query_atomic(rs, datatype, op, attr, flags) : -FI_EINVAL;
}

static int srd_domain_query_collective(struct fid_domain *d, enum fi_collective_op coll,
				       struct fi_collective_attr *attr, uint64_t flags)
{
	return -FI_ENOSYS;
}

static struct fi_ops_domain srd_domain_ops = {
	.size = sizeof(struct fi_ops_domain),
	.av_open = srd_domain_av_open,
	.cq_open = srd_domain_cq_open,
	.endpoint = srd_domain_endpoint,
	.scalable_ep = srd_domain_scalable_ep,
	.cntr_open = srd_domain_cntr_open,
	.poll_open = srd_domain_poll_open,
	.stx_ctx = srd_domain_stx_ctx,
	.srx_ctx = srd_domain_srx_ctx,
	.query_atomic = srd_domain_query_atomic,
	.query_collective = srd_domain_query_collective,
	.endpoint2 = srd_domain_endpoint2,
};

static int srd_mr_reg(struct fid *fid, const void *buf, size_t len, uint64_t access,
		      uint64_t offset, uint64_t requested_key, uint64_t flags,
		      struct fid_mr **mr, void *context)
{
	void *rs = srd_shim_rs_of(fid, FI_CLASS_DOMAIN);
	struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };

	return rs ? srd_rs_mr_reg(rs, &iov, 1, access, offset, requested_key, flags, mr, context)
		  : -FI_EINVAL;
}

static int srd_mr_regv(struct fid *fid, const struct iovec *iov, size_t count,
		       uint64_t access, uint64_t offset, uint64_t requested_key,
		       uint64_t flags, struct fid_mr **mr, void *context)
{
	void *rs = srd_shim_rs_of(fid, FI_CLASS_DOMAIN);

	return rs ? srd_rs_mr_reg(rs, iov, count, access, offset, requested_key, flags, mr, context)
		  : -FI_EINVAL;
}

static int srd_mr_regattr(struct fid *fid, const struct fi_mr_attr *attr, uint64_t flags,
			  struct fid_mr **mr)
{
	void *rs = srd_shim_rs_of(fid, FI_CLASS_DOMAIN);

	return rs ? srd_rs_mr_regattr(rs, attr, flags, mr) : -FI_EINVAL;
}

static struct fi_ops_mr srd_domain_mr_ops = {
	.size = sizeof(struct fi_ops_mr),
	.reg = srd_mr_reg,
	.regv = srd_mr_regv,
	.regattr = srd_mr_regattr,
};

struct fid_domain *srd_shim_new_domain(void *rs, void *context)
{
	struct srd_domain *d = calloc(1, sizeof(*d));

	if (!d)
		return NULL;
	d->fid.fid.fclass = FI_CLASS_DOMAIN;
	d->fid.fid.context = context;
	d->fid.fid.ops = &srd_domain_fi_ops;
	d->fid.ops = &srd_domain_ops;
	d->fid.mr = &srd_domain_mr_ops;
	d->rs = rs;
	return &d->fid;
}

/* ---- wait sets and poll sets ---- */

static int srd_wait_wait(struct fid_wait *waitset, int timeout)
{
	void *rs = srd_shim_rs_of(&waitset->fid, FI_CLASS_WAIT);
	return rs ? srd_rs_wait_wait(rs, timeout) : -FI_EINVAL;
}

static struct fi_ops_wait srd_wait_ops = {
	.size = sizeof(struct fi_ops_wait),
	.wait = srd_wait_wait,
};

struct fid_wait *srd_shim_new_wait(void *rs)
{
	struct srd_wait *w = calloc(1, sizeof(*w));

	if (!w)
		return NULL;
	w->fid.fid.fclass = FI_CLASS_WAIT;
	w->fid.fid.ops = &srd_wait_fi_ops;
	w->fid.ops = &srd_wait_ops;
	w->rs = rs;
	return &w->fid;
}

#define POLL_RS(p) srd_shim_rs_of(&(p)->fid, FI_CLASS_POLL)

static int srd_poll_poll(struct fid_poll *pollset, void **context, int count)
{
	void *rs = POLL_RS(pollset);
	return rs ? srd_rs_poll_poll(rs, context, count) : -FI_EINVAL;
}

static int srd_poll_add(struct fid_poll *pollset, struct fid *event_fid, uint64_t flags)
{
	void *rs = POLL_RS(pollset);
	return rs ? srd_rs_poll_add(rs, event_fid, flags) : -FI_EINVAL;
}

static int srd_poll_del(struct fid_poll *pollset, struct fid *event_fid, uint64_t flags)
{
	void *rs = POLL_RS(pollset);
	return rs ? srd_rs_poll_del(rs, event_fid, flags) : -FI_EINVAL;
}

static struct fi_ops_poll srd_poll_ops = {
	.size = sizeof(struct fi_ops_poll),
	.poll = srd_poll_poll,
	.poll_add = srd_poll_add,
	.poll_del = srd_poll_del,
};

struct fid_poll *srd_shim_new_poll(void *rs)
{
	struct srd_poll *p = calloc(1, sizeof(*p));

	if (!p)
		return NULL;
	p->fid.fid.fclass = FI_CLASS_POLL;
	p->fid.fid.ops = &srd_poll_fi_ops;
	p->fid.ops = &srd_poll_ops;
	p->rs = rs;
	return &p->fid;
}

/* ---- identification of our fids ---- */

void *srd_shim_rs_of(const struct fid *fid, size_t fclass)
{
	if (!fid)
		return NULL;
	if (fclass && fid->fclass != fclass)
		return NULL;
	switch (fid->fclass) {
	case FI_CLASS_FABRIC:
		return fid->ops == &srd_fabric_fi_ops ? ((struct srd_fabric *)fid)->rs : NULL;
	case FI_CLASS_DOMAIN:
		return fid->ops == &srd_domain_fi_ops ? ((struct srd_domain *)fid)->rs : NULL;
	case FI_CLASS_AV:
		return fid->ops == &srd_av_fi_ops ? ((struct srd_av *)fid)->rs : NULL;
	case FI_CLASS_CQ:
		return fid->ops == &srd_cq_fi_ops ? ((struct srd_cq *)fid)->rs : NULL;
	case FI_CLASS_CNTR:
		return fid->ops == &srd_cntr_fi_ops ? ((struct srd_cntr *)fid)->rs : NULL;
	case FI_CLASS_MR:
		return fid->ops == &srd_mr_fi_ops ? ((struct srd_mr *)fid)->rs : NULL;
	case FI_CLASS_EP:
		return fid->ops == &srd_ep_fi_ops ? ((struct srd_ep *)fid)->rs : NULL;
	case FI_CLASS_EQ:
		return fid->ops == &srd_eq_fi_ops ? ((struct srd_eq *)fid)->rs : NULL;
	case FI_CLASS_WAIT:
		return fid->ops == &srd_wait_fi_ops ? ((struct srd_wait *)fid)->rs : NULL;
	case FI_CLASS_POLL:
		return fid->ops == &srd_poll_fi_ops ? ((struct srd_poll *)fid)->rs : NULL;
	default:
		return NULL;
	}
}

void srd_shim_free(struct fid *fid)
{
	free(fid);
}

/* Accessors for the per-class fi_ops, used by the class files. */
struct fi_ops *srd_shim_fi_ops(size_t fclass)
{
	switch (fclass) {
	case FI_CLASS_AV: return &srd_av_fi_ops;
	case FI_CLASS_CQ: return &srd_cq_fi_ops;
	case FI_CLASS_CNTR: return &srd_cntr_fi_ops;
	case FI_CLASS_MR: return &srd_mr_fi_ops;
	case FI_CLASS_EP: return &srd_ep_fi_ops;
	case FI_CLASS_EQ: return &srd_eq_fi_ops;
	default: return NULL;
	}
}
