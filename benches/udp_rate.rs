//! UDP loopback datagram rate through the backend: one syscall per datagram
//! (sendto/recvfrom) against batched sendmmsg/recvmmsg, in the same run, for
//! 64 B and 8 KiB datagrams; batched also with UDP GSO on the sender and
//! with GSO + GRO. Prints each batched rate as a ratio to the unbatched one
//! (datagrams per second, rates in the table).
//!
//! Each iteration moves `BATCH` datagrams from one backend to another and
//! receives all of them.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, black_box};
use srd_fi::io::udp::{DEFAULT_SLOT_SIZE, RecvBatch, SendItem, UdpBackend, UdpConfig};

const BATCH: usize = 32;
const SIZES: [usize; 2] = [64, 8192];
/// Batched variants: (name, UDP GSO on the sender, UDP GRO on the receiver).
const VARIANTS: [(&str, bool, bool); 3] = [
    ("sendmmsg_recvmmsg", false, false),
    ("sendmmsg_gso_recvmmsg", true, false),
    ("sendmmsg_gso_recvmmsg_gro", true, true),
];

/// Time and datagrams measured by one benchmark, for the ratio at the end.
#[derive(Default)]
struct Acc {
    elapsed: Duration,
    datagrams: u64,
}

impl Acc {
    fn rate(&self) -> f64 {
        self.datagrams as f64 / self.elapsed.as_secs_f64().max(1e-12)
    }
}

fn pair() -> (UdpBackend, UdpBackend) {
    let open = || UdpBackend::open(UdpConfig::new(Ipv4Addr::LOCALHOST, 1)).expect("open");
    (open(), open())
}

/// Receives until `want` datagrams arrived, with a bound so a kernel drop
/// cannot hang the bench. Returns how many arrived.
fn drain_unbatched(b: &mut UdpBackend, buf: &mut [u8], want: usize) -> usize {
    let mut got = 0;
    let mut idle = 0;
    while got < want && idle < 10_000 {
        match b.recv_from(0, buf).expect("recvfrom") {
            Some((len, _)) => {
                black_box(&buf[..len]);
                got += 1;
            }
            None => idle += 1,
        }
    }
    got
}

fn drain_batched(b: &mut UdpBackend, batch: &mut RecvBatch, want: usize) -> usize {
    let mut got = 0;
    let mut idle = 0;
    while got < want && idle < 10_000 {
        let n = b.recv_batch(batch).expect("recvmmsg");
        for it in batch.iter() {
            black_box(it.data);
        }
        got += n;
        if n == 0 {
            idle += 1;
        }
    }
    got
}

fn main() {
    let mut c = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .configure_from_args();
    let mut rows = Vec::new();
    for size in SIZES {
        let data = vec![0x5Au8; size];
        let mut group = c.benchmark_group(format!("udp_rate/{size}B"));
        group.throughput(Throughput::Elements(BATCH as u64));

        let mut unbatched = Acc::default();
        let (mut a, mut b) = pair();
        let dst = b.local_addr(0);
        let mut buf = vec![0u8; 65536];
        group.bench_function("sendto_recvfrom", |bn| {
            bn.iter_custom(|iters| {
                let start = Instant::now();
                let mut moved = 0;
                for _ in 0..iters {
                    for _ in 0..BATCH {
                        while !a.send_to(0, dst, &data).expect("sendto") {
                            std::hint::spin_loop();
                        }
                    }
                    moved += drain_unbatched(&mut b, &mut buf, BATCH);
                }
                let t = start.elapsed();
                unbatched.elapsed += t;
                unbatched.datagrams += moved as u64;
                t
            })
        });
        let (sa, sb) = (*a.stats(), *b.stats());
        let unb_calls = (sa.send_syscalls + sb.recv_syscalls) as f64 / sa.tx_datagrams as f64;

        let mut batched = [Acc::default(), Acc::default(), Acc::default()];
        let mut calls = [f64::NAN; 3];
        for (v, (name, gso, gro)) in VARIANTS.into_iter().enumerate() {
            let mut cfg = UdpConfig::new(Ipv4Addr::LOCALHOST, 1);
            cfg.gso = gso;
            let mut a = UdpBackend::open(cfg).expect("open");
            let mut cfg = UdpConfig::new(Ipv4Addr::LOCALHOST, 1);
            cfg.gro = gro;
            let mut b = UdpBackend::open(cfg).expect("open");
            if a.gso_enabled() != gso || b.gro_enabled() != gro {
                continue;
            }
            let dst = b.local_addr(0);
            // GRO needs whole 64 KiB slots; otherwise slots fit the datagram.
            let slot = if gro { DEFAULT_SLOT_SIZE } else { size.max(64) };
            let mut batch = RecvBatch::new(64, slot);
            let mut items: Vec<SendItem> = (0..BATCH)
                .map(|_| SendItem {
                    path: 0,
                    dst,
                    data: &data,
                    tail: &[],
                })
                .collect();
            let acc = &mut batched[v];
            group.bench_function(name, |bn| {
                bn.iter_custom(|iters| {
                    let start = Instant::now();
                    let mut moved = 0;
                    for _ in 0..iters {
                        let mut sent = 0;
                        while sent < BATCH {
                            sent += a.send_batch(&mut items[sent..]).expect("sendmmsg");
                        }
                        moved += drain_batched(&mut b, &mut batch, BATCH);
                    }
                    let t = start.elapsed();
                    acc.elapsed += t;
                    acc.datagrams += moved as u64;
                    t
                })
            });
            let (sa, sb) = (*a.stats(), *b.stats());
            calls[v] = (sa.send_syscalls + sb.recv_syscalls) as f64 / sa.tx_datagrams as f64;
        }
        group.finish();
        rows.push((
            size,
            unbatched.rate(),
            batched[0].rate(),
            batched[1].rate(),
            batched[2].rate(),
            unb_calls,
            calls,
        ));
    }
    c.final_summary();

    println!(
        "\nUDP loopback, {BATCH} datagrams per iteration, one sender and one receiver backend"
    );
    println!(
        "| size | sendto/recvfrom | sendmmsg/recvmmsg | + GSO | + GSO + GRO \
         | batched/unbatched | GSO/unbatched | GSO+GRO/unbatched | syscalls/dgram unbatched | batched |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (size, u, b, g, gg, uc, [bc, _, _]) in rows {
        println!(
            "| {size} B | {u:.0} | {b:.0} | {g:.0} | {gg:.0} | {:.2}x | {:.2}x | {:.2}x | {uc:.2} | {bc:.3} |",
            b / u,
            g / u,
            gg / u
        );
    }
}
