//! Long-read: one REQ whose payload describes the sender's buffer (pid,
//! then (address, length) segments; `wire::rdm::CmaDesc`). The receiver,
//! once the message is matched, copies the bytes it has room for straight
//! from the sender's memory into the receive buffer (CMA) and answers FIN;
//! the sender completes on the FIN. If the receiver cannot read (CMA
//! refused), it answers with a CTS instead and the message continues as
//! long-CTS (`on_cts` switches the send over).

use super::req_header;
use crate::rdm::cma::{desc_len, describe};
use crate::rdm::tx::TxOp;
use crate::wire::rdm::{REQ_LEN, emit_cma_desc, emit_req};

pub fn emit(
    op: &mut TxOp,
    tx_id: u32,
    pid: u32,
    addr: Option<&[u8]>,
    out: &mut [u8],
) -> Option<usize> {
    if op.req_sent {
        return None;
    }
    let segs = op.iov.as_ref().and_then(describe)?;
    if out.len() < REQ_LEN + addr.map_or(0, <[u8]>::len) + desc_len(&segs) {
        return None;
    }
    let at = emit_req(out, &req_header(op, tx_id, 0), addr);
    let n = emit_cma_desc(&mut out[at..], pid, &segs);
    op.req_sent = true;
    Some(at + n)
}
