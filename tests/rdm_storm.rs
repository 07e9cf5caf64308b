//! Unexpected-message storms (issue: an 8-rank MPI program deadlocked the
//! same-host path). Several senders flood one receiver that has posted
//! nothing for them, so its unexpected storage fills and their next
//! messages are deferred; meanwhile the receiver waits for one message from
//! another sender, which arrives behind the flood in the receive queue the
//! senders share. A glue that leaves a deferred packet at the head of that
//! queue never delivers it (`Glue::HeadOfLine`, reproduced below); the
//! inbox (`rdm::Inbox`) does, and everything else follows once receives
//! are posted. Also: senders paused by a full link (`set_peer_paused`)
//! hold back only their own traffic.

#![allow(clippy::needless_range_loop)] // pairs of endpoints index matrices

mod rdm_common;

use rdm_common::{Glue, Net, Rng, cfg, owned, pattern};
use srd_fi::mem::UserIov;
use srd_fi::rdm::{CompFlags, Completion, Config, OpFlags, PeerIdx};
use std::collections::HashMap;

const STORM_TAG: u64 = 5;
const QUIET_TAG: u64 = 9;

/// cq data of message `k` from endpoint `from`, and its length.
fn id(from: usize, k: u64, len: usize) -> u64 {
    ((from as u64) << 56) | (k << 32) | len as u64
}

fn len_of(data: u64) -> usize {
    (data & 0xffff_ffff) as usize
}

fn check_bytes(c: &Completion) {
    assert!(c.err.is_none(), "error completion {:?}", c.err);
    let len = len_of(c.data);
    assert_eq!(c.len, len);
    assert_eq!(
        c.iov.as_ref().unwrap().to_vec()[..len],
        pattern(c.data, len)[..],
        "bytes of message {:#x}",
        c.data
    );
}

fn send(net: &mut Net, s: usize, r: usize, tag: u64, data: u64) {
    let p = net.peer(s, r);
    let iov = UserIov::from_vec(pattern(data, len_of(data)));
    let mut tries = 0;
    while net.eps[s]
        .tsend(
            net.now,
            p,
            UserIov::from_vec(iov.to_vec()),
            tag,
            Some(data),
            data,
            OpFlags::empty(),
        )
        .is_err()
    {
        net.step();
        tries += 1;
        assert!(tries < 100_000, "send never accepted");
    }
}

/// Endpoints 1..=3 flood endpoint 0 with 40 messages each; then endpoint 4
/// sends one message that endpoint 0 has a receive for. Returns whether
/// that message arrived within `steps`.
fn storm_then_one(glue: Glue, steps: usize) -> (Net, bool) {
    let mut net = Net::new(5, 19, |i| Config {
        unexp_max_count: 8,
        unexp_max_bytes: 64 << 10,
        reorder_window: 16,
        ..cfg(i)
    });
    net.glue = glue;
    // Every datagram fits in the shared queue: what stalls is the glue.
    net.rx_depth = 10_000;
    for s in 1..=3 {
        for k in 0..40 {
            send(&mut net, s, 0, STORM_TAG, id(s, k, 64 + 10 * k as usize));
        }
    }
    net.run(2_000);
    assert!(net.eps[0].stats().deferred > 0, "the flood was deferred");
    let p4 = net.peer(0, 4);
    net.eps[0]
        .trecv(
            net.now,
            owned(4096),
            Some(p4),
            QUIET_TAG,
            0,
            777,
            OpFlags::empty(),
        )
        .unwrap();
    send(&mut net, 4, 0, QUIET_TAG, id(4, 0, 1000));
    let mut got = false;
    for _ in 0..steps {
        net.step();
        let cs = net.take(0);
        for c in &cs {
            if c.context == 777 {
                check_bytes(c);
                got = true;
            }
        }
        if got {
            break;
        }
    }
    (net, got)
}

#[test]
fn head_of_line_glue_deadlocks_behind_a_deferred_storm() {
    let (net, got) = storm_then_one(Glue::HeadOfLine, 20_000);
    assert!(
        !got,
        "the message behind the deferred head must not arrive with the old glue"
    );
    assert!(net.held(0) > 0, "the shared queue is stalled");
    let d = net.eps[0].stats().deferred;
    assert!(d > 1_000, "the head packet is retried forever: {d}");
}

#[test]
fn inbox_delivers_the_matched_message_through_a_storm() {
    let (mut net, got) = storm_then_one(Glue::Inbox, 20_000);
    assert!(got, "the message from endpoint 4 arrived");
    assert!(net.held(0) > 0, "the flood still waits for receives");
    for s in 1..=3 {
        assert!(net.held_from(0, s) > 0, "sender {s} has a deferred packet");
    }
    // The flood drains once receives are posted, in each sender's order.
    for k in 0..120 {
        net.eps[0]
            .trecv(
                net.now,
                owned(4096),
                None,
                STORM_TAG,
                0,
                1000 + k,
                OpFlags::empty(),
            )
            .unwrap();
        net.step();
    }
    net.run(100_000);
    let mut cs: Vec<Completion> = net
        .take(0)
        .into_iter()
        .filter(|c| c.flags.contains(CompFlags::RECV))
        .collect();
    assert_eq!(cs.len(), 120);
    cs.sort_by_key(|c| c.context);
    let mut next = [0u64; 4];
    for c in &cs {
        check_bytes(c);
        let s = (c.data >> 56) as usize;
        assert_eq!((c.data >> 32) & 0xff_ffff, next[s], "order from {s}");
        next[s] += 1;
    }
    assert_eq!(net.held(0), 0);
    assert_eq!(net.eps[0].stored_bytes(), (0, 0));
    for s in 1..=3 {
        let done = net.take(s).into_iter().filter(|c| c.err.is_none()).count();
        assert_eq!(done, 40, "sender {s} completed every send");
    }
}

/// One seeded run: random storm and quiet pairs among six endpoints, small
/// limits, random receive-queue depths, MTUs and message sizes (eager,
/// medium, long), and senders' links paused and resumed at random. Every
/// quiet message (its receive posted first) must arrive while the storms
/// wait; then every storm message once its receives are posted.
fn random_storms(seed: u64) {
    let n = 6;
    let mut rng = Rng::new(seed);
    let mtu = [1472, 8192, 65536][rng.below(3) as usize];
    let unexp = 1 + rng.below(16) as usize;
    let mut net = Net::new(n, seed, |i| Config {
        unexp_max_count: unexp,
        unexp_max_bytes: 128 << 10,
        reorder_window: 16,
        mtu,
        eager_max: mtu,
        cts_window: 64 << 10,
        ..cfg(i)
    });
    net.rx_depth = 2 + rng.below(64) as usize;
    net.max_delay = 30_000;
    // Every ordered pair is a storm (no receive until phase 2) or quiet
    // (directed receives posted first); at least one of each per receiver.
    let mut storm = vec![vec![false; n]; n];
    for r in 0..n {
        for s in 0..n {
            storm[s][r] = s != r && rng.below(2) == 0;
        }
        let others: Vec<usize> = (0..n).filter(|&s| s != r).collect();
        storm[others[0]][r] = true;
        storm[others[1]][r] = false;
    }
    let size = |rng: &mut Rng| match rng.below(10) {
        0..=5 => rng.below(300) as usize,
        6..=8 => 2_000 + rng.below(30_000) as usize,
        _ => 70_000 + rng.below(60_000) as usize,
    };
    let mut sends: Vec<(usize, usize)> = Vec::new();
    for s in 0..n {
        for r in 0..n {
            if s == r {
                continue;
            }
            let k = if storm[s][r] { 30 } else { 6 };
            sends.extend(std::iter::repeat_n((s, r), k));
        }
    }
    for i in (1..sends.len()).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        sends.swap(i, j);
    }
    let mut quiet_ctx: HashMap<u64, u64> = HashMap::new();
    let mut seq = vec![vec![0u64; n]; n];
    // Quiet receives first: directed, exact tag.
    let mut quiet_total = vec![0usize; n];
    for &(s, r) in &sends {
        if !storm[s][r] {
            let k = seq[s][r];
            seq[s][r] += 1;
            let src = net.peer(r, s);
            let ctx = (1 << 40) | ((s as u64) << 32) | k;
            net.eps[r]
                .trecv(
                    net.now,
                    owned(140_000),
                    Some(src),
                    QUIET_TAG,
                    0,
                    ctx,
                    OpFlags::empty(),
                )
                .unwrap();
            quiet_total[r] += 1;
            quiet_ctx.insert(ctx, 0);
        }
    }
    let mut seq = vec![vec![0u64; n]; n];
    let mut paused: Vec<(usize, PeerIdx)> = Vec::new();
    let toggle = |net: &mut Net, rng: &mut Rng, paused: &mut Vec<(usize, PeerIdx)>| {
        if rng.below(4) == 0 {
            let s = rng.below(n as u64) as usize;
            let r = (s + 1 + rng.below(n as u64 - 1) as usize) % n;
            let p = net.peer(s, r);
            if let Some(i) = paused.iter().position(|&x| x == (s, p)) {
                paused.swap_remove(i);
                net.eps[s].set_peer_paused(p, false);
            } else {
                paused.push((s, p));
                net.eps[s].set_peer_paused(p, true);
            }
        }
    };
    for &(s, r) in &sends {
        let k = seq[s][r];
        seq[s][r] += 1;
        let len = size(&mut rng);
        let tag = if storm[s][r] { STORM_TAG } else { QUIET_TAG };
        send(&mut net, s, r, tag, id(s, k, len));
        if rng.below(3) == 0 {
            toggle(&mut net, &mut rng, &mut paused);
            net.step();
        }
    }
    // Links come and go for a while, then all have room again.
    for _ in 0..2_000 {
        toggle(&mut net, &mut rng, &mut paused);
        net.step();
    }
    for (s, p) in paused.drain(..) {
        net.eps[s].set_peer_paused(p, false);
    }
    let mut got: Vec<Vec<Completion>> = (0..n).map(|_| Vec::new()).collect();
    let quiet_done =
        |got: &Vec<Vec<Completion>>, r: usize| got[r].iter().filter(|c| c.tag == QUIET_TAG).count();
    for _ in 0..200_000 {
        net.step();
        for (r, g) in got.iter_mut().enumerate() {
            g.extend(
                net.take(r)
                    .into_iter()
                    .filter(|c| c.flags.contains(CompFlags::RECV)),
            );
        }
        if (0..n).all(|r| quiet_done(&got, r) == quiet_total[r]) {
            break;
        }
    }
    for r in 0..n {
        assert_eq!(
            quiet_done(&got, r),
            quiet_total[r],
            "seed {seed}: receiver {r} got every quiet message while storms wait (held {})",
            net.held(r)
        );
    }
    assert!(
        net.eps.iter().map(|e| e.stats().deferred).sum::<u64>() > 0,
        "seed {seed}: the storage limits were reached"
    );
    // Phase 2: receives for the storms, wildcard source.
    for r in 0..n {
        let want = (0..n).filter(|&s| storm[s][r]).count() * 30;
        for k in 0..want {
            net.eps[r]
                .trecv(
                    net.now,
                    owned(140_000),
                    None,
                    STORM_TAG,
                    0,
                    k as u64,
                    OpFlags::empty(),
                )
                .unwrap();
            if k % 7 == 0 {
                net.step();
            }
        }
    }
    net.run(1_000_000);
    for (r, g) in got.iter_mut().enumerate() {
        g.extend(
            net.take(r)
                .into_iter()
                .filter(|c| c.flags.contains(CompFlags::RECV)),
        );
        let want = (0..n).filter(|&s| storm[s][r]).count() * 30 + quiet_total[r];
        assert_eq!(g.len(), want, "seed {seed}: receiver {r}");
        g.sort_by_key(|c| c.context);
        let mut next: HashMap<(usize, u64), u64> = HashMap::new();
        for c in g.iter() {
            check_bytes(c);
            let s = (c.data >> 56) as usize;
            let k = (c.data >> 32) & 0xff_ffff;
            let e = next.entry((s, c.tag)).or_insert(0);
            assert_eq!(k, *e, "seed {seed}: order from {s} to {r}, tag {}", c.tag);
            *e += 1;
        }
        assert_eq!(net.held(r), 0);
        assert_eq!(net.eps[r].stored_bytes(), (0, 0));
        assert_eq!(net.eps[r].pending_ops(), (0, 0), "seed {seed}: ops of {r}");
    }
}

#[test]
fn random_storms_never_block_a_matched_message() {
    for seed in 1..=12 {
        random_storms(seed);
    }
}

#[test]
fn a_paused_link_holds_back_only_its_peer() {
    let mut net = Net::new(3, 5, cfg);
    let (p1, p2) = (net.peer(0, 1), net.peer(0, 2));
    for r in 1..=2 {
        for k in 0..20 {
            net.eps[r]
                .trecv(net.now, owned(20_000), None, 1, 0, k, OpFlags::empty())
                .unwrap();
        }
    }
    net.eps[0].set_peer_paused(p1, true);
    assert!(net.eps[0].peer_paused(p1));
    assert_eq!(net.eps[0].paused_peers(), 1);
    for k in 0..20u64 {
        for r in 1..=2 {
            send(
                &mut net,
                0,
                r,
                1,
                id(0, k, [10, 9_000, 16_000][k as usize % 3]),
            );
        }
    }
    net.run(20_000);
    assert_eq!(net.take(2).len(), 20, "the other peer got everything");
    assert!(net.take(1).is_empty(), "nothing went to the paused peer");
    net.eps[0].set_peer_paused(p1, false);
    assert_eq!(net.eps[0].paused_peers(), 0);
    net.run(20_000);
    let mut cs = net.take(1);
    assert_eq!(cs.len(), 20);
    cs.sort_by_key(|c| c.context);
    for (k, c) in cs.iter().enumerate() {
        check_bytes(c);
        assert_eq!((c.data >> 32) & 0xff_ffff, k as u64, "order kept");
    }
    assert_eq!(net.take(0).len(), 40);
    assert!(p2 != p1);
}
