//! Long-CTS: a REQ without data announces the message; once the receiver
//! has matched it, it grants credit (CTS: "send every byte below
//! grant_end") and the sender answers with DATA packets. The receiver
//! extends the grant when half of it has arrived, so long messages stream
//! at the receiver's pace and never flood its storage.

use super::{payload, req_header};
use crate::rdm::tx::TxOp;
use crate::wire::rdm::{DATA_LEN, DataRepr, REQ_LEN, emit_data, emit_req};

pub fn emit(
    op: &mut TxOp,
    tx_id: u32,
    inject: &[u8],
    addr: Option<&[u8]>,
    out: &mut [u8],
    zc: bool,
) -> Option<(usize, u32)> {
    if !op.req_sent {
        if out.len() < REQ_LEN + addr.map_or(0, <[u8]>::len) {
            return None;
        }
        let n = emit_req(out, &req_header(op, tx_id, 0), addr);
        op.req_sent = true;
        return Some((n, 0));
    }
    let end = op.granted.min(op.len);
    if op.next_off >= end || out.len() <= DATA_LEN {
        return None;
    }
    let off = op.next_off;
    let n = ((end - off) as usize).min(out.len() - DATA_LEN);
    let at = emit_data(
        out,
        &DataRepr {
            msg_id: op.msg_id,
            rx_id: op.rx_id,
            offset: off,
        },
    );
    let (got, ext) = payload(op, inject, off, &mut out[at..at + n], zc);
    op.next_off = off + n as u64;
    Some((at + got, ext))
}

/// Sender side of a CTS: raise the grant (CTSs may arrive out of order).
pub fn on_cts(op: &mut TxOp, rx_id: u32, grant_end: u64) {
    op.rx_id = rx_id;
    op.granted = op.granted.max(grant_end.min(op.len));
}

/// Receiver side: the new grant once at most half of the window is still
/// outstanding, or `None` when no CTS is due.
pub fn next_grant(total: u64, received: u64, granted: u64, window: u64) -> Option<u64> {
    if granted >= total || granted.saturating_sub(received) > window / 2 {
        return None;
    }
    Some(total.min(received + window))
}
