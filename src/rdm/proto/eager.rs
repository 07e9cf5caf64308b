//! Eager: the whole message inline in one REQ packet.

use super::{Source, req_header};
use crate::rdm::tx::TxOp;
use crate::wire::rdm::emit_req;

pub fn emit(
    op: &mut TxOp,
    tx_id: u32,
    inject: &[u8],
    addr: Option<&[u8]>,
    out: &mut [u8],
) -> Option<usize> {
    let hdr = req_header(op, tx_id, 0);
    let need = crate::wire::rdm::REQ_LEN + addr.map_or(0, <[u8]>::len) + op.len as usize;
    if out.len() < need {
        return None;
    }
    let at = emit_req(out, &hdr, addr);
    let src = Source {
        iov: op.iov.as_ref(),
        inject,
    };
    let n = src.copy_out(0, &mut out[at..at + op.len as usize]);
    op.req_sent = true;
    op.next_off = op.len;
    Some(at + n)
}
