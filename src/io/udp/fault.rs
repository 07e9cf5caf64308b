//! Seeded fault injection: drops datagrams with a fixed probability.
//!
//! The generator is splitmix64, small and fully determined by the seed, so a
//! test (or an FI_SRD_DROP_SEED run) sees the same drop pattern every time
//! for the same sequence of datagrams.

/// Decides, datagram by datagram, whether to drop.
#[derive(Debug, Clone)]
pub struct DropInjector {
    state: u64,
    /// Drop when the next 53-bit draw is below this (rate × 2^53).
    threshold: u64,
}

const SCALE: f64 = (1u64 << 53) as f64;

impl DropInjector {
    /// `rate` is clamped to `0.0..=1.0`; NaN counts as 0.
    pub fn new(rate: f64, seed: u64) -> Self {
        let rate = if rate.is_nan() {
            0.0
        } else {
            rate.clamp(0.0, 1.0)
        };
        Self {
            state: seed,
            threshold: (rate * SCALE) as u64,
        }
    }

    /// True when this injector never drops (no PRNG draw is made then).
    pub fn is_off(&self) -> bool {
        self.threshold == 0
    }

    /// Draws once and reports whether the current datagram is dropped.
    pub fn should_drop(&mut self) -> bool {
        if self.threshold == 0 {
            return false;
        }
        (self.next_u64() >> 11) < self.threshold
    }

    fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        crate::srd::mix64(self.state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_zero_and_one() {
        let mut never = DropInjector::new(0.0, 1);
        let mut always = DropInjector::new(1.0, 1);
        assert!(never.is_off());
        assert!((0..1000).all(|_| !never.should_drop()));
        assert!((0..1000).all(|_| always.should_drop()));
    }

    #[test]
    fn rate_is_close_and_deterministic() {
        let count = |seed| {
            let mut d = DropInjector::new(0.3, seed);
            (0..100_000).filter(|_| d.should_drop()).count()
        };
        let a = count(42);
        assert_eq!(a, count(42));
        assert!((29_000..31_000).contains(&a), "{a}");
        assert_ne!(a, count(43));
    }

    #[test]
    fn nan_and_out_of_range_are_clamped() {
        assert!(DropInjector::new(f64::NAN, 0).is_off());
        assert!(DropInjector::new(-1.0, 0).is_off());
        let mut d = DropInjector::new(7.0, 0);
        assert!((0..100).all(|_| d.should_drop()));
    }
}
