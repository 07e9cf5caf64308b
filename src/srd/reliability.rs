//! Per-peer reliability state: the sender's window of unacked packets and the
//! receiver's duplicate-suppression window (docs/srd-spec.md §6).
//!
//! Sender: a ring of `window` slots indexed by PSN. Packets in flight are also
//! threaded on an intrusive list in transmission order, so the oldest
//! transmission (the next to time out, and the first candidate for fast
//! retransmit) is found in O(1), and an ack unlinks in O(1). No allocation
//! after the ring is created.
//!
//! Receiver: a cumulative PSN plus a bitmap of the `RX_WINDOW` PSNs after it.

use super::pool::NONE;
use super::{MAX_PATHS, RX_WINDOW, psn_lt};
use crate::wire::srd::MAX_SACK_WORDS;
use std::collections::VecDeque;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SlotState {
    Free,
    /// Sent, awaiting ack, on the transmission-order list.
    InFlight,
    /// Declared lost, waiting in the retransmit queue.
    Lost,
    /// NAKed receiver-not-ready; retransmit at `retry_at`.
    RnrWait,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Slot {
    pub psn: u32,
    pub buf: u32,
    pub state: SlotState,
    pub sent_at: u64,
    pub tx_seq: u64,
    pub retries: u32,
    pub rnr: u32,
    pub retry_at: u64,
    pub path: u8,
    pub retransmitted: bool,
    /// What declared it lost last (a resend keeps it).
    pub lost_by: LostBy,
    prev: u32,
    next: u32,
}

const FREE_SLOT: Slot = Slot {
    psn: 0,
    buf: NONE,
    state: SlotState::Free,
    sent_at: 0,
    tx_seq: 0,
    retries: 0,
    rnr: 0,
    retry_at: 0,
    path: 0,
    retransmitted: false,
    lost_by: LostBy::Rack,
    prev: NONE,
    next: NONE,
};

/// What an ack or NAK removed from the window.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Removed {
    pub buf: u32,
    /// It had been declared lost and not resent yet.
    pub was_lost: bool,
    pub path: u8,
    pub sent_at: u64,
    pub tx_seq: u64,
    pub retransmitted: bool,
    pub lost_by: LostBy,
}

/// What declared a packet lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LostBy {
    /// RACK's time rule (a later packet acked, the reorder window passed).
    Rack,
    /// The path-order rule (a later packet on its path acked).
    Overtaken,
    /// The tail-loss probe (the newest packet, resent to draw an ack).
    Probe,
    /// A retransmission timeout.
    Timeout,
}

/// A send window's storage, handed from an idle peer to the next busy one
/// (`TxWindow::take_ring`, `give_ring`): its slots, and one bit per slot
/// that is not free, so an ack's SACK is matched against the PSNs still
/// live a word at a time (`TxWindow::live_word`) rather than bit by bit.
#[derive(Debug, Default)]
pub(crate) struct Ring {
    slots: Vec<Slot>,
    live: Vec<u64>,
}

#[derive(Debug)]
pub(crate) struct TxWindow {
    slots: Vec<Slot>,
    /// Bit `i`: slot `i` is not free (see `Ring`).
    live: Vec<u64>,
    size: u32,
    /// Next PSN to assign.
    pub next_psn: u32,
    /// Lowest PSN not yet acked (or abandoned).
    pub una: u32,
    head: u32,
    tail: u32,
    pub in_flight: u32,
    retx: VecDeque<u32>,
    pub rnr_waiting: u32,
    /// Send buffers waiting for a PSN (window or cwnd full).
    pub pending: VecDeque<u32>,
    /// Transmission counter (every send and resend), for loss detection.
    pub tx_count: u64,
    pub highest_acked_tx: u64,
    /// RACK: the RTT of the newest transmission acked so far (ack time
    /// minus its send time).
    pub rack_rtt: u64,
}

/// What time-based loss detection found at the oldest transmission.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rack {
    /// Lost: a later transmission was acked and the reorder window passed.
    Lost(u32),
    /// A later transmission was acked; lost at this time unless acked.
    At(u64),
    /// Nothing sent after it has been acked.
    Unknown,
}

impl TxWindow {
    pub fn new(size: u32) -> Self {
        TxWindow {
            slots: Vec::new(),
            live: Vec::new(),
            size: size.clamp(1, RX_WINDOW).next_power_of_two(),
            next_psn: 0,
            una: 0,
            head: NONE,
            tail: NONE,
            in_flight: 0,
            retx: VecDeque::new(),
            rnr_waiting: 0,
            pending: VecDeque::new(),
            tx_count: 0,
            highest_acked_tx: 0,
            rack_rtt: 0,
        }
    }

    fn idx(&self, psn: u32) -> u32 {
        psn & (self.size - 1)
    }

    fn slot(&self, i: u32) -> Option<&Slot> {
        self.slots.get(usize::try_from(i).ok()?)
    }

    fn slot_mut(&mut self, i: u32) -> Option<&mut Slot> {
        self.slots.get_mut(usize::try_from(i).ok()?)
    }

    /// Gives up the slot ring of an idle window (nothing outstanding), so
    /// a peer that went quiet holds no ring; the device keeps a few spare
    /// rings for the next busy peer. `None` while busy or ringless.
    pub fn take_ring(&mut self) -> Option<Ring> {
        if self.outstanding() != 0 || self.slots.is_empty() {
            return None;
        }
        self.retx.clear();
        self.head = NONE;
        self.tail = NONE;
        Some(Ring {
            slots: std::mem::take(&mut self.slots),
            live: std::mem::take(&mut self.live),
        })
    }

    /// Has no ring (never sent, or idle and parked).
    pub fn ringless(&self) -> bool {
        self.slots.is_empty()
    }

    /// Installs a spare ring (all slots free) before the next `assign`;
    /// hands it back if this window has one or the size differs. O(1): a
    /// ring is only ever taken with every slot free (`take_ring`), and
    /// `assign` writes a slot whole (clearing 1024 slots, 56 KiB, on every
    /// lone message had cost a ping-pong about a microsecond).
    pub fn give_ring(&mut self, ring: Ring) -> Option<Ring> {
        if !self.slots.is_empty() || ring.slots.len() != usize::try_from(self.size).ok()? {
            return Some(ring);
        }
        debug_assert!(ring.slots.iter().all(|s| s.state == SlotState::Free));
        debug_assert!(ring.live.iter().all(|&w| w == 0));
        self.slots = ring.slots;
        self.live = ring.live;
        None
    }

    fn set_live(&mut self, i: u32, on: bool) {
        if let Some(w) = self.live.get_mut((i / 64) as usize) {
            let bit = 1u64 << (i % 64);
            if on {
                *w |= bit;
            } else {
                *w &= !bit;
            }
        }
    }

    /// Bit `j` set: PSN `base + j` is live (assigned, not yet acked or
    /// abandoned). O(1) for windows of at least 64 slots.
    pub fn live_word(&self, base: u32) -> u64 {
        // The first PSN of the 64 at or after una, and how many of them
        // are outstanding.
        let skip = if psn_lt(base, self.una) {
            self.una.wrapping_sub(base)
        } else {
            0
        };
        if skip >= 64 {
            return 0;
        }
        let first = base.wrapping_add(skip);
        let ahead = self
            .outstanding()
            .saturating_sub(first.wrapping_sub(self.una));
        let n = ahead.min(64 - skip);
        if n == 0 {
            return 0;
        }
        // n <= outstanding <= size: the n slots from `first` are distinct.
        let i = self.idx(first);
        let bits = if self.size >= 64 {
            let words = self.live.len();
            let w = (i / 64) as usize;
            let sh = i % 64;
            let lo = self.live.get(w).copied().unwrap_or(0) >> sh;
            let hi = match sh {
                0 => 0,
                _ => self.live.get((w + 1) % words.max(1)).copied().unwrap_or(0) << (64 - sh),
            };
            lo | hi
        } else {
            let word = self.live.first().copied().unwrap_or(0);
            (0..n).fold(0u64, |acc, j| {
                acc | (word >> ((i + j) & (self.size - 1)) & 1) << j
            })
        };
        let mask = if n == 64 { u64::MAX } else { (1u64 << n) - 1 };
        (bits & mask) << skip
    }

    /// PSNs assigned and not yet acked.
    pub fn outstanding(&self) -> u32 {
        self.next_psn.wrapping_sub(self.una)
    }

    pub fn has_room(&self) -> bool {
        self.outstanding() < self.size
    }

    /// Is `psn` in `[una, next_psn)`?
    pub fn in_range(&self, psn: u32) -> bool {
        psn.wrapping_sub(self.una) < self.outstanding()
    }

    /// The live slot for `psn`, if any.
    pub fn get(&self, psn: u32) -> Option<&Slot> {
        if !self.in_range(psn) {
            return None;
        }
        self.slot(self.idx(psn))
            .filter(|s| s.state != SlotState::Free && s.psn == psn)
    }

    /// Assigns the next PSN to `buf`; the caller checked `has_room`.
    pub fn assign(&mut self, buf: u32) -> Option<u32> {
        if !self.has_room() {
            return None;
        }
        if self.slots.is_empty() {
            // The ring is created on the first send to this peer only.
            self.slots = vec![FREE_SLOT; usize::try_from(self.size).ok()?];
            self.live = vec![0; usize::try_from(self.size.div_ceil(64)).ok()?];
        }
        let psn = self.next_psn;
        let i = self.idx(psn);
        let s = self.slot_mut(i)?;
        *s = Slot {
            psn,
            buf,
            state: SlotState::Lost, // becomes InFlight in on_transmit
            ..FREE_SLOT
        };
        self.set_live(i, true);
        self.next_psn = psn.wrapping_add(1);
        Some(psn)
    }

    /// Records a (re)transmission of `psn` on `path` at `now`.
    pub fn on_transmit(&mut self, psn: u32, now: u64, path: u8) {
        let i = self.idx(psn);
        let tx_seq = self.tx_count;
        self.tx_count += 1;
        let tail = self.tail;
        let Some(s) = self.slot_mut(i) else { return };
        s.sent_at = now;
        s.tx_seq = tx_seq;
        s.path = path;
        s.state = SlotState::InFlight;
        s.prev = tail;
        s.next = NONE;
        if let Some(t) = self.slot_mut(tail) {
            t.next = i;
        } else {
            self.head = i;
        }
        self.tail = i;
        self.in_flight += 1;
    }

    fn unlink(&mut self, i: u32) {
        let Some(&s) = self.slot(i) else { return };
        match self.slot_mut(s.prev) {
            Some(p) => p.next = s.next,
            None => self.head = s.next,
        }
        match self.slot_mut(s.next) {
            Some(n) => n.prev = s.prev,
            None => self.tail = s.prev,
        }
        if let Some(s) = self.slot_mut(i) {
            s.prev = NONE;
            s.next = NONE;
        }
        self.in_flight -= 1;
    }

    /// Takes `psn` out of whatever queue it is in and frees its slot.
    pub fn remove(&mut self, psn: u32) -> Option<Removed> {
        let s = *self.get(psn)?;
        let i = self.idx(psn);
        match s.state {
            SlotState::InFlight => self.unlink(i),
            SlotState::RnrWait => self.rnr_waiting -= 1,
            // A stale retransmit-queue entry is skipped when popped.
            SlotState::Lost | SlotState::Free => {}
        }
        if let Some(slot) = self.slot_mut(i) {
            slot.state = SlotState::Free;
            slot.buf = NONE;
        }
        self.set_live(i, false);
        Some(Removed {
            buf: s.buf,
            was_lost: s.state == SlotState::Lost,
            path: s.path,
            sent_at: s.sent_at,
            tx_seq: s.tx_seq,
            retransmitted: s.retransmitted,
            lost_by: s.lost_by,
        })
    }

    /// Moves `una` past freed slots.
    pub fn advance_una(&mut self) {
        while self.una != self.next_psn {
            let i = self.idx(self.una);
            if self.slot(i).is_some_and(|s| s.state != SlotState::Free) {
                break;
            }
            self.una = self.una.wrapping_add(1);
        }
    }

    /// Declares an in-flight packet lost and queues it for retransmission.
    /// Returns its path and last transmission number.
    pub fn mark_lost(&mut self, psn: u32, by: LostBy) -> Option<(u8, u64)> {
        let s = *self.get(psn)?;
        if s.state != SlotState::InFlight {
            return None;
        }
        let i = self.idx(psn);
        self.unlink(i);
        if let Some(slot) = self.slot_mut(i) {
            slot.state = SlotState::Lost;
            slot.lost_by = by;
        }
        self.push_retx(psn);
        Some((s.path, s.tx_seq))
    }

    fn push_retx(&mut self, psn: u32) {
        if self.retx.len() >= 2 * usize::try_from(self.size).unwrap_or(usize::MAX) {
            // Only stale entries can make it this long; drop them.
            let mut q = std::mem::take(&mut self.retx);
            q.retain(|&p| self.get(p).is_some_and(|s| s.state == SlotState::Lost));
            self.retx = q;
        }
        self.retx.push_back(psn);
    }

    /// The oldest transmission in flight.
    pub fn oldest_in_flight(&self) -> Option<u32> {
        self.slot(self.head).map(|s| s.psn)
    }

    /// When the oldest in-flight packet times out.
    pub fn deadline(&self, rto: u64) -> Option<u64> {
        self.slot(self.head).map(|s| s.sent_at.saturating_add(rto))
    }

    /// Send time of the newest transmission still in flight.
    pub fn newest_sent_at(&self) -> Option<u64> {
        self.slot(self.tail).map(|s| s.sent_at)
    }

    /// The newest transmission still in flight (the tail-loss probe's).
    pub fn newest_in_flight(&self) -> Option<u32> {
        self.slot(self.tail).map(|s| s.psn)
    }

    /// Records that transmission `tx_seq`, sent at `sent_at`, was acked at
    /// `now` (RACK's state: the newest delivered transmission and its RTT).
    pub fn on_delivered(&mut self, tx_seq: u64, sent_at: u64, now: u64) {
        if tx_seq >= self.highest_acked_tx {
            self.highest_acked_tx = tx_seq;
            self.rack_rtt = now.saturating_sub(sent_at);
        }
    }

    /// RACK (RFC 8985) on the oldest transmission in flight: it is lost
    /// once a transmission sent after it has been acked and it has been
    /// out for that one's RTT plus `reo_wnd` (the allowance for multipath
    /// reordering). Transmissions are in send order, so when the oldest is
    /// not lost none is.
    pub fn rack(&self, now: u64, reo_wnd: u64) -> Rack {
        let Some(s) = self.slot(self.head) else {
            return Rack::Unknown;
        };
        if s.tx_seq >= self.highest_acked_tx {
            return Rack::Unknown;
        }
        let at = s
            .sent_at
            .saturating_add(self.rack_rtt)
            .saturating_add(reo_wnd);
        if at <= now {
            Rack::Lost(s.psn)
        } else {
            Rack::At(at)
        }
    }

    /// The path-order rule (docs/srd-spec.md §7.3): one path is one UDP
    /// flow over one route and delivers in the order sent, so a
    /// transmission still in flight that a later one on its path overtook
    /// is lost at once, with no reorder window. `acked[k]` is one past the
    /// newest transmission on path k that this ack delivered (0: none).
    /// Looks at most `cap` transmissions from the oldest, and none sent
    /// after the newest delivered; pushes the lost PSNs to `out`.
    pub fn overtaken(&self, acked: &[u64; MAX_PATHS], cap: usize, out: &mut Vec<u32>) {
        let top = acked.iter().copied().max().unwrap_or(0);
        let mut i = self.head;
        for _ in 0..cap {
            let Some(s) = self.slot(i) else { break };
            if s.tx_seq >= top {
                break;
            }
            if acked
                .get(usize::from(s.path))
                .is_some_and(|&a| s.tx_seq < a)
            {
                out.push(s.psn);
            }
            i = s.next;
        }
    }

    /// Next packet to retransmit (skipping stale queue entries).
    pub fn pop_retx(&mut self) -> Option<u32> {
        while let Some(psn) = self.retx.pop_front() {
            if self.get(psn).is_some_and(|s| s.state == SlotState::Lost) {
                return Some(psn);
            }
        }
        None
    }

    pub fn has_retx(&mut self) -> bool {
        while let Some(&psn) = self.retx.front() {
            if self.get(psn).is_some_and(|s| s.state == SlotState::Lost) {
                return true;
            }
            self.retx.pop_front();
        }
        false
    }

    pub fn retx_len(&self) -> usize {
        self.retx.len()
    }

    /// Bumps retry bookkeeping for a packet about to be retransmitted.
    pub fn note_retry(&mut self, psn: u32) -> Option<Slot> {
        let i = self.idx(psn);
        let s = self.slot_mut(i)?;
        s.retries += 1;
        s.retransmitted = true;
        Some(*s)
    }

    /// Parks a NAKed-RNR packet until `retry_at`; returns its RNR count.
    pub fn mark_rnr(&mut self, psn: u32, retry_at: u64) -> Option<u32> {
        let s = *self.get(psn)?;
        let i = self.idx(psn);
        match s.state {
            SlotState::InFlight => self.unlink(i),
            SlotState::Lost => {}
            SlotState::RnrWait | SlotState::Free => return None,
        }
        self.rnr_waiting += 1;
        let slot = self.slot_mut(i)?;
        slot.state = SlotState::RnrWait;
        slot.retry_at = retry_at;
        slot.retransmitted = true;
        Some(slot.rnr)
    }

    /// Counts an RNR NAK for `psn`. The packet reached the receiver, so
    /// its loss-retry count starts over: waiting for a receive buffer is
    /// bounded by the RNR limit, not by the retry limit.
    pub fn bump_rnr(&mut self, psn: u32) -> Option<u32> {
        let i = self.idx(psn);
        self.get(psn)?;
        let s = self.slot_mut(i)?;
        s.rnr += 1;
        s.retries = 0;
        Some(s.rnr)
    }

    /// Queues RNR-parked packets whose wait is over; returns the next wait's
    /// end. O(window), run only while some packet is parked.
    pub fn rnr_due(&mut self, now: u64) -> Option<u64> {
        let mut next: Option<u64> = None;
        let mut psn = self.una;
        while psn != self.next_psn && self.rnr_waiting > 0 {
            let i = self.idx(psn);
            if let Some(s) = self.slot(i).copied()
                && s.state == SlotState::RnrWait
            {
                if s.retry_at <= now {
                    if let Some(slot) = self.slot_mut(i) {
                        slot.state = SlotState::Lost;
                    }
                    self.rnr_waiting -= 1;
                    self.push_retx(psn);
                } else {
                    next = Some(next.map_or(s.retry_at, |n| n.min(s.retry_at)));
                }
            }
            psn = psn.wrapping_add(1);
        }
        next
    }

    /// Every live PSN, oldest first (for failing or flushing).
    pub fn live_psns(&self) -> impl Iterator<Item = u32> + '_ {
        (0..self.outstanding())
            .map(|k| self.una.wrapping_add(k))
            .filter(|&p| self.get(p).is_some())
    }

    pub fn buf_of(&self, psn: u32) -> Option<u32> {
        self.get(psn).map(|s| s.buf)
    }

    /// Forgets everything in flight (after completing it): PSNs carry on
    /// from `next_psn` and `una` jumps there, telling the receiver to skip.
    pub fn abandon_all(&mut self) {
        for s in &mut self.slots {
            *s = FREE_SLOT;
        }
        self.live.fill(0);
        self.head = NONE;
        self.tail = NONE;
        self.in_flight = 0;
        self.retx.clear();
        self.rnr_waiting = 0;
        self.una = self.next_psn;
    }
}

/// Outcome of checking an arriving PSN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RxCheck {
    New,
    Duplicate,
    OutOfWindow,
}

const RX_WORDS: usize = 16; // RX_WINDOW / 64

#[derive(Debug, Clone)]
pub(crate) struct RxWindow {
    pub init: bool,
    /// Every PSN before this one has been received.
    pub cum: u32,
    /// One past the highest PSN received.
    highest: u32,
    bits: [u64; RX_WORDS],
}

fn bit_pos(psn: u32) -> (usize, u32) {
    let i = psn % RX_WINDOW;
    (usize::try_from(i / 64).unwrap_or(0), i % 64)
}

impl RxWindow {
    pub fn new() -> Self {
        RxWindow {
            init: false,
            cum: 0,
            highest: 0,
            bits: [0; RX_WORDS],
        }
    }

    pub fn start(&mut self, psn: u32) {
        *self = RxWindow::new();
        self.init = true;
        self.cum = psn;
        self.highest = psn;
    }

    fn test(&self, psn: u32) -> bool {
        let (w, b) = bit_pos(psn);
        self.bits.get(w).is_some_and(|x| x & (1 << b) != 0)
    }

    fn set(&mut self, psn: u32, on: bool) {
        let (w, b) = bit_pos(psn);
        if let Some(x) = self.bits.get_mut(w) {
            if on {
                *x |= 1 << b;
            } else {
                *x &= !(1 << b);
            }
        }
    }

    pub fn check(&self, psn: u32) -> RxCheck {
        if psn_lt(psn, self.cum) {
            return RxCheck::Duplicate;
        }
        if psn.wrapping_sub(self.cum) >= RX_WINDOW {
            return RxCheck::OutOfWindow;
        }
        if self.test(psn) {
            RxCheck::Duplicate
        } else {
            RxCheck::New
        }
    }

    /// Records `psn` (checked `New`) as received.
    pub fn mark(&mut self, psn: u32) {
        self.set(psn, true);
        if !psn_lt(psn, self.highest) {
            self.highest = psn.wrapping_add(1);
        }
        while self.test(self.cum) {
            self.set(self.cum, false);
            self.cum = self.cum.wrapping_add(1);
        }
    }

    /// The sender no longer needs PSNs before `una`: skip them. Ignored if
    /// `una` is behind us or beyond the window (forged or corrupted).
    pub fn advance_to(&mut self, una: u32) {
        if !psn_lt(self.cum, una) || una.wrapping_sub(self.cum) > RX_WINDOW {
            return;
        }
        while self.cum != una {
            self.set(self.cum, false);
            self.cum = self.cum.wrapping_add(1);
        }
        if psn_lt(self.highest, self.cum) {
            self.highest = self.cum;
        }
        while self.test(self.cum) {
            self.set(self.cum, false);
            self.cum = self.cum.wrapping_add(1);
        }
    }

    /// Are there received PSNs beyond a gap?
    pub fn has_holes(&self) -> bool {
        self.highest != self.cum
    }

    /// 64 bits starting at `psn`.
    fn word_at(&self, psn: u32) -> u64 {
        let (w, b) = bit_pos(psn);
        let lo = self.bits.get(w).copied().unwrap_or(0) >> b;
        if b == 0 {
            return lo;
        }
        let hi = self.bits.get((w + 1) % RX_WORDS).copied().unwrap_or(0) << (64 - b);
        lo | hi
    }

    /// SACK words for PSNs `cum+1 ..`, trailing zero words trimmed.
    pub fn sack(&self) -> (u8, [u64; MAX_SACK_WORDS]) {
        let mut out = [0u64; MAX_SACK_WORDS];
        let mut n = 0u8;
        if !self.has_holes() {
            return (0, out);
        }
        let span = self.highest.wrapping_sub(self.cum);
        let mut start = self.cum.wrapping_add(1);
        for (k, o) in (0u8..).zip(out.iter_mut()) {
            if u32::from(k) * 64 >= span {
                break;
            }
            *o = self.word_at(start);
            if *o != 0 {
                n = k + 1;
            }
            start = start.wrapping_add(64);
        }
        (n, out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rx_window_dedup_and_sack() {
        let mut r = RxWindow::new();
        r.start(u32::MAX - 2); // wraps during the test
        let base = u32::MAX - 2;
        assert_eq!(r.check(base.wrapping_sub(1)), RxCheck::Duplicate);
        assert_eq!(r.check(base.wrapping_add(RX_WINDOW)), RxCheck::OutOfWindow);
        for k in [1u32, 3, 70] {
            let p = base.wrapping_add(k);
            assert_eq!(r.check(p), RxCheck::New);
            r.mark(p);
            assert_eq!(r.check(p), RxCheck::Duplicate);
        }
        assert_eq!(r.cum, base);
        assert!(r.has_holes());
        let (n, s) = r.sack();
        // bit j of word 0 = PSN cum+1+j
        assert_eq!(n, 2);
        assert_eq!(s[0], 1 | (1 << 2));
        assert_eq!(s[1], 1 << 5);
        r.mark(base);
        assert_eq!(r.cum, base.wrapping_add(2));
        r.advance_to(base.wrapping_add(50));
        assert_eq!(r.cum, base.wrapping_add(50));
        r.advance_to(base.wrapping_add(71));
        assert_eq!(r.cum, base.wrapping_add(71), "70 was already there");
        assert!(!r.has_holes());
        assert_eq!(r.sack().0, 0);
        // Forged una far ahead is ignored.
        r.advance_to(base.wrapping_add(71 + 5000));
        assert_eq!(r.cum, base.wrapping_add(71));
    }

    #[test]
    fn tx_window_list_and_acks() {
        let mut t = TxWindow::new(8);
        for b in 0..8 {
            let psn = t.assign(b).unwrap();
            t.on_transmit(psn, u64::from(b) * 10, 0);
        }
        assert!(t.assign(99).is_none(), "window full");
        assert_eq!(t.in_flight, 8);
        assert_eq!(t.oldest_in_flight(), Some(0));
        assert_eq!(t.deadline(10), Some(10));
        assert_eq!(t.remove(0).unwrap().buf, 0);
        assert_eq!(t.remove(2).unwrap().buf, 2);
        assert!(t.remove(2).is_none());
        t.advance_una();
        assert_eq!(t.una, 1);
        assert_eq!(t.mark_lost(1, LostBy::Rack), Some((0, 1)));
        assert_eq!(t.in_flight, 5);
        assert_eq!(t.oldest_in_flight(), Some(3));
        assert_eq!(t.pop_retx(), Some(1));
        t.on_transmit(1, 100, 1);
        // 1 is now the newest transmission: the list order is 3..7, 1.
        for p in [3u32, 4, 5, 6, 7] {
            assert_eq!(t.oldest_in_flight(), Some(p));
            t.remove(p);
        }
        assert_eq!(t.oldest_in_flight(), Some(1));
        t.remove(1);
        t.advance_una();
        assert_eq!(t.una, 8);
        assert_eq!(t.in_flight, 0);
        assert!(t.has_room());
    }

    /// `live_word` against a PSN-by-PSN look-up, through random assigns,
    /// acks, losses and resends, for windows below and above one word and
    /// PSNs wrapping around zero.
    #[test]
    fn live_word_matches_the_slots() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut rnd = |n: u32| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % u64::from(n.max(1))) as u32
        };
        for size in [1u32, 8, 32, 64, 256, 1024] {
            let mut t = TxWindow::new(size);
            let start = u32::MAX - 40;
            t.next_psn = start;
            t.una = start;
            for step in 0..4000u32 {
                match rnd(4) {
                    0 | 1 => {
                        if let Some(psn) = t.assign(step) {
                            t.on_transmit(psn, u64::from(step), 0);
                        }
                    }
                    2 => {
                        let psn = t.una.wrapping_add(rnd(size));
                        t.remove(psn);
                        t.advance_una();
                    }
                    _ => {
                        let psn = t.una.wrapping_add(rnd(size));
                        if t.mark_lost(psn, LostBy::Rack).is_some() && rnd(2) == 0 {
                            t.pop_retx();
                            t.on_transmit(psn, u64::from(step), 1);
                        }
                    }
                }
                let base = t
                    .una
                    .wrapping_add(rnd(3 * size + 130))
                    .wrapping_sub(size + 65);
                let want = (0..64u32).fold(0u64, |acc, j| {
                    acc | u64::from(t.get(base.wrapping_add(j)).is_some()) << j
                });
                assert_eq!(
                    t.live_word(base),
                    want,
                    "size {size} step {step} base {base}"
                );
            }
            assert!(t.next_psn < start, "PSNs wrapped for size {size}");
        }
    }

    #[test]
    fn tx_window_rnr_park_and_release() {
        let mut t = TxWindow::new(4);
        let p = t.assign(7).unwrap();
        t.on_transmit(p, 0, 0);
        assert_eq!(t.bump_rnr(p), Some(1));
        t.mark_rnr(p, 500).unwrap();
        assert_eq!(t.in_flight, 0);
        assert_eq!(t.rnr_due(100), Some(500));
        assert!(!t.has_retx());
        assert_eq!(t.rnr_due(500), None);
        assert_eq!(t.pop_retx(), Some(p));
    }
}
