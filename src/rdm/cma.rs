//! Single copy between processes of one host (cross-memory attach) as the
//! protocol sees it: a trait the glue implements with process_vm_readv /
//! process_vm_writev, and the endpoint's per-peer link settings.
//!
//! The endpoint calls the trait synchronously (a receive being matched, an
//! RMA request being served); the copy is the whole transfer, so there is
//! no state to keep between calls. Tests implement it in-process.

use super::Stats;
use crate::mem::UserIov;
use crate::wire::rdm::{CMA_DESC_HDR, CMA_SEG_LEN, MAX_CMA_SEGS};
use smallvec::SmallVec;

/// Why a CMA copy did not happen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CmaError {
    /// Not permitted or not available (EPERM, EACCES, ENOSYS, CMA off,
    /// memory the glue cannot describe): move the data in packets instead.
    Denied,
    /// The peer process is gone (ESRCH).
    Gone,
    /// Anything else (EFAULT: the peer's buffer is not mapped): the
    /// transfer fails.
    Fault,
}

/// Memory of another process on this host. `remote` lists (address,
/// length) in process `pid`, in order; the local side is the bytes of the
/// iov from `off` on, as many as `remote` holds (the endpoint guarantees
/// the iov has them). A partial copy may have happened when an error is
/// returned; the endpoint then never reports the bytes as placed.
pub trait Cma {
    fn read(
        &mut self,
        pid: u32,
        remote: &[(u64, u64)],
        dst: &mut UserIov,
        off: usize,
    ) -> Result<(), CmaError>;
    fn write(
        &mut self,
        pid: u32,
        remote: &[(u64, u64)],
        src: &UserIov,
        off: usize,
    ) -> Result<(), CmaError>;
}

/// Segments of a descriptor, clipped to the first `len` bytes.
pub(super) type Segs = SmallVec<[(u64, u64); 4]>;

pub(super) fn clip(segs: impl Iterator<Item = (u64, u64)>, len: u64) -> Segs {
    let mut out = Segs::new();
    let mut left = len;
    for (a, l) in segs {
        if left == 0 {
            break;
        }
        let n = l.min(left);
        if n > 0 {
            out.push((a, n));
        }
        left -= n;
    }
    out
}

/// The raw segments of `iov` if they describe all of its `len` bytes in
/// at most MAX_CMA_SEGS pieces (owned test buffers have none).
pub(super) fn describe(iov: &UserIov) -> Option<Segs> {
    let segs: Segs = iov
        .raw_segments()
        .map(|(a, l)| (a as u64, l as u64))
        .collect();
    let total: u64 = segs.iter().map(|s| s.1).sum();
    (!segs.is_empty() && segs.len() <= MAX_CMA_SEGS && total == iov.len() as u64).then_some(segs)
}

/// Bytes of a descriptor of `segs`.
pub(super) fn desc_len(segs: &Segs) -> usize {
    CMA_DESC_HDR + segs.len() * CMA_SEG_LEN
}

/// Counts the outcome of one copy of `bytes`.
pub(super) fn count(stats: &mut Stats, r: Result<(), CmaError>, bytes: u64) {
    match r {
        Ok(()) => {
            stats.cma_copies += 1;
            stats.cma_bytes += bytes;
        }
        Err(CmaError::Denied) => stats.cma_fallbacks += 1,
        Err(_) => stats.cma_errors += 1,
    }
}
