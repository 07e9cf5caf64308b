//! RTT estimation, retransmission and probe timeouts, and the congestion
//! window.
//!
//! The RTO follows RFC 6298 (SRTT/RTTVAR with gains 1/8 and 1/4, RTO =
//! SRTT + 4·RTTVAR, Karn's rule: no samples from retransmitted packets),
//! never below 3·SRTT (a tail-loss probe at 2·SRTT gets its round trip
//! first), clamped to `[min_rto, max_rto]` with a floor of tens of µs: on a
//! datacenter fabric a fixed millisecond floor (let alone TCP's 200 ms) is
//! what ruins latency and throughput under loss. Backoff doubles at most
//! `MAX_BACKOFF` times.

/// Most doublings of the RTO after consecutive expiries.
pub(crate) const MAX_BACKOFF: u32 = 12;

/// Per-peer RTT estimator with exponential backoff.
#[derive(Debug, Clone)]
pub(crate) struct Rtt {
    srtt: u64,
    rttvar: u64,
    /// Smallest sample seen: the path's RTT without queueing.
    min_rtt: u64,
    has_sample: bool,
    backoff: u32,
    min_rto: u64,
    max_rto: u64,
    initial_rto: u64,
    min_pto: u64,
}

impl Rtt {
    pub fn new(min_rto: u64, max_rto: u64, initial_rto: u64, min_pto: u64) -> Self {
        Rtt {
            srtt: 0,
            rttvar: 0,
            min_rtt: u64::MAX,
            has_sample: false,
            backoff: 0,
            min_rto,
            max_rto,
            initial_rto,
            min_pto,
        }
    }

    /// Feeds one RTT measurement (ns) from a packet sent exactly once.
    pub fn sample(&mut self, r: u64) {
        self.min_rtt = self.min_rtt.min(r);
        if self.has_sample {
            let err = self.srtt.abs_diff(r);
            self.rttvar = self.rttvar - self.rttvar / 4 + err / 4;
            self.srtt = self.srtt - self.srtt / 8 + r / 8;
        } else {
            self.srtt = r;
            self.rttvar = r / 2;
            self.has_sample = true;
        }
    }

    /// Doublings in force.
    pub fn backoff(&self) -> u32 {
        self.backoff
    }

    /// Resets the backoff: the peer made progress.
    pub fn progress(&mut self) {
        self.backoff = 0;
    }

    /// A timeout of `fired` ns was spurious (the packets it declared lost
    /// were delivered): the acks were late, not missing. Widen the
    /// variance so the RTO covers such a delay (at least SRTT + 2·fired);
    /// fresh samples narrow it again.
    pub fn spurious_timeout(&mut self, fired: u64) {
        self.rttvar = self.rttvar.max(fired / 2);
    }

    /// Doubles the timeout after an expiry (at most `MAX_BACKOFF` times,
    /// and never beyond max_rto).
    pub fn back_off(&mut self) {
        self.backoff = (self.backoff + 1).min(MAX_BACKOFF);
    }

    pub fn srtt(&self) -> Option<u64> {
        self.has_sample.then_some(self.srtt)
    }

    /// Smallest RTT sample so far.
    pub fn min_rtt(&self) -> Option<u64> {
        self.has_sample.then_some(self.min_rtt)
    }

    /// The retransmission timeout without backoff.
    pub fn base_rto(&self) -> u64 {
        let base = if self.has_sample {
            self.srtt
                .saturating_add(self.rttvar.saturating_mul(4).max(1))
                .max(self.srtt.saturating_mul(3))
        } else {
            self.initial_rto
        };
        base.clamp(self.min_rto, self.max_rto)
    }

    /// The current retransmission timeout, backoff included.
    pub fn rto(&self) -> u64 {
        self.base_rto()
            .saturating_mul(1u64 << self.backoff)
            .min(self.max_rto)
    }

    /// The tail-loss probe timeout: 2·SRTT (at least `min_pto`), or none
    /// before the first sample (the RTO covers that case).
    pub fn pto(&self) -> Option<u64> {
        self.has_sample
            .then(|| self.srtt.saturating_mul(2).max(self.min_pto))
    }
}

/// Fixed-point unit of the delay-based window: 1/1024 packet.
const FP: u64 = 1024;
/// Smallest delay-based window: one packet per 8 round trips. Lower
/// starves a sender for many RTOs' worth of time after a loss burst; a
/// thousand senders at the floor offer 125 packets per RTT, and the RTT
/// then includes the queue they build, so they slow down further.
const MIN_FP: u64 = FP / 8;
/// Smallest grant honoured: one packet per 64 round trips.
const MIN_GRANT: u64 = FP / 64;

/// Losses of consecutive transmissions that make a burst (a queue
/// overflowing, or a whole batch dropped) rather than isolated random loss
/// (at 5 % random loss a run of 4 comes once in 160 000 packets; a run of
/// 3, once in 8 000, cut the window several times per second).
const LOSS_RUN: u32 = 4;

/// Congestion window in packets.
///
/// Loss-based (AIMD, `target == 0`): slow start to `ssthresh`, then +1 per
/// window of acks; halved on a congestion loss at most once per window of
/// transmissions, cut to the floor on a timeout.
///
/// Delay-based (`target > 0`, after Swift; off by default): the target RTT is
/// the path's `min_rtt` plus `target` of queueing. An ack whose RTT sample
/// is at or below it grows the window (slow start, then +1 packet per
/// RTT). Decreases follow the *filtered* RTT, the smallest sample of each
/// round (one SRTT): a queue raises every sample of a round, a descheduled
/// process or a late ack only some. A round above the target shrinks the
/// window in proportion to the excess, by at most half. The window is kept
/// in 1/1024 packets and may fall below one packet: the device then sends
/// one packet per `srtt / cwnd` (pacing), so a thousand senders into one
/// receiver share its link without overflowing the switch queue.
///
/// A receiver's grant (§11.1 of the spec: its in-flight budget shared
/// among the senders it hears from) caps either window; below one packet
/// the sender paces as in delay mode.
///
/// Losses cut the loss-based window only in a run of `LOSS_RUN`
/// consecutive lost transmissions (delay mode: any loss, at most once per
/// SRTT). An isolated loss (random loss, a corrupted datagram) is repaired
/// and otherwise ignored, whatever the RTT. Timeouts cut, and a timeout
/// that proves spurious (late acks) is undone (`undo_timeout`).
#[derive(Debug, Clone)]
pub(crate) struct Cwnd {
    cwnd: u32,
    ssthresh: u32,
    acked: u32,
    min: u32,
    max: u32,
    init: u32,
    /// Losses of packets sent before this transmission count are part of the
    /// loss event that already cut the window.
    recovery_until: u64,
    /// Delay-based mode: target RTT in ns (0: off), window and slow-start
    /// threshold in 1/1024 packets, time of the last decrease.
    target: u64,
    w: u64,
    ss_w: u64,
    last_decrease: u64,
    /// RTT filter: start and smallest sample of the current round, and the
    /// smallest sample of the last complete round (0: none yet).
    round_start: u64,
    round_min: u64,
    filtered: u64,
    /// Burst detection: the last lost transmission and how many lost
    /// transmissions in a row end there.
    last_lost_tx: u64,
    loss_run: u32,
    /// Lost transmissions in a row that read as congestion: `LOSS_RUN`, or
    /// more than one path burst (`with_burst`).
    run_limit: u32,
    /// The window before the last timeout cut it, restored if that timeout
    /// proves spurious.
    saved: Option<Saved>,
    /// The receiver's grant in 1/1024 packets (u64::MAX: none).
    grant: u64,
    /// The last ack's round trip, resends included (0: none): paces a
    /// sender that has no SRTT yet (Karn's rule gives a sender whose
    /// first flight was lost none until a packet gets through first time).
    last_rtt: u64,
}

/// What a timeout changes in the window, for undoing it.
#[derive(Debug, Clone, Copy)]
struct Saved {
    cwnd: u32,
    ssthresh: u32,
    w: u64,
}

impl Cwnd {
    #[cfg(test)]
    pub fn new(init: u32, min: u32, max: u32) -> Self {
        Self::with_target(init, min, max, 0)
    }

    pub fn with_target(init: u32, min: u32, max: u32, target: u64) -> Self {
        let min = min.max(1);
        let max = max.max(min);
        let init = init.clamp(min, max);
        Cwnd {
            cwnd: init,
            ssthresh: max,
            acked: 0,
            min,
            max,
            init,
            recovery_until: 0,
            target,
            w: u64::from(init) * FP,
            ss_w: u64::from(max) * FP,
            last_decrease: 0,
            round_start: 0,
            round_min: u64::MAX,
            filtered: 0,
            last_lost_tx: u64::MAX,
            loss_run: 0,
            run_limit: LOSS_RUN,
            saved: None,
            grant: u64::MAX,
            last_rtt: 0,
        }
    }

    /// The receiver's latest grant: `bytes` in flight at most (None: no
    /// limit), in packets of `packet` bytes. At least `MIN_GRANT`.
    pub fn set_grant(&mut self, bytes: Option<u64>, packet: usize) {
        self.grant = bytes.map_or(u64::MAX, |b| {
            let packet = u64::try_from(packet.max(1)).unwrap_or(u64::MAX);
            (b.saturating_mul(FP) / packet).max(MIN_GRANT)
        });
    }

    /// The window of either mode in 1/1024 packets, before the grant.
    fn own_fp(&self) -> u64 {
        if self.target > 0 {
            self.w
        } else {
            u64::from(self.cwnd) * FP
        }
    }

    /// The window in 1/1024 packets if it is below one packet (then paced):
    /// the delay-based window or the grant, the smaller (the loss-based
    /// window is at least one packet).
    fn sub_packet(&self) -> Option<u64> {
        let w = self.own_fp().min(self.grant);
        (w < FP).then_some(w)
    }

    /// Packets go to a path `burst` at a time, as one GSO send: a drop on
    /// the way out (a full queue of the sender's, a filter) takes a whole
    /// send, a run of up to `burst` that is one event, not a queue that
    /// overflows packet after packet. Only a longer run reads as
    /// congestion (the delay signal stays as it is).
    pub fn with_burst(mut self, burst: u32) -> Self {
        self.run_limit = LOSS_RUN.max(burst.saturating_add(1));
        self
    }

    /// Packets allowed in flight (at least one): the window, capped by the
    /// receiver's grant.
    pub fn get(&self) -> u32 {
        let w = self.own_fp().min(self.grant);
        u32::try_from((w / FP).max(1)).unwrap_or(u32::MAX)
    }

    /// Is the receiver's grant what limits the window now?
    pub fn granted(&self) -> bool {
        self.grant < self.own_fp()
    }

    /// Paced below one packet per RTT (delay mode or a grant)?
    pub fn below_one_packet(&self) -> bool {
        self.sub_packet().is_some()
    }

    /// The round trip of the newest packet an ack covered, whether or not
    /// it was resent (for pacing only, not the RTO).
    pub fn note_rtt(&mut self, r: u64) {
        self.last_rtt = r.max(1);
    }

    /// Below one packet: the gap to leave between packets, `rtt / cwnd`,
    /// with `srtt`, or before it the last ack's round trip (none before
    /// either: one packet in flight, unpaced).
    pub fn pacing_gap(&self, srtt: Option<u64>) -> Option<u64> {
        let rtt = srtt.or((self.last_rtt > 0).then_some(self.last_rtt))?;
        self.sub_packet().map(|w| {
            let gap = u128::from(rtt) * u128::from(FP) / u128::from(w.max(1));
            u64::try_from(gap).unwrap_or(u64::MAX)
        })
    }

    pub fn on_ack(&mut self) {
        if self.target > 0 {
            return;
        }
        if self.cwnd < self.ssthresh {
            self.cwnd = (self.cwnd + 1).min(self.max);
        } else {
            self.acked += 1;
            if self.acked >= self.cwnd {
                self.acked = 0;
                self.cwnd = (self.cwnd + 1).min(self.max);
            }
        }
    }

    /// Feeds the round filter; true when a round (one SRTT) just ended and
    /// `filtered` holds its smallest sample.
    fn filter(&mut self, rtt: u64, now: u64, srtt: u64) -> bool {
        self.round_min = self.round_min.min(rtt);
        if now.saturating_sub(self.round_start) < srtt {
            return false;
        }
        self.filtered = self.round_min;
        self.round_min = u64::MAX;
        self.round_start = now;
        true
    }

    /// Is a queue building toward this peer: the last round's smallest RTT
    /// above the target (delay mode: `min_rtt + target`; loss-based mode:
    /// twice `min_rtt`)?
    pub fn queue_building(&self, min_rtt: u64) -> bool {
        let allowance = if self.target > 0 {
            self.target
        } else {
            min_rtt
        };
        self.filtered > min_rtt.saturating_add(allowance)
    }

    /// One ack newly covering `acked` packets, with an RTT sample if it had
    /// a usable one (Karn); `min_rtt` and `srtt` from the estimator.
    pub fn on_ack_delay(
        &mut self,
        acked: u32,
        rtt: Option<u64>,
        now: u64,
        min_rtt: u64,
        srtt: u64,
    ) {
        let Some(rtt) = rtt else { return };
        let round_end = self.filter(rtt, now, srtt);
        if self.target == 0 || acked == 0 {
            return;
        }
        let acked = u64::from(acked);
        let max = u64::from(self.max) * FP;
        let target = min_rtt.saturating_add(self.target);
        if rtt <= target {
            let inc = if self.w < self.ss_w {
                acked * FP
            } else if self.w >= FP {
                acked * FP * FP / self.w
            } else {
                // Below one packet acks are rare: +1/4 packet each, so a
                // window at the floor is back to one packet in 4 acks.
                acked * FP / 4
            };
            self.w = (self.w + inc).min(max);
        }
        let rtt = self.filtered;
        if round_end && rtt > target && now.saturating_sub(self.last_decrease) >= rtt {
            // Swift: w *= 1 - beta·(rtt - target)/rtt, beta = 0.8, at
            // most halving.
            let excess = u128::from(rtt - target);
            let cut = (excess * 8 * u128::from(FP) / (10 * u128::from(rtt))).min(512);
            let keep = u128::from(FP) - cut;
            let w = u128::from(self.w) * keep / u128::from(FP);
            self.w = u64::try_from(w).unwrap_or(MIN_FP).max(MIN_FP);
            self.ss_w = self.w;
            self.last_decrease = now;
        }
    }

    /// A packet last sent as transmission `tx_seq` was lost; `next_tx_seq` is
    /// the counter's current value. Returns whether the window was cut: only
    /// for a congestion loss (a run of lost transmissions), at most once
    /// per window of transmissions; in delay mode also at most once per
    /// `srtt` (below one packet every packet is a window of its own).
    pub fn on_loss(&mut self, tx_seq: u64, next_tx_seq: u64, now: u64, srtt: u64) -> bool {
        self.loss_run = if tx_seq == self.last_lost_tx.wrapping_add(1) {
            self.loss_run + 1
        } else {
            1
        };
        self.last_lost_tx = tx_seq;
        // Delay mode reads congestion from the RTT and keeps windows of a
        // few packets, where runs are short: every loss counts there. In
        // loss-based mode only a run does: an isolated loss is random
        // whatever the RTT (on a host the RTT of a stream is mostly its
        // own queue in the receiver's socket buffer, so reading a loss
        // during it as congestion halved the window once per window of
        // packets at 1-5 % loss).
        let congestion = self.target > 0 || self.loss_run >= self.run_limit;
        if !congestion || tx_seq < self.recovery_until {
            return false;
        }
        self.recovery_until = next_tx_seq;
        self.cwnd = (self.cwnd / 2).max(self.min);
        self.ssthresh = self.cwnd;
        self.acked = 0;
        if self.target > 0 && now.saturating_sub(self.last_decrease) >= srtt {
            self.w = (self.w / 2).max(MIN_FP);
            self.ss_w = self.w;
            self.last_decrease = now;
        }
        true
    }

    /// A retransmission timeout. `congestion`: a queue is building or the
    /// timeouts repeat; then the window drops to its floor (delay mode: at
    /// most one packet). A first timeout on an uncongested path (random
    /// loss took a packet and its probe) only halves it, to no less than
    /// one packet.
    pub fn on_timeout(&mut self, next_tx_seq: u64, congestion: bool) {
        // The window before the first of a run of timeouts: a spurious run
        // restores it whole.
        if self.saved.is_none() {
            self.saved = Some(Saved {
                cwnd: self.cwnd,
                ssthresh: self.ssthresh,
                w: self.w,
            });
        }
        if !congestion && self.target == 0 {
            if next_tx_seq > self.recovery_until {
                self.cwnd = (self.cwnd / 2).max(self.min);
                self.ssthresh = self.cwnd;
                self.w = (self.w / 2).max(FP.min(self.w));
                self.ss_w = self.w;
            }
            self.recovery_until = next_tx_seq;
            self.acked = 0;
            return;
        }
        if self.recovery_until <= next_tx_seq {
            self.ssthresh = (self.cwnd / 2).max(self.min);
        }
        self.recovery_until = next_tx_seq;
        self.cwnd = self.min;
        self.acked = 0;
        self.w = (self.w / 2).clamp(MIN_FP, FP);
        self.ss_w = self.w;
    }

    /// The last timeout was spurious: back to the window before it.
    pub fn undo_timeout(&mut self) {
        if let Some(s) = self.saved.take() {
            self.cwnd = self.cwnd.max(s.cwnd);
            self.ssthresh = self.ssthresh.max(s.ssthresh);
            self.w = self.w.max(s.w);
            self.ss_w = self.ss_w.max(s.w);
            self.acked = 0;
        }
    }

    /// The last timeout was a real loss: its cut stands.
    pub fn keep_timeout(&mut self) {
        self.saved = None;
    }

    pub fn reset(&mut self) {
        let run_limit = self.run_limit;
        *self = Cwnd::with_target(self.init, self.min, self.max, self.target);
        self.run_limit = run_limit;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rto_tracks_rtt_with_floor_and_backoff() {
        let mut r = Rtt::new(1_000_000, 100_000_000, 10_000_000, 10_000);
        assert_eq!(r.rto(), 10_000_000);
        assert_eq!(r.pto(), None, "no probe before an RTT sample");
        for _ in 0..50 {
            r.sample(20_000);
        }
        assert_eq!(r.rto(), 1_000_000, "clamped to the min RTO");
        assert_eq!(r.pto(), Some(40_000), "probe at 2 SRTT");
        r.back_off();
        r.back_off();
        assert_eq!(r.rto(), 4_000_000);
        for _ in 0..10 {
            r.back_off();
        }
        assert_eq!(r.rto(), 100_000_000, "capped");
        r.progress();
        for _ in 0..100 {
            r.sample(5_000_000);
        }
        let rto = r.rto();
        assert!(
            (14_900_000..16_000_000).contains(&rto),
            "about 3 SRTT: {rto}"
        );
    }

    #[test]
    fn rto_floor_follows_the_measured_rtt() {
        let mut r = Rtt::new(50_000, 1_000_000_000, 10_000_000, 10_000);
        for _ in 0..50 {
            r.sample(25_000);
        }
        assert_eq!(r.min_rtt(), Some(25_000));
        assert_eq!(r.rto(), 75_000, "3 SRTT on a steady path");
        assert_eq!(r.pto(), Some(50_000));
        for _ in 0..100 {
            r.back_off();
        }
        assert_eq!(r.rto(), 75_000 << MAX_BACKOFF, "backoff bounded");
        let mut r = Rtt::new(50_000, 100_000_000, 10_000_000, 10_000);
        r.sample(2_000);
        for _ in 0..50 {
            r.sample(2_000);
        }
        assert_eq!(r.rto(), 50_000, "never below min_rto");
        assert_eq!(r.pto(), Some(10_000), "never below min_pto");
    }

    #[test]
    fn cwnd_aimd() {
        let mut c = Cwnd::new(8, 2, 64);
        for _ in 0..8 {
            c.on_ack();
        }
        assert_eq!(c.get(), 16, "slow start doubles per window");
        assert!(
            !c.on_loss(10, 20, 0, 0),
            "an isolated loss is not congestion"
        );
        assert_eq!(c.get(), 16);
        assert!(!c.on_loss(11, 20, 0, 0));
        assert!(!c.on_loss(12, 20, 0, 0), "nor are three in a row");
        assert!(c.on_loss(13, 20, 0, 0), "four in a row are");
        assert_eq!(c.get(), 8);
        c.on_loss(14, 25, 0, 0);
        assert_eq!(c.get(), 8, "one cut per loss event");
        for _ in 0..8 {
            c.on_ack();
        }
        assert_eq!(c.get(), 9, "congestion avoidance: +1 per window");
        c.on_timeout(30, true);
        assert_eq!(c.get(), 2);
        c.undo_timeout();
        assert_eq!(c.get(), 9, "a spurious timeout is undone");
        c.on_timeout(40, true);
        c.keep_timeout();
        c.undo_timeout();
        assert_eq!(c.get(), 2, "a real one stands");
    }

    #[test]
    fn a_lost_path_burst_is_one_event_a_longer_run_congestion() {
        let mut c = Cwnd::new(64, 2, 64).with_burst(44);
        for tx in 100..144 {
            assert!(!c.on_loss(tx, 300, 0, 0), "a GSO send dropped whole");
        }
        assert_eq!(c.get(), 64);
        assert!(
            c.on_loss(144, 300, 0, 0),
            "45 in a row are more than a send"
        );
        assert_eq!(c.get(), 32);
        // With bursts of one packet the run that counts stays at four.
        let mut d = Cwnd::new(64, 2, 64).with_burst(1);
        assert!(!d.on_loss(0, 10, 0, 0) && !d.on_loss(1, 10, 0, 0) && !d.on_loss(2, 10, 0, 0));
        assert!(d.on_loss(3, 10, 0, 0));
    }

    #[test]
    fn delay_mode_tracks_the_target_and_paces_below_one_packet() {
        let mut c = Cwnd::with_target(4, 1, 64, 50_000);
        c.on_ack_delay(4, Some(10_000), 0, 0, 10_000);
        assert_eq!(c.get(), 8, "slow start below the target");
        assert!(c.pacing_gap(Some(10_000)).is_none());
        // Far above the target: cut by at most half, once per RTT.
        // The round that held the low sample ends without a cut; the
        // next one, all above the target, cuts.
        c.on_ack_delay(1, Some(500_000), 600_000, 0, 500_000);
        assert_eq!(c.get(), 8, "the round's smallest RTT was below the target");
        c.on_ack_delay(1, Some(500_000), 1_100_000, 0, 500_000);
        assert_eq!(c.get(), 4);
        c.on_ack_delay(1, Some(500_000), 1_100_001, 0, 500_000);
        assert_eq!(c.get(), 4, "one decrease per RTT");
        for k in 0..8u64 {
            c.on_ack_delay(1, Some(500_000), 2_000_000 + k * 1_000_000, 0, 500_000);
        }
        assert_eq!(c.get(), 1, "floor of the in-flight limit");
        let gap = c.pacing_gap(Some(10_000)).expect("paced below one packet");
        assert!(gap > 10_000, "{gap}");
        // Back under the target: it grows again (+1/4 packet per ack).
        for _ in 0..4 {
            c.on_ack_delay(1, Some(10_000), 20_000_000, 0, 10_000);
        }
        assert!(c.pacing_gap(Some(10_000)).is_none());
        assert!(c.get() >= 1);
    }

    #[test]
    fn a_grant_caps_the_window_and_paces_below_one_packet() {
        let mut c = Cwnd::new(32, 16, 256);
        c.set_grant(Some(4 * 4096), 4096);
        assert_eq!(c.get(), 4, "the grant, not the window");
        assert!(c.granted() && !c.below_one_packet());
        assert!(c.pacing_gap(Some(10_000)).is_none());
        // A quarter packet: one packet per four round trips.
        c.set_grant(Some(1024), 4096);
        assert_eq!(c.get(), 1);
        assert_eq!(c.pacing_gap(Some(10_000)), Some(40_000));
        // No SRTT yet (every first transmission lost): the last ack's
        // round trip, resend or not; with neither, unpaced.
        assert_eq!(c.pacing_gap(None), None);
        c.note_rtt(8_000);
        assert_eq!(c.pacing_gap(None), Some(32_000));
        // Never below 1/64 packet.
        c.set_grant(Some(1), 4096);
        assert_eq!(c.pacing_gap(Some(10_000)), Some(640_000));
        // Lifted: the window's own size again, unpaced.
        c.set_grant(None, 4096);
        assert_eq!(c.get(), 32);
        assert!(!c.granted() && c.pacing_gap(Some(10_000)).is_none());
        // A grant above the window changes nothing.
        c.set_grant(Some(1 << 20), 4096);
        assert_eq!(c.get(), 32);
        assert!(!c.granted());
    }
}
