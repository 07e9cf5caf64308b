//! Multipath spraying: a peer's packets are spread round-robin over the
//! device's paths (local UDP source ports, so ECMP hashes them onto different
//! network routes), a burst at a time: `burst` consecutive packets take one
//! path (they leave in one GSO send and arrive in order), the next burst the
//! next path. A path whose packets keep getting lost is excluded and
//! probed with a single packet after `probe_interval`; an ack of a packet
//! sent on it brings it back. The last live path is never excluded: with
//! nowhere else to go, losses are the network's, not the path's.

use super::MAX_PATHS;

#[derive(Debug, Clone, Copy, Default)]
struct PathState {
    consecutive_losses: u32,
    dead: bool,
    /// When a dead path may carry its next probe.
    probe_at: u64,
}

/// What a path event changed, so the device can count it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PathEvent {
    None,
    Failed,
    Recovered,
}

#[derive(Debug, Clone)]
pub(crate) struct Paths {
    n: u8,
    next: u8,
    alive: u8,
    fail_threshold: u32,
    probe_interval: u64,
    state: [PathState; MAX_PATHS],
    /// Packets one path takes before the next one does (1: every packet
    /// its own path).
    burst: u8,
    /// The path of the current burst, and how many more packets it takes.
    cur: u8,
    left: u8,
}

impl Paths {
    pub fn new(n: u8, fail_threshold: u32, probe_interval: u64) -> Self {
        let n = n.clamp(1, 16);
        Paths {
            n,
            next: 0,
            alive: n,
            fail_threshold: fail_threshold.max(1),
            probe_interval,
            state: [PathState::default(); MAX_PATHS],
            burst: 1,
            cur: 0,
            left: 0,
        }
    }

    /// `burst` consecutive packets per path (clamped to 1..=255). A path
    /// then fails after `fail_threshold` bursts' worth of losses in a row:
    /// a burst lost whole is one event (one GSO send dropped), not a path
    /// that lost every packet for a while.
    pub fn with_burst(mut self, burst: u32) -> Self {
        self.burst = u8::try_from(burst.max(1)).unwrap_or(u8::MAX);
        self
    }

    fn st(&mut self, p: u8) -> Option<&mut PathState> {
        if p < self.n {
            self.state.get_mut(usize::from(p))
        } else {
            None
        }
    }

    /// Picks the path for the next packet: round-robin over live paths; a dead
    /// path whose probe time has come is picked once (a probe). `avoid` is the
    /// path a retransmitted packet was lost on, skipped if another will do.
    /// Packets of a burst stay on its path while it is live; a resend
    /// (`avoid`) goes elsewhere without ending the burst.
    pub fn choose(&mut self, now: u64, avoid: Option<u8>) -> u8 {
        if avoid.is_none() && self.left > 0 {
            let p = self.cur;
            if self.state.get(usize::from(p)).is_some_and(|s| !s.dead) {
                self.left -= 1;
                return p;
            }
        }
        let p = self.rotate(now, avoid);
        if avoid.is_none() {
            self.cur = p;
            self.left = self.burst - 1;
        }
        p
    }

    fn rotate(&mut self, now: u64, avoid: Option<u8>) -> u8 {
        let n = self.n;
        let interval = self.probe_interval;
        for _ in 0..n {
            let p = self.next;
            self.next = if p + 1 >= n { 0 } else { p + 1 };
            if Some(p) == avoid && n > 1 {
                continue;
            }
            let Some(s) = self.st(p) else { continue };
            if !s.dead {
                return p;
            }
            if now >= s.probe_at {
                s.probe_at = now.saturating_add(interval);
                return p;
            }
        }
        // Everything else is dead or avoided: use the first live path.
        (0..n)
            .find(|&p| self.state.get(usize::from(p)).is_some_and(|s| !s.dead))
            .unwrap_or(0)
    }

    /// Picks a live path for a control packet (ACK/NAK). Never a probe: a
    /// control packet is not acknowledged, so it could not tell whether the
    /// path works, and it would use up the data packets' probe slot.
    pub fn choose_live(&mut self) -> u8 {
        let n = self.n;
        for _ in 0..n {
            let p = self.next;
            self.next = if p + 1 >= n { 0 } else { p + 1 };
            if !self.is_dead(p) {
                return p;
            }
        }
        0
    }

    /// A packet sent on `p` was acknowledged.
    pub fn on_ack(&mut self, p: u8) -> PathEvent {
        let Some(s) = self.st(p) else {
            return PathEvent::None;
        };
        s.consecutive_losses = 0;
        if s.dead {
            s.dead = false;
            self.alive += 1;
            return PathEvent::Recovered;
        }
        PathEvent::None
    }

    /// A packet sent on `p` was declared lost.
    pub fn on_loss(&mut self, p: u8, now: u64) -> PathEvent {
        let (threshold, interval, alive) = (self.fail_threshold, self.probe_interval, self.alive);
        let burst = u32::from(self.burst);
        let Some(s) = self.st(p) else {
            return PathEvent::None;
        };
        s.consecutive_losses = s.consecutive_losses.saturating_add(1);
        if s.dead {
            // A failed probe: wait a full interval before the next one.
            s.probe_at = now.saturating_add(interval);
            return PathEvent::None;
        }
        if s.consecutive_losses >= threshold.saturating_mul(burst) && alive > 1 {
            s.dead = true;
            s.probe_at = now.saturating_add(interval);
            self.alive -= 1;
            return PathEvent::Failed;
        }
        PathEvent::None
    }

    pub fn alive(&self) -> u8 {
        self.alive
    }

    pub fn is_dead(&self, p: u8) -> bool {
        self.state.get(usize::from(p)).is_some_and(|s| s.dead)
    }

    pub fn reset(&mut self) {
        *self = Paths::new(self.n, self.fail_threshold, self.probe_interval)
            .with_burst(u32::from(self.burst));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_robin_then_exclusion_and_probe() {
        let mut p = Paths::new(4, 3, 1000);
        let picks: Vec<u8> = (0..8).map(|_| p.choose(0, None)).collect();
        assert_eq!(picks, [0, 1, 2, 3, 0, 1, 2, 3]);
        for _ in 0..3 {
            p.on_loss(2, 10);
        }
        assert!(p.is_dead(2));
        assert_eq!(p.alive(), 3);
        let picks: Vec<u8> = (0..6).map(|_| p.choose(20, None)).collect();
        assert!(!picks.contains(&2), "{picks:?}");
        // After the probe interval, path 2 gets exactly one probe.
        let picks: Vec<u8> = (0..8).map(|_| p.choose(1010, None)).collect();
        assert_eq!(picks.iter().filter(|&&x| x == 2).count(), 1, "{picks:?}");
        assert_eq!(p.on_ack(2), PathEvent::Recovered);
        assert_eq!(p.alive(), 4);
    }

    #[test]
    fn a_burst_stays_on_its_path_and_a_dead_path_gets_one_probe() {
        let mut p = Paths::new(3, 1, 1000).with_burst(4);
        let picks: Vec<u8> = (0..12).map(|_| p.choose(0, None)).collect();
        assert_eq!(picks, [0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2]);
        // A resend elsewhere does not end the burst it interrupts.
        assert_eq!(p.choose(0, None), 0);
        assert_ne!(p.choose(0, Some(0)), 0);
        assert_eq!(p.choose(0, None), 0);
        // A burst lost whole is one event: the path fails after its
        // threshold (1 here) in bursts, and then hands the rest of its
        // burst to the next one.
        for _ in 0..3 {
            assert_eq!(p.on_loss(0, 0), PathEvent::None);
        }
        assert_eq!(p.on_loss(0, 0), PathEvent::Failed);
        let picks: Vec<u8> = (0..8).map(|_| p.choose(10, None)).collect();
        assert!(!picks.contains(&0), "{picks:?}");
        // Its probe is one packet, not a burst.
        let picks: Vec<u8> = (0..12).map(|_| p.choose(1010, None)).collect();
        assert_eq!(picks.iter().filter(|&&x| x == 0).count(), 1, "{picks:?}");
        // reset keeps the burst length.
        p.reset();
        let picks: Vec<u8> = (0..5).map(|_| p.choose(0, None)).collect();
        assert_eq!(picks, [0, 0, 0, 0, 1]);
    }

    #[test]
    fn never_excludes_the_last_path_and_avoids() {
        let mut p = Paths::new(2, 1, 1000);
        assert_eq!(p.on_loss(0, 0), PathEvent::Failed);
        assert_eq!(p.on_loss(1, 0), PathEvent::None);
        assert_eq!(p.alive(), 1);
        assert_eq!(p.choose(1, None), 1);
        let mut r = Paths::new(3, 1, 10);
        r.on_loss(1, 0);
        for _ in 0..6 {
            assert_ne!(r.choose_live(), 1, "control packets never probe");
        }
        let mut q = Paths::new(3, 5, 1000);
        for _ in 0..6 {
            assert_ne!(q.choose(0, Some(1)), 1);
        }
    }
}
