/* Endpoint: control, CM, msg, tagged, RMA and atomic ops. */
#include <stdlib.h>
#include "srd_shim.h"

/* The ops below are reached only through an srd_ep's own tables
 * (fi_tsend(ep, ...) is ep->tagged->send(ep, ...)), so `e` is one of ours:
 * its Rust object without srd_shim_rs_of's class and table checks, which
 * cost every data call a function call and a switch. */
#define EP_RS(e) ((e) ? ((struct srd_ep *)(e))->rs : NULL)

/* ---- control ---- */

static ssize_t srd_ep_cancel(fid_t fid, void *context)
{
	void *rs = srd_shim_rs_of(fid, FI_CLASS_EP);
	return rs ? srd_rs_ep_cancel(rs, context) : -FI_EINVAL;
}

static int srd_ep_getopt(fid_t fid, int level, int optname, void *optval, size_t *optlen)
{
	void *rs = srd_shim_rs_of(fid, FI_CLASS_EP);
	return rs ? srd_rs_ep_getopt(rs, level, optname, optval, optlen) : -FI_EINVAL;
}

static int srd_ep_setopt(fid_t fid, int level, int optname, const void *optval, size_t optlen)
{
	void *rs = srd_shim_rs_of(fid, FI_CLASS_EP);
	return rs ? srd_rs_ep_setopt(rs, level, optname, optval, optlen) : -FI_EINVAL;
}

static int srd_ep_tx_ctx(struct fid_ep *sep, int index, struct fi_tx_attr *attr,
			 struct fid_ep **tx_ep, void *context)
{
	return -FI_ENOSYS;
}

static int srd_ep_rx_ctx(struct fid_ep *sep, int index, struct fi_rx_attr *attr,
			 struct fid_ep **rx_ep, void *context)
{
	return -FI_ENOSYS;
}

static ssize_t srd_ep_rx_size_left(struct fid_ep *ep)
{
	void *rs = EP_RS(ep);
	return rs ? srd_rs_ep_size_left(rs, 0) : -FI_EINVAL;
}

static ssize_t srd_ep_tx_size_left(struct fid_ep *ep)
{
	void *rs = EP_RS(ep);
	return rs ? srd_rs_ep_size_left(rs, 1) : -FI_EINVAL;
}

static struct fi_ops_ep srd_ep_ops = {
	.size = sizeof(struct fi_ops_ep),
	.cancel = srd_ep_cancel,
	.getopt = srd_ep_getopt,
	.setopt = srd_ep_setopt,
	.tx_ctx = srd_ep_tx_ctx,
	.rx_ctx = srd_ep_rx_ctx,
	.rx_size_left = srd_ep_rx_size_left,
	.tx_size_left = srd_ep_tx_size_left,
};

/* ---- CM: connectionless endpoints only name themselves ---- */

static int srd_ep_setname(fid_t fid, void *addr, size_t addrlen) { return -FI_ENOSYS; }

static int srd_ep_getname(fid_t fid, void *addr, size_t *addrlen)
{
	void *rs = srd_shim_rs_of(fid, FI_CLASS_EP);
	return rs ? srd_rs_ep_getname(rs, addr, addrlen) : -FI_EINVAL;
}

static int srd_ep_getpeer(struct fid_ep *ep, void *addr, size_t *addrlen) { return -FI_ENOSYS; }
static int srd_ep_connect(struct fid_ep *ep, const void *addr, const void *param, size_t paramlen) { return -FI_ENOSYS; }
static int srd_ep_listen(struct fid_pep *pep) { return -FI_ENOSYS; }
static int srd_ep_accept(struct fid_ep *ep, const void *param, size_t paramlen) { return -FI_ENOSYS; }
static int srd_ep_reject(struct fid_pep *pep, fid_t handle, const void *param, size_t paramlen) { return -FI_ENOSYS; }
static int srd_ep_shutdown(struct fid_ep *ep, uint64_t flags) { return -FI_ENOSYS; }
static int srd_ep_join(struct fid_ep *ep, const void *addr, uint64_t flags, struct fid_mc **mc, void *context) { return -FI_ENOSYS; }

static struct fi_ops_cm srd_ep_cm_ops = {
	.size = sizeof(struct fi_ops_cm),
	.setname = srd_ep_setname,
	.getname = srd_ep_getname,
	.getpeer = srd_ep_getpeer,
	.connect = srd_ep_connect,
	.listen = srd_ep_listen,
	.accept = srd_ep_accept,
	.reject = srd_ep_reject,
	.shutdown = srd_ep_shutdown,
	.join = srd_ep_join,
};

/* ---- msg ---- */

#define ONE_IOV(buf, len) { .iov_base = (void *)(buf), .iov_len = (len) }

static ssize_t srd_msg_recv(struct fid_ep *ep, void *buf, size_t len, void *desc,
			    fi_addr_t src_addr, void *context)
{
	void *rs = EP_RS(ep);
	struct iovec iov = ONE_IOV(buf, len);
	return rs ? srd_rs_ep_recv(rs, &iov, &desc, 1, src_addr, 0, 0, context, 0, 0, SRD_OP_DEFAULT) : -FI_EINVAL;
}

static ssize_t srd_msg_recvv(struct fid_ep *ep, const struct iovec *iov, void **desc,
			     size_t count, fi_addr_t src_addr, void *context)
{
	void *rs = EP_RS(ep);
	return rs ? srd_rs_ep_recv(rs, iov, desc, count, src_addr, 0, 0, context, 0, 0, SRD_OP_DEFAULT) : -FI_EINVAL;
}

static ssize_t srd_msg_recvmsg(struct fid_ep *ep, const struct fi_msg *msg, uint64_t flags)
{
	void *rs = EP_RS(ep);
	if (!rs || !msg)
		return -FI_EINVAL;
	return srd_rs_ep_recv(rs, msg->msg_iov, msg->desc, msg->iov_count, msg->addr, 0, 0,
			      msg->context, flags, 0, SRD_OP_MSG);
}

static ssize_t srd_msg_send(struct fid_ep *ep, const void *buf, size_t len, void *desc,
			    fi_addr_t dest_addr, void *context)
{
	void *rs = EP_RS(ep);
	struct iovec iov = ONE_IOV(buf, len);
	return rs ? srd_rs_ep_send(rs, &iov, &desc, 1, dest_addr, 0, 0, context, 0, 0, SRD_OP_DEFAULT) : -FI_EINVAL;
}

static ssize_t srd_msg_sendv(struct fid_ep *ep, const struct iovec *iov, void **desc,
			     size_t count, fi_addr_t dest_addr, void *context)
{
	void *rs = EP_RS(ep);
	return rs ? srd_rs_ep_send(rs, iov, desc, count, dest_addr, 0, 0, context, 0, 0, SRD_OP_DEFAULT) : -FI_EINVAL;
}

static ssize_t srd_msg_sendmsg(struct fid_ep *ep, const struct fi_msg *msg, uint64_t flags)
{
	void *rs = EP_RS(ep);
	if (!rs || !msg)
		return -FI_EINVAL;
	return srd_rs_ep_send(rs, msg->msg_iov, msg->desc, msg->iov_count, msg->addr, 0, msg->data,
			      msg->context, flags, 0, SRD_OP_MSG);
}

static ssize_t srd_msg_inject(struct fid_ep *ep, const void *buf, size_t len, fi_addr_t dest_addr)
{
	void *rs = EP_RS(ep);
	struct iovec iov = ONE_IOV(buf, len);
	return rs ? srd_rs_ep_send(rs, &iov, NULL, 1, dest_addr, 0, 0, NULL, 0, 0, SRD_OP_INJECT) : -FI_EINVAL;
}

static ssize_t srd_msg_senddata(struct fid_ep *ep, const void *buf, size_t len, void *desc,
				uint64_t data, fi_addr_t dest_addr, void *context)
{
	void *rs = EP_RS(ep);
	struct iovec iov = ONE_IOV(buf, len);
	return rs ? srd_rs_ep_send(rs, &iov, &desc, 1, dest_addr, 0, data, context,
				   FI_REMOTE_CQ_DATA, 0, SRD_OP_DEFAULT) : -FI_EINVAL;
}

static ssize_t srd_msg_injectdata(struct fid_ep *ep, const void *buf, size_t len,
				  uint64_t data, fi_addr_t dest_addr)
{
	void *rs = EP_RS(ep);
	struct iovec iov = ONE_IOV(buf, len);
	return rs ? srd_rs_ep_send(rs, &iov, NULL, 1, dest_addr, 0, data, NULL,
				   FI_REMOTE_CQ_DATA, 0, SRD_OP_INJECT) : -FI_EINVAL;
}

static struct fi_ops_msg srd_ep_msg_ops = {
	.size = sizeof(struct fi_ops_msg),
	.recv = srd_msg_recv,
	.recvv = srd_msg_recvv,
	.recvmsg = srd_msg_recvmsg,
	.send = srd_msg_send,
	.sendv = srd_msg_sendv,
	.sendmsg = srd_msg_sendmsg,
	.inject = srd_msg_inject,
	.senddata = srd_msg_senddata,
	.injectdata = srd_msg_injectdata,
};

/* ---- tagged ---- */

static ssize_t srd_tag_recv(struct fid_ep *ep, void *buf, size_t len, void *desc,
			    fi_addr_t src_addr, uint64_t tag, uint64_t ignore, void *context)
{
	void *rs = EP_RS(ep);
	struct iovec iov = ONE_IOV(buf, len);
	return rs ? srd_rs_ep_recv(rs, &iov, &desc, 1, src_addr, tag, ignore, context, 0, 1, SRD_OP_DEFAULT) : -FI_EINVAL;
}

static ssize_t srd_tag_recvv(struct fid_ep *ep, const struct iovec *iov, void **desc,
			     size_t count, fi_addr_t src_addr, uint64_t tag, uint64_t ignore,
			     void *context)
{
	void *rs = EP_RS(ep);
	return rs ? srd_rs_ep_recv(rs, iov, desc, count, src_addr, tag, ignore, context, 0, 1, SRD_OP_DEFAULT) : -FI_EINVAL;
}

static ssize_t srd_tag_recvmsg(struct fid_ep *ep, const struct fi_msg_tagged *msg, uint64_t flags)
{
	void *rs = EP_RS(ep);
	if (!rs || !msg)
		return -FI_EINVAL;
	return srd_rs_ep_recv(rs, msg->msg_iov, msg->desc, msg->iov_count, msg->addr, msg->tag,
			      msg->ignore, msg->context, flags, 1, SRD_OP_MSG);
}

static ssize_t srd_tag_send(struct fid_ep *ep, const void *buf, size_t len, void *desc,
			    fi_addr_t dest_addr, uint64_t tag, void *context)
{
	void *rs = EP_RS(ep);
	struct iovec iov = ONE_IOV(buf, len);
	return rs ? srd_rs_ep_send(rs, &iov, &desc, 1, dest_addr, tag, 0, context, 0, 1, SRD_OP_DEFAULT) : -FI_EINVAL;
}

static ssize_t srd_tag_sendv(struct fid_ep *ep, const struct iovec *iov, void **desc,
			     size_t count, fi_addr_t dest_addr, uint64_t tag, void *context)
{
	void *rs = EP_RS(ep);
	return rs ? srd_rs_ep_send(rs, iov, desc, count, dest_addr, tag, 0, context, 0, 1, SRD_OP_DEFAULT) : -FI_EINVAL;
}

static ssize_t srd_tag_sendmsg(struct fid_ep *ep, const struct fi_msg_tagged *msg, uint64_t flags)
{
	void *rs = EP_RS(ep);
	if (!rs || !msg)
		return -FI_EINVAL;
	return srd_rs_ep_send(rs, msg->msg_iov, msg->desc, msg->iov_count, msg->addr, msg->tag,
			      msg->data, msg->context, flags, 1, SRD_OP_MSG);
}

static ssize_t srd_tag_inject(struct fid_ep *ep, const void *buf, size_t len,
			      fi_addr_t dest_addr, uint64_t tag)
{
	void *rs = EP_RS(ep);
	struct iovec iov = ONE_IOV(buf, len);
	return rs ? srd_rs_ep_send(rs, &iov, NULL, 1, dest_addr, tag, 0, NULL, 0, 1, SRD_OP_INJECT) : -FI_EINVAL;
}

static ssize_t srd_tag_senddata(struct fid_ep *ep, const void *buf, size_t len, void *desc,
				uint64_t data, fi_addr_t dest_addr, uint64_t tag, void *context)
{
	void *rs = EP_RS(ep);
	struct iovec iov = ONE_IOV(buf, len);
	return rs ? srd_rs_ep_send(rs, &iov, &desc, 1, dest_addr, tag, data, context,
				   FI_REMOTE_CQ_DATA, 1, SRD_OP_DEFAULT) : -FI_EINVAL;
}

static ssize_t srd_tag_injectdata(struct fid_ep *ep, const void *buf, size_t len,
				  uint64_t data, fi_addr_t dest_addr, uint64_t tag)
{
	void *rs = EP_RS(ep);
	struct iovec iov = ONE_IOV(buf, len);
	return rs ? srd_rs_ep_send(rs, &iov, NULL, 1, dest_addr, tag, data, NULL,
				   FI_REMOTE_CQ_DATA, 1, SRD_OP_INJECT) : -FI_EINVAL;
}

static struct fi_ops_tagged srd_ep_tagged_ops = {
	.size = sizeof(struct fi_ops_tagged),
	.recv = srd_tag_recv,
	.recvv = srd_tag_recvv,
	.recvmsg = srd_tag_recvmsg,
	.send = srd_tag_send,
	.sendv = srd_tag_sendv,
	.sendmsg = srd_tag_sendmsg,
	.inject = srd_tag_inject,
	.senddata = srd_tag_senddata,
	.injectdata = srd_tag_injectdata,
};

/* ---- RMA ---- */

static ssize_t rma_read(struct fid_ep *ep, void *buf, size_t len, void *desc, fi_addr_t src_addr,
			uint64_t addr, uint64_t key, void *context)
{
	void *rs = EP_RS(ep);
	struct iovec iov = ONE_IOV(buf, len);
	struct fi_rma_iov r = { .addr = addr, .len = len, .key = key };
	return rs ? srd_rs_ep_rma(rs, 1, &iov, &desc, 1, src_addr, &r, 1, 0, context, 0, SRD_OP_DEFAULT) : -FI_EINVAL;
}

static ssize_t rma_readv(struct fid_ep *ep, const struct iovec *iov, void **desc, size_t count,
			 fi_addr_t src_addr, uint64_t addr, uint64_t key, void *context)
{
	void *rs = EP_RS(ep);
	size_t len = 0;
	for (size_t i = 0; iov && i < count; i++)
		len += iov[i].iov_len;
	struct fi_rma_iov r = { .addr = addr, .len = len, .key = key };
	return rs ? srd_rs_ep_rma(rs, 1, iov, desc, count, src_addr, &r, 1, 0, context, 0, SRD_OP_DEFAULT) : -FI_EINVAL;
}

static ssize_t rma_readmsg(struct fid_ep *ep, const struct fi_msg_rma *msg, uint64_t flags)
{
	void *rs = EP_RS(ep);
	if (!rs || !msg)
		return -FI_EINVAL;
	return srd_rs_ep_rma(rs, 1, msg->msg_iov, msg->desc, msg->iov_count, msg->addr, msg->rma_iov,
			     msg->rma_iov_count, msg->data, msg->context, flags, SRD_OP_MSG);
}

static ssize_t rma_write(struct fid_ep *ep, const void *buf, size_t len, void *desc, fi_addr_t dest_addr,
			 uint64_t addr, uint64_t key, void *context)
{
	void *rs = EP_RS(ep);
	struct iovec iov = ONE_IOV(buf, len);
	struct fi_rma_iov r = { .addr = addr, .len = len, .key = key };
	return rs ? srd_rs_ep_rma(rs, 0, &iov, &desc, 1, dest_addr, &r, 1, 0, context, 0, SRD_OP_DEFAULT) : -FI_EINVAL;
}

static ssize_t rma_writev(struct fid_ep *ep, const struct iovec *iov, void **desc, size_t count,
			  fi_addr_t dest_addr, uint64_t addr, uint64_t key, void *context)
{
	void *rs = EP_RS(ep);
	size_t len = 0;
	for (size_t i = 0; iov && i < count; i++)
		len += iov[i].iov_len;
	struct fi_rma_iov r = { .addr = addr, .len = len, .key = key };
	return rs ? srd_rs_ep_rma(rs, 0, iov, desc, count, dest_addr, &r, 1, 0, context, 0, SRD_OP_DEFAULT) : -FI_EINVAL;
}

static ssize_t rma_writemsg(struct fid_ep *ep, const struct fi_msg_rma *msg, uint64_t flags)
{
	void *rs = EP_RS(ep);
	if (!rs || !msg)
		return -FI_EINVAL;
	return srd_rs_ep_rma(rs, 0, msg->msg_iov, msg->desc, msg->iov_count, msg->addr, msg->rma_iov,
			     msg->rma_iov_count, msg->data, msg->context, flags, SRD_OP_MSG);
}

static ssize_t rma_inject(struct fid_ep *ep, const void *buf, size_t len, fi_addr_t dest_addr,
			  uint64_t addr, uint64_t key)
{
	void *rs = EP_RS(ep);
	struct iovec iov = ONE_IOV(buf, len);
	struct fi_rma_iov r = { .addr = addr, .len = len, .key = key };
	return rs ? srd_rs_ep_rma(rs, 0, &iov, NULL, 1, dest_addr, &r, 1, 0, NULL, 0, SRD_OP_INJECT) : -FI_EINVAL;
}

static ssize_t rma_writedata(struct fid_ep *ep, const void *buf, size_t len, void *desc, uint64_t data,
			     fi_addr_t dest_addr, uint64_t addr, uint64_t key, void *context)
{
	void *rs = EP_RS(ep);
	struct iovec iov = ONE_IOV(buf, len);
	struct fi_rma_iov r = { .addr = addr, .len = len, .key = key };
	return rs ? srd_rs_ep_rma(rs, 0, &iov, &desc, 1, dest_addr, &r, 1, data, context,
				  FI_REMOTE_CQ_DATA, SRD_OP_DEFAULT) : -FI_EINVAL;
}

static ssize_t rma_injectdata(struct fid_ep *ep, const void *buf, size_t len, uint64_t data,
			      fi_addr_t dest_addr, uint64_t addr, uint64_t key)
{
	void *rs = EP_RS(ep);
	struct iovec iov = ONE_IOV(buf, len);
	struct fi_rma_iov r = { .addr = addr, .len = len, .key = key };
	return rs ? srd_rs_ep_rma(rs, 0, &iov, NULL, 1, dest_addr, &r, 1, data, NULL,
				  FI_REMOTE_CQ_DATA, SRD_OP_INJECT) : -FI_EINVAL;
}

static struct fi_ops_rma srd_ep_rma_ops = {
	.size = sizeof(struct fi_ops_rma),
	.read = rma_read, .readv = rma_readv, .readmsg = rma_readmsg,
	.write = rma_write, .writev = rma_writev, .writemsg = rma_writemsg,
	.inject = rma_inject, .writedata = rma_writedata, .injectdata = rma_injectdata,
};

/* ---- atomics ---- */

#define ONE_IOC(buf, n) { .addr = (void *)(buf), .count = (n) }

static ssize_t at_write(struct fid_ep *ep, const void *buf, size_t count, void *desc, fi_addr_t dest_addr,
			uint64_t addr, uint64_t key, enum fi_datatype dt, enum fi_op op, void *context)
{
	void *rs = EP_RS(ep);
	struct fi_ioc ioc = ONE_IOC(buf, count);
	struct fi_rma_ioc r = { .addr = addr, .count = count, .key = key };
	return rs ? srd_rs_ep_atomic(rs, 0, &ioc, 1, NULL, 0, NULL, 0, dest_addr, &r, 1, dt, op, 0,
				     context, 0, SRD_OP_DEFAULT) : -FI_EINVAL;
}

static ssize_t at_writev(struct fid_ep *ep, const struct fi_ioc *iov, void **desc, size_t count,
			 fi_addr_t dest_addr, uint64_t addr, uint64_t key, enum fi_datatype dt,
			 enum fi_op op, void *context)
{
	void *rs = EP_RS(ep);
	size_t n = 0;
	for (size_t i = 0; iov && i < count; i++)
		n += iov[i].count;
	struct fi_rma_ioc r = { .addr = addr, .count = n, .key = key };
	return rs ? srd_rs_ep_atomic(rs, 0, iov, count, NULL, 0, NULL, 0, dest_addr, &r, 1, dt, op, 0,
				     context, 0, SRD_OP_DEFAULT) : -FI_EINVAL;
}

static ssize_t at_writemsg(struct fid_ep *ep, const struct fi_msg_atomic *msg, uint64_t flags)
{
	void *rs = EP_RS(ep);
	if (!rs || !msg)
		return -FI_EINVAL;
	return srd_rs_ep_atomic(rs, 0, msg->msg_iov, msg->iov_count, NULL, 0, NULL, 0, msg->addr,
				msg->rma_iov, msg->rma_iov_count, msg->datatype, msg->op, msg->data,
				msg->context, flags, SRD_OP_MSG);
}

static ssize_t at_inject(struct fid_ep *ep, const void *buf, size_t count, fi_addr_t dest_addr,
			 uint64_t addr, uint64_t key, enum fi_datatype dt, enum fi_op op)
{
	void *rs = EP_RS(ep);
	struct fi_ioc ioc = ONE_IOC(buf, count);
	struct fi_rma_ioc r = { .addr = addr, .count = count, .key = key };
	return rs ? srd_rs_ep_atomic(rs, 0, &ioc, 1, NULL, 0, NULL, 0, dest_addr, &r, 1, dt, op, 0,
				     NULL, 0, SRD_OP_INJECT) : -FI_EINVAL;
}

static ssize_t at_readwrite(struct fid_ep *ep, const void *buf, size_t count, void *desc, void *result,
			    void *result_desc, fi_addr_t dest_addr, uint64_t addr, uint64_t key,
			    enum fi_datatype dt, enum fi_op op, void *context)
{
	void *rs = EP_RS(ep);
	struct fi_ioc ioc = ONE_IOC(buf, count), res = ONE_IOC(result, count);
	struct fi_rma_ioc r = { .addr = addr, .count = count, .key = key };
	return rs ? srd_rs_ep_atomic(rs, 1, &ioc, buf ? 1 : 0, NULL, 0, &res, 1, dest_addr, &r, 1, dt, op,
				     0, context, 0, SRD_OP_DEFAULT) : -FI_EINVAL;
}

static ssize_t at_readwritev(struct fid_ep *ep, const struct fi_ioc *iov, void **desc, size_t count,
			     struct fi_ioc *resultv, void **result_desc, size_t result_count,
			     fi_addr_t dest_addr, uint64_t addr, uint64_t key, enum fi_datatype dt,
			     enum fi_op op, void *context)
{
	void *rs = EP_RS(ep);
	size_t n = 0;
	for (size_t i = 0; resultv && i < result_count; i++)
		n += resultv[i].count;
	struct fi_rma_ioc r = { .addr = addr, .count = n, .key = key };
	return rs ? srd_rs_ep_atomic(rs, 1, iov, count, NULL, 0, resultv, result_count, dest_addr, &r, 1,
				     dt, op, 0, context, 0, SRD_OP_DEFAULT) : -FI_EINVAL;
}

static ssize_t at_readwritemsg(struct fid_ep *ep, const struct fi_msg_atomic *msg, struct fi_ioc *resultv,
			       void **result_desc, size_t result_count, uint64_t flags)
{
	void *rs = EP_RS(ep);
	if (!rs || !msg)
		return -FI_EINVAL;
	return srd_rs_ep_atomic(rs, 1, msg->msg_iov, msg->iov_count, NULL, 0, resultv, result_count,
				msg->addr, msg->rma_iov, msg->rma_iov_count, msg->datatype, msg->op,
				msg->data, msg->context, flags, SRD_OP_MSG);
}

static ssize_t at_compwrite(struct fid_ep *ep, const void *buf, size_t count, void *desc,
			    const void *compare, void *compare_desc, void *result, void *result_desc,
			    fi_addr_t dest_addr, uint64_t addr, uint64_t key, enum fi_datatype dt,
			    enum fi_op op, void *context)
{
	void *rs = EP_RS(ep);
	struct fi_ioc ioc = ONE_IOC(buf, count), cmp = ONE_IOC(compare, count), res = ONE_IOC(result, count);
	struct fi_rma_ioc r = { .addr = addr, .count = count, .key = key };
	return rs ? srd_rs_ep_atomic(rs, 2, &ioc, 1, &cmp, 1, &res, 1, dest_addr, &r, 1, dt, op, 0,
				     context, 0, SRD_OP_DEFAULT) : -FI_EINVAL;
}

static ssize_t at_compwritev(struct fid_ep *ep, const struct fi_ioc *iov, void **desc, size_t count,
			     const struct fi_ioc *comparev, void **compare_desc, size_t compare_count,
			     struct fi_ioc *resultv, void **result_desc, size_t result_count,
			     fi_addr_t dest_addr, uint64_t addr, uint64_t key, enum fi_datatype dt,
			     enum fi_op op, void *context)
{
	void *rs = EP_RS(ep);
	size_t n = 0;
	for (size_t i = 0; iov && i < count; i++)
		n += iov[i].count;
	struct fi_rma_ioc r = { .addr = addr, .count = n, .key = key };
	return rs ? srd_rs_ep_atomic(rs, 2, iov, count, comparev, compare_count, resultv, result_count,
				     dest_addr, &r, 1, dt, op, 0, context, 0, SRD_OP_DEFAULT) : -FI_EINVAL;
}

static ssize_t at_compwritemsg(struct fid_ep *ep, const struct fi_msg_atomic *msg,
			       const struct fi_ioc *comparev, void **compare_desc, size_t compare_count,
			       struct fi_ioc *resultv, void **result_desc, size_t result_count,
			       uint64_t flags)
{
	void *rs = EP_RS(ep);
	if (!rs || !msg)
		return -FI_EINVAL;
	return srd_rs_ep_atomic(rs, 2, msg->msg_iov, msg->iov_count, comparev, compare_count, resultv,
				result_count, msg->addr, msg->rma_iov, msg->rma_iov_count, msg->datatype,
				msg->op, msg->data, msg->context, flags, SRD_OP_MSG);
}

static int at_writevalid(struct fid_ep *ep, enum fi_datatype dt, enum fi_op op, size_t *count)
{
	void *rs = EP_RS(ep);
	return rs ? srd_rs_ep_atomicvalid(rs, 0, dt, op, count) : -FI_EINVAL;
}

static int at_readwritevalid(struct fid_ep *ep, enum fi_datatype dt, enum fi_op op, size_t *count)
{
	void *rs = EP_RS(ep);
	return rs ? srd_rs_ep_atomicvalid(rs, 1, dt, op, count) : -FI_EINVAL;
}

static int at_compwritevalid(struct fid_ep *ep, enum fi_datatype dt, enum fi_op op, size_t *count)
{
	void *rs = EP_RS(ep);
	return rs ? srd_rs_ep_atomicvalid(rs, 2, dt, op, count) : -FI_EINVAL;
}

static struct fi_ops_atomic srd_ep_atomic_ops = {
	.size = sizeof(struct fi_ops_atomic),
	.write = at_write, .writev = at_writev, .writemsg = at_writemsg, .inject = at_inject,
	.readwrite = at_readwrite, .readwritev = at_readwritev, .readwritemsg = at_readwritemsg,
	.compwrite = at_compwrite, .compwritev = at_compwritev, .compwritemsg = at_compwritemsg,
	.writevalid = at_writevalid, .readwritevalid = at_readwritevalid, .compwritevalid = at_compwritevalid,
};

struct fid_ep *srd_shim_new_ep(void *rs, void *context, int ep_type, uint64_t caps)
{
	struct srd_ep *e = calloc(1, sizeof(*e));

	if (!e)
		return NULL;
	e->fid.fid.fclass = FI_CLASS_EP;
	e->fid.fid.context = context;
	e->fid.fid.ops = srd_shim_fi_ops(FI_CLASS_EP);
	e->fid.ops = &srd_ep_ops;
	e->fid.cm = &srd_ep_cm_ops;
	e->fid.msg = &srd_ep_msg_ops;
	e->fid.tagged = &srd_ep_tagged_ops;
	e->fid.rma = &srd_ep_rma_ops;
	e->fid.atomic = &srd_ep_atomic_ops;
	e->fid.collective = NULL;
	e->rs = rs;
	return &e->fid;
}
