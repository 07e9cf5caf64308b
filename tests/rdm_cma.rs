//! Same-host bulk paths of the RDM engine through the sans-IO harness:
//! per-peer packet size (`set_peer_link`), the long-read protocol and
//! single-copy RMA over an in-process CMA (`FakeCma` copies through the
//! raw addresses the descriptors carry, and can refuse or fail), with the
//! fallbacks to long-CTS and RTW/READRSP packets.

mod rdm_common;
#[path = "rdm_rma_common.rs"]
mod rma_common;

use rdm_common::{Net, cfg, owned, pattern};
use rma_common::{RO, RW, Registry};
use srd_fi::mem::UserIov;
use srd_fi::rdm::{Cma, CmaError, CompFlags, Completion, Config, ErrorKind, OpFlags, PeerIdx};
use srd_fi::wire::rdm::REQ_LEN;
use std::sync::{Arc, Mutex, MutexGuard};

const LINK: usize = 64 << 10;
const MIN: usize = 16 << 10;
const KEY: u64 = 0x77;

#[derive(Default)]
struct FakeState {
    /// Every call fails with this.
    fail: Option<CmaError>,
    reads: u64,
    writes: u64,
    bytes: u64,
    pids: Vec<u32>,
}

/// CMA between endpoints of this process: the remote addresses are ours.
#[derive(Clone, Default)]
struct FakeCma(Arc<Mutex<FakeState>>);

impl FakeCma {
    fn fail(&self, e: Option<CmaError>) {
        self.0.lock().unwrap().fail = e;
    }
    fn calls(&self) -> (u64, u64) {
        let s = self.0.lock().unwrap();
        (s.reads, s.writes)
    }
    fn pids(&self) -> Vec<u32> {
        self.0.lock().unwrap().pids.clone()
    }
    /// Records a call from `pid`; fails it if told to.
    fn enter(&self, pid: u32) -> Result<MutexGuard<'_, FakeState>, CmaError> {
        let mut s = self.0.lock().unwrap();
        s.pids.push(pid);
        match s.fail {
            Some(e) => Err(e),
            None => Ok(s),
        }
    }
}

impl Cma for FakeCma {
    fn read(
        &mut self,
        pid: u32,
        remote: &[(u64, u64)],
        dst: &mut UserIov,
        off: usize,
    ) -> Result<(), CmaError> {
        let mut s = self.enter(pid)?;
        s.reads += 1;
        let mut at = off;
        for &(a, l) in remote {
            // SAFETY: the descriptor names a live buffer of this process (a
            // send's or an RMA initiator's, kept until its completion).
            let src = unsafe { std::slice::from_raw_parts(a as *const u8, l as usize) };
            assert_eq!(dst.copy_in(at, src), l as usize, "destination too short");
            at += l as usize;
            s.bytes += l;
        }
        Ok(())
    }

    fn write(
        &mut self,
        pid: u32,
        remote: &[(u64, u64)],
        src: &UserIov,
        off: usize,
    ) -> Result<(), CmaError> {
        let mut s = self.enter(pid)?;
        s.writes += 1;
        let mut at = off;
        for &(a, l) in remote {
            // SAFETY: as in `read`: a read initiator's destination buffer.
            let dst = unsafe { std::slice::from_raw_parts_mut(a as *mut u8, l as usize) };
            assert_eq!(src.copy_out(at, dst), l as usize, "source too short");
            at += l as usize;
            s.bytes += l;
        }
        Ok(())
    }
}

fn pid(i: usize) -> u32 {
    4000 + i as u32
}

fn ccfg(i: usize) -> Config {
    Config {
        cma_min: MIN,
        pid: pid(i),
        ..cfg(i)
    }
}

/// Two endpoints that see each other as same-host peers with CMA, each
/// with its own fake CMA; handshakes done.
fn pair(seed: u64) -> (Net, FakeCma, FakeCma) {
    let mut net = Net::new(2, seed, ccfg);
    net.mtu = LINK;
    let cmas = (FakeCma::default(), FakeCma::default());
    net.eps[0].set_cma(Box::new(cmas.0.clone()));
    net.eps[1].set_cma(Box::new(cmas.1.clone()));
    for (i, j) in [(0, 1), (1, 0)] {
        let p = net.peer(i, j);
        net.eps[i].set_peer_link(p, LINK, Some(pid(j))).unwrap();
    }
    handshake(&mut net);
    (net, cmas.0, cmas.1)
}

fn handshake(net: &mut Net) {
    for (i, j) in [(0, 1), (1, 0)] {
        let p = net.peer(i, j);
        net.eps[i].inject(net.now, p, b"hi", None).unwrap();
    }
    for i in 0..2 {
        net.eps[i]
            .recv(net.now, owned(8), None, 9, OpFlags::empty())
            .expect("post warm-up receive");
    }
    net.run(10_000);
    for i in 0..2 {
        let cs = net.take(i);
        assert!(cs.iter().all(|c| c.err.is_none()), "{cs:?}");
    }
}

/// Caller memory the engine may describe by address, as the fi layer's.
fn raw(v: &mut [u8]) -> UserIov {
    // SAFETY: the tests keep `v` alive and untouched until the operation
    // using this iov has completed.
    unsafe { UserIov::from_raw([(v.as_mut_ptr(), v.len())]) }
}

/// The same, split into `n` segments.
fn raw_split(v: &mut [u8], n: usize) -> UserIov {
    let step = v.len().div_ceil(n).max(1);
    let segs: Vec<(*mut u8, usize)> = v
        .chunks_mut(step)
        .map(|c| (c.as_mut_ptr(), c.len()))
        .collect();
    // SAFETY: as in `raw`.
    unsafe { UserIov::from_raw(&segs) }
}

fn one(cs: Vec<Completion>, what: &str) -> Completion {
    assert_eq!(cs.len(), 1, "{what}: one completion, got {cs:?}");
    cs.into_iter().next().unwrap()
}

fn send(net: &mut Net, tagged: bool, iov: UserIov, tag: u64, ctx: u64) {
    let p: PeerIdx = net.peer(0, 1);
    let r = if tagged {
        net.eps[0].tsend(net.now, p, iov, tag, None, ctx, OpFlags::empty())
    } else {
        net.eps[0].send(net.now, p, iov, None, ctx, OpFlags::empty())
    };
    r.unwrap();
}

fn recv(net: &mut Net, tagged: bool, iov: UserIov, tag: u64, ctx: u64) {
    let r = if tagged {
        net.eps[1].trecv(net.now, iov, None, tag, 0, ctx, OpFlags::empty())
    } else {
        net.eps[1].recv(net.now, iov, None, ctx, OpFlags::empty())
    };
    r.unwrap();
}

#[test]
fn long_read_moves_every_size_tagged_and_untagged_posted_or_not() {
    let (mut net, c0, c1) = pair(1);
    let sizes = [MIN - 1, MIN, MIN + 1, 100_000, 1 << 20, 3 << 20];
    let mut expect_reads = 0;
    for tagged in [true, false] {
        for (k, &len) in sizes.iter().enumerate() {
            for posted_first in [true, false] {
                let id = k as u64 * 4 + u64::from(tagged) * 2 + u64::from(posted_first);
                let mut src = pattern(id, len);
                let segs = 1 + (k % 3);
                if posted_first {
                    recv(&mut net, tagged, owned(len), id, 100 + id);
                }
                send(&mut net, tagged, raw_split(&mut src, segs), id, id);
                net.run(100_000);
                if !posted_first {
                    assert!(net.take(1).is_empty(), "unexpected message completed");
                    recv(&mut net, tagged, owned(len), id, 100 + id);
                    net.run(100_000);
                }
                let s = one(net.take(0), "send");
                assert!(s.err.is_none(), "len {len}: {:?}", s.err);
                assert_eq!((s.context, s.len), (id, len));
                let r = one(net.take(1), "recv");
                assert!(r.err.is_none(), "len {len}: {:?}", r.err);
                assert_eq!((r.context, r.len), (100 + id, len));
                assert!(r.iov.unwrap().to_vec() == src, "len {len} data");
                if len >= MIN {
                    expect_reads += 1;
                }
                assert_eq!(c1.calls(), (expect_reads, 0), "len {len}");
            }
        }
    }
    assert_eq!(c0.calls(), (0, 0), "the sender never copies");
    assert!(c1.pids().iter().all(|&p| p == pid(0)), "reads the sender");
    assert_eq!(net.eps[1].stats().cma_copies, expect_reads);
    assert_eq!(net.eps[0].pending_ops(), (0, 0));
    assert_eq!(net.eps[1].stored_bytes(), (0, 0));
}

#[test]
fn long_read_truncates_and_multi_receive_places_at_offsets() {
    let (mut net, _, c1) = pair(2);
    // Truncation: 100 000 bytes into 70 000, guard bytes after untouched.
    let mut src = pattern(7, 100_000);
    send(&mut net, true, raw(&mut src), 5, 1);
    net.run(10_000);
    let mut dst = vec![0xeeu8; 70_000 + 64];
    // Only 70 000 bytes of it are offered. SAFETY: as in `raw`.
    let iov = unsafe { UserIov::from_raw([(dst.as_mut_ptr(), 70_000)]) };
    recv(&mut net, true, iov, 5, 2);
    net.run(10_000);
    let r = one(net.take(1), "truncated recv");
    let e = r.err.expect("ErrorKind::Truncated");
    assert_eq!((e.kind, e.olen), (ErrorKind::Truncated, 30_000));
    assert_eq!(r.len, 70_000);
    assert!(dst[..70_000] == src[..70_000], "placed prefix");
    assert!(
        dst[70_000..].iter().all(|&b| b == 0xee),
        "nothing past the buffer"
    );
    let s = one(net.take(0), "send of truncated");
    assert!(s.err.is_none(), "{:?}", s.err);
    assert_eq!(c1.calls().0, 1);

    // Two long-read messages into one multi-receive buffer.
    let (a, b) = (pattern(8, 40_000), pattern(9, 50_000));
    let mut srcs = [a.clone(), b.clone()];
    let mut mr = vec![0u8; 100_000];
    net.eps[1]
        .recv(net.now, raw(&mut mr), None, 3, OpFlags::MULTI_RECV)
        .unwrap();
    let [sa, sb] = &mut srcs;
    send(&mut net, false, raw(sa), 0, 10);
    send(&mut net, false, raw(sb), 0, 11);
    net.run(10_000);
    let cs = net.take(1);
    assert_eq!(cs.len(), 2, "{cs:?}");
    assert_eq!((cs[0].len, cs[1].len), (40_000, 50_000));
    let base = mr.as_ptr() as usize;
    assert_eq!(cs[0].buf, base);
    assert_eq!(cs[1].buf, base + 40_000);
    assert!(mr[..40_000] == a[..] && mr[40_000..90_000] == b[..]);
    assert_eq!(net.take(0).len(), 2);
    assert_eq!(c1.calls().0, 3);
    // Release the multi-receive buffer before `mr` goes away.
    assert!(net.eps[1].cancel(3));
    net.run(100);
    let c = one(net.take(1), "cancel multi-recv");
    assert_eq!(c.flags & CompFlags::MULTI_RECV, CompFlags::MULTI_RECV);
}

#[test]
fn long_read_peek_claim_discard_and_cancel() {
    let (mut net, _, c1) = pair(3);
    let mut src = pattern(1, 80_000);
    send(&mut net, true, raw(&mut src), 42, 1);
    net.run(10_000);
    // FI_PEEK sees it (length from the REQ), copies nothing.
    net.eps[1]
        .trecv(net.now, UserIov::empty(), None, 42, 0, 7, OpFlags::PEEK)
        .unwrap();
    net.run(100);
    let c = one(net.take(1), "peek");
    assert!(c.err.is_none());
    assert_eq!((c.len, c.tag), (80_000, 42));
    assert_eq!(c1.calls().0, 0);
    // FI_PEEK|FI_CLAIM, then FI_CLAIM receives it.
    net.eps[1]
        .trecv(
            net.now,
            UserIov::empty(),
            None,
            42,
            0,
            8,
            OpFlags::PEEK | OpFlags::CLAIM,
        )
        .unwrap();
    net.run(100);
    one(net.take(1), "peek claim");
    net.eps[1]
        .trecv(net.now, owned(80_000), None, 0, 0, 8, OpFlags::CLAIM)
        .unwrap();
    net.run(10_000);
    let c = one(net.take(1), "claimed");
    assert!(c.err.is_none());
    assert!(c.iov.unwrap().to_vec() == src);
    assert_eq!(c1.calls().0, 1);
    assert!(one(net.take(0), "send").err.is_none());

    // FI_PEEK|FI_DISCARD: no copy, the sender completes.
    let mut src2 = pattern(2, 90_000);
    send(&mut net, true, raw(&mut src2), 43, 2);
    net.run(10_000);
    net.eps[1]
        .trecv(
            net.now,
            UserIov::empty(),
            None,
            43,
            0,
            9,
            OpFlags::PEEK | OpFlags::DISCARD,
        )
        .unwrap();
    net.run(10_000);
    assert_eq!(one(net.take(1), "peek discard").len, 90_000);
    let s = one(net.take(0), "discarded send");
    assert!(s.err.is_none(), "{:?}", s.err);
    assert_eq!(c1.calls().0, 1, "discard copies nothing");

    // A cancelled receive is not read into; the next one gets the data.
    net.eps[1]
        .trecv(net.now, owned(70_000), None, 44, 0, 10, OpFlags::empty())
        .unwrap();
    assert!(net.eps[1].cancel(10));
    net.run(100);
    let c = one(net.take(1), "cancel");
    assert_eq!(c.err.unwrap().kind, ErrorKind::Canceled);
    let mut src3 = pattern(3, 70_000);
    send(&mut net, true, raw(&mut src3), 44, 3);
    net.run(10_000);
    assert!(net.take(1).is_empty());
    net.eps[1]
        .trecv(net.now, owned(70_000), None, 44, 0, 11, OpFlags::empty())
        .unwrap();
    net.run(10_000);
    let c = one(net.take(1), "after cancel");
    assert!(c.iov.unwrap().to_vec() == src3);
    assert!(one(net.take(0), "send").err.is_none());
}

#[test]
fn refused_copy_falls_back_to_long_cts_and_stops_trying() {
    for refuse_at_receiver in [true, false] {
        let (mut net, _, c1) = pair(4);
        if refuse_at_receiver {
            c1.fail(Some(CmaError::Denied));
        } else {
            // No CMA installed at the receiver at all.
            let p = net.peer(1, 0);
            net.eps[1].set_peer_link(p, LINK, None).unwrap();
        }
        for k in 0..3u64 {
            let len = (1 << 20) + k as usize;
            let mut src = pattern(k, len);
            send(&mut net, true, raw(&mut src), k, k);
            recv(&mut net, true, owned(len), k, 100 + k);
            net.run(200_000);
            let s = one(net.take(0), "send");
            assert!(s.err.is_none(), "{:?}", s.err);
            let r = one(net.take(1), "recv");
            assert!(r.err.is_none(), "{:?}", r.err);
            assert!(r.iov.unwrap().to_vec() == src, "fallback data");
        }
        assert_eq!(c1.calls().0, 0, "nothing copied");
        // Only the first message tried: the sender stopped offering CMA.
        let st = net.eps[1].stats();
        assert_eq!(st.cma_fallbacks, 1, "{st:?}");
        assert_eq!(c1.pids().len(), usize::from(refuse_at_receiver));
    }
}

#[test]
fn failed_copy_fails_both_sides() {
    for (e, errno) in [
        (CmaError::Gone, ErrorKind::Unreachable),
        (CmaError::Fault, ErrorKind::Io),
    ] {
        let (mut net, _, c1) = pair(5);
        c1.fail(Some(e));
        let mut src = pattern(1, 200_000);
        send(&mut net, false, raw(&mut src), 0, 1);
        recv(&mut net, false, owned(200_000), 0, 2);
        net.run(10_000);
        let r = one(net.take(1), "recv");
        assert_eq!(r.err.expect("recv error").kind, errno);
        let s = one(net.take(0), "send");
        assert_eq!(s.err.expect("send error").kind, errno);
        assert_eq!(net.eps[1].stats().cma_errors, 1);
        // The endpoint goes on: the next message (copy works again).
        c1.fail(None);
        let mut src = pattern(2, 50_000);
        send(&mut net, false, raw(&mut src), 0, 3);
        recv(&mut net, false, owned(50_000), 0, 4);
        net.run(10_000);
        let r = one(net.take(1), "next recv");
        assert!(r.err.is_none(), "{:?}", r.err);
        assert!(r.iov.unwrap().to_vec() == src);
        assert!(one(net.take(0), "next send").err.is_none());
    }
}

#[test]
fn link_mtu_makes_eager_one_ring_slot() {
    let mk = |i| Config {
        cma_min: 0,
        ..ccfg(i)
    };
    let mut net = Net::new(2, 6, mk);
    net.mtu = LINK;
    let p = net.peer(0, 1);
    net.eps[0].set_peer_link(p, LINK, None).unwrap();
    handshake(&mut net);
    let len = LINK - REQ_LEN - 64;
    let src = pattern(3, len);
    net.eps[0]
        .send(
            net.now,
            p,
            UserIov::from_vec(src.clone()),
            None,
            1,
            OpFlags::empty(),
        )
        .unwrap();
    let mut buf = vec![0u8; LINK];
    let mut pkts = Vec::new();
    while let Some(t) = net.eps[0].poll_transmit(net.now, &mut buf) {
        pkts.push((buf[..t.len].to_vec(), t.token));
    }
    assert_eq!(pkts.len(), 1, "one eager packet over the link");
    assert!(pkts[0].0.len() > 8192, "larger than Config::mtu");
    net.eps[1]
        .recv(net.now, owned(len), None, 2, OpFlags::empty())
        .unwrap();
    for (b, t) in pkts {
        net.inject_raw(1, Some(0), &b);
        net.eps[0].on_send_complete(t, Ok(()));
    }
    net.run(1000);
    let r = one(net.take(1), "recv");
    assert!(r.iov.unwrap().to_vec() == src);
    assert!(one(net.take(0), "send").err.is_none());
    // The other way (no link set): the same message takes several packets.
    let q = net.peer(1, 0);
    net.eps[1]
        .send(
            net.now,
            q,
            UserIov::from_vec(src.clone()),
            None,
            3,
            OpFlags::empty(),
        )
        .unwrap();
    let mut n = 0;
    while let Some(t) = net.eps[1].poll_transmit(net.now, &mut buf) {
        assert!(t.len <= 8192);
        n += 1;
    }
    assert!(n > 1, "medium over the default MTU");
}

/// RMA pair: endpoint 1 exposes `reg`.
fn rma_pair(seed: u64) -> (Net, FakeCma, Registry) {
    let (mut net, _, c1) = pair(seed);
    let reg = Registry::default();
    net.eps[1].set_rma_target(Box::new(reg.clone()));
    (net, c1, reg)
}

#[test]
fn rma_write_and_read_copy_once() {
    let (mut net, c1, reg) = rma_pair(7);
    let len = 1 << 20;
    reg.add(KEY, len + 100, RW, None);
    let p = net.peer(0, 1);
    let mut src = pattern(5, len);
    net.eps[0]
        .write(
            net.now,
            p,
            raw_split(&mut src, 3),
            33,
            KEY,
            Some(9),
            1,
            OpFlags::empty(),
        )
        .unwrap();
    net.run(10_000);
    let c = one(net.take(0), "write");
    assert!(c.err.is_none(), "{:?}", c.err);
    assert_eq!((c.flags, c.len), (CompFlags::RMA | CompFlags::WRITE, len));
    assert!(reg.bytes(KEY)[33..33 + len] == src[..]);
    assert_eq!(c1.calls(), (1, 0));
    let t = one(net.take(1), "remote CQ data");
    assert_eq!((t.data, t.len), (9, len));
    assert_eq!(net.eps[1].take_remote_counts().writes, 1);

    let mut dst = vec![0u8; len];
    net.eps[0]
        .read(
            net.now,
            p,
            raw_split(&mut dst, 2),
            33,
            KEY,
            2,
            OpFlags::empty(),
        )
        .unwrap();
    net.run(10_000);
    let c = one(net.take(0), "read");
    assert!(c.err.is_none(), "{:?}", c.err);
    assert_eq!((c.flags, c.len), (CompFlags::RMA | CompFlags::READ, len));
    assert!(dst == src, "read data");
    assert_eq!(c1.calls(), (1, 1));
    assert_eq!(net.eps[1].take_remote_counts().reads, 1);
    assert!(c1.pids().iter().all(|&x| x == pid(0)));

    // Below the threshold: packets, no copy.
    let mut small = pattern(6, MIN - 1);
    net.eps[0]
        .write(
            net.now,
            p,
            raw(&mut small),
            0,
            KEY,
            None,
            3,
            OpFlags::empty(),
        )
        .unwrap();
    net.run(10_000);
    assert!(one(net.take(0), "small write").err.is_none());
    assert_eq!(c1.calls(), (1, 1));
}

#[test]
fn rma_access_is_checked_before_any_copy() {
    let (mut net, c1, reg) = rma_pair(8);
    let len = 256 << 10;
    reg.add(KEY, len, RO, None);
    let p = net.peer(0, 1);
    let mut src = pattern(1, len);
    net.eps[0]
        .write(net.now, p, raw(&mut src), 0, KEY, None, 1, OpFlags::empty())
        .unwrap();
    net.run(10_000);
    let c = one(net.take(0), "refused write");
    assert_eq!(c.err.unwrap().kind, ErrorKind::AccessDenied);
    assert!(reg.bytes(KEY).iter().all(|&b| b == rma_common::POISON));
    // Out of range read.
    let mut dst = vec![0u8; len];
    net.eps[0]
        .read(net.now, p, raw(&mut dst), 1, KEY, 2, OpFlags::empty())
        .unwrap();
    net.run(10_000);
    let c = one(net.take(0), "out of range read");
    assert_eq!(c.err.unwrap().kind, ErrorKind::InvalidArgument);
    assert!(c1.pids().is_empty(), "no copy attempted");
}

#[test]
fn rma_refused_copy_falls_back_to_packets() {
    let (mut net, c1, reg) = rma_pair(9);
    c1.fail(Some(CmaError::Denied));
    let len = 1 << 20;
    reg.add(KEY, len, RW, None);
    let p = net.peer(0, 1);
    let mut src = pattern(2, len);
    net.eps[0]
        .write(net.now, p, raw(&mut src), 0, KEY, None, 1, OpFlags::empty())
        .unwrap();
    net.run(200_000);
    let c = one(net.take(0), "write");
    assert!(c.err.is_none(), "{:?}", c.err);
    assert!(reg.bytes(KEY) == src, "written in packets");
    // The next transfer does not try CMA (the write's refusal told both).
    let mut dst = vec![0u8; len];
    net.eps[0]
        .read(net.now, p, raw(&mut dst), 0, KEY, 2, OpFlags::empty())
        .unwrap();
    net.run(200_000);
    let c = one(net.take(0), "read");
    assert!(c.err.is_none(), "{:?}", c.err);
    assert!(dst == src);
    assert_eq!(c1.pids().len(), 1, "one attempt only");

    // A read refused at the target is served in packets.
    let (mut net, c1, reg) = rma_pair(10);
    c1.fail(Some(CmaError::Denied));
    reg.add(KEY, len, RW, None);
    reg.with(KEY, |r| r.bytes_mut().copy_from_slice(&src));
    let p = net.peer(0, 1);
    let mut dst = vec![0u8; len];
    net.eps[0]
        .read(net.now, p, raw(&mut dst), 0, KEY, 3, OpFlags::empty())
        .unwrap();
    net.run(200_000);
    let c = one(net.take(0), "read fallback");
    assert!(c.err.is_none(), "{:?}", c.err);
    assert!(dst == src);
    assert_eq!(net.eps[1].stats().cma_fallbacks, 1);

    // A copy that fails (peer gone) fails the operation.
    let (mut net, c1, reg) = rma_pair(11);
    c1.fail(Some(CmaError::Gone));
    reg.add(KEY, len, RW, None);
    let p = net.peer(0, 1);
    net.eps[0]
        .write(net.now, p, raw(&mut src), 0, KEY, None, 4, OpFlags::empty())
        .unwrap();
    net.run(10_000);
    let c = one(net.take(0), "failed write");
    assert_eq!(c.err.unwrap().kind, ErrorKind::Unreachable);
}
