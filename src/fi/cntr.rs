//! Counters (fi_cntr(3)).

use super::cq::Progress;
use super::errno::{Error, Result};
use crate::bindings as b;
use std::sync::Weak;
use std::sync::atomic::{AtomicU64, Ordering};

/// A completion counter.
pub struct Cntr {
    value: AtomicU64,
    err: AtomicU64,
    pub wait_obj: u32,
    /// The wait object: signal, bound endpoints' descriptors, sets.
    pub wait: super::wait::WaitObj,
    /// The fid's context (what fi_poll reports for this counter).
    pub context: usize,
    eps: super::wait::BoundEps,
}

impl std::fmt::Debug for Cntr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cntr")
            .field("value", &self.value)
            .field("err", &self.err)
            .finish()
    }
}

impl Cntr {
    pub fn new(events: u32, wait_obj: u32, flags: u64) -> Result<Cntr> {
        Cntr::with_wait(events, wait_obj, flags, false)
    }

    /// `in_set`: attr->wait_set names a wait set (the caller joins it).
    pub fn with_wait(events: u32, wait_obj: u32, flags: u64, in_set: bool) -> Result<Cntr> {
        if events != b::FI_CNTR_EVENTS_COMP || flags != 0 {
            return Err(Error::Inval);
        }
        let wait_obj = super::wait::check_wait_obj(wait_obj, in_set)?;
        Ok(Cntr {
            value: AtomicU64::new(0),
            err: AtomicU64::new(0),
            wait_obj,
            wait: super::wait::WaitObj::new(wait_obj)?,
            context: 0,
            eps: Default::default(),
        })
    }

    /// An endpoint was bound; `fds` are its wait descriptors.
    pub fn attach(&self, ep: Weak<dyn Progress>, fds: &[i32]) {
        self.eps.add(ep);
        self.wait.add_fds(fds);
    }

    /// The bound endpoints that are still open.
    pub fn endpoints(&self) -> super::wait::Eps {
        self.eps.alive()
    }

    /// Blocks until the counter may have moved: an update, input for a
    /// bound endpoint, a timer, or `deadline` (false then).
    pub fn wait_for(&self, seen: (u64, u64), deadline: Option<std::time::Instant>) -> bool {
        self.wait.watch();
        let res = if (self.read(), self.read_err()) != seen {
            true
        } else {
            super::wait::sleep_on(&self.endpoints(), &[self.wait.signal.fd()], deadline)
        };
        self.wait.unwatch();
        if !self.wait.exported() {
            self.wait.signal.clear();
        }
        res
    }

    pub fn progress(&self) {
        self.eps.progress();
    }

    pub fn read(&self) -> u64 {
        self.value.load(Ordering::Acquire)
    }

    pub fn read_err(&self) -> u64 {
        self.err.load(Ordering::Acquire)
    }

    pub fn inc(&self) {
        self.value.fetch_add(1, Ordering::AcqRel);
        self.wait.notify();
    }

    pub fn inc_err(&self) {
        self.err.fetch_add(1, Ordering::AcqRel);
        self.wait.notify();
    }

    pub fn add(&self, v: u64, err: bool) {
        let c = if err { &self.err } else { &self.value };
        c.fetch_add(v, Ordering::AcqRel);
        self.wait.notify();
    }

    pub fn set(&self, v: u64, err: bool) {
        let c = if err { &self.err } else { &self.value };
        c.store(v, Ordering::Release);
        self.wait.notify();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_set_and_errors() {
        let c = Cntr::new(b::FI_CNTR_EVENTS_COMP, b::FI_WAIT_UNSPEC, 0).unwrap();
        c.inc();
        c.add(4, false);
        c.inc_err();
        assert_eq!((c.read(), c.read_err()), (5, 1));
        c.set(2, false);
        c.set(0, true);
        assert_eq!((c.read(), c.read_err()), (2, 0));
        assert!(Cntr::new(b::FI_CNTR_EVENTS_COMP, b::FI_WAIT_POLLFD, 0).is_err());
        assert!(Cntr::new(b::FI_CNTR_EVENTS_COMP, b::FI_WAIT_FD, 0).is_ok());
    }
}
