//! Tag matching and reorder-window costs of the RDM layer.
//!
//! - `matcher/exact/N`: a message matched against N posted exact-tag
//!   receives (hash lookup), the receive unposted and reposted.
//! - `matcher/wildcard/N`: the same with N receives that all have ignore
//!   bits (low 16 bits), each a different masked tag.
//! - `matcher/directed_any_tag/N`: N receives, one per source, ignoring
//!   every tag bit (MPI_Recv(k, MPI_ANY_TAG) from N ranks).
//! - `endpoint/eager/N`: a whole eager message through two endpoints
//!   (send, poll_transmit, handle_packet, match, completions) with N
//!   receives posted.
//! - `reorder/{in_order,shuffled}`: 64 eager messages per iteration whose
//!   packets arrive in order or shuffled (the reorder window at work); the
//!   ratio of the two is the cost of reordering.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use srd_fi::mem::UserIov;
use srd_fi::rdm::matcher::Matcher;
use srd_fi::rdm::{Config, Endpoint, OpFlags};
use std::hint::black_box;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn matcher(c: &mut Criterion) {
    let mut g = c.benchmark_group("matcher");
    for n in [10u64, 1_000, 10_000] {
        g.throughput(Throughput::Elements(1));
        g.bench_with_input(BenchmarkId::new("exact", n), &n, |b, &n| {
            let mut m = Matcher::new(n as usize + 1, 16);
            for t in 0..n {
                m.post(t, 0, None, t as u32);
            }
            let mut rng = Rng(0x1234_5678);
            b.iter(|| {
                let tag = rng.next() % n;
                let (h, v) = m.match_posted(black_box(tag), 0).expect("posted");
                m.unpost(h);
                m.post(tag, 0, None, v);
            });
        });
        g.bench_with_input(BenchmarkId::new("wildcard", n), &n, |b, &n| {
            let mut m = Matcher::new(n as usize + 1, 16);
            // Tag = receive number in the high bits; low 16 bits ignored.
            for t in 0..n {
                m.post(t << 16, 0xffff, None, t as u32);
            }
            let mut rng = Rng(0x8765_4321);
            b.iter(|| {
                let r = rng.next() % n;
                let tag = (r << 16) | (rng.next() & 0xffff);
                let (h, v) = m.match_posted(black_box(tag), 0).expect("posted");
                m.unpost(h);
                // Reposted at the end: the list order keeps rotating.
                m.post(r << 16, 0xffff, None, v);
            });
        });
        g.bench_with_input(BenchmarkId::new("directed_any_tag", n), &n, |b, &n| {
            // MPI_Recv(source k, MPI_ANY_TAG) from N sources at once.
            let mut m = Matcher::new(n as usize + 1, 16);
            for s in 0..n {
                m.post(0, u64::MAX, Some(s as u32), s as u32);
            }
            let mut rng = Rng(0x5555_1234);
            b.iter(|| {
                let s = (rng.next() % n) as u32;
                let (h, v) = m.match_posted(black_box(rng.next()), s).expect("posted");
                m.unpost(h);
                m.post(0, u64::MAX, Some(s), v);
            });
        });
    }
    g.finish();
}

fn pair(rx_size: usize) -> (Endpoint, Endpoint, u32, u32) {
    let cfg = |a: &[u8]| Config {
        rx_size,
        tx_size: 1024,
        local_addr: a.to_vec(),
        ..Config::default()
    };
    let mut a = Endpoint::new(cfg(b"a"));
    let mut b = Endpoint::new(cfg(b"b"));
    let pb = a.insert_peer(b"b").unwrap();
    let pa = b.insert_peer(b"a").unwrap();
    (a, b, pb, pa)
}

/// Moves every datagram from `from` to `to` (in the order given by
/// `perm`, if any), acking each.
fn pump(
    now: u64,
    from: &mut Endpoint,
    to: &mut Endpoint,
    src: u32,
    pkts: &mut Vec<(Vec<u8>, usize, u64)>,
    perm: Option<&[usize]>,
) {
    let mut n = 0;
    loop {
        if n == pkts.len() {
            pkts.push((vec![0u8; 8192], 0, 0));
        }
        let (buf, len, tok) = &mut pkts[n];
        match from.poll_transmit(now, buf) {
            Some(t) => {
                *len = t.len;
                *tok = t.token;
                n += 1;
            }
            None => break,
        }
    }
    for k in 0..n {
        let i = match perm {
            Some(p) if p.len() == n => p[k],
            _ => k,
        };
        let (buf, len, tok) = &pkts[i];
        to.handle_packet(now, Some(src), &buf[..*len]);
        from.on_send_complete(*tok, Ok(()));
    }
}

fn warm(
    a: &mut Endpoint,
    b: &mut Endpoint,
    pb: u32,
    pa: u32,
    pkts: &mut Vec<(Vec<u8>, usize, u64)>,
) {
    // Handshakes both ways, so REQs stop carrying addresses.
    a.tinject(0, pb, b"x", 0, None).unwrap();
    b.trecv(0, UserIov::empty(), None, 0, 0, 0, OpFlags::empty())
        .unwrap();
    for _ in 0..3 {
        pump(0, a, b, pa, pkts, None);
        pump(0, b, a, pb, pkts, None);
    }
    while a.poll_completion().is_some() {}
    while b.poll_completion().is_some() {}
}

fn endpoint(c: &mut Criterion) {
    let mut g = c.benchmark_group("endpoint");
    for n in [10u64, 1_000, 10_000] {
        g.throughput(Throughput::Elements(1));
        g.bench_with_input(BenchmarkId::new("eager", n), &n, |bch, &n| {
            let (mut a, mut b, pb, pa) = pair(n as usize + 16);
            let mut pkts = Vec::new();
            warm(&mut a, &mut b, pb, pa, &mut pkts);
            for t in 0..n {
                b.trecv(0, UserIov::empty(), None, 1000 + t, 0, t, OpFlags::empty())
                    .unwrap();
            }
            let mut rng = Rng(99);
            let payload = [7u8; 64];
            bch.iter(|| {
                let t = 1000 + rng.next() % n;
                a.tinject(0, pb, &payload[..0], t, None).unwrap();
                pump(0, &mut a, &mut b, pa, &mut pkts, None);
                // Credits back to the sender (one per half window).
                pump(0, &mut b, &mut a, pb, &mut pkts, None);
                let done = b.poll_completion().expect("matched");
                // Repost the receive that completed.
                b.trecv(
                    0,
                    UserIov::empty(),
                    None,
                    done.tag,
                    0,
                    done.context,
                    OpFlags::empty(),
                )
                .unwrap();
                while a.poll_completion().is_some() {}
            });
        });
    }
    g.finish();
}

fn reorder(c: &mut Criterion) {
    let mut g = c.benchmark_group("reorder");
    const K: usize = 64;
    let mut rng = Rng(7);
    let mut perm: Vec<usize> = (0..K).collect();
    for i in (1..K).rev() {
        perm.swap(i, (rng.next() % (i as u64 + 1)) as usize);
    }
    for (name, shuffle) in [("in_order", false), ("shuffled", true)] {
        g.throughput(Throughput::Elements(K as u64));
        g.bench_function(name, |bch| {
            let (mut a, mut b, pb, pa) = pair(256);
            let mut pkts = Vec::new();
            warm(&mut a, &mut b, pb, pa, &mut pkts);
            let payload = [3u8; 256];
            bch.iter(|| {
                for k in 0..K as u64 {
                    b.trecv(0, UserIov::empty(), None, 5, 0, k, OpFlags::empty())
                        .unwrap();
                    a.tinject(0, pb, &payload[..0], 5, None).unwrap();
                }
                let p = shuffle.then_some(perm.as_slice());
                pump(0, &mut a, &mut b, pa, &mut pkts, p);
                // Credits back to the sender.
                pump(0, &mut b, &mut a, pb, &mut pkts, None);
                let mut n = 0;
                while b.poll_completion().is_some() {
                    n += 1;
                }
                assert_eq!(n, K);
                while a.poll_completion().is_some() {}
            });
        });
    }
    g.finish();
}

criterion_group!(benches, matcher, endpoint, reorder);
criterion_main!(benches);
