//! Seeded randomized traffic across three endpoints: random sizes over all
//! protocols, random tags, directed and wildcard receives posted before and
//! after the messages arrive, small storage limits (deferrals, RNR), random
//! delays. Every message must arrive exactly once, intact, in SAS order.

mod rdm_common;

use rdm_common::{Net, Rng, cfg, owned, pattern};
use srd_fi::mem::UserIov;
use srd_fi::rdm::{CompFlags, Completion, Config, OpFlags};
use std::collections::HashMap;

const MAX: usize = 100_000;

fn size(rng: &mut Rng) -> usize {
    match rng.below(10) {
        0..=4 => rng.below(200) as usize,
        5..=7 => rng.below(20_000) as usize,
        8 => 60_000 + rng.below(10_000) as usize,
        _ => 70_000 + rng.below((MAX - 70_000) as u64) as usize,
    }
}

/// cq data: sender (8 bits) | sequence per (sender, receiver) (24 bits) | len (32 bits).
fn id(from: usize, seq: u64, len: usize) -> u64 {
    ((from as u64) << 56) | (seq << 32) | len as u64
}

fn run(seed: u64) {
    let mut net = Net::new(3, seed, |i| Config {
        unexp_max_bytes: 200_000,
        unexp_max_count: 24,
        reorder_window: 16,
        mtu: [8192, 1472, 4000][i],
        cts_window: 64 * 1024,
        ..cfg(i)
    });
    net.rx_depth = 3;
    net.max_delay = 50_000;
    let mut rng = Rng::new(seed ^ 0xabc);
    let per_pair = 40u64;
    // Phase A: directed receives that take any tag, posted first: each
    // receive gets the messages of its source in send order.
    for r in 0..3 {
        for s in 0..3 {
            if s != r {
                let src = net.peer(r, s);
                for k in 0..per_pair {
                    let ctx = (s as u64) << 32 | k;
                    net.eps[r]
                        .trecv(
                            net.now,
                            owned(MAX),
                            Some(src),
                            0,
                            u64::MAX,
                            ctx,
                            OpFlags::empty(),
                        )
                        .unwrap();
                }
            }
        }
    }
    let mut seq = HashMap::new();
    for _ in 0..per_pair * 6 {
        let (s, r) = loop {
            let s = rng.below(3) as usize;
            let r = rng.below(3) as usize;
            let k = *seq.get(&(s, r)).unwrap_or(&0);
            if s != r && k < per_pair {
                break (s, r);
            }
        };
        let k = seq.entry((s, r)).or_insert(0u64);
        let len = size(&mut rng);
        let data = id(s, *k, len);
        *k += 1;
        let p = net.peer(s, r);
        let tag = rng.below(4);
        let iov = UserIov::from_vec(pattern(data, len));
        while net.eps[s]
            .tsend(
                net.now,
                p,
                iov_clone(&iov),
                tag,
                Some(data),
                data,
                OpFlags::empty(),
            )
            .is_err()
        {
            net.step();
        }
        if rng.below(3) == 0 {
            net.step();
        }
    }
    net.run(1_000_000);
    for r in 0..3 {
        let (cs, sc) = split(net.take(r));
        assert_eq!(sc.len() as u64, per_pair * 2, "sender {r}");
        assert!(sc.iter().all(|c| c.err.is_none()));
        assert_eq!(cs.len() as u64, per_pair * 2, "receiver {r}");
        for c in &cs {
            assert!(c.err.is_none(), "{:?}", c.err);
            let s = (c.context >> 32) as usize;
            let k = c.context & 0xffff_ffff;
            assert_eq!(c.data >> 56, s as u64, "directed receive got its source");
            assert_eq!(
                (c.data >> 32) & 0xff_ffff,
                k,
                "SAS: k-th receive, k-th message"
            );
            let len = (c.data & 0xffff_ffff) as usize;
            assert_eq!(c.len, len);
            assert_eq!(
                c.iov.as_ref().unwrap().to_vec()[..len],
                pattern(c.data, len)[..]
            );
        }
    }

    // Phase B: messages first (unexpected, back-pressure), then exact-tag
    // receives from any source, posted in random order of tags.
    let mut count: HashMap<u64, Vec<usize>> = HashMap::new(); // (r, tag) key below
    let mut sent = 0;
    let mut sends: Vec<(usize, usize, u64, u64)> = Vec::new();
    let mut seq: HashMap<(usize, usize), u64> = HashMap::new();
    for _ in 0..150 {
        let s = rng.below(3) as usize;
        let r = (s + 1 + rng.below(2) as usize) % 3;
        let k = seq.entry((s, r)).or_insert(0);
        let len = size(&mut rng);
        let data = id(s, *k, len);
        *k += 1;
        let tag = 100 + rng.below(3);
        count.entry(r as u64 * 1000 + tag).or_default().push(s);
        sends.push((s, r, tag, data));
        let p = net.peer(s, r);
        let iov = UserIov::from_vec(pattern(data, len));
        while net.eps[s]
            .tsend(
                net.now,
                p,
                iov_clone(&iov),
                tag,
                Some(data),
                data,
                OpFlags::empty(),
            )
            .is_err()
        {
            net.step();
        }
        sent += 1;
    }
    net.run(3000);
    let mut keys: Vec<u64> = count.keys().copied().collect();
    keys.sort();
    let mut posts: Vec<(usize, u64)> = Vec::new();
    for key in keys {
        for _ in 0..count[&key].len() {
            posts.push(((key / 1000) as usize, key % 1000));
        }
    }
    // Shuffle the posting order across receivers and tags.
    for i in (1..posts.len()).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        posts.swap(i, j);
    }
    let mut ctx = 0u64;
    for (r, tag) in posts {
        ctx += 1;
        net.eps[r]
            .trecv(net.now, owned(MAX), None, tag, 0, ctx, OpFlags::empty())
            .unwrap();
        if rng.below(2) == 0 {
            net.step();
        }
    }
    net.run(1_000_000);
    let mut got = 0;
    let mut send_done = 0;
    for r in 0..3 {
        let (mut cs, sc) = split(net.take(r));
        send_done += sc.len();
        cs.sort_by_key(|c| c.context);
        // Per (source, tag): receives posted later get later messages.
        let mut last: HashMap<(u64, u64), u64> = HashMap::new();
        for c in &cs {
            assert!(c.err.is_none());
            let len = (c.data & 0xffff_ffff) as usize;
            assert_eq!(
                c.iov.as_ref().unwrap().to_vec()[..len],
                pattern(c.data, len)[..]
            );
            let key = (c.data >> 56, c.tag);
            let k = (c.data >> 32) & 0xff_ffff;
            if let Some(&prev) = last.get(&key) {
                assert!(k > prev, "SAS per (source, tag)");
            }
            last.insert(key, k);
            assert!(
                sends
                    .iter()
                    .any(|&(_, rr, t, d)| rr == r && t == c.tag && d == c.data)
            );
        }
        got += cs.len();
    }
    assert_eq!(got, sent);
    let deferred: u64 = net.eps.iter().map(|e| e.stats().deferred).sum();
    assert!(deferred > 0, "the storage limits were exercised");
    assert!(
        net.rnr_events > 0,
        "the glue ran out of buffers (RNR) and recovered"
    );
    assert_eq!(send_done, sent);
    for s in 0..3 {
        assert_eq!(net.eps[s].pending_ops(), (0, 0));
        assert_eq!(net.eps[s].stored_bytes(), (0, 0));
    }
}

fn split(v: Vec<Completion>) -> (Vec<Completion>, Vec<Completion>) {
    v.into_iter()
        .partition(|c| c.flags.contains(CompFlags::RECV))
}

fn iov_clone(iov: &UserIov) -> UserIov {
    UserIov::from_vec(iov.to_vec())
}

#[test]
fn random_traffic_three_endpoints_seed_1() {
    run(1);
}

#[test]
fn random_traffic_three_endpoints_seed_2() {
    run(2);
}

#[test]
fn random_traffic_three_endpoints_seed_3() {
    run(3);
}

#[test]
fn all_to_all_eight_endpoints_any_source() {
    let n = 8;
    let per = 20u64;
    let mut net = Net::new(n, 77, |i| Config {
        unexp_max_bytes: 300_000,
        unexp_max_count: 64,
        ..cfg(i)
    });
    net.rx_depth = 8;
    let mut rng = Rng::new(77);
    let mut seq = vec![vec![0u64; n]; n];
    let mut order: Vec<(usize, usize)> = Vec::new();
    for s in 0..n {
        for r in 0..n {
            if s != r {
                for _ in 0..per {
                    order.push((s, r));
                }
            }
        }
    }
    for i in (1..order.len()).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        order.swap(i, j);
    }
    let mut ctx = vec![0u64; n];
    for (k, &(s, r)) in order.iter().enumerate() {
        let len = size(&mut rng).min(40_000);
        let data = id(s, seq[s][r], len);
        seq[s][r] += 1;
        let p = net.peer(s, r);
        let iov = UserIov::from_vec(pattern(data, len));
        while net.eps[s]
            .tsend(
                net.now,
                p,
                iov_clone(&iov),
                9,
                Some(data),
                data,
                OpFlags::empty(),
            )
            .is_err()
        {
            net.step();
        }
        // Receives trail the sends: many messages go unexpected first.
        if k % 3 == 0 {
            for (rr, c) in ctx.iter_mut().enumerate() {
                if *c < per * (n as u64 - 1) && rng.below(2) == 0 {
                    *c += 1;
                    net.eps[rr]
                        .trecv(
                            net.now,
                            owned(40_000),
                            None,
                            0,
                            u64::MAX,
                            *c,
                            OpFlags::empty(),
                        )
                        .unwrap();
                }
            }
            net.step();
        }
    }
    for (rr, c) in ctx.iter_mut().enumerate() {
        while *c < per * (n as u64 - 1) {
            *c += 1;
            net.eps[rr]
                .trecv(
                    net.now,
                    owned(40_000),
                    None,
                    0,
                    u64::MAX,
                    *c,
                    OpFlags::empty(),
                )
                .unwrap();
        }
    }
    net.run(1_000_000);
    for r in 0..n {
        let (mut cs, sc) = split(net.take(r));
        assert_eq!(sc.len() as u64, per * (n as u64 - 1));
        assert_eq!(cs.len() as u64, per * (n as u64 - 1), "receiver {r}");
        cs.sort_by_key(|c| c.context);
        let mut next = vec![0u64; n];
        for c in &cs {
            assert!(c.err.is_none());
            let s = (c.data >> 56) as usize;
            assert_eq!((c.data >> 32) & 0xff_ffff, next[s], "SAS from {s} at {r}");
            next[s] += 1;
            let len = (c.data & 0xffff_ffff) as usize;
            assert_eq!(
                c.iov.as_ref().unwrap().to_vec()[..len],
                pattern(c.data, len)[..]
            );
        }
        assert_eq!(net.eps[r].stored_bytes(), (0, 0));
    }
}
