//! Address vectors (fi_av(3)): fi_addr_t ↔ endpoint address.
//!
//! FI_AV_TABLE hands out consecutive indices; FI_AV_MAP may hand out any
//! value, and ours are the same indices (stable, cheap to look up). Removed
//! slots are not reused, so a stale fi_addr can never name a new peer.
//!
//! Named AVs (FI_SHARED_AV): the entries also live in a file in /dev/shm
//! (`srd-av-<uid>-<name>`: a record of ADDR_LEN bytes per fi_addr, a
//! zeroed record for a removed one). The process that opens the name
//! without FI_READ writes it (one writer per name); processes that open it
//! with FI_READ read it, catching up whenever they meet an fi_addr or a
//! sender they do not know yet, so every process uses the same fi_addr
//! values. The writer removes the file when it closes the AV.

use super::addr::EpAddr;
use super::errno::{Error, Result};
use crate::bindings as b;
use std::collections::HashMap;
use std::net::SocketAddrV4;
use std::os::unix::fs::FileExt;
use std::sync::{Mutex, RwLock};

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
    /// Entries per process of this host (pid): the job's share of the
    /// host, for the idle policy (fi::idle).
    local_pids: HashMap<u32, usize>,
}

impl Inner {
    /// Counts `a` in or out of the host's processes.
    fn count_local(&mut self, a: &EpAddr, add: bool) {
        if a.pid == 0 || a.host_id != crate::fi::endpoint::host_id() {
            return;
        }
        if add {
            *self.local_pids.entry(a.pid).or_insert(0) += 1;
            let me = std::process::id();
            let n = self.local_pids.len() + usize::from(!self.local_pids.contains_key(&me));
            crate::fi::idle::note_local_processes(n);
        } else if let Some(c) = self.local_pids.get_mut(&a.pid) {
            *c -= 1;
            if *c == 0 {
                self.local_pids.remove(&a.pid);
            }
        }
    }
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
    /// The named AV's file, for FI_SHARED_AV.
    shared: Option<Shared>,
}

/// The file behind a named AV.
#[derive(Debug)]
struct Shared {
    file: Mutex<std::fs::File>,
    path: std::path::PathBuf,
    read_only: bool,
}

/// Where a named AV lives: /dev/shm, per user, the name made file-safe.
pub fn shared_path(name: &str) -> std::path::PathBuf {
    let safe: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    // SAFETY: getuid cannot fail.
    let uid = unsafe { libc::getuid() };
    std::path::PathBuf::from(format!("/dev/shm/srd-av-{uid}-{safe}"))
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
                local_pids: HashMap::new(),
            }),
            removals: std::sync::atomic::AtomicU64::new(0),
            max_entries: 1 << 24,
            shared: None,
        })
    }

    /// A named AV (FI_SHARED_AV): `read_only` (FI_READ) opens an existing
    /// one; otherwise this process creates it or takes over its writing.
    pub fn open_named(
        av_type: u32,
        addr_format: u32,
        count_hint: usize,
        name: &str,
        read_only: bool,
    ) -> Result<Av> {
        let path = shared_path(name);
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(!read_only)
            .create(!read_only)
            .truncate(false)
            .open(&path)
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => Error::NoEnt,
                _ => Error::from(e),
            })?;
        let mut av = Av::new(av_type, addr_format, count_hint)?;
        av.shared = Some(Shared {
            file: Mutex::new(file),
            path,
            read_only,
        });
        av.sync();
        Ok(av)
    }

    /// Whether inserts and removals are refused (FI_READ on a named AV).
    pub fn read_only(&self) -> bool {
        self.shared.as_ref().is_some_and(|s| s.read_only)
    }

    /// Reads the records the named AV's file has beyond ours (and marks
    /// removed ones). Returns whether anything changed.
    fn sync(&self) -> bool {
        let Some(sh) = &self.shared else { return false };
        let f = sh.file.lock().unwrap_or_else(|e| e.into_inner());
        let len = f.metadata().map_or(0, |m| m.len() as usize);
        let records = len / ADDR_REC;
        let mut g = self.inner.write().unwrap_or_else(|e| e.into_inner());
        let mut changed = false;
        let mut rec = [0u8; ADDR_REC];
        for i in 0..records.min(self.max_entries) {
            let known = g.slots.get(i).copied();
            if known.is_some_and(|s| s.is_none()) {
                continue; // removed stays removed
            }
            if f.read_exact_at(&mut rec, (i * ADDR_REC) as u64).is_err() {
                break;
            }
            let parsed = EpAddr::from_bytes(&rec).ok();
            match (known, parsed) {
                (None, a) => {
                    // A new index (a removed one reads as zeroes: None).
                    g.slots.push(a);
                    if let Some(a) = a {
                        let idx = i as u64;
                        g.by_sender.entry((a.sock, a.qpn)).or_insert(idx);
                        if a.pid != 0 {
                            g.by_token.entry((a.pid, a.nonce)).or_insert(idx);
                        }
                        g.count_local(&a, true);
                    }
                    changed = true;
                }
                (Some(Some(a)), None) => {
                    g.slots[i] = None;
                    Self::unindex(&mut g, i as u64, &a);
                    self.removals
                        .fetch_add(1, std::sync::atomic::Ordering::Release);
                    changed = true;
                }
                _ => {}
            }
        }
        changed
    }

    /// Writes record `idx` of a named AV (zeroes: removed).
    fn publish(&self, idx: u64, a: Option<&EpAddr>) {
        let Some(sh) = &self.shared else { return };
        let rec = a.map_or([0u8; ADDR_REC], |a| a.to_bytes());
        let f = sh.file.lock().unwrap_or_else(|e| e.into_inner());
        if f.write_all_at(&rec, idx * ADDR_REC as u64).is_err() {
            crate::srd_log!(
                Warn,
                Av,
                "named AV {}: record {idx} not written",
                sh.path.display()
            );
        }
    }

    fn unindex(g: &mut Inner, fi_addr: u64, a: &EpAddr) {
        if g.by_sender.get(&(a.sock, a.qpn)) == Some(&fi_addr) {
            g.by_sender.remove(&(a.sock, a.qpn));
        }
        if g.by_token.get(&(a.pid, a.nonce)) == Some(&fi_addr) {
            g.by_token.remove(&(a.pid, a.nonce));
        }
        g.count_local(a, false);
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
        if self.read_only() {
            (0..count).for_each(|_| out(Inserted::Bad));
            return 0;
        }
        let mut published: Vec<(u64, EpAddr)> = Vec::new();
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
                    g.count_local(&a, true);
                    ok += 1;
                    if self.shared.is_some() {
                        published.push((idx, a));
                    }
                    out(Inserted::Ok(idx));
                }
                _ => out(Inserted::Bad),
            }
        }
        drop(g);
        for (idx, a) in published {
            self.publish(idx, Some(&a));
        }
        ok
    }

    /// Inserts parsed addresses (FI_ADDR_STR records are NUL-terminated strings).
    pub fn insert_one(&self, a: EpAddr) -> Result<u64> {
        if self.read_only() {
            return Err(Error::Inval);
        }
        let idx = self.insert_local(a)?;
        self.publish(idx, Some(&a));
        Ok(idx)
    }

    fn insert_local(&self, a: EpAddr) -> Result<u64> {
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
        g.count_local(&a, true);
        Ok(idx)
    }

    fn parse(&self, rec: &[u8]) -> Option<EpAddr> {
        EpAddr::decode(self.addr_format, rec)
    }

    pub fn remove(&self, fi_addr: u64) -> Result<()> {
        if self.read_only() {
            return Err(Error::Inval);
        }
        let mut g = self.inner.write().unwrap_or_else(|e| e.into_inner());
        let slot = g
            .slots
            .get_mut(usize::try_from(fi_addr).map_err(|_| Error::Inval)?)
            .ok_or(Error::Inval)?;
        let a = slot.take().ok_or(Error::Inval)?;
        Self::unindex(&mut g, fi_addr, &a);
        drop(g);
        self.publish(fi_addr, None);
        self.removals
            .fetch_add(1, std::sync::atomic::Ordering::Release);
        Ok(())
    }

    /// Number of removals so far (see `removals`).
    pub fn removals(&self) -> u64 {
        self.removals.load(std::sync::atomic::Ordering::Acquire)
    }

    pub fn lookup(&self, fi_addr: u64) -> Option<EpAddr> {
        let found = self.lookup_local(fi_addr);
        if found.is_none() && self.shared.is_some() && self.sync() {
            return self.lookup_local(fi_addr);
        }
        found
    }

    fn lookup_local(&self, fi_addr: u64) -> Option<EpAddr> {
        let g = self.inner.read().unwrap_or_else(|e| e.into_inner());
        *g.slots.get(usize::try_from(fi_addr).ok()?)?
    }

    /// The fi_addr of a sender, if it is in the AV.
    pub fn find(&self, key: &SenderKey) -> Option<u64> {
        let found = self.find_local(|g| g.by_sender.get(key).copied());
        if found.is_none() && self.shared.is_some() && self.sync() {
            return self.find_local(|g| g.by_sender.get(key).copied());
        }
        found
    }

    /// The fi_addr of a same-host endpoint by its ring token.
    pub fn find_token(&self, pid: u32, nonce: u64) -> Option<u64> {
        let get = |g: &Inner| g.by_token.get(&(pid, nonce)).copied();
        let found = self.find_local(get);
        if found.is_none() && self.shared.is_some() && self.sync() {
            return self.find_local(get);
        }
        found
    }

    fn find_local(&self, f: impl Fn(&Inner) -> Option<u64>) -> Option<u64> {
        let g = self.inner.read().unwrap_or_else(|e| e.into_inner());
        f(&g)
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

/// Bytes of one record of a named AV's file.
const ADDR_REC: usize = super::addr::ADDR_LEN;

impl Drop for Av {
    fn drop(&mut self) {
        if let Some(sh) = &self.shared
            && !sh.read_only
        {
            let _ = std::fs::remove_file(&sh.path);
        }
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
