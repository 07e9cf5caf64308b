//! Handshakes and liveness across the parts: a peer's handshake releases
//! the sends and RMA waiting for it; a peer that stays silent fails what
//! waits on it (deadlines, and probes of the peers operations wait on).

use super::Endpoint;
use crate::rdm::peer::PeerIdx;
use crate::rdm::{ErrorKind, PROV_ERR_TIMEOUT};
use crate::wire::rdm::HandshakeRepr;

impl Endpoint {
    pub(super) fn ensure_handshake(&mut self, peer: PeerIdx) {
        self.peers.ensure_handshake(peer, &mut self.out);
    }

    pub(super) fn on_handshake(&mut self, peer: PeerIdx, hdr: HandshakeRepr) {
        if self.peers.on_handshake(peer, hdr.features) {
            // Sends blocked on the initial window may go now.
            self.tx.set_window(peer, hdr.window);
            self.release_rma(peer);
        }
        self.ensure_handshake(peer);
    }

    /// Earliest deadline, if any (the liveness tick only while some
    /// operation is outstanding).
    pub fn poll_timeout(&self) -> Option<u64> {
        let hs = self.peers.next_deadline();
        let busy = !(self.tx.is_empty() && self.rma.is_empty() && self.rx.is_empty());
        let probe = self.peers.next_probe(busy);
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
        self.tx.waited_peers(out);
        self.rma.waited_peers(out);
        self.rx.waited_peers(out);
        out.sort_unstable();
        out.dedup();
    }

    pub fn handle_timeout(&mut self, now: u64) {
        // Liveness tick: probe the waited-on peers that were silent for a
        // whole tick.
        if self.peers.tick_due(now) {
            let mut waited = std::mem::take(&mut self.scratch_peers);
            self.waited_peers(&mut waited);
            self.peers.probe(&waited, &mut self.out);
            self.scratch_peers = waited;
        }
        let mut due = std::mem::take(&mut self.scratch_peers);
        due.clear();
        self.peers.expire(now, &mut due);
        for &peer in &due {
            self.out.stats.timeouts += 1;
            self.fail_peer_ops(peer, ErrorKind::TimedOut, PROV_ERR_TIMEOUT);
        }
        self.scratch_peers = due;
    }
}
