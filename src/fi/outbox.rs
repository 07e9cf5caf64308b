//! Packets for same-host peers whose ring was full, one queue per peer.
//!
//! A full ring slows the peer it belongs to and nobody else: packets to it
//! wait in its own queue (in order: the ring is FIFO per sender and the
//! protocol's control packets ride the same queue), packets to other peers
//! go straight on, and once a queue reaches [`PAUSE_AT`] packets the glue
//! pauses that peer in the protocol (`rdm::Endpoint::set_peer_paused`) so
//! no more send data is produced for it until the queue has drained. What
//! a queue can hold past that is bounded by the protocol: control packets
//! and RMA streams, each with its own window.

use crate::rdm::PeerIdx;
use std::collections::VecDeque;

/// Packets queued for one peer at which its sends are paused.
pub const PAUSE_AT: usize = 32;

/// What the link did with a packet offered to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Push {
    /// Taken (in the peer's ring).
    Sent,
    /// No room now: try again later.
    Full,
    /// The peer is gone: the packet fails.
    Gone,
}

#[derive(Debug, Default)]
struct Queue {
    pkts: VecDeque<(Vec<u8>, u64)>,
    listed: bool,
}

#[derive(Debug, Default)]
pub struct Outbox {
    queues: Vec<Queue>,
    /// Peers with packets queued.
    active: Vec<PeerIdx>,
    spare: Vec<Vec<u8>>,
    packets: usize,
    /// Most packets queued at once, all peers together.
    pub high: usize,
}

impl Outbox {
    /// Packets queued for `peer`.
    pub fn queued(&self, peer: PeerIdx) -> usize {
        self.queues.get(peer as usize).map_or(0, |q| q.pkts.len())
    }

    /// Packets queued, all peers together.
    pub fn len(&self) -> usize {
        self.packets
    }

    pub fn is_empty(&self) -> bool {
        self.packets == 0
    }

    /// Queues a copy of `data` (datagram `token`) for `peer`; returns the
    /// peer's queue length.
    pub fn push(&mut self, peer: PeerIdx, data: &[u8], token: u64) -> usize {
        let i = peer as usize;
        if self.queues.len() <= i {
            self.queues.resize_with(i + 1, Queue::default);
        }
        let mut buf = self.spare.pop().unwrap_or_default();
        buf.clear();
        buf.extend_from_slice(data);
        let q = &mut self.queues[i];
        q.pkts.push_back((buf, token));
        if !q.listed {
            q.listed = true;
            self.active.push(peer);
        }
        self.packets += 1;
        self.high = self.high.max(self.packets);
        q.pkts.len()
    }

    /// Offers every queue's packets to `send(peer, bytes)` in order, each
    /// queue until its link is full; `done(peer, token, gone)` sees each
    /// packet that left (sent, or failed because the peer is gone), and
    /// `drained(peer)` each peer whose queue emptied.
    pub fn flush(
        &mut self,
        mut send: impl FnMut(PeerIdx, &[u8]) -> Push,
        mut done: impl FnMut(PeerIdx, u64, bool),
        mut drained: impl FnMut(PeerIdx),
    ) {
        let mut k = 0;
        while k < self.active.len() {
            let p = self.active[k];
            let q = &mut self.queues[p as usize];
            while let Some((buf, token)) = q.pkts.front() {
                let r = send(p, buf);
                if r == Push::Full {
                    break;
                }
                done(p, *token, r == Push::Gone);
                if let Some((buf, _)) = q.pkts.pop_front() {
                    self.spare.push(buf);
                }
                self.packets -= 1;
            }
            if q.pkts.is_empty() {
                q.listed = false;
                self.active.swap_remove(k);
                drained(p);
            } else {
                k += 1;
            }
        }
        self.spare.truncate(64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_peer_does_not_hold_back_another() {
        let mut o = Outbox::default();
        assert_eq!(o.push(1, b"a1", 11), 1);
        assert_eq!(o.push(1, b"a2", 12), 2);
        assert_eq!(o.push(2, b"b1", 21), 1);
        assert_eq!(o.len(), 3);
        let mut sent = Vec::new();
        let mut done = Vec::new();
        let mut drained = Vec::new();
        // Peer 1's ring is full; peer 2's takes everything.
        o.flush(
            |p, b| {
                if p == 1 {
                    Push::Full
                } else {
                    sent.push(b.to_vec());
                    Push::Sent
                }
            },
            |p, t, gone| done.push((p, t, gone)),
            |p| drained.push(p),
        );
        assert_eq!(sent, vec![b"b1".to_vec()]);
        assert_eq!(done, vec![(2, 21, false)]);
        assert_eq!(drained, vec![2]);
        assert_eq!(o.queued(1), 2);
        assert_eq!(o.queued(2), 0);
        // Peer 1 gets room for one, then dies: order kept, the rest fails.
        let mut n = 0;
        done.clear();
        o.flush(
            |_, b| {
                n += 1;
                assert_eq!(b, if n == 1 { b"a1" } else { b"a2" });
                if n == 1 { Push::Sent } else { Push::Gone }
            },
            |p, t, gone| done.push((p, t, gone)),
            |_| {},
        );
        assert_eq!(done, vec![(1, 11, false), (1, 12, true)]);
        assert_eq!(o.len(), 0);
        assert_eq!(o.high, 3);
    }
}
