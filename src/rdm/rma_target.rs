//! Emulated RMA and atomics, target side: placing RTW data, serving RTR
//! reads with READRSP packets, executing RTA atomics, and answering.
//!
//! Every request is checked against the glue's registry (`RmaTarget`) for
//! its whole range before a byte moves, so a refused request (unknown
//! key, missing access, out of range) leaves memory untouched and is
//! answered with its errno. Reads being served and atomic responses are
//! at most `Config::rma_target_max` each; a request that would need more
//! is deferred (`PacketOutcome::Deferred`), never dropped — safe, since
//! what frees them needs no incoming packet. Writes in progress (a
//! counter per multi-packet write) are never deferred: see `on_rtw`.
//!
//! This module is the target part ([`RmaServe`]): the glue's registry, the
//! writes in progress, the reads being served and the atomic response
//! buffers. Invariants kept here: a read being served is in the RMA
//! transmit queue exactly when its `queued` flag is set, and keeps at most
//! its window of READRSPs unconfirmed; a response buffer is taken from the
//! time its atomic runs until its ATOMRSP is built.

use super::atomic::{self, AtomicKind, AtomicOp, Datatype};
use super::cma::{self, CmaError};
use super::outbox::{Ctrl, Ctx, Outbox, RmaQ, TOK_RECEIPT, TOK_SERVE, peer_token, token};
use super::peer::{PeerIdx, Peers};
use super::pool::{Handle, Slab};
use super::rma::{RemoteCounts, RmaTarget, window_pkts};
use super::types::{Access, CompFlags, ErrorKind};
use super::{Completion, PacketOutcome, TxInfo};
use crate::wire::rdm::Status;
use crate::wire::rdm::{
    CmaDesc, OpRef, READRSP_LEN, READRSP_PLACED, RSP_LEN, RSP_NO_CMA, RTW_CMA, RTW_CQ_DATA,
    ReadRspRepr, RspRepr, RtaRepr, RtrRepr, RtwRepr, emit_readrsp, emit_rsp,
};
use std::collections::{HashMap, VecDeque};

/// A multi-packet write being placed.
#[derive(Debug)]
struct WriteIn {
    total: u64,
    received: u64,
    /// Not `Ok`: what every packet of it gets (nothing placed).
    status: Status,
}

/// A read being served.
#[derive(Debug)]
struct ReadOut {
    peer: PeerIdx,
    op: OpRef,
    key: u64,
    addr: u64,
    len: u64,
    next_off: u64,
    sent_pkts: u32,
    acked_pkts: u32,
    queued: bool,
}

/// Settings of the target part, from the endpoint's configuration.
#[derive(Clone, Copy, Debug)]
pub(super) struct ServeLimits {
    /// Reads being served and atomic responses waiting, each at most.
    pub max: usize,
    /// The endpoint's MTU (an atomic's response must fit one packet).
    pub mtu: usize,
    pub cts_window: usize,
}

/// The target part.
pub(super) struct RmaServe {
    /// The glue's memory registry.
    target: Option<Box<dyn RmaTarget + Send>>,
    /// Multi-packet writes being placed, by (peer, tx_id, gen).
    writes: HashMap<(PeerIdx, u32, u32), WriteIn>,
    /// Reads being served.
    reads: Slab<ReadOut>,
    /// Fetched values waiting in ATOMRSPs: a slot per buffer in use, the
    /// buffers kept for reuse.
    rsp: Slab<()>,
    rsp_bufs: Vec<Vec<u8>>,
    scratch: Vec<u8>,
    remote: RemoteCounts,
    lim: ServeLimits,
}

/// The wire status of a failed copy.
fn cma_status(e: CmaError) -> Status {
    match e {
        CmaError::Gone => Status::Unreachable,
        _ => Status::Io,
    }
}

impl RmaServe {
    pub fn new(lim: ServeLimits) -> Self {
        RmaServe {
            target: None,
            writes: HashMap::with_capacity(lim.max.min(4096)),
            reads: Slab::with_capacity(lim.max),
            rsp: Slab::lazy(lim.max),
            rsp_bufs: Vec::new(),
            scratch: Vec::new(),
            remote: RemoteCounts::default(),
            lim,
        }
    }

    pub fn set_target(&mut self, t: Box<dyn RmaTarget + Send>) {
        self.target = Some(t);
    }

    /// Counts of remote reads/writes since the last call.
    pub fn take_remote_counts(&mut self) -> RemoteCounts {
        std::mem::take(&mut self.remote)
    }

    /// `peer` broke: its writes in progress are dropped and its reads no
    /// longer served.
    pub fn forget_peer(&mut self, peer: PeerIdx) {
        self.writes.retain(|&(p, _, _), _| p != peer);
        for i in 0..self.reads.slots() {
            if let Some((h, r)) = self.reads.entry_at(i)
                && r.peer == peer
            {
                self.reads.remove(h);
            }
        }
    }

    /// Copies `data` to `[addr + off ..)` after checking the whole write
    /// `[addr, addr + total)`; returns the status.
    fn place_write(&mut self, key: u64, addr: u64, total: u64, off: u64, data: &[u8]) -> Status {
        let Some(t) = self.target.as_mut() else {
            return Status::NotSupported;
        };
        match t.resolve(key, addr, total as usize, Access::REMOTE_WRITE) {
            Ok(mut iov) if iov.len() as u64 == total => {
                iov.copy_in(off as usize, data);
                Status::Ok
            }
            Ok(_) => Status::InvalidArgument,
            Err(e) => e.status(),
        }
    }

    pub fn on_rtw(
        &mut self,
        ctx: &mut Ctx<'_>,
        peer: PeerIdx,
        h: RtwRepr,
        payload: &[u8],
    ) -> PacketOutcome {
        if h.flags & RTW_CMA != 0 {
            return self.on_rtw_cma(ctx, peer, h, payload);
        }
        let single = h.offset == 0 && payload.len() as u64 == h.total_len;
        let key = (peer, h.op.tx_id, h.op.op_gen);
        if single {
            let status = if h.total_len == 0 {
                self.check_empty()
            } else {
                self.place_write(h.key, h.addr, h.total_len, 0, payload)
            };
            self.write_done(ctx.out, peer, h, status);
            return PacketOutcome::Consumed;
        }
        let status = match self.writes.get(&key) {
            Some(w) if w.total != h.total_len => {
                ctx.out.stats.malformed += 1;
                return PacketOutcome::Dropped;
            }
            Some(w) => w.status,
            // Never deferred: the packets of writes already under way
            // could be stuck behind deferred ones in the glue's held
            // buffers. Entries are bounded by the initiators' operation
            // pools (one per write in progress) and dropped with a peer.
            None => Status::Ok,
        };
        let status = if status.is_ok() {
            self.place_write(h.key, h.addr, h.total_len, h.offset, payload)
        } else {
            status
        };
        let w = self.writes.entry(key).or_insert(WriteIn {
            total: h.total_len,
            received: 0,
            status: Status::Ok,
        });
        if w.status.is_ok() {
            w.status = status;
        }
        w.received += payload.len() as u64;
        if w.received >= w.total {
            let status = w.status;
            self.writes.remove(&key);
            self.write_done(ctx.out, peer, h, status);
        }
        PacketOutcome::Consumed
    }

    /// A write whose data we copy from the initiator's memory (RTW_CMA):
    /// checked against the registry first, as every write.
    fn on_rtw_cma(
        &mut self,
        ctx: &mut Ctx<'_>,
        peer: PeerIdx,
        h: RtwRepr,
        payload: &[u8],
    ) -> PacketOutcome {
        let Ok(desc) = CmaDesc::parse(payload, h.total_len) else {
            ctx.out.stats.malformed += 1;
            return PacketOutcome::Dropped;
        };
        let pid = ctx.peers.cma_pid_for(peer, desc.pid, ctx.cma.is_some());
        let segs = cma::clip(desc.segments(), h.total_len);
        let got = match self.target.as_mut() {
            None => Err(Status::NotSupported),
            Some(t) => match t.resolve(h.key, h.addr, h.total_len as usize, Access::REMOTE_WRITE) {
                Ok(iov) if iov.len() as u64 == h.total_len => Ok(iov),
                Ok(_) => Err(Status::InvalidArgument),
                Err(e) => Err(e.status()),
            },
        };
        let mut iov = match got {
            Ok(iov) => iov,
            Err(status) => {
                self.write_done(ctx.out, peer, h, status);
                return PacketOutcome::Consumed;
            }
        };
        let res = match (pid, ctx.cma.as_deref_mut()) {
            (Some(pid), Some(c)) => c.read(pid, &segs, &mut iov, 0),
            _ => Err(CmaError::Denied),
        };
        cma::count(&mut ctx.out.stats, res, h.total_len);
        match res {
            Ok(()) => self.write_done(ctx.out, peer, h, Status::Ok),
            Err(CmaError::Denied) => {
                // Nothing placed: the initiator sends the data instead.
                ctx.peers.cma_refused(peer);
                ctx.out.ctrl.push_back(Ctrl::WriteRsp {
                    peer,
                    op: h.op,
                    status: Status::Ok,
                    flags: RSP_NO_CMA,
                });
            }
            Err(e) => self.write_done(ctx.out, peer, h, cma_status(e)),
        }
        PacketOutcome::Consumed
    }

    /// Zero-byte requests touch no memory; they need RMA enabled only.
    fn check_empty(&self) -> Status {
        if self.target.is_some() {
            Status::Ok
        } else {
            Status::NotSupported
        }
    }

    fn write_done(&mut self, out: &mut Outbox, peer: PeerIdx, h: RtwRepr, status: Status) {
        if status.is_ok() {
            self.remote.writes += 1;
            if h.flags & RTW_CQ_DATA != 0 {
                out.complete(Completion {
                    context: 0,
                    flags: CompFlags::REMOTE_WRITE | CompFlags::RMA | CompFlags::REMOTE_CQ_DATA,
                    len: h.total_len as usize,
                    buf: 0,
                    data: h.cq_data,
                    tag: 0,
                    src: Some(peer),
                    report: true,
                    err: None,
                    iov: None,
                });
            }
        } else {
            out.stats.rma_refused += 1;
        }
        out.ctrl.push_back(Ctrl::WriteRsp {
            peer,
            op: h.op,
            status,
            flags: 0,
        });
    }

    /// A read whose data we may write into the initiator's buffer (RTR_CMA,
    /// range already checked): `Some(status)` when answered, `None` when
    /// CMA was refused and the read is to be served in packets.
    fn serve_cma(
        &mut self,
        ctx: &mut Ctx<'_>,
        peer: PeerIdx,
        h: &RtrRepr,
        desc: &CmaDesc<'_>,
    ) -> Option<Status> {
        let pid = ctx.peers.cma_pid_for(peer, desc.pid, ctx.cma.is_some());
        let segs = cma::clip(desc.segments(), h.len);
        let res = match (pid, self.target.as_mut()) {
            (Some(pid), Some(t)) => {
                match t.resolve(h.key, h.addr, h.len as usize, Access::REMOTE_READ) {
                    Ok(iov) if iov.len() as u64 == h.len => match ctx.cma.as_deref_mut() {
                        Some(c) => c.write(pid, &segs, &iov, 0),
                        None => Err(CmaError::Denied),
                    },
                    _ => Err(CmaError::Denied),
                }
            }
            _ => Err(CmaError::Denied),
        };
        cma::count(&mut ctx.out.stats, res, h.len);
        match res {
            Ok(()) => Some(Status::Ok),
            Err(CmaError::Denied) => {
                ctx.peers.cma_refused(peer);
                None
            }
            Err(e) => Some(cma_status(e)),
        }
    }

    pub fn on_rtr(
        &mut self,
        ctx: &mut Ctx<'_>,
        peer: PeerIdx,
        h: RtrRepr,
        desc: Option<CmaDesc<'_>>,
    ) -> PacketOutcome {
        let status = if h.len == 0 {
            self.check_empty()
        } else {
            match self.target.as_mut() {
                None => Status::NotSupported,
                Some(t) => match t.resolve(h.key, h.addr, h.len as usize, Access::REMOTE_READ) {
                    Ok(iov) if iov.len() as u64 == h.len => Status::Ok,
                    Ok(_) => Status::InvalidArgument,
                    Err(e) => e.status(),
                },
            }
        };
        if !status.is_ok() || h.len == 0 {
            if status.is_ok() {
                self.remote.reads += 1;
            } else {
                ctx.out.stats.rma_refused += 1;
            }
            ctx.out.ctrl.push_back(Ctrl::ReadDone {
                peer,
                op: h.op,
                status,
                flags: 0,
            });
            return PacketOutcome::Consumed;
        }
        if let Some(d) = desc
            && let Some(status) = self.serve_cma(ctx, peer, &h, &d)
        {
            if status.is_ok() {
                self.remote.reads += 1;
            }
            ctx.out.ctrl.push_back(Ctrl::ReadDone {
                peer,
                op: h.op,
                status,
                flags: if status.is_ok() { READRSP_PLACED } else { 0 },
            });
            return PacketOutcome::Consumed;
        }
        let r = ReadOut {
            peer,
            op: h.op,
            key: h.key,
            addr: h.addr,
            len: h.len,
            next_off: 0,
            sent_pkts: 0,
            acked_pkts: 0,
            queued: true,
        };
        let Ok(i) = self.reads.insert(r) else {
            return PacketOutcome::Deferred(peer);
        };
        self.remote.reads += 1;
        ctx.out.rma.push_back(RmaQ::Serve(i));
        PacketOutcome::Consumed
    }

    /// The next READRSP of served read `i` into `out`; a read with more
    /// to send inside its window goes back on `q`.
    pub fn emit(
        &mut self,
        i: Handle,
        peers: &Peers,
        q: &mut VecDeque<RmaQ>,
        out: &mut [u8],
    ) -> Option<TxInfo> {
        let peer = self.reads.get(i)?.peer;
        let window = window_pkts(peers.mtu(peer), self.lim.cts_window);
        let lim = peers.mtu(peer).min(out.len());
        let out = &mut out[..lim];
        let r = self.reads.get_mut(i)?;
        r.queued = false;
        if r.next_off >= r.len || r.sent_pkts.wrapping_sub(r.acked_pkts) >= window {
            return None;
        }
        let at = READRSP_LEN;
        let n = ((r.len - r.next_off) as usize).min(out.len() - at);
        let mut hdr = ReadRspRepr {
            flags: 0,
            op: r.op,
            offset: r.next_off,
            status: Status::Ok,
        };
        // Resolved again per packet: a region closed meanwhile fails the
        // read instead of being read after its release.
        let got = match self.target.as_mut() {
            None => Err(ErrorKind::NotSupported),
            Some(t) => t.resolve(r.key, r.addr + r.next_off, n, Access::REMOTE_READ),
        };
        let len = match got {
            Ok(iov) if iov.len() == n => {
                emit_readrsp(out, &hdr);
                iov.copy_out(0, &mut out[at..at + n]);
                r.next_off += n as u64;
                at + n
            }
            Ok(_) | Err(_) => {
                hdr.status = match got {
                    Err(e) => e.status(),
                    Ok(_) => Status::InvalidArgument,
                };
                r.next_off = r.len;
                emit_readrsp(out, &hdr)
            }
        };
        r.sent_pkts += 1;
        let peer = r.peer;
        if r.next_off < r.len && r.sent_pkts.wrapping_sub(r.acked_pkts) < window {
            r.queued = true;
            q.push_back(RmaQ::Serve(i));
        }
        Some(TxInfo {
            peer,
            len,
            token: token(TOK_SERVE, i),
            ext: None,
        })
    }

    /// Transport verdict on a READRSP of read `i`: the read's peer
    /// (`None`: it ended). The read ends when every packet is confirmed,
    /// or on a failure.
    pub fn sent(
        &mut self,
        i: Handle,
        ok: bool,
        peers: &Peers,
        q: &mut VecDeque<RmaQ>,
    ) -> Option<PeerIdx> {
        let peer = self.reads.get(i)?.peer;
        let window = window_pkts(peers.mtu(peer), self.lim.cts_window);
        let r = self.reads.get_mut(i)?;
        if !ok {
            self.reads.remove(i);
            return Some(peer);
        }
        r.acked_pkts += 1;
        if r.next_off >= r.len && r.acked_pkts == r.sent_pkts {
            self.reads.remove(i);
        } else if r.next_off < r.len && !r.queued && r.sent_pkts.wrapping_sub(r.acked_pkts) < window
        {
            r.queued = true;
            q.push_back(RmaQ::Serve(i));
        }
        Some(peer)
    }

    pub fn on_rta(
        &mut self,
        out: &mut Outbox,
        peer: PeerIdx,
        h: RtaRepr,
        payload: &[u8],
    ) -> PacketOutcome {
        let parsed = (
            AtomicOp::from_code(h.atomic_op),
            Datatype::from_code(h.datatype),
            AtomicKind::from_wire(h.kind),
        );
        let (Some(op), Some(dt), Some(kind)) = parsed else {
            out.stats.malformed += 1;
            return PacketOutcome::Dropped;
        };
        let count = h.count as usize;
        let n = count.saturating_mul(dt.size());
        let fetch = kind != AtomicKind::Write;
        if count == 0
            || payload.len() != atomic::operand_len(op, dt, kind, count)
            || (fetch && RSP_LEN + n > self.lim.mtu)
        {
            out.stats.malformed += 1;
            return PacketOutcome::Dropped;
        }
        let mut buf = None;
        if fetch {
            let Ok(b) = self.rsp.insert(()) else {
                return PacketOutcome::Deferred(peer);
            };
            if b.idx() as usize == self.rsp_bufs.len() {
                self.rsp_bufs.push(Vec::new());
            }
            buf = Some(b);
        }
        let status = self.run_atomic(h, op, dt, kind, n, payload, buf);
        if !status.is_ok() {
            out.stats.rma_refused += 1;
            if let Some(b) = buf.take() {
                self.rsp.remove(b);
            }
        } else if op == AtomicOp::Read {
            self.remote.reads += 1;
        } else {
            self.remote.writes += 1;
        }
        out.ctrl.push_back(Ctrl::AtomRsp {
            peer,
            op: h.op,
            status,
            buf,
        });
        PacketOutcome::Consumed
    }

    /// Executes one atomic; the old values go to response buffer `buf`.
    #[allow(clippy::too_many_arguments)]
    fn run_atomic(
        &mut self,
        h: RtaRepr,
        op: AtomicOp,
        dt: Datatype,
        kind: AtomicKind,
        n: usize,
        payload: &[u8],
        buf: Option<Handle>,
    ) -> Status {
        if !atomic::supported(op, dt, kind) {
            return Status::NotSupported;
        }
        let access = if op == AtomicOp::Read {
            Access::REMOTE_READ
        } else if kind == AtomicKind::Write {
            Access::REMOTE_WRITE
        } else {
            Access::REMOTE_READ | Access::REMOTE_WRITE
        };
        let Some(t) = self.target.as_mut() else {
            return Status::NotSupported;
        };
        let mut iov = match t.resolve(h.key, h.addr, n, access) {
            Ok(iov) if iov.len() == n => iov,
            Ok(_) => return Status::InvalidArgument,
            Err(e) => return e.status(),
        };
        let scratch = &mut self.scratch;
        scratch.clear();
        scratch.resize(n, 0);
        iov.copy_out(0, scratch);
        if let Some(b) = buf.and_then(|b| self.rsp_bufs.get_mut(b.idx() as usize)) {
            b.clear();
            b.extend_from_slice(scratch);
        }
        let (operand, compare) = if kind == AtomicKind::Compare {
            payload.split_at(n)
        } else {
            (payload, &[][..])
        };
        atomic::execute(op, dt, scratch, operand, compare);
        if op != AtomicOp::Read {
            iov.copy_in(0, scratch);
        }
        Status::Ok
    }

    /// Builds the datagram of an RMA control packet.
    pub fn emit_ctrl(&mut self, c: Ctrl, out: &mut [u8]) -> Option<TxInfo> {
        let (peer, len) = match c {
            Ctrl::WriteRsp {
                peer,
                op,
                status,
                flags,
            } => (peer, emit_rsp(out, &RspRepr { flags, op, status }, false)),
            Ctrl::ReadDone {
                peer,
                op,
                status,
                flags,
            } => (
                peer,
                emit_readrsp(
                    out,
                    &ReadRspRepr {
                        flags,
                        op,
                        offset: 0,
                        status,
                    },
                ),
            ),
            Ctrl::AtomRsp {
                peer,
                op,
                status,
                buf,
            } => {
                let at = emit_rsp(
                    out,
                    &RspRepr {
                        flags: 0,
                        op,
                        status,
                    },
                    true,
                );
                let mut len = at;
                if let Some(h) = buf
                    && self.rsp.remove(h).is_some()
                {
                    let b = &self.rsp_bufs[h.idx() as usize];
                    out[at..at + b.len()].copy_from_slice(b);
                    len += b.len();
                }
                (peer, len)
            }
            _ => return None,
        };
        Some(TxInfo {
            peer,
            len,
            token: peer_token(TOK_RECEIPT, peer),
            ext: None,
        })
    }
}
