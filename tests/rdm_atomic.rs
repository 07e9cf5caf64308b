//! Atomics (fi_atomic / fi_fetch_atomic / fi_compare_atomic) through the
//! rdm harness: every op on every datatype in every kind, checked against
//! an independent reference; atomicity under reordering; access errors.

mod rdm_common;
#[path = "rdm_rma_common.rs"]
mod rma_common;

use rdm_common::{Net, Rng, cfg, owned};
use rma_common::{RO, RW, Registry, WO};
use srd_fi::mem::UserIov;
use srd_fi::rdm::{AtomicKind, AtomicOp, CompFlags, Datatype, ErrorKind, OpFlags, RdmError};

const KEY: u64 = 0x2222;

// ---- an independent reference -------------------------------------------

#[derive(Clone, Copy, Debug)]
enum V {
    /// Integer value (sign- or zero-extended), with width in bytes.
    I(i128, usize, bool),
    F32(f32),
    F64(f64),
    C32(f32, f32),
    C64(f64, f64),
}

fn decode(dt: Datatype, b: &[u8]) -> V {
    let int = |w: usize, signed: bool| {
        let mut a = [0u8; 16];
        a[..w].copy_from_slice(&b[..w]);
        if signed && w < 16 && b[w - 1] & 0x80 != 0 {
            a[w..].fill(0xff);
        }
        V::I(i128::from_le_bytes(a), w, signed)
    };
    let f32_at = |o: usize| f32::from_le_bytes(b[o..o + 4].try_into().unwrap());
    let f64_at = |o: usize| f64::from_le_bytes(b[o..o + 8].try_into().unwrap());
    match dt {
        Datatype::Int8 => int(1, true),
        Datatype::Uint8 => int(1, false),
        Datatype::Int16 => int(2, true),
        Datatype::Uint16 => int(2, false),
        Datatype::Int32 => int(4, true),
        Datatype::Uint32 => int(4, false),
        Datatype::Int64 => int(8, true),
        Datatype::Uint64 => int(8, false),
        Datatype::Int128 => int(16, true),
        Datatype::Uint128 => int(16, false),
        Datatype::Float => V::F32(f32_at(0)),
        Datatype::Double => V::F64(f64_at(0)),
        Datatype::FloatComplex => V::C32(f32_at(0), f32_at(4)),
        Datatype::DoubleComplex => V::C64(f64_at(0), f64_at(8)),
        Datatype::LongDouble | Datatype::LongDoubleComplex => unreachable!(),
    }
}

fn encode(v: V) -> Vec<u8> {
    match v {
        V::I(x, w, _) => x.to_le_bytes()[..w].to_vec(),
        V::F32(x) => x.to_le_bytes().to_vec(),
        V::F64(x) => x.to_le_bytes().to_vec(),
        V::C32(a, b) => [a.to_le_bytes(), b.to_le_bytes()].concat(),
        V::C64(a, b) => [a.to_le_bytes(), b.to_le_bytes()].concat(),
    }
}

fn truth(v: V) -> bool {
    match v {
        V::I(x, ..) => x != 0,
        V::F32(x) => x != 0.0,
        V::F64(x) => x != 0.0,
        V::C32(a, b) => a != 0.0 || b != 0.0,
        V::C64(a, b) => a != 0.0 || b != 0.0,
    }
}

fn boolean(like: V, t: bool) -> V {
    match like {
        V::I(_, w, s) => V::I(t as i128, w, s),
        V::F32(_) => V::F32(t as u8 as f32),
        V::F64(_) => V::F64(t as u8 as f64),
        V::C32(..) => V::C32(t as u8 as f32, 0.0),
        V::C64(..) => V::C64(t as u8 as f64, 0.0),
    }
}

/// a < b, for ordered types (unsigned 128-bit compared as unsigned).
fn less(a: V, b: V) -> bool {
    match (a, b) {
        (V::I(x, 16, false), V::I(y, ..)) => (x as u128) < (y as u128),
        (V::I(x, ..), V::I(y, ..)) => x < y,
        (V::F32(x), V::F32(y)) => x < y,
        (V::F64(x), V::F64(y)) => x < y,
        _ => panic!("unordered"),
    }
}

fn equal(a: V, b: V) -> bool {
    match (a, b) {
        (V::I(x, ..), V::I(y, ..)) => x == y,
        (V::F32(x), V::F32(y)) => x == y,
        (V::F64(x), V::F64(y)) => x == y,
        (V::C32(a, b), V::C32(c, d)) => a == c && b == d,
        (V::C64(a, b), V::C64(c, d)) => a == c && b == d,
        _ => panic!("mixed"),
    }
}

fn arith(a: V, b: V, mul: bool) -> V {
    match (a, b) {
        (V::I(x, w, s), V::I(y, ..)) => V::I(
            if mul {
                x.wrapping_mul(y)
            } else {
                x.wrapping_add(y)
            },
            w,
            s,
        ),
        (V::F32(x), V::F32(y)) => V::F32(if mul { x * y } else { x + y }),
        (V::F64(x), V::F64(y)) => V::F64(if mul { x * y } else { x + y }),
        (V::C32(a, b), V::C32(c, d)) => {
            if mul {
                V::C32(a * c - b * d, a * d + b * c)
            } else {
                V::C32(a + c, b + d)
            }
        }
        (V::C64(a, b), V::C64(c, d)) => {
            if mul {
                V::C64(a * c - b * d, a * d + b * c)
            } else {
                V::C64(a + c, b + d)
            }
        }
        _ => panic!("mixed"),
    }
}

fn bits(a: V, b: V, f: fn(i128, i128) -> i128) -> V {
    match (a, b) {
        (V::I(x, w, s), V::I(y, ..)) => V::I(f(x, y), w, s),
        _ => panic!("bitwise on non-integer"),
    }
}

/// fi_atomic(3)'s pseudo-code, element by element.
fn reference(op: AtomicOp, dt: Datatype, addr: &[u8], buf: &[u8], cmp: &[u8]) -> Vec<u8> {
    if matches!(dt, Datatype::LongDouble | Datatype::LongDoubleComplex) {
        return match op {
            AtomicOp::Write => buf.to_vec(),
            _ => addr.to_vec(),
        };
    }
    let sz = dt.size();
    let mut out = Vec::new();
    for i in 0..addr.len() / sz {
        let a = decode(dt, &addr[i * sz..]);
        let b = if buf.is_empty() {
            a
        } else {
            decode(dt, &buf[i * sz..])
        };
        let c = if cmp.is_empty() {
            a
        } else {
            decode(dt, &cmp[i * sz..])
        };
        let new = match op {
            AtomicOp::Min => {
                if less(b, a) {
                    b
                } else {
                    a
                }
            }
            AtomicOp::Max => {
                if less(a, b) {
                    b
                } else {
                    a
                }
            }
            AtomicOp::Sum => arith(a, b, false),
            AtomicOp::Prod => arith(a, b, true),
            AtomicOp::Lor => boolean(a, truth(a) || truth(b)),
            AtomicOp::Land => boolean(a, truth(a) && truth(b)),
            AtomicOp::Lxor => boolean(a, (truth(a) && !truth(b)) || (!truth(a) && truth(b))),
            AtomicOp::Bor => bits(a, b, |x, y| x | y),
            AtomicOp::Band => bits(a, b, |x, y| x & y),
            AtomicOp::Bxor => bits(a, b, |x, y| x ^ y),
            AtomicOp::Read => a,
            AtomicOp::Write => b,
            AtomicOp::Cswap => {
                if equal(c, a) {
                    b
                } else {
                    a
                }
            }
            AtomicOp::CswapNe => {
                if !equal(c, a) {
                    b
                } else {
                    a
                }
            }
            AtomicOp::CswapLe => {
                if less(c, a) || equal(c, a) {
                    b
                } else {
                    a
                }
            }
            AtomicOp::CswapLt => {
                if less(c, a) {
                    b
                } else {
                    a
                }
            }
            AtomicOp::CswapGe => {
                if less(a, c) || equal(c, a) {
                    b
                } else {
                    a
                }
            }
            AtomicOp::CswapGt => {
                if less(a, c) {
                    b
                } else {
                    a
                }
            }
            AtomicOp::Mswap => {
                let m = bits(b, c, |x, y| x & y);
                let keep = bits(a, c, |x, y| x & !y);
                bits(m, keep, |x, y| x | y)
            }
        };
        out.extend(encode(new));
    }
    out
}

/// The validity table restated from fi_atomic(3)'s families and
/// libfabric's software atomics.
fn expected_valid(op: AtomicOp, dt: Datatype, kind: AtomicKind) -> bool {
    use AtomicOp::*;
    let compare_op = matches!(
        op,
        Cswap | CswapNe | CswapLe | CswapLt | CswapGe | CswapGt | Mswap
    );
    let in_family = match kind {
        AtomicKind::Write => !compare_op && op != Read,
        AtomicKind::Fetch => !compare_op,
        AtomicKind::Compare => compare_op,
    };
    let complex = matches!(dt, Datatype::FloatComplex | Datatype::DoubleComplex);
    let float = matches!(dt, Datatype::Float | Datatype::Double) || complex;
    let long = matches!(dt, Datatype::LongDouble | Datatype::LongDoubleComplex);
    in_family
        && match op {
            _ if long => matches!(op, Read | Write),
            Min | Max | CswapLe | CswapLt | CswapGe | CswapGt => !complex,
            Bor | Band | Bxor | Mswap => !float,
            _ => true,
        }
}

/// `count` random elements of `dt`, from a small set so that compares
/// hit equal, less and greater and arithmetic stays exact.
fn values(rng: &mut Rng, dt: Datatype, count: usize) -> Vec<u8> {
    let small = [-3i64, -1, 0, 1, 2, 5];
    let pick = |rng: &mut Rng| small[rng.below(small.len() as u64) as usize];
    let mut out = Vec::new();
    for _ in 0..count {
        let v = match dt {
            Datatype::Float => V::F32(pick(rng) as f32 / 2.0),
            Datatype::Double => V::F64(pick(rng) as f64 / 2.0),
            Datatype::FloatComplex => V::C32(pick(rng) as f32, pick(rng) as f32),
            Datatype::DoubleComplex => V::C64(pick(rng) as f64, pick(rng) as f64),
            Datatype::LongDouble | Datatype::LongDoubleComplex => {
                out.extend(rng.bytes(dt.size()));
                continue;
            }
            _ => {
                let w = dt.size();
                let signed = matches!(
                    dt,
                    Datatype::Int8
                        | Datatype::Int16
                        | Datatype::Int32
                        | Datatype::Int64
                        | Datatype::Int128
                );
                // Sometimes a large value, to exercise the width.
                let x = if rng.below(4) == 0 {
                    rng.next() as i128 * 7919
                } else {
                    pick(rng) as i128
                };
                V::I(x, w, signed)
            }
        };
        out.extend(encode(v));
    }
    out
}

fn setup(seed: u64) -> (Net, Registry) {
    let mut net = Net::new(2, seed, cfg);
    let reg = Registry::default();
    reg.add(KEY, 4096, RW, None);
    reg.add(2, 64, RO, None);
    reg.add(3, 64, WO, None);
    net.eps[1].set_rma_target(Box::new(reg.clone()));
    (net, reg)
}

#[test]
fn every_op_on_every_type_matches_the_reference() {
    let (mut net, reg) = setup(31);
    let p = net.peer(0, 1);
    let mut rng = Rng::new(5);
    let mut ran = 0;
    let kinds = [AtomicKind::Write, AtomicKind::Fetch, AtomicKind::Compare];
    for op in AtomicOp::ALL {
        for dt in Datatype::ALL {
            for kind in kinds {
                let valid = net.eps[0].atomic_valid(op, dt, kind);
                assert_eq!(
                    valid.is_some(),
                    expected_valid(op, dt, kind),
                    "{op:?} {dt:?} {kind:?}"
                );
                let count = 5;
                let n = count * dt.size();
                let result = (kind != AtomicKind::Write).then(|| owned(n));
                let Some(max) = valid else {
                    let cmp = vec![0u8; n];
                    let r = net.eps[0].atomic(
                        net.now,
                        p,
                        op,
                        dt,
                        &vec![0u8; n],
                        (kind == AtomicKind::Compare).then_some(&cmp[..]),
                        result,
                        0,
                        KEY,
                        count,
                        0,
                        OpFlags::empty(),
                    );
                    assert_eq!(r, Err(RdmError::InvalidArgument), "{op:?} {dt:?} {kind:?}");
                    continue;
                };
                assert!(max >= 64, "{op:?} {dt:?}: max count {max}");
                let addr = 40u64;
                for round in 0..4 {
                    let init = values(&mut rng, dt, count);
                    let operand = values(&mut rng, dt, count);
                    let mut cmp = values(&mut rng, dt, count);
                    if round == 0 {
                        // Element 0 compares equal.
                        cmp[..dt.size()].copy_from_slice(&init[..dt.size()]);
                    }
                    let cmp = (kind == AtomicKind::Compare).then_some(cmp);
                    reg.with(KEY, |r| {
                        r.bytes_mut()[addr as usize..addr as usize + n].copy_from_slice(&init)
                    });
                    let operand_arg = if op == AtomicOp::Read {
                        &[][..]
                    } else {
                        &operand[..]
                    };
                    let result = (kind != AtomicKind::Write).then(|| owned(n));
                    net.eps[0]
                        .atomic(
                            net.now,
                            p,
                            op,
                            dt,
                            operand_arg,
                            cmp.as_deref(),
                            result,
                            addr,
                            KEY,
                            count,
                            77,
                            OpFlags::empty(),
                        )
                        .unwrap();
                    net.run(10_000);
                    let cs = net.take(0);
                    assert_eq!(cs.len(), 1, "{op:?} {dt:?} {kind:?}");
                    let c = &cs[0];
                    assert!(c.err.is_none(), "{op:?} {dt:?} {kind:?}: {:?}", c.err);
                    let want_flags = if kind == AtomicKind::Write {
                        CompFlags::ATOMIC | CompFlags::WRITE
                    } else {
                        CompFlags::ATOMIC | CompFlags::READ
                    };
                    assert_eq!(c.flags, want_flags);
                    assert_eq!(c.context, 77);
                    let expect = reference(
                        op,
                        dt,
                        &init,
                        if op == AtomicOp::Read { &[] } else { &operand },
                        cmp.as_deref().unwrap_or(&[]),
                    );
                    let mem = reg.bytes(KEY);
                    assert_eq!(
                        &mem[addr as usize..addr as usize + n],
                        &expect[..],
                        "{op:?} {dt:?} {kind:?} init {init:?} operand {operand:?} cmp {cmp:?}"
                    );
                    // Nothing around the target changed.
                    assert!(
                        mem[..addr as usize]
                            .iter()
                            .all(|&b| b == rma_common::POISON)
                    );
                    if kind != AtomicKind::Write {
                        assert_eq!(c.iov.as_ref().unwrap().to_vec(), init, "fetched old values");
                    }
                    ran += 1;
                }
            }
        }
    }
    // All families, all types: hundreds of combinations.
    assert!(ran > 800, "ran {ran}");
    assert_eq!(net.eps[0].pending_ops(), (0, 0));
}

#[test]
fn concurrent_sums_from_two_initiators_are_exact() {
    let mut net = Net::new(3, 32, cfg);
    let reg = Registry::default();
    reg.add(KEY, 64, RW, None);
    reg.with(KEY, |r| r.bytes_mut()[..8].fill(0));
    net.eps[2].set_rma_target(Box::new(reg.clone()));
    let per = 400u64;
    let mut total = 0u64;
    for k in 0..per {
        for i in 0..2usize {
            let p = net.peer(i, 2);
            let v = 1 + k * 2 + i as u64;
            total += v;
            // Half fetch the old value, half are plain sums.
            let result = (k % 2 == 0).then(|| owned(8));
            net.eps[i]
                .atomic(
                    net.now,
                    p,
                    AtomicOp::Sum,
                    Datatype::Uint64,
                    &v.to_ne_bytes(),
                    None,
                    result,
                    0,
                    KEY,
                    1,
                    v,
                    OpFlags::empty(),
                )
                .unwrap();
        }
        if k % 50 == 0 {
            net.step();
        }
    }
    net.run(100_000);
    let mut fetched = Vec::new();
    for i in 0..2 {
        let cs = net.take(i);
        assert_eq!(cs.len() as u64, per);
        for c in cs {
            assert!(c.err.is_none());
            if let Some(iov) = c.iov {
                let old = u64::from_ne_bytes(iov.to_vec().try_into().unwrap());
                fetched.push(old);
            }
        }
    }
    let mem = reg.bytes(KEY);
    assert_eq!(u64::from_ne_bytes(mem[..8].try_into().unwrap()), total);
    // Every fetch saw a distinct intermediate value (no lost update).
    let n = fetched.len();
    fetched.sort_unstable();
    fetched.dedup();
    assert_eq!(fetched.len(), n);
    assert!(fetched.iter().all(|&x| x < total));
    assert_eq!(net.eps[2].take_remote_counts().writes, 2 * per);
}

#[test]
fn compare_and_swap_elects_one_winner() {
    let mut net = Net::new(3, 33, cfg);
    let reg = Registry::default();
    reg.add(KEY, 64, RW, None);
    reg.with(KEY, |r| r.bytes_mut()[..4].fill(0));
    net.eps[2].set_rma_target(Box::new(reg.clone()));
    for round in 0..50u32 {
        for i in 0..2usize {
            let p = net.peer(i, 2);
            let mine = round * 2 + 1 + i as u32;
            net.eps[i]
                .atomic(
                    net.now,
                    p,
                    AtomicOp::Cswap,
                    Datatype::Int32,
                    &mine.to_ne_bytes(),
                    Some(&(round * 2).to_ne_bytes()),
                    Some(owned(4)),
                    0,
                    KEY,
                    1,
                    mine as u64,
                    OpFlags::empty(),
                )
                .unwrap();
        }
        net.run(10_000);
        let mut winners = 0;
        for i in 0..2 {
            let c = net.take(i).pop().unwrap();
            let old = u32::from_ne_bytes(c.iov.unwrap().to_vec().try_into().unwrap());
            if old == round * 2 {
                winners += 1;
            }
        }
        assert_eq!(winners, 1, "round {round}");
        // Reset for the next round to the value both expect.
        reg.with(KEY, |r| {
            r.bytes_mut()[..4].copy_from_slice(&(round * 2 + 2).to_ne_bytes())
        });
    }
}

#[test]
fn atomic_access_errors_leave_memory_untouched() {
    let (mut net, reg) = setup(34);
    let p = net.peer(0, 1);
    let before: Vec<_> = [KEY, 2, 3].iter().map(|&k| reg.backing(k)).collect();
    let one = 5u64.to_ne_bytes();
    // (op, key, addr, fetch, compare, errno)
    let cases: Vec<(AtomicOp, u64, u64, bool, bool, ErrorKind)> = vec![
        (AtomicOp::Sum, 99, 0, false, false, ErrorKind::AccessDenied),
        (AtomicOp::Sum, 2, 0, false, false, ErrorKind::AccessDenied), // read-only
        (AtomicOp::Sum, 3, 0, true, false, ErrorKind::AccessDenied),  // fetch needs read
        (AtomicOp::Read, 3, 0, true, false, ErrorKind::AccessDenied),
        (AtomicOp::Cswap, 2, 0, true, true, ErrorKind::AccessDenied),
        (
            AtomicOp::Sum,
            KEY,
            4090,
            false,
            false,
            ErrorKind::InvalidArgument,
        ),
        (
            AtomicOp::Cswap,
            KEY,
            5000,
            true,
            true,
            ErrorKind::InvalidArgument,
        ),
    ];
    for (i, &(op, key, addr, fetch, compare, errno)) in cases.iter().enumerate() {
        let res = UserIov::from_vec(vec![0x33; 8]);
        net.eps[0]
            .atomic(
                net.now,
                p,
                op,
                Datatype::Uint64,
                &one,
                compare.then_some(&one[..]),
                fetch.then_some(res),
                addr,
                key,
                1,
                i as u64,
                OpFlags::empty(),
            )
            .unwrap();
        net.run(10_000);
        let cs = net.take(0);
        assert_eq!(cs.len(), 1);
        assert_eq!(cs[0].err.as_ref().map(|e| e.kind), Some(errno), "case {i}");
        if fetch {
            assert_eq!(cs[0].iov.as_ref().unwrap().to_vec(), vec![0x33; 8]);
        }
    }
    let after: Vec<_> = [KEY, 2, 3].iter().map(|&k| reg.backing(k)).collect();
    assert!(before == after, "memory changed");
    let rc = net.eps[1].take_remote_counts();
    assert_eq!((rc.reads, rc.writes), (0, 0));
    // Allowed accesses on the same regions work.
    let res = owned(8);
    net.eps[0]
        .atomic(
            net.now,
            p,
            AtomicOp::Read,
            Datatype::Uint64,
            &[],
            None,
            Some(res),
            0,
            2,
            1,
            1,
            OpFlags::empty(),
        )
        .unwrap();
    net.eps[0]
        .atomic(
            net.now,
            p,
            AtomicOp::Write,
            Datatype::Uint64,
            &one,
            None,
            None,
            0,
            3,
            1,
            2,
            OpFlags::empty(),
        )
        .unwrap();
    net.run(10_000);
    assert!(net.take(0).iter().all(|c| c.err.is_none()));
    assert_eq!(&reg.bytes(3)[..8], &one);
    let rc = net.eps[1].take_remote_counts();
    assert_eq!((rc.reads, rc.writes), (1, 1));
}

#[test]
fn bad_arguments_are_refused_at_post() {
    let (mut net, _reg) = setup(35);
    let p = net.peer(0, 1);
    let max = net.eps[0]
        .atomic_valid(AtomicOp::Sum, Datatype::Uint8, AtomicKind::Write)
        .unwrap();
    let big = vec![1u8; max + 1];
    let ep = &mut net.eps[0];
    let now = 0;
    let sum = AtomicOp::Sum;
    let u8t = Datatype::Uint8;
    assert_eq!(
        ep.atomic(
            now,
            p,
            sum,
            u8t,
            &big,
            None,
            None,
            0,
            KEY,
            max + 1,
            0,
            OpFlags::empty()
        ),
        Err(RdmError::InvalidArgument),
        "count above max"
    );
    assert_eq!(
        ep.atomic(
            now,
            p,
            sum,
            u8t,
            &big,
            None,
            None,
            0,
            KEY,
            0,
            0,
            OpFlags::empty()
        ),
        Err(RdmError::InvalidArgument),
        "count 0"
    );
    assert_eq!(
        ep.atomic(
            now,
            p,
            sum,
            u8t,
            &[1],
            None,
            None,
            0,
            KEY,
            2,
            0,
            OpFlags::empty()
        ),
        Err(RdmError::InvalidArgument),
        "operand too short"
    );
    assert_eq!(
        ep.atomic(
            now,
            p,
            AtomicOp::Cswap,
            u8t,
            &[1],
            Some(&[1]),
            None,
            0,
            KEY,
            1,
            0,
            OpFlags::empty()
        ),
        Err(RdmError::InvalidArgument),
        "compare without result"
    );
    assert_eq!(
        ep.atomic(
            now,
            p,
            AtomicOp::Read,
            u8t,
            &[],
            None,
            None,
            0,
            KEY,
            1,
            0,
            OpFlags::empty()
        ),
        Err(RdmError::InvalidArgument),
        "read without result"
    );
    assert_eq!(
        ep.atomic(
            now,
            p,
            sum,
            u8t,
            &[1],
            None,
            Some(owned(0)),
            0,
            KEY,
            1,
            0,
            OpFlags::empty()
        ),
        Err(RdmError::InvalidArgument),
        "result too short"
    );
}

#[test]
fn inject_atomic_is_silent_and_copied() {
    let (mut net, reg) = setup(36);
    let p = net.peer(0, 1);
    reg.with(KEY, |r| r.bytes_mut()[..8].fill(0));
    let mut v = 9u64.to_ne_bytes();
    net.eps[0]
        .atomic(
            net.now,
            p,
            AtomicOp::Sum,
            Datatype::Uint64,
            &v,
            None,
            None,
            0,
            KEY,
            1,
            0,
            OpFlags::INJECT,
        )
        .unwrap();
    v.fill(0);
    net.run(10_000);
    let cs = net.take(0);
    assert_eq!(cs.len(), 1);
    assert!(!cs[0].report && cs[0].err.is_none());
    assert_eq!(&reg.bytes(KEY)[..8], &9u64.to_ne_bytes());
}
