//! The memory a peer's RMA and atomics may touch: the domain's registered
//! regions, checked by key, range and access on every request, and handed to
//! the protocol engine as a [`UserIov`] over exactly the requested bytes.

use super::bindings as b;
use super::iov::UserIov;
use crate::fi::fabric::Domain;
use crate::rdm::RmaTarget;
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
    fn resolve(&mut self, key: u64, addr: u64, len: usize, access: u64) -> Result<UserIov, i32> {
        let virt = self.virt_addr;
        let refused = &*self.refused;
        let count = crate::fi::stats::TargetCounters::count;
        let res = self.domain.mrs.serve(key, |r| {
            if r.access & access != access {
                count(&refused.bad_access);
                return Err(b::FI_EACCES);
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
                return Err(b::FI_EINVAL);
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
                Err(b::FI_EACCES)
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
