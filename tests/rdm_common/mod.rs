//! In-process harness for `rdm::Endpoint`s: a seeded reliable-unordered
//! datagram network (every datagram delivered exactly once, in random
//! order, some delayed), virtual time, and a glue that behaves like the fi
//! layer will: it maps senders to PeerIdx, holds deferred packets and
//! stops taking datagrams (RNR) when it holds `rx_depth` of them.
#![allow(dead_code)]

use srd_fi::ffi::iov::UserIov;
use srd_fi::rdm::{Completion, Config, Endpoint, PacketOutcome, PeerIdx, TxError};
use std::collections::{HashMap, HashSet, VecDeque};

pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }
    pub fn next(&mut self) -> u64 {
        // xorshift64*
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next() % n }
    }
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

struct Dgram {
    from: usize,
    /// Index of the destination endpoint; `None`: an address nobody owns.
    to: Option<usize>,
    bytes: Vec<u8>,
    token: u64,
    not_before: u64,
}

pub struct Net {
    pub eps: Vec<Endpoint>,
    pub now: u64,
    pub rng: Rng,
    flight: Vec<Dgram>,
    /// Packets each glue holds after `Deferred`.
    held: Vec<VecDeque<(Option<PeerIdx>, Vec<u8>)>>,
    /// What each endpoint's transport can map: sender endpoint → PeerIdx.
    src_map: Vec<HashMap<usize, PeerIdx>>,
    /// Datagrams to these endpoints fail (transport gives up).
    pub fail_to: HashSet<usize>,
    /// Receive buffers a glue holds at most before RNR.
    pub rx_depth: usize,
    /// Delay some datagrams by up to this many ns.
    pub max_delay: u64,
    pub cqs: Vec<Vec<Completion>>,
    pub rnr_events: u64,
    pub mtu: usize,
}

pub fn addr(i: usize) -> Vec<u8> {
    format!("endpoint-{i}").into_bytes()
}

pub fn cfg(i: usize) -> Config {
    Config {
        local_addr: addr(i),
        ..Config::default()
    }
}

impl Net {
    /// `n` endpoints, each with every other in its AV.
    pub fn new(n: usize, seed: u64, mk: impl Fn(usize) -> Config) -> Net {
        let mut net = Net::without_av(n, seed, mk);
        for i in 0..n {
            for j in 0..n {
                if i != j {
                    net.av_insert(i, j);
                }
            }
        }
        net
    }

    /// `n` endpoints with empty AVs.
    pub fn without_av(n: usize, seed: u64, mk: impl Fn(usize) -> Config) -> Net {
        let eps: Vec<Endpoint> = (0..n).map(|i| Endpoint::new(mk(i))).collect();
        let mtu = eps.first().map_or(8192, |e| e.config().mtu);
        Net {
            eps,
            now: 1_000,
            rng: Rng::new(seed),
            flight: Vec::new(),
            held: (0..n).map(|_| VecDeque::new()).collect(),
            src_map: (0..n).map(|_| HashMap::new()).collect(),
            fail_to: HashSet::new(),
            rx_depth: 64,
            max_delay: 20_000,
            cqs: (0..n).map(|_| Vec::new()).collect(),
            rnr_events: 0,
            mtu,
        }
    }

    pub fn av_insert(&mut self, i: usize, j: usize) -> PeerIdx {
        let p = self.eps[i].insert_peer(&addr(j)).unwrap();
        self.src_map[i].insert(j, p);
        p
    }

    /// PeerIdx of endpoint `j` in endpoint `i`'s table.
    pub fn peer(&self, i: usize, j: usize) -> PeerIdx {
        self.eps[i].lookup_peer(&addr(j)).expect("peer known")
    }

    fn endpoint_of(&self, peer_addr: &[u8]) -> Option<usize> {
        (0..self.eps.len()).find(|&k| addr(k) == peer_addr)
    }

    /// Moves packets out of every endpoint.
    fn transmit(&mut self) -> bool {
        let mut any = false;
        let mut buf = vec![0u8; self.mtu];
        for i in 0..self.eps.len() {
            while let Some(t) = self.eps[i].poll_transmit(self.now, &mut buf) {
                any = true;
                assert!(t.len <= self.mtu, "datagram larger than the MTU");
                let to = self.eps[i]
                    .peer_addr(t.peer)
                    .and_then(|a| self.endpoint_of(a));
                let delay = if self.rng.below(8) == 0 {
                    self.rng.below(self.max_delay + 1)
                } else {
                    0
                };
                self.flight.push(Dgram {
                    from: i,
                    to,
                    bytes: buf[..t.len].to_vec(),
                    token: t.token,
                    not_before: self.now + delay,
                });
            }
        }
        any
    }

    fn present(
        &mut self,
        to: usize,
        src: Option<PeerIdx>,
        bytes: Vec<u8>,
        from: Option<usize>,
    ) -> bool {
        match self.eps[to].handle_packet(self.now, src, &bytes) {
            PacketOutcome::Deferred => {
                self.held[to].push_back((src, bytes));
                false
            }
            PacketOutcome::NewPeer(p) => {
                if let Some(f) = from {
                    self.src_map[to].insert(f, p);
                }
                true
            }
            PacketOutcome::Dropped => {
                panic!(
                    "endpoint {to} dropped a valid datagram: {:?}",
                    self.eps[to].stats()
                )
            }
            PacketOutcome::Consumed => true,
        }
    }

    /// Re-presents held packets (what the glue does after progress).
    fn retry_held(&mut self) -> bool {
        let mut any = false;
        for i in 0..self.eps.len() {
            let n = self.held[i].len();
            for _ in 0..n {
                let (src, bytes) = self.held[i].pop_front().unwrap();
                any |= self.present(i, src, bytes, None);
            }
        }
        any
    }

    /// Delivers a random selection of datagrams that are due.
    fn deliver(&mut self) -> bool {
        let mut any = false;
        let rounds = 1 + self.rng.below(self.flight.len() as u64 + 1) as usize;
        for _ in 0..rounds {
            if self.flight.is_empty() {
                break;
            }
            let k = self.rng.below(self.flight.len() as u64) as usize;
            if self.flight[k].not_before > self.now {
                continue;
            }
            let Some(to) = self.flight[k].to else {
                continue; // nobody there: never acknowledged
            };
            if self.fail_to.contains(&to) {
                let d = self.flight.swap_remove(k);
                self.eps[d.from].on_send_complete(d.token, Err(TxError::Unreachable));
                any = true;
                continue;
            }
            if self.held[to].len() >= self.rx_depth {
                self.rnr_events += 1; // no receive buffer: RNR, retried later
                continue;
            }
            let d = self.flight.swap_remove(k);
            let src = self.src_map[to].get(&d.from).copied();
            self.present(to, src, d.bytes, Some(d.from));
            self.eps[d.from].on_send_complete(d.token, Ok(()));
            any = true;
        }
        any
    }

    fn collect(&mut self) {
        for i in 0..self.eps.len() {
            while let Some(c) = self.eps[i].poll_completion() {
                self.cqs[i].push(c);
            }
        }
    }

    /// One progress round on every endpoint.
    pub fn step(&mut self) -> bool {
        let mut any = self.transmit();
        any |= self.deliver();
        any |= self.retry_held();
        for e in &mut self.eps {
            if e.poll_timeout().is_some_and(|t| t <= self.now) {
                e.handle_timeout(self.now);
                any = true;
            }
        }
        self.collect();
        self.now += 1_000;
        any
    }

    /// Runs until nothing moves (all due datagrams delivered) or `max`.
    pub fn run(&mut self, max: usize) {
        let mut idle = 0;
        for _ in 0..max {
            let any = self.step();
            let pending = self.flight.iter().any(|d| d.to.is_some());
            if !any && !pending {
                idle += 1;
                if idle > 3 {
                    return;
                }
            } else {
                idle = 0;
            }
        }
    }

    /// Runs until `f` holds, panicking after `max` steps.
    pub fn run_until(&mut self, max: usize, mut f: impl FnMut(&Net) -> bool) {
        for _ in 0..max {
            if f(self) {
                return;
            }
            self.step();
        }
        assert!(f(self), "condition not reached in {max} steps");
    }

    /// Advances virtual time (timers) by `ns` while progressing.
    pub fn advance(&mut self, ns: u64) {
        let end = self.now + ns;
        while self.now < end {
            self.step();
            self.now += ns / 64;
        }
    }

    pub fn take(&mut self, i: usize) -> Vec<Completion> {
        std::mem::take(&mut self.cqs[i])
    }

    pub fn in_flight(&self) -> usize {
        self.flight.len()
    }

    pub fn held(&self, i: usize) -> usize {
        self.held[i].len()
    }

    /// Injects raw bytes as if they arrived at `to` from endpoint `from`.
    pub fn inject_raw(&mut self, to: usize, from: Option<usize>, bytes: &[u8]) -> PacketOutcome {
        let src = from.and_then(|f| self.src_map[to].get(&f).copied());
        self.eps[to].handle_packet(self.now, src, bytes)
    }
}

/// Deterministic contents for message `id` of `len` bytes.
pub fn pattern(id: u64, len: usize) -> Vec<u8> {
    (0..len)
        .map(|k| {
            (k as u64)
                .wrapping_mul(31)
                .wrapping_add(id.wrapping_mul(7919)) as u8
        })
        .collect()
}

pub fn owned(len: usize) -> UserIov {
    UserIov::from_vec(vec![0u8; len])
}
