//! Where an endpoint's completions go: its bound CQs and counters.

use super::cntr::Cntr;
use super::cq::{Cq, Entry, ErrEntry};
use super::errno::Result;
use std::sync::Arc;

/// Direction of an operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dir {
    Tx,
    Rx,
}

/// Bound CQs and counters of one endpoint.
#[derive(Clone, Debug, Default)]
pub struct Sink {
    pub tx_cq: Option<Arc<Cq>>,
    pub rx_cq: Option<Arc<Cq>>,
    pub tx_selective: bool,
    pub rx_selective: bool,
    pub send_cntr: Option<Arc<Cntr>>,
    pub recv_cntr: Option<Arc<Cntr>>,
    /// FI_READ / FI_WRITE: RMA and atomics this endpoint initiated.
    pub read_cntr: Option<Arc<Cntr>>,
    pub write_cntr: Option<Arc<Cntr>>,
    /// FI_REMOTE_READ / FI_REMOTE_WRITE: peers' RMA and atomics on our memory.
    pub remote_read_cntr: Option<Arc<Cntr>>,
    pub remote_write_cntr: Option<Arc<Cntr>>,
    /// The endpoint has FI_SOURCE_ERR: unknown senders are error entries
    /// (FI_EADDRNOTAVAIL). Without it they are successes from
    /// FI_ADDR_NOTAVAIL (fi_cq(3)).
    pub source_err: bool,
}

impl Sink {
    fn cq(&self, d: Dir) -> Option<&Arc<Cq>> {
        match d {
            Dir::Tx => self.tx_cq.as_ref(),
            Dir::Rx => self.rx_cq.as_ref(),
        }
    }

    fn cntr(&self, d: Dir) -> Option<&Arc<Cntr>> {
        match d {
            Dir::Tx => self.send_cntr.as_ref(),
            Dir::Rx => self.recv_cntr.as_ref(),
        }
    }

    /// Whether an operation posted with `flags` (after defaults) reports a
    /// successful completion to the CQ.
    pub fn reports(&self, d: Dir, flags: u64) -> bool {
        let selective = match d {
            Dir::Tx => self.tx_selective,
            Dir::Rx => self.rx_selective,
        };
        !selective || flags & crate::bindings::FI_COMPLETION != 0
    }

    /// Room for one more entry in the CQ of `d` (always true without one).
    pub fn room(&self, d: Dir) -> bool {
        self.cq(d).is_none_or(|c| c.has_room(1))
    }

    /// Delivers a success; `Err(Again)` if the CQ is full (keep it).
    /// The counter an operation with completion `flags` counts in.
    fn cntr_for(&self, d: Dir, flags: u64) -> Option<&Arc<Cntr>> {
        use crate::bindings as b;
        if flags & b::FI_REMOTE_WRITE != 0 {
            // Counted through `remote`, once per operation, not here.
            None
        } else if flags & (b::FI_RMA | b::FI_ATOMIC) != 0 {
            if flags & b::FI_READ != 0 {
                self.read_cntr.as_ref()
            } else {
                self.write_cntr.as_ref()
            }
        } else {
            self.cntr(d)
        }
    }

    pub fn ok(&self, d: Dir, e: Entry, report: bool) -> Result<()> {
        if report && let Some(cq) = self.cq(d) {
            cq.push(e)?;
        }
        if let Some(c) = self.cntr_for(d, e.flags) {
            c.inc();
        }
        Ok(())
    }

    /// Counts peers' completed accesses to our memory.
    pub fn remote(&self, reads: u64, writes: u64) {
        if let (Some(c), true) = (&self.remote_read_cntr, reads > 0) {
            c.add(reads, false);
        }
        if let (Some(c), true) = (&self.remote_write_cntr, writes > 0) {
            c.add(writes, false);
        }
    }

    /// Delivers an error; `Err(Again)` if the CQ is full (keep it).
    pub fn err(&self, d: Dir, e: ErrEntry) -> Result<()> {
        if !self.source_err && e.err == crate::bindings::FI_EADDRNOTAVAIL {
            // The data arrived; only the sender is unknown. (The engine
            // reports these errors even for receives that selective
            // completion would keep quiet; so does this success.)
            return self.ok(d, e.entry, true);
        }
        let flags = e.entry.flags;
        if let Some(cq) = self.cq(d) {
            cq.push_err(e)?;
        }
        if let Some(c) = self.cntr_for(d, flags) {
            c.inc_err();
        }
        Ok(())
    }
}
