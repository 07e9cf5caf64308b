//! Completion queues (fi_cq(3)).
//!
//! Entries are kept in provider form and written in the queue's format when
//! read. The queue never drops: producers check [`Cq::has_room`] and keep
//! completions in their own bounded state until the application reads,
//! which is what "overrun reported, not dropped" means for manual progress.

use super::errno::{Error, Result};
use crate::bindings as b;
use smallvec::SmallVec;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, Weak};

/// A successful completion.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Entry {
    pub context: usize,
    pub flags: u64,
    pub len: usize,
    pub buf: usize,
    pub data: u64,
    pub tag: u64,
    /// Source fi_addr (FI_ADDR_NOTAVAIL when unknown).
    pub src: u64,
}

/// An error completion.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ErrEntry {
    pub entry: Entry,
    pub olen: usize,
    /// Positive FI_E* value.
    pub err: i32,
    pub prov_errno: i32,
    pub err_data: SmallVec<[u8; 48]>,
}

/// Anything that makes progress for a queue (endpoints bound to it).
pub trait Progress: Send + Sync {
    fn progress(&self);
    /// File descriptors to wait on in blocking reads.
    fn wait_fds(&self, out: &mut Vec<i32>);
    /// Before sleeping on `wait_fds`: makes every arrival wake the
    /// sleeper; false when input already waits (progress instead).
    fn arm(&self) -> bool;
    /// After the sleep.
    fn disarm(&self);
    /// Time until the endpoint's next protocol timer.
    fn next_timer(&self) -> Option<std::time::Duration>;
}

#[derive(Debug, Default)]
struct Inner {
    ok: VecDeque<Entry>,
    err: VecDeque<ErrEntry>,
    /// Last error handed out by readerr, kept so `err_data` pointers given
    /// to the application stay valid until the next readerr.
    last_err: Option<ErrEntry>,
}

/// A completion queue.
pub struct Cq {
    pub format: u32,
    pub size: usize,
    pub wait_obj: u32,
    /// The wait object: signal, bound endpoints' descriptors, sets.
    pub wait: super::wait::WaitObj,
    /// The fid's context (what fi_poll reports for this queue).
    pub context: usize,
    inner: Mutex<Inner>,
    eps: super::wait::BoundEps,
    signaled: AtomicBool,
    /// What a polling reader does when reads find nothing (fi::idle).
    pub idle: super::idle::Idle,
    /// Entries waiting (ok + err), stored under the lock after every
    /// change: an empty read answers from it without taking the lock.
    pending: std::sync::atomic::AtomicUsize,
}

impl std::fmt::Debug for Cq {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cq")
            .field("format", &self.format)
            .field("size", &self.size)
            .finish()
    }
}

pub const DEFAULT_SIZE: usize = 4096;
pub const MAX_SIZE: usize = 1 << 20;

impl Cq {
    /// Opens a queue per fi_cq_attr.
    pub fn new(format: u32, size: usize, wait_obj: u32, flags: u64) -> Result<Cq> {
        Cq::with_wait(format, size, wait_obj, flags, false)
    }

    /// Opens a queue; `in_set`: attr->wait_set names a wait set (the
    /// caller joins it).
    pub fn with_wait(
        format: u32,
        size: usize,
        wait_obj: u32,
        flags: u64,
        in_set: bool,
    ) -> Result<Cq> {
        let format = match format {
            f if f == b::FI_CQ_FORMAT_UNSPEC => b::FI_CQ_FORMAT_CONTEXT,
            f if f == b::FI_CQ_FORMAT_CONTEXT
                || f == b::FI_CQ_FORMAT_MSG
                || f == b::FI_CQ_FORMAT_DATA
                || f == b::FI_CQ_FORMAT_TAGGED =>
            {
                f
            }
            _ => return Err(Error::Inval),
        };
        if flags & !(b::FI_AFFINITY) != 0 {
            // FI_AFFINITY is a hint; nothing else is defined for cq_open.
            return Err(Error::Inval);
        }
        let wait_obj = super::wait::check_wait_obj(wait_obj, in_set)?;
        let size = match size {
            0 => DEFAULT_SIZE,
            s if s > MAX_SIZE => return Err(Error::Inval),
            s => s,
        };
        Ok(Cq {
            format,
            size,
            wait_obj,
            wait: super::wait::WaitObj::new(wait_obj)?,
            context: 0,
            inner: Mutex::new(Inner {
                ok: VecDeque::with_capacity(size.min(4096)),
                ..Default::default()
            }),
            eps: Default::default(),
            signaled: AtomicBool::new(false),
            pending: std::sync::atomic::AtomicUsize::new(0),
            idle: super::idle::Idle::new(
                super::params::get()
                    .spin_us
                    .map(std::time::Duration::from_micros),
            ),
        })
    }

    /// Bytes of one entry in this queue's format.
    pub fn entry_size(&self) -> usize {
        match self.format {
            f if f == b::FI_CQ_FORMAT_MSG => std::mem::size_of::<b::fi_cq_msg_entry>(),
            f if f == b::FI_CQ_FORMAT_DATA => std::mem::size_of::<b::fi_cq_data_entry>(),
            f if f == b::FI_CQ_FORMAT_TAGGED => std::mem::size_of::<b::fi_cq_tagged_entry>(),
            _ => std::mem::size_of::<b::fi_cq_entry>(),
        }
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

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Room for at least `n` more entries (successful or error).
    pub fn has_room(&self, n: usize) -> bool {
        let g = self.lock();
        g.ok.len() + g.err.len() + n <= self.size
    }

    /// Adds a completion; `Err(Again)` when full (caller keeps it).
    pub fn push(&self, e: Entry) -> Result<()> {
        let mut g = self.lock();
        if g.ok.len() + g.err.len() >= self.size {
            return Err(Error::Again);
        }
        g.ok.push_back(e);
        self.pending
            .store(g.ok.len() + g.err.len(), Ordering::Release);
        drop(g);
        self.wait.notify();
        Ok(())
    }

    /// Adds an error completion; `Err(Again)` when full.
    pub fn push_err(&self, e: ErrEntry) -> Result<()> {
        let mut g = self.lock();
        if g.ok.len() + g.err.len() >= self.size {
            return Err(Error::Again);
        }
        g.err.push_back(e);
        self.pending
            .store(g.ok.len() + g.err.len(), Ordering::Release);
        drop(g);
        self.wait.notify();
        Ok(())
    }

    /// Drives every endpoint bound to this queue.
    pub fn progress(&self) {
        self.eps.progress();
    }

    /// Takes up to `max` entries. `Err(Avail)` when an error entry waits and
    /// no successful ones do; `Err(Again)` when empty.
    pub fn take(&self, max: usize, out: &mut impl FnMut(&Entry)) -> Result<usize> {
        // What a polling reader mostly finds: nothing, and no lock for it.
        if self.pending.load(Ordering::Acquire) == 0 {
            return Err(Error::Again);
        }
        let mut g = self.lock();
        if g.ok.is_empty() {
            return Err(if g.err.is_empty() {
                Error::Again
            } else {
                Error::Avail
            });
        }
        let mut n = 0;
        while n < max {
            let Some(e) = g.ok.pop_front() else { break };
            out(&e);
            n += 1;
        }
        self.pending
            .store(g.ok.len() + g.err.len(), Ordering::Release);
        if g.ok.is_empty() && g.err.is_empty() && self.wait.exported() {
            // The exported descriptor reads as ready only while entries wait.
            self.wait.signal.clear();
        }
        Ok(n)
    }

    /// Takes the first error entry (kept alive until the next call so its
    /// err_data can be pointed to).
    pub fn take_err(&self, out: &mut impl FnMut(&ErrEntry)) -> Result<()> {
        let mut g = self.lock();
        let e = g.err.pop_front().ok_or(Error::Again)?;
        self.pending
            .store(g.ok.len() + g.err.len(), Ordering::Release);
        out(&e);
        g.last_err = Some(e);
        Ok(())
    }

    /// Pointer to the err_data of the last error handed out.
    pub fn with_last_err<R>(&self, f: impl FnOnce(Option<&ErrEntry>) -> R) -> R {
        let g = self.lock();
        f(g.last_err.as_ref())
    }

    pub fn has_entries(&self) -> bool {
        let g = self.lock();
        !g.ok.is_empty() || !g.err.is_empty()
    }

    /// fi_cq_signal: a blocked reader returns -FI_EAGAIN.
    pub fn signal(&self) {
        self.signaled.store(true, Ordering::Release);
        self.wait.signal.raise();
    }

    /// Consumes a pending signal.
    pub fn take_signal(&self) -> bool {
        self.signaled.swap(false, Ordering::AcqRel)
    }

    /// Blocks until the queue may have something: an entry, input for a
    /// bound endpoint, a protocol timer, fi_cq_signal, or `deadline`
    /// (false then). Returns at once when entries are already there.
    pub fn wait(&self, deadline: Option<std::time::Instant>) -> bool {
        self.wait.watch();
        let res = if self.has_entries() || self.signaled.load(Ordering::Acquire) {
            true
        } else {
            super::wait::sleep_on(&self.endpoints(), &[self.wait.signal.fd()], deadline)
        };
        self.wait.unwatch();
        if !self.wait.exported() {
            // An exported descriptor stays ready while entries wait (take
            // clears it when the queue empties).
            self.wait.signal.clear();
        }
        res
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_fifo_with_error_queue() {
        let cq = Cq::new(b::FI_CQ_FORMAT_TAGGED, 2, b::FI_WAIT_NONE, 0).unwrap();
        assert_eq!(cq.take(8, &mut |_| {}), Err(Error::Again));
        cq.push(Entry {
            context: 1,
            ..Default::default()
        })
        .unwrap();
        cq.push_err(ErrEntry {
            err: b::FI_ETRUNC as i32,
            olen: 3,
            ..Default::default()
        })
        .unwrap();
        assert!(!cq.has_room(1));
        assert_eq!(
            cq.push(Entry::default()),
            Err(Error::Again),
            "full: producer keeps it"
        );
        let mut got = vec![];
        assert_eq!(cq.take(8, &mut |e| got.push(e.context)), Ok(1));
        assert_eq!(got, [1]);
        assert_eq!(cq.take(8, &mut |_| {}), Err(Error::Avail));
        let mut olen = 0;
        cq.take_err(&mut |e| olen = e.olen).unwrap();
        assert_eq!(olen, 3);
        assert_eq!(cq.take(8, &mut |_| {}), Err(Error::Again));
    }

    #[test]
    fn attributes_are_checked() {
        assert!(Cq::new(99, 0, b::FI_WAIT_NONE, 0).is_err());
        assert_eq!(
            Cq::new(b::FI_CQ_FORMAT_MSG, 0, b::FI_WAIT_POLLFD, 0).err(),
            Some(Error::NoSys)
        );
        assert_eq!(
            Cq::new(b::FI_CQ_FORMAT_MSG, 0, b::FI_WAIT_UNSPEC, 0)
                .unwrap()
                .wait_obj,
            b::FI_WAIT_FD
        );
        assert_eq!(
            Cq::new(b::FI_CQ_FORMAT_UNSPEC, 0, b::FI_WAIT_NONE, 0)
                .unwrap()
                .format,
            b::FI_CQ_FORMAT_CONTEXT
        );
        assert_eq!(
            Cq::new(b::FI_CQ_FORMAT_MSG, 0, b::FI_WAIT_NONE, 0)
                .unwrap()
                .size,
            DEFAULT_SIZE
        );
    }
}
