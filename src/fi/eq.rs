//! Event queues (fi_eq(3)). Connectionless endpoints produce no CM events;
//! the queue carries what the application writes with fi_eq_write, and
//! endpoints and AVs may be bound to it.

use super::errno::{Error, Result};
use crate::bindings as b;
use std::collections::VecDeque;
use std::sync::Mutex;

/// One event: its type and payload bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    pub event: u32,
    pub data: Vec<u8>,
}

#[derive(Debug)]
pub struct Eq {
    pub size: usize,
    q: Mutex<VecDeque<Event>>,
    /// The wait object (no endpoints: only writes make events).
    pub wait: super::wait::WaitObj,
}

/// Largest event payload accepted by fi_eq_write.
pub const MAX_EVENT: usize = 4096;

impl Eq {
    pub fn new(size: usize, wait_obj: u32, flags: u64) -> Result<Eq> {
        Eq::with_wait(size, wait_obj, flags, false)
    }

    /// `in_set`: attr->wait_set names a wait set (the caller joins it).
    pub fn with_wait(size: usize, wait_obj: u32, flags: u64, in_set: bool) -> Result<Eq> {
        if flags & !b::FI_WRITE != 0 {
            return Err(Error::Inval);
        }
        let kind = super::wait::check_wait_obj(wait_obj, in_set)?;
        Ok(Eq {
            size: if size == 0 { 256 } else { size.min(1 << 16) },
            q: Mutex::new(VecDeque::new()),
            wait: super::wait::WaitObj::new(kind)?,
        })
    }

    pub fn has_events(&self) -> bool {
        !self.q.lock().unwrap_or_else(|e| e.into_inner()).is_empty()
    }

    /// Blocks until an event is queued or `deadline` (false then).
    pub fn wait_for(&self, deadline: Option<std::time::Instant>) -> bool {
        self.wait.watch();
        let res =
            self.has_events() || super::wait::poll_fds(&[self.wait.signal.fd()], None, deadline);
        self.wait.unwatch();
        if !self.wait.exported() {
            self.wait.signal.clear();
        }
        res
    }

    pub fn write(&self, ev: Event) -> Result<()> {
        if ev.data.len() > MAX_EVENT {
            return Err(Error::Inval);
        }
        let mut q = self.q.lock().unwrap_or_else(|e| e.into_inner());
        if q.len() >= self.size {
            return Err(Error::Again);
        }
        q.push_back(ev);
        drop(q);
        self.wait.notify();
        Ok(())
    }

    /// Pops (or with `peek`, copies) the first event.
    pub fn read(&self, peek: bool) -> Option<Event> {
        let mut q = self.q.lock().unwrap_or_else(|e| e.into_inner());
        if peek {
            q.front().cloned()
        } else {
            let ev = q.pop_front();
            if q.is_empty() && self.wait.exported() {
                self.wait.signal.clear();
            }
            ev
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_fifo() {
        let eq = Eq::new(1, b::FI_WAIT_UNSPEC, 0).unwrap();
        eq.write(Event {
            event: 1,
            data: vec![7],
        })
        .unwrap();
        assert_eq!(
            eq.write(Event {
                event: 2,
                data: vec![]
            }),
            Err(Error::Again)
        );
        assert_eq!(eq.read(true).map(|e| e.event), Some(1));
        assert_eq!(eq.read(false).map(|e| e.data), Some(vec![7]));
        assert_eq!(eq.read(false), None);
    }
}
