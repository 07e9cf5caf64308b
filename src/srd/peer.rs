//! Everything a device keeps about one remote device: both directions of the
//! reliability state, the RTT estimate, congestion window, path health and
//! ack scheduling. Keyed by the remote `DeviceAddr` from the SRD header.

use super::congestion::{Cwnd, Rtt};
use super::multipath::Paths;
use super::reliability::{RxWindow, TxWindow};
use super::{DeviceAddr, DeviceConfig, psn_lt};

/// RACK reorder window bounds, in quarters of SRTT: from half an SRTT
/// (multipath sprays a flight over paths whose delays differ) to a whole
/// one.
pub(crate) const REO_MIN_QUARTERS: u32 = 2;
pub(crate) const REO_MAX_QUARTERS: u32 = 4;
/// Loss declarations without a spurious one after which the reorder
/// window narrows by a quarter SRTT.
pub(crate) const REO_CLEAN: u32 = 16;

#[derive(Debug)]
pub(crate) struct Peer {
    pub addr: DeviceAddr,
    /// The remote's incarnation, learned from its packets.
    pub remote_epoch: Option<u32>,
    pub tx: TxWindow,
    pub rx: RxWindow,
    pub rtt: Rtt,
    pub cwnd: Cwnd,
    pub paths: Paths,
    /// Timeouts in a row without any ack progress.
    pub consecutive_timeouts: u32,
    /// When the current run of timeouts began (its oldest packet's send
    /// time); meaningful while `consecutive_timeouts > 0`.
    pub stall_since: u64,
    /// A tail-loss probe went out and nothing new was acked since: the
    /// next timer for the flight is the RTO.
    pub tlp_sent: bool,
    /// RACK reorder timer: a packet sent before an acked one is declared
    /// lost at this time unless acked first.
    pub reo_at: Option<u64>,
    /// RACK's reorder window in quarters of SRTT (2..=4): widened when a
    /// packet declared lost turns out to have arrived (the reordering of
    /// multipath exceeded it), narrowed again after `REO_CLEAN` losses
    /// with no such surprise.
    pub reo_quarters: u32,
    /// Losses declared since the window last changed.
    pub reo_clean: u32,
    /// The path-order rule applies to this peer (`DeviceConfig::path_order`
    /// until a loss it declared proves spurious).
    pub path_order: bool,
    /// When an ack or NAK from the peer last made progress (0: never).
    pub last_progress: u64,
    /// Packets accepted since our last ack.
    pub rx_unacked: u32,
    pub ack_deadline: Option<u64>,
    pub ack_queued: bool,
    /// In the device's round-robin queue of peers with something to send.
    pub in_ready: bool,
    /// Earliest end of an RNR wait, while packets are parked.
    pub rnr_next: Option<u64>,
    /// The time of this peer's live entry in the device's timer heap (a
    /// lower bound of `next_deadline`), if it has one.
    pub timer_at: Option<u64>,
    /// Delay-based congestion control below one packet per RTT: no new
    /// data packet before this time.
    pub pace_until: Option<u64>,
    /// Largest payload of one packet to it (the device's, or more for a
    /// peer on this host: `Device::set_peer_max_payload`).
    pub max_payload: usize,
    /// Monitoring counters.
    pub counters: super::PeerCounters,
    /// The last retransmission timeout (`at` 0: none yet).
    pub rto_episode: RtoEpisode,
    /// The device's fan-in period in which this peer last sent new data.
    pub fan_seen: u64,
    /// Its packets of new data in that period (it counts from the second).
    pub fan_pkts: u32,
    /// Per (local, remote) pair: where in its allowed range a backed-off
    /// timeout fires (`rto`).
    salt: u64,
}

/// A retransmission timeout whose verdict is open: if a packet sent
/// before it is acked for that transmission although declared lost, the
/// acks were late, not missing, and the timeout spurious (after F-RTO,
/// RFC 5682): its window cut is undone.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct RtoEpisode {
    /// When it fired, and the timeout that fired.
    pub at: u64,
    pub rto: u64,
    /// Its verdict is still open.
    pub open: bool,
    /// A packet it declared lost was resent; the others wait for the
    /// verdict (the next ack that acks anything).
    pub resent: bool,
    /// A packet sent before `at` was acked for its original transmission.
    pub spurious: bool,
}

/// How a packet's epoch relates to what we know of its sender.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EpochCheck {
    Same,
    /// First contact, or the remote restarted: its PSNs start afresh.
    New,
    Stale,
}

impl Peer {
    pub fn new(addr: DeviceAddr, cfg: &DeviceConfig) -> Self {
        Peer {
            addr,
            remote_epoch: None,
            tx: TxWindow::new(cfg.window),
            rx: RxWindow::new(),
            rtt: Rtt::new(cfg.min_rto, cfg.max_rto, cfg.initial_rto, cfg.min_pto),
            cwnd: Cwnd::with_target(
                cfg.cwnd_init,
                cfg.cwnd_min,
                cfg.cwnd_max.min(cfg.window),
                cfg.cc_target_delay,
            )
            .with_burst(cfg.path_burst),
            paths: Paths::new(cfg.paths, cfg.path_fail_threshold, cfg.path_probe_interval)
                .with_burst(cfg.path_burst),
            consecutive_timeouts: 0,
            stall_since: 0,
            tlp_sent: false,
            last_progress: 0,
            reo_at: None,
            reo_quarters: REO_MIN_QUARTERS,
            reo_clean: 0,
            path_order: cfg.path_order,
            rx_unacked: 0,
            ack_deadline: None,
            ack_queued: false,
            in_ready: false,
            rnr_next: None,
            timer_at: None,
            pace_until: None,
            max_payload: cfg.max_payload,
            counters: super::PeerCounters::default(),
            rto_episode: RtoEpisode::default(),
            fan_seen: u64::MAX,
            fan_pkts: 0,
            salt: mix(
                u64::from(u32::from(cfg.addr.ip)) << 16
                    ^ u64::from(cfg.addr.port)
                    ^ u64::from(cfg.epoch) << 48,
                u64::from(u32::from(addr.ip)) << 16 ^ u64::from(addr.port),
            ),
        }
    }

    /// Checks and learns the sender's epoch; a newer one resets the receive
    /// direction (the remote's PSN space restarted).
    pub fn check_epoch(&mut self, epoch: u32) -> EpochCheck {
        match self.remote_epoch {
            Some(e) if e == epoch => EpochCheck::Same,
            Some(e) if psn_lt(epoch, e) => EpochCheck::Stale,
            _ => {
                self.remote_epoch = Some(epoch);
                self.rx = RxWindow::new();
                self.rx_unacked = 0;
                self.ack_deadline = None;
                EpochCheck::New
            }
        }
    }

    /// Can this peer put a data packet on the wire now?
    pub fn can_send(&mut self) -> bool {
        if self.pace_until.is_some() {
            return false;
        }
        if self.tx.in_flight >= self.cwnd.get() {
            // A timeout resends one packet whatever is still counted in
            // flight (packets younger than the timeout, more than a window
            // a receiver's grant shrank): its ack is the verdict on the
            // rest.
            let e = self.rto_episode;
            return e.open && !e.resent && self.tx.has_retx();
        }
        (self.retx_allowed() && self.tx.has_retx())
            || (!self.tx.pending.is_empty() && self.tx.has_room())
    }

    /// May a retransmission go out? After a timeout one does; the rest of
    /// what it declared lost waits for the next ack (after F-RTO): late
    /// acks of the originals then remove them instead of their being sent
    /// twice.
    ///
    /// Once nothing is in flight no ack can come, so then one may go
    /// whatever the timeout's state: its one resend, declared lost again
    /// by a probe or by RACK, would otherwise leave lost packets, no timer
    /// and no ack, a stall for good.
    pub fn retx_allowed(&self) -> bool {
        !(self.rto_episode.open && self.rto_episode.resent) || self.tx.in_flight == 0
    }

    /// The retransmission timeout in force, backoff included. Before the
    /// first RTT sample (a guess, `initial_rto`, backed off) it is spread
    /// over its upper half by a hash of the pair and the last expiry:
    /// senders whose first flights were all lost in one burst (an incast)
    /// would otherwise retry in lockstep, lose again, and wait a doubled
    /// guess each wave with the receiver's link idle in between (their
    /// resends, acked, give no sample: Karn). Never later than the
    /// unspread timeout, so the bounds on reporting a failed peer stand.
    pub fn rto(&self) -> u64 {
        let rto = self.rtt.rto();
        if self.rtt.srtt().is_some() {
            return rto;
        }
        let r = mix(
            self.salt,
            self.rto_episode.at ^ u64::from(self.rtt.backoff()),
        );
        // r / 2^64 of half the timeout.
        let early = (u128::from(rto / 2) * u128::from(r)) >> 64;
        rto - u64::try_from(early).unwrap_or(0)
    }

    /// RACK's reorder window now.
    pub fn reo_wnd(&self) -> u64 {
        self.rtt
            .srtt()
            .map_or(0, |s| s / 4 * u64::from(self.reo_quarters))
    }

    /// A packet declared lost was acked for its original transmission: the
    /// reorder window was too narrow.
    pub fn spurious_loss(&mut self) {
        self.reo_quarters = (self.reo_quarters + 1).min(REO_MAX_QUARTERS);
        self.reo_clean = 0;
    }

    /// A loss was declared by RACK.
    pub fn rack_loss(&mut self) {
        self.reo_clean += 1;
        if self.reo_clean >= REO_CLEAN {
            self.reo_clean = 0;
            self.reo_quarters = (self.reo_quarters - 1).max(REO_MIN_QUARTERS);
        }
    }

    /// When a tail-loss probe is due: 2·SRTT after the newest transmission
    /// still in flight, once per flight (until an ack makes progress). None
    /// while a queue builds toward the peer: the tail is then most likely
    /// waiting in it, and a probe would only add to it (the RTO remains).
    pub fn tlp_deadline(&self) -> Option<u64> {
        let min_rtt = self.rtt.min_rtt().unwrap_or(0);
        let queue = self.cwnd.queue_building(min_rtt) && !self.cwnd.granted();
        if self.tlp_sent || self.cwnd.below_one_packet() || queue {
            return None;
        }
        let pto = self.rtt.pto()?;
        self.tx.newest_sent_at().map(|t| t.saturating_add(pto))
    }

    /// When the retransmission timer fires: the RTO (with backoff) after
    /// the oldest transmission in flight, and not before the RTO after the
    /// last expiry (which resent only the oldest packet; the next one is
    /// as old, and firing for it at once would resend the flight packet
    /// by packet, each time with the timeout doubled).
    pub fn rto_deadline(&self) -> Option<u64> {
        let rto = self.rto();
        let rearm = self.rto_episode.at.saturating_add(rto);
        self.tx.deadline(rto).map(|d| d.max(rearm))
    }

    /// An ack newly covered a packet last sent at `sent_at`; `original`:
    /// declared lost, yet the ack answers the transmission before that
    /// (acked while waiting to be resent, or sooner than min_rtt after
    /// the resend). Feeds the verdict of an open timeout.
    pub fn rto_check(&mut self, sent_at: u64, original: bool) {
        let e = &mut self.rto_episode;
        if e.open && original && sent_at <= e.at {
            e.spurious = true;
        }
    }

    /// After an ack that newly acked something (`progress`): a spurious
    /// timeout is undone; otherwise it stands, and the rest of what it
    /// declared lost may be resent.
    pub fn rto_settle(&mut self, progress: bool) {
        let e = self.rto_episode;
        if !e.open {
            return;
        }
        if e.spurious {
            self.cwnd.undo_timeout();
            self.rtt.spurious_timeout(e.rto);
            self.rto_episode.open = false;
        } else if progress {
            // The path delivers again, and nothing declared lost by the
            // timeout arrived before its resend.
            self.cwnd.keep_timeout();
            self.rto_episode.open = false;
        }
    }

    /// Earliest timer of this peer.
    pub fn next_deadline(&self) -> Option<u64> {
        let rto = self.rto_deadline();
        [
            rto,
            self.tlp_deadline(),
            self.reo_at,
            self.ack_deadline,
            self.rnr_next,
            self.pace_until,
        ]
        .into_iter()
        .flatten()
        .min()
    }
}

/// A 64-bit mix of two words: spreads timers without a random source in
/// the sans-IO core.
fn mix(a: u64, b: u64) -> u64 {
    super::mix64(a ^ b.rotate_left(32) ^ 0x9E37_79B9_7F4A_7C15)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn a_guessed_timeout_is_spread_per_pair_a_measured_one_is_not() {
        let cfg = DeviceConfig::default();
        let guess = cfg.initial_rto;
        let rtos: Vec<u64> = (1..=64u8)
            .map(|k| Peer::new(DeviceAddr::new(Ipv4Addr::new(10, 0, 0, k), 7), &cfg).rto())
            .collect();
        assert!(rtos.iter().all(|&r| (guess / 2..=guess).contains(&r)));
        let (lo, hi) = (rtos.iter().min().unwrap(), rtos.iter().max().unwrap());
        assert!(hi - lo > guess / 4, "spread: {lo}..{hi}");
        let mut p = Peer::new(DeviceAddr::new(Ipv4Addr::new(10, 0, 0, 1), 7), &cfg);
        assert_eq!(p.rto(), rtos[0], "the same pair, the same timer");
        p.rtt.back_off();
        assert!(
            (guess..=2 * guess).contains(&p.rto()),
            "backed off: {}",
            p.rto()
        );
        p.rtt.progress();
        p.rtt.sample(20_000);
        assert_eq!(p.rto(), p.rtt.rto(), "from the RTT: not spread");
    }
}
