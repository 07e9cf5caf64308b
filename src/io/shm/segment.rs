//! Segment files in /dev/shm: naming, creation, mapping, liveness, sweeping.
//!
//! Name: `/dev/shm/srd-<uid>-<pid>-<nonce as 16 hex digits>`; the nonce is 64
//! random bits from getrandom, so a name cannot be guessed, and the file is
//! created O_EXCL|O_NOFOLLOW with mode 0600. The owner holds an exclusive
//! flock on its segment for its whole life: the kernel drops it when the
//! process dies, even by SIGKILL, so "the flock can be taken" means "the owner
//! is gone" without trusting pids (which get reused). The owner unlinks its
//! file on close; every `open` sweeps files of this uid whose owner is dead,
//! so a killed rank leaves nothing behind past the next open on the host.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::ptr;
use std::sync::Once;
use std::sync::atomic::{AtomicI32, Ordering};

use super::layout::{OFF_STATE, STATE_CREATING};

pub(crate) const DIR: &str = "/dev/shm";

pub(crate) fn uid() -> u32 {
    // SAFETY: getuid has no preconditions and cannot fail.
    unsafe { libc::getuid() }
}

pub(crate) fn pid() -> u32 {
    // SAFETY: getpid has no preconditions and cannot fail.
    unsafe { libc::getpid() as u32 }
}

/// File name (without directory) of a segment.
pub(crate) fn name(uid: u32, pid: u32, nonce: u64) -> String {
    format!("srd-{uid}-{pid}-{nonce:016x}")
}

pub(crate) fn path(uid: u32, pid: u32, nonce: u64) -> CString {
    CString::new(format!("{DIR}/{}", name(uid, pid, nonce))).expect("no NUL in name")
}

/// 64 random bits from the kernel (non-zero).
pub(crate) fn random_nonce() -> io::Result<u64> {
    loop {
        let mut b = [0u8; 8];
        // SAFETY: the buffer is 8 writable bytes.
        let n = unsafe { libc::getrandom(b.as_mut_ptr().cast(), 8, 0) };
        if n == 8 {
            let v = u64::from_ne_bytes(b);
            if v != 0 {
                return Ok(v);
            }
        } else if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }
}

fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// A shared mapping of a whole segment file; unmapped on drop.
#[derive(Debug)]
pub(crate) struct Mapping {
    pub base: *mut u8,
    pub len: usize,
    pub fd: OwnedFd,
}

// SAFETY: the mapping is process-wide; moving its handle between threads is fine.
unsafe impl Send for Mapping {}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: base/len come from a successful mmap that nothing else unmaps.
        unsafe { libc::munmap(self.base.cast(), self.len) };
    }
}

impl Mapping {
    /// The mapping as 64-bit words, each accessed atomically (other
    /// processes read and write it concurrently). Used by the stats pages.
    pub(crate) fn words(&self) -> &[std::sync::atomic::AtomicU64] {
        // SAFETY: mmap returned page-aligned memory, valid for `len` bytes
        // until `self` is dropped (the slice borrows `self`); AtomicU64 has
        // the size and alignment of u64, and every access through it is
        // atomic, so concurrent writers in other processes are no data race.
        unsafe { std::slice::from_raw_parts(self.base.cast(), self.len / 8) }
    }
}

fn map(fd: OwnedFd, len: usize) -> io::Result<Mapping> {
    // SAFETY: fresh shared mapping of a file we hold open; no fixed address.
    let p = unsafe {
        libc::mmap(
            ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            fd.as_raw_fd(),
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    // A forked child gets no copy of the rings: it has no business with
    // them, and fork need not copy their page tables (as verbs and EFA do
    // for their queues). Best effort: an old kernel refusing it changes
    // nothing for the parent.
    // SAFETY: advice on the mapping we just created.
    unsafe { libc::madvise(p, len, libc::MADV_DONTFORK) };
    Ok(Mapping {
        base: p.cast(),
        len,
        fd,
    })
}

/// Creates, locks, sizes and maps a new segment, places it on the NUMA
/// node of this (the receiving) process, then allocates its pages (reserved
/// up front: no SIGBUS on a full tmpfs). Placement comes before allocation:
/// tmpfs allocates under the file's policy set through the mapping.
pub(crate) fn create(path: &CString, len: usize) -> io::Result<Mapping> {
    // SAFETY: path is NUL-terminated; flags create a new file or fail.
    let fd = cvt(unsafe {
        libc::open(
            path.as_ptr(),
            libc::O_RDWR | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            0o600 as libc::c_uint,
        )
    })?;
    // SAFETY: fd was just returned by open and is owned by nobody else.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let setup = || -> io::Result<()> {
        // SAFETY: plain syscalls on our own fd.
        unsafe {
            cvt(libc::fchmod(fd.as_raw_fd(), 0o600))?;
            // Blocking: a sweeper may hold the lock for a moment while it
            // reads our (still CREATING) state, then lets go.
            while libc::flock(fd.as_raw_fd(), libc::LOCK_EX) < 0 {
                let e = io::Error::last_os_error();
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(e);
                }
            }
            cvt(libc::ftruncate(fd.as_raw_fd(), len as libc::off_t))?;
        }
        Ok(())
    };
    let allocate = |m: Mapping| -> io::Result<Mapping> {
        if let Err(e) = super::numa::place(m.base, m.len) {
            crate::srd_log!(Info, EpCtrl, "shared-memory ring left unplaced: {e}");
        }
        // SAFETY: plain syscall on the mapping's fd.
        let r = unsafe { libc::posix_fallocate(m.fd.as_raw_fd(), 0, len as libc::off_t) };
        if r != 0 {
            return Err(io::Error::from_raw_os_error(r));
        }
        prefault(&m);
        Ok(m)
    };
    let res = setup().and_then(|_| map(fd, len)).and_then(allocate);
    if res.is_err() {
        // SAFETY: path is NUL-terminated; removing the file we created.
        unsafe { libc::unlink(path.as_ptr()) };
    }
    res
}

/// Descriptors of this process's own segments, each holding the owner's
/// flock. A forked child inherits them, and with them a share of the lock:
/// a child that outlived its parent would keep the parent "alive" for every
/// peer. The child closes its copies at fork (the lock stays with the
/// parent's descriptor). Slots beyond the table are not tracked.
static OWN_FDS: [AtomicI32; 64] = [const { AtomicI32::new(-1) }; 64];
static ATFORK: Once = Once::new();

/// Runs in the child right after fork: only close(2), async-signal-safe.
extern "C" fn close_own_in_child() {
    for slot in &OWN_FDS {
        let fd = slot.swap(-1, Ordering::Relaxed);
        if fd >= 0 {
            // SAFETY: the child's copy of a descriptor the parent owns; the
            // child never touches the parent's segment objects again.
            unsafe { libc::close(fd) };
        }
    }
}

/// Notes `fd` as one of our own (flock-holding) segment descriptors.
pub(crate) fn track_own(fd: &OwnedFd) {
    ATFORK.call_once(|| {
        // SAFETY: registers a handler that only calls close(2).
        unsafe { libc::pthread_atfork(None, None, Some(close_own_in_child)) };
    });
    let raw = fd.as_raw_fd();
    for slot in &OWN_FDS {
        if slot
            .compare_exchange(-1, raw, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
        {
            return;
        }
    }
}

/// Forgets `fd` (the segment is being closed).
pub(crate) fn untrack_own(fd: &OwnedFd) {
    let raw = fd.as_raw_fd();
    for slot in &OWN_FDS {
        if slot
            .compare_exchange(raw, -1, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
        {
            return;
        }
    }
}

/// Opens and maps an existing segment owned by this uid, checking that it is
/// a private regular file (mode 0600, ours) of a plausible size.
pub(crate) fn open(path: &CString, min_len: usize) -> io::Result<Mapping> {
    // SAFETY: path is NUL-terminated.
    let fd = cvt(unsafe {
        libc::open(
            path.as_ptr(),
            libc::O_RDWR | libc::O_NOFOLLOW | libc::O_CLOEXEC,
        )
    })?;
    // SAFETY: fd was just returned by open.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: zeroed stat is a valid out-parameter.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: fd is open, st is writable.
    cvt(unsafe { libc::fstat(fd.as_raw_fd(), &mut st) })?;
    if st.st_mode & libc::S_IFMT != libc::S_IFREG || st.st_uid != uid() || st.st_mode & 0o077 != 0 {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            "segment is not a private file of ours",
        ));
    }
    let len = st.st_size as usize;
    if len < min_len {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "segment too short",
        ));
    }
    let m = map(fd, len)?;
    prefault(&m);
    Ok(m)
}

/// Maps every page of a segment whose pages exist (the owner allocated
/// them) into this process now. Otherwise the first pass over a ring costs
/// each process a page fault per slot it touches: a slot is a page or
/// more, so the first 256 messages each way paid one or two (8 B one-way
/// latency ~3.5 µs against ~0.75 µs once warm). Best effort: a kernel
/// without MADV_POPULATE_WRITE (before 5.14) leaves the faults to first use.
fn prefault(m: &Mapping) {
    // SAFETY: advice on our own live mapping of `m.len` bytes; populating
    // writes nothing to the memory.
    unsafe { libc::madvise(m.base.cast(), m.len, libc::MADV_POPULATE_WRITE) };
}

/// Whether the owner of the segment behind `fd` still holds its lock.
/// Costs one flock call; a separate open file description is required (the
/// owner's own fd would always succeed).
pub(crate) fn owner_alive(fd: &OwnedFd) -> bool {
    // SAFETY: plain flock on an fd we own.
    let r = unsafe { libc::flock(fd.as_raw_fd(), libc::LOCK_SH | libc::LOCK_NB) };
    if r == 0 {
        // SAFETY: as above; give the lock straight back.
        unsafe { libc::flock(fd.as_raw_fd(), libc::LOCK_UN) };
        return false;
    }
    // EWOULDBLOCK: held by the owner. Any other error: assume alive and let
    // the pid check or a later call decide.
    true
}

fn pid_dead(pid: u32) -> bool {
    // SAFETY: signal 0 only checks existence and permission.
    let r = unsafe { libc::kill(pid as libc::pid_t, 0) };
    r < 0 && io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH)
}

/// Whether `pid` names no live process (cheap, pid-reuse blind).
pub(crate) fn process_gone(pid: u32) -> bool {
    pid_dead(pid)
}

/// Removes segments of this uid whose owner is dead; returns how many.
/// Dead means: the pid in the name is gone, or the segment was initialized
/// (its owner locked it first) and its lock can be taken now (pid reused).
pub(crate) fn sweep(uid: u32, me: u32) -> usize {
    let prefix = format!("srd-{uid}-");
    let Ok(dir) = std::fs::read_dir(DIR) else {
        return 0;
    };
    let mut removed = 0;
    for ent in dir.flatten() {
        let fname = ent.file_name();
        let Some(fname) = fname.to_str() else {
            continue;
        };
        let Some(rest) = fname.strip_prefix(&prefix) else {
            continue;
        };
        let Some((pid_s, nonce_s)) = rest.split_once('-') else {
            continue;
        };
        let (Ok(pid), Ok(_)) = (pid_s.parse::<u32>(), u64::from_str_radix(nonce_s, 16)) else {
            continue;
        };
        if pid == me {
            continue;
        }
        let Ok(cpath) = CString::new(format!("{DIR}/{fname}")) else {
            continue;
        };
        if pid_dead(pid) || lock_free_and_initialized(&cpath) {
            // SAFETY: path is NUL-terminated; the owner is gone.
            if unsafe { libc::unlink(cpath.as_ptr()) } == 0 {
                removed += 1;
            }
        }
    }
    removed
}

fn lock_free_and_initialized(path: &CString) -> bool {
    // SAFETY: path is NUL-terminated.
    let fd = unsafe {
        libc::open(
            path.as_ptr(),
            libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return false;
    }
    // SAFETY: fd was just returned by open.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: flock on an fd we own.
    if unsafe { libc::flock(fd.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        return false;
    }
    let mut state = [0u8; 4];
    // SAFETY: reading 4 bytes into a 4-byte buffer at a fixed offset.
    let n = unsafe {
        libc::pread(
            fd.as_raw_fd(),
            state.as_mut_ptr().cast(),
            4,
            OFF_STATE as libc::off_t,
        )
    };
    // The lock goes away with the fd.
    n == 4 && u32::from_ne_bytes(state) != STATE_CREATING
}

pub(crate) fn unlink(path: &CString) -> io::Result<()> {
    // SAFETY: path is NUL-terminated.
    cvt(unsafe { libc::unlink(path.as_ptr()) }).map(|_| ())
}
