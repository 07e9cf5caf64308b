//! Shared by the RMA and atomic tests (included with `#[path]`): a memory
//! registry over Vec-backed regions implementing `rdm::RmaTarget`, the
//! way the fi glue implements it over its MR table.
#![allow(dead_code)]

use srd_fi::mem::UserIov;
use srd_fi::rdm::RmaTarget;
use srd_fi::rdm::{Access, ErrorKind};
use std::sync::{Arc, Mutex};

pub const RW: Access = Access::REMOTE_READ.union(Access::REMOTE_WRITE);
pub const RO: Access = Access::REMOTE_READ;
pub const WO: Access = Access::REMOTE_WRITE;

pub struct Region {
    pub key: u64,
    /// FI_MR_VIRT_ADDR: the address of the region's first byte; `None`:
    /// addresses are offsets from the start.
    pub virt: Option<u64>,
    pub access: Access,
    /// The backing memory: `guard` poison bytes, the region, `guard` more.
    pub mem: Vec<u8>,
    pub guard: usize,
    pub len: usize,
}

impl Region {
    /// The registered bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.mem[self.guard..self.guard + self.len]
    }
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        let g = self.guard;
        &mut self.mem[g..g + self.len]
    }
}

/// A registry shared between the test (which inspects memory) and the
/// endpoint (which owns a clone).
#[derive(Clone, Default)]
pub struct Registry(pub Arc<Mutex<Vec<Region>>>);

pub const POISON: u8 = 0xa5;

impl Registry {
    /// Registers `len` bytes filled with POISON, with `guard` poison bytes
    /// on each side that must never change.
    pub fn add(&self, key: u64, len: usize, access: Access, virt: Option<u64>) {
        let guard = 64;
        self.0.lock().unwrap().push(Region {
            key,
            virt,
            access,
            mem: vec![POISON; len + 2 * guard],
            guard,
            len,
        });
    }

    pub fn with<R>(&self, key: u64, f: impl FnOnce(&mut Region) -> R) -> R {
        let mut g = self.0.lock().unwrap();
        let r = g.iter_mut().find(|r| r.key == key).expect("region");
        f(r)
    }

    pub fn bytes(&self, key: u64) -> Vec<u8> {
        self.with(key, |r| r.bytes().to_vec())
    }

    /// Whole backing memory, guards included.
    pub fn backing(&self, key: u64) -> Vec<u8> {
        self.with(key, |r| r.mem.clone())
    }
}

impl RmaTarget for Registry {
    fn resolve(
        &mut self,
        key: u64,
        addr: u64,
        len: usize,
        access: Access,
    ) -> Result<UserIov, ErrorKind> {
        let mut g = self.0.lock().unwrap();
        let r = g
            .iter_mut()
            .find(|r| r.key == key)
            .ok_or(ErrorKind::AccessDenied)?;
        if !r.access.contains(access) {
            return Err(ErrorKind::AccessDenied);
        }
        let off = match r.virt {
            Some(base) => addr.checked_sub(base).ok_or(ErrorKind::InvalidArgument)?,
            None => addr,
        };
        let end = off
            .checked_add(len as u64)
            .ok_or(ErrorKind::InvalidArgument)?;
        if end > r.len as u64 {
            return Err(ErrorKind::InvalidArgument);
        }
        let start = r.guard + off as usize;
        let ptr = r.mem[start..start + len].as_mut_ptr();
        // SAFETY: the region's Vec is never resized while registered, and
        // the endpoint uses the view only inside the call that resolved
        // it, on this thread, while the test does not touch the memory.
        Ok(unsafe { UserIov::from_raw([(ptr, len)]) })
    }
}
