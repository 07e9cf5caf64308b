//! Observability of an RDM endpoint: its counters, the live stats page
//! (`srd-stat`), the FI_SRD_STATS line and FI_SRD_DUMP, and the log lines
//! of new peers (fi::stats has the page format).

use super::link::Link;
use crate::fi::addr::EpAddr;
use crate::fi::fabric::Domain;
use crate::fi::params::Params;
use crate::fi::stats;
use crate::rdm::{self, PeerIdx};
use std::sync::Arc;

impl Link {
    /// Creates the live stats page (FI_SRD_STATS_PAGE); without one the
    /// endpoint still counts (FI_SRD_STATS, FI_SRD_DUMP).
    pub fn open_page(&mut self, params: &Params) {
        if !params.stats_page {
            return;
        }
        let names: Vec<&str> = self.counters(None).iter().map(|c| c.0).collect();
        let local = self.name().to_string();
        match stats::StatsPage::create("rdm", &local, &names, stats::PEER_FIELDS) {
            Ok(p) => {
                self.obs.page = Some(p);
                self.publish(None, self.t.now());
            }
            Err(e) => crate::srd_log!(
                Warn,
                EpCtrl,
                "no stats page ({e}); srd-stat cannot see {local}"
            ),
        }
    }

    /// Gives the endpoint its domain (for the MR count) and returns the
    /// counters the MR lookup fills with refused accesses.
    pub fn observe(&mut self, domain: Arc<Domain>) -> Arc<stats::TargetCounters> {
        self.obs.domain = Some(domain);
        self.obs.target.clone()
    }

    /// The live page's file, if any.
    pub fn stats_page(&self) -> Option<std::path::PathBuf> {
        self.obs.page.as_ref().map(|p| p.path())
    }

    /// A peer got a route: remember its address text and say so.
    pub fn note_addr(&mut self, p: PeerIdx, a: &EpAddr) {
        let i = p as usize;
        if i < 1 << 16 {
            if self.obs.addr_text.len() <= i {
                self.obs.addr_text.resize(i + 1, String::new());
            }
            self.obs.addr_text[i] = a.to_string();
        }
        let via = if self.shm.as_ref().is_some_and(|s| s.routes(p)) {
            "shared memory"
        } else {
            "UDP"
        };
        let known = if self.routes.in_av(p) {
            "AV peer"
        } else {
            "sender not in the AV"
        };
        crate::srd_log!(
            Info,
            EpCtrl,
            "{}: peer {p} ({known}) {a} over {via}",
            self.name()
        );
    }

    /// Every endpoint counter (names and values, page order).
    /// `r`: the protocol engine, once enabled.
    pub fn counters(
        &self,
        r: Option<&rdm::Endpoint>,
    ) -> [(&'static str, u64); stats::RDM_COUNTER_COUNT] {
        let src = stats::Sources {
            obs: Some(&self.obs),
            dev: self.t.dev.stats().clone(),
            usage: self.t.dev.usage(),
            udp: *self.t.udp.stats(),
            rdm: r.map(|r| r.stats().clone()).unwrap_or_default(),
            shm: self.shm.as_ref().map(|s| *s.stats()).unwrap_or_default(),
            mrs: self.obs.domain.as_ref().map_or(0, |d| d.mrs.len() as u64),
            rx_posted: self.t.dev.recv_posted(self.qpn) as u64,
            rx_held: self.inbox.len().0 as u64,
            tx_queued: self.shm.as_ref().map_or(0, |s| s.queued()) as u64,
            paused_peers: r.map_or(0, |r| r.paused_peers() as u64),
            inbox: self.inbox.stats(),
            zc_gone: self.t.ext_gone,
        };
        stats::rdm_counters(&src)
    }

    /// The per-peer table, into `self.obs.rows`.
    fn peer_rows(&mut self, r: Option<&rdm::Endpoint>) -> usize {
        let n = self.routes.len();
        let keep = n.min(stats::MAX_PEERS);
        self.obs.rows.resize_with(keep, Default::default);
        for i in 0..keep {
            let p = i as PeerIdx;
            let route = self.routes.route(p);
            let info = route.and_then(|r| self.t.dev.peer_info(r.dev));
            let c = self.obs.peers.get(i).copied().unwrap_or_default();
            let state = r.and_then(|r| r.peer_state(p));
            let row = &mut self.obs.rows[i];
            row.addr.clear();
            row.addr
                .push_str(self.obs.addr_text.get(i).map_or("", |s| s.as_str()));
            row.fi_addr = self.routes.fi_addr(p);
            row.path = if self.shm.as_ref().is_some_and(|s| s.routes(p)) {
                "shm"
            } else if route.is_some() {
                "udp"
            } else {
                "-"
            };
            row.state = state.map_or("-", |s| s.0);
            if self.obs.last_state.len() <= i {
                self.obs.last_state.resize(i + 1, "-");
            }
            if self.obs.last_state[i] != row.state {
                self.obs.last_state[i] = row.state;
                if matches!(row.state, "up" | "broken") {
                    crate::srd_log!(Info, EpCtrl, "peer {p} is {}: {}", row.state, row.addr);
                }
            }
            let d = info.map(|x| x.counters).unwrap_or_default();
            let v = [
                c.tx_pkts,
                c.tx_bytes,
                c.rx_pkts,
                c.rx_bytes,
                c.tx_msgs,
                c.tx_msg_bytes,
                c.rx_msgs,
                c.rx_msg_bytes,
                d.tx_data,
                d.rx_data,
                d.retransmits,
                d.rnr_naks_sent,
                d.rnr_naks_received,
                d.duplicates,
                d.drops,
                info.and_then(|x| x.srtt).map_or(0, |t| t / 1000),
                info.map_or(0, |x| x.rto / 1000),
                info.map_or(0, |x| u64::from(x.cwnd)),
                info.map_or(0, |x| u64::from(x.in_flight)),
            ];
            row.values[..v.len()].copy_from_slice(&v);
        }
        n
    }

    /// Writes the counters to the live page.
    pub fn publish(&mut self, r: Option<&rdm::Endpoint>, now: u64) {
        self.obs.last_publish = now;
        let total = self.peer_rows(r);
        if self.obs.page.is_none() {
            return;
        }
        let values = self.counters(r).map(|c| c.1);
        if let Some(page) = self.obs.page.as_mut() {
            page.publish(&values, &self.obs.rows, total);
        }
    }

    /// The counters, peer table and resources as text (FI_SRD_DUMP=1 at close).
    pub fn dump(&mut self, r: &rdm::Endpoint) -> String {
        let now = self.t.now();
        self.publish(Some(r), now);
        let total = self.peer_rows(Some(r));
        let snap = stats::Snapshot {
            pid: std::process::id(),
            ep: 0,
            kind: "rdm".into(),
            local: self.name().to_string(),
            updated_ns: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64),
            publishes: 0,
            alive: true,
            counters: self
                .counters(Some(r))
                .iter()
                .map(|(n, v)| (n.to_string(), *v))
                .collect(),
            peer_fields: stats::PEER_FIELDS.iter().map(|f| f.to_string()).collect(),
            peers: self
                .obs
                .rows
                .iter()
                .map(|r| stats::PeerSnap {
                    addr: r.addr.clone(),
                    fi_addr: r.fi_addr,
                    path: r.path.into(),
                    state: r.state.into(),
                    values: r.values[..stats::PEER_FIELDS.len()].to_vec(),
                })
                .collect(),
            peers_total: total as u64,
        };
        stats::render(&snap, false, true)
    }

    /// One line of counters for FI_SRD_STATS=1.
    pub fn stats_line(&self, r: &rdm::Endpoint) -> String {
        let d = self.t.dev.stats();
        let u = self.t.udp.stats();
        let s = r.stats();
        let mut line = format!(
            "srd rdm {}: udp tx {} rx {} dgrams, drops injected {}; srd data tx {} rx {}, acks tx {} rx {}, retransmits {} (rto {}), rnr naks tx {} rx {}, dups {}, bad packets {}; rdm malformed {} stale {} deferred {} send failures {} timeouts {}; cma copies {} fallbacks {} errors {}",
            self.name(),
            u.tx_datagrams,
            u.rx_datagrams,
            u.rx_dropped_injected + u.tx_dropped_injected,
            d.tx_data,
            d.rx_data,
            d.tx_acks,
            d.rx_acks,
            d.retransmits,
            d.rto_events,
            d.rnr_naks_sent,
            d.rnr_naks_received,
            d.duplicates,
            d.drops(),
            s.malformed,
            s.stale,
            s.deferred,
            s.send_failures,
            s.timeouts,
            s.cma_copies,
            s.cma_fallbacks,
            s.cma_errors
        );
        if let Some(shm) = &self.shm {
            let s = shm.stats();
            line += &format!(
                "; shm sent {} received {} full {} abandoned {}",
                s.sent, s.received, s.full, s.abandoned
            );
        }
        line += "; counters: ";
        line += &stats::counters_line(&self.counters(Some(r)));
        line
    }
}
