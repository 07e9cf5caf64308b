//! Randomised RMA, atomics and messages together among three endpoints,
//! under reordering, delays and receive-buffer pressure (RNR), checked
//! exactly; and RMA toward a peer that never answers.

mod rdm_common;
#[path = "rdm_rma_common.rs"]
mod rma_common;

use rdm_common::{Net, Rng, cfg, owned, pattern};
use rma_common::{RW, Registry};
use srd_fi::mem::UserIov;
use srd_fi::rdm::{AtomicOp, CompFlags, Config, Datatype, ErrorKind, OpFlags, RdmError};
use std::collections::HashMap;

const KEY: u64 = 0x3333;
/// Each initiator writes its own slots of every target; counters follow.
const SLOT: usize = 300_000;
const SLOTS: usize = 4;
const COUNTERS: usize = 8;

fn region_len() -> usize {
    3 * SLOTS * SLOT + COUNTERS * 8
}

fn mixed(seed: u64, mk: impl Fn(usize) -> Config, rx_depth: usize) {
    let n = 3;
    let mut net = Net::new(n, seed, mk);
    net.rx_depth = rx_depth;
    let regs: Vec<Registry> = (0..n).map(|_| Registry::default()).collect();
    for (i, r) in regs.iter().enumerate() {
        r.add(KEY, region_len(), RW, None);
        r.with(KEY, |m| m.bytes_mut().fill(0));
        net.eps[i].set_rma_target(Box::new(r.clone()));
    }
    let mut rng = Rng::new(seed);
    // Expected contents of every (target, initiator, slot) and counter.
    let mut slots: HashMap<(usize, usize, usize), Vec<u8>> = HashMap::new();
    let mut sums = vec![[0u64; COUNTERS]; n];
    let mut outstanding = vec![0usize; n];
    let mut reads: HashMap<u64, (usize, usize, usize)> = HashMap::new();
    let mut ctx = 0u64;
    let mut verified_reads = 0;
    let counter_base = (3 * SLOTS * SLOT) as u64;
    for round in 0..300 {
        let i = rng.below(n as u64) as usize;
        let t = (i + 1 + rng.below(n as u64 - 1) as usize) % n;
        let p = net.peer(i, t);
        ctx += 1;
        let r = match rng.below(4) {
            0 => {
                let s = rng.below(SLOTS as u64) as usize;
                // A slot is written by one op at a time (RMA is unordered).
                if slots.contains_key(&(t, i, s)) && reads.values().any(|&v| v == (t, i, s)) {
                    continue;
                }
                let len = [0, 1, 100, 8_000, 9_000, 70_000, SLOT][rng.below(7) as usize];
                let data = pattern(ctx, len);
                let addr = ((i * SLOTS + s) * SLOT) as u64;
                let r = net.eps[i].write(
                    net.now,
                    p,
                    UserIov::from_vec(data.clone()),
                    addr,
                    KEY,
                    None,
                    ctx,
                    if rng.below(2) == 0 {
                        OpFlags::DELIVERY_COMPLETE
                    } else {
                        OpFlags::empty()
                    },
                );
                if r.is_ok() {
                    // Completed before the slot is touched again (below).
                    net.run(2_000_000);
                    slots.insert((t, i, s), data);
                }
                r
            }
            1 => {
                let k = rng.below(COUNTERS as u64) as usize;
                let v = rng.below(1000);
                sums[t][k] = sums[t][k].wrapping_add(v);
                let res = (rng.below(2) == 0).then(|| owned(8));
                net.eps[i].atomic(
                    net.now,
                    p,
                    AtomicOp::Sum,
                    Datatype::Uint64,
                    &v.to_ne_bytes(),
                    None,
                    res,
                    counter_base + 8 * k as u64,
                    KEY,
                    1,
                    ctx,
                    OpFlags::empty(),
                )
            }
            2 => {
                let s = rng.below(SLOTS as u64) as usize;
                let Some(want) = slots.get(&(t, i, s)) else {
                    continue;
                };
                let addr = ((i * SLOTS + s) * SLOT) as u64;
                reads.insert(ctx, (t, i, s));
                net.eps[i].read(
                    net.now,
                    p,
                    owned(want.len()),
                    addr,
                    KEY,
                    ctx,
                    OpFlags::empty(),
                )
            }
            _ => {
                let len = [1, 5000, 100_000][rng.below(3) as usize];
                let q = net.peer(t, i);
                let data = UserIov::from_vec(pattern(ctx, len));
                let r = net.eps[i].tsend(net.now, p, data, ctx, None, ctx, OpFlags::empty());
                if r.is_ok() {
                    net.eps[t]
                        .trecv(net.now, owned(len), Some(q), ctx, 0, ctx, OpFlags::empty())
                        .unwrap();
                }
                r
            }
        };
        match r {
            Ok(()) => outstanding[i] += 1,
            Err(RdmError::Again) => {}
            Err(e) => panic!("round {round}: {e:?}"),
        }
        if rng.below(3) == 0 {
            for _ in 0..rng.below(20) {
                net.step();
            }
        }
        // Reads check what they got against the slot's last write.
        for e in 0..n {
            for c in net.take(e) {
                assert!(c.err.is_none(), "{:?}", c.err);
                if let Some((tt, ii, ss)) = reads.remove(&c.context) {
                    verified_reads += 1;
                    assert_eq!(c.flags, CompFlags::RMA | CompFlags::READ);
                    assert_eq!(&c.iov.unwrap().to_vec(), &slots[&(tt, ii, ss)]);
                }
            }
        }
    }
    net.run(4_000_000);
    for e in 0..n {
        for c in net.take(e) {
            assert!(c.err.is_none(), "{:?}", c.err);
            if let Some(k) = reads.remove(&c.context) {
                verified_reads += 1;
                assert_eq!(&c.iov.unwrap().to_vec(), &slots[&k]);
            }
        }
    }
    assert!(reads.is_empty(), "every read completed");
    let total: usize = outstanding.iter().sum();
    assert!(
        verified_reads >= 20 && slots.len() >= 20 && total >= 250,
        "reads {verified_reads}, slots {}, ops {total}",
        slots.len()
    );
    for t in 0..n {
        let mem = regs[t].bytes(KEY);
        for ((tt, i, s), data) in &slots {
            if *tt == t {
                let at = (i * SLOTS + s) * SLOT;
                assert_eq!(&mem[at..at + data.len()], &data[..]);
            }
        }
        for (k, want) in sums[t].iter().enumerate() {
            let at = 3 * SLOTS * SLOT + 8 * k;
            let got = u64::from_ne_bytes(mem[at..at + 8].try_into().unwrap());
            assert_eq!(got, *want, "target {t} counter {k}");
        }
        assert_eq!(net.eps[t].pending_ops(), (0, 0));
    }
}

#[test]
fn mixed_traffic_default_config() {
    mixed(41, cfg, 64);
}

#[test]
fn mixed_traffic_small_mtu_and_rnr_pressure() {
    mixed(
        42,
        |i| Config {
            mtu: 1472,
            cts_window: 16 * 1024,
            tx_size: 32,
            rma_target_max: 2,
            ..cfg(i)
        },
        4,
    );
}

#[test]
fn rma_to_a_peer_that_never_answers_times_out() {
    let mut net = Net::new(1, 43, |i| Config {
        handshake_timeout_ns: 5_000_000,
        ..cfg(i)
    });
    let ghost = net.eps[0].insert_peer(b"nobody-home").unwrap();
    net.eps[0]
        .write(
            net.now,
            ghost,
            owned(100_000),
            0,
            KEY,
            None,
            1,
            OpFlags::empty(),
        )
        .unwrap();
    net.eps[0]
        .read(net.now, ghost, owned(10), 0, KEY, 2, OpFlags::empty())
        .unwrap();
    net.eps[0]
        .atomic(
            net.now,
            ghost,
            AtomicOp::Sum,
            Datatype::Int32,
            &[1, 0, 0, 0],
            None,
            None,
            0,
            KEY,
            1,
            3,
            OpFlags::empty(),
        )
        .unwrap();
    net.run(100);
    assert!(net.take(0).is_empty());
    net.advance(6_000_000);
    let cs = net.take(0);
    assert_eq!(cs.len(), 3);
    for c in &cs {
        assert_eq!(c.err.as_ref().unwrap().kind, ErrorKind::TimedOut);
    }
    assert_eq!(net.eps[0].pending_ops(), (0, 0));
}
