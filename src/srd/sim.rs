//! A deterministic, seeded network simulator for SRD devices.
//!
//! `Sim` owns N devices and a virtual clock. Datagrams a device emits go into
//! an event queue ordered by delivery time; on the way each may be lost,
//! duplicated, corrupted (one bit flipped), delayed with jitter (which
//! reorders) or swallowed by a black-holed path. Same seed, same run: there
//! is no wall clock and no global randomness. Device `i` has address
//! `10.0.h.l` with `h·256 + l = i + 1` (so `10.0.0.(i+1)` below 255 devices),
//! port `BASE_PORT`; its path `p` sends from `BASE_PORT + p`.
//!
//! By default the network has infinite capacity: every datagram takes
//! `delay + jitter`. `Sim::set_links` turns it into a switched network with
//! a shared bottleneck per receiver (`LinkConfig`): link rate, a bounded
//! switch queue with tail drop, and send-side back-pressure at each NIC, so
//! incast and all-to-all congest for real.
//!
//! `Sim::set_tracked(true)` makes a step cost O(devices touched) instead of
//! O(devices): only devices that received, timed out or were `touch`ed are
//! flushed, and timers come from a heap. The caller then reaches devices
//! through `dev(i)` (or calls `touch(i)` after using `devices[i]`).

use super::{Device, DeviceAddr, DeviceConfig, SrdError};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::{Ipv4Addr, SocketAddrV4};

/// UDP port of every simulated device's path 0.
pub const BASE_PORT: u16 = 7000;

/// splitmix64: tiny, fast, good enough to drive fault injection.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        super::mix64(self.0)
    }
    /// Uniform in `0..n` (n > 0), by multiply-shift.
    pub fn below(&mut self, n: u64) -> u64 {
        let wide = u128::from(self.next_u64()) * u128::from(n);
        u64::try_from(wide >> 64).unwrap_or(0)
    }
    /// True with probability `ppm` parts per million.
    pub fn chance_ppm(&mut self, ppm: u32) -> bool {
        ppm > 0 && self.below(1_000_000) < u64::from(ppm)
    }
}

/// Fault model. Probabilities are in parts per million.
#[derive(Debug, Clone)]
pub struct NetConfig {
    pub seed: u64,
    pub loss_ppm: u32,
    pub dup_ppm: u32,
    pub corrupt_ppm: u32,
    /// One-way delay and uniform jitter on top (jitter reorders).
    pub delay: u64,
    pub jitter: u64,
}

impl Default for NetConfig {
    fn default() -> Self {
        NetConfig {
            seed: 1,
            loss_ppm: 0,
            dup_ppm: 0,
            corrupt_ppm: 0,
            delay: 10_000,
            jitter: 5_000,
        }
    }
}

/// What the network did, for assertions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NetStats {
    pub sent: u64,
    pub delivered: u64,
    pub lost: u64,
    pub duplicated: u64,
    pub corrupted: u64,
    pub blackholed: u64,
    pub undeliverable: u64,
    /// Datagrams a full switch queue dropped (links only).
    pub queue_drops: u64,
    /// Largest switch-queue backlog any port reached, in bytes (links only).
    pub max_queue_bytes: u64,
}

/// A switched network: every device hangs off one switch by a full-duplex
/// link of `rate` bytes per second.
///
/// A datagram leaves its device's NIC after those queued before it (one
/// serialisation time each), crosses the switch, waits in the FIFO of the
/// output port toward its destination and is serialised again on that
/// link, then arrives `delay + jitter` later. The output port holds at most
/// `queue_bytes`; an arrival that does not fit is dropped (tail drop), as a
/// shallow-buffered datacenter switch does. Many senders toward one
/// receiver therefore share that receiver's link rate: the bottleneck.
///
/// The NIC holds at most `nic_bytes` not yet serialised; past that the
/// simulator stops draining the device's `poll_transmit` until it drains
/// (a full socket send buffer), so a device cannot queue unboundedly
/// ahead of its own link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkConfig {
    /// Bytes per second of every link.
    pub rate: u64,
    /// Switch buffer per output port, in bytes.
    pub queue_bytes: u64,
    /// NIC send queue per device, in bytes.
    pub nic_bytes: u64,
}

impl LinkConfig {
    /// Nanoseconds to serialise `len` bytes (rounded up).
    pub fn ser_ns(&self, len: u64) -> u64 {
        let rate = u128::from(self.rate.max(1));
        let ns = (u128::from(len) * 1_000_000_000).div_ceil(rate);
        u64::try_from(ns).unwrap_or(u64::MAX)
    }
}

/// What one switch output port (toward one device) did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PortStats {
    /// Datagrams and bytes forwarded onto the link.
    pub forwarded: u64,
    pub forwarded_bytes: u64,
    /// Datagrams dropped because the queue was full.
    pub drops: u64,
    /// Largest backlog seen, in bytes.
    pub max_queue_bytes: u64,
}

/// Where a datagram in transit is headed next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Arriving at the switch (links only): queue or drop at the port.
    Switch,
    /// Arriving at the destination device.
    Deliver,
}

#[derive(Debug)]
struct InTransit {
    to: usize,
    to_path: u8,
    src: SocketAddrV4,
    len: usize,
    stage: Stage,
}

/// A black hole: datagrams sent from `device`'s `path` vanish from `from`
/// on, until `until` (or forever).
#[derive(Debug, Clone, Copy)]
pub struct BlackHole {
    pub device: usize,
    pub path: u8,
    pub from: u64,
    pub until: u64,
}

/// Per-device state of the link model.
#[derive(Debug, Clone, Copy, Default)]
struct Link {
    /// When the NIC finishes serialising what it holds.
    nic_free: u64,
    /// A wake-up is scheduled for when the NIC has room again.
    nic_wait: bool,
    /// When the switch port toward this device finishes its backlog.
    port_free: u64,
    port: PortStats,
}

type Heap = BinaryHeap<Reverse<(u64, u64, usize)>>;

#[derive(Debug)]
pub struct Sim {
    pub now: u64,
    pub devices: Vec<Device>,
    pub net: NetConfig,
    pub stats: NetStats,
    rng: Rng,
    queue: Heap,
    slots: Vec<(InTransit, Vec<u8>)>,
    free: Vec<usize>,
    seq: u64,
    out: Vec<u8>,
    black_holes: Vec<BlackHole>,
    /// Devices currently unplugged: nothing in or out.
    down: Vec<bool>,
    blackholed_from: Vec<u64>,
    link: Option<LinkConfig>,
    links: Vec<Link>,
    /// NIC wake-ups: (time, device).
    nic_wake: BinaryHeap<Reverse<(u64, usize)>>,
    tracked: bool,
    /// Devices to flush and re-read the timer of (tracked mode).
    dirty: Vec<usize>,
    is_dirty: Vec<bool>,
    /// Device timers (tracked mode): heap of (time, device), validated
    /// against `timer_at` (stale entries are skipped).
    timers: BinaryHeap<Reverse<(u64, usize)>>,
    timer_at: Vec<Option<u64>>,
    /// Devices that received a datagram or ran a timer since the caller
    /// last asked (`take_active`): those whose CQs may have new entries.
    active: Vec<usize>,
    is_active: Vec<bool>,
}

/// The simulated address of device `i` (up to 65 534 devices).
pub fn device_addr(i: usize) -> DeviceAddr {
    let n = u16::try_from(i + 1).unwrap_or(u16::MAX);
    let [hi, lo] = n.to_be_bytes();
    DeviceAddr::new(Ipv4Addr::new(10, 0, hi, lo), BASE_PORT)
}

impl Sim {
    /// Builds `configs.len()` devices; each config's `addr` is overwritten
    /// with `device_addr(i)`.
    pub fn new(net: NetConfig, configs: Vec<DeviceConfig>) -> Result<Sim, SrdError> {
        let mut devices = Vec::with_capacity(configs.len());
        let mut max = 0;
        for (i, mut c) in configs.into_iter().enumerate() {
            c.addr = device_addr(i);
            let d = Device::new(c)?;
            max = max.max(d.max_datagram());
            devices.push(d);
        }
        let n = devices.len();
        Ok(Sim {
            now: 0,
            devices,
            rng: Rng::new(net.seed),
            net,
            stats: NetStats::default(),
            queue: BinaryHeap::new(),
            slots: Vec::new(),
            free: Vec::new(),
            seq: 0,
            out: vec![0; max],
            black_holes: Vec::new(),
            down: vec![false; n],
            blackholed_from: vec![0; n],
            link: None,
            links: vec![Link::default(); n],
            nic_wake: BinaryHeap::new(),
            tracked: false,
            dirty: Vec::new(),
            is_dirty: vec![false; n],
            timers: BinaryHeap::new(),
            timer_at: vec![None; n],
            active: Vec::new(),
            is_active: vec![false; n],
        })
    }

    /// Switches the link model on (`Some`) or off (`None`, the default:
    /// infinite capacity).
    pub fn set_links(&mut self, link: Option<LinkConfig>) {
        self.link = link;
    }

    pub fn links(&self) -> Option<LinkConfig> {
        self.link
    }

    /// What the switch port toward `device` did (links only).
    pub fn port_stats(&self, device: usize) -> PortStats {
        self.links.get(device).map(|l| l.port).unwrap_or_default()
    }

    /// Tracked mode: steps touch only the devices that have work (see the
    /// module docs). Every device is marked to be looked at once.
    pub fn set_tracked(&mut self, on: bool) {
        self.tracked = on;
        for i in 0..self.devices.len() {
            self.touch(i);
        }
    }

    /// Marks device `i` as changed from outside (posted sends or receives,
    /// modified QPs): the next step flushes it and re-reads its timer.
    pub fn touch(&mut self, i: usize) {
        if let Some(d) = self.is_dirty.get_mut(i)
            && !*d
        {
            *d = true;
            self.dirty.push(i);
        }
    }

    fn mark_active(&mut self, i: usize) {
        if let Some(a) = self.is_active.get_mut(i)
            && !*a
        {
            *a = true;
            self.active.push(i);
        }
    }

    /// Moves into `out` the devices that received a datagram or ran a timer
    /// since the last call (the only ones whose CQs can have grown).
    pub fn take_active(&mut self, out: &mut Vec<usize>) {
        for &i in &self.active {
            if let Some(a) = self.is_active.get_mut(i) {
                *a = false;
            }
        }
        out.append(&mut self.active);
    }

    /// Device `i`, marked as touched.
    pub fn dev(&mut self, i: usize) -> &mut Device {
        self.touch(i);
        &mut self.devices[i]
    }

    pub fn add_black_hole(&mut self, b: BlackHole) {
        self.black_holes.push(b);
    }

    /// Unplugs (or replugs) a device: while down it neither sends nor receives.
    pub fn set_down(&mut self, device: usize, down: bool) {
        if let Some(d) = self.down.get_mut(device) {
            *d = down;
        }
        self.touch(device);
    }

    /// Datagrams from `device` swallowed by black holes.
    pub fn blackholed_from(&self, device: usize) -> u64 {
        self.blackholed_from.get(device).copied().unwrap_or(0)
    }

    fn locate(&self, dst: SocketAddrV4) -> Option<(usize, u8)> {
        let o = dst.ip().octets();
        if o[..2] != [10, 0] {
            return None;
        }
        let n = usize::from(u16::from_be_bytes([o[2], o[3]]));
        let i = n.checked_sub(1)?;
        let path = u8::try_from(dst.port().checked_sub(BASE_PORT)?).ok()?;
        (i < self.devices.len()).then_some((i, path))
    }

    fn blackholed(&self, dev: usize, path: u8) -> bool {
        self.black_holes
            .iter()
            .any(|b| b.device == dev && b.path == path && self.now >= b.from && self.now < b.until)
    }

    fn enqueue(&mut self, at: u64, t: InTransit, data: &[u8]) {
        let slot = match self.free.pop() {
            Some(s) => s,
            None => {
                self.slots.push((
                    InTransit {
                        to: 0,
                        to_path: 0,
                        src: SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0),
                        len: 0,
                        stage: Stage::Deliver,
                    },
                    Vec::new(),
                ));
                self.slots.len() - 1
            }
        };
        if let Some((meta, buf)) = self.slots.get_mut(slot) {
            *meta = t;
            buf.clear();
            buf.extend_from_slice(data);
        }
        self.schedule(at, slot);
    }

    fn schedule(&mut self, at: u64, slot: usize) {
        self.seq += 1;
        self.queue.push(Reverse((at, self.seq, slot)));
    }

    /// Has device `i`'s NIC room for another datagram now?
    fn nic_room(&self, i: usize) -> bool {
        let Some(l) = self.link else { return true };
        let free = self.links.get(i).map_or(0, |x| x.nic_free);
        free <= self.now.saturating_add(l.ser_ns(l.nic_bytes))
    }

    /// Drains one device's `poll_transmit` into the network (as far as its
    /// NIC takes).
    fn flush_one(&mut self, i: usize, out: &mut [u8]) {
        loop {
            if !self.nic_room(i) {
                if let (Some(l), Some(x)) = (self.link, self.links.get_mut(i))
                    && !x.nic_wait
                {
                    x.nic_wait = true;
                    let at = x.nic_free.saturating_sub(l.ser_ns(l.nic_bytes));
                    self.nic_wake.push(Reverse((at.max(self.now + 1), i)));
                }
                return;
            }
            let Some(t) = self
                .devices
                .get_mut(i)
                .and_then(|d| d.poll_transmit(self.now, out))
            else {
                return;
            };
            let len = t.len.min(out.len());
            self.route(i, t.path, t.dst, out.get_mut(..len).unwrap_or(&mut []));
        }
    }

    /// Drains every device's `poll_transmit` into the network (tracked mode:
    /// only the devices touched since the last flush) and re-reads the
    /// timers of what it flushed.
    pub fn flush(&mut self) {
        let mut out = std::mem::take(&mut self.out);
        if self.tracked {
            let mut dirty = std::mem::take(&mut self.dirty);
            for &i in &dirty {
                self.flush_one(i, &mut out);
            }
            for &i in &dirty {
                if let Some(d) = self.is_dirty.get_mut(i) {
                    *d = false;
                }
                let t = self.devices.get(i).and_then(|d| d.poll_timeout());
                if let Some(slot) = self.timer_at.get_mut(i)
                    && *slot != t
                {
                    *slot = t;
                    if let Some(t) = t {
                        self.timers.push(Reverse((t, i)));
                    }
                }
            }
            dirty.clear();
            // Flushing touched nothing else, but keep what arrived meanwhile.
            dirty.append(&mut self.dirty);
            self.dirty = dirty;
        } else {
            self.dirty.clear();
            self.is_dirty.fill(false);
            for i in 0..self.devices.len() {
                self.flush_one(i, &mut out);
            }
        }
        self.out = out;
    }

    /// Applies the fault model to one datagram and schedules its delivery.
    fn route(&mut self, from: usize, path: u8, dst: SocketAddrV4, data: &mut [u8]) {
        if self.down.get(from).copied().unwrap_or(false) {
            return;
        }
        self.stats.sent += 1;
        // The NIC serialises it whatever becomes of it downstream.
        let mut depart = self.now;
        if let (Some(l), Some(x)) = (self.link, self.links.get_mut(from)) {
            let len = u64::try_from(data.len()).unwrap_or(u64::MAX);
            x.nic_free = x.nic_free.max(self.now).saturating_add(l.ser_ns(len));
            depart = x.nic_free;
        }
        if self.blackholed(from, path) {
            self.stats.blackholed += 1;
            if let Some(c) = self.blackholed_from.get_mut(from) {
                *c += 1;
            }
            return;
        }
        if self.rng.chance_ppm(self.net.loss_ppm) {
            self.stats.lost += 1;
            return;
        }
        let Some((to, to_path)) = self.locate(dst) else {
            self.stats.undeliverable += 1;
            return;
        };
        let src = SocketAddrV4::new(device_addr(from).ip, BASE_PORT + u16::from(path));
        let copies = if self.rng.chance_ppm(self.net.dup_ppm) {
            2
        } else {
            1
        };
        self.stats.duplicated += copies - 1;
        let len = data.len();
        for _ in 0..copies {
            // Same draw order as without links: jitter, then corruption.
            let (at, stage) = if self.link.is_some() {
                (depart, Stage::Switch)
            } else {
                (self.now + self.net.delay + self.jitter(), Stage::Deliver)
            };
            let corrupt = len > 0 && self.rng.chance_ppm(self.net.corrupt_ppm);
            let flip = if corrupt {
                self.stats.corrupted += 1;
                let byte = self.rng.below(u64::try_from(len).unwrap_or(1));
                Some((usize::try_from(byte).unwrap_or(0), self.rng.below(8)))
            } else {
                None
            };
            if let Some((byte, bit)) = flip
                && let Some(b) = data.get_mut(byte)
            {
                *b ^= 1 << bit;
            }
            let t = InTransit {
                to,
                to_path,
                src,
                len,
                stage,
            };
            self.enqueue(at, t, data);
            // Undo the flip so a duplicate is an intact copy.
            if let Some((byte, bit)) = flip
                && let Some(b) = data.get_mut(byte)
            {
                *b ^= 1 << bit;
            }
        }
    }

    fn jitter(&mut self) -> u64 {
        if self.net.jitter > 0 {
            self.rng.below(self.net.jitter)
        } else {
            0
        }
    }

    /// A datagram reaches the switch port toward its destination: queue it
    /// behind the port's backlog, or drop it if the queue is full.
    fn at_switch(&mut self, slot: usize) {
        let Some(l) = self.link else { return };
        let Some((meta, _)) = self.slots.get(slot) else {
            return;
        };
        let (to, len) = (meta.to, u64::try_from(meta.len).unwrap_or(u64::MAX));
        let now = self.now;
        let Some(x) = self.links.get_mut(to) else {
            self.free.push(slot);
            return;
        };
        // Bytes still queued ahead of it (those not yet serialised).
        let backlog_ns = x.port_free.saturating_sub(now);
        let backlog = u64::try_from(u128::from(backlog_ns) * u128::from(l.rate) / 1_000_000_000)
            .unwrap_or(u64::MAX);
        if backlog.saturating_add(len) > l.queue_bytes {
            x.port.drops += 1;
            self.stats.queue_drops += 1;
            self.free.push(slot);
            return;
        }
        x.port.max_queue_bytes = x.port.max_queue_bytes.max(backlog + len);
        self.stats.max_queue_bytes = self.stats.max_queue_bytes.max(backlog + len);
        x.port_free = x.port_free.max(now).saturating_add(l.ser_ns(len));
        x.port.forwarded += 1;
        x.port.forwarded_bytes += len;
        let at = x.port_free + self.net.delay + self.jitter();
        if let Some((meta, _)) = self.slots.get_mut(slot) {
            meta.stage = Stage::Deliver;
        }
        self.schedule(at, slot);
    }

    /// Drops stale entries off the top of the timer heap.
    fn prune_timers(&mut self) {
        while let Some(&Reverse((t, i))) = self.timers.peek() {
            if self.timer_at.get(i).copied().flatten() == Some(t) {
                break;
            }
            self.timers.pop();
        }
    }

    /// The next time anything happens: a delivery, a NIC with room again
    /// or a device timer.
    pub fn next_event(&self) -> Option<u64> {
        let net = self.queue.peek().map(|Reverse((t, _, _))| *t);
        let nic = self.nic_wake.peek().map(|Reverse((t, _))| *t);
        let timers = if self.tracked {
            // May be a stale (early) entry: a harmless extra step.
            self.timers.peek().map(|Reverse((t, _))| *t)
        } else {
            self.devices.iter().filter_map(|d| d.poll_timeout()).min()
        };
        [net, nic, timers].into_iter().flatten().min()
    }

    /// Flushes, advances the clock to the next event (never past `limit`),
    /// delivers what is due and runs due timers, then flushes again. Returns
    /// false when nothing is scheduled before `limit`.
    pub fn step(&mut self, limit: u64) -> bool {
        self.flush();
        self.prune_timers();
        let Some(t) = self.next_event() else {
            return false;
        };
        if t > limit {
            self.now = self.now.max(limit);
            return false;
        }
        self.now = self.now.max(t);
        while let Some(&Reverse((at, _, slot))) = self.queue.peek() {
            if at > self.now {
                break;
            }
            self.queue.pop();
            let stage = self.slots.get(slot).map(|(m, _)| m.stage);
            if stage == Some(Stage::Switch) {
                self.at_switch(slot);
                continue;
            }
            self.free.push(slot);
            let Some((meta, data)) = self.slots.get(slot) else {
                continue;
            };
            let (to, to_path, src, len) = (meta.to, meta.to_path, meta.src, meta.len);
            if self.down.get(to).copied().unwrap_or(false) {
                self.stats.lost += 1;
                continue;
            }
            self.stats.delivered += 1;
            if let Some(dev) = self.devices.get_mut(to) {
                dev.handle_datagram(self.now, to_path, src, data.get(..len).unwrap_or(&[]));
            }
            self.touch(to);
            self.mark_active(to);
        }
        while let Some(&Reverse((at, i))) = self.nic_wake.peek() {
            if at > self.now {
                break;
            }
            self.nic_wake.pop();
            if let Some(x) = self.links.get_mut(i) {
                x.nic_wait = false;
            }
            self.touch(i);
        }
        let now = self.now;
        if self.tracked {
            while let Some(&Reverse((at, i))) = self.timers.peek() {
                if at > now {
                    break;
                }
                self.timers.pop();
                if self.timer_at.get(i).copied().flatten() != Some(at) {
                    continue;
                }
                if let Some(slot) = self.timer_at.get_mut(i) {
                    *slot = None;
                }
                if let Some(d) = self.devices.get_mut(i) {
                    d.handle_timeout(now);
                }
                self.touch(i);
                self.mark_active(i);
            }
        } else {
            for i in 0..self.devices.len() {
                if let Some(d) = self.devices.get_mut(i)
                    && d.poll_timeout().is_some_and(|t| t <= now)
                {
                    d.handle_timeout(now);
                    self.mark_active(i);
                }
            }
        }
        self.flush();
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rng_is_deterministic_and_roughly_uniform() {
        let mut a = Rng::new(42);
        let mut b = Rng::new(42);
        for _ in 0..100 {
            assert_eq!(a.next_u64(), b.next_u64());
        }
        let hits = (0..100_000).filter(|_| a.chance_ppm(300_000)).count();
        assert!((28_000..32_000).contains(&hits), "{hits}");
    }
}
