//! Memory regions (fi_mr(3)): registrations with keys, checked on every
//! remote access.

use super::errno::{Error, Result};
use crate::bindings as b;
use std::collections::HashMap;
use std::sync::Mutex;

/// One registration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Region {
    pub key: u64,
    /// (address, length) of each registered segment.
    pub iov: Vec<(usize, usize)>,
    pub access: u64,
    pub offset: u64,
}

/// Every access flag fi_mr_reg accepts.
pub const ACCESS_ALL: u64 =
    b::FI_SEND | b::FI_RECV | b::FI_READ | b::FI_WRITE | b::FI_REMOTE_READ | b::FI_REMOTE_WRITE;

/// A registration and how many remote accesses it has served (a write, an
/// atomic, or one piece of a read served in pieces), reported when it is
/// closed: evidence of who used the window.
#[derive(Debug)]
struct Slot {
    region: Region,
    served: u64,
}

/// The key registry of one domain.
#[derive(Debug, Default)]
pub struct Registry {
    regions: Mutex<HashMap<u64, Slot>>,
}

/// Random, unguessable 64-bit keys from the kernel (getrandom), never 0.
fn random_key(rand: &mut impl FnMut() -> u64) -> u64 {
    loop {
        let k = rand();
        if k != 0 && k != u64::MAX {
            return k;
        }
    }
}

impl Registry {
    /// Registers `iov`; `prov_key` picks a random key, otherwise the
    /// application's `requested_key` (which must be unused).
    pub fn register(
        &self,
        iov: Vec<(usize, usize)>,
        access: u64,
        offset: u64,
        requested_key: u64,
        prov_key: bool,
        rand: &mut impl FnMut() -> u64,
    ) -> Result<Region> {
        if access & !ACCESS_ALL != 0 {
            return Err(Error::Inval);
        }
        if iov.iter().any(|&(a, l)| l > 0 && a == 0) {
            return Err(Error::Inval);
        }
        let access = if access == 0 { ACCESS_ALL } else { access };
        let mut g = self.regions.lock().unwrap_or_else(|e| e.into_inner());
        let key = if prov_key {
            let mut k = random_key(rand);
            while g.contains_key(&k) {
                k = random_key(rand);
            }
            k
        } else {
            if g.contains_key(&requested_key) {
                return Err(Error::Os(b::FI_ENOKEY as i32));
            }
            requested_key
        };
        let r = Region {
            key,
            iov,
            access,
            offset,
        };
        g.insert(
            key,
            Slot {
                region: r.clone(),
                served: 0,
            },
        );
        Ok(r)
    }

    /// Removes `key`; returns how many remote accesses it served.
    pub fn deregister(&self, key: u64) -> Result<u64> {
        let mut g = self.regions.lock().unwrap_or_else(|e| e.into_inner());
        g.remove(&key).map(|s| s.served).ok_or(Error::NoEnt)
    }

    /// Runs `f` on the region of `key` without copying it.
    pub fn with<R>(&self, key: u64, f: impl FnOnce(&Region) -> R) -> Option<R> {
        let g = self.regions.lock().unwrap_or_else(|e| e.into_inner());
        g.get(&key).map(|s| f(&s.region))
    }

    /// As [`Registry::with`] for a remote access: an `Ok` from `f` counts
    /// as one access served by the region.
    pub fn serve<R, E>(
        &self,
        key: u64,
        f: impl FnOnce(&Region) -> std::result::Result<R, E>,
    ) -> Option<std::result::Result<R, E>> {
        let mut g = self.regions.lock().unwrap_or_else(|e| e.into_inner());
        let slot = g.get_mut(&key)?;
        let res = f(&slot.region);
        if res.is_ok() {
            slot.served += 1;
        }
        Some(res)
    }

    pub fn get(&self, key: u64) -> Option<Region> {
        self.regions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
            .map(|s| s.region.clone())
    }

    pub fn len(&self) -> usize {
        self.regions.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_random_or_requested_and_unique() {
        let reg = Registry::default();
        let mut seq = [0u64, 7, 7, 9].into_iter();
        let mut rand = || seq.next().unwrap_or(11);
        let a = reg
            .register(vec![(0x1000, 64)], 0, 0, 0, true, &mut rand)
            .unwrap();
        assert_eq!(a.key, 7, "zero is skipped");
        assert_eq!(a.access, ACCESS_ALL);
        let b2 = reg
            .register(vec![(0x2000, 64)], b::FI_REMOTE_READ, 0, 0, true, &mut rand)
            .unwrap();
        assert_eq!(b2.key, 9, "a used key is skipped");
        let c = reg
            .register(vec![(0x3000, 8)], b::FI_READ, 0, 42, false, &mut rand)
            .unwrap();
        assert_eq!(c.key, 42);
        assert!(
            reg.register(vec![(0x3000, 8)], 0, 0, 42, false, &mut rand)
                .is_err()
        );
        assert!(
            reg.register(vec![(0, 8)], 0, 0, 43, false, &mut rand)
                .is_err()
        );
        assert!(
            reg.register(vec![(0x10, 8)], 1 << 60, 0, 44, false, &mut rand)
                .is_err()
        );
        let ok: Option<std::result::Result<(), ()>> = reg.serve(42, |_| Ok(()));
        assert_eq!(ok, Some(Ok(())));
        let bad: Option<std::result::Result<(), ()>> = reg.serve(42, |_| Err(()));
        assert_eq!(bad, Some(Err(())));
        assert!(reg.serve(41, |_| Ok::<(), ()>(())).is_none());
        assert_eq!(
            reg.deregister(42),
            Ok(1),
            "only the successful request counts"
        );
        assert_eq!(reg.deregister(42), Err(Error::NoEnt));
        assert_eq!(reg.len(), 2);
    }
}
