/* Address vector, completion queue, counter and memory region. */
#include <stdlib.h>
#include "srd_shim.h"

/* ---- AV ---- */

#define AV_RS(a) srd_shim_rs_of(&(a)->fid, FI_CLASS_AV)

static int srd_av_insert(struct fid_av *av, const void *addr, size_t count,
			 fi_addr_t *fi_addr, uint64_t flags, void *context)
{
	void *rs = AV_RS(av);
	return rs ? srd_rs_av_insert(rs, addr, count, fi_addr, flags, context) : -FI_EINVAL;
}

static int srd_av_insertsvc(struct fid_av *av, const char *node, const char *service,
			    fi_addr_t *fi_addr, uint64_t flags, void *context)
{
	return -FI_ENOSYS;
}

static int srd_av_insertsym(struct fid_av *av, const char *node, size_t nodecnt,
			    const char *service, size_t svccnt, fi_addr_t *fi_addr,
			    uint64_t flags, void *context)
{
	return -FI_ENOSYS;
}

static int srd_av_remove(struct fid_av *av, fi_addr_t *fi_addr, size_t count, uint64_t flags)
{
	void *rs = AV_RS(av);
	return rs ? srd_rs_av_remove(rs, fi_addr, count, flags) : -FI_EINVAL;
}

static int srd_av_lookup(struct fid_av *av, fi_addr_t fi_addr, void *addr, size_t *addrlen)
{
	void *rs = AV_RS(av);
	return rs ? srd_rs_av_lookup(rs, fi_addr, addr, addrlen) : -FI_EINVAL;
}

static const char *srd_av_straddr(struct fid_av *av, const void *addr, char *buf, size_t *len)
{
	void *rs = AV_RS(av);
	return rs ? srd_rs_av_straddr(rs, addr, buf, len) : NULL;
}

static int srd_av_set(struct fid_av *av, struct fi_av_set_attr *attr,
		      struct fid_av_set **av_set, void *context)
{
	return -FI_ENOSYS;
}

static struct fi_ops_av srd_av_ops = {
	.size = sizeof(struct fi_ops_av),
	.insert = srd_av_insert,
	.insertsvc = srd_av_insertsvc,
	.insertsym = srd_av_insertsym,
	.remove = srd_av_remove,
	.lookup = srd_av_lookup,
	.straddr = srd_av_straddr,
	.av_set = srd_av_set,
};

struct fid_av *srd_shim_new_av(void *rs, void *context)
{
	struct srd_av *a = calloc(1, sizeof(*a));

	if (!a)
		return NULL;
	a->fid.fid.fclass = FI_CLASS_AV;
	a->fid.fid.context = context;
	a->fid.fid.ops = srd_shim_fi_ops(FI_CLASS_AV);
	a->fid.ops = &srd_av_ops;
	a->rs = rs;
	return &a->fid;
}

/* ---- CQ ---- */

/* Reached only through an srd_cq's own tables (see EP_RS in ep.c). */
#define CQ_RS(c) ((c) ? ((struct srd_cq *)(c))->rs : NULL)

static ssize_t srd_cq_read(struct fid_cq *cq, void *buf, size_t count)
{
	void *rs = CQ_RS(cq);
	return rs ? srd_rs_cq_read(rs, buf, count, NULL, NULL, 0, 0) : -FI_EINVAL;
}

static ssize_t srd_cq_readfrom(struct fid_cq *cq, void *buf, size_t count, fi_addr_t *src_addr)
{
	void *rs = CQ_RS(cq);
	return rs ? srd_rs_cq_read(rs, buf, count, src_addr, NULL, 0, 0) : -FI_EINVAL;
}

static ssize_t srd_cq_readerr(struct fid_cq *cq, struct fi_cq_err_entry *buf, uint64_t flags)
{
	void *rs = CQ_RS(cq);
	return rs ? srd_rs_cq_readerr(rs, buf, flags) : -FI_EINVAL;
}

static ssize_t srd_cq_sread(struct fid_cq *cq, void *buf, size_t count, const void *cond, int timeout)
{
	void *rs = CQ_RS(cq);
	return rs ? srd_rs_cq_read(rs, buf, count, NULL, cond, timeout, 1) : -FI_EINVAL;
}

static ssize_t srd_cq_sreadfrom(struct fid_cq *cq, void *buf, size_t count, fi_addr_t *src_addr,
				const void *cond, int timeout)
{
	void *rs = CQ_RS(cq);
	return rs ? srd_rs_cq_read(rs, buf, count, src_addr, cond, timeout, 1) : -FI_EINVAL;
}

static int srd_cq_signal(struct fid_cq *cq)
{
	void *rs = CQ_RS(cq);
	return rs ? srd_rs_cq_signal(rs) : -FI_EINVAL;
}

static const char *srd_cq_strerror(struct fid_cq *cq, int prov_errno, const void *err_data,
				   char *buf, size_t len)
{
	void *rs = CQ_RS(cq);
	return rs ? srd_rs_cq_strerror(rs, prov_errno, err_data, buf, len) : NULL;
}

static struct fi_ops_cq srd_cq_ops = {
	.size = sizeof(struct fi_ops_cq),
	.read = srd_cq_read,
	.readfrom = srd_cq_readfrom,
	.readerr = srd_cq_readerr,
	.sread = srd_cq_sread,
	.sreadfrom = srd_cq_sreadfrom,
	.signal = srd_cq_signal,
	.strerror = srd_cq_strerror,
};

struct fid_cq *srd_shim_new_cq(void *rs, void *context)
{
	struct srd_cq *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->fid.fid.fclass = FI_CLASS_CQ;
	c->fid.fid.context = context;
	c->fid.fid.ops = srd_shim_fi_ops(FI_CLASS_CQ);
	c->fid.ops = &srd_cq_ops;
	c->rs = rs;
	return &c->fid;
}

/* ---- counter ---- */

#define CNTR_RS(c) srd_shim_rs_of(&(c)->fid, FI_CLASS_CNTR)

static uint64_t srd_cntr_read(struct fid_cntr *c)
{
	void *rs = CNTR_RS(c);
	return rs ? srd_rs_cntr_read(rs, 0) : 0;
}

static uint64_t srd_cntr_readerr(struct fid_cntr *c)
{
	void *rs = CNTR_RS(c);
	return rs ? srd_rs_cntr_read(rs, 1) : 0;
}

static int srd_cntr_add(struct fid_cntr *c, uint64_t value)
{
	void *rs = CNTR_RS(c);
	return rs ? srd_rs_cntr_update(rs, value, 0, 0) : -FI_EINVAL;
}

static int srd_cntr_set(struct fid_cntr *c, uint64_t value)
{
	void *rs = CNTR_RS(c);
	return rs ? srd_rs_cntr_update(rs, value, 0, 1) : -FI_EINVAL;
}

static int srd_cntr_adderr(struct fid_cntr *c, uint64_t value)
{
	void *rs = CNTR_RS(c);
	return rs ? srd_rs_cntr_update(rs, value, 1, 0) : -FI_EINVAL;
}

static int srd_cntr_seterr(struct fid_cntr *c, uint64_t value)
{
	void *rs = CNTR_RS(c);
	return rs ? srd_rs_cntr_update(rs, value, 1, 1) : -FI_EINVAL;
}

static int srd_cntr_wait(struct fid_cntr *c, uint64_t threshold, int timeout)
{
	void *rs = CNTR_RS(c);
	return rs ? srd_rs_cntr_wait(rs, threshold, timeout) : -FI_EINVAL;
}

static struct fi_ops_cntr srd_cntr_ops = {
	.size = sizeof(struct fi_ops_cntr),
	.read = srd_cntr_read,
	.readerr = srd_cntr_readerr,
	.add = srd_cntr_add,
	.set = srd_cntr_set,
	.wait = srd_cntr_wait,
	.adderr = srd_cntr_adderr,
	.seterr = srd_cntr_seterr,
};

struct fid_cntr *srd_shim_new_cntr(void *rs, void *context)
{
	struct srd_cntr *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->fid.fid.fclass = FI_CLASS_CNTR;
	c->fid.fid.context = context;
	c->fid.fid.ops = srd_shim_fi_ops(FI_CLASS_CNTR);
	c->fid.ops = &srd_cntr_ops;
	c->rs = rs;
	return &c->fid;
}

/* ---- MR ---- */

struct fid_mr *srd_shim_new_mr(void *rs, void *context, void *desc, uint64_t key)
{
	struct srd_mr *m = calloc(1, sizeof(*m));

	if (!m)
		return NULL;
	m->fid.fid.fclass = FI_CLASS_MR;
	m->fid.fid.context = context;
	m->fid.fid.ops = srd_shim_fi_ops(FI_CLASS_MR);
	m->fid.mem_desc = desc;
	m->fid.key = key;
	m->rs = rs;
	return &m->fid;
}

/* ---- EQ ---- */

#define EQ_RS(e) srd_shim_rs_of(&(e)->fid, FI_CLASS_EQ)

static ssize_t srd_eq_read(struct fid_eq *eq, uint32_t *event, void *buf, size_t len, uint64_t flags)
{
	void *rs = EQ_RS(eq);
	return rs ? srd_rs_eq_read(rs, event, buf, len, flags, 0, 0) : -FI_EINVAL;
}

static ssize_t srd_eq_readerr(struct fid_eq *eq, struct fi_eq_err_entry *buf, uint64_t flags)
{
	void *rs = EQ_RS(eq);
	return rs ? srd_rs_eq_readerr(rs, buf, flags) : -FI_EINVAL;
}

static ssize_t srd_eq_write(struct fid_eq *eq, uint32_t event, const void *buf, size_t len, uint64_t flags)
{
	void *rs = EQ_RS(eq);
	return rs ? srd_rs_eq_write(rs, event, buf, len, flags) : -FI_EINVAL;
}

static ssize_t srd_eq_sread(struct fid_eq *eq, uint32_t *event, void *buf, size_t len,
			    int timeout, uint64_t flags)
{
	void *rs = EQ_RS(eq);
	return rs ? srd_rs_eq_read(rs, event, buf, len, flags, timeout, 1) : -FI_EINVAL;
}

static const char *srd_eq_strerror(struct fid_eq *eq, int prov_errno, const void *err_data,
				   char *buf, size_t len)
{
	return srd_rs_cq_strerror(NULL, prov_errno, err_data, buf, len);
}

static struct fi_ops_eq srd_eq_ops = {
	.size = sizeof(struct fi_ops_eq),
	.read = srd_eq_read,
	.readerr = srd_eq_readerr,
	.write = srd_eq_write,
	.sread = srd_eq_sread,
	.strerror = srd_eq_strerror,
};

struct fid_eq *srd_shim_new_eq(void *rs, void *context)
{
	struct srd_eq *e = calloc(1, sizeof(*e));

	if (!e)
		return NULL;
	e->fid.fid.fclass = FI_CLASS_EQ;
	e->fid.fid.context = context;
	e->fid.fid.ops = srd_shim_fi_ops(FI_CLASS_EQ);
	e->fid.ops = &srd_eq_ops;
	e->rs = rs;
	return &e->fid;
}
