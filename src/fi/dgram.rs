//! FI_EP_DGRAM: the raw device. Each message is one UD datagram; delivery
//! is best effort, unordered, and a message that meets no posted receive is
//! dropped (and counted), as on a UD QP.
//!
//! The datagram's payload starts with a frame byte: 0, or FRAME_DATA
//! followed by 8 bytes of remote CQ data (little-endian), then the
//! application's bytes. It fits in the header room DGRAM entries reserve
//! (offer::DGRAM_HEADER_RESERVE), so max_msg_size is the same either way.

use super::addr::{EpAddr, Kind};
use super::av::{ADDR_NOTAVAIL, Av};
use super::cq::{Entry, ErrEntry};
use super::errno::{Error, Result};
use super::ops::{RecvOp, SendOp};
use super::sink::{Dir, Sink};
use super::slab::Slab;
use super::transport::Transport;
use crate::bindings as b;
use crate::srd::{self, Ah, DeviceAddr, Opcode, Pd, QpType, RecvWr, SendWr, WcStatus};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

/// The QKey every srd DGRAM endpoint uses.
pub const DGRAM_QKEY: u32 = 0x5344_4701;
/// Frame byte: remote CQ data follows.
const FRAME_DATA: u8 = 1;
/// Largest frame (byte + CQ data).
pub const FRAME_MAX: usize = 9;

struct PendingSend {
    context: usize,
    report: bool,
}

struct PendingRecv {
    op: RecvOp,
    /// Canceled by the application: the device still holds its buffer, so
    /// the slot (and wr_id) stays taken until the device gives it back.
    canceled: bool,
}

/// A completion waiting for room in the CQ.
enum Done {
    Ok(Dir, Entry, bool),
    Err(Dir, ErrEntry),
}

pub struct Dgram {
    t: Transport,
    pd: Pd,
    cq: srd::Cq,
    qpn: u32,
    /// Bytes of the UD prefix the application's buffers carry (0 or 40).
    prefix: usize,
    /// Largest payload accepted: the max_msg_size fi_info advertised.
    max_msg: usize,
    ahs: HashMap<DeviceAddr, Ah>,
    sends: Slab<PendingSend>,
    recvs: Slab<PendingRecv>,
    rx_pool: Vec<Vec<u8>>,
    stash: VecDeque<Done>,
    scratch: Vec<u8>,
    nonce: u64,
    host_id: u64,
}

impl Dgram {
    /// `max_msg`: the advertised ep_attr->max_msg_size (clipped to what
    /// the device carries).
    #[allow(clippy::too_many_arguments)]
    pub fn open(
        t: Transport,
        prefix: usize,
        max_msg: usize,
        tx: usize,
        rx: usize,
        host_id: u64,
        nonce: u64,
    ) -> Result<Dgram> {
        let mut t = t;
        let (pd, cq, qpn) = t.open_qp(
            QpType::Ud,
            DGRAM_QKEY,
            u32::try_from(tx).unwrap_or(1024),
            u32::try_from(rx).unwrap_or(1024),
        )?;
        let dev = &t.dev;
        let buf_len = dev.max_payload() + srd::UD_PREFIX;
        let max_msg = max_msg.min(dev.max_payload().saturating_sub(FRAME_MAX));
        Ok(Dgram {
            max_msg,
            scratch: Vec::with_capacity(dev.max_payload()),
            rx_pool: (0..rx.min(256)).map(|_| vec![0u8; buf_len]).collect(),
            t,
            pd,
            cq,
            qpn,
            prefix,
            ahs: HashMap::new(),
            sends: Slab::new(tx),
            recvs: Slab::new(rx),
            stash: VecDeque::new(),
            nonce,
            host_id,
        })
    }

    pub fn name(&self) -> EpAddr {
        EpAddr {
            kind: Kind::Dgram,
            sock: self.t.local(),
            qpn: self.qpn,
            qkey: DGRAM_QKEY,
            host_id: self.host_id,
            nonce: self.nonce,
            pid: 0,
        }
    }

    pub fn max_msg(&self) -> usize {
        self.max_msg
    }

    pub fn tx_room(&self) -> usize {
        self.t.dev.send_room(self.qpn).min(self.sends.room())
    }

    pub fn rx_room(&self) -> usize {
        self.recvs.room()
    }

    pub fn send(&mut self, av: &Av, op: SendOp) -> Result<()> {
        let peer = av.lookup(op.dest).ok_or(Error::Inval)?;
        if peer.kind != Kind::Dgram {
            return Err(Error::Inval);
        }
        let total = op.iov.len();
        if total < self.prefix {
            return Err(Error::Inval);
        }
        let payload = total - self.prefix;
        if payload > self.max_msg {
            return Err(Error::MsgSize);
        }
        if self.tx_room() == 0 {
            self.progress_io();
            if self.tx_room() == 0 {
                return Err(Error::Again);
            }
        }
        let dst = DeviceAddr::new(*peer.sock.ip(), peer.sock.port());
        let ah = match self.ahs.get(&dst) {
            Some(&ah) => ah,
            None => {
                let ah = self
                    .t
                    .dev
                    .create_ah(self.pd, dst)
                    .map_err(|_| Error::Again)?;
                self.ahs.insert(dst, ah);
                ah
            }
        };
        let frame = if op.flags & b::FI_REMOTE_CQ_DATA != 0 {
            self.scratch.clear();
            self.scratch.push(FRAME_DATA);
            self.scratch.extend_from_slice(&op.data.to_le_bytes());
            FRAME_MAX
        } else {
            self.scratch.clear();
            self.scratch.push(0);
            1
        };
        self.scratch.resize(frame + payload, 0);
        op.iov.copy_out(self.prefix, &mut self.scratch[frame..]);
        let id = self
            .sends
            .insert(PendingSend {
                context: op.context,
                report: op.report,
            })
            .ok_or(Error::Again)?;
        let wr = SendWr {
            wr_id: u64::from(id),
            ah,
            remote_qpn: peer.qpn,
            remote_qkey: peer.qkey,
            data: &self.scratch,
        };
        if let Err(e) = self.t.dev.post_send(self.qpn, wr) {
            self.sends.remove(id);
            return Err(match e {
                srd::SrdError::QueueFull => Error::Again,
                srd::SrdError::TooLong => Error::MsgSize,
                _ => Error::Inval,
            });
        }
        // Data was copied: the application's buffer is free again, and the
        // datagram leaves now rather than at the next progress call.
        self.t.pump();
        Ok(())
    }

    pub fn recv(&mut self, op: RecvOp) -> Result<()> {
        if op.iov.len() < self.prefix {
            return Err(Error::Inval);
        }
        let buf = match self.rx_pool.pop() {
            Some(b) => b,
            None => vec![0u8; self.t.dev.max_payload() + srd::UD_PREFIX],
        };
        let id = match self.recvs.insert(PendingRecv {
            op,
            canceled: false,
        }) {
            Some(id) => id,
            None => {
                self.rx_pool.push(buf);
                return Err(Error::Again);
            }
        };
        if let Err(e) = self.t.dev.post_recv(
            self.qpn,
            RecvWr {
                wr_id: u64::from(id),
                buf,
            },
        ) {
            self.recvs.remove(id);
            return Err(match e {
                srd::SrdError::QueueFull => Error::Again,
                _ => Error::Inval,
            });
        }
        Ok(())
    }

    fn progress_io(&mut self) {
        self.t.pump();
    }

    /// Moves datagrams and turns device completions into CQ entries.
    pub fn progress(&mut self, sink: &Sink, av: Option<&Arc<Av>>) {
        self.t.pump();
        // First what waited for CQ room.
        while let Some(d) = self.stash.pop_front() {
            if let Err(d) = deliver(sink, d) {
                self.stash.push_front(d);
                return;
            }
        }
        while sink.room(Dir::Tx) && sink.room(Dir::Rx) {
            let Some(c) = self.t.dev.poll_cq(self.cq) else {
                break;
            };
            let done = match c.opcode {
                Opcode::Send => self.send_done(c),
                Opcode::Recv => self.recv_done(c, av),
            };
            if let Some(d) = done
                && let Err(d) = deliver(sink, d)
            {
                self.stash.push_back(d);
                break;
            }
        }
    }

    fn send_done(&mut self, c: srd::Completion) -> Option<Done> {
        let s = self.sends.remove(u32::try_from(c.wr_id).ok()?)?;
        let entry = Entry {
            context: s.context,
            flags: b::FI_SEND | b::FI_MSG,
            len: 0,
            ..Default::default()
        };
        Some(if c.status == WcStatus::Success {
            Done::Ok(Dir::Tx, entry, s.report)
        } else {
            Done::Err(
                Dir::Tx,
                ErrEntry {
                    entry,
                    err: b::FI_EIO,
                    prov_errno: c.status as i32,
                    ..Default::default()
                },
            )
        })
    }

    fn recv_done(&mut self, c: srd::Completion, av: Option<&Arc<Av>>) -> Option<Done> {
        let id = u32::try_from(c.wr_id).ok()?;
        let mut r = self.recvs.remove(id)?;
        let buf = c.buf?;
        if r.canceled {
            self.rx_pool.push(buf);
            return None;
        }
        let src = c
            .src
            .and_then(|(a, qpn)| av.and_then(|av| av.find(&(a.socket(), qpn))))
            .unwrap_or(ADDR_NOTAVAIL);
        let mut entry = Entry {
            context: r.op.context,
            flags: b::FI_RECV | b::FI_MSG,
            buf: r.op.iov.base_addr(),
            src,
            ..Default::default()
        };
        let done = if c.status != WcStatus::Success {
            Done::Err(
                Dir::Rx,
                ErrEntry {
                    entry,
                    err: if c.status == WcStatus::Flushed {
                        b::FI_ECANCELED
                    } else {
                        b::FI_EIO
                    },
                    prov_errno: c.status as i32,
                    ..Default::default()
                },
            )
        } else {
            // The device wrote a 40-byte prefix, then the frame and the
            // payload; the application sees the prefix (FI_MSG_PREFIX) and
            // the payload.
            let body = &buf[srd::UD_PREFIX..];
            let len = c.len.min(body.len());
            match parse_frame(&body[..len]) {
                None => Done::Err(
                    Dir::Rx,
                    ErrEntry {
                        entry,
                        err: b::FI_EIO,
                        ..Default::default()
                    },
                ),
                Some((data, start)) => {
                    let payload = &body[start..len];
                    let mut got = 0;
                    if self.prefix > 0 {
                        got = r.op.iov.copy_in(0, &buf[..srd::UD_PREFIX]);
                    }
                    let want = self.prefix + payload.len();
                    if got == self.prefix {
                        got += r.op.iov.copy_in(self.prefix, payload);
                    }
                    entry.len = got;
                    if let Some(d) = data {
                        entry.flags |= b::FI_REMOTE_CQ_DATA;
                        entry.data = d;
                    }
                    if got < want {
                        Done::Err(
                            Dir::Rx,
                            ErrEntry {
                                entry,
                                olen: want - got,
                                err: b::FI_ETRUNC as i32,
                                ..Default::default()
                            },
                        )
                    } else {
                        Done::Ok(Dir::Rx, entry, r.op.report)
                    }
                }
            }
        };
        if self.rx_pool.len() < 256 {
            self.rx_pool.push(buf);
        }
        Some(done)
    }

    /// Cancels a posted receive by context.
    pub fn cancel(&mut self, sink: &Sink, context: usize) -> bool {
        let Some(id) = self.recvs.find(|r| !r.canceled && r.op.context == context) else {
            return false;
        };
        let Some(r) = self.recvs.get_mut(id) else {
            return false;
        };
        r.canceled = true;
        let e = ErrEntry {
            entry: Entry {
                context,
                flags: b::FI_RECV | b::FI_MSG,
                buf: r.op.iov.base_addr(),
                ..Default::default()
            },
            err: b::FI_ECANCELED,
            ..Default::default()
        };
        if sink.err(Dir::Rx, e.clone()).is_err() {
            self.stash.push_back(Done::Err(Dir::Rx, e));
        }
        true
    }

    pub fn wait(&self, d: Duration) {
        self.t.wait(d);
    }

    pub fn fds(&self, out: &mut Vec<i32>) {
        self.t.fds(out);
    }

    /// Time until the device's next timer.
    pub fn next_timer(&self) -> Option<Duration> {
        let now = self.t.now();
        self.t
            .dev
            .poll_timeout()
            .map(|t| Duration::from_nanos(t.saturating_sub(now)))
    }
}

#[allow(clippy::result_large_err)] // the Err hands the completion back to be kept
/// The frame of a received payload: remote CQ data, if any, and where the
/// application's bytes start. None for a malformed frame.
fn parse_frame(body: &[u8]) -> Option<(Option<u64>, usize)> {
    match *body.first()? {
        0 => Some((None, 1)),
        FRAME_DATA => {
            let d = body.get(1..FRAME_MAX)?;
            Some((Some(u64::from_le_bytes(d.try_into().ok()?)), FRAME_MAX))
        }
        _ => None,
    }
}

// The error hands the completion back to be kept for later, by value.
#[allow(clippy::result_large_err)]
fn deliver(sink: &Sink, d: Done) -> std::result::Result<(), Done> {
    match d {
        Done::Ok(dir, e, report) => sink
            .ok(dir, e, report)
            .map_err(|_| Done::Ok(dir, e, report)),
        Done::Err(dir, e) => sink.err(dir, e.clone()).map_err(|_| Done::Err(dir, e)),
    }
}
