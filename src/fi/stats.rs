//! Live counters: each RDM endpoint publishes its counters and a per-peer
//! table to a small shared-memory page that `srd-stat` (src/bin/srd-stat.rs)
//! reads while the process runs.
//!
//! The page is `/dev/shm/srd-stats-<uid>-<pid>-<ep>`, mode 0600, created
//! O_EXCL|O_NOFOLLOW and flock'ed by its owner for its whole life (the shm
//! ring segments' helpers), unlinked at close; pages whose owner died are
//! swept by the next page creation on the host and by `srd-stat`.
//!
//! Layout: native-endian 64-bit words (only processes of one host read it).
//! Text fields are NUL-padded bytes packed into words.
//!
//! ```text
//! word  0 magic "SRDSTAT1"   1 version   2 seq (seqlock: odd while written)
//!       3 pid   4 ep id   5 counters   6 peer fields   7 peer rows valid
//!       8 peers in total (rows hold the first MAX_PEERS)
//!       9 time of the last publish (ns since the epoch)   10 publishes
//!      11 kind (text, 8 bytes: "rdm")   16..32 local address (text, 128 bytes)
//!      32 counter names (MAX_COUNTERS x 32 bytes, written once)
//!         counter values (MAX_COUNTERS words)
//!         peer field names (MAX_PEER_FIELDS x 32 bytes, written once)
//!         peer rows (MAX_PEERS x ROW_WORDS): address text (96 bytes),
//!         fi_addr, path text (8 bytes), state text (16 bytes), values
//! ```
//! The writer bumps `seq` to odd, stores the values, bumps it to even
//! (release); a reader copies between two equal even reads of `seq`.
//! Writing happens from the endpoint's progress path, at most every
//! `PUBLISH_EVERY_NS`, so counting stays plain `u64` increments.

use crate::io::shm::segment::{self, Mapping};
use std::ffi::CString;
use std::fmt::Write as _;
use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering, fence};

pub const MAGIC: u64 = u64::from_le_bytes(*b"SRDSTAT1");
pub const VERSION: u64 = 1;
pub const MAX_COUNTERS: usize = 128;
pub const MAX_PEER_FIELDS: usize = 24;
pub const MAX_PEERS: usize = 128;
/// Publish at most this often (the progress path checks the clock it reads anyway).
pub const PUBLISH_EVERY_NS: u64 = 2_000_000;
/// `fi_addr` of a peer not in the AV.
pub const NOT_IN_AV: u64 = u64::MAX;

const W_MAGIC: usize = 0;
const W_VERSION: usize = 1;
const W_SEQ: usize = 2;
const W_PID: usize = 3;
const W_EP: usize = 4;
const W_NCOUNTERS: usize = 5;
const W_NFIELDS: usize = 6;
const W_NROWS: usize = 7;
const W_NPEERS: usize = 8;
const W_TIME: usize = 9;
const W_PUBLISHES: usize = 10;
const W_KIND: usize = 11;
const W_LOCAL: usize = 16;
const LOCAL_WORDS: usize = 16;
const NAME_WORDS: usize = 4;
const W_NAMES: usize = 32;
const W_VALUES: usize = W_NAMES + MAX_COUNTERS * NAME_WORDS;
const W_FIELD_NAMES: usize = W_VALUES + MAX_COUNTERS;
const W_ROWS: usize = W_FIELD_NAMES + MAX_PEER_FIELDS * NAME_WORDS;
const ADDR_WORDS: usize = 12;
const R_FI: usize = ADDR_WORDS;
const R_PATH: usize = ADDR_WORDS + 1;
const R_STATE: usize = ADDR_WORDS + 2;
const R_VALUES: usize = ADDR_WORDS + 4;
const ROW_WORDS: usize = R_VALUES + MAX_PEER_FIELDS;
const PAGE_WORDS: usize = W_ROWS + MAX_PEERS * ROW_WORDS;
/// Bytes of a page (whole 4 KiB pages).
pub const PAGE_LEN: usize = (PAGE_WORDS * 8).div_ceil(4096) * 4096;

const PREFIX: &str = "srd-stats-";

/// Refused RMA and atomic accesses at this endpoint's memory, by reason.
/// Shared between the endpoint and the registry lookup that refuses them.
#[derive(Debug, Default)]
pub struct TargetCounters {
    /// No region with that key.
    pub bad_key: AtomicU64,
    /// The region does not cover the range.
    pub bad_range: AtomicU64,
    /// The region lacks the access (remote read / write).
    pub bad_access: AtomicU64,
}

impl TargetCounters {
    pub fn count(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }
}

/// One row of the per-peer table, as the writer fills it.
#[derive(Clone, Debug)]
pub struct PeerRow {
    pub addr: String,
    pub fi_addr: u64,
    pub path: &'static str,
    pub state: &'static str,
    pub values: [u64; MAX_PEER_FIELDS],
}

impl Default for PeerRow {
    fn default() -> Self {
        PeerRow {
            addr: String::new(),
            fi_addr: NOT_IN_AV,
            path: "-",
            state: "-",
            values: [0; MAX_PEER_FIELDS],
        }
    }
}

fn put_text(w: &[AtomicU64], text: &str) {
    let b = text.as_bytes();
    for (i, word) in w.iter().enumerate() {
        let mut a = [0u8; 8];
        for (k, x) in a.iter_mut().enumerate() {
            // Keep one NUL at the end of the field.
            if i * 8 + k + 1 < w.len() * 8 {
                *x = b.get(i * 8 + k).copied().unwrap_or(0);
            }
        }
        word.store(u64::from_ne_bytes(a), Ordering::Relaxed);
    }
}

fn get_text(w: &[u64]) -> String {
    let mut b: Vec<u8> = w.iter().flat_map(|x| x.to_ne_bytes()).collect();
    if let Some(n) = b.iter().position(|&c| c == 0) {
        b.truncate(n);
    }
    String::from_utf8_lossy(&b).into_owned()
}

fn page_path(uid: u32, pid: u32, ep: u32) -> PathBuf {
    PathBuf::from(format!("{}/{PREFIX}{uid}-{pid}-{ep}", segment::DIR))
}

/// Parses `srd-stats-<uid>-<pid>-<ep>`.
fn parse_name(name: &str) -> Option<(u32, u32, u32)> {
    let mut it = name.strip_prefix(PREFIX)?.split('-');
    let uid = it.next()?.parse().ok()?;
    let pid = it.next()?.parse().ok()?;
    let ep = it.next()?.parse().ok()?;
    it.next().is_none().then_some((uid, pid, ep))
}

/// The writer side: one page per endpoint, unlinked on drop.
#[derive(Debug)]
pub struct StatsPage {
    map: Mapping,
    path: CString,
    ncounters: usize,
    nfields: usize,
    publishes: u64,
}

impl StatsPage {
    /// Creates the page with its counter and per-peer field names. Sweeps
    /// pages of dead processes first.
    pub fn create(
        kind: &str,
        local: &str,
        counters: &[&str],
        peer_fields: &[&str],
    ) -> io::Result<StatsPage> {
        static NEXT_EP: AtomicU32 = AtomicU32::new(0);
        if counters.len() > MAX_COUNTERS || peer_fields.len() > MAX_PEER_FIELDS {
            return Err(io::Error::from(io::ErrorKind::InvalidInput));
        }
        let (uid, pid) = (segment::uid(), segment::pid());
        sweep();
        let mut tries = 0;
        let (map, path, ep) = loop {
            let ep = NEXT_EP.fetch_add(1, Ordering::Relaxed);
            let p = page_path(uid, pid, ep);
            let c = CString::new(p.into_os_string().into_encoded_bytes())
                .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
            match segment::create(&c, PAGE_LEN) {
                Ok(m) => break (m, c, ep),
                // A page left by an earlier process with our pid.
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && tries < 64 => tries += 1,
                Err(e) => return Err(e),
            }
        };
        let w = map.words();
        w[W_VERSION].store(VERSION, Ordering::Relaxed);
        w[W_PID].store(u64::from(pid), Ordering::Relaxed);
        w[W_EP].store(u64::from(ep), Ordering::Relaxed);
        w[W_NCOUNTERS].store(counters.len() as u64, Ordering::Relaxed);
        w[W_NFIELDS].store(peer_fields.len() as u64, Ordering::Relaxed);
        put_text(&w[W_KIND..W_KIND + 1], kind);
        put_text(&w[W_LOCAL..W_LOCAL + LOCAL_WORDS], local);
        for (i, n) in counters.iter().enumerate() {
            let at = W_NAMES + i * NAME_WORDS;
            put_text(&w[at..at + NAME_WORDS], n);
        }
        for (i, n) in peer_fields.iter().enumerate() {
            let at = W_FIELD_NAMES + i * NAME_WORDS;
            put_text(&w[at..at + NAME_WORDS], n);
        }
        // The magic last: a page without it is still being created.
        w[W_MAGIC].store(MAGIC, Ordering::Release);
        Ok(StatsPage {
            map,
            path,
            ncounters: counters.len(),
            nfields: peer_fields.len(),
            publishes: 0,
        })
    }

    /// The page's file.
    pub fn path(&self) -> PathBuf {
        PathBuf::from(self.path.to_string_lossy().into_owned())
    }

    /// Stores a consistent set of values (`values` in the order of the
    /// names given at creation) and peer rows (`peers_total` may exceed the
    /// rows kept).
    pub fn publish(&mut self, values: &[u64], rows: &[PeerRow], peers_total: usize) {
        let w = self.map.words();
        let seq = w[W_SEQ].load(Ordering::Relaxed);
        w[W_SEQ].store(seq.wrapping_add(1) | 1, Ordering::Relaxed);
        fence(Ordering::Release);
        for (slot, v) in w[W_VALUES..W_VALUES + self.ncounters].iter().zip(values) {
            slot.store(*v, Ordering::Relaxed);
        }
        let n = rows.len().min(MAX_PEERS);
        for (i, r) in rows.iter().take(n).enumerate() {
            let row = &w[W_ROWS + i * ROW_WORDS..W_ROWS + (i + 1) * ROW_WORDS];
            put_text(&row[..ADDR_WORDS], &r.addr);
            row[R_FI].store(r.fi_addr, Ordering::Relaxed);
            put_text(&row[R_PATH..R_PATH + 1], r.path);
            put_text(&row[R_STATE..R_STATE + 2], r.state);
            for (slot, v) in row[R_VALUES..R_VALUES + self.nfields].iter().zip(&r.values) {
                slot.store(*v, Ordering::Relaxed);
            }
        }
        self.publishes += 1;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        w[W_NROWS].store(n as u64, Ordering::Relaxed);
        w[W_NPEERS].store(peers_total as u64, Ordering::Relaxed);
        w[W_TIME].store(now, Ordering::Relaxed);
        w[W_PUBLISHES].store(self.publishes, Ordering::Relaxed);
        w[W_SEQ].store((seq | 1).wrapping_add(1), Ordering::Release);
    }
}

impl Drop for StatsPage {
    fn drop(&mut self) {
        let _ = segment::unlink(&self.path);
    }
}

/// Removes pages of this uid whose owner is gone: the pid no longer
/// exists, or the page is complete and nobody holds its lock (pid reused).
/// Returns how many.
pub fn sweep() -> usize {
    let (uid, me) = (segment::uid(), segment::pid());
    let Ok(dir) = std::fs::read_dir(segment::DIR) else {
        return 0;
    };
    let mut removed = 0;
    for ent in dir.flatten() {
        let name = ent.file_name();
        let Some((u, pid, _)) = name.to_str().and_then(parse_name) else {
            continue;
        };
        if u != uid || pid == me {
            continue;
        }
        let Ok(c) = CString::new(ent.path().into_os_string().into_encoded_bytes()) else {
            continue;
        };
        let dead = segment::process_gone(pid)
            || segment::open(&c, PAGE_LEN).is_ok_and(|m| {
                m.words()[W_MAGIC].load(Ordering::Acquire) == MAGIC && !segment::owner_alive(&m.fd)
            });
        if dead && segment::unlink(&c).is_ok() {
            removed += 1;
        }
    }
    removed
}

/// Pages of this uid, optionally of one pid, sorted by (pid, ep).
pub fn pages(pid: Option<u32>) -> Vec<PathBuf> {
    let uid = segment::uid();
    let mut found: Vec<(u32, u32, PathBuf)> = std::fs::read_dir(segment::DIR)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let (u, p, ep) = parse_name(e.file_name().to_str()?)?;
            (u == uid && pid.is_none_or(|x| x == p)).then(|| (p, ep, e.path()))
        })
        .collect();
    found.sort();
    found.into_iter().map(|(_, _, p)| p).collect()
}

/// One peer as read from a page.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerSnap {
    pub addr: String,
    pub fi_addr: u64,
    pub path: String,
    pub state: String,
    pub values: Vec<u64>,
}

/// A consistent copy of a page.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    pub pid: u32,
    pub ep: u32,
    pub kind: String,
    pub local: String,
    /// Wall-clock time of the last publish (ns since the epoch).
    pub updated_ns: u64,
    pub publishes: u64,
    /// The owner still holds the page's lock.
    pub alive: bool,
    pub counters: Vec<(String, u64)>,
    pub peer_fields: Vec<String>,
    pub peers: Vec<PeerSnap>,
    pub peers_total: u64,
}

impl Snapshot {
    /// A counter by name.
    pub fn get(&self, name: &str) -> Option<u64> {
        self.counters.iter().find(|(n, _)| n == name).map(|c| c.1)
    }

    /// A per-peer value by field name.
    pub fn peer_get(&self, peer: &PeerSnap, field: &str) -> Option<u64> {
        let i = self.peer_fields.iter().position(|f| f == field)?;
        peer.values.get(i).copied()
    }
}

/// Reads a page (retrying while the owner writes it).
pub fn read(path: &std::path::Path) -> io::Result<Snapshot> {
    let c = CString::new(path.as_os_str().as_encoded_bytes())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let map = segment::open(&c, PAGE_LEN)?;
    let alive = segment::owner_alive(&map.fd);
    let w = map.words();
    let bad = |m: &str| io::Error::new(io::ErrorKind::InvalidData, m.to_string());
    if w[W_MAGIC].load(Ordering::Acquire) != MAGIC {
        return Err(bad("not an srd stats page (or still being created)"));
    }
    if w[W_VERSION].load(Ordering::Relaxed) != VERSION {
        return Err(bad("stats page of another version"));
    }
    let mut copy = vec![0u64; PAGE_WORDS];
    for attempt in 0..10_000 {
        let s1 = w[W_SEQ].load(Ordering::Acquire);
        if s1 & 1 == 0 {
            for (d, s) in copy.iter_mut().zip(w.iter()) {
                *d = s.load(Ordering::Relaxed);
            }
            fence(Ordering::Acquire);
            if w[W_SEQ].load(Ordering::Relaxed) == s1 {
                return Ok(decode(&copy, alive));
            }
        }
        if attempt % 64 == 63 {
            std::thread::yield_now();
        }
    }
    Err(io::Error::new(
        io::ErrorKind::WouldBlock,
        "stats page kept changing",
    ))
}

fn decode(w: &[u64], alive: bool) -> Snapshot {
    let nc = (w[W_NCOUNTERS] as usize).min(MAX_COUNTERS);
    let nf = (w[W_NFIELDS] as usize).min(MAX_PEER_FIELDS);
    let nr = (w[W_NROWS] as usize).min(MAX_PEERS);
    let counters = (0..nc)
        .map(|i| {
            let at = W_NAMES + i * NAME_WORDS;
            (get_text(&w[at..at + NAME_WORDS]), w[W_VALUES + i])
        })
        .collect();
    let peer_fields = (0..nf)
        .map(|i| {
            let at = W_FIELD_NAMES + i * NAME_WORDS;
            get_text(&w[at..at + NAME_WORDS])
        })
        .collect();
    let peers = (0..nr)
        .map(|i| {
            let row = &w[W_ROWS + i * ROW_WORDS..W_ROWS + (i + 1) * ROW_WORDS];
            PeerSnap {
                addr: get_text(&row[..ADDR_WORDS]),
                fi_addr: row[R_FI],
                path: get_text(&row[R_PATH..R_PATH + 1]),
                state: get_text(&row[R_STATE..R_STATE + 2]),
                values: row[R_VALUES..R_VALUES + nf].to_vec(),
            }
        })
        .collect();
    Snapshot {
        pid: w[W_PID] as u32,
        ep: w[W_EP] as u32,
        kind: get_text(&w[W_KIND..W_KIND + 1]),
        local: get_text(&w[W_LOCAL..W_LOCAL + LOCAL_WORDS]),
        updated_ns: w[W_TIME],
        publishes: w[W_PUBLISHES],
        alive,
        counters,
        peer_fields,
        peers,
        peers_total: w[W_NPEERS],
    }
}

/// Counters whose names start with these go in the resource dump, not
/// the counter list.
const GAUGES: &[&str] = &[
    "peers",
    "qps",
    "ahs",
    "mrs",
    "cqs",
    "rx_posted",
    "in_flight",
    "rx_held",
    "tx_queued",
    "paused_peers",
];

/// Text for a terminal: counters (non-zero ones unless `all`), the peer
/// table, and with `dump` the resources (QPs, AHs, MRs, peers with path
/// and state).
pub fn render(s: &Snapshot, all: bool, dump: bool) -> String {
    let mut o = String::new();
    let age_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
        .saturating_sub(s.updated_ns)
        / 1_000_000;
    let _ = writeln!(
        o,
        "pid {} ep {} ({}) {}{}  updated {} ms ago, {} publishes",
        s.pid,
        s.ep,
        s.kind,
        s.local,
        if s.alive { "" } else { "  [owner gone]" },
        age_ms,
        s.publishes
    );
    let shown: Vec<&(String, u64)> = s
        .counters
        .iter()
        .filter(|(n, v)| (all || *v != 0) && !GAUGES.contains(&n.as_str()))
        .collect();
    for chunk in shown.chunks(3) {
        let line: Vec<String> = chunk
            .iter()
            .map(|(n, v)| format!("{n:>20} {v:<14}"))
            .collect();
        let _ = writeln!(o, "{}", line.join(" ").trim_end());
    }
    if dump {
        let g = |n| s.get(n).unwrap_or(0);
        let _ = writeln!(
            o,
            "resources: qps {} ahs {} mrs {} cqs {} peers {} rx buffers posted {} packets in flight {}; deferred packets held {}, packets queued for full rings {}, peers paused {}",
            g("qps"),
            g("ahs"),
            g("mrs"),
            g("cqs"),
            s.peers_total,
            g("rx_posted"),
            g("in_flight"),
            g("rx_held"),
            g("tx_queued"),
            g("paused_peers")
        );
    }
    if !s.peers.is_empty() {
        let cols: Vec<usize> = s
            .peer_fields
            .iter()
            .enumerate()
            .filter(|(i, _)| all || dump || s.peers.iter().any(|p| p.values[*i] != 0))
            .map(|(i, _)| i)
            .collect();
        let _ = write!(o, "{:>6} {:>4} {:>8}", "fi_addr", "path", "state");
        for &i in &cols {
            let _ = write!(o, " {:>12}", s.peer_fields[i]);
        }
        let _ = writeln!(o, "  address");
        for p in &s.peers {
            let fi = if p.fi_addr == NOT_IN_AV {
                "-".to_string()
            } else {
                p.fi_addr.to_string()
            };
            let _ = write!(o, "{fi:>6} {:>4} {:>8}", p.path, p.state);
            for &i in &cols {
                let _ = write!(o, " {:>12}", p.values[i]);
            }
            let _ = writeln!(o, "  {}", p.addr);
        }
        if s.peers_total > s.peers.len() as u64 {
            let _ = writeln!(
                o,
                "({} more peers not shown)",
                s.peers_total - s.peers.len() as u64
            );
        }
    }
    o
}

// ---------------------------------------------------------------- counting

/// What an RDM endpoint counts itself, per peer (the glue's view: RDM
/// datagrams over either path, and completed messages).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PeerCount {
    pub tx_pkts: u64,
    pub tx_bytes: u64,
    pub rx_pkts: u64,
    pub rx_bytes: u64,
    pub tx_msgs: u64,
    pub tx_msg_bytes: u64,
    pub rx_msgs: u64,
    pub rx_msg_bytes: u64,
}

/// Peers with their own counters; beyond, only the endpoint totals count.
const COUNTED_PEERS: usize = 1 << 16;

/// Per-peer fields of the page, in row order.
pub const PEER_FIELDS: &[&str] = &[
    "tx_pkts",
    "tx_bytes",
    "rx_pkts",
    "rx_bytes",
    "tx_msgs",
    "tx_msg_bytes",
    "rx_msgs",
    "rx_msg_bytes",
    "srd_tx_data",
    "srd_rx_data",
    "retransmits",
    "rnr_naks_tx",
    "rnr_naks_rx",
    "duplicates",
    "drops",
    "srtt_us",
    "rto_us",
    "cwnd",
    "in_flight",
];

/// The counters of one RDM endpoint that the lower layers do not keep:
/// plain integers, owned by the endpoint (under its lock).
#[derive(Debug, Default)]
pub struct Observer {
    /// Endpoint totals (all peers, known or not).
    pub total: PeerCount,
    pub peers: Vec<PeerCount>,
    /// Remote reads / writes served (FI_REMOTE_READ / FI_REMOTE_WRITE events).
    pub remote_reads: u64,
    pub remote_writes: u64,
    /// High-water marks.
    pub hw_rx_held: u64,
    pub hw_unexp_bytes: u64,
    pub hw_reorder_bytes: u64,
    pub hw_tx_ops: u64,
    pub hw_rx_ops: u64,
    pub hw_shm_pending: u64,
    /// Refused RMA accesses, shared with the MR lookup.
    pub target: std::sync::Arc<TargetCounters>,
    /// When the page was last written (endpoint clock, ns).
    pub last_publish: u64,
    /// The live page (None: FI_SRD_STATS_PAGE=0 or /dev/shm unusable).
    pub page: Option<StatsPage>,
    /// Once-per-sender drop warnings.
    pub once: crate::log::Once,
    /// Peer addresses as text, by peer index (filled when a peer is noted).
    pub addr_text: Vec<String>,
    /// Rows handed to the page, reused.
    pub rows: Vec<PeerRow>,
    /// The protocol's drop counters when a drop was last explained.
    pub rdm_seen: crate::rdm::Stats,
    /// Each peer's protocol state when last published (for Info logs).
    pub last_state: Vec<&'static str>,
    /// The domain, for its MR count.
    pub domain: Option<std::sync::Arc<super::fabric::Domain>>,
}

impl Observer {
    /// The reason of a protocol drop: the first drop counter that moved
    /// since the last call.
    pub fn rdm_drop_reason(&mut self, now: &crate::rdm::Stats) -> &'static str {
        let (a, b) = (&self.rdm_seen, now);
        let reason = if b.unknown_src > a.unknown_src {
            "not_in_av"
        } else if b.bad_version > a.bad_version {
            "bad_version"
        } else if b.unknown_type > a.unknown_type {
            "unknown_type"
        } else if b.malformed > a.malformed {
            "rdm_malformed"
        } else if b.unsupported > a.unsupported {
            "rdm_unsupported"
        } else {
            "rdm_stale"
        };
        self.rdm_seen = b.clone();
        reason
    }

    fn peer(&mut self, p: Option<u32>) -> Option<&mut PeerCount> {
        let i = p? as usize;
        if i >= COUNTED_PEERS {
            return None;
        }
        if self.peers.len() <= i {
            self.peers.resize(i + 1, PeerCount::default());
        }
        self.peers.get_mut(i)
    }

    /// An RDM datagram went to peer `p`.
    pub fn tx_pkt(&mut self, p: u32, len: usize) {
        self.total.tx_pkts += 1;
        self.total.tx_bytes += len as u64;
        if let Some(c) = self.peer(Some(p)) {
            c.tx_pkts += 1;
            c.tx_bytes += len as u64;
        }
    }

    /// An RDM datagram arrived (and was not deferred) from `p`, if known.
    pub fn rx_pkt(&mut self, p: Option<u32>, len: usize) {
        self.total.rx_pkts += 1;
        self.total.rx_bytes += len as u64;
        if let Some(c) = self.peer(p) {
            c.rx_pkts += 1;
            c.rx_bytes += len as u64;
        }
    }

    /// A send of `len` bytes to `p` was accepted.
    pub fn tx_msg(&mut self, p: u32, len: usize) {
        self.total.tx_msgs += 1;
        self.total.tx_msg_bytes += len as u64;
        if let Some(c) = self.peer(Some(p)) {
            c.tx_msgs += 1;
            c.tx_msg_bytes += len as u64;
        }
    }

    /// A receive completed successfully with `len` bytes from `p`.
    pub fn rx_msg(&mut self, p: Option<u32>, len: usize) {
        self.total.rx_msgs += 1;
        self.total.rx_msg_bytes += len as u64;
        if let Some(c) = self.peer(p) {
            c.rx_msgs += 1;
            c.rx_msg_bytes += len as u64;
        }
    }

    pub fn high_water(slot: &mut u64, v: usize) {
        *slot = (*slot).max(v as u64);
    }
}

/// Everything an RDM endpoint's counters come from.
#[derive(Default)]
pub struct Sources<'a> {
    pub obs: Option<&'a Observer>,
    pub dev: crate::srd::Stats,
    pub usage: crate::srd::Usage,
    pub udp: crate::io::udp::UdpStats,
    pub rdm: crate::rdm::Stats,
    pub shm: crate::io::shm::ShmStats,
    pub mrs: u64,
    pub rx_posted: u64,
    /// Deferred packets the inbox holds, packets waiting for room in
    /// peers' rings, peers whose sends are paused for a full link.
    pub rx_held: u64,
    pub tx_queued: u64,
    pub paused_peers: u64,
    pub inbox: crate::rdm::inbox::InboxStats,
    /// Zero-copy datagrams not sent: their send was over.
    pub zc_gone: u64,
}

/// Number of endpoint counters.
pub const RDM_COUNTER_COUNT: usize = 99;

/// The endpoint counters, names and values in page order. Drop reasons
/// are summed across layers where the same fault can show at either
/// (version, type); `drop_*` names one reason each.
pub fn rdm_counters(s: &Sources<'_>) -> [(&'static str, u64); RDM_COUNTER_COUNT] {
    let d = &s.dev;
    let r = &s.rdm;
    let default = Observer::default();
    let o = s.obs.unwrap_or(&default);
    let t = &o.target;
    let ld = |c: &AtomicU64| c.load(Ordering::Relaxed);
    [
        ("tx_pkts", o.total.tx_pkts),
        ("tx_bytes", o.total.tx_bytes),
        ("rx_pkts", o.total.rx_pkts),
        ("rx_bytes", o.total.rx_bytes),
        ("tx_msgs", o.total.tx_msgs),
        ("tx_msg_bytes", o.total.tx_msg_bytes),
        ("rx_msgs", o.total.rx_msgs),
        ("rx_msg_bytes", o.total.rx_msg_bytes),
        ("remote_reads", o.remote_reads),
        ("remote_writes", o.remote_writes),
        ("udp_tx_pkts", s.udp.tx_datagrams),
        ("udp_tx_bytes", s.udp.tx_bytes),
        ("udp_rx_pkts", s.udp.rx_datagrams),
        ("udp_rx_bytes", s.udp.rx_bytes),
        ("udp_send_calls", s.udp.send_syscalls),
        ("udp_recv_calls", s.udp.recv_syscalls),
        ("udp_eagain", s.udp.eagain),
        ("udp_gso_sends", s.udp.gso_sends),
        ("udp_gso_fallbacks", s.udp.gso_fallbacks),
        ("udp_errors", s.udp.io_errors),
        ("zc_pkts", r.zc_packets),
        ("zc_bytes", r.zc_bytes),
        ("zc_refs", u64::from(s.usage.ext_refs)),
        ("zc_gone", s.zc_gone),
        ("shm_tx_pkts", s.shm.sent),
        ("shm_tx_bytes", s.shm.sent_bytes),
        ("shm_rx_pkts", s.shm.received),
        ("shm_rx_bytes", s.shm.received_bytes),
        ("shm_full", s.shm.full),
        ("shm_abandoned", s.shm.abandoned),
        ("shm_fast_sends", r.fast_sends),
        ("fast_placed", r.fast_placed),
        ("fast_recvs", r.fast_recvs),
        ("srd_tx_data", d.tx_data),
        ("srd_rx_data", d.rx_data),
        ("acks_tx", d.tx_acks),
        ("acks_rx", d.rx_acks),
        ("naks_tx", d.tx_naks),
        ("naks_rx", d.rx_naks),
        ("retransmits", d.retransmits),
        ("fast_retransmits", d.fast_retransmits),
        ("tlp_probes", d.tlp_probes),
        ("rto_events", d.rto_events),
        ("rnr_naks_tx", d.rnr_naks_sent),
        ("rnr_naks_rx", d.rnr_naks_received),
        ("rnr_retry_exceeded", d.rnr_retry_exceeded),
        ("retry_exceeded", d.retry_exceeded),
        ("duplicates", d.duplicates),
        ("peer_resets", d.peer_resets),
        ("path_failures", d.path_failures),
        ("path_recoveries", d.path_recoveries),
        ("drop_bad_crc", d.drop_checksum),
        ("drop_bad_version", d.drop_bad_version + r.bad_version),
        ("drop_unknown_type", d.drop_unknown_type + r.unknown_type),
        ("drop_bad_length", d.drop_truncated + d.drop_malformed),
        ("drop_unknown_qp", d.drop_unknown_qp),
        ("drop_bad_qkey", d.drop_bad_qkey),
        ("drop_bad_state", d.drop_bad_state),
        ("drop_not_in_av", r.unknown_src),
        ("drop_peer_table_full", d.drop_unknown_peer),
        ("drop_stale_epoch", d.drop_stale_epoch),
        ("drop_out_of_window", d.drop_out_of_window),
        ("drop_bad_ack", d.drop_bad_ack),
        ("drop_ctrl_queue_full", d.drop_ctrl_queue_full),
        ("drop_rdm_malformed", r.malformed),
        ("drop_rdm_stale", r.stale),
        ("drop_rdm_unsupported", r.unsupported),
        ("drop_udp_oversize", s.udp.rx_truncated),
        (
            "drop_injected",
            s.udp.rx_dropped_injected + s.udp.tx_dropped_injected,
        ),
        ("cma_copies", r.cma_copies),
        ("cma_bytes", r.cma_bytes),
        ("cma_fallbacks", r.cma_fallbacks),
        ("cma_errors", r.cma_errors),
        ("rma_refused", r.rma_refused),
        ("rma_bad_key", ld(&t.bad_key)),
        ("rma_bad_range", ld(&t.bad_range)),
        ("rma_bad_access", ld(&t.bad_access)),
        ("deferred", r.deferred),
        ("held", s.inbox.held),
        ("hold_overruns", s.inbox.overruns),
        ("send_failures", r.send_failures),
        ("timeouts", r.timeouts),
        ("hw_tx_bufs", u64::from(s.usage.tx_buffers_high_water)),
        ("hw_rx_held", o.hw_rx_held),
        ("hw_unexp_bytes", o.hw_unexp_bytes),
        ("hw_reorder_bytes", o.hw_reorder_bytes),
        ("hw_tx_ops", o.hw_tx_ops),
        ("hw_rx_ops", o.hw_rx_ops),
        ("hw_shm_pending", o.hw_shm_pending),
        ("peers", u64::from(s.usage.peers)),
        ("qps", u64::from(s.usage.qps)),
        ("ahs", u64::from(s.usage.ahs)),
        ("mrs", s.mrs),
        ("cqs", u64::from(s.usage.cqs)),
        ("rx_posted", s.rx_posted),
        ("in_flight", u64::from(s.usage.in_flight)),
        ("rx_held", s.rx_held),
        ("tx_queued", s.tx_queued),
        ("paused_peers", s.paused_peers),
    ]
}

/// One line `name=value …` of the non-zero counters (FI_SRD_STATS=1).
pub fn counters_line(c: &[(&'static str, u64)]) -> String {
    let mut o = String::new();
    for (n, v) in c.iter().filter(|c| c.1 != 0) {
        let _ = write!(o, "{}{n}={v}", if o.is_empty() { "" } else { " " });
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_round_trip_and_unlink() {
        let mut p = StatsPage::create("rdm", "local-addr", &["a", "bb"], &["x", "y"]).unwrap();
        let path = p.path();
        assert!(path.exists());
        let rows = vec![PeerRow {
            addr: "peer-one".into(),
            fi_addr: 3,
            path: "udp",
            state: "up",
            values: {
                let mut v = [0; MAX_PEER_FIELDS];
                v[1] = 9;
                v
            },
        }];
        p.publish(&[5, 7], &rows, 1);
        let s = read(&path).unwrap();
        assert_eq!(s.kind, "rdm");
        assert_eq!(s.local, "local-addr");
        assert_eq!(s.get("a"), Some(5));
        assert_eq!(s.get("bb"), Some(7));
        assert_eq!(s.peers.len(), 1);
        assert_eq!(s.peers[0].addr, "peer-one");
        assert_eq!(s.peer_get(&s.peers[0], "y"), Some(9));
        assert_eq!(s.peers[0].state, "up");
        assert!(s.alive);
        assert!(pages(Some(segment::pid())).contains(&path));
        let text = render(&s, false, true);
        assert!(text.contains("bb") && text.contains("peer-one"), "{text}");
        drop(p);
        assert!(!path.exists());
    }

    #[test]
    fn long_text_is_cut_with_a_nul() {
        let mut p = StatsPage::create("rdm", &"z".repeat(400), &["n"], &[]).unwrap();
        p.publish(&[1], &[], 0);
        let s = read(&p.path()).unwrap();
        assert_eq!(s.local.len(), LOCAL_WORDS * 8 - 1);
    }

    #[test]
    fn counter_names_are_unique_and_fit() {
        let c = rdm_counters(&Sources::default());
        assert!(c.len() <= MAX_COUNTERS && PEER_FIELDS.len() <= MAX_PEER_FIELDS);
        for (i, (n, _)) in c.iter().enumerate() {
            assert!(n.len() < NAME_WORDS * 8, "{n}");
            assert!(c[i + 1..].iter().all(|o| o.0 != *n), "{n} twice");
        }
        for g in GAUGES {
            assert!(c.iter().any(|x| x.0 == *g), "{g}");
        }
    }

    #[test]
    fn names_parse() {
        assert_eq!(parse_name("srd-stats-0-12-3"), Some((0, 12, 3)));
        assert_eq!(parse_name("srd-0-12-0000000000000003"), None);
        assert_eq!(parse_name("srd-stats-0-12-3-4"), None);
    }
}
