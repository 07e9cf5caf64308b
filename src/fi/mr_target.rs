//! The memory a peer's RMA and atomics may touch: the domain's registered
//! regions, checked by key, range and access on every request, and handed to
//! the protocol engine as a [`UserIov`] over exactly the requested bytes.

use crate::fi::fabric::Domain;
use crate::io::shm::cma_transfer;
use crate::mem::UserIov;
use crate::rdm::{Access, Cma, CmaError, ErrorKind, RmaTarget};
use smallvec::SmallVec;
use std::sync::Arc;

/// Resolves (key, address, length, access) against a domain's MRs.
pub struct MrTarget {
    pub domain: Arc<Domain>,
    /// FI_MR_VIRT_ADDR: remote addresses are virtual addresses inside the
    /// region; otherwise byte offsets from its start.
    pub virt_addr: bool,
    /// Refusals by reason, published with the endpoint's counters.
    pub refused: Arc<crate::fi::stats::TargetCounters>,
}

impl RmaTarget for MrTarget {
    fn resolve(
        &mut self,
        key: u64,
        addr: u64,
        len: usize,
        access: Access,
    ) -> Result<UserIov, ErrorKind> {
        let access = crate::fi::convert::access_to_fi(access);
        let virt = self.virt_addr;
        let refused = &*self.refused;
        let count = crate::fi::stats::TargetCounters::count;
        let res = self.domain.mrs.serve(key, |r| {
            if r.access & access != access {
                count(&refused.bad_access);
                return Err(ErrorKind::AccessDenied);
            }
            let total: usize = r.iov.iter().map(|s| s.1).sum();
            let base = r.iov.first().map_or(0, |s| s.0 as u64);
            let range = || {
                let start = if virt { addr.checked_sub(base)? } else { addr };
                let start = usize::try_from(start).ok()?;
                let end = start.checked_add(len)?;
                (end <= total).then_some((start, end))
            };
            let Some((start, end)) = range() else {
                count(&refused.bad_range);
                return Err(ErrorKind::InvalidArgument);
            };
            // The requested bytes, segment by segment.
            let mut segs: SmallVec<[(*mut u8, usize); 4]> = SmallVec::new();
            let mut off = 0usize;
            for &(a, l) in &r.iov {
                let (s, e) = (off, off + l);
                off = e;
                let lo = start.max(s);
                let hi = end.min(e);
                if lo < hi {
                    segs.push(((a + (lo - s)) as *mut u8, hi - lo));
                }
            }
            Ok(segs)
        });
        match res {
            None => {
                count(&refused.bad_key);
                Err(ErrorKind::AccessDenied)
            }
            Some(Err(e)) => Err(e),
            // SAFETY: the segments lie inside a region the application
            // registered for remote access (checked above) and keeps valid
            // until it closes the MR; the engine uses the view only within
            // the call that resolved it.
            Some(Ok(segs)) => Ok(unsafe { UserIov::from_raw(&segs) }),
        }
    }
}

/// Single copies between processes of this host for the RDM engine: the
/// local side is a `UserIov` over caller or registered memory, the remote
/// side the segments a peer described; process_vm_readv / writev move the
/// bytes (shm backend).
pub struct CmaCopier;

/// `len` bytes of `iov` from `off`, as raw (address, length) segments;
/// `None` when the iov is not caller memory or too short.
fn window(iov: &UserIov, off: usize, len: usize) -> Option<RawSegs> {
    let mut out = SmallVec::new();
    let (mut skip, mut left) = (off, len);
    for (a, l) in iov.raw_segments() {
        if left == 0 {
            break;
        }
        if skip >= l {
            skip -= l;
            continue;
        }
        let n = (l - skip).min(left);
        out.push((a + skip, n));
        left -= n;
        skip = 0;
    }
    (left == 0).then_some(out)
}

/// (address, length) segments for a CMA transfer.
type RawSegs = SmallVec<[(usize, usize); 4]>;

/// The peer's segments as addresses of this machine, and their total.
fn remote_segs(remote: &[(u64, u64)]) -> Option<(RawSegs, usize)> {
    let mut total = 0usize;
    let mut out = SmallVec::new();
    for &(a, l) in remote {
        let (a, l) = (usize::try_from(a).ok()?, usize::try_from(l).ok()?);
        total = total.checked_add(l)?;
        out.push((a, l));
    }
    Some((out, total))
}

fn cma_error(e: std::io::Error) -> CmaError {
    match e.raw_os_error() {
        Some(libc::EPERM | libc::EACCES | libc::ENOSYS | libc::EOPNOTSUPP) => CmaError::Denied,
        Some(libc::ESRCH) => CmaError::Gone,
        _ => CmaError::Fault,
    }
}

impl Cma for CmaCopier {
    fn read(
        &mut self,
        pid: u32,
        remote: &[(u64, u64)],
        dst: &mut UserIov,
        off: usize,
    ) -> Result<(), CmaError> {
        let (remote, len) = remote_segs(remote).ok_or(CmaError::Fault)?;
        let local = window(dst, off, len).ok_or(CmaError::Denied)?;
        // SAFETY: `local` lies inside `dst`, caller memory valid until its
        // operation completes (UserIov::from_raw's contract), which the
        // engine holds exclusively (`&mut`) during this call.
        unsafe { cma_transfer(true, pid, &local, &remote) }.map_err(cma_error)
    }

    fn write(
        &mut self,
        pid: u32,
        remote: &[(u64, u64)],
        src: &UserIov,
        off: usize,
    ) -> Result<(), CmaError> {
        let (remote, len) = remote_segs(remote).ok_or(CmaError::Fault)?;
        let local = window(src, off, len).ok_or(CmaError::Denied)?;
        // SAFETY: as in `read`; the kernel only reads the local side.
        unsafe { cma_transfer(false, pid, &local, &remote) }.map_err(cma_error)
    }
}
