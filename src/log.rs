//! Logging, for every layer. Messages go to a [`Sink`] the C boundary
//! installs when the libfabric core loads us (the core's FI_LOG: its
//! FI_LOG_LEVEL and FI_LOG_PROV apply); before that, and in processes that
//! use the crate without the core (unit tests), they go nowhere. This module
//! knows nothing of C: any layer may log without importing the boundary.

#![forbid(unsafe_code)]

use std::collections::HashSet;
use std::net::SocketAddrV4;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU8, Ordering};

/// Where messages go.
#[derive(Clone, Copy, Debug)]
pub struct Sink {
    /// Whether a message at this level and subsystem would be printed.
    pub enabled: fn(Level, Subsys) -> bool,
    /// Prints it: (level, subsystem, origin, line, text).
    pub emit: fn(Level, Subsys, &str, u32, &str),
}

static SINK: OnceLock<Sink> = OnceLock::new();

/// Log levels (enum fi_log_level).
#[derive(Clone, Copy, Debug)]
pub enum Level {
    Warn = 0,
    Trace = 1,
    Info = 2,
    Debug = 3,
}

/// Subsystems (enum fi_log_subsys).
#[derive(Clone, Copy, Debug)]
pub enum Subsys {
    Core = 0,
    Fabric = 1,
    Domain = 2,
    EpCtrl = 3,
    EpData = 4,
    Av = 5,
    Cq = 6,
    Eq = 7,
    Mr = 8,
    Cntr = 9,
}

/// Installs the sink (once, when the core has loaded us; later calls are
/// ignored).
pub fn install(sink: Sink) {
    let _ = SINK.set(sink);
}

/// Whether a message at this level would be printed.
pub fn enabled(level: Level, subsys: Subsys) -> bool {
    SINK.get().is_some_and(|s| (s.enabled)(level, subsys))
}

/// Emits `msg` if enabled. `func` names the origin.
pub fn log(level: Level, subsys: Subsys, func: &str, line: u32, msg: &str) {
    if let Some(s) = SINK.get()
        && (s.enabled)(level, subsys)
    {
        (s.emit)(level, subsys, func, line, msg);
    }
}

/// Whether per-packet debug messages are wanted: `enabled(Debug, EpData)`
/// asked once and cached, so a disabled hot path pays one relaxed load.
/// (The core reads FI_LOG_LEVEL once at start-up; it does not change.)
pub fn debug_data() -> bool {
    // 0: not asked yet, 1: off, 2: on.
    static CACHED: AtomicU8 = AtomicU8::new(0);
    match CACHED.load(Ordering::Relaxed) {
        1 => false,
        2 => true,
        _ => {
            if SINK.get().is_none() {
                return false;
            }
            let on = enabled(Level::Debug, Subsys::EpData);
            CACHED.store(if on { 2 } else { 1 }, Ordering::Relaxed);
            on
        }
    }
}

/// Remembers which (peer, kind) pairs were already warned about, so a
/// flood of bad packets gives one line per sender and kind. Bounded: past
/// `cap` pairs it says so once and stays quiet.
#[derive(Debug)]
pub struct Once {
    seen: HashSet<(u64, &'static str)>,
    cap: usize,
    full_noted: bool,
}

impl Default for Once {
    fn default() -> Self {
        Once::new(1024)
    }
}

impl Once {
    pub fn new(cap: usize) -> Once {
        Once {
            seen: HashSet::new(),
            cap,
            full_noted: false,
        }
    }

    /// A key for a UDP sender.
    pub fn key(a: SocketAddrV4) -> u64 {
        (u64::from(u32::from(*a.ip())) << 16) | u64::from(a.port())
    }

    /// True the first time `(peer, kind)` is seen (and while there is room).
    pub fn first(&mut self, peer: u64, kind: &'static str) -> bool {
        if self.seen.contains(&(peer, kind)) {
            return false;
        }
        if self.seen.len() >= self.cap {
            if !self.full_noted {
                self.full_noted = true;
                warn(
                    "more senders of bad packets than warnings kept: further ones are only counted",
                );
            }
            return false;
        }
        self.seen.insert((peer, kind));
        true
    }

    /// Warns (subsystem EpData) about a dropped packet, once per sender
    /// and kind; the counters keep the totals.
    pub fn warn_drop(
        &mut self,
        peer: u64,
        from: &dyn std::fmt::Display,
        kind: &'static str,
        what: &str,
    ) {
        if enabled(Level::Warn, Subsys::EpData) && self.first(peer, kind) {
            log(
                Level::Warn,
                Subsys::EpData,
                "srd",
                0,
                &format!(
                    "dropped {what} from {from} ({kind}); further ones from it are only counted"
                ),
            );
        }
    }
}

/// Shorthand for a core-subsystem warning.
pub fn warn(msg: &str) {
    log(Level::Warn, Subsys::Core, "srd", 0, msg);
}

/// `srd_log!(Level, Subsys, "fmt", args…)`: formats only when enabled.
#[macro_export]
macro_rules! srd_log {
    ($lvl:ident, $sub:ident, $($arg:tt)*) => {{
        use $crate::log::{Level, Subsys};
        if $crate::log::enabled(Level::$lvl, Subsys::$sub) {
            $crate::log::log(Level::$lvl, Subsys::$sub, module_path!(), line!(), &format!($($arg)*));
        }
    }};
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn once_per_sender_and_kind_and_bounded() {
        let mut o = Once::new(2);
        let a = Once::key(SocketAddrV4::new([10, 0, 0, 1].into(), 5));
        let b = Once::key(SocketAddrV4::new([10, 0, 0, 1].into(), 6));
        assert!(o.first(a, "checksum"));
        assert!(!o.first(a, "checksum"));
        assert!(o.first(a, "bad_qkey"));
        // Full: new pairs are no longer remembered or reported.
        assert!(!o.first(b, "checksum"));
        assert!(!o.first(b, "checksum"));
        assert_eq!(o.seen.len(), 2);
    }
}
