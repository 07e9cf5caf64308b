//! RMA and atomics across the parts: the application's calls (checked
//! here, carried by the initiator part), the requests from peers (the
//! target part), the responses (the initiator part), and the transmit
//! queue both share.

use super::Endpoint;
use crate::mem::UserIov;
use crate::rdm::atomic::{self, AtomicKind, AtomicOp, Datatype};
use crate::rdm::outbox::RmaQ;
use crate::rdm::peer::PeerIdx;
use crate::rdm::pool::Handle;
use crate::rdm::rma::{NewRma, RemoteCounts, RmaBufs, RmaKind, RmaTarget, cq_flags};
use crate::rdm::{ErrorKind, OpFlags, PacketOutcome, RdmError, TxError, TxInfo};
use crate::wire::rdm::{
    CmaDesc, FEATURE_RMA, RSP_LEN, RTA_LEN, ReadRspRepr, RspRepr, RtaRepr, RtrRepr, RtwRepr,
};

impl Endpoint {
    /// Installs the memory registry that RMA and atomics from peers use.
    /// Without one, every such request is refused with ErrorKind::NotSupported.
    pub fn set_rma_target(&mut self, t: Box<dyn RmaTarget + Send>) {
        self.serve.set_target(t);
    }

    /// Counts of remote reads/writes since the last call (counters).
    pub fn take_remote_counts(&mut self) -> RemoteCounts {
        self.serve.take_remote_counts()
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
        let r = NewRma {
            peer,
            context,
            kind: RmaKind::Write,
            key,
            addr: rma_addr,
            len: iov.len() as u64,
            data,
            report: false,
        };
        self.post_rma(now, r, Some(iov), &[], flags)
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
        let r = NewRma {
            peer,
            context: 0,
            kind: RmaKind::Write,
            key,
            addr: rma_addr,
            len: buf.len() as u64,
            data,
            report: false,
        };
        self.post_rma(now, r, None, buf, OpFlags::INJECT)
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
        let r = NewRma {
            peer,
            context,
            kind: RmaKind::Read,
            key,
            addr: rma_addr,
            len: iov.len() as u64,
            data: None,
            report: false,
        };
        self.post_rma(now, r, Some(iov), &[], flags - OpFlags::INJECT)
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
        let r = NewRma {
            peer,
            context,
            kind: RmaKind::Atomic {
                op,
                dt,
                kind,
                count: count as u32,
            },
            key,
            addr: rma_addr,
            len: n as u64,
            data: None,
            report: false,
        };
        // fi_inject_atomic: no event (results are not allowed with it).
        let silent = flags.contains(OpFlags::INJECT) && result.is_none();
        let bufs = RmaBufs {
            iov: None,
            result,
            copy: true,
            a: src_op,
            b: src_cmp,
        };
        self.start_rma(now, r, bufs, flags, silent)
    }

    /// A write or read: `OpFlags::INJECT` copies the payload now.
    fn post_rma(
        &mut self,
        now: u64,
        r: NewRma,
        iov: Option<UserIov>,
        inject_src: &[u8],
        flags: OpFlags,
    ) -> Result<(), RdmError> {
        let inject = flags.contains(OpFlags::INJECT);
        if inject && r.len as usize > self.cfg.inject_size {
            return Err(RdmError::TooLong);
        }
        let silent = iov.is_none() && inject;
        let bufs = RmaBufs {
            iov,
            result: None,
            copy: inject,
            a: inject_src,
            b: &[],
        };
        self.start_rma(now, r, bufs, flags, silent)
    }

    fn start_rma(
        &mut self,
        now: u64,
        mut r: NewRma,
        bufs: RmaBufs<'_>,
        flags: OpFlags,
        silent: bool,
    ) -> Result<(), RdmError> {
        let peer = r.peer;
        let Some(p) = self.peers.get(peer) else {
            return Err(RdmError::UnknownPeer);
        };
        if r.addr.checked_add(r.len).is_none() {
            return Err(RdmError::InvalidArgument);
        }
        if self.rma.is_full() {
            return Err(RdmError::Again);
        }
        let errno = p.broken().or_else(|| {
            (p.hs_recv() && p.features() & FEATURE_RMA == 0).then_some(ErrorKind::NotSupported)
        });
        if let Some(errno) = errno {
            let iov = bufs.result.or(bufs.iov);
            self.out.fail(r.context, cq_flags(r.kind), errno, 0, iov);
            return Ok(());
        }
        // RMA packets carry no address: the target must know us first.
        let ready = p.hs_recv();
        r.report = !silent && (!self.cfg.tx_selective || flags.contains(OpFlags::COMPLETION));
        self.rma.post(r, bufs, ready, &mut self.out.rma)?;
        self.peers.contact(now, peer, &mut self.out);
        Ok(())
    }

    /// The peer's handshake arrived: its waiting RMA ops may go.
    pub(super) fn release_rma(&mut self, peer: PeerIdx) {
        let rma = self
            .peers
            .get(peer)
            .is_none_or(|p| p.features() & FEATURE_RMA != 0);
        self.rma.release(peer, rma, &mut self.out);
    }

    /// The next RMA packet (initiator ops and reads served), if any.
    pub(super) fn poll_rma(&mut self, out: &mut [u8]) -> Option<TxInfo> {
        while let Some(q) = self.out.rma.pop_front() {
            let t = match q {
                RmaQ::Op(h) => self.rma.emit(h, &self.peers, &mut self.out.rma, out),
                RmaQ::Serve(h) => self.serve.emit(h, &self.peers, &mut self.out.rma, out),
            };
            if t.is_some() {
                return t;
            }
        }
        None
    }

    /// Transport verdict on an initiator RMA packet.
    pub(super) fn rma_sent(&mut self, h: Handle, res: Result<(), TxError>) {
        let Some(peer) = self.rma.sent(h, res.is_ok(), &mut self.out) else {
            return;
        };
        match res {
            Ok(()) => self.peers.mark_alive(peer),
            Err(e) => self.peer_failed(peer, e),
        }
    }

    /// Transport verdict on a READRSP we served.
    pub(super) fn serve_sent(&mut self, h: Handle, res: Result<(), TxError>) {
        let Some(peer) = self
            .serve
            .sent(h, res.is_ok(), &self.peers, &mut self.out.rma)
        else {
            return;
        };
        match res {
            Ok(()) => self.peers.mark_alive(peer),
            Err(e) => self.peer_failed(peer, e),
        }
    }

    /// Fails every RMA op toward `peer` and stops serving its requests.
    pub(super) fn fail_peer_rma(&mut self, peer: PeerIdx, kind: ErrorKind, prov_errno: i32) {
        self.rma.fail_peer(peer, kind, prov_errno, &mut self.out);
        self.serve.forget_peer(peer);
    }

    // ---- packets ------------------------------------------------------------

    pub(super) fn on_rtw(&mut self, peer: PeerIdx, h: RtwRepr, payload: &[u8]) -> PacketOutcome {
        self.serve.on_rtw(&mut ctx!(self), peer, h, payload)
    }

    pub(super) fn on_rtr(
        &mut self,
        peer: PeerIdx,
        h: RtrRepr,
        desc: Option<CmaDesc<'_>>,
    ) -> PacketOutcome {
        self.serve.on_rtr(&mut ctx!(self), peer, h, desc)
    }

    pub(super) fn on_rta(&mut self, peer: PeerIdx, h: RtaRepr, payload: &[u8]) -> PacketOutcome {
        self.serve.on_rta(&mut self.out, peer, h, payload)
    }

    pub(super) fn on_write_rsp(&mut self, peer: PeerIdx, r: RspRepr) {
        self.rma.on_write_rsp(&mut ctx!(self), peer, r);
    }

    pub(super) fn on_read_rsp(&mut self, peer: PeerIdx, h: ReadRspRepr, payload: &[u8]) {
        self.rma.on_read_rsp(&mut ctx!(self), peer, h, payload);
    }

    pub(super) fn on_atom_rsp(&mut self, peer: PeerIdx, h: RspRepr, payload: &[u8]) {
        self.rma.on_atom_rsp(&mut self.out, peer, h, payload);
    }
}
