//! Wait objects, wait sets and poll sets (fi_cq(3), fi_cntr(3), fi_eq(3),
//! fi_poll(3)).
//!
//! Every CQ, counter and EQ owns a [`WaitObj`]: an eventfd (the *signal*)
//! raised when an entry arrives while someone may be waiting, and the
//! descriptors of the endpoints bound to it (UDP sockets and the
//! shared-memory doorbell). Progress is manual, so a blocked reader does
//! not wait for completions but for *input*: it arms the endpoints (same-host
//! senders ring the doorbell from then on), polls the signal and the
//! endpoints' descriptors until one is readable, the next protocol timer
//! or the deadline, and then drives progress. No sleep-and-retry loop:
//! every wake-up has a cause.
//!
//! FI_GETWAIT hands out an epoll descriptor holding the same set, readable
//! when the object has entries or its endpoints have input; fi_trywait
//! (which the application calls before blocking on it) progresses and arms.
//! A wait set is an epoll descriptor over its members' sets.

use super::cq::Progress;
use super::errno::{Error, Result};
use crate::bindings as b;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

/// An eventfd: raised by events, cleared by readers.
#[derive(Debug)]
pub struct Signal {
    fd: OwnedFd,
}

impl Signal {
    pub fn new() -> Result<Signal> {
        // SAFETY: plain syscall; the result is checked.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error().into());
        }
        // SAFETY: a fresh descriptor nobody else owns.
        Ok(Signal {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    pub fn raise(&self) {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a valid u64 (EAGAIN only at the
        // counter's limit, when it is raised anyway).
        unsafe { libc::write(self.fd.as_raw_fd(), (&one as *const u64).cast(), 8) };
    }

    pub fn clear(&self) {
        let mut v: u64 = 0;
        // SAFETY: reads 8 bytes into a valid u64; EAGAIN when not raised.
        unsafe { libc::read(self.fd.as_raw_fd(), (&mut v as *mut u64).cast(), 8) };
    }

    pub fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

/// An epoll set of descriptors (readable when any member is).
#[derive(Debug)]
pub struct EpollSet {
    fd: OwnedFd,
}

impl EpollSet {
    pub fn new() -> Result<EpollSet> {
        // SAFETY: plain syscall; the result is checked.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error().into());
        }
        // SAFETY: a fresh descriptor nobody else owns.
        Ok(EpollSet {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    /// Adds `fd` (level-triggered, readable); already present is fine.
    pub fn add(&self, fd: RawFd) {
        let mut ev = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: fd as u64,
        };
        // SAFETY: ev is valid for the call; a bad or duplicate fd fails
        // harmlessly (EEXIST, EBADF).
        unsafe { libc::epoll_ctl(self.fd.as_raw_fd(), libc::EPOLL_CTL_ADD, fd, &mut ev) };
    }

    pub fn remove(&self, fd: RawFd) {
        // SAFETY: as above; a descriptor not in the set gives ENOENT.
        unsafe {
            libc::epoll_ctl(
                self.fd.as_raw_fd(),
                libc::EPOLL_CTL_DEL,
                fd,
                std::ptr::null_mut(),
            )
        };
    }

    pub fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

/// Milliseconds for poll(2) from an optional duration (-1: forever),
/// rounded up so a wait never ends before its timer.
fn poll_ms(d: Option<Duration>) -> i32 {
    match d {
        None => -1,
        Some(d) => {
            let ms = d.as_nanos().div_ceil(1_000_000);
            i32::try_from(ms).unwrap_or(i32::MAX)
        }
    }
}

/// Sleeps until one of `fds` is readable, `timer` passes or `deadline`.
/// Returns false when the deadline passed.
pub fn poll_fds(fds: &[RawFd], timer: Option<Duration>, deadline: Option<Instant>) -> bool {
    let now = Instant::now();
    let left = deadline.map(|d| d.saturating_duration_since(now));
    if left == Some(Duration::ZERO) {
        return false;
    }
    let wait = match (left, timer) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    let mut p: smallvec::SmallVec<[libc::pollfd; 8]> = fds
        .iter()
        .map(|&fd| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    // SAFETY: p is a valid array of p.len() pollfds.
    unsafe { libc::poll(p.as_mut_ptr(), p.len() as libc::nfds_t, poll_ms(wait)) };
    deadline.is_none_or(|d| Instant::now() < d)
}

/// The endpoints that make progress for one object, upgraded.
pub type Eps = smallvec::SmallVec<[Arc<dyn Progress>; 4]>;

/// The endpoints bound to a CQ or counter, held weakly: a closed endpoint
/// drops out by itself.
#[derive(Default)]
pub struct BoundEps(std::sync::Mutex<Vec<std::sync::Weak<dyn Progress>>>);

impl BoundEps {
    /// Binds `ep` (once), forgetting endpoints closed meanwhile.
    pub fn add(&self, ep: std::sync::Weak<dyn Progress>) {
        let mut eps = self.0.lock().unwrap_or_else(|e| e.into_inner());
        eps.retain(|w| w.strong_count() > 0);
        if !eps.iter().any(|w| std::sync::Weak::ptr_eq(w, &ep)) {
            eps.push(ep);
        }
    }

    /// The bound endpoints that are still open.
    pub fn alive(&self) -> Eps {
        let g = self.0.lock().unwrap_or_else(|e| e.into_inner());
        g.iter().filter_map(std::sync::Weak::upgrade).collect()
    }

    /// Drives every bound endpoint once (a single one, the usual case,
    /// without collecting the list).
    pub fn progress(&self) {
        let one = {
            let g = self.0.lock().unwrap_or_else(|e| e.into_inner());
            match g.as_slice() {
                [w] => Some(w.upgrade()),
                _ => None,
            }
        };
        match one {
            Some(Some(ep)) => ep.progress(),
            Some(None) => {}
            None => {
                for ep in self.alive() {
                    ep.progress();
                }
            }
        }
    }
}

/// Arms every endpoint of `eps`, then sleeps on their descriptors and
/// `extra` until input, a timer or `deadline`; disarms. Returns false when
/// the deadline passed. When an endpoint already has input, returns at
/// once (the caller progresses and looks again).
pub fn sleep_on(eps: &Eps, extra: &[RawFd], deadline: Option<Instant>) -> bool {
    let mut armed = 0;
    let mut ready = false;
    for e in eps {
        armed += 1;
        if !e.arm() {
            ready = true;
            break;
        }
    }
    let ok = if ready {
        deadline.is_none_or(|d| Instant::now() < d)
    } else {
        let mut fds: smallvec::SmallVec<[RawFd; 8]> = extra.iter().copied().collect();
        let mut timer: Option<Duration> = None;
        let mut v = Vec::new();
        for e in eps {
            v.clear();
            e.wait_fds(&mut v);
            fds.extend(v.iter().copied());
            if let Some(t) = e.next_timer() {
                timer = Some(timer.map_or(t, |x| x.min(t)));
            }
        }
        poll_fds(&fds, timer, deadline)
    };
    for e in eps.iter().take(armed) {
        e.disarm();
    }
    ok
}

/// Accepted wait objects of CQs and counters (EQs: the same without
/// endpoints). FI_WAIT_UNSPEC is an fd; FI_WAIT_YIELD and
/// FI_WAIT_MUTEX_COND block the same way (they name how a provider waits,
/// and ours waits on descriptors whatever is asked); FI_WAIT_POLLFD is not
/// offered.
pub fn check_wait_obj(w: u32, set: bool) -> Result<u32> {
    match w {
        w if w == b::FI_WAIT_UNSPEC => Ok(b::FI_WAIT_FD),
        w if w == b::FI_WAIT_NONE
            || w == b::FI_WAIT_FD
            || w == b::FI_WAIT_YIELD
            || w == b::FI_WAIT_MUTEX_COND =>
        {
            Ok(w)
        }
        w if w == b::FI_WAIT_SET => {
            if set {
                Ok(w)
            } else {
                Err(Error::Inval)
            }
        }
        w if w == b::FI_WAIT_POLLFD => Err(Error::NoSys),
        _ => Err(Error::Inval),
    }
}

/// The wait object of one CQ, counter or EQ.
#[derive(Debug)]
pub struct WaitObj {
    /// FI_WAIT_* in force (UNSPEC resolved to FD).
    pub kind: u32,
    pub signal: Signal,
    /// Readers blocked in this object (events raise the signal for them).
    watchers: AtomicUsize,
    /// The object's readiness is watched from outside (FI_GETWAIT handed
    /// out, or a wait set holds it): every event raises the signal.
    exported: AtomicBool,
    inner: Mutex<Sets>,
}

#[derive(Debug, Default)]
struct Sets {
    /// Descriptors of the bound endpoints.
    fds: Vec<RawFd>,
    /// Created by FI_GETWAIT.
    epoll: Option<Arc<EpollSet>>,
    /// Wait sets this object belongs to.
    sets: Vec<Weak<WaitSet>>,
}

impl WaitObj {
    pub fn new(kind: u32) -> Result<WaitObj> {
        Ok(WaitObj {
            kind,
            signal: Signal::new()?,
            watchers: AtomicUsize::new(0),
            exported: AtomicBool::new(false),
            inner: Mutex::new(Sets::default()),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Sets> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// An event (entry pushed, counter moved): wakes whoever watches.
    pub fn notify(&self) {
        if self.exported.load(Ordering::Acquire) || self.watchers.load(Ordering::Acquire) > 0 {
            self.signal.raise();
        }
    }

    /// Whether readiness is watched from outside (FI_GETWAIT, wait set).
    pub fn exported(&self) -> bool {
        self.exported.load(Ordering::Acquire)
    }

    /// A reader is about to sleep / woke up.
    pub fn watch(&self) {
        self.watchers.fetch_add(1, Ordering::AcqRel);
    }

    pub fn unwatch(&self) {
        self.watchers.fetch_sub(1, Ordering::AcqRel);
    }

    /// An endpoint was bound: its descriptors join every set watching us.
    pub fn add_fds(&self, fds: &[RawFd]) {
        let mut g = self.lock();
        for &fd in fds {
            if !g.fds.contains(&fd) {
                g.fds.push(fd);
            }
            if let Some(e) = &g.epoll {
                e.add(fd);
            }
            for s in g.sets.iter().filter_map(Weak::upgrade) {
                s.epoll.add(fd);
            }
        }
    }

    /// An endpoint went away: its descriptors leave the sets.
    pub fn remove_fds(&self, fds: &[RawFd]) {
        let mut g = self.lock();
        g.fds.retain(|f| !fds.contains(f));
        for &fd in fds {
            if let Some(e) = &g.epoll {
                e.remove(fd);
            }
            for s in g.sets.iter().filter_map(Weak::upgrade) {
                s.epoll.remove(fd);
            }
        }
    }

    /// FI_GETWAIT: the epoll descriptor (FI_WAIT_FD objects only).
    pub fn get_fd(&self) -> Result<RawFd> {
        if self.kind != b::FI_WAIT_FD {
            return Err(Error::NoSys);
        }
        let mut g = self.lock();
        if g.epoll.is_none() {
            let e = EpollSet::new()?;
            e.add(self.signal.fd());
            for &fd in &g.fds {
                e.add(fd);
            }
            g.epoll = Some(Arc::new(e));
        }
        self.exported.store(true, Ordering::Release);
        Ok(g.epoll.as_ref().map_or(-1, |e| e.fd()))
    }

    /// Joins wait set `ws` (FI_WAIT_SET objects).
    pub fn join(&self, ws: &Arc<WaitSet>) {
        let mut g = self.lock();
        ws.epoll.add(self.signal.fd());
        for &fd in &g.fds {
            ws.epoll.add(fd);
        }
        g.sets.push(Arc::downgrade(ws));
        self.exported.store(true, Ordering::Release);
    }
}

/// A member of a wait set or poll set.
#[derive(Clone)]
pub enum Member {
    Cq(Weak<super::cq::Cq>),
    Cntr(Weak<super::cntr::Cntr>),
    Eq(Weak<super::eq::Eq>),
}

impl Member {
    /// Drives the member's endpoints; whether it has something to report
    /// (`last`: a counter's value when last reported).
    fn poll(&self, last: &mut u64) -> Option<bool> {
        match self {
            Member::Cq(c) => {
                let c = c.upgrade()?;
                c.progress();
                Some(c.has_entries())
            }
            Member::Cntr(c) => {
                let c = c.upgrade()?;
                c.progress();
                let v = c.read().wrapping_add(c.read_err().rotate_left(32));
                let moved = v != *last;
                *last = v;
                Some(moved)
            }
            Member::Eq(e) => Some(e.upgrade()?.has_events()),
        }
    }

    fn eps(&self, out: &mut Eps) {
        match self {
            Member::Cq(c) => {
                if let Some(c) = c.upgrade() {
                    out.extend(c.endpoints());
                }
            }
            Member::Cntr(c) => {
                if let Some(c) = c.upgrade() {
                    out.extend(c.endpoints());
                }
            }
            Member::Eq(_) => {}
        }
    }
}

/// fi_wait_open: a set of wait objects waited on together.
pub struct WaitSet {
    pub epoll: EpollSet,
    members: Mutex<Vec<(Member, u64)>>,
}

impl std::fmt::Debug for WaitSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WaitSet")
            .field("fd", &self.epoll.fd())
            .finish()
    }
}

impl WaitSet {
    pub fn new(wait_obj: u32, flags: u64) -> Result<WaitSet> {
        if flags != 0 {
            return Err(Error::Inval);
        }
        if wait_obj != b::FI_WAIT_UNSPEC && wait_obj != b::FI_WAIT_FD {
            return Err(
                if wait_obj == b::FI_WAIT_POLLFD || wait_obj == b::FI_WAIT_MUTEX_COND {
                    Error::NoSys
                } else {
                    Error::Inval
                },
            );
        }
        Ok(WaitSet {
            epoll: EpollSet::new()?,
            members: Mutex::new(Vec::new()),
        })
    }

    pub fn add(&self, m: Member) {
        let mut g = self.members.lock().unwrap_or_else(|e| e.into_inner());
        g.push((m, 0));
    }

    /// fi_trywait on the set: on each member.
    pub fn trywait(&self) -> Result<()> {
        let members: Vec<Member> = {
            let g = self.members.lock().unwrap_or_else(|e| e.into_inner());
            g.iter().map(|(m, _)| m.clone()).collect()
        };
        members.iter().try_for_each(trywait)
    }

    /// fi_wait: until a member has something, or `timeout` ms (-1: for
    /// ever); -FI_ETIMEDOUT then.
    pub fn wait(&self, timeout: i32) -> Result<()> {
        let deadline =
            (timeout >= 0).then(|| Instant::now() + Duration::from_millis(timeout as u64));
        loop {
            let mut eps = Eps::new();
            {
                let mut g = self.members.lock().unwrap_or_else(|e| e.into_inner());
                g.retain(|(m, _)| match m {
                    Member::Cq(w) => w.strong_count() > 0,
                    Member::Cntr(w) => w.strong_count() > 0,
                    Member::Eq(w) => w.strong_count() > 0,
                });
                let mut any = false;
                for (m, last) in g.iter_mut() {
                    any |= m.poll(last).unwrap_or(false);
                    m.eps(&mut eps);
                }
                if any {
                    return Ok(());
                }
            }
            if !sleep_on(&eps, &[self.epoll.fd()], deadline) {
                return Err(Error::TimedOut);
            }
        }
    }
}

/// fi_poll_open: CQs and counters checked together without blocking.
#[derive(Default)]
pub struct PollSet {
    members: Mutex<Vec<(Member, u64, usize)>>,
}

impl std::fmt::Debug for PollSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PollSet").finish_non_exhaustive()
    }
}

impl PollSet {
    pub fn new(flags: u64) -> Result<PollSet> {
        if flags != 0 {
            return Err(Error::Inval);
        }
        Ok(PollSet::default())
    }

    /// fi_poll_add: `context` is what fi_poll reports for the member (its
    /// fid's context).
    pub fn add(&self, m: Member, context: usize, start: u64) {
        let mut g = self.members.lock().unwrap_or_else(|e| e.into_inner());
        g.push((m, start, context));
    }

    /// fi_poll_del by the member's identity.
    pub fn remove(&self, is: impl Fn(&Member) -> bool) -> Result<()> {
        let mut g = self.members.lock().unwrap_or_else(|e| e.into_inner());
        let n = g.len();
        g.retain(|(m, _, _)| !is(m));
        if g.len() == n {
            Err(Error::NoEnt)
        } else {
            Ok(())
        }
    }

    /// fi_poll: progresses every member and reports the contexts of those
    /// with completions (CQ entries, counter changes), at most `max`.
    pub fn poll(&self, max: usize, out: &mut impl FnMut(usize)) -> usize {
        let mut g = self.members.lock().unwrap_or_else(|e| e.into_inner());
        let mut n = 0;
        for (m, last, ctx) in g.iter_mut() {
            if n >= max {
                break;
            }
            if m.poll(last) == Some(true) {
                out(*ctx);
                n += 1;
            }
        }
        n
    }
}

/// fi_trywait on one object: progress; -FI_EAGAIN when it has something
/// (or input is already there); otherwise its endpoints are armed so that
/// the application may block on the wait descriptor.
pub fn trywait(m: &Member) -> Result<()> {
    let mut last = match m {
        Member::Cntr(c) => c
            .upgrade()
            .map_or(0, |c| c.read().wrapping_add(c.read_err().rotate_left(32))),
        _ => 0,
    };
    if m.poll(&mut last) == Some(true) {
        return Err(Error::Again);
    }
    let mut eps = Eps::new();
    m.eps(&mut eps);
    for e in &eps {
        if !e.arm() {
            return Err(Error::Again);
        }
    }
    // Entries pushed by another thread while we armed.
    if let Member::Cq(c) = m
        && c.upgrade().is_some_and(|c| c.has_entries())
    {
        return Err(Error::Again);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signal_wakes_a_poller_and_clears() {
        let s = Arc::new(Signal::new().unwrap());
        assert!(!poll_fds(&[s.fd()], None, Some(Instant::now())));
        let s2 = s.clone();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(10));
            s2.raise();
        });
        // No deadline: only the raise can end this wait.
        assert!(poll_fds(&[s.fd()], None, None));
        t.join().unwrap();
        s.clear();
        let start = Instant::now();
        assert!(!poll_fds(
            &[s.fd()],
            None,
            Some(start + Duration::from_millis(20))
        ));
        assert!(
            start.elapsed() >= Duration::from_millis(20),
            "deadline kept"
        );
    }

    #[test]
    fn epoll_set_is_readable_when_a_member_is() {
        let e = EpollSet::new().unwrap();
        let a = Signal::new().unwrap();
        let b2 = Signal::new().unwrap();
        e.add(a.fd());
        e.add(b2.fd());
        b2.raise();
        let mut p = libc::pollfd {
            fd: e.fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        assert_eq!(unsafe { libc::poll(&mut p, 1, 1000) }, 1);
        b2.clear();
        // SAFETY: as above.
        assert_eq!(unsafe { libc::poll(&mut p, 1, 0) }, 0);
        e.remove(a.fd());
        a.raise();
        // SAFETY: as above.
        assert_eq!(unsafe { libc::poll(&mut p, 1, 0) }, 0, "removed member");
    }

    #[test]
    fn wait_objects_accepted() {
        assert_eq!(check_wait_obj(b::FI_WAIT_UNSPEC, false), Ok(b::FI_WAIT_FD));
        assert_eq!(check_wait_obj(b::FI_WAIT_SET, false), Err(Error::Inval));
        assert_eq!(check_wait_obj(b::FI_WAIT_SET, true), Ok(b::FI_WAIT_SET));
        assert_eq!(check_wait_obj(b::FI_WAIT_POLLFD, false), Err(Error::NoSys));
        assert_eq!(check_wait_obj(99, false), Err(Error::Inval));
    }
}
