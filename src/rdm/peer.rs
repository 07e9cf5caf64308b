//! Peers: AV entries inserted by the application and senders learned from
//! the network (internal entries, reported with FI_EADDRNOTAVAIL until the
//! application inserts their address).

use super::pool::{Handle, Slab};
use super::reorder::Window;
use std::collections::{HashMap, VecDeque};

/// Credit window assumed until the peer's handshake says more; receivers
/// never use a smaller reorder window (Config is clamped).
pub const INITIAL_WINDOW: u32 = 16;

/// Index of a peer in the endpoint's table (the glue maps fi_addr_t to it).
pub type PeerIdx = u32;

#[derive(Debug)]
pub struct Peer {
    pub addr: Vec<u8>,
    /// Inserted by the application (AV); false for internal entries.
    pub in_av: bool,
    /// Next msg_id we send to it.
    pub next_tx_msg: u32,
    /// Receive ordering, created on first message from it.
    pub window: Option<Window>,
    /// Our handshake went (or is queued) to it.
    pub hs_sent: bool,
    /// Its handshake reached us: it knows our address, REQs stop carrying it.
    pub hs_recv: bool,
    pub features: u64,
    /// We heard from it, or the transport delivered something to it.
    pub alive: bool,
    /// Operations toward it fail after this time unless it turns alive.
    pub deadline: Option<u64>,
    /// Send side of the msg credit window: the peer delivered every
    /// message below `tx_next_acked`; we start messages below
    /// `tx_next_acked + tx_window` only.
    pub tx_next_acked: u32,
    pub tx_window: u32,
    /// Sends waiting for credit, in msg_id order.
    pub blocked: VecDeque<Handle>,
    /// The glue's link to it is full (`Endpoint::set_peer_paused`): sends
    /// wait in `parked` (still marked `queued`) until it has room.
    pub paused: bool,
    pub parked: VecDeque<Handle>,
    /// Receive side: the `next` we last advertised in a CREDIT.
    pub rx_advertised: u32,
    pub credit_queued: bool,
    /// The transport gave up on a datagram to it: the error of every
    /// operation with it from then on.
    pub broken: Option<super::ErrorKind>,
    /// Largest packet to it (0: `Config::mtu`), set by the glue.
    pub mtu: usize,
    /// Its pid when CMA may reach its memory (same host), set by the glue.
    pub cma_pid: Option<u32>,
    /// Something came from it (or a datagram to it was confirmed) since
    /// the last liveness tick.
    pub heard: bool,
}

#[derive(Debug)]
pub struct PeerTable {
    peers: Slab<Peer>,
    by_addr: HashMap<Vec<u8>, PeerIdx>,
}

impl PeerTable {
    pub fn new(max: usize) -> Self {
        PeerTable {
            // Not preallocated: max_peers (65 536 by default) entries would
            // cost ~10 MB per endpoint before it knows a single peer.
            peers: Slab::lazy(max),
            by_addr: HashMap::new(),
        }
    }

    pub fn lookup(&self, addr: &[u8]) -> Option<PeerIdx> {
        self.by_addr.get(addr).copied()
    }

    /// Finds or creates the entry for `addr`; `in_av` promotes an internal
    /// entry to an AV one (it keeps its msg_id state).
    pub fn insert(&mut self, addr: &[u8], in_av: bool) -> Option<PeerIdx> {
        if let Some(i) = self.lookup(addr) {
            if in_av && let Some(p) = self.peers.at_mut(i) {
                p.in_av = true;
            }
            return Some(i);
        }
        let i = self
            .peers
            .insert(Peer {
                addr: addr.to_vec(),
                in_av,
                next_tx_msg: 0,
                window: None,
                hs_sent: false,
                hs_recv: false,
                features: 0,
                alive: false,
                deadline: None,
                tx_next_acked: 0,
                tx_window: INITIAL_WINDOW,
                blocked: VecDeque::new(),
                paused: false,
                parked: VecDeque::new(),
                rx_advertised: 0,
                credit_queued: false,
                broken: None,
                mtu: 0,
                cma_pid: None,
                heard: false,
            })
            .ok()?
            .idx();
        self.by_addr.insert(addr.to_vec(), i);
        Some(i)
    }

    pub fn get(&self, i: PeerIdx) -> Option<&Peer> {
        self.peers.at(i)
    }

    pub fn get_mut(&mut self, i: PeerIdx) -> Option<&mut Peer> {
        self.peers.at_mut(i)
    }

    pub fn indices(&self) -> impl Iterator<Item = PeerIdx> + '_ {
        self.peers.indices()
    }
}
