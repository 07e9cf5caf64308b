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
//!   FI_DELIVERY_COMPLETE both hold, and errors reach the initiator. A
//!   write whose packets left their payload in the caller's buffer (zero
//!   copy) also waits for every packet to be confirmed: a resend of one
//!   whose ack trails the response must still find the bytes.
//! - Read: one RTR; the target streams READRSP packets (same window) or a
//!   READRSP with an error status.
//! - Atomic: one RTA with the operands (count limited to one packet); the
//!   target executes it when the packet is processed and answers with an
//!   ATOMRSP carrying the old values for the fetch and compare kinds.
//!
//! This module is the initiator part ([`RmaInit`]): its operations, their
//! copied payloads, the ops waiting for a handshake, their packets and the
//! responses that end them. Invariants kept here: an op is queued (in the
//! RMA transmit queue) exactly when its `queued` flag is set, or waits for
//! its peer's handshake in `wait`; a write keeps at most its window of
//! packets unconfirmed. The target part is in `rma_target`; the calls
//! (fi_write, fi_read, fi_atomic...) are the coordinator's
//! (`endpoint/rma.rs`).

use super::atomic::{AtomicKind, AtomicOp, Datatype};
use super::cma;
use super::outbox::{Ctx, Outbox, RmaQ, TOK_RMA, token};
use super::peer::{PeerIdx, Peers};
use super::pool::{Handle, Slab};
use super::types::{CompFlags, ErrorKind};
use super::{Completion, CompletionError, ExtSlice, TxInfo};
use crate::mem::UserIov;
use crate::wire::rdm::{
    OpRef, READRSP_PLACED, RSP_NO_CMA, RTR_CMA, RTR_LEN, RTW_CMA, RTW_CQ_DATA, RTW_LEN,
    ReadRspRepr, RspRepr, RtaRepr, RtrRepr, RtwRepr, emit_cma_desc, emit_rta, emit_rtr, emit_rtw,
};
use std::collections::VecDeque;

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
pub(super) enum RmaKind {
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
struct RmaOp {
    peer: PeerIdx,
    context: u64,
    kind: RmaKind,
    key: u64,
    addr: u64,
    len: u64,
    data: Option<u64>,
    /// Write source / read destination, handed back at completion.
    iov: Option<UserIov>,
    /// Fetch/compare atomics: where the old values go.
    result: Option<UserIov>,
    /// The payload was copied to the part's buffer of this slot (inject,
    /// atomics).
    copied: bool,
    next_off: u64,
    started: bool,
    sent_pkts: u32,
    acked_pkts: u32,
    /// Read: bytes arrived.
    received: u64,
    report: bool,
    queued: bool,
    /// The request asked the target to copy with CMA (RTW_CMA/RTR_CMA).
    cma: bool,
    /// The target refused CMA for it: move the data in packets.
    no_cma: bool,
    /// Some packet of this write left its payload in the caller's buffer
    /// (zero copy): the write completes only once every packet is
    /// confirmed, so a resend never finds the buffer handed back.
    by_ref: bool,
    /// The WRITERSP's verdict, held while packets are unconfirmed.
    verdict: Option<Option<(ErrorKind, i32)>>,
}

/// An operation the coordinator has checked.
pub(super) struct NewRma {
    pub peer: PeerIdx,
    pub context: u64,
    pub kind: RmaKind,
    pub key: u64,
    pub addr: u64,
    pub len: u64,
    /// Remote CQ data of a write.
    pub data: Option<u64>,
    /// Selective completion verdict.
    pub report: bool,
}

/// Where an operation's bytes come from and go.
pub(super) struct RmaBufs<'a> {
    /// Write source / read destination.
    pub iov: Option<UserIov>,
    /// Fetch/compare atomics: where the old values go.
    pub result: Option<UserIov>,
    /// Copy the payload now: from `iov` if given, else `a` then `b`
    /// (inject data; atomic operands and compare values).
    pub copy: bool,
    pub a: &'a [u8],
    pub b: &'a [u8],
}

/// Packets a write or read response stream over a link of `mtu` bytes may
/// have in the transport: `cts_window` bytes' worth.
pub(super) fn window_pkts(mtu: usize, cts_window: usize) -> u32 {
    let per = (mtu - RTW_LEN).max(1);
    (cts_window / per).clamp(1, u32::MAX as usize) as u32
}

pub(super) fn cq_flags(kind: RmaKind) -> CompFlags {
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

/// The initiator part.
pub(super) struct RmaInit {
    ops: Slab<RmaOp>,
    /// Copied payloads, one reusable buffer per slot.
    bufs: Vec<Vec<u8>>,
    /// Ops waiting for their peer's handshake (RMA packets carry no
    /// address: the target must know us first).
    wait: Vec<Handle>,
    cts_window: usize,
    /// Our pid, stated in CMA descriptors.
    pid: u32,
}

impl RmaInit {
    pub fn new(size: usize, cts_window: usize, pid: u32) -> Self {
        RmaInit {
            ops: Slab::with_capacity(size),
            bufs: (0..size).map(|_| Vec::new()).collect(),
            wait: Vec::new(),
            cts_window,
            pid,
        }
    }

    pub fn is_full(&self) -> bool {
        self.ops.is_full()
    }

    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// Appends the peers of the operations in flight.
    pub fn waited_peers(&self, out: &mut Vec<PeerIdx>) {
        out.extend(self.ops.iter().map(|(_, o)| o.peer));
    }

    /// Starts an operation: its payload is copied now if asked, and it is
    /// queued, or waits for its peer's handshake (`ready == false`).
    pub fn post(
        &mut self,
        r: NewRma,
        bufs: RmaBufs<'_>,
        ready: bool,
        q: &mut VecDeque<RmaQ>,
    ) -> Result<(), super::RdmError> {
        let op = RmaOp {
            peer: r.peer,
            context: r.context,
            kind: r.kind,
            key: r.key,
            addr: r.addr,
            len: r.len,
            data: r.data,
            iov: None,
            result: bufs.result,
            copied: bufs.copy,
            next_off: 0,
            started: false,
            sent_pkts: 0,
            acked_pkts: 0,
            received: 0,
            report: r.report,
            queued: true,
            cma: false,
            no_cma: false,
            by_ref: false,
            verdict: None,
        };
        let Ok(idx) = self.ops.insert(op) else {
            return Err(super::RdmError::Again);
        };
        if bufs.copy {
            let buf = &mut self.bufs[idx.idx() as usize];
            buf.clear();
            match &bufs.iov {
                Some(v) => {
                    buf.resize(r.len as usize, 0);
                    v.copy_out(0, buf);
                }
                None => {
                    buf.extend_from_slice(bufs.a);
                    buf.extend_from_slice(bufs.b);
                }
            }
        }
        if let Some(op) = self.ops.get_mut(idx) {
            op.iov = bufs.iov;
        }
        if ready {
            q.push_back(RmaQ::Op(idx));
        } else {
            self.wait.push(idx);
        }
        Ok(())
    }

    /// The CMA descriptor segments of op `idx` if it should ask the
    /// target for a single copy (large enough, CMA reaches the peer, the
    /// buffer describable and the request fitting one packet).
    fn cma_segs(&self, idx: Handle, peers: &Peers, hdr: usize, lim: usize) -> Option<cma::Segs> {
        let op = self.ops.get(idx)?;
        if op.started || op.copied || op.no_cma || !peers.cma_candidate(op.peer, op.len as usize) {
            return None;
        }
        if !matches!(op.kind, RmaKind::Write | RmaKind::Read) {
            return None;
        }
        let segs = op.iov.as_ref().and_then(cma::describe)?;
        (hdr + cma::desc_len(&segs) <= lim).then_some(segs)
    }

    /// `peer`'s handshake arrived: its waiting ops go, or fail when it
    /// does not speak RMA (`rma == false`).
    pub fn release(&mut self, peer: PeerIdx, rma: bool, out: &mut Outbox) {
        let mut i = 0;
        while i < self.wait.len() {
            let idx = self.wait[i];
            if !self.ops.contains(idx) {
                self.wait.swap_remove(i);
                continue;
            }
            if self.ops.get(idx).is_some_and(|op| op.peer == peer) {
                self.wait.swap_remove(i);
                if rma {
                    out.rma.push_back(RmaQ::Op(idx));
                } else {
                    self.finish(idx, Some((ErrorKind::NotSupported, 0)), out);
                }
                continue;
            }
            i += 1;
        }
    }

    /// The next packet of op `idx` into `out`; a write with more to send
    /// inside its window goes back on `q`.
    pub fn emit(
        &mut self,
        idx: Handle,
        peers: &Peers,
        q: &mut VecDeque<RmaQ>,
        out: &mut [u8],
    ) -> Option<TxInfo> {
        let peer = self.ops.get(idx)?.peer;
        let window = window_pkts(peers.mtu(peer), self.cts_window);
        let lim = peers.mtu(peer).min(out.len());
        let out = &mut out[..lim];
        let cma_segs = self.cma_segs(idx, peers, RTW_LEN.max(RTR_LEN), lim);
        let zc = peers.zero_copy(peer);
        // The part of a write's packet left in the caller's buffer.
        let mut ext = None;
        let pid = self.pid;
        let op = self.ops.get_mut(idx)?;
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
                op.next_off += n as u64;
                if op.copied {
                    dst.copy_from_slice(&self.bufs[idx.idx() as usize][off..off + n]);
                    at + n
                } else if let Some(iov) = &op.iov {
                    if zc && super::proto::leaves_in_place(iov, off, n) {
                        op.by_ref = true;
                        ext = Some(ExtSlice {
                            off: off as u64,
                            len: n as u32,
                        });
                        at
                    } else {
                        iov.copy_out(off, dst);
                        at + n
                    }
                } else {
                    at + n
                }
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
                let src = &self.bufs[idx.idx() as usize];
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
            q.push_back(RmaQ::Op(idx));
        }
        Some(TxInfo {
            peer: op.peer,
            len,
            token: token(TOK_RMA, idx),
            ext,
        })
    }

    /// The source of write `h`'s zero-copy packets (`TxInfo::ext`) while
    /// the write lives; `None` once it ended (its buffer is the caller's
    /// again) or for anything but a write from the caller's memory.
    pub fn iov_of(&self, h: Handle) -> Option<&UserIov> {
        let op = self.ops.get(h)?;
        if op.kind != RmaKind::Write || op.copied {
            return None;
        }
        op.iov.as_ref()
    }

    /// Transport verdict on a packet of op `idx`: its peer (`None`: the
    /// op ended). A confirmed packet may let a write send more.
    pub fn sent(&mut self, idx: Handle, ok: bool, out: &mut Outbox) -> Option<PeerIdx> {
        let op = self.ops.get_mut(idx)?;
        let peer = op.peer;
        if ok {
            op.acked_pkts += 1;
            if op.kind == RmaKind::Write && op.next_off < op.len && !op.queued {
                op.queued = true;
                out.rma.push_back(RmaQ::Op(idx));
            }
            if op.acked_pkts == op.sent_pkts
                && let Some(err) = op.verdict
            {
                self.finish(idx, err, out);
            }
        }
        Some(peer)
    }

    /// The live op a response names, or `None` (stale, counted).
    fn op_for(
        &self,
        out: &mut Outbox,
        peer: PeerIdx,
        r: OpRef,
        want: fn(RmaKind) -> bool,
    ) -> Option<Handle> {
        let h = Handle::from_parts(r.tx_id, r.op_gen);
        // A generation wider than handles carry names no op of ours.
        let ok = h.generation() == r.op_gen
            && self
                .ops
                .get(h)
                .is_some_and(|op| op.peer == peer && want(op.kind) && op.started);
        if !ok {
            out.stats.stale += 1;
            return None;
        }
        Some(h)
    }

    pub fn on_write_rsp(&mut self, ctx: &mut Ctx<'_>, peer: PeerIdx, r: RspRepr) {
        let Some(idx) = self.op_for(ctx.out, peer, r.op, |k| k == RmaKind::Write) else {
            return;
        };
        if r.flags & RSP_NO_CMA != 0 {
            // The target could not read our memory: send the data.
            let Some(op) = self.ops.get_mut(idx) else {
                return;
            };
            if !op.cma {
                ctx.out.stats.stale += 1;
                return;
            }
            op.cma = false;
            op.no_cma = true;
            op.next_off = 0;
            let queue = !op.queued;
            op.queued = true;
            ctx.peers.cma_refused(peer);
            if queue {
                ctx.out.rma.push_back(RmaQ::Op(idx));
            }
            return;
        }
        let err = ErrorKind::from_status(r.status).map(|k| (k, 0));
        let Some(op) = self.ops.get_mut(idx) else {
            return;
        };
        if op.by_ref && op.acked_pkts != op.sent_pkts {
            // Every byte arrived (or the target refused): nothing more
            // goes, and the write ends when its packets are confirmed
            // (their acks may trail the response; a resend must still
            // find the buffer).
            op.next_off = op.len;
            op.verdict = Some(err);
            return;
        }
        self.finish(idx, err, ctx.out);
    }

    pub fn on_read_rsp(
        &mut self,
        ctx: &mut Ctx<'_>,
        peer: PeerIdx,
        h: ReadRspRepr,
        payload: &[u8],
    ) {
        let Some(idx) = self.op_for(ctx.out, peer, h.op, |k| k == RmaKind::Read) else {
            return;
        };
        if let Some(kind) = ErrorKind::from_status(h.status) {
            self.finish(idx, Some((kind, 0)), ctx.out);
            return;
        }
        let Some(op) = self.ops.get_mut(idx) else {
            return;
        };
        if h.flags & READRSP_PLACED != 0 {
            // The target wrote every byte into our buffer.
            if !op.cma {
                ctx.out.stats.malformed += 1;
                return;
            }
            self.finish(idx, None, ctx.out);
            return;
        }
        if op.cma {
            // Served in packets: the target could not write to us.
            op.cma = false;
            ctx.peers.cma_refused(peer);
        }
        let fits = h
            .offset
            .checked_add(payload.len() as u64)
            .is_some_and(|e| e <= op.len);
        if !fits {
            ctx.out.stats.malformed += 1;
            return;
        }
        if let Some(iov) = op.iov.as_mut() {
            iov.copy_in(h.offset as usize, payload);
        }
        op.received += payload.len() as u64;
        if op.received >= op.len {
            self.finish(idx, None, ctx.out);
        }
    }

    pub fn on_atom_rsp(&mut self, out: &mut Outbox, peer: PeerIdx, h: RspRepr, payload: &[u8]) {
        let Some(idx) = self.op_for(out, peer, h.op, |k| matches!(k, RmaKind::Atomic { .. }))
        else {
            return;
        };
        if let Some(kind) = ErrorKind::from_status(h.status) {
            self.finish(idx, Some((kind, 0)), out);
            return;
        }
        let Some(op) = self.ops.get_mut(idx) else {
            return;
        };
        if let Some(res) = op.result.as_mut() {
            if payload.len() as u64 != op.len {
                out.stats.malformed += 1;
                self.finish(idx, Some((ErrorKind::InvalidArgument, 0)), out);
                return;
            }
            res.copy_in(0, payload);
        }
        self.finish(idx, None, out);
    }

    /// Completes op `idx` (with `err`: (errno, prov_errno)).
    fn finish(&mut self, idx: Handle, err: Option<(ErrorKind, i32)>, out: &mut Outbox) {
        let Some(mut op) = self.ops.remove(idx) else {
            return;
        };
        let report = op.report || err.is_some();
        out.complete(Completion {
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

    /// Fails every op toward `peer`.
    pub fn fail_peer(&mut self, peer: PeerIdx, kind: ErrorKind, prov_errno: i32, out: &mut Outbox) {
        for i in 0..self.ops.slots() {
            if let Some((h, op)) = self.ops.entry_at(i)
                && op.peer == peer
            {
                self.finish(h, Some((kind, prov_errno)), out);
            }
        }
    }
}
