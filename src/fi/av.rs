//! Address vectors (fi_av(3)): fi_addr_t ↔ endpoint address.
//!
//! FI_AV_TABLE hands out consecutive indices; FI_AV_MAP may hand out any
//! value, and ours are the same indices (stable, cheap to look up). Removed
//! slots are not reused, so a stale fi_addr can never name a new peer.

use super::addr::EpAddr;
use super::errno::{Error, Result};
use crate::bindings as b;
use std::collections::HashMap;
use std::net::SocketAddrV4;
use std::sync::RwLock;

/// libfabric's FI_ADDR_NOTAVAIL / FI_ADDR_UNSPEC (all ones).
pub const ADDR_NOTAVAIL: u64 = u64::MAX;

/// Key for finding the fi_addr of a packet's sender.
pub type SenderKey = (SocketAddrV4, u32);

#[derive(Debug, Default)]
struct Inner {
    slots: Vec<Option<EpAddr>>,
    by_sender: HashMap<SenderKey, u64>,
    /// (pid, nonce) of same-host endpoints: how shared-memory senders are found.
    by_token: HashMap<(u32, u64), u64>,
}

/// An address vector.
#[derive(Debug)]
pub struct Av {
    pub av_type: u32,
    /// Address bytes accepted by insert: binary (FI_FORMAT_UNSPEC) or string.
    pub addr_format: u32,
    inner: RwLock<Inner>,
    /// Bumped by every removal, so endpoints caching fi_addr → peer know
    /// when to revalidate.
    removals: std::sync::atomic::AtomicU64,
    /// Upper bound on entries (attr->count is a hint; this protects memory).
    pub max_entries: usize,
}

/// Result of inserting one address.
#[derive(Debug, PartialEq, Eq)]
pub enum Inserted {
    Ok(u64),
    Bad,
}

impl Av {
    pub fn new(av_type: u32, addr_format: u32, count_hint: usize) -> Result<Av> {
        let av_type = match av_type {
            t if t == b::FI_AV_UNSPEC || t == b::FI_AV_MAP => b::FI_AV_MAP,
            t if t == b::FI_AV_TABLE => t,
            _ => return Err(Error::Inval),
        };
        Ok(Av {
            av_type,
            addr_format,
            inner: RwLock::new(Inner {
                slots: Vec::with_capacity(count_hint.min(1 << 16)),
                by_sender: HashMap::new(),
                by_token: HashMap::new(),
            }),
            removals: std::sync::atomic::AtomicU64::new(0),
            max_entries: 1 << 24,
        })
    }

    /// Inserts addresses given as consecutive `len`-byte records; calls `out`
    /// with each result in order.
    pub fn insert_raw(
        &self,
        bytes: &[u8],
        count: usize,
        rec_len: usize,
        out: &mut impl FnMut(Inserted),
    ) -> usize {
        let mut ok = 0;
        let mut g = self.inner.write().unwrap_or_else(|e| e.into_inner());
        for i in 0..count {
            let rec = bytes.get(i * rec_len..(i + 1) * rec_len);
            let parsed = rec.and_then(|r| self.parse(r));
            match parsed {
                Some(a) if g.slots.len() < self.max_entries => {
                    let idx = g.slots.len() as u64;
                    g.slots.push(Some(a));
                    g.by_sender.entry((a.sock, a.qpn)).or_insert(idx);
                    if a.pid != 0 {
                        g.by_token.entry((a.pid, a.nonce)).or_insert(idx);
                    }
                    ok += 1;
                    out(Inserted::Ok(idx));
                }
                _ => out(Inserted::Bad),
            }
        }
        ok
    }

    /// Inserts parsed addresses (FI_ADDR_STR records are NUL-terminated strings).
    pub fn insert_one(&self, a: EpAddr) -> Result<u64> {
        let mut g = self.inner.write().unwrap_or_else(|e| e.into_inner());
        if g.slots.len() >= self.max_entries {
            return Err(Error::NoMem);
        }
        let idx = g.slots.len() as u64;
        g.slots.push(Some(a));
        g.by_sender.entry((a.sock, a.qpn)).or_insert(idx);
        if a.pid != 0 {
            g.by_token.entry((a.pid, a.nonce)).or_insert(idx);
        }
        Ok(idx)
    }

    fn parse(&self, rec: &[u8]) -> Option<EpAddr> {
        EpAddr::decode(self.addr_format, rec)
    }

    pub fn remove(&self, fi_addr: u64) -> Result<()> {
        let mut g = self.inner.write().unwrap_or_else(|e| e.into_inner());
        let slot = g
            .slots
            .get_mut(usize::try_from(fi_addr).map_err(|_| Error::Inval)?)
            .ok_or(Error::Inval)?;
        let a = slot.take().ok_or(Error::Inval)?;
        if g.by_sender.get(&(a.sock, a.qpn)) == Some(&fi_addr) {
            g.by_sender.remove(&(a.sock, a.qpn));
        }
        if g.by_token.get(&(a.pid, a.nonce)) == Some(&fi_addr) {
            g.by_token.remove(&(a.pid, a.nonce));
        }
        self.removals
            .fetch_add(1, std::sync::atomic::Ordering::Release);
        Ok(())
    }

    /// Number of removals so far (see `removals`).
    pub fn removals(&self) -> u64 {
        self.removals.load(std::sync::atomic::Ordering::Acquire)
    }

    pub fn lookup(&self, fi_addr: u64) -> Option<EpAddr> {
        let g = self.inner.read().unwrap_or_else(|e| e.into_inner());
        *g.slots.get(usize::try_from(fi_addr).ok()?)?
    }

    /// The fi_addr of a sender, if it is in the AV.
    pub fn find(&self, key: &SenderKey) -> Option<u64> {
        let g = self.inner.read().unwrap_or_else(|e| e.into_inner());
        g.by_sender.get(key).copied()
    }

    /// The fi_addr of a same-host endpoint by its ring token.
    pub fn find_token(&self, pid: u32, nonce: u64) -> Option<u64> {
        let g = self.inner.read().unwrap_or_else(|e| e.into_inner());
        g.by_token.get(&(pid, nonce)).copied()
    }

    pub fn len(&self) -> usize {
        self.inner
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .slots
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fi::addr::Kind;

    fn addr(port: u16) -> EpAddr {
        EpAddr {
            kind: Kind::Rdm,
            sock: SocketAddrV4::new([127, 0, 0, 1].into(), port),
            qpn: 1,
            qkey: 2,
            host_id: 3,
            nonce: 4,
            pid: 0,
        }
    }

    #[test]
    fn insert_lookup_remove() {
        let av = Av::new(b::FI_AV_TABLE, b::FI_FORMAT_UNSPEC, 4).unwrap();
        let mut bytes = addr(1000).to_bytes().to_vec();
        bytes.extend_from_slice(&[0xff; 40]);
        bytes.extend_from_slice(&addr(1001).to_bytes());
        let mut res = vec![];
        assert_eq!(av.insert_raw(&bytes, 3, 40, &mut |r| res.push(r)), 2);
        assert_eq!(res, [Inserted::Ok(0), Inserted::Bad, Inserted::Ok(1)]);
        assert_eq!(av.lookup(1), Some(addr(1001)));
        assert_eq!(av.find(&(addr(1000).sock, 1)), Some(0));
        av.remove(0).unwrap();
        assert_eq!(av.lookup(0), None);
        assert_eq!(av.find(&(addr(1000).sock, 1)), None);
        assert_eq!(av.remove(0), Err(Error::Inval));
        assert_eq!(av.remove(77), Err(Error::Inval));
        // Indices are not reused.
        assert_eq!(av.insert_one(addr(1002)), Ok(2));
    }

    #[test]
    fn string_records() {
        let av = Av::new(b::FI_AV_MAP, b::FI_ADDR_STR, 0).unwrap();
        let mut rec = addr(7).to_string().into_bytes();
        rec.push(0);
        let mut res = vec![];
        assert_eq!(av.insert_raw(&rec, 1, rec.len(), &mut |r| res.push(r)), 1);
        assert_eq!(av.lookup(0), Some(addr(7)));
    }
}
