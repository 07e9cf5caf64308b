//! Transmit path: turning queued control packets and send operations into
//! datagrams, and finishing sends when the transport (and for
//! FI_DELIVERY_COMPLETE the receiver) has confirmed them.

use super::endpoint::{
    Ctrl, Endpoint, TOK_CREDIT, TOK_CTS, TOK_HS, TOK_RECEIPT, TOK_RMA, TOK_SERVE, TOK_TX,
    peer_token, token, untoken,
};
use super::peer::PeerIdx;
use super::pool::Handle;
use super::proto::{self, longcts};
use super::{CompFlags, Completion, CompletionError, ErrorKind, TxError, TxInfo};
use crate::mem::UserIov;
use crate::wire::rdm::{
    CREDIT_LEN, CTS_LEN, CreditRepr, CtsRepr, FIN_LEN, FinRepr, HANDSHAKE_LEN, Proto, RECEIPT_LEN,
    ReceiptRepr, emit_credit, emit_cts, emit_fin, emit_receipt,
};

/// One send operation.
#[derive(Debug)]
pub(crate) struct TxOp {
    pub peer: PeerIdx,
    pub context: u64,
    pub tagged: bool,
    pub tag: u64,
    pub data: Option<u64>,
    pub len: u64,
    pub msg_id: u32,
    pub proto: Proto,
    /// Caller buffers (None for inject: the copy is in `inject_bufs`).
    pub iov: Option<UserIov>,
    /// Next byte to hand to the transport.
    pub next_off: u64,
    pub req_sent: bool,
    /// Long-CTS: bytes below this may be sent.
    pub granted: u64,
    pub rx_id: u32,
    pub want_receipt: bool,
    pub receipt_got: bool,
    /// The completion went out already (inject completes at once).
    pub reported: bool,
    /// Selective completion verdict.
    pub report: bool,
    /// In `txq`.
    pub queued: bool,
    /// Datagrams handed to the transport / confirmed by it.
    pub sent_pkts: u32,
    pub acked_pkts: u32,
}

impl TxError {
    pub fn kind(self) -> ErrorKind {
        match self {
            TxError::Unreachable => ErrorKind::Unreachable,
            TxError::Io => ErrorKind::Io,
        }
    }
}

impl Endpoint {
    /// The next datagram to send, written into `out`, which must hold
    /// `Config::mtu` bytes (a smaller buffer gets nothing: every packet is
    /// built to fit the MTU, and one that did not fit would be lost).
    /// Packets to a peer with a larger link (`set_peer_link`) use as much
    /// of `out` as that link takes. Control packets go first: they
    /// unblock peers.
    pub fn poll_transmit(&mut self, _now: u64, out: &mut [u8]) -> Option<TxInfo> {
        if out.len() < self.cfg.mtu {
            return None;
        }
        let mtu = self.cfg.mtu;
        while let Some(c) = self.ctrl.pop_front() {
            if let Some(t) = self.emit_ctrl(c, &mut out[..mtu]) {
                return Some(t);
            }
        }
        // Sends and RMA take turns, so neither a long write nor a long
        // message holds the other back.
        self.rma_turn = !self.rma_turn;
        if self.rma_turn
            && let Some(t) = self.poll_rma(out)
        {
            return Some(t);
        }
        if let Some(t) = self.poll_sends(out) {
            return Some(t);
        }
        self.poll_rma(out)
    }

    fn poll_sends(&mut self, out: &mut [u8]) -> Option<TxInfo> {
        while let Some(h) = self.txq.pop_front() {
            let Some(op) = self.tx.get_mut(h) else {
                continue;
            };
            let Some(peer) = self.peers.get_mut(op.peer) else {
                op.queued = false;
                continue;
            };
            if peer.paused {
                // Stays `queued`: a CTS must not queue it a second time.
                peer.parked.push_back(h);
                continue;
            }
            op.queued = false;
            // A new message needs credit: the receiver holds at most
            // `window` messages ahead of the one it waits for.
            if !op.req_sent && op.msg_id.wrapping_sub(peer.tx_next_acked) >= peer.tx_window {
                peer.blocked.push_back(h);
                continue;
            }
            // Until the peer's handshake shows it knows us, REQs carry our
            // address so it can identify us (EFA does the same).
            let addr = (!peer.hs_recv).then_some(self.cfg.local_addr.as_slice());
            let lim = peer.mtu.max(self.cfg.mtu).min(out.len());
            let inject = &self.inject_bufs[h.idx() as usize];
            let pid = self.cfg.pid;
            let Some(len) = proto::emit(op, h.idx(), inject, pid, addr, &mut out[..lim]) else {
                continue;
            };
            op.sent_pkts += 1;
            if proto::has_more(op) {
                op.queued = true;
                self.txq.push_back(h);
            }
            return Some(TxInfo {
                peer: op.peer,
                len,
                token: token(TOK_TX, h),
            });
        }
        None
    }

    fn emit_ctrl(&mut self, c: Ctrl, out: &mut [u8]) -> Option<TxInfo> {
        match c {
            Ctrl::Handshake(peer) => {
                if out.len() < HANDSHAKE_LEN + self.cfg.local_addr.len() {
                    return None;
                }
                let len = self.emit_handshake(peer, out)?;
                Some(TxInfo {
                    peer,
                    len,
                    token: peer_token(TOK_HS, peer),
                })
            }
            Ctrl::Cts(msg) => {
                if out.len() < CTS_LEN {
                    return None;
                }
                let m = self.msgs.get_mut(msg)?;
                m.cts_queued = false;
                m.cts_out += 1;
                let len = emit_cts(
                    out,
                    &CtsRepr {
                        msg_id: m.msg_id,
                        tx_id: m.tx_id,
                        rx_id: msg.idx(),
                        grant_end: m.granted,
                    },
                );
                Some(TxInfo {
                    peer: m.peer,
                    len,
                    token: token(TOK_CTS, msg),
                })
            }
            Ctrl::Credit(peer) => {
                let p = self.peers.get_mut(peer)?;
                p.credit_queued = false;
                let next = p.window.as_ref()?.next_id();
                p.rx_advertised = next;
                if out.len() < CREDIT_LEN {
                    return None;
                }
                let len = emit_credit(out, &CreditRepr { next_msg_id: next });
                Some(TxInfo {
                    peer,
                    len,
                    token: peer_token(TOK_CREDIT, peer),
                })
            }
            Ctrl::Receipt {
                peer,
                msg_id,
                tx_id,
            } => {
                if out.len() < RECEIPT_LEN {
                    return None;
                }
                let len = emit_receipt(out, &ReceiptRepr { msg_id, tx_id });
                Some(TxInfo {
                    peer,
                    len,
                    token: peer_token(TOK_RECEIPT, peer),
                })
            }
            Ctrl::Fin {
                peer,
                msg_id,
                tx_id,
                status,
            } => {
                if out.len() < FIN_LEN {
                    return None;
                }
                let len = emit_fin(
                    out,
                    &FinRepr {
                        msg_id,
                        tx_id,
                        status,
                    },
                );
                Some(TxInfo {
                    peer,
                    len,
                    token: peer_token(TOK_RECEIPT, peer),
                })
            }
            Ctrl::WriteRsp { .. } | Ctrl::AtomRsp { .. } | Ctrl::ReadDone { .. } => {
                self.emit_rma_ctrl(c, out)
            }
        }
    }

    /// The transport's verdict on a datagram from `poll_transmit`.
    pub fn on_send_complete(&mut self, tok: u64, res: Result<(), TxError>) {
        let (kind, h) = untoken(tok);
        match kind {
            TOK_TX => {
                let Some(op) = self.tx.get_mut(h) else {
                    return;
                };
                let peer = op.peer;
                match res {
                    Ok(()) => {
                        op.acked_pkts += 1;
                        self.mark_alive(peer);
                        self.finish_tx(h, None);
                    }
                    Err(e) => self.peer_failed(peer, e),
                }
            }
            TOK_CTS => {
                let Some(m) = self.msgs.get_mut(h) else {
                    return;
                };
                m.cts_out = m.cts_out.saturating_sub(1);
                let peer = m.peer;
                match res {
                    Ok(()) => self.msg_progress(h),
                    Err(e) => {
                        self.fail_msg(h, e.kind());
                        self.peer_failed(peer, e);
                    }
                }
            }
            TOK_RMA => self.rma_sent(h, res),
            TOK_SERVE => self.serve_sent(h, res),
            TOK_HS | TOK_RECEIPT | TOK_CREDIT => match res {
                Ok(()) => self.mark_alive(h.idx()),
                Err(e) => self.peer_failed(h.idx(), e),
            },
            _ => {}
        }
    }

    /// The transport gave up on a datagram to `peer`. Its message sequence
    /// is broken from then on (the receiver would wait forever for the lost
    /// msg_id, or the sender for a lost CTS or CREDIT), so — as when a
    /// device reports a peer unreachable — every operation with it fails
    /// now and later sends to it fail at once with the same error.
    pub(super) fn peer_failed(&mut self, peer: PeerIdx, e: TxError) {
        self.stats.send_failures += 1;
        let Some(p) = self.peers.get_mut(peer) else {
            return;
        };
        if p.broken.is_some() {
            return;
        }
        p.broken = Some(e.kind());
        p.deadline = None;
        p.blocked.clear();
        p.parked.clear();
        if p.paused {
            p.paused = false;
            self.paused -= 1;
        }
        self.fail_peer_ops(peer, e.kind(), 0);
        self.fail_peer_msgs(peer, e.kind());
        self.fail_directed_recvs(peer, e.kind());
    }

    /// Completes send `idx` if it is done, or with `err`. A send with an
    /// error is freed at once: the generation in its tokens makes any
    /// datagram verdict still to come stale.
    pub(super) fn finish_tx(&mut self, idx: Handle, err: Option<(ErrorKind, i32)>) {
        let Some(op) = self.tx.get(idx) else {
            return;
        };
        if err.is_none() {
            // FI_TRANSMIT_COMPLETE: every datagram handed over and
            // confirmed (long-CTS: the receiver pulled every byte); a
            // receipt confirms placement for FI_DELIVERY_COMPLETE.
            let acked = op.sent_pkts == op.acked_pkts;
            if !(proto::all_sent(op) && acked && (!op.want_receipt || op.receipt_got)) {
                return;
            }
        }
        let Some(mut op) = self.tx.remove(idx) else {
            return;
        };
        let flags = CompFlags::msg(CompFlags::SEND, op.tagged);
        if op.reported {
            if err.is_some() {
                self.stats.errors_after_inject += 1;
            }
            return;
        }
        let report = op.report || err.is_some();
        self.cq.push_back(Completion {
            context: op.context,
            flags,
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
            iov: op.iov.take(),
        });
    }

    /// Long-CTS sender: a CTS from the receiver.
    pub(super) fn on_cts(&mut self, peer: PeerIdx, c: CtsRepr) {
        let Some(h) = self.tx.handle_at(c.tx_id) else {
            self.stats.stale += 1;
            return;
        };
        let Some(op) = self.tx.get_mut(h) else {
            self.stats.stale += 1;
            return;
        };
        let long_read = op.proto == Proto::LongRead;
        if op.peer != peer || op.msg_id != c.msg_id || !(op.proto == Proto::LongCts || long_read) {
            self.stats.stale += 1;
            return;
        }
        if long_read {
            // The receiver could not read our memory: send the data.
            op.proto = Proto::LongCts;
            self.cma_refused(peer);
        }
        let Some(op) = self.tx.get_mut(h) else {
            return;
        };
        longcts::on_cts(op, c.rx_id, c.grant_end);
        if !op.queued && proto::has_more(op) {
            op.queued = true;
            self.txq.push_back(h);
        }
    }

    /// The peer delivered every message below `next`: unblock sends.
    pub(super) fn on_credit(&mut self, peer: PeerIdx, c: CreditRepr) {
        let Some(p) = self.peers.get_mut(peer) else {
            return;
        };
        // Credits may arrive out of order: only move forward (and never
        // past what we sent).
        let ahead = c.next_msg_id.wrapping_sub(p.tx_next_acked);
        let sent = p.next_tx_msg.wrapping_sub(p.tx_next_acked);
        if ahead == 0 || ahead > sent {
            return;
        }
        p.tx_next_acked = c.next_msg_id;
        self.release_blocked(peer);
    }

    /// The glue's link to `peer` is full (`true`) or has room again: while
    /// paused, no send data to it comes out of `poll_transmit` (control
    /// packets and RMA, which has its own per-operation window, still do),
    /// so the packets the glue must keep for a full link stay bounded and
    /// the other peers' traffic goes on.
    pub fn set_peer_paused(&mut self, peer: PeerIdx, paused: bool) {
        let Some(p) = self.peers.get_mut(peer) else {
            return;
        };
        if p.paused == paused {
            return;
        }
        p.paused = paused;
        if paused {
            self.paused += 1;
        } else {
            self.paused -= 1;
            // Ahead of what was queued meanwhile, in their order: they were
            // popped first, so they hold the lower msg_ids.
            for e in p.parked.drain(..).rev() {
                self.txq.push_front(e);
            }
        }
    }

    /// Peers `set_peer_paused` holds back now.
    pub fn paused_peers(&self) -> usize {
        self.paused
    }

    /// Whether `set_peer_paused` holds `peer` back.
    pub fn peer_paused(&self, peer: PeerIdx) -> bool {
        self.peers.get(peer).is_some_and(|p| p.paused)
    }

    /// Requeues the blocked sends of `peer` that now have credit, in
    /// msg_id order. Every entry is looked at, not just the front: a send
    /// with credit must never wait behind one without (the receiver would
    /// wait for it, and the credit for the other would never come).
    pub(super) fn release_blocked(&mut self, peer: PeerIdx) {
        let Some(p) = self.peers.get_mut(peer) else {
            return;
        };
        let (tx, txq) = (&self.tx, &mut self.txq);
        let (acked, window) = (p.tx_next_acked, p.tx_window);
        p.blocked.retain(|&h| {
            let credit = match tx.get(h) {
                Some(op) => op.msg_id.wrapping_sub(acked) < window,
                None => return false, // gone: drop it from the list
            };
            if credit {
                txq.push_back(h);
            }
            !credit
        });
    }

    /// FI_DELIVERY_COMPLETE: the receiver placed the data.
    pub(super) fn on_receipt(&mut self, peer: PeerIdx, r: ReceiptRepr) {
        let Some(h) = self.tx.handle_at(r.tx_id) else {
            self.stats.stale += 1;
            return;
        };
        let Some(op) = self.tx.get_mut(h) else {
            self.stats.stale += 1;
            return;
        };
        if op.peer != peer || op.msg_id != r.msg_id || !op.want_receipt {
            self.stats.stale += 1;
            return;
        }
        op.receipt_got = true;
        self.finish_tx(h, None);
    }

    /// Long-read: the receiver copied the message (or could not).
    pub(super) fn on_fin(&mut self, peer: PeerIdx, f: FinRepr) {
        let Some(h) = self.tx.handle_at(f.tx_id) else {
            self.stats.stale += 1;
            return;
        };
        let Some(op) = self.tx.get_mut(h) else {
            self.stats.stale += 1;
            return;
        };
        if op.peer != peer || op.msg_id != f.msg_id || op.proto != Proto::LongRead || !op.req_sent {
            self.stats.stale += 1;
            return;
        }
        if let Some(kind) = ErrorKind::from_status(f.status) {
            self.finish_tx(h, Some((kind, 0)));
            return;
        }
        // Every byte is placed: sent, and delivered.
        op.next_off = op.len;
        op.receipt_got = true;
        self.finish_tx(h, None);
    }

    /// Fails every send toward `peer` (transport gave up, timeout).
    pub(super) fn fail_peer_ops(&mut self, peer: PeerIdx, kind: ErrorKind, prov_errno: i32) {
        self.fail_peer_rma(peer, kind, prov_errno);
        for i in 0..self.tx.slots() {
            if let Some((h, op)) = self.tx.entry_at(i)
                && op.peer == peer
            {
                self.finish_tx(h, Some((kind, prov_errno)));
            }
        }
    }
}
