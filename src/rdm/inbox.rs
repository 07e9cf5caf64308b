//! The receiving glue's half of the deferral contract (module docs of
//! `rdm`, "Back-pressure"): a packet the endpoint defers leaves the
//! transport's receive queue anyway and waits here, in a queue of its
//! sender, so that one sender's overrun never holds back the packets of
//! another. The queues are offered again round robin (`retry`), each up to
//! its first packet that is deferred again.
//!
//! A packet from a sender that has packets waiting here is still offered to
//! the endpoint at once: control packets (CTS, CREDIT, FIN, responses) must
//! never wait behind a deferred message, and later messages of that sender
//! are stored out of order, bounded by its credit window.
//!
//! Bounds: what a sender that follows the protocol can have deferred at
//! once is the packets of at most two of its messages (the one next in
//! order and the rest of the previous one, each at most `MAX_MEDIUM` bytes)
//! and its RMA requests beyond the target's limits (at most its `tx_size`,
//! 4096 in fi_info). A sender past [`PEER_MAX_PACKETS`] or
//! [`PEER_MAX_BYTES`] is not following it: its queue is dropped, the peer
//! is broken (its operations fail with FI_EHOSTUNREACH) and the event is
//! counted, so a misbehaving process costs memory only up to that bound.

use super::peer::PeerIdx;
use super::{Endpoint, MAX_MEDIUM, PacketOutcome};
use std::collections::VecDeque;

/// Packets one sender may have waiting here.
pub const PEER_MAX_PACKETS: usize = 16_384;
/// Bytes one sender may have waiting here.
pub const PEER_MAX_BYTES: usize = 8 * MAX_MEDIUM + (32 << 20);

/// Counters of the inbox (monitoring).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct InboxStats {
    /// Packets that were deferred and copied here.
    pub held: u64,
    /// Packets offered again and taken.
    pub released: u64,
    /// Most packets / bytes waiting at once, all senders together.
    pub high_packets: usize,
    pub high_bytes: usize,
    /// Most senders with packets waiting at once.
    pub high_senders: usize,
    /// Senders broken for exceeding their bound.
    pub overruns: u64,
}

#[derive(Debug, Default)]
struct Queue {
    pkts: VecDeque<Vec<u8>>,
    bytes: usize,
    /// In `active`.
    listed: bool,
}

/// Per-sender queues of deferred packets. Sans-IO like the endpoint.
#[derive(Debug, Default)]
pub struct Inbox {
    queues: Vec<Queue>,
    /// Senders with packets waiting, in the order they are served.
    active: VecDeque<PeerIdx>,
    spare: Vec<Vec<u8>>,
    packets: usize,
    bytes: usize,
    stats: InboxStats,
}

impl Inbox {
    pub fn new() -> Self {
        Inbox::default()
    }

    /// Packets and bytes waiting, all senders together.
    pub fn len(&self) -> (usize, usize) {
        (self.packets, self.bytes)
    }

    pub fn is_empty(&self) -> bool {
        self.packets == 0
    }

    /// Packets waiting from `peer`.
    pub fn waiting(&self, peer: PeerIdx) -> usize {
        self.queues.get(peer as usize).map_or(0, |q| q.pkts.len())
    }

    pub fn stats(&self) -> InboxStats {
        self.stats
    }

    /// Hands a datagram to `ep`. A deferred one is copied into its
    /// sender's queue (the caller's buffer is free either way) and the
    /// outcome says `Deferred(sender)`. A sender past its bound is broken
    /// and the packet dropped (`Dropped`).
    pub fn offer(
        &mut self,
        ep: &mut Endpoint,
        now: u64,
        src: Option<PeerIdx>,
        bytes: &[u8],
    ) -> PacketOutcome {
        let out = ep.handle_packet(now, src, bytes);
        match out {
            PacketOutcome::Deferred(p) => {
                if self.hold(p, bytes) {
                    out
                } else {
                    self.overrun(ep, p);
                    PacketOutcome::Dropped
                }
            }
            _ => out,
        }
    }

    /// Offers the waiting packets again: every sender's queue once, each
    /// packet of it (a deferred RMA request must not wait for a deferred
    /// message ahead of it, which may wait for the application), the ones
    /// deferred again staying in order. `f(sender, len, outcome)` sees each
    /// packet taken (consumed or dropped). Returns whether any was taken.
    pub fn retry(
        &mut self,
        ep: &mut Endpoint,
        now: u64,
        mut f: impl FnMut(PeerIdx, usize, PacketOutcome),
    ) -> bool {
        let mut any = false;
        for _ in 0..self.active.len() {
            let Some(p) = self.active.pop_front() else {
                break;
            };
            let Some(q) = self.queues.get_mut(p as usize) else {
                continue;
            };
            for _ in 0..q.pkts.len() {
                let Some(pkt) = q.pkts.pop_front() else {
                    break;
                };
                let out = ep.handle_packet(now, Some(p), &pkt);
                if matches!(out, PacketOutcome::Deferred(_)) {
                    q.pkts.push_back(pkt);
                    continue;
                }
                any = true;
                let len = pkt.len();
                self.spare.push(pkt);
                q.bytes -= len;
                self.packets -= 1;
                self.bytes -= len;
                self.stats.released += 1;
                f(p, len, out);
            }
            if q.pkts.is_empty() {
                q.listed = false;
            } else {
                self.active.push_back(p);
            }
        }
        // Keep a few buffers; the rest go back to the allocator.
        self.spare.truncate(64);
        any
    }

    /// Drops what waits from `peer` (the peer is gone or was removed and
    /// its packets can no longer be delivered). Returns how many.
    pub fn forget(&mut self, peer: PeerIdx) -> usize {
        let Some(q) = self.queues.get_mut(peer as usize) else {
            return 0;
        };
        let n = q.pkts.len();
        self.packets -= n;
        self.bytes -= q.bytes;
        q.bytes = 0;
        self.spare.extend(q.pkts.drain(..));
        self.spare.truncate(64);
        if q.listed {
            q.listed = false;
            self.active.retain(|&a| a != peer);
        }
        n
    }

    fn hold(&mut self, p: PeerIdx, bytes: &[u8]) -> bool {
        let i = p as usize;
        if self.queues.len() <= i {
            self.queues.resize_with(i + 1, Queue::default);
        }
        let q = &mut self.queues[i];
        if q.pkts.len() >= PEER_MAX_PACKETS || q.bytes + bytes.len() > PEER_MAX_BYTES {
            return false;
        }
        let mut buf = self.spare.pop().unwrap_or_default();
        buf.clear();
        buf.extend_from_slice(bytes);
        q.pkts.push_back(buf);
        q.bytes += bytes.len();
        if !q.listed {
            q.listed = true;
            self.active.push_back(p);
        }
        self.packets += 1;
        self.bytes += bytes.len();
        let s = &mut self.stats;
        s.held += 1;
        s.high_packets = s.high_packets.max(self.packets);
        s.high_bytes = s.high_bytes.max(self.bytes);
        s.high_senders = s.high_senders.max(self.active.len());
        true
    }

    fn overrun(&mut self, ep: &mut Endpoint, p: PeerIdx) {
        self.stats.overruns += 1;
        self.forget(p);
        ep.peer_unreachable(p);
    }
}
