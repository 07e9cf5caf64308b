//! FI_EP_DGRAM through the real libfabric core: two endpoints on `lo` in
//! one process; bytes, prefix mode, truncation, size limits, bad
//! addresses, cancel and source addresses.

mod common;

use common::fab::*;
use srd_fi::bindings as b;

const EMSGSIZE: isize = -(b::FI_EMSGSIZE as isize);
const EINVAL_: isize = -(b::FI_EINVAL as isize);
const ENOENT: isize = -(b::FI_ENOENT as isize);

fn max_msg_size(p: &Pair) -> usize {
    // SAFETY: info is a valid entry with ep_attr.
    unsafe { (*(*p.info.0).ep_attr).max_msg_size }
}

#[test]
fn dgram_send_recv_bytes_intact() {
    let p = Pair::new(&Opts::dgram());
    for (i, &len) in [1usize, 64, 1000, 8000].iter().enumerate() {
        let data = pattern(len, i as u8);
        let mut rbuf = vec![0u8; 9000];
        assert_eq!(p.b.recv(&mut rbuf, ADDR_UNSPEC, 0x100 + i), 0);
        assert_eq!(p.a.send(&data, p.a.peer, 0x200 + i), 0);
        let got = p.wait(1, 1, 10);
        let tx = &got[0][0];
        assert_eq!((tx.err, tx.ctx), (0, 0x200 + i));
        assert_eq!(tx.flags, b::FI_SEND | b::FI_MSG);
        let rx = &got[3][0];
        assert_eq!(rx.err, 0, "{rx:?}");
        assert_eq!(rx.ctx, 0x100 + i);
        assert_eq!(rx.flags, b::FI_RECV | b::FI_MSG);
        assert_eq!(rx.len, len);
        assert_eq!(rx.buf, rbuf.as_ptr() as usize);
        assert_eq!(&rbuf[..len], &data[..], "payload of {len} bytes");
        assert!(got[1].is_empty() && got[2].is_empty());
    }
}

#[test]
fn dgram_zero_length_message() {
    let p = Pair::new(&Opts::dgram());
    let mut rbuf = vec![0u8; 64];
    assert_eq!(p.b.recv(&mut rbuf, ADDR_UNSPEC, 1), 0);
    assert_eq!(p.a.send(&[], p.a.peer, 2), 0);
    let got = p.wait(1, 1, 10);
    assert_eq!((got[3][0].err, got[3][0].len), (0, 0));
}

#[test]
fn dgram_msg_prefix_mode_carries_a_40_byte_prefix() {
    let o = Opts {
        prefix: true,
        ..Opts::dgram()
    };
    let p = Pair::new(&o);
    // SAFETY: info has ep_attr.
    let (mode, prefix) = unsafe { ((*p.info.0).mode, (*(*p.info.0).ep_attr).msg_prefix_size) };
    assert_ne!(mode & b::FI_MSG_PREFIX, 0);
    assert_eq!(prefix, 40);
    let payload = pattern(500, 9);
    let mut sbuf = vec![0xEEu8; 40];
    sbuf.extend_from_slice(&payload);
    let mut rbuf = vec![0u8; 40 + 1000];
    assert_eq!(p.b.recv(&mut rbuf, ADDR_UNSPEC, 1), 0);
    assert_eq!(p.a.send(&sbuf, p.a.peer, 2), 0);
    let got = p.wait(1, 1, 10);
    let rx = &got[3][0];
    assert_eq!(rx.err, 0, "{rx:?}");
    // As verbs UD reports it: the length covers the prefix area.
    assert_eq!(rx.len, 40 + payload.len());
    assert_eq!(&rbuf[40..40 + payload.len()], &payload[..]);
    // A buffer shorter than the prefix is refused.
    let mut tiny = [0u8; 16];
    assert_eq!(p.b.recv(&mut tiny, ADDR_UNSPEC, 3), EINVAL_);
    assert_eq!(p.a.send(&tiny, p.a.peer, 4), EINVAL_);
}

#[test]
fn dgram_truncation_is_an_etrunc_error_with_olen() {
    let p = Pair::new(&Opts::dgram());
    let data = pattern(500, 3);
    let mut rbuf = vec![0u8; 100];
    assert_eq!(p.b.recv(&mut rbuf, ADDR_UNSPEC, 7), 0);
    assert_eq!(p.a.send(&data, p.a.peer, 8), 0);
    let got = p.wait(1, 1, 10);
    let rx = &got[3][0];
    assert_eq!(rx.err, b::FI_ETRUNC as i32, "{rx:?}");
    assert_eq!(rx.ctx, 7);
    assert_eq!(rx.len, 100);
    assert_eq!(rx.olen, 400);
    assert_ne!(rx.flags & b::FI_RECV, 0);
    assert_eq!(&rbuf[..], &data[..100]);
}

#[test]
fn dgram_max_msg_size_is_honoured_and_one_more_is_emsgsize() {
    let p = Pair::new(&Opts::dgram());
    let max = max_msg_size(&p);
    assert!(max >= 1024, "max_msg_size {max}");
    let big = pattern(max + 1, 1);
    assert_eq!(p.a.send(&big, p.a.peer, 1), EMSGSIZE, "max_msg_size + 1");
    // Exactly max_msg_size goes through intact.
    let mut rbuf = vec![0u8; max];
    assert_eq!(p.b.recv(&mut rbuf, ADDR_UNSPEC, 2), 0);
    assert_eq!(p.a.send(&big[..max], p.a.peer, 3), 0);
    let got = p.wait(1, 1, 10);
    assert_eq!((got[3][0].err, got[3][0].len), (0, max));
    assert!(rbuf == big[..max]);
}

#[test]
fn dgram_send_to_address_not_in_av_is_einval() {
    let p = Pair::new(&Opts::dgram());
    assert_eq!(p.a.send(b"x", 77, 1), EINVAL_);
    assert_eq!(p.a.send(b"x", ADDR_UNSPEC, 1), EINVAL_);
    // Nothing was queued for those.
    let got = p.drain(50);
    assert!(got[0].is_empty(), "{got:?}");
}

#[test]
fn dgram_cancel_of_a_posted_receive_is_ecanceled() {
    let p = Pair::new(&Opts::dgram());
    let mut rbuf = vec![0u8; 100];
    assert_eq!(p.b.recv(&mut rbuf, ADDR_UNSPEC, 0x55), 0);
    assert_eq!(cancel(p.b.ep, 0x55), 0);
    let mut got: [Vec<Cqe>; 4] = Default::default();
    assert!(progress_until(&p.cqs(), &mut got, 5, |g| !g[3].is_empty()));
    let e = &got[3][0];
    assert_eq!((e.err, e.ctx), (b::FI_ECANCELED, 0x55), "{e:?}");
    assert_ne!(e.flags & b::FI_RECV, 0);
    // Nothing left to cancel.
    assert_eq!(cancel(p.b.ep, 0x55), ENOENT);
    // A message sent now meets no receive: the canceled one does not take it.
    assert_eq!(p.a.send(b"late", p.a.peer, 1), 0);
    let got = p.drain(100);
    assert!(
        got[3].is_empty(),
        "canceled receive completed again: {got:?}"
    );
}

#[test]
fn dgram_fi_source_gives_the_senders_fi_addr() {
    let o = Opts {
        b_knows_a: false,
        ..Opts::dgram()
    };
    let mut p = Pair::new(&o);
    // An unknown sender: FI_ADDR_NOTAVAIL.
    let mut rbuf = vec![0u8; 64];
    assert_eq!(p.b.recv(&mut rbuf, ADDR_UNSPEC, 1), 0);
    assert_eq!(p.a.send(b"who", p.a.peer, 2), 0);
    let got = p.wait(1, 1, 10);
    assert_eq!(got[3][0].err, 0);
    assert_eq!(got[3][0].src, ADDR_UNSPEC, "sender not in B's AV");
    // Put another address first so A is not at index 0.
    let other = p.b.name.clone();
    assert_eq!(av_insert(p.b.av, &other), 0);
    p.b.peer = av_insert(p.b.av, &p.a.name);
    assert_eq!(p.b.peer, 1);
    assert_eq!(p.b.recv(&mut rbuf, ADDR_UNSPEC, 3), 0);
    assert_eq!(p.a.send(b"me", p.a.peer, 4), 0);
    let got = p.wait(1, 1, 10);
    assert_eq!(got[3][0].src, 1, "fi_cq_readfrom src_addr");
    assert_eq!(&rbuf[..2], b"me");
}

#[test]
fn dgram_tagged_and_multi_recv_are_not_offered() {
    let p = Pair::new(&Opts::dgram());
    let mut rbuf = vec![0u8; 64];
    let r = p.b.recvmsg(&mut rbuf, ADDR_UNSPEC, 1, b::FI_MULTI_RECV);
    assert_eq!(r, -(b::FI_ENOSYS as isize));
}
