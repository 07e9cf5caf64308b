//! Sends: the application's calls, and the packets that move a send on
//! (CTS, CREDIT, RECEIPT, FIN), routed to the send part.

use super::Endpoint;
use crate::mem::UserIov;
use crate::rdm::cma;
use crate::rdm::peer::PeerIdx;
use crate::rdm::proto;
use crate::rdm::tx::{CtsOutcome, NewSend};
use crate::rdm::{CompFlags, Completion, OpFlags, RdmError};
use crate::wire::rdm::{
    CreditRepr, CtsRepr, FinRepr, Proto, REQ_CQ_DATA, REQ_LEN, REQ_TAGGED, ReceiptRepr, ReqRepr,
    emit_req,
};

impl Endpoint {
    /// fi_send/fi_sendmsg. `data`: remote CQ data.
    pub fn send(
        &mut self,
        now: u64,
        peer: PeerIdx,
        iov: UserIov,
        data: Option<u64>,
        context: u64,
        flags: OpFlags,
    ) -> Result<(), RdmError> {
        self.post_send(now, peer, Some(iov), &[], false, 0, data, context, flags)
    }

    /// fi_tsend/fi_tsendmsg.
    #[allow(clippy::too_many_arguments)]
    pub fn tsend(
        &mut self,
        now: u64,
        peer: PeerIdx,
        iov: UserIov,
        tag: u64,
        data: Option<u64>,
        context: u64,
        flags: OpFlags,
    ) -> Result<(), RdmError> {
        self.post_send(now, peer, Some(iov), &[], true, tag, data, context, flags)
    }

    /// fi_inject/fi_injectdata: copied now, no completion event (a
    /// completion with `report == false` is still produced for counters).
    pub fn inject(
        &mut self,
        now: u64,
        peer: PeerIdx,
        buf: &[u8],
        data: Option<u64>,
    ) -> Result<(), RdmError> {
        self.post_send(now, peer, None, buf, false, 0, data, 0, OpFlags::INJECT)
    }

    /// fi_tinject/fi_tinjectdata.
    pub fn tinject(
        &mut self,
        now: u64,
        peer: PeerIdx,
        buf: &[u8],
        tag: u64,
        data: Option<u64>,
    ) -> Result<(), RdmError> {
        self.post_send(now, peer, None, buf, true, tag, data, 0, OpFlags::INJECT)
    }

    #[allow(clippy::too_many_arguments)]
    fn post_send(
        &mut self,
        now: u64,
        peer: PeerIdx,
        iov: Option<UserIov>,
        inject_src: &[u8],
        tagged: bool,
        tag: u64,
        data: Option<u64>,
        context: u64,
        flags: OpFlags,
    ) -> Result<(), RdmError> {
        let Some(p) = self.peers.get(peer) else {
            return Err(RdmError::UnknownPeer);
        };
        // `iov == None` is fi_inject: no event at all.
        let silent = iov.is_none();
        let inject = flags.contains(OpFlags::INJECT);
        let len = iov.as_ref().map_or(inject_src.len(), UserIov::len);
        if inject && len > self.cfg.inject_size {
            return Err(RdmError::TooLong);
        }
        if self.tx.is_full() {
            return Err(RdmError::Again);
        }
        if let Some(kind) = p.broken() {
            // Accepted, and failed like the operations before it.
            let flags = CompFlags::msg(CompFlags::SEND, tagged);
            self.out.fail(context, flags, kind, 0, iov);
            return Ok(());
        }
        let s = NewSend {
            peer,
            context,
            tagged,
            tag,
            data,
            len,
            proto: self.choose_proto(peer, len, iov.as_ref(), inject),
            want_receipt: flags.contains(OpFlags::DELIVERY_COMPLETE),
            report: !silent && (!self.cfg.tx_selective || flags.contains(OpFlags::COMPLETION)),
            inject,
            early: inject
                && (flags.contains(OpFlags::INJECT_COMPLETE)
                    || !flags.intersects(OpFlags::TRANSMIT_COMPLETE | OpFlags::DELIVERY_COMPLETE)),
        };
        self.tx.post(s, iov, inject_src, &mut self.out)?;
        self.peers.contact(now, peer, &mut self.out);
        Ok(())
    }

    /// The same-host fast path's question: may a `len`-byte message to
    /// `peer` go as one eager REQ that the glue writes straight into the
    /// peer's link, without a send operation? Yes when the peer is settled
    /// (both handshakes, alive, not broken), nothing of ours is queued
    /// that it could overtake, credit allows it, and it fits one packet of
    /// the link (`REQ_LEN + len`) and the eager cut-off. Then
    /// [`fast_req`](Self::fast_req) must follow, with no call between.
    pub fn fast_ready(&self, peer: PeerIdx, len: usize) -> bool {
        len <= self.cut.eager_max
            && REQ_LEN + len <= self.peers.mtu(peer)
            && self.peers.settled(peer)
            && self.tx.may_bypass(peer)
    }

    /// Writes the REQ of a message `fast_ready` admitted into `out` (≥
    /// `REQ_LEN` bytes; the payload follows it there) and takes its
    /// msg_id. The message is handed over once the glue has pushed the
    /// packet (a same-host ring is reliable and in order): its send
    /// completion is queued now. `silent` (fi_inject): no event, and a
    /// completion only when `counted` (a counter must see it).
    #[allow(clippy::too_many_arguments)]
    pub fn fast_req(
        &mut self,
        peer: PeerIdx,
        len: usize,
        tagged: bool,
        tag: u64,
        data: Option<u64>,
        context: u64,
        flags: OpFlags,
        silent: bool,
        counted: bool,
        out: &mut [u8],
    ) -> usize {
        let msg_id = self.tx.bypass_msg_id(peer);
        self.out.stats.fast_sends += 1;
        let mut req_flags = 0;
        if tagged {
            req_flags |= REQ_TAGGED;
        }
        if data.is_some() {
            req_flags |= REQ_CQ_DATA;
        }
        let hdr = ReqRepr {
            flags: req_flags,
            proto: Proto::Eager,
            msg_id,
            tx_id: 0,
            tag,
            cq_data: data.unwrap_or(0),
            total_len: len as u64,
            offset: 0,
        };
        let n = emit_req(out, &hdr, None);
        if silent && !counted {
            return n;
        }
        let report = !silent && (!self.cfg.tx_selective || flags.contains(OpFlags::COMPLETION));
        self.out
            .complete(Completion::sent(context, tagged, len, report, None));
        n
    }

    /// The protocol of a `len`-byte send to `peer`: long-read when CMA
    /// reaches it and the buffer can be described, else by size, with
    /// eager up to one packet of that peer's link.
    fn choose_proto(
        &self,
        peer: PeerIdx,
        len: usize,
        iov: Option<&UserIov>,
        inject: bool,
    ) -> Proto {
        let mtu = self.peers.mtu(peer);
        let addr = self.cfg.local_addr.len();
        if !inject
            && self.peers.cma_candidate(peer, len)
            && let Some(segs) = iov.and_then(cma::describe)
            && REQ_LEN + addr + cma::desc_len(&segs) <= mtu
        {
            return Proto::LongRead;
        }
        let mut cut = self.cut;
        if mtu > self.cfg.mtu {
            // Eager as "one packet" follows the link; a smaller configured
            // eager limit stays.
            let fit = |m: usize| m - REQ_LEN - addr;
            if cut.eager_max >= fit(self.cfg.mtu) {
                cut.eager_max = fit(mtu);
                cut.medium_max = cut.medium_max.max(cut.eager_max);
            }
        }
        proto::choose(cut, len)
    }

    /// Long-CTS sender: a CTS from the receiver.
    pub(super) fn on_cts(&mut self, peer: PeerIdx, c: CtsRepr) {
        match self.tx.on_cts(peer, c) {
            CtsOutcome::Stale => self.out.stats.stale += 1,
            CtsOutcome::Granted => {}
            CtsOutcome::FellBack => self.peers.cma_refused(peer),
        }
    }

    /// The peer delivered every message below `next`: unblock sends.
    pub(super) fn on_credit(&mut self, peer: PeerIdx, c: CreditRepr) {
        self.tx.on_credit(peer, c.next_msg_id);
    }

    /// FI_DELIVERY_COMPLETE: the receiver placed the data.
    pub(super) fn on_receipt(&mut self, peer: PeerIdx, r: ReceiptRepr) {
        if !self.tx.on_receipt(peer, r, &mut self.out) {
            self.out.stats.stale += 1;
        }
    }

    /// Long-read: the receiver copied the message (or could not).
    pub(super) fn on_fin(&mut self, peer: PeerIdx, f: FinRepr) {
        if !self.tx.on_fin(peer, f, &mut self.out) {
            self.out.stats.stale += 1;
        }
    }

    /// The glue's link to `peer` is full (`true`) or has room again: while
    /// paused, no send data to it comes out of `poll_transmit` (control
    /// packets and RMA, which has its own per-operation window, still do),
    /// so the packets the glue must keep for a full link stay bounded and
    /// the other peers' traffic goes on.
    pub fn set_peer_paused(&mut self, peer: PeerIdx, paused: bool) {
        if self.peers.get(peer).is_some() {
            self.tx.set_paused(peer, paused);
        }
    }

    /// Peers `set_peer_paused` holds back now.
    pub fn paused_peers(&self) -> usize {
        self.tx.paused_peers()
    }

    /// Whether `set_peer_paused` holds `peer` back.
    pub fn peer_paused(&self, peer: PeerIdx) -> bool {
        self.tx.peer_paused(peer)
    }
}
