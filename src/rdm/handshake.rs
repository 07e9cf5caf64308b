//! Per-peer handshake (version, feature bits) and the liveness deadline.
//!
//! Each side sends one HANDSHAKE to a peer on first contact (first send to
//! it, or first packet from it). Receiving the peer's handshake tells us it
//! has an entry for us, so our REQs stop carrying our address. A peer that
//! neither sends anything nor has any datagram acknowledged by the
//! transport within `handshake_timeout_ns` of our first send fails the
//! sends toward it with FI_ETIMEDOUT — an acknowledged datagram proves the
//! peer's device (in its process) is alive, so a peer that is merely slow
//! to post receives is never timed out.

use super::PROV_ERR_TIMEOUT;
use super::endpoint::{Ctrl, Endpoint};
use super::peer::{INITIAL_WINDOW, PeerIdx};
use crate::wire::rdm::{
    FEATURE_CMA, FEATURE_DELIVERY_COMPLETE, FEATURE_LONG_CTS, FEATURE_RMA, HS_REPLY, HandshakeRepr,
    VERSION, emit_handshake,
};

/// What this build supports.
pub const FEATURES: u64 = FEATURE_DELIVERY_COMPLETE | FEATURE_LONG_CTS | FEATURE_RMA | FEATURE_CMA;

impl Endpoint {
    /// We are about to send to `peer`.
    pub(super) fn contact(&mut self, now: u64, peer: PeerIdx) {
        self.ensure_handshake(peer);
        let timeout = self.cfg.handshake_timeout_ns;
        let Some(p) = self.peers.get_mut(peer) else {
            return;
        };
        if !p.alive && p.deadline.is_none() && timeout > 0 {
            p.deadline = Some(now.saturating_add(timeout));
            self.hs_pending.push(peer);
        }
    }

    pub(super) fn ensure_handshake(&mut self, peer: PeerIdx) {
        if let Some(p) = self.peers.get_mut(peer)
            && !p.hs_sent
        {
            p.hs_sent = true;
            self.ctrl.push_back(Ctrl::Handshake(peer));
        }
    }

    pub(super) fn emit_handshake(&mut self, peer: PeerIdx, out: &mut [u8]) -> Option<usize> {
        let p = self.peers.get(peer)?;
        let hdr = HandshakeRepr {
            flags: if p.hs_recv { HS_REPLY } else { 0 },
            max_version: VERSION,
            window: self.cfg.reorder_window as u16,
            features: FEATURES,
        };
        Some(emit_handshake(out, &hdr, &self.cfg.local_addr))
    }

    pub(super) fn on_handshake(&mut self, peer: PeerIdx, hdr: HandshakeRepr) {
        if let Some(p) = self.peers.get_mut(peer) {
            p.hs_recv = true;
            p.features = hdr.features & FEATURES;
            p.tx_window = u32::from(hdr.window).max(INITIAL_WINDOW);
            // Sends blocked on the initial window may go now.
            self.release_blocked(peer);
            self.release_rma(peer);
        }
        self.ensure_handshake(peer);
    }

    /// Receive side: advertise `next` when it moved half a window.
    pub(super) fn maybe_credit(&mut self, peer: PeerIdx) {
        let half = (self.cfg.reorder_window / 2).max(1) as u32;
        let Some(p) = self.peers.get_mut(peer) else {
            return;
        };
        let Some(next) = p.window.as_ref().map(|w| w.next_id()) else {
            return;
        };
        if !p.credit_queued && next.wrapping_sub(p.rx_advertised) >= half {
            self.queue_credit(peer);
        }
    }

    pub(super) fn queue_credit(&mut self, peer: PeerIdx) {
        if let Some(p) = self.peers.get_mut(peer)
            && !p.credit_queued
        {
            p.credit_queued = true;
            self.ctrl.push_back(Ctrl::Credit(peer));
        }
    }

    pub(super) fn mark_alive(&mut self, peer: PeerIdx) {
        if let Some(p) = self.peers.get_mut(peer) {
            p.alive = true;
            p.heard = true;
            p.deadline = None;
        }
    }

    /// Earliest deadline, if any (the liveness tick only while some
    /// operation is outstanding).
    pub fn poll_timeout(&self) -> Option<u64> {
        let hs = self
            .hs_pending
            .iter()
            .filter_map(|&p| self.peers.get(p)?.deadline)
            .min();
        let busy = !(self.tx.is_empty() && self.rma.is_empty() && self.rx.is_empty());
        let probe = (self.cfg.probe_interval_ns > 0 && busy).then_some(self.probe_at);
        match (hs, probe) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Peers that outstanding operations wait on: sends and RMA toward
    /// them, receives they are filling, receives directed at them. Sorted,
    /// without duplicates. A scan of the operation pools; called once per
    /// liveness tick, not per packet.
    pub fn waited_peers(&self, out: &mut Vec<PeerIdx>) {
        out.clear();
        out.extend(self.tx.iter().map(|(_, o)| o.peer));
        out.extend(self.rma.iter().map(|(_, o)| o.peer));
        out.extend(
            self.msgs
                .iter()
                .map(|(_, m)| m)
                .filter(|m| {
                    matches!(m.state, super::rx::MsgState::Attached(_)) && m.received < m.total
                })
                .map(|m| m.peer),
        );
        self.tagged.directed_sources(out);
        self.untagged.directed_sources(out);
        out.sort_unstable();
        out.dedup();
    }

    /// The glue found `peer` gone (its process died, its shared-memory
    /// ring closed): break it as if the transport had given up on it.
    pub fn peer_unreachable(&mut self, peer: PeerIdx) {
        self.peer_failed(peer, super::TxError::Unreachable);
    }

    /// Whether operations with `peer` fail (and with which error).
    pub fn peer_broken(&self, peer: PeerIdx) -> Option<super::ErrorKind> {
        self.peers.get(peer).and_then(|p| p.broken)
    }

    /// Liveness tick: probes the waited-on peers that were silent for a
    /// whole tick.
    fn liveness_tick(&mut self, now: u64) {
        let every = self.cfg.probe_interval_ns;
        if every == 0 {
            return;
        }
        if self.probe_at == 0 {
            self.probe_at = now.saturating_add(every);
            return;
        }
        if now < self.probe_at {
            return;
        }
        self.probe_at = now.saturating_add(every);
        let mut waited = std::mem::take(&mut self.scratch_peers);
        self.waited_peers(&mut waited);
        for &peer in &waited {
            let Some(p) = self.peers.get_mut(peer) else {
                continue;
            };
            let engaged = p.alive || p.hs_sent;
            if p.broken.is_none() && engaged && !p.heard {
                self.stats.probes += 1;
                self.ctrl.push_back(Ctrl::Handshake(peer));
            }
            if let Some(p) = self.peers.get_mut(peer) {
                p.heard = false;
            }
        }
        self.scratch_peers = waited;
    }

    pub fn handle_timeout(&mut self, now: u64) {
        self.liveness_tick(now);
        let mut i = 0;
        while i < self.hs_pending.len() {
            let peer = self.hs_pending[i];
            let due = match self.peers.get(peer).and_then(|p| p.deadline) {
                None => {
                    self.hs_pending.swap_remove(i);
                    continue;
                }
                Some(d) => d <= now,
            };
            if due {
                self.hs_pending.swap_remove(i);
                if let Some(p) = self.peers.get_mut(peer) {
                    p.deadline = None;
                }
                self.stats.timeouts += 1;
                self.fail_peer_ops(peer, super::ErrorKind::TimedOut, PROV_ERR_TIMEOUT);
            } else {
                i += 1;
            }
        }
    }
}
