use super::*;

fn parse(b: &[u8]) -> Result<Repr<'_>, WireError> {
    Repr::parse(&Packet::new_checked(b)?)
}

#[test]
fn req_round_trip_with_addr() {
    let mut buf = [0u8; 128];
    let hdr = ReqRepr {
        flags: REQ_TAGGED | REQ_CQ_DATA,
        proto: Proto::Medium,
        msg_id: 7,
        tx_id: 9,
        tag: 0xdead_beef,
        cq_data: 42,
        total_len: 100,
        offset: 90,
    };
    let at = emit_req(&mut buf, &hdr, Some(b"addr"));
    buf[at..at + 10].copy_from_slice(b"0123456789");
    match parse(&buf[..at + 10]).unwrap() {
        Repr::Req {
            hdr: h,
            addr,
            payload,
        } => {
            assert_eq!(h.flags, hdr.flags | REQ_HAS_ADDR);
            assert_eq!(h.proto, Proto::Medium);
            assert_eq!(
                (h.msg_id, h.tx_id, h.tag, h.cq_data),
                (7, 9, 0xdead_beef, 42)
            );
            assert_eq!(addr, Some(&b"addr"[..]));
            assert_eq!(payload, b"0123456789");
        }
        r => panic!("{r:?}"),
    }
    // Data running past total_len is rejected.
    assert!(parse(&buf[..at + 10]).is_ok());
    let mut bad = buf;
    bad[32] = 50; // total_len 50 < offset 90
    assert_eq!(parse(&bad[..at + 10]), Err(WireError::Malformed));
}

#[test]
fn control_round_trips() {
    let mut buf = [0u8; 64];
    let c = CtsRepr {
        msg_id: 1,
        tx_id: 2,
        rx_id: 3,
        grant_end: 1 << 40,
    };
    let n = emit_cts(&mut buf, &c);
    assert_eq!(parse(&buf[..n]).unwrap(), Repr::Cts(c));
    let d = DataRepr {
        msg_id: 4,
        rx_id: 5,
        offset: 6,
    };
    let n = emit_data(&mut buf, &d);
    buf[n] = 0xaa;
    assert_eq!(
        parse(&buf[..n + 1]).unwrap(),
        Repr::Data {
            hdr: d,
            payload: &[0xaa]
        }
    );
    let r = ReceiptRepr {
        msg_id: 8,
        tx_id: 9,
    };
    let n = emit_receipt(&mut buf, &r);
    assert_eq!(parse(&buf[..n]).unwrap(), Repr::Receipt(r));
    let h = HandshakeRepr {
        flags: HS_REPLY,
        max_version: 1,
        window: 300,
        features: 3,
    };
    let n = emit_handshake(&mut buf, &h, b"me");
    assert_eq!(
        parse(&buf[..n]).unwrap(),
        Repr::Handshake {
            hdr: h,
            addr: b"me"
        }
    );
    let c = CreditRepr { next_msg_id: 77 };
    let n = emit_credit(&mut buf, &c);
    assert_eq!(parse(&buf[..n]).unwrap(), Repr::Credit(c));
}

#[test]
fn malformed_is_rejected_not_panicking() {
    assert_eq!(parse(&[]), Err(WireError::Truncated));
    let other = VERSION + 1;
    assert_eq!(parse(&[other, 1, 0, 0]), Err(WireError::BadVersion(other)));
    assert_eq!(parse(&[VERSION, 1, 0, 0]), Err(WireError::Truncated));
    assert_eq!(parse(&[VERSION, 99, 0, 0]).unwrap(), Repr::Unknown(99));
    // Declared address longer than the packet.
    let mut buf = [0u8; REQ_LEN + 2];
    let hdr = ReqRepr {
        flags: 0,
        proto: Proto::Eager,
        msg_id: 0,
        tx_id: 0,
        tag: 0,
        cq_data: 0,
        total_len: 0,
        offset: 0,
    };
    emit_req(&mut buf, &hdr, Some(b"ab"));
    buf[5] = 200;
    assert_eq!(parse(&buf), Err(WireError::Truncated));
    // Every truncation of a valid packet fails cleanly.
    let mut hs = [0u8; 64];
    let n = emit_handshake(
        &mut hs,
        &HandshakeRepr {
            flags: 0,
            max_version: 1,
            window: 16,
            features: 0,
        },
        b"xyz",
    );
    for cut in 0..n {
        assert!(parse(&hs[..cut]).is_err(), "cut {cut}");
    }
}

#[test]
fn rma_round_trips_and_rejections() {
    let mut buf = [0u8; 128];
    let op = OpRef {
        tx_id: 3,
        op_gen: 4,
    };
    let w = RtwRepr {
        flags: RTW_CQ_DATA,
        op,
        key: 0x1234,
        addr: 0x1000,
        total_len: 10,
        offset: 6,
        cq_data: 99,
    };
    let n = emit_rtw(&mut buf, &w);
    buf[n..n + 4].copy_from_slice(b"abcd");
    assert_eq!(
        parse(&buf[..n + 4]).unwrap(),
        Repr::Rtw {
            hdr: w,
            payload: b"abcd"
        }
    );
    // Data past total_len.
    assert_eq!(parse(&buf[..n + 5]), Err(WireError::Malformed));
    let r = RtrRepr {
        flags: 0,
        op,
        key: 7,
        addr: 8,
        len: 9,
    };
    let n = emit_rtr(&mut buf, &r);
    assert_eq!(parse(&buf[..n]).unwrap(), Repr::Rtr { hdr: r, desc: None });
    let mut bad = buf;
    bad[20..28].copy_from_slice(&u64::MAX.to_le_bytes());
    assert_eq!(parse(&bad[..n]), Err(WireError::Malformed));
    let a = RtaRepr {
        op,
        key: 1,
        addr: 2,
        atomic_op: 12,
        datatype: 7,
        kind: 2,
        count: 1,
    };
    let n = emit_rta(&mut buf, &a);
    buf[n..n + 16].fill(0);
    assert_eq!(
        parse(&buf[..n + 16]).unwrap(),
        Repr::Rta {
            hdr: a,
            payload: &[0; 16]
        }
    );
    let rr = ReadRspRepr {
        flags: 0,
        op,
        offset: 5,
        status: Status::Ok,
    };
    let n = emit_readrsp(&mut buf, &rr);
    buf[n] = 1;
    assert_eq!(
        parse(&buf[..n + 1]).unwrap(),
        Repr::ReadRsp {
            hdr: rr,
            payload: &[1]
        }
    );
    let rs = RspRepr {
        flags: 0,
        op,
        status: Status::InvalidArgument,
    };
    let n = emit_rsp(&mut buf, &rs, false);
    assert_eq!(parse(&buf[..n]).unwrap(), Repr::WriteRsp(rs));
    let n = emit_rsp(&mut buf, &rs, true);
    assert_eq!(
        parse(&buf[..n]).unwrap(),
        Repr::AtomRsp {
            hdr: rs,
            payload: &[]
        }
    );
    for t in 7..=12u8 {
        for cut in 0..RTW_LEN.min(READRSP_LEN) {
            let mut b = [0u8; 64];
            b[0] = VERSION;
            b[1] = t;
            let fixed = match PacketType::from(t) {
                PacketType::Rtw => RTW_LEN,
                PacketType::Rtr => RTR_LEN,
                PacketType::Rta => RTA_LEN,
                PacketType::ReadRsp => READRSP_LEN,
                _ => RSP_LEN,
            };
            if cut < fixed {
                assert!(parse(&b[..cut]).is_err(), "type {t} cut {cut}");
            }
        }
    }
}

#[test]
fn cma_forms_round_trip_and_reject_bad_descriptors() {
    let mut buf = [0u8; 256];
    let segs = [(0x1000u64, 100u64), (0x9000, 28)];
    // Long-read REQ: the payload is a descriptor summing to total_len.
    let hdr = ReqRepr {
        flags: REQ_TAGGED,
        proto: Proto::LongRead,
        msg_id: 1,
        tx_id: 2,
        tag: 3,
        cq_data: 0,
        total_len: 128,
        offset: 0,
    };
    let at = emit_req(&mut buf, &hdr, None);
    let n = at + emit_cma_desc(&mut buf[at..], 4242, &segs);
    match parse(&buf[..n]).unwrap() {
        Repr::Req {
            hdr: h, payload, ..
        } => {
            assert_eq!(h.proto, Proto::LongRead);
            let d = CmaDesc::parse(payload, 128).unwrap();
            assert_eq!(d.pid, 4242);
            assert_eq!(d.count(), 2);
            assert_eq!(d.segments().collect::<Vec<_>>(), segs.to_vec());
        }
        r => panic!("{r:?}"),
    }
    // Lengths not adding up, truncated, zero or too many segments.
    let mut bad = buf;
    bad[32..40].copy_from_slice(&129u64.to_le_bytes());
    assert_eq!(parse(&bad[..n]), Err(WireError::Malformed));
    assert!(parse(&buf[..n - 1]).is_err());
    let mut bad = buf;
    bad[at + 4..at + 8].copy_from_slice(&0u32.to_le_bytes());
    assert_eq!(parse(&bad[..n]), Err(WireError::Malformed));
    let mut bad = buf;
    bad[at + 4..at + 8].copy_from_slice(&((MAX_CMA_SEGS + 1) as u32).to_le_bytes());
    assert_eq!(parse(&bad[..n]), Err(WireError::Malformed));
    // A segment wrapping the address space.
    let wrap = [(u64::MAX - 4, 128u64)];
    let m = at + emit_cma_desc(&mut buf[at..], 1, &wrap);
    assert_eq!(parse(&buf[..m]), Err(WireError::Malformed));
    // RTW with RTW_CMA, RTR with RTR_CMA.
    let op = OpRef {
        tx_id: 5,
        op_gen: 6,
    };
    let w = RtwRepr {
        flags: RTW_CMA,
        op,
        key: 9,
        addr: 0x5000,
        total_len: 128,
        offset: 0,
        cq_data: 0,
    };
    let at = emit_rtw(&mut buf, &w);
    let n = at + emit_cma_desc(&mut buf[at..], 7, &segs);
    match parse(&buf[..n]).unwrap() {
        Repr::Rtw { hdr, payload } => {
            assert_eq!(hdr, w);
            assert_eq!(CmaDesc::parse(payload, 128).unwrap().count(), 2);
        }
        r => panic!("{r:?}"),
    }
    let mut bad = buf;
    bad[36..44].copy_from_slice(&1u64.to_le_bytes()); // offset 1
    assert_eq!(parse(&bad[..n]), Err(WireError::Malformed));
    let r = RtrRepr {
        flags: RTR_CMA,
        op,
        key: 9,
        addr: 0x5000,
        len: 128,
    };
    let at = emit_rtr(&mut buf, &r);
    let n = at + emit_cma_desc(&mut buf[at..], 7, &segs);
    match parse(&buf[..n]).unwrap() {
        Repr::Rtr { hdr, desc } => {
            assert_eq!(hdr, r);
            assert_eq!(desc.unwrap().pid, 7);
        }
        r => panic!("{r:?}"),
    }
    // RTR_CMA without its descriptor.
    assert!(parse(&buf[..at]).is_err());
    // READRSP_PLACED carries no data; FIN and RSP_NO_CMA round trip.
    let rr = ReadRspRepr {
        flags: READRSP_PLACED,
        op,
        offset: 0,
        status: Status::Ok,
    };
    let n = emit_readrsp(&mut buf, &rr);
    assert_eq!(
        parse(&buf[..n]).unwrap(),
        Repr::ReadRsp {
            hdr: rr,
            payload: &[]
        }
    );
    assert_eq!(parse(&buf[..n + 1]), Err(WireError::Malformed));
    let f = FinRepr {
        msg_id: 1,
        tx_id: 2,
        status: Status::Io,
    };
    let n = emit_fin(&mut buf, &f);
    assert_eq!(parse(&buf[..n]).unwrap(), Repr::Fin(f));
    for cut in 0..n {
        assert!(parse(&buf[..cut]).is_err(), "fin cut {cut}");
    }
    let rs = RspRepr {
        flags: RSP_NO_CMA,
        op,
        status: Status::Ok,
    };
    let n = emit_rsp(&mut buf, &rs, false);
    assert_eq!(parse(&buf[..n]).unwrap(), Repr::WriteRsp(rs));
}

// ---- every packet type: layout, round trip, truncation ----------------------

const OP: OpRef = OpRef {
    tx_id: 0x0102_0304,
    op_gen: 0x00a0_b0c0,
};

/// A descriptor of two segments (0x20 bytes) for pid 0x4242.
fn desc_bytes() -> Vec<u8> {
    let mut b = vec![0u8; cma_desc_len(2)];
    emit_cma_desc(&mut b, 0x4242, &[(0x7000, 0x18), (0x9000, 8)]);
    b
}

/// One packet of every type and form, as emitted by this build.
fn samples(desc: &[u8]) -> Vec<Repr<'_>> {
    let req = ReqRepr {
        flags: REQ_TAGGED | REQ_CQ_DATA | REQ_RECEIPT,
        proto: Proto::Medium,
        msg_id: 0x1111_2222,
        tx_id: 0x3333_4444,
        tag: 0x0102_0304_0506_0708,
        cq_data: 0x1112_1314_1516_1718,
        total_len: 0x100,
        offset: 0x10,
    };
    let d = CmaDesc::parse(desc, 0x20).unwrap();
    vec![
        Repr::Req {
            hdr: ReqRepr {
                flags: req.flags | REQ_HAS_ADDR,
                ..req
            },
            addr: Some(b"addr"),
            payload: b"0123456789",
        },
        Repr::Req {
            hdr: ReqRepr {
                proto: Proto::Eager,
                total_len: 3,
                offset: 0,
                ..req
            },
            addr: None,
            payload: b"abc",
        },
        Repr::Req {
            hdr: ReqRepr {
                proto: Proto::LongCts,
                offset: 0,
                ..req
            },
            addr: None,
            payload: b"",
        },
        Repr::Req {
            hdr: ReqRepr {
                proto: Proto::LongRead,
                total_len: 0x20,
                offset: 0,
                ..req
            },
            addr: None,
            payload: desc,
        },
        Repr::Cts(CtsRepr {
            msg_id: 1,
            tx_id: 0x0203,
            rx_id: 0x04_0506,
            grant_end: 0x0708_090a_0b0c,
        }),
        Repr::Data {
            hdr: DataRepr {
                msg_id: 0xa1a2_a3a4,
                rx_id: 0xb1b2_b3b4,
                offset: 0xc1c2_c3c4_c5c6_c7c8,
            },
            payload: b"xyz",
        },
        Repr::Receipt(ReceiptRepr {
            msg_id: 0x0102_0304,
            tx_id: 0x0506_0708,
        }),
        Repr::Handshake {
            hdr: HandshakeRepr {
                flags: HS_REPLY,
                max_version: 2,
                window: 0x1234,
                features: 0x0f0e_0d0c_0b0a_0908,
            },
            addr: b"hsaddr",
        },
        Repr::Credit(CreditRepr {
            next_msg_id: 0xdead_beef,
        }),
        Repr::Rtw {
            hdr: RtwRepr {
                flags: RTW_CQ_DATA,
                op: OP,
                key: 0x1122_3344_5566_7788,
                addr: 0x2000,
                total_len: 0x300,
                offset: 0x40,
                cq_data: 0x5566,
            },
            payload: b"data",
        },
        Repr::Rtw {
            hdr: RtwRepr {
                flags: RTW_CMA,
                op: OP,
                key: 9,
                addr: 0x5000,
                total_len: 0x20,
                offset: 0,
                cq_data: 0,
            },
            payload: desc,
        },
        Repr::Rtr {
            hdr: RtrRepr {
                flags: 0,
                op: OP,
                key: 0x99,
                addr: 0x3000,
                len: 0x20,
            },
            desc: None,
        },
        Repr::Rtr {
            hdr: RtrRepr {
                flags: RTR_CMA,
                op: OP,
                key: 0x99,
                addr: 0x3000,
                len: 0x20,
            },
            desc: Some(d),
        },
        Repr::Rta {
            hdr: RtaRepr {
                op: OP,
                key: 0x77,
                addr: 0x4000,
                atomic_op: 3,
                datatype: 7,
                kind: 2,
                count: 0x0102,
            },
            payload: &[1, 2, 3, 4, 5, 6, 7, 8],
        },
        Repr::ReadRsp {
            hdr: ReadRspRepr {
                flags: 0,
                op: OP,
                offset: 0x0a0b,
                status: Status::Ok,
            },
            payload: b"read",
        },
        Repr::ReadRsp {
            hdr: ReadRspRepr {
                flags: READRSP_PLACED,
                op: OP,
                offset: 0,
                status: Status::AccessDenied,
            },
            payload: b"",
        },
        Repr::WriteRsp(RspRepr {
            flags: RSP_NO_CMA,
            op: OP,
            status: Status::Unknown(0x0102_0304),
        }),
        Repr::AtomRsp {
            hdr: RspRepr {
                flags: 0,
                op: OP,
                status: Status::Ok,
            },
            payload: &[9; 8],
        },
        Repr::Fin(FinRepr {
            msg_id: 0x0bad_cafe,
            tx_id: 0x12,
            status: Status::Io,
        }),
        Repr::Unknown(99),
    ]
}

/// Bytes the format must keep (hex), written by the emitters before their
/// fields were named: any layout change shows here.
const GOLDEN: &[(&str, &str)] = &[
    (
        "req",
        "02010b000100000022221111444433330807060504030201181716151413121100010000000000001000000000000000",
    ),
    (
        "cts",
        "02020000010000000302000006050400000000000c0b0a0908070000",
    ),
    ("data", "02030000a4a3a2a1b4b3b2b1c8c7c6c5c4c3c2c1"),
    ("receipt", "020400000403020108070605"),
    ("handshake", "020501000206341208090a0b0c0d0e0f687361646472"),
    ("credit", "02060000efbeadde00000000"),
    (
        "rtw",
        "0207010004030201c0b0a00088776655443322110020000000000000000300000000000040000000000000006655000000000000",
    ),
    (
        "rtr_cma",
        "0208010004030201c0b0a00099000000000000000030000000000000200000000000000042420000020000000070000000000000180000000000000000900000000000000800000000000000",
    ),
    (
        "rta",
        "0209000004030201c0b0a000770000000000000000400000000000000307020002010000",
    ),
    (
        "readrsp",
        "020a010004030201c0b0a0000b0a0000000000000700000000000000",
    ),
    ("writersp", "020b010004030201c0b0a0000403020100000000"),
    ("atomrsp", "020c000004030201c0b0a0000900000000000000"),
    ("fin", "020d0000fecaad0b120000000200000000000000"),
];

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn layout_is_unchanged() {
    let mut b = [0u8; 256];
    let mut got = Vec::new();
    let req = ReqRepr {
        flags: REQ_TAGGED | REQ_CQ_DATA | REQ_RECEIPT,
        proto: Proto::Medium,
        msg_id: 0x1111_2222,
        tx_id: 0x3333_4444,
        tag: 0x0102_0304_0506_0708,
        cq_data: 0x1112_1314_1516_1718,
        total_len: 0x100,
        offset: 0x10,
    };
    let n = emit_req(&mut b, &req, None);
    got.push(("req", hex(&b[..n])));
    let with_addr = emit_req(&mut b, &req, Some(b"addr"));
    assert_eq!(&b[..with_addr][..4], [2, 1, 0x0f, 0], "REQ_HAS_ADDR set");
    assert_eq!(&b[REQ_LEN..with_addr], b"addr");
    let mut put = |name, r: Repr<'_>| {
        let n = r.emit(&mut b).unwrap();
        got.push((name, hex(&b[..n])));
    };
    put(
        "cts",
        Repr::Cts(CtsRepr {
            msg_id: 1,
            tx_id: 0x0203,
            rx_id: 0x04_0506,
            grant_end: 0x0708_090a_0b0c,
        }),
    );
    put(
        "data",
        Repr::Data {
            hdr: DataRepr {
                msg_id: 0xa1a2_a3a4,
                rx_id: 0xb1b2_b3b4,
                offset: 0xc1c2_c3c4_c5c6_c7c8,
            },
            payload: b"",
        },
    );
    put(
        "receipt",
        Repr::Receipt(ReceiptRepr {
            msg_id: 0x0102_0304,
            tx_id: 0x0506_0708,
        }),
    );
    put(
        "handshake",
        Repr::Handshake {
            hdr: HandshakeRepr {
                flags: HS_REPLY,
                max_version: 2,
                window: 0x1234,
                features: 0x0f0e_0d0c_0b0a_0908,
            },
            addr: b"hsaddr",
        },
    );
    put(
        "credit",
        Repr::Credit(CreditRepr {
            next_msg_id: 0xdead_beef,
        }),
    );
    put(
        "rtw",
        Repr::Rtw {
            hdr: RtwRepr {
                flags: RTW_CQ_DATA,
                op: OP,
                key: 0x1122_3344_5566_7788,
                addr: 0x2000,
                total_len: 0x300,
                offset: 0x40,
                cq_data: 0x5566,
            },
            payload: b"",
        },
    );
    let desc = desc_bytes();
    put(
        "rtr_cma",
        Repr::Rtr {
            hdr: RtrRepr {
                flags: RTR_CMA,
                op: OP,
                key: 0x99,
                addr: 0x3000,
                len: 0x20,
            },
            desc: Some(CmaDesc::parse(&desc, 0x20).unwrap()),
        },
    );
    put(
        "rta",
        Repr::Rta {
            hdr: RtaRepr {
                op: OP,
                key: 0x77,
                addr: 0x4000,
                atomic_op: 3,
                datatype: 7,
                kind: 2,
                count: 0x0102,
            },
            payload: b"",
        },
    );
    put(
        "readrsp",
        Repr::ReadRsp {
            hdr: ReadRspRepr {
                flags: READRSP_PLACED,
                op: OP,
                offset: 0x0a0b,
                status: Status::AccessDenied,
            },
            payload: b"",
        },
    );
    put(
        "writersp",
        Repr::WriteRsp(RspRepr {
            flags: RSP_NO_CMA,
            op: OP,
            status: Status::Unknown(0x0102_0304),
        }),
    );
    put(
        "atomrsp",
        Repr::AtomRsp {
            hdr: RspRepr {
                flags: 0,
                op: OP,
                status: Status::NotSupported,
            },
            payload: b"",
        },
    );
    put(
        "fin",
        Repr::Fin(FinRepr {
            msg_id: 0x0bad_cafe,
            tx_id: 0x12,
            status: Status::Io,
        }),
    );
    let want: Vec<_> = GOLDEN.iter().map(|&(n, h)| (n, h.to_string())).collect();
    assert_eq!(got, want);
}

#[test]
fn every_repr_round_trips() {
    let desc = desc_bytes();
    let all = samples(&desc);
    let mut seen = std::collections::HashSet::new();
    for r in &all {
        let mut b = vec![0u8; r.buffer_len()];
        let n = r.emit(&mut b).unwrap();
        assert_eq!(n, b.len(), "{r:?}");
        assert!(r.emit(&mut vec![0u8; n - 1]).is_none(), "{r:?}");
        let p = Packet::new_checked(&b[..]).unwrap();
        assert!(p.header_len() <= n);
        seen.insert(u8::from(p.packet_type()));
        assert_eq!(&Repr::parse(&p).unwrap(), r);
    }
    // Every type this build knows, and an unknown one.
    assert_eq!(seen, (1..=13).chain([99]).collect());
}

/// Bytes of `r` that belong to its headers (fixed part, address, CMA
/// descriptor): cutting into them must fail. The rest is payload, whose
/// length no field states: a shorter payload is another valid packet.
fn header_part(r: &Repr<'_>) -> usize {
    let n = r.buffer_len();
    match r {
        Repr::Req { hdr, payload, .. } if hdr.proto != Proto::LongRead => n - payload.len(),
        Repr::Rtw { hdr, payload } if hdr.flags & RTW_CMA == 0 => n - payload.len(),
        Repr::Data { payload, .. }
        | Repr::Rta { payload, .. }
        | Repr::ReadRsp { payload, .. }
        | Repr::AtomRsp { payload, .. } => n - payload.len(),
        _ => n,
    }
}

#[test]
fn every_truncation_is_refused() {
    let desc = desc_bytes();
    for r in samples(&desc) {
        let mut b = vec![0u8; r.buffer_len()];
        let n = r.emit(&mut b).unwrap();
        let head = header_part(&r);
        let fixed = fixed_len(PacketType::from(b[1]));
        for cut in 0..n {
            let short = &b[..cut];
            let checked = Packet::new_checked(short).and_then(|p| Repr::parse(&p));
            // Parsing without the check reads nothing the buffer lacks.
            let unchecked = Repr::parse(&Packet::new_unchecked(short));
            if cut < fixed.max(BASE_LEN) {
                assert_eq!(checked, Err(WireError::Truncated), "{r:?} cut {cut}");
                assert_eq!(unchecked, Err(WireError::Truncated), "{r:?} cut {cut}");
            } else if cut < head {
                assert!(checked.is_err(), "{r:?} cut {cut}");
                assert!(unchecked.is_err(), "{r:?} cut {cut}");
            } else {
                // Cut into the payload: the same header, less data.
                let p = Repr::parse(&Packet::new_checked(short).unwrap()).unwrap();
                let mut e = vec![0u8; p.buffer_len()];
                assert_eq!(p.emit(&mut e), Some(cut));
                assert_eq!(e, short, "{r:?} cut {cut}");
            }
        }
    }
}

#[test]
fn truncated_descriptors_are_errors_not_zeros() {
    let desc = desc_bytes();
    for cut in 0..desc.len() {
        assert!(CmaDesc::parse(&desc[..cut], 0x20).is_err(), "cut {cut}");
    }
    assert_eq!(CmaDesc::parse(&desc[..7], 0x20), Err(WireError::Truncated));
    let d = CmaDesc::parse(&desc, 0x20).unwrap();
    assert_eq!(d.wire_len(), desc.len());
}

#[test]
fn mutated_packets_never_panic_and_reparse_the_same() {
    let desc = desc_bytes();
    let seeds: Vec<Vec<u8>> = samples(&desc)
        .iter()
        .map(|r| {
            let mut b = vec![0u8; r.buffer_len()];
            r.emit(&mut b).unwrap();
            b
        })
        .collect();
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let mut rnd = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut out = vec![0u8; 1024];
    for i in 0..20_000 {
        let mut b = seeds[i % seeds.len()].clone();
        for _ in 0..1 + rnd() % 4 {
            let at = rnd() as usize % b.len();
            match rnd() % 3 {
                0 => b[at] ^= 1 << (rnd() % 8),
                1 => b[at] = rnd() as u8,
                _ => b.truncate(at),
            }
            if b.is_empty() {
                break;
            }
        }
        let Ok(r) = Packet::new_checked(&b[..]).and_then(|p| Repr::parse(&p)) else {
            continue;
        };
        let n = r.emit(&mut out).unwrap();
        let again = Repr::parse(&Packet::new_checked(&out[..n]).unwrap()).unwrap();
        assert_eq!(again, r, "input {b:02x?}");
    }
}

/// The same-host receive fast path's parser takes exactly the plain eager
/// REQs, and reads them as the general parser does.
#[test]
fn plain_eager_parse_agrees_with_the_general_parser() {
    let base = ReqRepr {
        flags: REQ_TAGGED | REQ_CQ_DATA,
        proto: Proto::Eager,
        msg_id: 11,
        tx_id: 0,
        tag: 0x1234,
        cq_data: 77,
        total_len: 8,
        offset: 0,
    };
    let build = |hdr: &ReqRepr, addr: Option<&[u8]>, payload: &[u8]| {
        let mut buf = vec![0u8; 256];
        let at = emit_req(&mut buf, hdr, addr);
        buf[at..at + payload.len()].copy_from_slice(payload);
        buf.truncate(at + payload.len());
        buf
    };
    let ok = build(&base, None, b"8 bytes!");
    let (h, p) = parse_plain_eager(&ok).expect("a plain eager REQ");
    match parse(&ok).unwrap() {
        Repr::Req { hdr, addr, payload } => {
            assert_eq!(addr, None);
            assert_eq!(payload, p);
            assert_eq!(hdr, h);
        }
        r => panic!("{r:?}"),
    }
    assert_eq!(p, b"8 bytes!");
    // Everything else is left to the general path.
    let refused = [
        build(&base, Some(b"addr"), b"8 bytes!"),
        build(
            &ReqRepr {
                flags: REQ_RECEIPT,
                ..base
            },
            None,
            b"8 bytes!",
        ),
        build(
            &ReqRepr {
                proto: Proto::Medium,
                ..base
            },
            None,
            b"8 bytes!",
        ),
        build(&ReqRepr { offset: 8, ..base }, None, b"8 bytes!"),
        build(
            &ReqRepr {
                total_len: 9,
                ..base
            },
            None,
            b"8 bytes!",
        ),
        ok[..REQ_LEN - 1].to_vec(),
    ];
    for (i, b) in refused.iter().enumerate() {
        assert!(parse_plain_eager(b).is_none(), "case {i} taken");
    }
    let mut other_version = ok.clone();
    other_version[0] = VERSION + 1;
    assert!(parse_plain_eager(&other_version).is_none());
    let mut cts = ok.clone();
    cts[1] = u8::from(PacketType::Cts);
    assert!(parse_plain_eager(&cts).is_none());
}
