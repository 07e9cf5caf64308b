//! What a polling reader does when its reads keep finding nothing.
//!
//! Progress is manual: an MPI rank waiting for a message spins in
//! fi_cq_read. With a core of its own, spinning is the fastest way to see
//! the reply; with more ranks than cores, the rank it waits for may be
//! sitting on that very core, and every microsecond spent spinning is one
//! it cannot run. Open MPI's own yield (`mpi_yield_when_idle`, on when it
//! knows it oversubscribes) does not cover every wait: mtl ofi spins on
//! its progress function, not on opal_progress, in blocking sends and in
//! its -FI_EAGAIN retry loops.
//!
//! The policy, per completion queue, with no clock read on most empty reads:
//! - an idle reader spins for `spin` and then gives its core away
//!   (`sched_yield`) on every empty read;
//! - `spin` is FI_SRD_SPIN_US, or by default ("auto") [`SPIN_OWN_CORE`]
//!   while this host's processes in our address vectors fit its online
//!   CPUs, and 0 once they outnumber them ([`note_local_processes`]);
//! - with a spin of 0, an empty read yields only when the caller came
//!   straight back from the previous empty one ([`CALLER_YIELDED`]): a
//!   caller that yields itself between reads (opal_progress when
//!   oversubscribed) already let the others run, and a second yield per
//!   poll only slows the round of ranks sharing the core; and the empty
//!   read right after one that found entries never yields.
//!
//! Contention from outside the job (other users' processes) does not turn
//! the spin off: yielding to them would only cost our ranks their latency.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Spin of an idle reader whose job fits the host's cores (the default).
pub const SPIN_OWN_CORE: Duration = Duration::from_micros(200);
/// With a spin of 0: a caller away from us this long since the previous
/// empty read did something else meanwhile (yielded, computed).
pub const CALLER_YIELDED: Duration = Duration::from_micros(1);
/// Empty reads between clock reads while spinning (a clock read costs
/// more than the rest of an empty read).
const CLOCK_EVERY: u64 = 16;

/// Most processes of this host seen in one of our address vectors.
static LOCAL_PROCESSES: AtomicUsize = AtomicUsize::new(1);

/// An address vector holds `n` distinct processes of this host (ours
/// included): the job's share of the host, as far as we can see it.
pub fn note_local_processes(n: usize) {
    LOCAL_PROCESSES.fetch_max(n, Ordering::Relaxed);
}

/// Online CPUs of the host (not our affinity mask: a rank bound to one
/// core has the others' ranks on theirs).
pub fn online_cpus() -> usize {
    static N: OnceLock<usize> = OnceLock::new();
    *N.get_or_init(|| {
        std::fs::read_to_string("/sys/devices/system/cpu/online")
            .ok()
            .and_then(|s| parse_cpu_list(s.trim()))
            .or_else(|| std::thread::available_parallelism().ok().map(|n| n.get()))
            .unwrap_or(1)
    })
}

/// Counts the CPUs of a list such as "0-3,8,10-11".
fn parse_cpu_list(s: &str) -> Option<usize> {
    let mut n = 0;
    for part in s.split(',') {
        n += match part.split_once('-') {
            Some((a, b)) => b.parse::<usize>().ok()?.checked_sub(a.parse().ok()?)? + 1,
            None => part.parse::<usize>().map(|_| 1).ok()?,
        };
    }
    (n > 0).then_some(n)
}

/// Whether this host's processes of the job outnumber its CPUs.
pub fn oversubscribed() -> bool {
    LOCAL_PROCESSES.load(Ordering::Relaxed) > online_cpus()
}

/// Idle state of one queue's readers (atomics: readers may be concurrent,
/// and a lagging value only shifts a yield by a few reads).
#[derive(Debug)]
pub struct Idle {
    /// When reads started finding nothing (ns since `clock`, 0 = not idle).
    since: AtomicU64,
    /// Empty reads so far, and the idle time last measured.
    empty_reads: AtomicU64,
    last: AtomicU64,
    /// When the last empty read ended (spin 0 only).
    last_exit: AtomicU64,
    /// FI_SRD_SPIN_US, or None for "auto".
    spin: Option<u64>,
    clock: Instant,
}

impl Idle {
    /// `spin`: how long an idle reader spins before yielding (0: yield at
    /// once); None: by the job's share of the host (module docs).
    pub fn new(spin: Option<Duration>) -> Idle {
        Idle {
            since: AtomicU64::new(0),
            empty_reads: AtomicU64::new(0),
            last: AtomicU64::new(0),
            last_exit: AtomicU64::new(0),
            spin: spin.map(|d| d.as_nanos().min(u64::MAX as u128) as u64),
            clock: Instant::now(),
        }
    }

    fn now(&self) -> u64 {
        (self.clock.elapsed().as_nanos() as u64).max(1)
    }

    /// The spin in force (ns).
    pub fn spin_ns(&self) -> u64 {
        self.spin.unwrap_or_else(|| {
            if oversubscribed() {
                0
            } else {
                SPIN_OWN_CORE.as_nanos() as u64
            }
        })
    }

    /// A read found something: the idle period ends. The empty read that
    /// follows at once (mtl ofi reads until -FI_EAGAIN) does not yield: the
    /// caller has entries to handle first.
    pub fn busy(&self) {
        if self.since.load(Ordering::Relaxed) != 0 {
            self.since.store(0, Ordering::Relaxed);
        }
        if self.last_exit.load(Ordering::Relaxed) != 0 {
            self.last_exit.store(0, Ordering::Relaxed);
        }
    }

    /// A read found nothing: whether the reader should give its core away
    /// now. While spinning the clock is read on the first empty read of an
    /// idle period and then every [`CLOCK_EVERY`]th; in between the last
    /// measure stands.
    pub fn should_yield(&self) -> bool {
        let spin = self.spin_ns();
        let since = self.since.load(Ordering::Relaxed);
        if spin == 0 {
            let now = self.now();
            if since == 0 {
                self.since.store(now, Ordering::Relaxed);
            }
            let gap = now.saturating_sub(self.last_exit.load(Ordering::Relaxed));
            self.last_exit.store(now, Ordering::Relaxed);
            return gap < CALLER_YIELDED.as_nanos() as u64;
        }
        let n = self.empty_reads.load(Ordering::Relaxed).wrapping_add(1);
        self.empty_reads.store(n, Ordering::Relaxed);
        if since != 0 && !n.is_multiple_of(CLOCK_EVERY) {
            return self.last.load(Ordering::Relaxed) >= spin;
        }
        let now = self.now();
        if since == 0 {
            self.since.store(now, Ordering::Relaxed);
            self.last.store(0, Ordering::Relaxed);
            return false;
        }
        let idle = now.saturating_sub(since);
        self.last.store(idle, Ordering::Relaxed);
        idle >= spin
    }

    /// Gives the core away once.
    pub fn yield_now(&self) {
        std::thread::yield_now();
        if self.last_exit.load(Ordering::Relaxed) != 0 {
            self.last_exit.store(self.now(), Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spins_then_yields() {
        let i = Idle::new(Some(Duration::from_millis(50)));
        assert!(!i.should_yield(), "first empty read spins");
        for _ in 0..100 {
            assert!(!i.should_yield());
        }
        std::thread::sleep(Duration::from_millis(60));
        // Within CLOCK_EVERY reads the clock is read again.
        assert!((0..CLOCK_EVERY).any(|_| i.should_yield()));
        assert!(i.should_yield(), "stays yielding while idle");
        i.busy();
        assert!(!i.should_yield(), "a new idle period spins again");
    }

    #[test]
    fn zero_spin_yields_for_tight_callers_only() {
        let i = Idle::new(Some(Duration::ZERO));
        i.should_yield();
        assert!(i.should_yield(), "caller came straight back: yield");
        i.yield_now();
        assert!(i.should_yield());
        i.busy();
        assert!(
            !i.should_yield(),
            "the read right after a success does not yield"
        );
        assert!(i.should_yield(), "the next one does");
        std::thread::sleep(CALLER_YIELDED * 4);
        assert!(!i.should_yield(), "caller was away: no second yield");
    }

    #[test]
    fn cpu_lists() {
        assert_eq!(parse_cpu_list("0-1"), Some(2));
        assert_eq!(parse_cpu_list("0"), Some(1));
        assert_eq!(parse_cpu_list("0-3,8,10-11"), Some(7));
        assert_eq!(parse_cpu_list("junk"), None);
        assert!(online_cpus() >= 1);
    }
}
