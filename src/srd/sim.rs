//! A deterministic, seeded network simulator for SRD devices.
//!
//! `Sim` owns N devices and a virtual clock. Datagrams a device emits go into
//! an event queue ordered by delivery time; on the way each may be lost,
//! duplicated, corrupted (one bit flipped), delayed with jitter (which
//! reorders) or swallowed by a black-holed path. Same seed, same run: there
//! is no wall clock and no global randomness. Device `i` has address
//! `10.0.0.(i+1)`, port `BASE_PORT`; its path `p` sends from `BASE_PORT + p`.

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
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
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
}

#[derive(Debug)]
struct InTransit {
    to: usize,
    to_path: u8,
    src: SocketAddrV4,
    len: usize,
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

#[derive(Debug)]
pub struct Sim {
    pub now: u64,
    pub devices: Vec<Device>,
    pub net: NetConfig,
    pub stats: NetStats,
    rng: Rng,
    queue: BinaryHeap<Reverse<(u64, u64, usize)>>,
    slots: Vec<(InTransit, Vec<u8>)>,
    free: Vec<usize>,
    seq: u64,
    out: Vec<u8>,
    black_holes: Vec<BlackHole>,
    /// Devices currently unplugged: nothing in or out.
    down: Vec<bool>,
    blackholed_from: Vec<u64>,
}

/// The simulated address of device `i`.
pub fn device_addr(i: usize) -> DeviceAddr {
    let last = u8::try_from(i + 1).unwrap_or(255);
    DeviceAddr::new(Ipv4Addr::new(10, 0, 0, last), BASE_PORT)
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
        })
    }

    pub fn add_black_hole(&mut self, b: BlackHole) {
        self.black_holes.push(b);
    }

    /// Unplugs (or replugs) a device: while down it neither sends nor receives.
    pub fn set_down(&mut self, device: usize, down: bool) {
        if let Some(d) = self.down.get_mut(device) {
            *d = down;
        }
    }

    /// Datagrams from `device` swallowed by black holes.
    pub fn blackholed_from(&self, device: usize) -> u64 {
        self.blackholed_from.get(device).copied().unwrap_or(0)
    }

    /// Datagrams in transit.
    pub fn in_transit(&self) -> usize {
        self.queue.len()
    }

    fn locate(&self, dst: SocketAddrV4) -> Option<(usize, u8)> {
        let o = dst.ip().octets();
        if o[..3] != [10, 0, 0] {
            return None;
        }
        let i = usize::from(o[3]).checked_sub(1)?;
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
        self.seq += 1;
        self.queue.push(Reverse((at, self.seq, slot)));
    }

    /// Drains every device's `poll_transmit` into the network.
    pub fn flush(&mut self) {
        let mut out = std::mem::take(&mut self.out);
        for i in 0..self.devices.len() {
            while let Some(t) = self
                .devices
                .get_mut(i)
                .and_then(|d| d.poll_transmit(self.now, &mut out))
            {
                let len = t.len.min(out.len());
                self.route(i, t.path, t.dst, out.get_mut(..len).unwrap_or(&mut []));
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
            let jitter = if self.net.jitter > 0 {
                self.rng.below(self.net.jitter)
            } else {
                0
            };
            let at = self.now + self.net.delay + jitter;
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
            self.enqueue(
                at,
                InTransit {
                    to,
                    to_path,
                    src,
                    len,
                },
                data,
            );
            // Undo the flip so a duplicate is an intact copy.
            if let Some((byte, bit)) = flip
                && let Some(b) = data.get_mut(byte)
            {
                *b ^= 1 << bit;
            }
        }
    }

    /// The next time anything happens: a delivery or a device timer.
    pub fn next_event(&self) -> Option<u64> {
        let net = self.queue.peek().map(|Reverse((t, _, _))| *t);
        let timers = self.devices.iter().filter_map(|d| d.poll_timeout()).min();
        [net, timers].into_iter().flatten().min()
    }

    /// Flushes, advances the clock to the next event (never past `limit`),
    /// delivers what is due and runs due timers, then flushes again. Returns
    /// false when nothing is scheduled before `limit`.
    pub fn step(&mut self, limit: u64) -> bool {
        self.flush();
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
        }
        let now = self.now;
        for d in &mut self.devices {
            if d.poll_timeout().is_some_and(|t| t <= now) {
                d.handle_timeout(now);
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
