//! How many peers send to a device: the count behind its fan-in grants
//! (docs/srd-spec.md §11.1).

/// How many peers send to this device: peers heard from (new data) in the
/// current period of `fan_in_period` and in the one before; the larger
/// count is the fan-in. A peer counts from its second packet of a period:
/// peers that only exchange a small message now and then (a barrier, a
/// reduction's control traffic) do not cut a bulk sender's share to a
/// sliver. O(1) per packet.
#[derive(Debug, Default)]
pub(crate) struct FanIn {
    period: u64,
    cur: u32,
    prev: u32,
}

impl FanIn {
    /// Peer `seen` (its last period heard from; `pkts` its packets in it)
    /// sends now. It counts from its second packet of the period.
    pub(crate) fn note(&mut self, seen: &mut u64, pkts: &mut u32, now: u64, len: u64) {
        let e = now / len.max(1);
        if e != self.period {
            self.prev = if e == self.period + 1 { self.cur } else { 0 };
            self.cur = 0;
            self.period = e;
        }
        if *seen != e {
            *seen = e;
            *pkts = 0;
        }
        *pkts = pkts.saturating_add(1);
        if *pkts == 2 {
            self.cur += 1;
        }
    }

    pub(crate) fn count(&self, now: u64, len: u64) -> u32 {
        let e = now / len.max(1);
        if e == self.period {
            self.cur.max(self.prev)
        } else if e == self.period + 1 {
            self.cur
        } else {
            0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::FanIn;

    #[test]
    fn fan_in_counts_the_senders_of_this_period_and_the_last() {
        let (mut f, len) = (FanIn::default(), 1_000);
        let (mut seen, mut pkts) = ([u64::MAX; 3], [0u32; 3]);
        // Sender k sends `n` packets at `t`.
        let mut send = |f: &mut FanIn, k: usize, t: u64, n: u32| {
            for _ in 0..n {
                f.note(&mut seen[k], &mut pkts[k], t, len);
            }
        };
        assert_eq!(f.count(0, len), 0);
        send(&mut f, 0, 10, 5);
        send(&mut f, 1, 30, 1);
        assert_eq!(f.count(40, len), 1, "one packet in a period does not count");
        send(&mut f, 1, 35, 1);
        assert_eq!(f.count(40, len), 2, "one count per sender and period");
        // Next period: the last one's count holds until this one's passes it.
        send(&mut f, 2, 1_500, 2);
        assert_eq!(f.count(1_500, len), 2);
        send(&mut f, 0, 1_600, 2);
        send(&mut f, 1, 1_700, 2);
        assert_eq!(f.count(1_800, len), 3);
        // A period with nobody heard: the one before still counts while
        // that period lasts, then nobody does.
        assert_eq!(f.count(2_500, len), 3);
        assert_eq!(f.count(3_000, len), 0);
        send(&mut f, 2, 5_000, 2);
        assert_eq!(f.count(5_000, len), 1, "a gap of periods forgets them all");
    }
}
