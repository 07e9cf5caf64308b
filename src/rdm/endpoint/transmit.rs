//! The transmit schedule: which part's packet goes next, and whose the
//! transport's verdict on a datagram is.

use super::Endpoint;
use crate::rdm::outbox::{
    Ctrl, TOK_CREDIT, TOK_CTS, TOK_HS, TOK_RECEIPT, TOK_RMA, TOK_SERVE, TOK_TX, peer_token, untoken,
};
use crate::rdm::{TxError, TxInfo};
use crate::wire::rdm::{
    FIN_LEN, FinRepr, HANDSHAKE_LEN, RECEIPT_LEN, ReceiptRepr, emit_fin, emit_receipt,
};

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
        while let Some(c) = self.out.ctrl.pop_front() {
            if let Some(t) = self.emit_ctrl(c, &mut out[..mtu]) {
                return Some(t);
            }
        }
        // Sends and RMA take turns, so neither a long write nor a long
        // message holds the other back.
        self.rma_turn = !self.rma_turn;
        let t = if self.rma_turn {
            self.poll_rma(out)
        } else {
            None
        };
        let (addr, pid) = (self.cfg.local_addr.as_slice(), self.cfg.pid);
        let t = t
            .or_else(|| self.tx.next_packet(&self.peers, addr, pid, out))
            .or_else(|| self.poll_rma(out))?;
        if let Some(e) = t.ext {
            self.out.stats.zc_packets += 1;
            self.out.stats.zc_bytes += u64::from(e.len);
        }
        Some(t)
    }

    /// Whether `poll_transmit` has anything to give now (a cheap check
    /// for the glue's rounds that find nothing to do).
    pub fn wants_transmit(&self) -> bool {
        !self.out.ctrl.is_empty() || !self.out.rma.is_empty() || self.tx.has_queued()
    }

    fn emit_ctrl(&mut self, c: Ctrl, out: &mut [u8]) -> Option<TxInfo> {
        match c {
            Ctrl::Handshake(peer) => {
                if out.len() < HANDSHAKE_LEN + self.cfg.local_addr.len() {
                    return None;
                }
                let window = self.cfg.reorder_window as u16;
                let len = self
                    .peers
                    .emit_handshake(peer, window, &self.cfg.local_addr, out)?;
                Some(TxInfo {
                    peer,
                    len,
                    token: peer_token(TOK_HS, peer),
                    ext: None,
                })
            }
            Ctrl::Cts(msg) => self.rx.emit_cts(msg, out),
            Ctrl::Credit(peer) => self.rx.emit_credit(peer, out),
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
                    ext: None,
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
                    ext: None,
                })
            }
            Ctrl::WriteRsp { .. } | Ctrl::AtomRsp { .. } | Ctrl::ReadDone { .. } => {
                self.serve.emit_ctrl(c, out)
            }
        }
    }

    /// The transport's verdict on a datagram from `poll_transmit`.
    pub fn on_send_complete(&mut self, tok: u64, res: Result<(), TxError>) {
        let (kind, h) = untoken(tok);
        match kind {
            TOK_TX => {
                let Some(peer) = self.tx.sent(h, res.is_ok(), &mut self.out) else {
                    return;
                };
                match res {
                    Ok(()) => self.peers.mark_alive(peer),
                    Err(e) => self.peer_failed(peer, e),
                }
            }
            TOK_CTS => {
                let peer = self.rx.cts_sent(&mut ctx!(self), h, res);
                if let (Some(peer), Err(e)) = (peer, res) {
                    self.peer_failed(peer, e);
                }
            }
            TOK_RMA => self.rma_sent(h, res),
            TOK_SERVE => self.serve_sent(h, res),
            TOK_HS | TOK_RECEIPT | TOK_CREDIT => match res {
                Ok(()) => self.peers.mark_alive(h.idx()),
                Err(e) => self.peer_failed(h.idx(), e),
            },
            _ => {}
        }
    }
}
