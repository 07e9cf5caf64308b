//! FI_SRD_* runtime parameters: one table, registered with the core through
//! fi_param_define (so `fi_info -e` lists them) and read through fi_param_get.

use std::sync::OnceLock;

/// The type a parameter is registered with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Int,
    Bool,
    Str,
    Size,
}

/// One parameter: its name without the `FI_SRD_` prefix (the core adds it),
/// type, default as text, and description.
#[derive(Debug)]
pub struct Def {
    pub name: &'static str,
    pub kind: Kind,
    pub default: &'static str,
    pub help: &'static str,
}

/// Every parameter the provider reads.
pub const DEFS: &[Def] = &[
    Def {
        name: "iface",
        kind: Kind::Str,
        default: "",
        help: "Network interface to use (e.g. eth0, lo). Default: every interface that is up, routable ones first, loopback last.",
    },
    Def {
        name: "paths",
        kind: Kind::Int,
        default: "4",
        help: "UDP source ports per endpoint over which SRD sprays packets (multipath), 1-16.",
    },
    Def {
        name: "mtu",
        kind: Kind::Size,
        default: "0",
        help: "Largest UDP payload the device sends, in bytes; 0 takes it from the interface MTU (loopback: 65507).",
    },
    Def {
        name: "progress_interval_ms",
        kind: Kind::Int,
        default: "10",
        help: "Milliseconds without application progress after which a helper thread answers the network for an RDM endpoint (acks, retransmissions), so peers do not time out while the application computes; 0 disables it.",
    },
    Def {
        name: "spin_us",
        kind: Kind::Str,
        default: "auto",
        help: "Microseconds a reader whose fi_cq_read calls find nothing spins before it yields its core (sched_yield) on every empty read; 0 yields at once (only when the caller did not yield itself since its previous read). auto: 200 while this host's processes in the address vector fit its online CPUs, 0 once they outnumber them (more ranks than cores), so the rank waited for can run.",
    },
    Def {
        name: "retry_limit",
        kind: Kind::Int,
        default: "50",
        help: "Consecutive retransmission timeouts (RTO from 3 round trips, at least 50 us, doubling to 100 ms) after which a silent peer is declared unreachable and operations toward it fail; about 4 s at the default.",
    },
    Def {
        name: "peer_timeout_ms",
        kind: Kind::Int,
        default: "5000",
        help: "Milliseconds a peer may stay silent while operations wait on it (data unacknowledged, or a probe sent after a quarter of this without news) before it is declared unreachable: its pending and later operations complete with FI_EHOSTUNREACH within about 1.5x this (same host: a dead process is seen within 100 ms). 0 leaves only FI_SRD_RETRY_LIMIT.",
    },
    Def {
        name: "shm",
        kind: Kind::Bool,
        default: "1",
        help: "Carry traffic between endpoints on the same host over shared-memory rings; 0 sends it over UDP like any other peer.",
    },
    Def {
        name: "shm_cma",
        kind: Kind::Bool,
        default: "1",
        help: "Let same-host bulk transfers use process_vm_readv/writev (cross-memory attach) where the kernel permits; 0 copies through the rings.",
    },
    Def {
        name: "shm_cma_min",
        kind: Kind::Size,
        default: "16384",
        help: "Same-host messages and RMA transfers of at least this many bytes are copied once with cross-memory attach (the receiver or RMA target reads/writes the peer's buffer) instead of through the rings; 0 never.",
    },
    Def {
        name: "shm_fast",
        kind: Kind::Bool,
        default: "1",
        help: "Send small messages to a same-host peer whose handshake is done as one packet written straight from the caller's buffer into the peer's ring, and place them at the receiver without per-message bookkeeping, when nothing earlier to that peer is still queued; 0 sends them through the protocol's send queue like larger ones (same wire format, same order).",
    },
    Def {
        name: "zcopy",
        kind: Kind::Bool,
        default: "1",
        help: "Send the data packets of medium and long messages and of RMA writes over UDP from the application's buffers by iovec (zero copy; retransmissions read them again) instead of copying them first; 0 copies.",
    },
    Def {
        name: "unexp_max",
        kind: Kind::Int,
        default: "4096",
        help: "Messages an RDM endpoint stores that arrived before a receive matched them (unexpected messages); beyond, a sender's next message waits at the receiver (its later ones are bounded by its credit window) and other senders are not held up. At least 1.",
    },
    Def {
        name: "unexp_max_bytes",
        kind: Kind::Size,
        default: "16777216",
        help: "Bytes of unexpected messages an RDM endpoint stores (counted as the buffers holding them: 256 B per small message); beyond, as FI_SRD_UNEXP_MAX.",
    },
    Def {
        name: "stats",
        kind: Kind::Bool,
        default: "0",
        help: "Print each RDM endpoint's counters (datagrams, retransmits, RNR, duplicates, drops, shared-memory traffic) to stderr when it closes.",
    },
    Def {
        name: "stats_page",
        kind: Kind::Bool,
        default: "1",
        help: "Publish each RDM endpoint's counters and peer table in /dev/shm/srd-stats-<uid>-<pid>-<n> (mode 0600) for the srd-stat tool; 0 turns the page off.",
    },
    Def {
        name: "dump",
        kind: Kind::Bool,
        default: "0",
        help: "Print each RDM endpoint's counters, peer table and resources (QPs, AHs, MRs, peers with path and state) to stderr when it closes.",
    },
    Def {
        name: "drop_rate",
        kind: Kind::Str,
        default: "0",
        help: "Fault injection for tests: fraction (0-1) of received UDP datagrams the device drops.",
    },
    Def {
        name: "dup_small",
        kind: Kind::Size,
        default: "0",
        help: "Messages of up to this many bytes that go out alone to a peer over UDP (nothing else in flight to it) are sent twice, on two paths, so that one lost datagram costs no retransmission delay; 0 disables it.",
    },
    Def {
        name: "drop_seed",
        kind: Kind::Int,
        default: "1",
        help: "Seed of the fault-injection generator (FI_SRD_DROP_RATE).",
    },
];

/// Values in force, parsed once.
#[derive(Clone, Debug)]
pub struct Params {
    pub iface: Option<String>,
    pub paths: usize,
    pub mtu: usize,
    pub drop_rate: f64,
    pub drop_seed: u64,
    pub progress_interval_ms: u64,
    /// None: auto.
    pub spin_us: Option<u64>,
    pub retry_limit: u32,
    pub peer_timeout_ms: u64,
    pub dup_small: usize,
    pub shm: bool,
    pub shm_cma: bool,
    pub shm_cma_min: usize,
    pub shm_fast: bool,
    pub zcopy: bool,
    pub unexp_max: usize,
    pub unexp_max_bytes: usize,
    pub stats: bool,
    pub stats_page: bool,
    pub dump: bool,
}

impl Default for Params {
    fn default() -> Self {
        Params::parse(|_| None)
    }
}

impl Params {
    /// Builds the values from a lookup by parameter name (without prefix);
    /// `None` means "not set", and malformed values fall back to defaults.
    pub fn parse(get: impl Fn(&str) -> Option<String>) -> Params {
        let text = |name: &str| -> String {
            get(name).unwrap_or_else(|| {
                DEFS.iter()
                    .find(|d| d.name == name)
                    .map_or(String::new(), |d| d.default.to_string())
            })
        };
        let num = |name: &str| -> u64 {
            let t = text(name);
            t.trim().parse::<u64>().unwrap_or_else(|_| {
                DEFS.iter()
                    .find(|d| d.name == name)
                    .and_then(|d| d.default.parse().ok())
                    .unwrap_or(0)
            })
        };
        let iface = text("iface");
        Params {
            iface: if iface.is_empty() { None } else { Some(iface) },
            paths: (num("paths") as usize).clamp(1, 16),
            mtu: num("mtu") as usize,
            drop_rate: text("drop_rate")
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|r| (0.0..=1.0).contains(r))
                .unwrap_or(0.0),
            drop_seed: num("drop_seed"),
            progress_interval_ms: num("progress_interval_ms"),
            spin_us: text("spin_us").trim().parse::<u64>().ok(),
            retry_limit: u32::try_from(num("retry_limit")).unwrap_or(u32::MAX).max(1),
            peer_timeout_ms: num("peer_timeout_ms"),
            dup_small: num("dup_small") as usize,
            shm: !matches!(text("shm").trim(), "0" | "false" | "no" | "off"),
            shm_cma: !matches!(text("shm_cma").trim(), "0" | "false" | "no" | "off"),
            shm_cma_min: num("shm_cma_min") as usize,
            shm_fast: !matches!(text("shm_fast").trim(), "0" | "false" | "no" | "off"),
            zcopy: !matches!(text("zcopy").trim(), "0" | "false" | "no" | "off"),
            unexp_max: (num("unexp_max") as usize).max(1),
            unexp_max_bytes: (num("unexp_max_bytes") as usize).max(1),
            stats: matches!(text("stats").trim(), "1" | "true" | "yes" | "on"),
            stats_page: !matches!(text("stats_page").trim(), "0" | "false" | "no" | "off"),
            dump: matches!(text("dump").trim(), "1" | "true" | "yes" | "on"),
        }
    }

    /// Reads `FI_SRD_<NAME>` from the process environment (for code running
    /// without the libfabric core, such as unit tests).
    pub fn from_env() -> Params {
        Params::parse(|n| std::env::var(format!("FI_SRD_{}", n.to_ascii_uppercase())).ok())
    }
}

static GLOBAL: OnceLock<Params> = OnceLock::new();

/// Installs the values read at provider load; later calls are ignored.
pub fn install(p: Params) {
    let _ = GLOBAL.set(p);
}

/// The values in force (environment-derived if the provider was not loaded
/// through the core).
pub fn get() -> &'static Params {
    GLOBAL.get_or_init(Params::from_env)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_overrides() {
        let d = Params::default();
        assert_eq!(d.paths, 4);
        assert_eq!(d.iface, None);
        assert_eq!(d.drop_rate, 0.0);
        let p = Params::parse(|n| match n {
            "paths" => Some("64".into()),
            "drop_rate" => Some("0.25".into()),
            "iface" => Some("lo".into()),
            "mtu" => Some("junk".into()),
            _ => None,
        });
        assert_eq!(p.paths, 16);
        assert_eq!(p.drop_rate, 0.25);
        assert_eq!(p.iface.as_deref(), Some("lo"));
        assert_eq!(p.mtu, 0);
        let bad = Params::parse(|n| (n == "drop_rate").then(|| "7".into()));
        assert_eq!(bad.drop_rate, 0.0);
    }

    #[test]
    fn names_are_unique_lowercase() {
        for (i, d) in DEFS.iter().enumerate() {
            assert_eq!(d.name, d.name.to_ascii_lowercase());
            assert!(!d.help.is_empty());
            assert!(DEFS[i + 1..].iter().all(|o| o.name != d.name));
        }
    }
}
