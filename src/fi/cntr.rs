//! Counters (fi_cntr(3)).

use super::cq::Progress;
use super::errno::{Error, Result};
use crate::bindings as b;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, Weak};

/// A completion counter.
pub struct Cntr {
    value: AtomicU64,
    err: AtomicU64,
    pub wait_obj: u32,
    eps: Mutex<Vec<Weak<dyn Progress>>>,
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
        if events != b::FI_CNTR_EVENTS_COMP || flags != 0 {
            return Err(Error::Inval);
        }
        let wait_obj = super::cq::check_wait_obj(wait_obj)?;
        Ok(Cntr {
            value: AtomicU64::new(0),
            err: AtomicU64::new(0),
            wait_obj,
            eps: Mutex::new(Vec::new()),
        })
    }

    pub fn attach(&self, ep: Weak<dyn Progress>) {
        let mut eps = self.eps.lock().unwrap_or_else(|e| e.into_inner());
        eps.retain(|w| w.strong_count() > 0);
        eps.push(ep);
    }

    pub fn progress(&self) {
        let eps: Vec<_> = {
            let g = self.eps.lock().unwrap_or_else(|e| e.into_inner());
            g.iter().filter_map(Weak::upgrade).collect()
        };
        for ep in eps {
            ep.progress();
        }
    }

    pub fn read(&self) -> u64 {
        self.value.load(Ordering::Acquire)
    }

    pub fn read_err(&self) -> u64 {
        self.err.load(Ordering::Acquire)
    }

    pub fn inc(&self) {
        self.value.fetch_add(1, Ordering::AcqRel);
    }

    pub fn inc_err(&self) {
        self.err.fetch_add(1, Ordering::AcqRel);
    }

    pub fn add(&self, v: u64, err: bool) {
        let c = if err { &self.err } else { &self.value };
        c.fetch_add(v, Ordering::AcqRel);
    }

    pub fn set(&self, v: u64, err: bool) {
        let c = if err { &self.err } else { &self.value };
        c.store(v, Ordering::Release);
    }

    pub fn wait_fds(&self, out: &mut Vec<i32>) {
        let eps: Vec<_> = {
            let g = self.eps.lock().unwrap_or_else(|e| e.into_inner());
            g.iter().filter_map(Weak::upgrade).collect()
        };
        for ep in eps {
            ep.wait_fds(out);
        }
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
        assert!(Cntr::new(b::FI_CNTR_EVENTS_COMP, b::FI_WAIT_FD, 0).is_err());
    }
}
