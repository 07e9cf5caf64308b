//! Cross-memory attach: process_vm_readv / process_vm_writev between local
//! processes of one user, for single-copy bulk transfers.
//!
//! The kernel allows them when the caller may ptrace the target: same uid,
//! target dumpable, no seccomp filter refusing the calls, and YAMA's
//! `ptrace_scope` at 0 (or at 1 if the target declared us its ptracer).
//! [`probe`] runs once at endpoint open: it reads its own memory through the
//! system call (catches ENOSYS/EPERM from seccomp) and, under ptrace_scope 1,
//! calls `prctl(PR_SET_PTRACER, PR_SET_PTRACER_ANY)` so that sibling ranks may
//! read it (what other MPI transports do; it only widens access to processes
//! that could already read our /proc/pid/mem if they were our parent).
//! A transfer that still fails with EPERM returns the error: the caller falls
//! back to copying through the ring.

use std::io;

/// Whether `pid`'s memory may be read with CMA from here, as far as this
/// process can tell without the peer; sets us up to be read under YAMA 1.
pub(crate) fn probe() -> bool {
    let src = [0x5au8; 64];
    let mut dst = [0u8; 64];
    // SAFETY: getpid has no preconditions.
    let me = unsafe { libc::getpid() } as u32;
    if read(me, src.as_ptr() as usize, &mut dst).is_err() || dst != src {
        return false;
    }
    match std::fs::read_to_string("/proc/sys/kernel/yama/ptrace_scope") {
        Err(_) => true, // no YAMA
        Ok(s) => match s.trim() {
            "0" => true,
            "1" => {
                // SAFETY: prctl with integer arguments only.
                unsafe { libc::prctl(libc::PR_SET_PTRACER, libc::PR_SET_PTRACER_ANY, 0, 0, 0) == 0 }
            }
            _ => false,
        },
    }
}

/// Copies `dst.len()` bytes from `remote_addr` in process `pid` into `dst`.
pub(crate) fn read(pid: u32, remote_addr: usize, dst: &mut [u8]) -> io::Result<()> {
    let local = [(dst.as_mut_ptr() as usize, dst.len())];
    // SAFETY: `dst` is writable memory we borrow exclusively for the call;
    // the kernel checks the remote range against the target's mappings.
    unsafe { transfer(Dir::Read, pid, &local, &[(remote_addr, dst.len())]) }
}

/// Copies `src` to `remote_addr` in process `pid`.
pub(crate) fn write(pid: u32, remote_addr: usize, src: &[u8]) -> io::Result<()> {
    let local = [(src.as_ptr() as usize, src.len())];
    // SAFETY: `src` is readable for the call and a write only reads it, so
    // sharing it with other readers is fine; the kernel checks the remote
    // range.
    unsafe { transfer(Dir::Write, pid, &local, &[(remote_addr, src.len())]) }
}

/// Direction of a vectored transfer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Dir {
    /// Remote → local (process_vm_readv).
    Read,
    /// Local → remote (process_vm_writev).
    Write,
}

/// Iovecs per system call (well below IOV_MAX = 1024).
const BATCH: usize = 64;

/// Moves bytes between the local segments `local` and the segments
/// `remote` of process `pid`, in order, until the shorter list is
/// exhausted; partial transfers are continued where they stopped.
///
/// # Safety
/// Every local `(address, length)` must be valid for writes (`Read`) or
/// reads (`Write`) of `length` bytes for the duration of the call, and
/// not be accessed by anyone else meanwhile.
pub(crate) unsafe fn transfer(
    dir: Dir,
    pid: u32,
    local: &[(usize, usize)],
    remote: &[(usize, usize)],
) -> io::Result<()> {
    let total = local
        .iter()
        .map(|s| s.1)
        .sum::<usize>()
        .min(remote.iter().map(|s| s.1).sum());
    // Positions: segment index and offset inside it, on each side.
    let (mut li, mut lo, mut ri, mut ro) = (0usize, 0usize, 0usize, 0usize);
    let mut done = 0usize;
    while done < total {
        let (lv, nl) = iovecs(local, li, lo);
        let (rv, nr) = iovecs(remote, ri, ro);
        // SAFETY: the local iovecs lie in memory the caller vouches for;
        // the kernel checks the remote ones against the target's mappings.
        let n = unsafe {
            match dir {
                Dir::Read => libc::process_vm_readv(
                    pid as libc::pid_t,
                    lv.as_ptr(),
                    nl as libc::c_ulong,
                    rv.as_ptr(),
                    nr as libc::c_ulong,
                    0,
                ),
                Dir::Write => libc::process_vm_writev(
                    pid as libc::pid_t,
                    lv.as_ptr(),
                    nl as libc::c_ulong,
                    rv.as_ptr(),
                    nr as libc::c_ulong,
                    0,
                ),
            }
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "cross-memory transfer moved nothing",
            ));
        }
        let n = n as usize;
        done += n;
        advance(local, &mut li, &mut lo, n);
        advance(remote, &mut ri, &mut ro, n);
    }
    Ok(())
}

/// Up to `BATCH` iovecs for `segs` from position (segment `i`, offset
/// `o`), and how many were filled.
fn iovecs(segs: &[(usize, usize)], i: usize, o: usize) -> ([libc::iovec; BATCH], usize) {
    let mut v = [libc::iovec {
        iov_base: std::ptr::null_mut(),
        iov_len: 0,
    }; BATCH];
    let mut n = 0;
    for (k, &(addr, len)) in segs[i.min(segs.len())..].iter().take(BATCH).enumerate() {
        let skip = if k == 0 { o } else { 0 };
        v[k] = libc::iovec {
            iov_base: (addr + skip) as *mut libc::c_void,
            iov_len: len - skip,
        };
        n = k + 1;
    }
    (v, n)
}

/// Moves a (segment, offset) position `n` bytes forward.
fn advance(segs: &[(usize, usize)], i: &mut usize, o: &mut usize, mut n: usize) {
    while n > 0 && *i < segs.len() {
        let room = segs[*i].1 - *o;
        if n < room {
            *o += n;
            return;
        }
        n -= room;
        *i += 1;
        *o = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vectored_transfer_crosses_segment_boundaries_both_ways() {
        if !probe() {
            return; // CMA refused here (seccomp, YAMA 3): nothing to test
        }
        let me = std::process::id();
        let src: Vec<u8> = (0..10_000u32).map(|i| (i * 7 + 3) as u8).collect();
        // Remote side: three uneven pieces of `src`; local: four others.
        let remote = [
            (src.as_ptr() as usize, 1),
            (src.as_ptr() as usize + 1, 4_998),
            (src.as_ptr() as usize + 4_999, 5_001),
        ];
        let mut dst = vec![0u8; 10_000 + 16];
        let base = dst.as_mut_ptr() as usize;
        let local = [
            (base, 3_000),
            (base + 3_000, 7),
            (base + 3_007, 6_000),
            (base + 9_007, 993),
        ];
        // SAFETY: `local` lies inside `dst`, which nothing else touches.
        unsafe { transfer(Dir::Read, me, &local, &remote) }.unwrap();
        assert!(dst[..10_000] == src[..], "read");
        assert!(
            dst[10_000..].iter().all(|&b| b == 0),
            "nothing past the lists"
        );
        // And back: write `dst` into a fresh buffer through other cuts.
        let mut back = vec![0u8; 10_000];
        let bb = back.as_mut_ptr() as usize;
        let remote = [(bb, 9_999), (bb + 9_999, 1)];
        let local = [(base, 5_000), (base + 5_000, 5_000)];
        // SAFETY: `local` lies inside `dst`, only read.
        unsafe { transfer(Dir::Write, me, &local, &remote) }.unwrap();
        assert!(back == src, "write");
        // A remote range that is not mapped: EFAULT, not a panic.
        let bad = [(8usize, 16usize)];
        // SAFETY: as above.
        let e = unsafe { transfer(Dir::Read, me, &local, &bad) }.unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EFAULT));
    }
}
