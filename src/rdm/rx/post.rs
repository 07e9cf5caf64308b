//! The receive-side calls: posting receives (FI_MULTI_RECV,
//! FI_DIRECTED_RECV), FI_PEEK/FI_CLAIM/FI_DISCARD, cancel, and failing
//! receives directed at a broken peer.

use super::{MsgState, Rx, RxOp, kind_flags};
use crate::mem::UserIov;
use crate::rdm::outbox::{Ctx, Outbox};
use crate::rdm::peer::PeerIdx;
use crate::rdm::pool::{Handle, NIL};
use crate::rdm::types::{CompFlags, ErrorKind, OpFlags};
use crate::rdm::{Completion, CompletionError, RdmError};

/// What a receive matches: its tag and ignore bits, and the source of a
/// directed receive.
#[derive(Clone, Copy, Debug)]
pub(in crate::rdm) struct Want {
    pub tag: u64,
    pub ignore: u64,
    pub src: Option<PeerIdx>,
}

impl Rx {
    fn report(&self, flags: OpFlags) -> bool {
        !self.selective || flags.contains(OpFlags::COMPLETION)
    }

    /// fi_recv/fi_recvmsg (FI_MULTI_RECV allowed) and fi_trecv/fi_trecvmsg
    /// (FI_PEEK, FI_CLAIM, FI_DISCARD allowed).
    pub fn post(
        &mut self,
        ctx: &mut Ctx<'_>,
        iov: UserIov,
        tagged: bool,
        want: Want,
        context: u64,
        flags: OpFlags,
    ) -> Result<(), RdmError> {
        if tagged && flags.contains(OpFlags::PEEK) {
            return self.peek(ctx, iov, want, context, flags);
        }
        if tagged && flags.contains(OpFlags::CLAIM) {
            return self.claimed_recv(ctx, iov, context, flags);
        }
        let Want { tag, ignore, src } = want;
        let multi = !tagged && flags.contains(OpFlags::MULTI_RECV);
        if multi && iov.len() < self.min_multi.max(1) {
            return Err(RdmError::InvalidArgument);
        }
        let op = RxOp {
            len: iov.len(),
            iov: Some(iov),
            context,
            tagged,
            multi,
            used: 0,
            refs: 0,
            posted: None,
            report: self.report(flags),
        };
        let Ok(rx) = self.recvs.insert(op) else {
            return Err(RdmError::Again);
        };
        let tag = tag & !ignore;
        // Unexpected messages first: they arrived before this receive.
        loop {
            let matcher = self.matcher_mut(tagged);
            let Some((h, m)) = matcher.find_unexpected(tag, ignore, src) else {
                break;
            };
            matcher.remove_unexpected(h);
            let Some(m) = self.msgs.handle_at(m) else {
                continue;
            };
            // A multi-receive buffer is "posted" while it has room.
            if let Some(op) = self.recvs.get_mut(rx) {
                op.posted = if multi {
                    Some(Handle::from_parts(NIL, 0))
                } else {
                    None
                };
            }
            self.attach(ctx, m, rx);
            let open = self
                .recvs
                .get_mut(rx)
                .is_some_and(|op| op.posted.take().is_some());
            if !open {
                return Ok(());
            }
        }
        if let Some(kind) = src.and_then(|p| ctx.peers.broken(p)) {
            // Directed at a broken peer, and nothing it sent before
            // matched: no message can come any more.
            let iov = self.recvs.remove(rx).and_then(|op| op.iov);
            let mut flags = kind_flags(tagged);
            if multi {
                flags |= CompFlags::MULTI_RECV;
            }
            ctx.out.fail(context, flags, kind, 0, iov);
            return Ok(());
        }
        let h = self.matcher_mut(tagged).post(tag, ignore, src, rx.idx());
        if let Some(op) = self.recvs.get_mut(rx) {
            op.posted = h;
        }
        Ok(())
    }

    /// FI_PEEK (optionally with FI_CLAIM or FI_DISCARD).
    fn peek(
        &mut self,
        ctx: &mut Ctx<'_>,
        iov: UserIov,
        want: Want,
        context: u64,
        flags: OpFlags,
    ) -> Result<(), RdmError> {
        let Want { tag, ignore, src } = want;
        let found = self.tagged.find_unexpected(tag & !ignore, ignore, src);
        let Some((h, m)) = found.and_then(|(h, m)| Some((h, self.msgs.handle_at(m)?))) else {
            ctx.out.complete(Completion {
                context,
                flags: CompFlags::RECV | CompFlags::TAGGED,
                len: 0,
                buf: 0,
                data: 0,
                tag,
                src: None,
                report: true,
                err: Some(CompletionError {
                    kind: ErrorKind::NoMessage,
                    prov_errno: 0,
                    olen: 0,
                    err_data: Vec::new(),
                }),
                iov: Some(iov),
            });
            return Ok(());
        };
        let Some(msg) = self.msgs.get_mut(m) else {
            return Err(RdmError::Again);
        };
        let mut cflags = CompFlags::RECV | CompFlags::TAGGED;
        if msg.data.is_some() {
            cflags |= CompFlags::REMOTE_CQ_DATA;
        }
        let peer = ctx.peers.get(msg.peer);
        let err = peer.filter(|p| !p.in_av()).map(|p| CompletionError {
            kind: ErrorKind::AddrNotAvail,
            prov_errno: 0,
            olen: 0,
            err_data: p.addr().to_vec(),
        });
        ctx.out.complete(Completion {
            context,
            flags: cflags,
            len: msg.total as usize,
            buf: 0,
            data: msg.data.unwrap_or(0),
            tag: msg.tag,
            src: Some(msg.peer),
            report: true,
            err,
            iov: Some(iov),
        });
        if flags.contains(OpFlags::CLAIM) {
            msg.state = MsgState::Claimed(context);
            self.tagged.remove_unexpected(h);
        } else if flags.contains(OpFlags::DISCARD) {
            self.tagged.remove_unexpected(h);
            self.discard(ctx, m);
        }
        Ok(())
    }

    /// fi_trecv with FI_CLAIM: receive (or FI_DISCARD) the message an
    /// earlier FI_PEEK|FI_CLAIM with this context reserved.
    fn claimed_recv(
        &mut self,
        ctx: &mut Ctx<'_>,
        iov: UserIov,
        context: u64,
        flags: OpFlags,
    ) -> Result<(), RdmError> {
        let found = self
            .msgs
            .iter()
            .find(|(_, m)| m.state == MsgState::Claimed(context))
            .map(|(h, _)| h)
            .ok_or(RdmError::NoMessage)?;
        if flags.contains(OpFlags::DISCARD) {
            let (len, tag) = self
                .msgs
                .get(found)
                .map_or((0, 0), |m| (m.total as usize, m.tag));
            self.discard(ctx, found);
            ctx.out.complete(Completion {
                context,
                flags: CompFlags::RECV | CompFlags::TAGGED,
                len,
                buf: 0,
                data: 0,
                tag,
                src: None,
                report: self.report(flags),
                err: None,
                iov: Some(iov),
            });
            return Ok(());
        }
        let op = RxOp {
            len: iov.len(),
            iov: Some(iov),
            context,
            tagged: true,
            multi: false,
            used: 0,
            refs: 0,
            posted: None,
            report: self.report(flags),
        };
        let rx = self.recvs.insert(op).map_err(|_| RdmError::Again)?;
        self.attach(ctx, found, rx);
        Ok(())
    }

    /// Drops message `m`'s data (stored and to come).
    fn discard(&mut self, ctx: &mut Ctx<'_>, m: Handle) {
        let Some(msg) = self.msgs.get_mut(m) else {
            return;
        };
        msg.state = MsgState::Discard;
        self.store.release(&mut msg.stash, |_, _| {});
        self.msg_progress(ctx, m);
    }

    /// fi_cancel: a posted receive with this context completes with
    /// ErrorKind::Canceled. Returns whether one was found.
    pub fn cancel(&mut self, out: &mut Outbox, context: u64) -> bool {
        let found = self
            .recvs
            .iter()
            .find(|(_, op)| op.context == context && op.posted.is_some());
        let Some((rx, _)) = found else {
            return false;
        };
        let Some(op) = self.recvs.get_mut(rx) else {
            return false;
        };
        if let Some(h) = op.posted.take() {
            let tagged = op.tagged;
            self.matcher_mut(tagged).unpost(h);
        }
        self.fail_unposted(out, rx, ErrorKind::Canceled);
        true
    }

    /// Fails the posted receives directed at `peer` (it broke: nothing
    /// more will come from it). As `cancel`, with `kind`.
    pub(super) fn fail_directed(&mut self, out: &mut Outbox, peer: PeerIdx, kind: ErrorKind) {
        for tagged in [true, false] {
            for (h, rx) in self.matcher(tagged).posted_from(peer) {
                self.matcher_mut(tagged).unpost(h);
                let Some(rx) = self.recvs.handle_at(rx) else {
                    continue;
                };
                if let Some(op) = self.recvs.get_mut(rx) {
                    op.posted = None;
                }
                self.fail_unposted(out, rx, kind);
            }
        }
    }

    /// Ends the receive `rx`, already out of its matcher, with an error
    /// entry. A multi-receive buffer with messages still landing is
    /// released by the last of them (FI_MULTI_RECV on its completion).
    fn fail_unposted(&mut self, out: &mut Outbox, rx: Handle, kind: ErrorKind) {
        let Some(op) = self.recvs.get(rx) else {
            return;
        };
        let (context, tagged, multi, refs) = (op.context, op.tagged, op.multi, op.refs);
        let mut flags = kind_flags(tagged);
        let iov = if refs == 0 {
            if multi {
                flags |= CompFlags::MULTI_RECV;
            }
            self.recvs.remove(rx).and_then(|op| op.iov)
        } else {
            None
        };
        out.fail(context, flags, kind, 0, iov);
    }
}
