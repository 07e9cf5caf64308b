//! In-process harness for `rdm::Endpoint`s: a seeded reliable-unordered
//! datagram network (every datagram delivered exactly once, in random
//! order, some delayed), virtual time, and a glue that behaves like the fi
//! layer: it maps senders to PeerIdx; each endpoint has one receive queue
//! shared by all its senders (as a shared-memory ring is), of `rx_depth`
//! datagrams, beyond which arrivals are refused (RNR) and retried; the
//! glue drains it through an `rdm::Inbox` (deferred packets wait in their
//! sender's queue). `Glue::HeadOfLine` models the glue before the inbox: a
//! deferred packet stays at the head of the shared queue, and everything
//! behind it waits.
#![allow(dead_code)]

use srd_fi::mem::UserIov;
use srd_fi::rdm::{Completion, Config, Endpoint, Inbox, PacketOutcome, PeerIdx, TxError, TxInfo};
use std::collections::{HashMap, HashSet, VecDeque};

/// How the glue takes packets out of an endpoint's receive queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Glue {
    /// Every packet leaves the queue; deferred ones wait in the inbox.
    Inbox,
    /// A deferred packet stays at the head; nothing behind it moves.
    HeadOfLine,
}

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
    pub glue: Glue,
    /// Each endpoint's receive queue: (sender endpoint, bytes).
    rxq: Vec<VecDeque<(usize, Vec<u8>)>>,
    /// Deferred packets, per sender (`Glue::Inbox`).
    inbox: Vec<Inbox>,
    /// What each endpoint's transport can map: sender endpoint → PeerIdx.
    src_map: Vec<HashMap<usize, PeerIdx>>,
    /// Datagrams to these endpoints fail (transport gives up).
    pub fail_to: HashSet<usize>,
    /// Datagrams a receive queue holds before arrivals are refused (RNR).
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

/// The datagram `poll_transmit` described with `t` (written into `buf`),
/// with a zero-copy packet's tail gathered from the live operation's
/// buffers as the transport does.
pub fn datagram(ep: &Endpoint, t: &TxInfo, buf: &[u8]) -> Vec<u8> {
    let mut bytes = buf[..t.len].to_vec();
    if let Some(e) = t.ext {
        let mut tail = vec![0u8; e.len as usize];
        assert!(
            ep.ext_copy(t.token, e, &mut tail),
            "a live operation's tail"
        );
        bytes.extend_from_slice(&tail);
    }
    bytes
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
            glue: Glue::Inbox,
            rxq: (0..n).map(|_| VecDeque::new()).collect(),
            inbox: (0..n).map(|_| Inbox::new()).collect(),
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
                let bytes = datagram(&self.eps[i], &t, &buf);
                assert!(bytes.len() <= self.mtu, "datagram larger than the MTU");
                self.flight.push(Dgram {
                    from: i,
                    to,
                    bytes,
                    token: t.token,
                    not_before: self.now + delay,
                });
            }
        }
        any
    }

    /// Hands one received datagram to endpoint `to`; false if it was
    /// deferred and must stay at the head (`Glue::HeadOfLine`).
    fn present(&mut self, to: usize, from: usize, bytes: &[u8]) -> bool {
        let src = self.src_map[to].get(&from).copied();
        let out = match self.glue {
            Glue::Inbox => self.inbox[to].offer(&mut self.eps[to], self.now, src, bytes),
            Glue::HeadOfLine => {
                let out = self.eps[to].handle_packet(self.now, src, bytes);
                if matches!(out, PacketOutcome::Deferred(_)) {
                    return false;
                }
                out
            }
        };
        match out {
            PacketOutcome::NewPeer(p) => {
                self.src_map[to].insert(from, p);
            }
            PacketOutcome::Deferred(p) if src.is_none() => {
                self.src_map[to].insert(from, p);
            }
            PacketOutcome::Dropped => {
                panic!(
                    "endpoint {to} dropped a valid datagram: {:?}",
                    self.eps[to].stats()
                )
            }
            _ => {}
        }
        true
    }

    /// The glue's receive step on every endpoint: deferred packets first,
    /// then the receive queue.
    fn drain(&mut self) -> bool {
        let mut any = false;
        for i in 0..self.eps.len() {
            if self.glue == Glue::Inbox {
                any |= self.inbox[i].retry(&mut self.eps[i], self.now, |_, _, out| {
                    assert_ne!(out, PacketOutcome::Dropped, "a held packet was dropped");
                });
            }
            while let Some((from, bytes)) = self.rxq[i].pop_front() {
                if !self.present(i, from, &bytes) {
                    self.rxq[i].push_front((from, bytes));
                    break;
                }
                any = true;
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
            if self.rxq[to].len() >= self.rx_depth {
                self.rnr_events += 1; // no receive buffer: RNR, retried later
                continue;
            }
            let d = self.flight.swap_remove(k);
            self.rxq[to].push_back((d.from, d.bytes));
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
        any |= self.drain();
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
            let pending = self.flight.iter().any(|d| d.to.is_some())
                || self.rxq.iter().any(|q| !q.is_empty());
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

    /// Deferred packets endpoint `i`'s glue holds (inbox, or the
    /// receive queue stalled behind a deferred head).
    pub fn held(&self, i: usize) -> usize {
        match self.glue {
            Glue::Inbox => self.inbox[i].len().0,
            Glue::HeadOfLine => self.rxq[i].len(),
        }
    }

    /// Deferred packets from endpoint `from` that endpoint `i` holds.
    pub fn held_from(&self, i: usize, from: usize) -> usize {
        self.src_map[i]
            .get(&from)
            .map_or(0, |&p| self.inbox[i].waiting(p))
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
