//! SRD header encode/decode and CRC32C throughput. Reference measured in the
//! same run: a plain memcpy of the same bytes (what a datagram costs anyway).

use criterion::{BenchmarkId, Criterion, Throughput, black_box, criterion_group, criterion_main};
use srd_fi::wire::crc32c;
use srd_fi::wire::srd::{Body, Packet, PacketType, Repr, flags};
use std::net::Ipv4Addr;

fn repr(payload_len: usize, fl: u8) -> Repr {
    Repr {
        packet_type: PacketType::SrdData,
        flags: fl,
        path: 1,
        src_ip: Ipv4Addr::new(10, 0, 0, 1),
        src_port: 7000,
        epoch: 1,
        body: Body::Data {
            dst_qpn: 1,
            src_qpn: 2,
            qkey: 3,
            psn: 4,
            una: 0,
            ack: None,
        },
        payload_len,
    }
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("srd_wire");
    for &size in &[64usize, 1024, 8192] {
        let payload = vec![0x5au8; size];
        let mut out = vec![0u8; size + 64];
        g.throughput(Throughput::Bytes(u64::try_from(size).unwrap()));
        g.bench_with_input(BenchmarkId::new("memcpy_ref", size), &size, |b, _| {
            b.iter(|| {
                out[40..40 + size].copy_from_slice(black_box(&payload));
                black_box(&out);
            })
        });
        g.bench_with_input(BenchmarkId::new("emit", size), &size, |b, _| {
            let r = repr(size, 0);
            b.iter(|| black_box(r.emit(&mut out, black_box(&payload))))
        });
        g.bench_with_input(BenchmarkId::new("emit_hdr_csum", size), &size, |b, _| {
            let r = repr(size, flags::HDR_CSUM);
            b.iter(|| black_box(r.emit(&mut out, black_box(&payload))))
        });
        let n = repr(size, 0).emit(&mut out, &payload).unwrap();
        let pkt = out[..n].to_vec();
        g.bench_with_input(BenchmarkId::new("parse", size), &size, |b, _| {
            b.iter(|| {
                let p = Packet::new_checked(black_box(&pkt[..])).unwrap();
                black_box(Repr::parse(&p).unwrap());
            })
        });
        g.bench_with_input(BenchmarkId::new("crc32c", size), &size, |b, _| {
            b.iter(|| black_box(crc32c::checksum(black_box(&payload))))
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
