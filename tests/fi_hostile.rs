//! Hostile input over the network against a live RDM endpoint (UDP path:
//! FI_SRD_SHM=0) through the real libfabric core. A raw UDP socket sends
//! each class of bad packet — forged with the crate's own wire encoders so
//! that only the one fault differs from a valid packet — and the endpoint
//! must drop each, counting it under its reason (exactly as many as were
//! sent, read from its live stats page), never crash, and keep delivering
//! exact bytes to a real peer before and after. RMA and atomics with
//! guessed keys (random, and a real key ±1), out-of-range addresses and
//! missing access are refused, counted by reason, and leave the target
//! memory untouched. Provider MR keys are random.

mod common;

use common::fab::*;
use common::stats::*;
use common::{close, fid_of};
use srd_fi::bindings as b;
use srd_fi::fi::addr::EpAddr;
use srd_fi::fi::stats::Snapshot;
use srd_fi::wire::rdm as wr;
use srd_fi::wire::srd::{Body, PacketType, Repr};
use std::collections::HashMap;
use std::net::{SocketAddrV4, UdpSocket};
use std::path::Path;
use std::sync::Once;

/// Every test here runs over UDP, set before the provider loads.
fn setup() {
    static ENV: Once = Once::new();
    ENV.call_once(|| {
        // SAFETY: runs once, before any thread of this binary calls into
        // libfabric (every test starts here).
        unsafe { std::env::set_var("FI_SRD_SHM", "0") };
    });
}

fn rma_pair() -> Pair {
    setup();
    let o = Opts {
        caps: b::FI_MSG | b::FI_TAGGED | b::FI_RMA | b::FI_ATOMIC,
        cq_format: b::FI_CQ_FORMAT_DATA,
        ..Opts::rdm()
    };
    let info = lo_info(&o);
    let mode = b::FI_MR_VIRT_ADDR | b::FI_MR_PROV_KEY | b::FI_MR_ALLOCATED;
    // SAFETY: info is our own copy; its domain_attr is valid.
    unsafe { (*(*info.0).domain_attr).mr_mode = mode as i32 };
    Pair::with_info(info, &o)
}

/// A → B and B → A messages with exact bytes (eager, medium, long).
fn legit_exchange(p: &Pair, seed: u8) {
    for (k, size) in [0usize, 7, 4000, 70_000, 200_000].into_iter().enumerate() {
        let s = seed.wrapping_add(k as u8);
        let (ping, pong) = (pattern(size, s), pattern(size, s ^ 0x55));
        let (mut got_b, mut got_a) = (vec![0u8; size], vec![0u8; size]);
        assert_eq!(p.b.recv(&mut got_b, ADDR_UNSPEC, 1), 0);
        assert_eq!(p.a.recv(&mut got_a, ADDR_UNSPEC, 2), 0);
        assert_eq!(p.a.send(&ping, p.a.peer, 3), 0);
        assert_eq!(p.b.send(&pong, p.b.peer, 4), 0);
        let mut g: [Vec<Cqe>; 4] = Default::default();
        assert!(
            progress_until(&p.cqs(), &mut g, 30, |g| g.iter().all(|q| q.len() == 1)),
            "exchange of {size} B: {g:?}"
        );
        assert!(g.iter().all(|q| q[0].err == 0), "{g:?}");
        assert_eq!((g[3][0].len, g[3][0].src), (size, p.b.peer));
        assert_eq!((g[1][0].len, g[1][0].src), (size, p.a.peer));
        assert!(got_b == ping && got_a == pong, "bytes of {size}");
    }
}

/// Waits until neither endpoint has a packet in flight (no retransmission
/// can then move a counter), then returns B's counters.
fn quiet(p: &Pair, pa: &Path, pb: &Path) -> Snapshot {
    let poll = || {
        for cq in p.cqs() {
            assert!(poll_cq(cq).is_none(), "unexpected completion");
        }
    };
    wait_for(pa, 20, poll, |s| ctr(s, "in_flight") == 0);
    // And nothing still on its way: B's receive count holds over a few
    // publishes.
    let mut last = None;
    wait_for(pb, 20, poll, |s| {
        let now = (ctr(s, "udp_rx_pkts"), ctr(s, "in_flight"), s.publishes);
        let steady = matches!(last, Some((rx, 0, seen)) if rx == now.0 && now.2 >= seen + 3);
        if last.is_none_or(|(rx, inf, _)| rx != now.0 || inf != 0) {
            last = Some(now);
        }
        steady
    })
}

/// The forger: a raw UDP socket with its own SRD identity.
struct Forger {
    sock: UdpSocket,
    me: SocketAddrV4,
    to: SocketAddrV4,
    qpn: u32,
    qkey: u32,
    epoch: u32,
    psn: u32,
}

impl Forger {
    fn new(target: &EpAddr) -> Forger {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        let std::net::SocketAddr::V4(me) = sock.local_addr().unwrap() else {
            unreachable!()
        };
        Forger {
            sock,
            me,
            to: target.sock,
            qpn: target.qpn,
            qkey: target.qkey,
            epoch: 5000,
            psn: 0,
        }
    }

    /// A valid SRD data packet carrying `payload`, with the next PSN unless
    /// `psn` is given; `edit` changes the header before it is sealed.
    fn data(&mut self, payload: &[u8], edit: impl FnOnce(&mut Repr)) -> Vec<u8> {
        let psn = self.psn;
        self.psn += 1;
        let mut r = Repr {
            packet_type: PacketType::SrdData,
            flags: 0,
            path: 0,
            src_ip: *self.me.ip(),
            src_port: self.me.port(),
            epoch: self.epoch,
            body: Body::Data {
                dst_qpn: self.qpn,
                src_qpn: 1,
                qkey: self.qkey,
                psn,
                una: 0,
                ack: None,
            },
            payload_len: payload.len(),
        };
        edit(&mut r);
        let mut out = vec![0u8; r.total_len()];
        let n = r.emit(&mut out, payload).expect("emit");
        out.truncate(n);
        out
    }

    fn send(&self, d: &[u8]) {
        assert_eq!(self.sock.send_to(d, self.to).unwrap(), d.len());
    }
}

fn set_body(r: &mut Repr, f: impl FnOnce(&mut u32, &mut u32, &mut u32)) {
    if let Body::Data {
        dst_qpn, qkey, psn, ..
    } = &mut r.body
    {
        f(dst_qpn, qkey, psn);
    }
}

/// An RDM DATA packet: carries no sender address, so only a known peer's
/// is accepted.
fn rdm_data() -> Vec<u8> {
    let mut b = vec![0u8; wr::DATA_LEN + 16];
    let n = wr::emit_data(
        &mut b,
        &wr::DataRepr {
            msg_id: 3,
            rx_id: 0,
            offset: 0,
        },
    );
    b.truncate(n + 16);
    b
}

#[test]
fn every_bad_packet_class_is_dropped_and_counted() {
    setup();
    let p = Pair::new(&Opts::rdm());
    let (pa, pb) = (page_of(&p.a.name), page_of(&p.b.name));
    legit_exchange(&p, 1);
    let before = quiet(&p, &pa, &pb);
    assert!(ctr(&before, "udp_rx_pkts") > 0 && ctr(&before, "shm_rx_pkts") == 0);
    assert!(before.peers.iter().all(|r| r.path == "udp"), "{before:?}");
    let target = EpAddr::from_bytes(&p.b.name).unwrap();
    let mut f = Forger::new(&target);
    let mut sent: HashMap<&str, u64> = HashMap::new();
    let mut note = |k: &'static str, n: u64| *sent.entry(k).or_default() += n;
    let mut accepted = Vec::new();

    // From an address not in B's AV, with packets that do not carry one.
    for _ in 0..5 {
        let d = f.data(&rdm_data(), |_| {});
        f.send(&d);
        accepted.push(d);
    }
    note("drop_not_in_av", 5);
    // SRD fine, but the RDM header is cut short (its lengths lie).
    for _ in 0..4 {
        let d = f.data(&[wr::VERSION, 1, 0, 0, 0, 0, 0, 0, 9, 9], |_| {});
        f.send(&d);
        accepted.push(d);
    }
    note("drop_rdm_malformed", 4);
    // Replays of every packet B accepted: duplicates, delivered once.
    for d in &accepted {
        f.send(d);
    }
    note("duplicates", accepted.len() as u64);
    // Wrong QKey; unknown QP; PSNs far outside the window; an old epoch.
    for _ in 0..3 {
        let d = f.data(&rdm_data(), |r| set_body(r, |_, q, _| *q ^= 0x10));
        f.send(&d);
    }
    note("drop_bad_qkey", 3);
    for _ in 0..3 {
        let d = f.data(&rdm_data(), |r| set_body(r, |qpn, _, _| *qpn += 1000));
        f.send(&d);
    }
    note("drop_unknown_qp", 3);
    for k in 0..2 {
        let d = f.data(&rdm_data(), |r| set_body(r, |_, _, psn| *psn = 1 << 20 | k));
        f.send(&d);
    }
    note("drop_out_of_window", 2);
    for _ in 0..2 {
        let d = f.data(&rdm_data(), |r| r.epoch -= 1);
        f.send(&d);
    }
    note("drop_stale_epoch", 2);
    // Checksum mismatch: one header bit flipped after sealing (the
    // checksum covers the header; the UDP checksum the payload).
    for _ in 0..4 {
        let mut d = f.data(&rdm_data(), |_| {});
        d[srd_fi::wire::srd::DATA_HEADER_LEN - 1] ^= 1;
        f.send(&d);
    }
    note("drop_bad_crc", 4);
    // Another wire version.
    for v in [0u8, srd_fi::wire::srd::VERSION + 1, 255] {
        let mut d = f.data(&rdm_data(), |_| {});
        d[0] = v;
        f.send(&d);
    }
    note("drop_bad_version", 3);
    // Truncated header; total length beyond the datagram.
    for n in [1usize, 12, 39] {
        let d = f.data(&rdm_data(), |_| {});
        f.send(&d[..n]);
    }
    for extra in [1u16, 100, 60_000] {
        let mut d = f.data(&rdm_data(), |_| {});
        let total = u16::from_be_bytes([d[10], d[11]]).saturating_add(extra);
        d[10..12].copy_from_slice(&total.to_be_bytes());
        f.send(&d);
    }
    note("drop_bad_length", 6);
    // Unknown packet types.
    for t in [0u8, 99] {
        let mut d = f.data(&rdm_data(), |_| {});
        d[1] = t;
        f.send(&d);
    }
    note("drop_unknown_type", 2);

    // Every counter rises by exactly what was sent; every other drop
    // counter stays put.
    let after = wait_for(
        &pb,
        20,
        || {
            for cq in p.cqs() {
                assert!(poll_cq(cq).is_none(), "a forged packet completed something");
            }
        },
        |s| sent.iter().all(|(k, n)| ctr(s, k) >= ctr(&before, k) + n),
    );
    for (n, v) in &after.counters {
        let delta = v - ctr(&before, n);
        if let Some(&want) = sent.get(n.as_str()) {
            assert_eq!(delta, want, "{n}");
        } else if n.starts_with("drop_") || n.starts_with("rma_") {
            assert_eq!(delta, 0, "{n} moved");
        }
    }
    // The forged packets that passed SRD reached the protocol, and not one
    // of them became a message.
    assert_eq!(ctr(&after, "rx_msgs"), ctr(&before, "rx_msgs"));
    // Still serving the real peer, both ways, exact bytes.
    legit_exchange(&p, 77);
}

// ---- RMA and atomics with guessed keys ---------------------------------------

/// The completion of A's one outstanding operation.
fn done(p: &Pair) -> Cqe {
    let g = p.wait(1, 0, 20);
    assert_eq!(g[0].len(), 1, "{g:?}");
    g[0][0].clone()
}

#[test]
fn rma_with_guessed_keys_is_refused_counted_and_harmless() {
    let p = rma_pair();
    let pb = page_of(&p.b.name);
    let mut target = vec![0x5Au8; 4096];
    let mut ro = vec![0x33u8; 256];
    let mr = mr_reg(p.dom, &mut target, REMOTE_RW, 0);
    let mr_ro = mr_reg(p.dom, &mut ro, b::FI_REMOTE_READ, 0);
    let (key, base) = (mr_key(mr), target.as_ptr() as u64);
    let (key_ro, base_ro) = (mr_key(mr_ro), ro.as_ptr() as u64);
    let before = wait_for(&pb, 20, || {}, |s| ctr(s, "mrs") >= 2);
    let data = vec![0xC3u8; 64];
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let mut guesses: Vec<u64> = (0..8)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        })
        .collect();
    guesses.extend([key.wrapping_add(1), key.wrapping_sub(1)]);
    guesses.retain(|&g| g != key && g != key_ro);
    for &g in &guesses {
        assert_eq!(p.a.write(&data, base, g, 0), 0);
        assert_eq!(done(&p).err, b::FI_EACCES, "write with key {g:#x}");
    }
    let mut back = vec![0u8; 64];
    assert_eq!(p.a.read(&mut back, base, key ^ 0x8000, 0), 0);
    assert_eq!(done(&p).err, b::FI_EACCES, "read with a guessed key");
    let guessed = key.wrapping_add(1);
    let rc =
        p.a.atomic(b::FI_SUM, b::FI_UINT64, &[1, 2], base, guessed, 0);
    assert_eq!(rc, 0);
    assert_eq!(done(&p).err, b::FI_EACCES, "atomic with key+1");
    let bad_keys = guesses.len() as u64 + 2;
    // The right key, outside its range (past the end, before the start).
    assert_eq!(p.a.write(&data, base + 4096 - 10, key, 0), 0);
    assert_eq!(done(&p).err, b::FI_EINVAL, "write past the end");
    assert_eq!(p.a.write(&data, base - 64, key, 0), 0);
    assert_eq!(done(&p).err, b::FI_EINVAL, "write before the start");
    // A read-only region written.
    assert_eq!(p.a.write(&data, base_ro, key_ro, 0), 0);
    assert_eq!(done(&p).err, b::FI_EACCES, "write to read-only");
    assert!(target.iter().all(|&v| v == 0x5A), "target memory untouched");
    assert!(ro.iter().all(|&v| v == 0x33), "read-only region untouched");
    assert!(back.iter().all(|&v| v == 0), "nothing read");
    let after = wait_for(
        &pb,
        20,
        || {},
        |s| ctr(s, "rma_refused") >= ctr(&before, "rma_refused") + bad_keys + 3,
    );
    let d = |n: &str| ctr(&after, n) - ctr(&before, n);
    assert_eq!(d("rma_bad_key"), bad_keys);
    assert_eq!(d("rma_bad_range"), 2);
    assert_eq!(d("rma_bad_access"), 1);
    assert_eq!(d("rma_refused"), bad_keys + 3);
    // The real key still works, exactly where asked.
    assert_eq!(p.a.write(&data, base + 100, key, 0), 0);
    assert_eq!(done(&p).err, 0);
    assert!(target[100..164].iter().all(|&v| v == 0xC3));
    assert!(
        target[..100]
            .iter()
            .chain(&target[164..])
            .all(|&v| v == 0x5A)
    );
    assert_eq!(close(fid_of(mr_ro)), 0);
    assert_eq!(close(fid_of(mr)), 0);
}

#[test]
fn provider_mr_keys_are_random() {
    let p = rma_pair();
    let mut bufs: Vec<Vec<u8>> = (0..64).map(|_| vec![0u8; 64]).collect();
    let mrs: Vec<_> = bufs
        .iter_mut()
        .map(|bf| mr_reg(p.dom, bf, b::FI_REMOTE_WRITE, 0))
        .collect();
    let mut keys: Vec<u64> = mrs.iter().map(|&m| mr_key(m)).collect();
    // 64 random 64-bit keys: all above 2^32 but a 2^-26 chance, none
    // within 2^20 of another but a 2^-32 one (sequential keys fail both).
    let high = keys.iter().filter(|&&k| k >> 32 != 0).count();
    assert_eq!(high, keys.len(), "keys use all 64 bits: {keys:x?}");
    keys.sort();
    for w in keys.windows(2) {
        assert!(w[1] - w[0] > 1 << 20, "keys too close: {keys:x?}");
    }
    for m in mrs {
        assert_eq!(close(fid_of(m)), 0);
    }
}
