//! RDM packet families (DESIGN §4), carried as the payload of one SRD
//! datagram each.
//!
//! All multi-byte fields are little-endian. Every packet starts with the
//! same 4-byte base header; the type byte selects a fixed family header,
//! and some families carry a variable tail (address, data, descriptor):
//!
//! ```text
//! base      0 version | 1 type | 2..4 flags
//! REQ       4 proto | 5 addr len | 6..8 zero | 8..12 msg_id | 12..16 tx_id
//!           16..24 tag | 24..32 cq_data | 32..40 total len | 40..48 offset
//!           (48: address if REQ_HAS_ADDR, then data or a CMA descriptor)
//! CTS       4..8 msg_id | 8..12 tx_id | 12..16 rx_id | 16..20 zero | 20..28 grant end
//! DATA      4..8 msg_id | 8..12 rx_id | 12..20 offset                 (data follows)
//! RECEIPT   4..8 msg_id | 8..12 tx_id
//! HANDSHAKE 4 max version | 5 addr len | 6..8 window | 8..16 features (address follows)
//! CREDIT    4..8 next msg_id | 8..12 zero
//! RMA op    4..8 tx_id | 8..12 op_gen        (first fields of RTW..ATOMRSP)
//! RTW       12..20 key | 20..28 addr | 28..36 total len | 36..44 offset
//!           44..52 cq_data                        (data or a CMA descriptor follows)
//! RTR       12..20 key | 20..28 addr | 28..36 len  (a CMA descriptor may follow)
//! RTA       12..20 key | 20..28 addr | 28 op | 29 datatype | 30 kind | 31 zero
//!           32..36 count                                   (operands follow)
//! READRSP   12..20 offset | 20..24 status | 24..28 zero     (data follows)
//! WRITERSP  12..16 status | 16..20 zero
//! ATOMRSP   12..16 status | 16..20 zero                 (fetched values follow)
//! FIN       4..8 msg_id | 8..12 tx_id | 12..16 status | 16..20 zero
//! CMA desc  0..4 pid | 4..8 count | count × (0..8 address | 8..16 length)
//! ```
//!
//! Each range is named once in `mod field` and used by both the parser and
//! the emitter. [`Packet::new_checked`] validates the base header, the
//! family's fixed length and any declared address once; [`Repr::parse`]
//! then reads an owned header and a borrowed payload. A buffer shorter
//! than what it must hold is [`WireError::Truncated`] wherever it is met —
//! never read as zeros. Nothing here allocates.

use std::ops::Range;

pub use super::WireError;

/// Protocol version spoken by this build.
pub const VERSION: u8 = 2;
/// Longest raw address a REQ or HANDSHAKE may carry.
pub const MAX_ADDR_LEN: usize = 255;

/// Byte ranges of every field, by family (offsets from the packet start).
mod field {
    use std::ops::Range;
    pub const VERSION: usize = 0;
    pub const TYPE: usize = 1;
    pub const FLAGS: Range<usize> = 2..4;
    /// End of the base header.
    pub const BASE_END: usize = FLAGS.end;

    pub mod req {
        use std::ops::Range;
        pub const PROTO: usize = 4;
        pub const ADDR_LEN: usize = 5;
        pub const RSVD: Range<usize> = 6..8;
        pub const MSG_ID: Range<usize> = 8..12;
        pub const TX_ID: Range<usize> = 12..16;
        pub const TAG: Range<usize> = 16..24;
        pub const CQ_DATA: Range<usize> = 24..32;
        pub const TOTAL_LEN: Range<usize> = 32..40;
        pub const OFFSET: Range<usize> = 40..48;
        /// The address (REQ_HAS_ADDR), then the payload.
        pub const END: usize = OFFSET.end;
    }
    pub mod cts {
        use std::ops::Range;
        pub const MSG_ID: Range<usize> = 4..8;
        pub const TX_ID: Range<usize> = 8..12;
        pub const RX_ID: Range<usize> = 12..16;
        pub const RSVD: Range<usize> = 16..20;
        pub const GRANT_END: Range<usize> = 20..28;
        pub const END: usize = GRANT_END.end;
    }
    pub mod data {
        use std::ops::Range;
        pub const MSG_ID: Range<usize> = 4..8;
        pub const RX_ID: Range<usize> = 8..12;
        pub const OFFSET: Range<usize> = 12..20;
        pub const END: usize = OFFSET.end;
    }
    pub mod receipt {
        use std::ops::Range;
        pub const MSG_ID: Range<usize> = 4..8;
        pub const TX_ID: Range<usize> = 8..12;
        pub const END: usize = TX_ID.end;
    }
    pub mod handshake {
        use std::ops::Range;
        pub const MAX_VERSION: usize = 4;
        pub const ADDR_LEN: usize = 5;
        pub const WINDOW: Range<usize> = 6..8;
        pub const FEATURES: Range<usize> = 8..16;
        /// The address follows.
        pub const END: usize = FEATURES.end;
    }
    pub mod credit {
        use std::ops::Range;
        pub const NEXT_MSG_ID: Range<usize> = 4..8;
        pub const RSVD: Range<usize> = 8..12;
        pub const END: usize = RSVD.end;
    }
    /// The initiator's operation: the first fields of every RMA packet.
    pub mod op {
        use std::ops::Range;
        pub const TX_ID: Range<usize> = 4..8;
        pub const OP_GEN: Range<usize> = 8..12;
    }
    pub mod rtw {
        use std::ops::Range;
        pub const KEY: Range<usize> = 12..20;
        pub const ADDR: Range<usize> = 20..28;
        pub const TOTAL_LEN: Range<usize> = 28..36;
        pub const OFFSET: Range<usize> = 36..44;
        pub const CQ_DATA: Range<usize> = 44..52;
        pub const END: usize = CQ_DATA.end;
    }
    pub mod rtr {
        use std::ops::Range;
        pub const KEY: Range<usize> = 12..20;
        pub const ADDR: Range<usize> = 20..28;
        pub const LEN: Range<usize> = 28..36;
        pub const END: usize = LEN.end;
    }
    pub mod rta {
        use std::ops::Range;
        pub const KEY: Range<usize> = 12..20;
        pub const ADDR: Range<usize> = 20..28;
        pub const OP: usize = 28;
        pub const DATATYPE: usize = 29;
        pub const KIND: usize = 30;
        pub const RSVD: usize = 31;
        pub const COUNT: Range<usize> = 32..36;
        pub const END: usize = COUNT.end;
    }
    pub mod readrsp {
        use std::ops::Range;
        pub const OFFSET: Range<usize> = 12..20;
        pub const STATUS: Range<usize> = 20..24;
        pub const RSVD: Range<usize> = 24..28;
        pub const END: usize = RSVD.end;
    }
    /// WRITERSP and ATOMRSP.
    pub mod rsp {
        use std::ops::Range;
        pub const STATUS: Range<usize> = 12..16;
        pub const RSVD: Range<usize> = 16..20;
        pub const END: usize = RSVD.end;
    }
    pub mod fin {
        use std::ops::Range;
        pub const MSG_ID: Range<usize> = 4..8;
        pub const TX_ID: Range<usize> = 8..12;
        pub const STATUS: Range<usize> = 12..16;
        pub const RSVD: Range<usize> = 16..20;
        pub const END: usize = RSVD.end;
    }
    /// A CMA descriptor (offsets from its own start).
    pub mod cma {
        use std::ops::Range;
        pub const PID: Range<usize> = 0..4;
        pub const COUNT: Range<usize> = 4..8;
        pub const SEGS: usize = COUNT.end;
        /// Within one segment.
        pub const SEG_ADDR: Range<usize> = 0..8;
        pub const SEG_LEN: Range<usize> = 8..16;
        pub const SEG_END: usize = SEG_LEN.end;
    }
}

/// Base header length.
pub const BASE_LEN: usize = field::BASE_END;
/// REQ fixed header (the address and the payload follow).
pub const REQ_LEN: usize = field::req::END;
pub const CTS_LEN: usize = field::cts::END;
/// DATA header (the payload follows).
pub const DATA_LEN: usize = field::data::END;
pub const RECEIPT_LEN: usize = field::receipt::END;
/// HANDSHAKE fixed header (the address follows).
pub const HANDSHAKE_LEN: usize = field::handshake::END;
pub const CREDIT_LEN: usize = field::credit::END;
/// RTW (emulated write, one per packet); data follows.
pub const RTW_LEN: usize = field::rtw::END;
/// RTR (emulated read).
pub const RTR_LEN: usize = field::rtr::END;
/// RTA (atomic); operands follow (then the compare operands for the
/// compare kind).
pub const RTA_LEN: usize = field::rta::END;
/// READRSP; data follows.
pub const READRSP_LEN: usize = field::readrsp::END;
/// WRITERSP / ATOMRSP; ATOMRSP carries the fetched values after it.
pub const RSP_LEN: usize = field::rsp::END;
/// FIN (long-read done).
pub const FIN_LEN: usize = field::fin::END;

/// RTW flags.
pub const RTW_CQ_DATA: u16 = 1 << 0;
/// The payload is a [`CmaDesc`] of the initiator's source buffer, not data:
/// the target reads it with CMA (offset 0, one packet).
pub const RTW_CMA: u16 = 1 << 1;
/// RTR flag: a [`CmaDesc`] of the initiator's destination buffer follows;
/// the target may write the data there with CMA.
pub const RTR_CMA: u16 = 1 << 0;
/// READRSP flag: every byte of the read was written into the initiator's
/// buffer with CMA (status 0, no payload).
pub const READRSP_PLACED: u16 = 1 << 0;
/// WRITERSP flag: the target could not read the initiator's memory (CMA
/// refused); nothing was written, send the data as RTW packets.
pub const RSP_NO_CMA: u16 = 1 << 0;

/// Most segments a [`CmaDesc`] may list.
pub const MAX_CMA_SEGS: usize = 64;
/// Bytes of a [`CmaDesc`] before its segments: pid u32, count u32.
pub const CMA_DESC_HDR: usize = field::cma::SEGS;
/// Bytes per segment of a [`CmaDesc`]: address u64, length u64.
pub const CMA_SEG_LEN: usize = field::cma::SEG_END;

/// REQ flags.
pub const REQ_TAGGED: u16 = 1 << 0;
pub const REQ_CQ_DATA: u16 = 1 << 1;
/// The sender's raw address follows the fixed header (until the sender has
/// seen our handshake, as EFA does).
pub const REQ_HAS_ADDR: u16 = 1 << 2;
/// FI_DELIVERY_COMPLETE: send a RECEIPT once the data is placed.
pub const REQ_RECEIPT: u16 = 1 << 3;

/// HANDSHAKE flags: this handshake answers one of ours.
pub const HS_REPLY: u16 = 1 << 0;

/// Feature bits exchanged at handshake.
pub const FEATURE_DELIVERY_COMPLETE: u64 = 1 << 0;
pub const FEATURE_LONG_CTS: u64 = 1 << 1;
/// RTW/RTR/RTA and their responses are understood.
pub const FEATURE_RMA: u64 = 1 << 2;
/// Long-read REQs, FIN, and the CMA forms of RTW/RTR are understood
/// (whether CMA works between two processes is found out per transfer).
pub const FEATURE_CMA: u64 = 1 << 3;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PacketType {
    Req,
    Cts,
    Data,
    Receipt,
    Handshake,
    /// Receiver → sender: messages below `next_msg_id` reached matching, so
    /// the sender may start messages up to `next_msg_id + window`.
    Credit,
    /// Emulated RMA write data (initiator → target).
    Rtw,
    /// Emulated RMA read request.
    Rtr,
    /// Atomic request.
    Rta,
    /// Read data (target → initiator), or a read's error status.
    ReadRsp,
    /// A write was placed (or refused): its status.
    WriteRsp,
    /// An atomic was executed (or refused): status and fetched values.
    AtomRsp,
    /// Receiver → sender: a long-read message was read (or failed).
    Fin,
    Unknown(u8),
}

impl From<u8> for PacketType {
    fn from(v: u8) -> Self {
        match v {
            1 => PacketType::Req,
            2 => PacketType::Cts,
            3 => PacketType::Data,
            4 => PacketType::Receipt,
            5 => PacketType::Handshake,
            6 => PacketType::Credit,
            7 => PacketType::Rtw,
            8 => PacketType::Rtr,
            9 => PacketType::Rta,
            10 => PacketType::ReadRsp,
            11 => PacketType::WriteRsp,
            12 => PacketType::AtomRsp,
            13 => PacketType::Fin,
            x => PacketType::Unknown(x),
        }
    }
}

impl From<PacketType> for u8 {
    fn from(t: PacketType) -> u8 {
        match t {
            PacketType::Req => 1,
            PacketType::Cts => 2,
            PacketType::Data => 3,
            PacketType::Receipt => 4,
            PacketType::Handshake => 5,
            PacketType::Credit => 6,
            PacketType::Rtw => 7,
            PacketType::Rtr => 8,
            PacketType::Rta => 9,
            PacketType::ReadRsp => 10,
            PacketType::WriteRsp => 11,
            PacketType::AtomRsp => 12,
            PacketType::Fin => 13,
            PacketType::Unknown(x) => x,
        }
    }
}

/// How a message's bytes travel (chosen by the sender from its size).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Proto {
    /// All data in this one REQ.
    Eager,
    /// Several REQs, each with an offset; no handshake.
    Medium,
    /// REQ without data; the receiver pulls DATA with CTS credits.
    LongCts,
    /// REQ carrying a [`CmaDesc`] of the sender's buffer instead of data;
    /// the receiver reads it with CMA and answers FIN (or falls back to
    /// CTS/DATA, as long-CTS).
    LongRead,
    Unknown(u8),
}

impl From<u8> for Proto {
    fn from(v: u8) -> Self {
        match v {
            0 => Proto::Eager,
            1 => Proto::Medium,
            2 => Proto::LongCts,
            3 => Proto::LongRead,
            x => Proto::Unknown(x),
        }
    }
}

impl From<Proto> for u8 {
    fn from(p: Proto) -> u8 {
        match p {
            Proto::Eager => 0,
            Proto::Medium => 1,
            Proto::LongCts => 2,
            Proto::LongRead => 3,
            Proto::Unknown(x) => x,
        }
    }
}

/// A parsed REQ header; the payload (data bytes) is returned beside it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReqRepr {
    pub flags: u16,
    pub proto: Proto,
    pub msg_id: u32,
    /// Sender's operation id, echoed in CTS and RECEIPT.
    pub tx_id: u32,
    pub tag: u64,
    pub cq_data: u64,
    pub total_len: u64,
    /// Offset of this packet's data in the message (medium).
    pub offset: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CtsRepr {
    pub msg_id: u32,
    pub tx_id: u32,
    pub rx_id: u32,
    /// The sender may send every byte below this offset.
    pub grant_end: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DataRepr {
    pub msg_id: u32,
    pub rx_id: u32,
    pub offset: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReceiptRepr {
    pub msg_id: u32,
    pub tx_id: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HandshakeRepr {
    pub flags: u16,
    pub max_version: u8,
    /// Messages the sender of this handshake lets a peer run ahead of the
    /// next one it delivers (its reorder window).
    pub window: u16,
    pub features: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CreditRepr {
    pub next_msg_id: u32,
}

/// The initiator's operation an RMA packet belongs to: slot and
/// generation (a reused slot is told apart).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct OpRef {
    pub tx_id: u32,
    pub op_gen: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RtwRepr {
    pub flags: u16,
    pub op: OpRef,
    pub key: u64,
    /// Target address of the write's first byte (not of this packet's).
    pub addr: u64,
    pub total_len: u64,
    /// Offset of this packet's data in the write.
    pub offset: u64,
    pub cq_data: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RtrRepr {
    pub flags: u16,
    pub op: OpRef,
    pub key: u64,
    pub addr: u64,
    pub len: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RtaRepr {
    pub op: OpRef,
    pub key: u64,
    pub addr: u64,
    /// Operation code of this protocol (`rdm::AtomicOp::code`,
    /// docs/srd-spec.md).
    pub atomic_op: u8,
    /// Datatype code of this protocol (`rdm::Datatype::code`).
    pub datatype: u8,
    /// 0 write, 1 fetch, 2 compare.
    pub kind: u8,
    pub count: u32,
}

/// The outcome a response (READRSP, WRITERSP, ATOMRSP) or a FIN carries:
/// codes of this protocol (docs/srd-spec.md, "RDM status codes"), not of
/// any API. A code this build does not know is kept as `Unknown`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Status {
    Ok,
    Unreachable,
    Io,
    Truncated,
    Canceled,
    AddrNotAvail,
    TimedOut,
    AccessDenied,
    InvalidArgument,
    NotSupported,
    NoMessage,
    Unknown(u32),
}

impl Status {
    pub fn is_ok(self) -> bool {
        self == Status::Ok
    }
}

impl From<u32> for Status {
    fn from(v: u32) -> Status {
        match v {
            0 => Status::Ok,
            1 => Status::Unreachable,
            2 => Status::Io,
            3 => Status::Truncated,
            4 => Status::Canceled,
            5 => Status::AddrNotAvail,
            6 => Status::TimedOut,
            7 => Status::AccessDenied,
            8 => Status::InvalidArgument,
            9 => Status::NotSupported,
            10 => Status::NoMessage,
            v => Status::Unknown(v),
        }
    }
}

impl From<Status> for u32 {
    fn from(s: Status) -> u32 {
        match s {
            Status::Ok => 0,
            Status::Unreachable => 1,
            Status::Io => 2,
            Status::Truncated => 3,
            Status::Canceled => 4,
            Status::AddrNotAvail => 5,
            Status::TimedOut => 6,
            Status::AccessDenied => 7,
            Status::InvalidArgument => 8,
            Status::NotSupported => 9,
            Status::NoMessage => 10,
            Status::Unknown(v) => v,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadRspRepr {
    pub flags: u16,
    pub op: OpRef,
    pub offset: u64,
    /// Not `Ok`: no data follows.
    pub status: Status,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RspRepr {
    pub flags: u16,
    pub op: OpRef,
    pub status: Status,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FinRepr {
    pub msg_id: u32,
    pub tx_id: u32,
    /// Not `Ok`: the receiver could not read.
    pub status: Status,
}

// ---- field access -------------------------------------------------------

/// The first `N` bytes of `b` — a family's fixed header — checked once:
/// `Truncated` when the buffer ends first. Its fields are then read by
/// their constant ranges, which lie inside `N` by construction (`N` is the
/// end of the family's last range), so no read can fail or come up short.
fn header<const N: usize>(b: &[u8]) -> Result<&[u8; N], WireError> {
    b.first_chunk::<N>().ok_or(WireError::Truncated)
}
fn rd16<const N: usize>(h: &[u8; N], r: Range<usize>) -> u16 {
    let mut a = [0u8; 2];
    a.copy_from_slice(&h[r]);
    u16::from_le_bytes(a)
}
fn rd32<const N: usize>(h: &[u8; N], r: Range<usize>) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&h[r]);
    u32::from_le_bytes(a)
}
fn rd64<const N: usize>(h: &[u8; N], r: Range<usize>) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&h[r]);
    u64::from_le_bytes(a)
}
/// The bytes of `r` (a variable tail: an address).
fn span(b: &[u8], r: Range<usize>) -> Result<&[u8], WireError> {
    b.get(r).ok_or(WireError::Truncated)
}
/// The bytes from `at` to the end.
fn tail(b: &[u8], at: usize) -> Result<&[u8], WireError> {
    b.get(at..).ok_or(WireError::Truncated)
}

// Emitters write into buffers their callers sized (`*_LEN` plus the tail);
// a shorter one is a caller bug and panics.
fn put16(out: &mut [u8], r: Range<usize>, v: u16) {
    out[r].copy_from_slice(&v.to_le_bytes());
}
fn put32(out: &mut [u8], r: Range<usize>, v: u32) {
    out[r].copy_from_slice(&v.to_le_bytes());
}
fn put64(out: &mut [u8], r: Range<usize>, v: u64) {
    out[r].copy_from_slice(&v.to_le_bytes());
}

/// Fixed header length of a family (the base header for unknown types).
fn fixed_len(t: PacketType) -> usize {
    match t {
        PacketType::Req => REQ_LEN,
        PacketType::Cts => CTS_LEN,
        PacketType::Data => DATA_LEN,
        PacketType::Receipt => RECEIPT_LEN,
        PacketType::Handshake => HANDSHAKE_LEN,
        PacketType::Credit => CREDIT_LEN,
        PacketType::Rtw => RTW_LEN,
        PacketType::Rtr => RTR_LEN,
        PacketType::Rta => RTA_LEN,
        PacketType::ReadRsp => READRSP_LEN,
        PacketType::WriteRsp | PacketType::AtomRsp => RSP_LEN,
        PacketType::Fin => FIN_LEN,
        PacketType::Unknown(_) => BASE_LEN,
    }
}

/// A checked view of an RDM packet.
#[derive(Debug)]
pub struct Packet<T: AsRef<[u8]>> {
    buf: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps without checking; the accessors may panic on a buffer that
    /// `new_checked` would refuse (`Repr::parse` never does).
    pub fn new_unchecked(buf: T) -> Self {
        Packet { buf }
    }

    /// Validates the version, and that the fixed header of the family and
    /// any declared address fit in the buffer. Unknown types pass (the
    /// caller counts them).
    pub fn new_checked(buf: T) -> Result<Self, WireError> {
        let p = Packet { buf };
        p.check_len()?;
        Ok(p)
    }

    /// What `new_checked` checks: the base header first (so another
    /// version gets a clear error), then the family's fixed header and the
    /// address it declares.
    pub fn check_len(&self) -> Result<(), WireError> {
        let b = self.buf.as_ref();
        if b.len() < BASE_LEN {
            return Err(WireError::Truncated);
        }
        let v = b[field::VERSION];
        if v != VERSION {
            return Err(WireError::BadVersion(v));
        }
        let fixed = fixed_len(self.packet_type());
        if b.len() < fixed || self.addr_len() > b.len() - fixed {
            return Err(WireError::Truncated);
        }
        Ok(())
    }

    pub fn version(&self) -> u8 {
        self.buf.as_ref()[field::VERSION]
    }
    pub fn packet_type(&self) -> PacketType {
        PacketType::from(self.buf.as_ref()[field::TYPE])
    }
    pub fn flags(&self) -> u16 {
        let f = &self.buf.as_ref()[field::FLAGS];
        u16::from_le_bytes([f[0], f[1]])
    }
    /// Length of the carried address (REQ with REQ_HAS_ADDR, HANDSHAKE).
    pub fn addr_len(&self) -> usize {
        let b = self.buf.as_ref();
        match self.packet_type() {
            PacketType::Req if self.flags() & REQ_HAS_ADDR != 0 => {
                usize::from(b[field::req::ADDR_LEN])
            }
            PacketType::Handshake => usize::from(b[field::handshake::ADDR_LEN]),
            _ => 0,
        }
    }
    /// The fixed header and the address: where the payload starts.
    pub fn header_len(&self) -> usize {
        fixed_len(self.packet_type()) + self.addr_len()
    }
}

// ---- family headers: each read and written through its `field` ranges ----

fn op_ref<const N: usize>(h: &[u8; N]) -> OpRef {
    OpRef {
        tx_id: rd32(h, field::op::TX_ID),
        op_gen: rd32(h, field::op::OP_GEN),
    }
}

fn emit_op(out: &mut [u8], op: OpRef) {
    put32(out, field::op::TX_ID, op.tx_id);
    put32(out, field::op::OP_GEN, op.op_gen);
}

fn emit_base(out: &mut [u8], t: PacketType, flags: u16) {
    out[field::VERSION] = VERSION;
    out[field::TYPE] = t.into();
    put16(out, field::FLAGS, flags);
}

impl ReqRepr {
    fn parse(b: &[u8]) -> Result<Self, WireError> {
        let h = header::<REQ_LEN>(b)?;
        use field::req as f;
        Ok(ReqRepr {
            flags: rd16(h, field::FLAGS),
            proto: Proto::from(h[f::PROTO]),
            msg_id: rd32(h, f::MSG_ID),
            tx_id: rd32(h, f::TX_ID),
            tag: rd64(h, f::TAG),
            cq_data: rd64(h, f::CQ_DATA),
            total_len: rd64(h, f::TOTAL_LEN),
            offset: rd64(h, f::OFFSET),
        })
    }
}

/// A REQ as the same-host fast path writes it: an eager message whole in
/// one packet (offset 0, length = the payload's), without an address or a
/// receipt request, in this version. `None` for anything else, which the
/// general parser (`Repr::parse`) then takes; what this accepts, that
/// parser reads the same.
pub fn parse_plain_eager(b: &[u8]) -> Option<(ReqRepr, &[u8])> {
    use field::req as f;
    let h = header::<REQ_LEN>(b).ok()?;
    let flags = rd16(h, field::FLAGS);
    if h[field::VERSION] != VERSION
        || h[field::TYPE] != u8::from(PacketType::Req)
        || flags & !(REQ_TAGGED | REQ_CQ_DATA) != 0
        || h[f::PROTO] != u8::from(Proto::Eager)
    {
        return None;
    }
    let payload = &b[REQ_LEN..];
    let (total_len, offset) = (rd64(h, f::TOTAL_LEN), rd64(h, f::OFFSET));
    if offset != 0 || total_len != payload.len() as u64 {
        return None;
    }
    let hdr = ReqRepr {
        flags,
        proto: Proto::Eager,
        msg_id: rd32(h, f::MSG_ID),
        tx_id: rd32(h, f::TX_ID),
        tag: rd64(h, f::TAG),
        cq_data: rd64(h, f::CQ_DATA),
        total_len,
        offset,
    };
    Some((hdr, payload))
}

/// Writes a REQ header (and the address when `addr` is given) and returns
/// the offset where the payload goes. `out` must hold `REQ_LEN + addr.len()`.
pub fn emit_req(out: &mut [u8], hdr: &ReqRepr, addr: Option<&[u8]>) -> usize {
    use field::req as f;
    let mut flags = hdr.flags & !REQ_HAS_ADDR;
    let alen = addr.map_or(0, |a| a.len().min(MAX_ADDR_LEN));
    if addr.is_some() {
        flags |= REQ_HAS_ADDR;
    }
    emit_base(out, PacketType::Req, flags);
    out[f::PROTO] = hdr.proto.into();
    out[f::ADDR_LEN] = alen as u8;
    put16(out, f::RSVD, 0);
    put32(out, f::MSG_ID, hdr.msg_id);
    put32(out, f::TX_ID, hdr.tx_id);
    put64(out, f::TAG, hdr.tag);
    put64(out, f::CQ_DATA, hdr.cq_data);
    put64(out, f::TOTAL_LEN, hdr.total_len);
    put64(out, f::OFFSET, hdr.offset);
    if let Some(a) = addr {
        out[f::END..f::END + alen].copy_from_slice(&a[..alen]);
    }
    f::END + alen
}

impl CtsRepr {
    fn parse(b: &[u8]) -> Result<Self, WireError> {
        let h = header::<CTS_LEN>(b)?;
        use field::cts as f;
        Ok(CtsRepr {
            msg_id: rd32(h, f::MSG_ID),
            tx_id: rd32(h, f::TX_ID),
            rx_id: rd32(h, f::RX_ID),
            grant_end: rd64(h, f::GRANT_END),
        })
    }
}

pub fn emit_cts(out: &mut [u8], c: &CtsRepr) -> usize {
    use field::cts as f;
    emit_base(out, PacketType::Cts, 0);
    put32(out, f::MSG_ID, c.msg_id);
    put32(out, f::TX_ID, c.tx_id);
    put32(out, f::RX_ID, c.rx_id);
    put32(out, f::RSVD, 0);
    put64(out, f::GRANT_END, c.grant_end);
    f::END
}

impl DataRepr {
    fn parse(b: &[u8]) -> Result<Self, WireError> {
        let h = header::<DATA_LEN>(b)?;
        use field::data as f;
        Ok(DataRepr {
            msg_id: rd32(h, f::MSG_ID),
            rx_id: rd32(h, f::RX_ID),
            offset: rd64(h, f::OFFSET),
        })
    }
}

/// Writes a DATA header; the payload goes at the returned offset.
pub fn emit_data(out: &mut [u8], d: &DataRepr) -> usize {
    use field::data as f;
    emit_base(out, PacketType::Data, 0);
    put32(out, f::MSG_ID, d.msg_id);
    put32(out, f::RX_ID, d.rx_id);
    put64(out, f::OFFSET, d.offset);
    f::END
}

impl ReceiptRepr {
    fn parse(b: &[u8]) -> Result<Self, WireError> {
        let h = header::<RECEIPT_LEN>(b)?;
        use field::receipt as f;
        Ok(ReceiptRepr {
            msg_id: rd32(h, f::MSG_ID),
            tx_id: rd32(h, f::TX_ID),
        })
    }
}

pub fn emit_receipt(out: &mut [u8], r: &ReceiptRepr) -> usize {
    use field::receipt as f;
    emit_base(out, PacketType::Receipt, 0);
    put32(out, f::MSG_ID, r.msg_id);
    put32(out, f::TX_ID, r.tx_id);
    f::END
}

impl HandshakeRepr {
    fn parse(b: &[u8]) -> Result<Self, WireError> {
        let h = header::<HANDSHAKE_LEN>(b)?;
        use field::handshake as f;
        Ok(HandshakeRepr {
            flags: rd16(h, field::FLAGS),
            max_version: h[f::MAX_VERSION],
            window: rd16(h, f::WINDOW),
            features: rd64(h, f::FEATURES),
        })
    }
}

/// Writes a HANDSHAKE with our address (up to MAX_ADDR_LEN bytes of it).
pub fn emit_handshake(out: &mut [u8], h: &HandshakeRepr, addr: &[u8]) -> usize {
    use field::handshake as f;
    let alen = addr.len().min(MAX_ADDR_LEN);
    emit_base(out, PacketType::Handshake, h.flags);
    out[f::MAX_VERSION] = h.max_version;
    out[f::ADDR_LEN] = alen as u8;
    put16(out, f::WINDOW, h.window);
    put64(out, f::FEATURES, h.features);
    out[f::END..f::END + alen].copy_from_slice(&addr[..alen]);
    f::END + alen
}

impl CreditRepr {
    fn parse(b: &[u8]) -> Result<Self, WireError> {
        let h = header::<CREDIT_LEN>(b)?;
        Ok(CreditRepr {
            next_msg_id: rd32(h, field::credit::NEXT_MSG_ID),
        })
    }
}

pub fn emit_credit(out: &mut [u8], c: &CreditRepr) -> usize {
    use field::credit as f;
    emit_base(out, PacketType::Credit, 0);
    put32(out, f::NEXT_MSG_ID, c.next_msg_id);
    put32(out, f::RSVD, 0);
    f::END
}

impl RtwRepr {
    fn parse(b: &[u8]) -> Result<Self, WireError> {
        let h = header::<RTW_LEN>(b)?;
        use field::rtw as f;
        Ok(RtwRepr {
            flags: rd16(h, field::FLAGS),
            op: op_ref(h),
            key: rd64(h, f::KEY),
            addr: rd64(h, f::ADDR),
            total_len: rd64(h, f::TOTAL_LEN),
            offset: rd64(h, f::OFFSET),
            cq_data: rd64(h, f::CQ_DATA),
        })
    }
}

/// Writes an RTW header; the data goes at the returned offset.
pub fn emit_rtw(out: &mut [u8], h: &RtwRepr) -> usize {
    use field::rtw as f;
    emit_base(out, PacketType::Rtw, h.flags);
    emit_op(out, h.op);
    put64(out, f::KEY, h.key);
    put64(out, f::ADDR, h.addr);
    put64(out, f::TOTAL_LEN, h.total_len);
    put64(out, f::OFFSET, h.offset);
    put64(out, f::CQ_DATA, h.cq_data);
    f::END
}

impl RtrRepr {
    fn parse(b: &[u8]) -> Result<Self, WireError> {
        let h = header::<RTR_LEN>(b)?;
        use field::rtr as f;
        Ok(RtrRepr {
            flags: rd16(h, field::FLAGS),
            op: op_ref(h),
            key: rd64(h, f::KEY),
            addr: rd64(h, f::ADDR),
            len: rd64(h, f::LEN),
        })
    }
}

/// Writes an RTR header; with RTR_CMA the descriptor goes at the returned
/// offset.
pub fn emit_rtr(out: &mut [u8], h: &RtrRepr) -> usize {
    use field::rtr as f;
    emit_base(out, PacketType::Rtr, h.flags);
    emit_op(out, h.op);
    put64(out, f::KEY, h.key);
    put64(out, f::ADDR, h.addr);
    put64(out, f::LEN, h.len);
    f::END
}

impl RtaRepr {
    fn parse(b: &[u8]) -> Result<Self, WireError> {
        let h = header::<RTA_LEN>(b)?;
        use field::rta as f;
        Ok(RtaRepr {
            op: op_ref(h),
            key: rd64(h, f::KEY),
            addr: rd64(h, f::ADDR),
            atomic_op: h[f::OP],
            datatype: h[f::DATATYPE],
            kind: h[f::KIND],
            count: rd32(h, f::COUNT),
        })
    }
}

/// Writes an RTA header; the operands go at the returned offset.
pub fn emit_rta(out: &mut [u8], h: &RtaRepr) -> usize {
    use field::rta as f;
    emit_base(out, PacketType::Rta, 0);
    emit_op(out, h.op);
    put64(out, f::KEY, h.key);
    put64(out, f::ADDR, h.addr);
    out[f::OP] = h.atomic_op;
    out[f::DATATYPE] = h.datatype;
    out[f::KIND] = h.kind;
    out[f::RSVD] = 0;
    put32(out, f::COUNT, h.count);
    f::END
}

impl ReadRspRepr {
    fn parse(b: &[u8]) -> Result<Self, WireError> {
        let h = header::<READRSP_LEN>(b)?;
        use field::readrsp as f;
        Ok(ReadRspRepr {
            flags: rd16(h, field::FLAGS),
            op: op_ref(h),
            offset: rd64(h, f::OFFSET),
            status: rd32(h, f::STATUS).into(),
        })
    }
}

/// Writes a READRSP header; the data goes at the returned offset.
pub fn emit_readrsp(out: &mut [u8], h: &ReadRspRepr) -> usize {
    use field::readrsp as f;
    emit_base(out, PacketType::ReadRsp, h.flags);
    emit_op(out, h.op);
    put64(out, f::OFFSET, h.offset);
    put32(out, f::STATUS, h.status.into());
    put32(out, f::RSVD, 0);
    f::END
}

impl RspRepr {
    fn parse(b: &[u8]) -> Result<Self, WireError> {
        let h = header::<RSP_LEN>(b)?;
        Ok(RspRepr {
            flags: rd16(h, field::FLAGS),
            op: op_ref(h),
            status: rd32(h, field::rsp::STATUS).into(),
        })
    }
}

/// Writes a WRITERSP (`atomic == false`) or ATOMRSP header; ATOMRSP's
/// fetched values go at the returned offset.
pub fn emit_rsp(out: &mut [u8], h: &RspRepr, atomic: bool) -> usize {
    use field::rsp as f;
    let t = if atomic {
        PacketType::AtomRsp
    } else {
        PacketType::WriteRsp
    };
    emit_base(out, t, h.flags);
    emit_op(out, h.op);
    put32(out, f::STATUS, h.status.into());
    put32(out, f::RSVD, 0);
    f::END
}

impl FinRepr {
    fn parse(b: &[u8]) -> Result<Self, WireError> {
        let h = header::<FIN_LEN>(b)?;
        use field::fin as f;
        Ok(FinRepr {
            msg_id: rd32(h, f::MSG_ID),
            tx_id: rd32(h, f::TX_ID),
            status: rd32(h, f::STATUS).into(),
        })
    }
}

pub fn emit_fin(out: &mut [u8], f: &FinRepr) -> usize {
    use field::fin as fl;
    emit_base(out, PacketType::Fin, 0);
    put32(out, fl::MSG_ID, f.msg_id);
    put32(out, fl::TX_ID, f.tx_id);
    put32(out, fl::STATUS, f.status.into());
    put32(out, fl::RSVD, 0);
    fl::END
}

/// A checked description of memory in a process of this host, read or
/// written with CMA (process_vm_readv/writev): the process (`pid`, 0: not
/// stated) and 1..=MAX_CMA_SEGS (address, length) segments.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CmaDesc<'a> {
    pub pid: u32,
    segs: &'a [u8],
}

impl<'a> CmaDesc<'a> {
    /// Checks the layout and that the lengths add up to `total` without
    /// overflow (and every segment's end fits the address space).
    pub fn parse(b: &'a [u8], total: u64) -> Result<CmaDesc<'a>, WireError> {
        use field::cma as f;
        let h = header::<CMA_DESC_HDR>(b)?;
        let pid = rd32(h, f::PID);
        let n = rd32(h, f::COUNT) as usize;
        if n == 0 || n > MAX_CMA_SEGS || b.len() != cma_desc_len(n) {
            return Err(WireError::Malformed);
        }
        let d = CmaDesc {
            pid,
            segs: tail(b, f::SEGS)?,
        };
        let mut sum = 0u64;
        for (a, l) in d.segments() {
            a.checked_add(l).ok_or(WireError::Malformed)?;
            sum = sum.checked_add(l).ok_or(WireError::Malformed)?;
        }
        if sum != total {
            return Err(WireError::Malformed);
        }
        Ok(d)
    }

    pub fn count(&self) -> usize {
        self.segs.len() / CMA_SEG_LEN
    }

    /// Bytes of the descriptor on the wire.
    pub fn wire_len(&self) -> usize {
        CMA_DESC_HDR + self.segs.len()
    }

    /// (address, length) of each segment, in order.
    pub fn segments(&self) -> impl Iterator<Item = (u64, u64)> + 'a {
        use field::cma as f;
        let (segs, _) = self.segs.as_chunks::<CMA_SEG_LEN>();
        segs.iter()
            .map(|s| (rd64(s, f::SEG_ADDR), rd64(s, f::SEG_LEN)))
    }

    /// Writes it again (as `emit_cma_desc` did); `out` must hold `wire_len`.
    fn emit(&self, out: &mut [u8]) -> usize {
        use field::cma as f;
        put32(out, f::PID, self.pid);
        put32(out, f::COUNT, self.count() as u32);
        out[f::SEGS..f::SEGS + self.segs.len()].copy_from_slice(self.segs);
        self.wire_len()
    }
}

/// Bytes of a descriptor with `n` segments.
pub fn cma_desc_len(n: usize) -> usize {
    CMA_DESC_HDR + n * CMA_SEG_LEN
}

/// Writes a descriptor; `out` must hold `cma_desc_len(segs.len())` bytes.
pub fn emit_cma_desc(out: &mut [u8], pid: u32, segs: &[(u64, u64)]) -> usize {
    use field::cma as f;
    put32(out, f::PID, pid);
    put32(out, f::COUNT, segs.len() as u32);
    for (i, &(a, l)) in segs.iter().enumerate() {
        let at = cma_desc_len(i);
        put64(out, at + f::SEG_ADDR.start..at + f::SEG_ADDR.end, a);
        put64(out, at + f::SEG_LEN.start..at + f::SEG_LEN.end, l);
    }
    cma_desc_len(segs.len())
}

/// One parsed packet: the header, the sender address it carries (if any)
/// and its data.
#[derive(Debug, PartialEq, Eq)]
pub enum Repr<'a> {
    Req {
        hdr: ReqRepr,
        addr: Option<&'a [u8]>,
        payload: &'a [u8],
    },
    Cts(CtsRepr),
    Data {
        hdr: DataRepr,
        payload: &'a [u8],
    },
    Receipt(ReceiptRepr),
    Handshake {
        hdr: HandshakeRepr,
        addr: &'a [u8],
    },
    Credit(CreditRepr),
    Rtw {
        hdr: RtwRepr,
        payload: &'a [u8],
    },
    Rtr {
        hdr: RtrRepr,
        /// With RTR_CMA: the initiator's destination buffer.
        desc: Option<CmaDesc<'a>>,
    },
    Rta {
        hdr: RtaRepr,
        /// Operands, then compare operands (compare kind).
        payload: &'a [u8],
    },
    ReadRsp {
        hdr: ReadRspRepr,
        payload: &'a [u8],
    },
    WriteRsp(RspRepr),
    AtomRsp {
        hdr: RspRepr,
        /// Fetched values (fetch and compare kinds).
        payload: &'a [u8],
    },
    Fin(FinRepr),
    Unknown(u8),
}

/// `Malformed` unless `offset + len` stays within `total`.
fn check_range(offset: u64, len: usize, total: u64) -> Result<(), WireError> {
    match offset.checked_add(len as u64) {
        Some(e) if e <= total => Ok(()),
        _ => Err(WireError::Malformed),
    }
}

impl<'a> Repr<'a> {
    /// Reads a packet. Each header (base, family, address, descriptor)
    /// is checked against the buffer before its fields are read, so a view
    /// built unchecked gets `Truncated` where `new_checked` would have
    /// refused it — never a panic, never a field read as zero.
    pub fn parse(p: &Packet<&'a [u8]>) -> Result<Repr<'a>, WireError> {
        let b: &'a [u8] = p.buf;
        let base = header::<BASE_LEN>(b)?;
        Ok(match PacketType::from(base[field::TYPE]) {
            PacketType::Req => {
                let hdr = ReqRepr::parse(b)?;
                let (addr, at) = if hdr.flags & REQ_HAS_ADDR != 0 {
                    let end = REQ_LEN + usize::from(header::<REQ_LEN>(b)?[field::req::ADDR_LEN]);
                    (Some(span(b, REQ_LEN..end)?), end)
                } else {
                    (None, REQ_LEN)
                };
                let payload = tail(b, at)?;
                if hdr.proto == Proto::LongRead {
                    // The payload describes the data; it is not data.
                    if hdr.offset != 0 {
                        return Err(WireError::Malformed);
                    }
                    CmaDesc::parse(payload, hdr.total_len)?;
                } else {
                    check_range(hdr.offset, payload.len(), hdr.total_len)?;
                }
                Repr::Req { hdr, addr, payload }
            }
            PacketType::Cts => Repr::Cts(CtsRepr::parse(b)?),
            PacketType::Data => Repr::Data {
                hdr: DataRepr::parse(b)?,
                payload: tail(b, DATA_LEN)?,
            },
            PacketType::Receipt => Repr::Receipt(ReceiptRepr::parse(b)?),
            PacketType::Handshake => {
                let hdr = HandshakeRepr::parse(b)?;
                let end = HANDSHAKE_LEN
                    + usize::from(header::<HANDSHAKE_LEN>(b)?[field::handshake::ADDR_LEN]);
                Repr::Handshake {
                    hdr,
                    addr: span(b, HANDSHAKE_LEN..end)?,
                }
            }
            PacketType::Credit => Repr::Credit(CreditRepr::parse(b)?),
            PacketType::Rtw => {
                let hdr = RtwRepr::parse(b)?;
                let payload = tail(b, RTW_LEN)?;
                if hdr.addr.checked_add(hdr.total_len).is_none() {
                    return Err(WireError::Malformed);
                }
                if hdr.flags & RTW_CMA != 0 {
                    if hdr.offset != 0 {
                        return Err(WireError::Malformed);
                    }
                    CmaDesc::parse(payload, hdr.total_len)?;
                } else {
                    check_range(hdr.offset, payload.len(), hdr.total_len)?;
                }
                Repr::Rtw { hdr, payload }
            }
            PacketType::Rtr => {
                let hdr = RtrRepr::parse(b)?;
                if hdr.addr.checked_add(hdr.len).is_none() {
                    return Err(WireError::Malformed);
                }
                let desc = if hdr.flags & RTR_CMA != 0 {
                    Some(CmaDesc::parse(tail(b, RTR_LEN)?, hdr.len)?)
                } else {
                    None
                };
                Repr::Rtr { hdr, desc }
            }
            PacketType::Rta => Repr::Rta {
                hdr: RtaRepr::parse(b)?,
                payload: tail(b, RTA_LEN)?,
            },
            PacketType::ReadRsp => {
                let hdr = ReadRspRepr::parse(b)?;
                let payload = tail(b, READRSP_LEN)?;
                let placed = hdr.flags & READRSP_PLACED != 0;
                if (!hdr.status.is_ok() || placed) && !payload.is_empty() {
                    return Err(WireError::Malformed);
                }
                Repr::ReadRsp { hdr, payload }
            }
            PacketType::WriteRsp => {
                let hdr = RspRepr::parse(b)?;
                if b.len() != RSP_LEN {
                    return Err(WireError::Malformed);
                }
                Repr::WriteRsp(hdr)
            }
            PacketType::AtomRsp => Repr::AtomRsp {
                hdr: RspRepr::parse(b)?,
                payload: tail(b, RSP_LEN)?,
            },
            PacketType::Fin => Repr::Fin(FinRepr::parse(b)?),
            PacketType::Unknown(t) => Repr::Unknown(t),
        })
    }

    /// Bytes `emit` writes.
    pub fn buffer_len(&self) -> usize {
        let addr = |a: &[u8]| a.len().min(MAX_ADDR_LEN);
        match self {
            Repr::Req {
                addr: a, payload, ..
            } => REQ_LEN + a.map_or(0, addr) + payload.len(),
            Repr::Cts(_) => CTS_LEN,
            Repr::Data { payload, .. } => DATA_LEN + payload.len(),
            Repr::Receipt(_) => RECEIPT_LEN,
            Repr::Handshake { addr: a, .. } => HANDSHAKE_LEN + addr(a),
            Repr::Credit(_) => CREDIT_LEN,
            Repr::Rtw { payload, .. } => RTW_LEN + payload.len(),
            Repr::Rtr { desc, .. } => RTR_LEN + desc.map_or(0, |d| d.wire_len()),
            Repr::Rta { payload, .. } => RTA_LEN + payload.len(),
            Repr::ReadRsp { payload, .. } => READRSP_LEN + payload.len(),
            Repr::WriteRsp(_) => RSP_LEN,
            Repr::AtomRsp { payload, .. } => RSP_LEN + payload.len(),
            Repr::Fin(_) => FIN_LEN,
            Repr::Unknown(_) => BASE_LEN,
        }
    }

    /// Writes the whole packet (header, address, payload) and returns its
    /// length; `None` when `out` is shorter than `buffer_len`. The hot
    /// paths use the `emit_*` functions instead, which write a header and
    /// leave the payload to be copied in place.
    pub fn emit(&self, out: &mut [u8]) -> Option<usize> {
        let out = out.get_mut(..self.buffer_len())?;
        let with = |out: &mut [u8], at: usize, payload: &[u8]| {
            out[at..at + payload.len()].copy_from_slice(payload);
            at + payload.len()
        };
        Some(match self {
            Repr::Req { hdr, addr, payload } => {
                let at = emit_req(out, hdr, *addr);
                with(out, at, payload)
            }
            Repr::Cts(c) => emit_cts(out, c),
            Repr::Data { hdr, payload } => {
                let at = emit_data(out, hdr);
                with(out, at, payload)
            }
            Repr::Receipt(r) => emit_receipt(out, r),
            Repr::Handshake { hdr, addr } => emit_handshake(out, hdr, addr),
            Repr::Credit(c) => emit_credit(out, c),
            Repr::Rtw { hdr, payload } => {
                let at = emit_rtw(out, hdr);
                with(out, at, payload)
            }
            Repr::Rtr { hdr, desc } => {
                let at = emit_rtr(out, hdr);
                at + desc.map_or(0, |d| d.emit(&mut out[at..]))
            }
            Repr::Rta { hdr, payload } => {
                let at = emit_rta(out, hdr);
                with(out, at, payload)
            }
            Repr::ReadRsp { hdr, payload } => {
                let at = emit_readrsp(out, hdr);
                with(out, at, payload)
            }
            Repr::WriteRsp(r) => emit_rsp(out, r, false),
            Repr::AtomRsp { hdr, payload } => {
                let at = emit_rsp(out, hdr, true);
                with(out, at, payload)
            }
            Repr::Fin(f) => emit_fin(out, f),
            Repr::Unknown(t) => {
                emit_base(out, PacketType::Unknown(*t), 0);
                BASE_LEN
            }
        })
    }
}

#[cfg(test)]
mod tests;
