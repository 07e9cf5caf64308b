//! Medium: the message split over several REQ packets, each carrying the
//! full header and its offset, sent without waiting for the receiver (the
//! receiver stores what arrives before the receive is posted, bounded).

use super::{payload, req_header};
use crate::rdm::tx::TxOp;
use crate::wire::rdm::{REQ_LEN, emit_req};

pub fn emit(
    op: &mut TxOp,
    tx_id: u32,
    inject: &[u8],
    addr: Option<&[u8]>,
    out: &mut [u8],
    zc: bool,
) -> Option<(usize, u32)> {
    let hdr_len = REQ_LEN + addr.map_or(0, <[u8]>::len);
    if out.len() <= hdr_len {
        return None;
    }
    let off = op.next_off;
    let n = ((op.len - off) as usize).min(out.len() - hdr_len);
    let at = emit_req(out, &req_header(op, tx_id, off), addr);
    let (got, ext) = payload(op, inject, off, &mut out[at..at + n], zc);
    op.req_sent = true;
    op.next_off = off + n as u64;
    Some((at + got, ext))
}
