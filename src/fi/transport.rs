//! The I/O edge of an endpoint: one software SRD device driven over the UDP
//! backend. It owns the clock (monotonic nanoseconds since open), moves
//! datagrams between sockets and the device in batches, and runs timers.

use super::errno::{Error, Result};
use super::params::Params;
use crate::io::udp::{RecvBatch, SendItem, UdpBackend, UdpConfig};
use crate::srd::{
    Arrival, Cq as SrdCq, Device, DeviceAddr, DeviceConfig, ExtRef, Outgoing, Pd, QpAttr, QpState,
    QpType, Qpn,
};
use crate::wire::srd::DATA_HEADER_LEN;
use smallvec::SmallVec;
use std::net::SocketAddrV4;
use std::time::{Duration, Instant};

/// Datagrams read per receive batch (with GRO each may carry 64 KiB).
const BATCH: usize = 32;
/// After a read that brought data and emptied the sockets, how long the
/// next progress rounds skip reading (`Transport::rx_quiet`): shorter than
/// any round trip over UDP, longer than the gap between two CQ reads.
const RX_QUIET_NS: u64 = 1_000;
/// A datagram larger than this (or a GRO batch of segments) is part of a
/// bulk stream: a read that brought one is not taken as the end of the
/// traffic, since more of the stream follows at once (taking it so cost a
/// same-host 1 MiB stream over UDP 12 % of its rate).
const BULK_DATAGRAM: usize = 2048;
/// Datagrams handed to the kernel per send batch: enough for a full GSO
/// burst (64 segments) on each of two paths. A batch that reaches it
/// still takes the rest of the path burst it is in (up to `TX_MAX`), so a
/// burst is not cut in two GSO sends at a batch boundary.
const TX_BATCH: usize = 128;
/// Most datagrams in one send batch.
const TX_MAX: usize = TX_BATCH + 64;

/// Where the tails of zero-copy datagrams (`Outgoing::ext`) live: the
/// owner of the memory they name, asked each time one goes out.
pub trait ExtSource {
    /// Pushes the slices holding `e`'s bytes (at most `MAX_TAIL`) to
    /// `out`; `false` when they are gone (the send they belong to is
    /// over): the datagram is then not sent (the caller drops what was
    /// pushed).
    fn ext_slices<'a>(&'a self, e: ExtRef, out: &mut Vec<&'a [u8]>) -> bool;
}

/// For transports that never post zero-copy sends.
pub struct NoExt;

impl ExtSource for NoExt {
    fn ext_slices<'a>(&'a self, _: ExtRef, _: &mut Vec<&'a [u8]>) -> bool {
        false
    }
}

/// A device bound to UDP sockets.
pub struct Transport {
    pub dev: Device,
    pub udp: UdpBackend,
    rx: RecvBatch,
    /// Datagrams of `rx` from here on are not yet handed to the device.
    rx_pos: usize,
    /// The datagram of `rx` the last arrival came from.
    rx_cur: usize,
    /// Datagrams on their way to the kernel, still in the device's memory;
    /// the ones the kernel could not take yet come first, in order.
    tx: Vec<Outgoing>,
    /// Per send batch, kept for their memory (empty between batches):
    /// the zero-copy tails, where each datagram's tails are in them, the
    /// items handed to the kernel, those it did not take.
    tails: Vec<&'static [u8]>,
    spans: Vec<Option<(usize, usize)>>,
    items: Vec<SendItem<'static>>,
    unsent: Vec<usize>,
    epoch: Instant,
    /// The clock as read after the last system call that moved datagrams.
    /// A caller's `now` dates from the start of its round, and a round's
    /// sends and reads can take longer than the path's RTT: datagrams are
    /// stamped and arrivals dated no earlier than this, so an ack read
    /// after a send never dates from before it (an RTT sample of zero).
    clock: u64,
    /// Pump rounds (the non-primary paths are polled every 16th).
    pumps: u32,
    /// The batch in `rx` came from a read that emptied the sockets.
    rx_drained: bool,
    /// The batch in `rx` holds bulk data (`BULK_DATAGRAM`): more follows.
    rx_bulk: bool,
    /// Until then (`clock` nanoseconds) the sockets are not read again: the
    /// last read brought data and emptied them (`rx_quiet`).
    rx_quiet_until: u64,
    /// Zero-copy datagrams not sent because their send was over (its
    /// data acknowledged meanwhile, or failed).
    pub ext_gone: u64,
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transport")
            .field("addr", &self.dev.addr())
            .finish_non_exhaustive()
    }
}

impl Transport {
    /// Opens sockets on `local` (port 0: kernel-chosen; else path 0, the
    /// address peers send to, binds it) and a device whose datagrams fit
    /// `udp_payload`.
    pub fn open(
        local: SocketAddrV4,
        udp_payload: usize,
        params: &Params,
        tune: impl FnOnce(&mut DeviceConfig),
    ) -> Result<Transport> {
        let mut ucfg = UdpConfig::new(*local.ip(), params.paths);
        ucfg.port = local.port();
        // Fewer, larger packets through the kernel (the backend falls back
        // when the kernel refuses either).
        ucfg.gso = true;
        ucfg.gro = true;
        if params.drop_rate > 0.0 {
            ucfg = ucfg.with_drops(params.drop_rate, params.drop_seed, Default::default());
        }
        let udp = UdpBackend::open(ucfg)?;
        crate::io::crc::install();
        let mut cfg = DeviceConfig {
            addr: DeviceAddr::new(*udp.local_addr(0).ip(), udp.local_addr(0).port()),
            paths: u8::try_from(udp.paths()).unwrap_or(1),
            max_payload: udp_payload.saturating_sub(DATA_HEADER_LEN).max(256),
            epoch: epoch_seed(),
            dup_small: params.dup_small,
            ..DeviceConfig::default()
        };
        tune(&mut cfg);
        let dev = Device::new(cfg).map_err(|_| Error::Inval)?;
        Ok(Transport {
            // GRO hands back coalesced reads of up to 64 KiB.
            rx: RecvBatch::new(BATCH, crate::io::udp::DEFAULT_SLOT_SIZE),
            rx_pos: 0,
            rx_cur: 0,
            tx: Vec::with_capacity(TX_MAX),
            tails: Vec::with_capacity(TX_MAX),
            spans: Vec::with_capacity(TX_MAX),
            items: Vec::with_capacity(TX_MAX),
            unsent: Vec::with_capacity(TX_MAX),
            dev,
            udp,
            epoch: Instant::now(),
            clock: 0,
            pumps: 0,
            rx_drained: false,
            rx_bulk: false,
            rx_quiet_until: 0,
            ext_gone: 0,
        })
    }

    /// Creates the endpoint's one QP, with its PD and a CQ deep enough for
    /// both queues, and brings it to RTS.
    pub fn open_qp(
        &mut self,
        qp_type: QpType,
        qkey: u32,
        sq_depth: u32,
        rq_depth: u32,
    ) -> Result<(Pd, SrdCq, Qpn)> {
        let dev = &mut self.dev;
        let bad = |_| Error::Inval;
        let pd = dev.alloc_pd().map_err(bad)?;
        let cq = dev
            .create_cq(sq_depth.saturating_add(rq_depth))
            .map_err(bad)?;
        let qpn = dev
            .create_qp(QpAttr {
                pd,
                qp_type,
                qkey,
                send_cq: cq,
                recv_cq: cq,
                sq_depth,
                rq_depth,
            })
            .map_err(bad)?;
        for s in [QpState::Init, QpState::Rtr, QpState::Rts] {
            dev.modify_qp(qpn, s).map_err(bad)?;
        }
        Ok((pd, cq, qpn))
    }

    /// Monotonic nanoseconds since open.
    pub fn now(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// Reads the clock after a system call that moved datagrams.
    fn tick(&mut self) -> u64 {
        self.clock = self.now();
        self.clock
    }

    /// The address peers send to (path 0).
    pub fn local(&self) -> SocketAddrV4 {
        self.udp.local_addr(0)
    }

    /// One round of I/O: receive what is waiting, run due timers, send what
    /// the device has. Returns whether anything moved.
    pub fn pump(&mut self) -> bool {
        self.pump_budget(usize::MAX)
    }

    /// `pump`, handing at most `budget` datagrams to the device; the rest of
    /// a batch already read waits here for the next call, and unread ones in
    /// the kernel. A receiver whose budget is its posted receive buffers
    /// does not answer a burst with RNR NAKs (with GRO one read can carry
    /// many more datagrams than the receive queue has buffers).
    pub fn pump_budget(&mut self, mut budget: usize) -> bool {
        let now = self.now();
        let mut moved = self.feed(now, &mut budget);
        if self.rx_pos >= self.rx.len() && budget > 0 {
            // Peers send to path 0: read it directly (an empty read costs one
            // system call, as a poll(2) would). The other paths (ICMP errors,
            // odd peers) are looked at with one poll(2) every few rounds.
            self.pumps = self.pumps.wrapping_add(1);
            let mut mask = 1u32;
            if self.pumps.is_multiple_of(16) && self.udp.paths() > 1 {
                mask |= self.udp.readable_paths(Some(Duration::ZERO)).unwrap_or(0);
            }
            // Receive up to a few batches so a burst does not starve sending.
            for _ in 0..4 {
                let r = self.udp.recv_batch_paths(&mut self.rx, mask);
                self.rx_pos = 0;
                match r {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        moved = true;
                        let now = self.tick();
                        self.feed(now, &mut budget);
                        if n < BATCH || self.rx_pos < self.rx.len() {
                            break;
                        }
                    }
                }
            }
        }
        let now = now.max(self.clock);
        if self.dev.poll_timeout().is_some_and(|t| t <= now) {
            self.dev.handle_timeout(now);
        }
        moved |= self.flush(now, &NoExt);
        moved
    }

    /// Sends what the device has, without reading first: a new operation's
    /// datagrams go out at once (a receive system call before them only
    /// adds latency; the next progress round reads).
    pub fn push(&mut self, ext: &dyn ExtSource) -> bool {
        let now = self.now();
        self.flush(now, ext)
    }

    /// The next SRD data the device takes in place (`Device::set_in_place`),
    /// reading the sockets when the last batch is used up; `None` when
    /// nothing more is waiting. The caller must take each arrival (its
    /// bytes: `arrival_bytes`) before asking for the next: the device has
    /// accepted it. Acks and other datagrams on the way are handled by the
    /// device as usual.
    ///
    /// A read that came back short emptied the sockets: once its batch is
    /// used up the call after returns `None` without reading again (that
    /// read would almost always say EAGAIN, one more system call between an
    /// arrival and its completion); the call after that reads.
    pub fn next_arrival(&mut self, now: u64) -> Option<Arrival> {
        let debug = crate::log::debug_data();
        for _ in 0..2 {
            let now = now.max(self.clock);
            while let Some(item) = self.rx.get(self.rx_pos) {
                let i = self.rx_pos;
                self.rx_pos += 1;
                if debug {
                    log_datagram("rx", item.src, item.data);
                }
                if let Some(a) = self
                    .dev
                    .handle_datagram(now, item.path, item.src, item.data)
                {
                    self.rx_cur = i;
                    return Some(a);
                }
            }
            if std::mem::take(&mut self.rx_drained) {
                return None;
            }
            // Peers send to path 0: read it directly; the other paths (ICMP
            // errors, odd peers) are looked at with one poll(2) every few
            // reads.
            self.pumps = self.pumps.wrapping_add(1);
            let mut mask = 1u32;
            if self.pumps.is_multiple_of(16) && self.udp.paths() > 1 {
                mask |= self.udp.readable_paths(Some(Duration::ZERO)).unwrap_or(0);
            }
            let r = self.udp.recv_batch_paths(&mut self.rx, mask);
            self.rx_pos = 0;
            if !matches!(r, Ok(n) if n > 0) {
                return None;
            }
            // A short read emptied the sockets, unless it brought a piece
            // of a bulk stream (then more is on its way).
            self.rx_bulk = (0..self.rx.len()).any(|i| {
                self.rx
                    .get(i)
                    .is_some_and(|it| it.data.len() > BULK_DATAGRAM)
            });
            self.rx_drained = !self.rx.full() && !self.rx_bulk;
            // Dated from the read (the caller's `now` may predate a send
            // whose ack is in this batch).
            let at = self.tick();
            if self.rx_drained {
                self.rx_quiet_until = at + RX_QUIET_NS;
            }
        }
        // Both reads' batches used up here: this was the call that ends
        // the round.
        self.rx_drained = false;
        None
    }

    /// Whether a read at `now` (a fresh clock) would follow, by less than
    /// `RX_QUIET_NS`, a read that brought data and emptied the sockets. A
    /// caller that has just taken a completion usually asks again at once
    /// (Open MPI's progress reads the CQ until it is empty): that read
    /// would almost always find nothing, and it stands between an arrival
    /// and the answer the application sends to it.
    pub fn rx_quiet(&self, now: u64) -> bool {
        now < self.rx_quiet_until && self.rx_pos >= self.rx.len()
    }

    /// Whether datagrams may be waiting that `next_arrival` has not
    /// returned: some of the last batch are left, or its read filled it or
    /// brought bulk data.
    pub fn rx_more(&self) -> bool {
        self.rx_pos < self.rx.len() || self.rx.full() || self.rx_bulk
    }

    /// The payload of an arrival `next_arrival` just returned.
    pub fn arrival_bytes(&self, a: &Arrival) -> &[u8] {
        self.rx
            .get(self.rx_cur)
            .and_then(|item| item.data.get(a.offset..a.offset + a.len))
            .unwrap_or(&[])
    }

    /// The rest of an I/O round after reading: due device timers, then
    /// what the device has to send.
    pub fn service(&mut self, now: u64, ext: &dyn ExtSource) -> bool {
        let now = now.max(self.clock);
        if self.dev.poll_timeout().is_some_and(|t| t <= now) {
            self.dev.handle_timeout(now);
        }
        self.flush(now, ext)
    }

    /// Hands waiting datagrams of the last batch to the device, at most
    /// `budget` (which it lowers).
    fn feed(&mut self, now: u64, budget: &mut usize) -> bool {
        let mut any = false;
        let debug = crate::log::debug_data();
        while *budget > 0
            && let Some(item) = self.rx.get(self.rx_pos)
        {
            if debug {
                log_datagram("rx", item.src, item.data);
            }
            self.dev
                .handle_datagram(now, item.path, item.src, item.data);
            self.rx_pos += 1;
            *budget -= 1;
            any = true;
        }
        any
    }

    /// Sends queued datagrams, then asks the device for more. Datagrams go
    /// to the kernel straight from the device's buffers, a zero-copy one
    /// with its tail gathered from where `ext` says it lives (looked up
    /// again on every attempt: a send that ended meanwhile is not read).
    fn flush(&mut self, now: u64, ext: &dyn ExtSource) -> bool {
        let mut moved = false;
        // Each batch is stamped with the clock after the previous send.
        let mut now = now.max(self.clock);
        let debug = crate::log::debug_data();
        loop {
            // A datagram on another path than the last, taken once the
            // batch is full: the first of the next batch.
            let mut next = None;
            while self.tx.len() < TX_MAX {
                let Some(o) = self.dev.poll_outgoing(now) else {
                    break;
                };
                if debug {
                    log_datagram("tx", o.dst, self.dev.datagram(&o));
                }
                if self.tx.len() >= TX_BATCH && self.tx.last().is_some_and(|l| l.path != o.path) {
                    next = Some(o);
                    break;
                }
                self.tx.push(o);
            }
            let n = self.tx.len();
            if n == 0 {
                return moved;
            }
            if n == 1 && self.tx[0].ext.is_none() {
                // One datagram from the device's memory and nothing after
                // it (a small message, an ack): no batch to assemble.
                // sendto(2), not a batch of one through sendmmsg(2).
                let o = self.tx[0];
                let data = self.dev.datagram(&o);
                // Err: it could not go; dropped as in a batch below.
                let sent = self.udp.send_to(usize::from(o.path), o.dst, data);
                self.tick();
                if matches!(sent, Ok(false)) {
                    return moved;
                }
                self.tx.clear();
                self.dev.sent(o);
                return true;
            }
            let dev = &self.dev;
            // Tails first (all borrowed before any item names them); a
            // datagram whose tail is gone is left out and handed back. The
            // vectors are the transport's, emptied after each batch (no
            // allocation and no copy of a batch-sized array per batch).
            let mut tails = reuse(std::mem::take(&mut self.tails));
            self.spans.clear();
            for o in &self.tx {
                let span = match o.ext {
                    None => Some((0, 0)),
                    Some(e) => {
                        let at = tails.len();
                        if ext.ext_slices(e, &mut tails) {
                            Some((at, tails.len()))
                        } else {
                            tails.truncate(at);
                            None
                        }
                    }
                };
                self.ext_gone += u64::from(span.is_none());
                self.spans.push(span);
            }
            let mut send = reuse_items(std::mem::take(&mut self.items));
            send.extend(self.tx.iter().zip(&self.spans).filter_map(|(o, span)| {
                let (a, b) = (*span)?;
                Some(SendItem {
                    path: o.path,
                    dst: o.dst,
                    data: dev.datagram(o),
                    tail: &tails[a..b],
                })
            }));
            let sent = match self.udp.send_batch(&mut send) {
                Ok(k) => k,
                // Nothing could go: drop the batch; SRD retransmits, UD is best effort.
                Err(_) => send.len(),
            };
            moved |= sent > 0;
            // send_batch put the unsent items last, in order: find which
            // (by the address of their bytes in the device's memory and
            // their path: a duplicate shares the bytes, not the path).
            let mut keep: SmallVec<[Outgoing; 8]> = SmallVec::new();
            self.unsent.clear();
            for it in &send[sent..] {
                let unsent = &self.unsent;
                if let Some(i) = (0..self.tx.len()).find(|&i| {
                    let o = &self.tx[i];
                    o.path == it.path
                        && dev.datagram(o).as_ptr() == it.data.as_ptr()
                        && !unsent.contains(&i)
                }) {
                    self.unsent.push(i);
                    keep.push(self.tx[i]);
                }
            }
            self.items = reuse_items(send);
            self.tails = reuse(tails);
            now = self.tick();
            for (i, o) in self.tx.drain(..).enumerate() {
                if !self.unsent.contains(&i) {
                    self.dev.sent(o);
                }
            }
            let full = !keep.is_empty();
            // Socket buffers full: these wait for the next round.
            self.tx.extend(keep);
            self.tx.extend(next);
            if full {
                return moved;
            }
        }
    }

    /// Waits up to `timeout` for a datagram or the device's next timer.
    pub fn wait(&self, timeout: Duration) {
        let now = self.now();
        let until_timer = self
            .dev
            .poll_timeout()
            .map(|t| Duration::from_nanos(t.saturating_sub(now)))
            .unwrap_or(timeout);
        let _ = self.udp.wait_readable(Some(timeout.min(until_timer)));
    }

    pub fn fds(&self, out: &mut Vec<i32>) {
        out.extend(self.udp.raw_fds());
    }
}

/// An empty vector of another lifetime in the memory of `v` (emptied):
/// the collect runs in place, so batch after batch reuses one allocation.
/// (`filter_map`, not `filter`: the item type changes with the lifetime.)
#[allow(clippy::unnecessary_filter_map)]
fn reuse<'b, T: ?Sized>(v: Vec<&T>) -> Vec<&'b T> {
    v.into_iter().filter_map(|_| None).collect()
}

/// `reuse` for send items.
#[allow(clippy::unnecessary_filter_map)]
fn reuse_items<'a, 'b>(v: Vec<SendItem<'a>>) -> Vec<SendItem<'b>> {
    v.into_iter().filter_map(|_| None).collect()
}

/// The device epoch: wall-clock milliseconds (mod 2^32). Peers compare
/// epochs as serial numbers, so a process restarted on the same port is
/// newer than its previous life and its old state is discarded.
fn epoch_seed() -> u32 {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_millis());
    (ms as u32).max(1)
}

/// Debug line for one SRD datagram (callers check `debug_data()` first).
fn log_datagram(dir: &str, peer: SocketAddrV4, bytes: &[u8]) {
    use crate::wire::srd::{Packet, PacketType};
    let what = match Packet::new_checked(bytes) {
        Ok(p) => match p.packet_type() {
            PacketType::SrdData | PacketType::UdData => {
                format!("{:?} psn {} qpn {}", p.packet_type(), p.psn(), p.dst_qpn())
            }
            PacketType::Ack => format!("Ack cum {} sack words {}", p.cum_psn(), p.sack_words()),
            PacketType::Nak => format!("Nak psn {} {:?}", p.nak_psn(), p.nak_reason()),
            t => format!("{t:?}"),
        },
        Err(e) => format!("unparsable ({e:?})"),
    };
    let peer_dir = if dir == "tx" { "to" } else { "from" };
    crate::srd_log!(
        Debug,
        EpData,
        "srd {dir} {what}, {} B {peer_dir} {peer}",
        bytes.len()
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;

    /// `pump_budget` hands the device no more datagrams than its budget per
    /// call; the rest of a batch already read and what is still in the
    /// kernel come with later calls, none lost. (Before, one pump took every
    /// waiting datagram, and a burst larger than the receive queue was
    /// answered with RNR NAKs.)
    #[test]
    fn pump_budget_bounds_datagrams_per_call() {
        let mut t = Transport::open(
            SocketAddrV4::new(std::net::Ipv4Addr::LOCALHOST, 0),
            1472,
            &Params::default(),
            |_| {},
        )
        .unwrap();
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        const N: u64 = 50;
        for i in 0..N {
            // Not SRD packets: the device counts each one as dropped.
            tx.send_to(&[i as u8; 64], t.local()).unwrap();
        }
        let seen = |t: &Transport| t.dev.stats().drops();
        assert_eq!(seen(&t), 0);
        t.pump_budget(7);
        assert_eq!(
            seen(&t),
            7,
            "a first call takes exactly its budget from a full queue"
        );
        let mut calls = 1;
        while seen(&t) < N && calls < 10_000 {
            let before = seen(&t);
            t.pump_budget(7);
            assert!(seen(&t) - before <= 7, "at most 7 per call");
            calls += 1;
            if seen(&t) == before {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        assert_eq!(seen(&t), N, "every datagram reached the device");
        assert!(
            calls >= 8,
            "50 datagrams need at least 8 calls of 7, took {calls}"
        );
        t.pump();
        assert_eq!(seen(&t), N, "nothing handed twice");
    }

    /// A transport that has just read one datagram carrying `payload`
    /// (sent over loopback with datagrams of up to `udp_payload` bytes),
    /// its arrival checked and taken.
    fn read_one(payload: &[u8], udp_payload: usize) -> Transport {
        use crate::srd::{QpType, SendWr};
        let open = || {
            let local = SocketAddrV4::new(std::net::Ipv4Addr::LOCALHOST, 0);
            Transport::open(local, udp_payload, &Params::default(), |_| {}).unwrap()
        };
        let (mut a, mut b) = (open(), open());
        let (pd, _, qa) = a.open_qp(QpType::Srd, 7, 8, 8).unwrap();
        let (_, _, qb) = b.open_qp(QpType::Srd, 7, 8, 8).unwrap();
        b.dev.set_in_place(qb).unwrap();
        let ah = a.dev.create_ah(pd, b.dev.addr()).unwrap();
        let wr = SendWr {
            wr_id: 1,
            ah,
            remote_qpn: qb,
            remote_qkey: 7,
            data: payload,
        };
        a.dev.post_send(qa, wr).unwrap();
        a.push(&NoExt);
        let mut got = None;
        for _ in 0..1000 {
            let now = b.now();
            got = b.next_arrival(now);
            if got.is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        let arrival = got.expect("the datagram arrived");
        assert_eq!(b.arrival_bytes(&arrival), payload);
        b
    }

    /// After a read that came back short (it emptied the socket), the call
    /// that finds its batch used up returns `None` without another read,
    /// and `rx_more` / `rx_quiet` tell the progress round not to read
    /// again at once; the call after that reads. (Before, every arrival
    /// was followed by one or two reads that said EAGAIN before its
    /// completion reached the application.)
    #[test]
    fn a_short_read_is_not_followed_by_an_empty_one() {
        let mut b = read_one(b"ping", 1472);
        let reads = |t: &Transport| t.udp.stats().recv_syscalls;
        let before = reads(&b);
        let now = b.now();
        assert!(b.next_arrival(now).is_none());
        assert_eq!(reads(&b), before, "no read after the short one");
        assert!(!b.rx_more(), "the socket was emptied");
        assert!(b.rx_quiet(b.clock), "just read: quiet");
        assert!(!b.rx_quiet(b.clock + RX_QUIET_NS), "quiet for RX_QUIET_NS");
        assert!(b.next_arrival(b.now()).is_none());
        assert_eq!(reads(&b), before + 1, "the next call reads again");
    }

    /// A short read that brought a piece of a bulk stream (a datagram
    /// larger than `BULK_DATAGRAM`) is not taken as the end of the traffic:
    /// the next call reads at once and the round may read again.
    #[test]
    fn a_read_of_bulk_data_is_followed_by_another() {
        let mut b = read_one(&[5u8; 8000], 9000);
        let before = b.udp.stats().recv_syscalls;
        assert!(b.rx_more(), "bulk data: more may follow");
        assert!(!b.rx_quiet(b.clock), "bulk data: no quiet time");
        assert!(b.next_arrival(b.now()).is_none());
        assert_eq!(
            b.udp.stats().recv_syscalls,
            before + 1,
            "read again at once"
        );
    }

    /// A stream of equal packets leaves in whole path bursts: one GSO send
    /// per burst of 44 datagrams, none cut in two where a send batch
    /// ends. (Before, a batch ended at 128 datagrams whatever the burst:
    /// 220 datagrams went as 44, 44, 40 | 4, 44, 44 — six GSO sends.)
    #[test]
    fn a_send_batch_does_not_cut_a_path_burst() {
        use crate::srd::{QpType, SendWr};
        const BURST: usize = 44;
        const N: usize = 5 * BURST;
        let open = || {
            let local = SocketAddrV4::new(std::net::Ipv4Addr::LOCALHOST, 0);
            Transport::open(local, 1472, &Params::default(), |c| {
                c.path_burst = BURST as u32;
                c.window = 1024;
                c.cwnd_init = 1024;
                c.cwnd_max = 1024;
            })
            .unwrap()
        };
        let (mut a, b) = (open(), open());
        if !a.udp.gso_enabled() {
            eprintln!("no UDP GSO here: nothing to check");
            return;
        }
        let (pd, _, qa) = a.open_qp(QpType::Srd, 7, 4096, 8).unwrap();
        let ah = a.dev.create_ah(pd, b.dev.addr()).unwrap();
        let payload = vec![7u8; a.dev.max_payload()];
        for i in 0..N {
            let wr = SendWr {
                wr_id: i as u64,
                ah,
                remote_qpn: 1,
                remote_qkey: 7,
                data: &payload,
            };
            a.dev.post_send(qa, wr).unwrap();
        }
        a.push(&NoExt);
        let st = a.udp.stats();
        assert_eq!(st.tx_datagrams, N as u64, "every packet went out");
        assert_eq!(
            st.gso_sends,
            (N / BURST) as u64,
            "one GSO send per burst of {BURST}"
        );
    }

    /// An ack read by a round whose clock reading predates the send it
    /// answers (the round read the clock, then sent, then read) is dated
    /// from its read, not from the round's start: its RTT sample is not
    /// zero. (Before, such samples were zero: min_rtt 0 between two
    /// namespaces, and RACK declared packets in a queue lost.)
    #[test]
    fn an_ack_read_after_a_send_is_dated_after_it() {
        use crate::srd::{QpType, RecvWr, SendWr};
        let open = || {
            let local = SocketAddrV4::new(std::net::Ipv4Addr::LOCALHOST, 0);
            Transport::open(local, 1472, &Params::default(), |_| {}).unwrap()
        };
        let (mut a, mut b) = (open(), open());
        let (pd, _, qa) = a.open_qp(QpType::Srd, 7, 8, 8).unwrap();
        let (_, _, qb) = b.open_qp(QpType::Srd, 7, 8, 8).unwrap();
        let rwr = RecvWr {
            wr_id: 1,
            buf: vec![0; 64],
        };
        b.dev.post_recv(qb, rwr).unwrap();
        let ah = a.dev.create_ah(pd, b.dev.addr()).unwrap();
        let stale = a.now();
        let wr = SendWr {
            wr_id: 1,
            ah,
            remote_qpn: qb,
            remote_qkey: 7,
            data: b"ping",
        };
        a.dev.post_send(qa, wr).unwrap();
        a.push(&NoExt);
        let srtt = |t: &Transport, peer| t.dev.peer_info(peer).and_then(|i| i.srtt);
        for _ in 0..1000 {
            b.pump();
            while a.next_arrival(stale).is_some() {}
            if srtt(&a, b.dev.addr()).is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        let rtt = srtt(&a, b.dev.addr()).expect("acked");
        assert!(rtt > 0, "RTT sample {rtt} ns");
    }
}
