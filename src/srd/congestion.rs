//! RTT estimation, retransmission timeout and the congestion window.
//!
//! The RTO follows RFC 6298 (SRTT/RTTVAR with gains 1/8 and 1/4, RTO =
//! SRTT + 4·RTTVAR, Karn's rule: no samples from retransmitted packets) but
//! is clamped to `[min_rto, max_rto]` with a min of about a millisecond: on a
//! datacenter fabric TCP's 200 ms floor is what ruins throughput under loss.

/// Per-peer RTT estimator with exponential backoff.
#[derive(Debug, Clone)]
pub(crate) struct Rtt {
    srtt: u64,
    rttvar: u64,
    has_sample: bool,
    backoff: u32,
    min_rto: u64,
    max_rto: u64,
    initial_rto: u64,
}

impl Rtt {
    pub fn new(min_rto: u64, max_rto: u64, initial_rto: u64) -> Self {
        Rtt {
            srtt: 0,
            rttvar: 0,
            has_sample: false,
            backoff: 0,
            min_rto,
            max_rto,
            initial_rto,
        }
    }

    /// Feeds one RTT measurement (ns) from a packet sent exactly once.
    pub fn sample(&mut self, r: u64) {
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

    /// Resets the backoff: the peer made progress.
    pub fn progress(&mut self) {
        self.backoff = 0;
    }

    /// Doubles the timeout after an expiry (capped at max_rto).
    pub fn back_off(&mut self) {
        self.backoff = (self.backoff + 1).min(30);
    }

    pub fn srtt(&self) -> Option<u64> {
        self.has_sample.then_some(self.srtt)
    }

    /// The current retransmission timeout, backoff included.
    pub fn rto(&self) -> u64 {
        let base = if self.has_sample {
            self.srtt
                .saturating_add(self.rttvar.saturating_mul(4).max(1))
        } else {
            self.initial_rto
        };
        let base = base.clamp(self.min_rto, self.max_rto);
        base.saturating_mul(1u64 << self.backoff).min(self.max_rto)
    }
}

/// AIMD congestion window in packets: slow start to `ssthresh`, then +1 per
/// window of acks; halved on loss at most once per window of transmissions,
/// cut to the floor on a timeout.
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
}

impl Cwnd {
    pub fn new(init: u32, min: u32, max: u32) -> Self {
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
        }
    }

    pub fn get(&self) -> u32 {
        self.cwnd
    }

    pub fn on_ack(&mut self) {
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

    /// A packet last sent as transmission `tx_seq` was lost; `next_tx_seq` is
    /// the counter's current value.
    pub fn on_loss(&mut self, tx_seq: u64, next_tx_seq: u64) {
        if tx_seq < self.recovery_until {
            return;
        }
        self.recovery_until = next_tx_seq;
        self.cwnd = (self.cwnd / 2).max(self.min);
        self.ssthresh = self.cwnd;
        self.acked = 0;
    }

    pub fn on_timeout(&mut self, next_tx_seq: u64) {
        if self.recovery_until <= next_tx_seq {
            self.ssthresh = (self.cwnd / 2).max(self.min);
        }
        self.recovery_until = next_tx_seq;
        self.cwnd = self.min;
        self.acked = 0;
    }

    pub fn reset(&mut self) {
        *self = Cwnd::new(self.init, self.min, self.max);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rto_tracks_rtt_with_floor_and_backoff() {
        let mut r = Rtt::new(1_000_000, 100_000_000, 10_000_000);
        assert_eq!(r.rto(), 10_000_000);
        for _ in 0..50 {
            r.sample(20_000);
        }
        assert_eq!(r.rto(), 1_000_000, "clamped to the min RTO");
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
        assert!((5_000_000..6_000_000).contains(&rto), "{rto}");
    }

    #[test]
    fn cwnd_aimd() {
        let mut c = Cwnd::new(8, 2, 64);
        for _ in 0..8 {
            c.on_ack();
        }
        assert_eq!(c.get(), 16, "slow start doubles per window");
        c.on_loss(10, 20);
        assert_eq!(c.get(), 8);
        c.on_loss(15, 25);
        assert_eq!(c.get(), 8, "one cut per loss event");
        for _ in 0..8 {
            c.on_ack();
        }
        assert_eq!(c.get(), 9, "congestion avoidance: +1 per window");
        c.on_timeout(30);
        assert_eq!(c.get(), 2);
    }
}
