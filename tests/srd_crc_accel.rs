//! The accelerated-CRC hook (`wire::crc32c::install_accelerated`): once a
//! backend installs an implementation, every SRD checksum goes through it.
//! Runs in its own process because the hook is process-wide.

use srd_fi::wire::crc32c::{self, Crc32c};
use srd_fi::wire::srd::{Body, Packet, PacketType, Repr};
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU64, Ordering};

static CALLS: AtomicU64 = AtomicU64::new(0);

/// A stand-in for a hardware CRC: bytewise, counted.
fn bytewise(mut crc: u32, data: &[u8]) -> u32 {
    CALLS.fetch_add(1, Ordering::Relaxed);
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0x82F6_3B78
            } else {
                crc >> 1
            };
        }
    }
    crc
}

#[test]
fn installed_update_is_used_and_interoperates() {
    let r = Repr {
        packet_type: PacketType::SrdData,
        flags: 0,
        path: 0,
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
        payload_len: 300,
    };
    let payload: Vec<u8> = (0..300u32).map(|i| i.to_le_bytes()[0]).collect();
    let mut soft = vec![0u8; 400];
    let n = r.emit(&mut soft, &payload).unwrap();
    assert!(!crc32c::accelerated());
    assert!(crc32c::install_accelerated(bytewise));
    assert!(
        !crc32c::install_accelerated(bytewise),
        "installed once per process"
    );
    assert_eq!(crc32c::checksum(b"123456789"), 0xE306_9283);
    // A packet sealed by the table code verifies through the hook and back.
    let p = Packet::new_checked(&soft[..n]).unwrap();
    assert_eq!(Repr::parse(&p).unwrap(), r);
    let mut hard = vec![0u8; 400];
    assert_eq!(r.emit(&mut hard, &payload), Some(n));
    assert_eq!(hard[..n], soft[..n]);
    let mut c = Crc32c::new();
    c.update(&payload);
    assert_eq!(c.finish(), !crc32c::update_tables(!0, &payload));
    assert!(CALLS.load(Ordering::Relaxed) >= 4);
}
