//! Emulated RMA and atomics, initiator side (DESIGN §4: RTW, RTR, RTA).
//!
//! RMA packets are not part of a peer's msg_id sequence (fi_rma ordering
//! is not promised beyond what we advertise) and carry no sender address,
//! so an operation waits for its peer's handshake before its first packet.
//!
//! - Write: RTW packets, each self-describing (key, target address, total
//!   length, offset). At most `cts_window` bytes are in the transport at
//!   once per write (paced by the transport's acknowledgements), so a large
//!   write shares the link with small traffic as long-CTS messages do. The
//!   target answers with one WRITERSP when every byte is placed (or the
//!   access was refused): every write completes on it, so FI_TRANSMIT_ and
//!   FI_DELIVERY_COMPLETE both hold, and errors reach the initiator.
//! - Read: one RTR; the target streams READRSP packets (same window) or a
//!   READRSP with an error status.
//! - Atomic: one RTA with the operands (count limited to one packet); the
//!   target executes it when the packet is processed and answers with an
//!   ATOMRSP carrying the old values for the fetch and compare kinds.
//!
//! The target side is in `rma_target`.

use super::atomic::{self, AtomicKind, AtomicOp, Datatype};
use super::cma;
use super::endpoint::Endpoint;
use super::outbox::{RmaQ, TOK_RMA, token};
use super::peer::PeerIdx;
use super::pool::Handle;
use super::types::{CompFlags, ErrorKind, OpFlags};
use super::{Completion, CompletionError, RdmError, TxError, TxInfo};
use crate::mem::UserIov;
use crate::wire::rdm::{
    FEATURE_RMA, OpRef, READRSP_PLACED, RSP_LEN, RSP_NO_CMA, RTA_LEN, RTR_CMA, RTR_LEN, RTW_CMA,
    RTW_CQ_DATA, RTW_LEN, ReadRspRepr, RspRepr, RtaRepr, RtrRepr, RtwRepr, emit_cma_desc, emit_rta,
    emit_rtr, emit_rtw,
};

/// The glue's memory registry, consulted by the target side of RMA and
/// atomics. `access` is CompFlags::REMOTE_READ, CompFlags::REMOTE_WRITE or both; the
/// registration must grant every bit. On success return a view over
/// exactly `[addr, addr + len)` of the registered memory (with
/// FI_MR_VIRT_ADDR `addr` is a virtual address inside the region,
/// otherwise an offset from its start). Errors are positive FI_E*:
/// ErrorKind::AccessDenied for an unknown key or missing access, ErrorKind::InvalidArgument for a range
/// outside the region. The endpoint uses the view only within the call
/// that obtained it (never keeps it), and never calls with `len == 0`.
pub trait RmaTarget {
    fn resolve(
        &mut self,
        key: u64,
        addr: u64,
        len: usize,
        access: super::Access,
    ) -> Result<UserIov, super::ErrorKind>;
}

/// Remote operations that targeted this endpoint's memory successfully,
/// since the last `take_remote_counts` (for CompFlags::REMOTE_READ /
/// CompFlags::REMOTE_WRITE counters). Writes and atomics count as writes,
/// reads and FI_ATOMIC_READ as reads; one per operation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RemoteCounts {
    pub reads: u64,
    pub writes: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RmaKind {
    Write,
    Read,
    Atomic {
        op: AtomicOp,
        dt: Datatype,
        kind: AtomicKind,
        count: u32,
    },
}

/// One initiator operation.
#[derive(Debug)]
pub(crate) struct RmaOp {
    pub peer: PeerIdx,
    pub context: u64,
    pub kind: RmaKind,
    pub key: u64,
    pub addr: u64,
    pub len: u64,
    pub data: Option<u64>,
    /// Write source / read destination, handed back at completion.
    pub iov: Option<UserIov>,
    /// Fetch/compare atomics: where the old values go.
    pub result: Option<UserIov>,
    /// The payload was copied to `rma_bufs[slot]` (inject, atomics).
    pub copied: bool,
    pub next_off: u64,
    pub started: bool,
    pub sent_pkts: u32,
    pub acked_pkts: u32,
    /// Read: bytes arrived.
    pub received: u64,
    pub report: bool,
    pub queued: bool,
    /// The request asked the target to copy with CMA (RTW_CMA/RTR_CMA).
    pub cma: bool,
    /// The target refused CMA for it: move the data in packets.
    pub no_cma: bool,
}

fn cq_flags(kind: RmaKind) -> CompFlags {
    match kind {
        RmaKind::Write => CompFlags::RMA | CompFlags::WRITE,
        RmaKind::Read => CompFlags::RMA | CompFlags::READ,
        RmaKind::Atomic {
            kind: AtomicKind::Write,
            ..
        } => CompFlags::ATOMIC | CompFlags::WRITE,
        RmaKind::Atomic { .. } => CompFlags::ATOMIC | CompFlags::READ,
    }
}

impl Endpoint {
    /// Installs the memory registry that RMA and atomics from peers use.
    /// Without one, every such request is refused with ErrorKind::NotSupported.
    pub fn set_rma_target(&mut self, t: Box<dyn RmaTarget + Send>) {
        self.rma_target = Some(t);
    }

    /// Counts of remote reads/writes since the last call (counters).
    pub fn take_remote_counts(&mut self) -> RemoteCounts {
        std::mem::take(&mut self.remote)
    }

    /// fi_write/fi_writemsg/fi_writedata. `data`: remote CQ data (the
    /// target gets an REMOTE_WRITE | RMA | REMOTE_CQ_DATA completion).
    /// `OpFlags::INJECT` copies the data now (≤ inject_size).
    #[allow(clippy::too_many_arguments)]
    pub fn write(
        &mut self,
        now: u64,
        peer: PeerIdx,
        iov: UserIov,
        rma_addr: u64,
        key: u64,
        data: Option<u64>,
        context: u64,
        flags: OpFlags,
    ) -> Result<(), RdmError> {
        let len = iov.len();
        self.post_rma(
            now,
            peer,
            RmaKind::Write,
            len as u64,
            Some(iov),
            None,
            &[],
            rma_addr,
            key,
            data,
            context,
            flags,
        )
    }

    /// fi_inject_write/fi_inject_writedata: copied now, no CQ event (a
    /// `report == false` completion for counters; errors are reported).
    pub fn inject_write(
        &mut self,
        now: u64,
        peer: PeerIdx,
        buf: &[u8],
        rma_addr: u64,
        key: u64,
        data: Option<u64>,
    ) -> Result<(), RdmError> {
        self.post_rma(
            now,
            peer,
            RmaKind::Write,
            buf.len() as u64,
            None,
            None,
            buf,
            rma_addr,
            key,
            data,
            0,
            OpFlags::INJECT,
        )
    }

    /// fi_read/fi_readmsg: `iov.len()` bytes from the target into `iov`.
    #[allow(clippy::too_many_arguments)]
    pub fn read(
        &mut self,
        now: u64,
        peer: PeerIdx,
        iov: UserIov,
        rma_addr: u64,
        key: u64,
        context: u64,
        flags: OpFlags,
    ) -> Result<(), RdmError> {
        let len = iov.len();
        self.post_rma(
            now,
            peer,
            RmaKind::Read,
            len as u64,
            Some(iov),
            None,
            &[],
            rma_addr,
            key,
            None,
            context,
            flags - OpFlags::INJECT,
        )
    }

    /// Largest `count` of one atomic of this (op, datatype, kind), or
    /// `None` if it is not supported (fi_atomicvalid, fi_query_atomic).
    pub fn atomic_valid(&self, op: AtomicOp, dt: Datatype, kind: AtomicKind) -> Option<usize> {
        if !atomic::supported(op, dt, kind) {
            return None;
        }
        let per = if kind == AtomicKind::Compare { 2 } else { 1 } * dt.size();
        let req = (self.cfg.mtu - RTA_LEN) / per;
        let rsp = (self.cfg.mtu - RSP_LEN) / dt.size();
        // A request and its response each fit one packet (a tiny MTU may
        // leave no room for the widest types).
        let max = req.min(rsp);
        (max > 0).then_some(max)
    }

    /// fi_atomic / fi_fetch_atomic / fi_compare_atomic (and their msg and
    /// inject forms). The kind follows from the arguments: a compare op
    /// (CSWAP*, MSWAP) needs `compare` and `result`; `result` alone is a
    /// fetch; neither is a base atomic. `operand` (ignored for
    /// FI_ATOMIC_READ) and `compare` hold `count` values and are copied
    /// now; `result` receives the old values and comes back in the
    /// completion. Executed once at the target, in the order requests
    /// arrive there.
    #[allow(clippy::too_many_arguments)]
    pub fn atomic(
        &mut self,
        now: u64,
        peer: PeerIdx,
        op: AtomicOp,
        dt: Datatype,
        operand: &[u8],
        compare: Option<&[u8]>,
        result: Option<UserIov>,
        rma_addr: u64,
        key: u64,
        count: usize,
        context: u64,
        flags: OpFlags,
    ) -> Result<(), RdmError> {
        let kind = match (compare.is_some(), result.is_some()) {
            (true, true) => AtomicKind::Compare,
            (false, true) => AtomicKind::Fetch,
            (false, false) => AtomicKind::Write,
            (true, false) => return Err(RdmError::InvalidArgument),
        };
        let max = self
            .atomic_valid(op, dt, kind)
            .ok_or(RdmError::InvalidArgument)?;
        if count == 0 || count > max {
            return Err(RdmError::InvalidArgument);
        }
        let n = count * dt.size();
        if (op != AtomicOp::Read && operand.len() < n)
            || compare.is_some_and(|c| c.len() < n)
            || result.as_ref().is_some_and(|r| r.len() < n)
        {
            return Err(RdmError::InvalidArgument);
        }
        // Operands, then compare values: the RTA payload, copied now.
        let src_op = if op == AtomicOp::Read {
            &[][..]
        } else {
            &operand[..n]
        };
        let src_cmp = compare.map_or(&[][..], |c| &c[..n]);
        let kind = RmaKind::Atomic {
            op,
            dt,
            kind,
            count: count as u32,
        };
        self.post_rma_copy(
            now, peer, kind, n as u64, result, src_op, src_cmp, rma_addr, key, context, flags,
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn post_rma(
        &mut self,
        now: u64,
        peer: PeerIdx,
        kind: RmaKind,
        len: u64,
        iov: Option<UserIov>,
        result: Option<UserIov>,
        inject_src: &[u8],
        rma_addr: u64,
        key: u64,
        data: Option<u64>,
        context: u64,
        flags: OpFlags,
    ) -> Result<(), RdmError> {
        let inject = flags.contains(OpFlags::INJECT);
        if inject && len as usize > self.cfg.inject_size {
            return Err(RdmError::TooLong);
        }
        let silent = iov.is_none() && result.is_none() && inject;
        self.post_rma_inner(
            now,
            peer,
            kind,
            len,
            iov,
            result,
            inject,
            inject_src,
            &[],
            rma_addr,
            key,
            data,
            context,
            flags,
            silent,
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn post_rma_copy(
        &mut self,
        now: u64,
        peer: PeerIdx,
        kind: RmaKind,
        len: u64,
        result: Option<UserIov>,
        a: &[u8],
        b: &[u8],
        rma_addr: u64,
        key: u64,
        context: u64,
        flags: OpFlags,
    ) -> Result<(), RdmError> {
        // fi_inject_atomic: no event (results are not allowed with it).
        let silent = flags.contains(OpFlags::INJECT) && result.is_none();
        self.post_rma_inner(
            now, peer, kind, len, None, result, true, a, b, rma_addr, key, None, context, flags,
            silent,
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn post_rma_inner(
        &mut self,
        now: u64,
        peer: PeerIdx,
        kind: RmaKind,
        len: u64,
        iov: Option<UserIov>,
        result: Option<UserIov>,
        copy: bool,
        src_a: &[u8],
        src_b: &[u8],
        rma_addr: u64,
        key: u64,
        data: Option<u64>,
        context: u64,
        flags: OpFlags,
        silent: bool,
    ) -> Result<(), RdmError> {
        let Some(p) = self.peers.get(peer) else {
            return Err(RdmError::UnknownPeer);
        };
        if rma_addr.checked_add(len).is_none() {
            return Err(RdmError::InvalidArgument);
        }
        if self.rma.is_full() {
            return Err(RdmError::Again);
        }
        let errno = p.broken().or_else(|| {
            (p.hs_recv() && p.features() & FEATURE_RMA == 0).then_some(ErrorKind::NotSupported)
        });
        if let Some(errno) = errno {
            self.out
                .fail(context, cq_flags(kind), errno, 0, result.or(iov));
            return Ok(());
        }
        let report = !silent && (!self.cfg.tx_selective || flags.contains(OpFlags::COMPLETION));
        let op = RmaOp {
            peer,
            context,
            kind,
            key,
            addr: rma_addr,
            len,
            data,
            iov: None,
            result,
            copied: copy,
            next_off: 0,
            started: false,
            sent_pkts: 0,
            acked_pkts: 0,
            received: 0,
            report,
            queued: true,
            cma: false,
            no_cma: false,
        };
        let Ok(idx) = self.rma.insert(op) else {
            return Err(RdmError::Again);
        };
        if copy {
            let buf = &mut self.rma_bufs[idx.idx() as usize];
            buf.clear();
            match &iov {
                Some(v) => {
                    buf.resize(len as usize, 0);
                    v.copy_out(0, buf);
                }
                None => {
                    buf.extend_from_slice(src_a);
                    buf.extend_from_slice(src_b);
                }
            }
        }
        if let Some(op) = self.rma.get_mut(idx) {
            op.iov = iov;
        }
        if self.peers.get(peer).is_some_and(|p| p.hs_recv()) {
            self.out.rma.push_back(RmaQ::Op(idx));
        } else {
            self.rma_wait.push(idx);
        }
        self.contact(now, peer);
        Ok(())
    }

    /// Packets a write or read response stream to `peer` may have in the
    /// transport.
    pub(super) fn rma_window_pkts(&self, peer: PeerIdx) -> u32 {
        let per = (self.peer_mtu(peer) - RTW_LEN).max(1);
        (self.cfg.cts_window / per).clamp(1, u32::MAX as usize) as u32
    }

    /// The CMA descriptor segments of RMA op `idx` if it should ask the
    /// target for a single copy (large enough, CMA reaches the peer, the
    /// buffer describable and the request fitting one packet).
    fn rma_cma_segs(&self, idx: Handle, hdr: usize, lim: usize) -> Option<cma::Segs> {
        let op = self.rma.get(idx)?;
        if op.started || op.copied || op.no_cma || !self.cma_candidate(op.peer, op.len as usize) {
            return None;
        }
        if !matches!(op.kind, RmaKind::Write | RmaKind::Read) {
            return None;
        }
        let segs = op.iov.as_ref().and_then(cma::describe)?;
        (hdr + cma::desc_len(&segs) <= lim).then_some(segs)
    }

    /// The peer's handshake arrived: its waiting RMA ops may go.
    pub(super) fn release_rma(&mut self, peer: PeerIdx) {
        let mut i = 0;
        while i < self.rma_wait.len() {
            let idx = self.rma_wait[i];
            if !self.rma.contains(idx) {
                self.rma_wait.swap_remove(i);
                continue;
            }
            if self.rma.get(idx).is_some_and(|op| op.peer == peer) {
                self.rma_wait.swap_remove(i);
                let no_rma = self
                    .peers
                    .get(peer)
                    .is_some_and(|p| p.features() & FEATURE_RMA == 0);
                if no_rma {
                    self.finish_rma(idx, Some((ErrorKind::NotSupported, 0)));
                } else {
                    self.out.rma.push_back(RmaQ::Op(idx));
                }
                continue;
            }
            i += 1;
        }
    }

    /// The next RMA packet (initiator ops and reads served), if any.
    pub(super) fn poll_rma(&mut self, out: &mut [u8]) -> Option<TxInfo> {
        while let Some(q) = self.out.rma.pop_front() {
            let t = match q {
                RmaQ::Op(h) => self.emit_op(h, out),
                RmaQ::Serve(h) => self.emit_serve(h, out),
            };
            if t.is_some() {
                return t;
            }
        }
        None
    }

    fn emit_op(&mut self, idx: Handle, out: &mut [u8]) -> Option<TxInfo> {
        let peer = self.rma.get(idx)?.peer;
        let window = self.rma_window_pkts(peer);
        let lim = self.peer_mtu(peer).min(out.len());
        let out = &mut out[..lim];
        let cma_segs = self.rma_cma_segs(idx, RTW_LEN.max(RTR_LEN), lim);
        let pid = self.cfg.pid;
        let op = self.rma.get_mut(idx)?;
        op.queued = false;
        let oref = OpRef {
            tx_id: idx.idx(),
            op_gen: idx.generation(),
        };
        let len = match op.kind {
            RmaKind::Write if let Some(segs) = cma_segs => {
                // One request; the target copies the data from us.
                let hdr = RtwRepr {
                    flags: RTW_CMA | if op.data.is_some() { RTW_CQ_DATA } else { 0 },
                    op: oref,
                    key: op.key,
                    addr: op.addr,
                    total_len: op.len,
                    offset: 0,
                    cq_data: op.data.unwrap_or(0),
                };
                let at = emit_rtw(out, &hdr);
                op.cma = true;
                op.next_off = op.len;
                at + emit_cma_desc(&mut out[at..], pid, &segs)
            }
            RmaKind::Read if let Some(segs) = cma_segs => {
                let at = emit_rtr(
                    out,
                    &RtrRepr {
                        flags: RTR_CMA,
                        op: oref,
                        key: op.key,
                        addr: op.addr,
                        len: op.len,
                    },
                );
                op.cma = true;
                at + emit_cma_desc(&mut out[at..], pid, &segs)
            }
            RmaKind::Write => {
                if op.started && op.next_off >= op.len {
                    return None;
                }
                if op.sent_pkts.wrapping_sub(op.acked_pkts) >= window {
                    return None; // requeued by an acknowledgement
                }
                let hdr = RtwRepr {
                    flags: if op.data.is_some() { RTW_CQ_DATA } else { 0 },
                    op: oref,
                    key: op.key,
                    addr: op.addr,
                    total_len: op.len,
                    offset: op.next_off,
                    cq_data: op.data.unwrap_or(0),
                };
                let at = emit_rtw(out, &hdr);
                let n = ((op.len - op.next_off) as usize).min(out.len() - at);
                let off = op.next_off as usize;
                let dst = &mut out[at..at + n];
                if op.copied {
                    dst.copy_from_slice(&self.rma_bufs[idx.idx() as usize][off..off + n]);
                } else if let Some(iov) = &op.iov {
                    iov.copy_out(off, dst);
                }
                op.next_off += n as u64;
                at + n
            }
            RmaKind::Read => {
                if op.started {
                    return None;
                }
                emit_rtr(
                    out,
                    &RtrRepr {
                        flags: 0,
                        op: oref,
                        key: op.key,
                        addr: op.addr,
                        len: op.len,
                    },
                )
            }
            RmaKind::Atomic {
                op: aop,
                dt,
                kind,
                count,
            } => {
                if op.started {
                    return None;
                }
                let at = emit_rta(
                    out,
                    &RtaRepr {
                        op: oref,
                        key: op.key,
                        addr: op.addr,
                        atomic_op: aop.code(),
                        datatype: dt.code(),
                        kind: kind.to_wire(),
                        count,
                    },
                );
                let src = &self.rma_bufs[idx.idx() as usize];
                if out.len() < at + src.len() {
                    return None;
                }
                out[at..at + src.len()].copy_from_slice(src);
                at + src.len()
            }
        };
        op.started = true;
        op.sent_pkts += 1;
        if op.kind == RmaKind::Write
            && op.next_off < op.len
            && op.sent_pkts.wrapping_sub(op.acked_pkts) < window
        {
            op.queued = true;
            self.out.rma.push_back(RmaQ::Op(idx));
        }
        Some(TxInfo {
            peer: op.peer,
            len,
            token: token(TOK_RMA, idx),
        })
    }

    /// Transport verdict on an initiator RMA packet.
    pub(super) fn rma_sent(&mut self, idx: Handle, res: Result<(), TxError>) {
        let Some(op) = self.rma.get_mut(idx) else {
            return;
        };
        let peer = op.peer;
        match res {
            Ok(()) => {
                op.acked_pkts += 1;
                if op.kind == RmaKind::Write && op.next_off < op.len && !op.queued {
                    op.queued = true;
                    self.out.rma.push_back(RmaQ::Op(idx));
                }
                self.mark_alive(peer);
            }
            Err(e) => self.peer_failed(peer, e),
        }
    }

    /// The live initiator op a response names, or `None` (stale, counted).
    fn rma_op_for(&mut self, peer: PeerIdx, r: OpRef, want: fn(RmaKind) -> bool) -> Option<Handle> {
        let h = Handle::from_parts(r.tx_id, r.op_gen);
        // A generation wider than handles carry names no op of ours.
        let ok = h.generation() == r.op_gen
            && self
                .rma
                .get(h)
                .is_some_and(|op| op.peer == peer && want(op.kind) && op.started);
        if !ok {
            self.out.stats.stale += 1;
            return None;
        }
        Some(h)
    }

    pub(super) fn on_write_rsp(&mut self, peer: PeerIdx, r: RspRepr) {
        let Some(idx) = self.rma_op_for(peer, r.op, |k| k == RmaKind::Write) else {
            return;
        };
        if r.flags & RSP_NO_CMA != 0 {
            // The target could not read our memory: send the data.
            let Some(op) = self.rma.get_mut(idx) else {
                return;
            };
            if !op.cma {
                self.out.stats.stale += 1;
                return;
            }
            op.cma = false;
            op.no_cma = true;
            op.next_off = 0;
            let queue = !op.queued;
            op.queued = true;
            self.cma_refused(peer);
            if queue {
                self.out.rma.push_back(RmaQ::Op(idx));
            }
            return;
        }
        let err = ErrorKind::from_status(r.status).map(|k| (k, 0));
        self.finish_rma(idx, err);
    }

    pub(super) fn on_read_rsp(&mut self, peer: PeerIdx, h: ReadRspRepr, payload: &[u8]) {
        let Some(idx) = self.rma_op_for(peer, h.op, |k| k == RmaKind::Read) else {
            return;
        };
        if let Some(kind) = ErrorKind::from_status(h.status) {
            self.finish_rma(idx, Some((kind, 0)));
            return;
        }
        let Some(op) = self.rma.get_mut(idx) else {
            return;
        };
        if h.flags & READRSP_PLACED != 0 {
            // The target wrote every byte into our buffer.
            if !op.cma {
                self.out.stats.malformed += 1;
                return;
            }
            self.finish_rma(idx, None);
            return;
        }
        if op.cma {
            // Served in packets: the target could not write to us.
            op.cma = false;
            self.cma_refused(peer);
        }
        let Some(op) = self.rma.get_mut(idx) else {
            return;
        };
        let fits = h
            .offset
            .checked_add(payload.len() as u64)
            .is_some_and(|e| e <= op.len);
        if !fits {
            self.out.stats.malformed += 1;
            return;
        }
        if let Some(iov) = op.iov.as_mut() {
            iov.copy_in(h.offset as usize, payload);
        }
        op.received += payload.len() as u64;
        if op.received >= op.len {
            self.finish_rma(idx, None);
        }
    }

    pub(super) fn on_atom_rsp(&mut self, peer: PeerIdx, h: RspRepr, payload: &[u8]) {
        let Some(idx) = self.rma_op_for(peer, h.op, |k| matches!(k, RmaKind::Atomic { .. })) else {
            return;
        };
        if let Some(kind) = ErrorKind::from_status(h.status) {
            self.finish_rma(idx, Some((kind, 0)));
            return;
        }
        let Some(op) = self.rma.get_mut(idx) else {
            return;
        };
        if let Some(res) = op.result.as_mut() {
            if payload.len() as u64 != op.len {
                self.out.stats.malformed += 1;
                self.finish_rma(idx, Some((ErrorKind::InvalidArgument, 0)));
                return;
            }
            res.copy_in(0, payload);
        }
        self.finish_rma(idx, None);
    }

    /// Completes initiator op `idx` (with `err`: (errno, prov_errno)).
    pub(super) fn finish_rma(&mut self, idx: Handle, err: Option<(ErrorKind, i32)>) {
        let Some(mut op) = self.rma.remove(idx) else {
            return;
        };
        let report = op.report || err.is_some();
        self.out.cq.push_back(Completion {
            context: op.context,
            flags: cq_flags(op.kind),
            len: if err.is_some() { 0 } else { op.len as usize },
            buf: 0,
            data: 0,
            tag: 0,
            src: None,
            report,
            err: err.map(|(kind, prov_errno)| CompletionError {
                kind,
                prov_errno,
                olen: 0,
                err_data: Vec::new(),
            }),
            iov: op.result.take().or(op.iov.take()),
        });
    }

    /// Fails every RMA op toward `peer` and stops serving its reads.
    pub(super) fn fail_peer_rma(&mut self, peer: PeerIdx, kind: ErrorKind, prov_errno: i32) {
        for i in 0..self.rma.slots() {
            if let Some((h, op)) = self.rma.entry_at(i)
                && op.peer == peer
            {
                self.finish_rma(h, Some((kind, prov_errno)));
            }
        }
        self.wr_in.retain(|&(p, _, _), _| p != peer);
        for i in 0..self.rd_out.slots() {
            if let Some((h, r)) = self.rd_out.entry_at(i)
                && r.peer == peer
            {
                self.free_serve(h);
            }
        }
    }
}
