//! RDM packet families (DESIGN §4), carried as the payload of one SRD
//! datagram each.
//!
//! Every packet starts with the same 4-byte base header:
//!
//! ```text
//! 0  version u8     (VERSION; other versions are dropped, or refused at handshake)
//! 1  type    u8     (PacketType)
//! 2  flags   u16    (family specific, little endian like every field)
//! ```
//!
//! followed by a fixed family header and, for REQ/DATA/HANDSHAKE, a variable
//! tail. [`Packet::new_checked`] validates the base header and the fixed
//! family length once; [`Repr::parse`] then reads an owned header and a
//! borrowed payload. Nothing here allocates.

/// Why a packet was rejected. (Kept local to this module so the `wire`
/// module root, owned by the SRD work, needs only `pub mod rdm;`.)
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WireError {
    /// Shorter than its headers say.
    Truncated,
    /// Another protocol version.
    Version(u8),
    /// Field values that contradict each other.
    Malformed,
}

/// Protocol version spoken by this build.
pub const VERSION: u8 = 2;
/// Base header length.
pub const BASE_LEN: usize = 4;
/// Longest raw address a REQ or HANDSHAKE may carry.
pub const MAX_ADDR_LEN: usize = 255;

/// REQ fixed header (after the base header): proto u8, addr_len u8,
/// reserved u16, msg_id u32, tx_id u32, tag u64, cq_data u64, total_len u64,
/// offset u64.
pub const REQ_LEN: usize = BASE_LEN + 44;
/// CTS: msg_id u32, tx_id u32, rx_id u32, reserved u32, grant_end u64.
pub const CTS_LEN: usize = BASE_LEN + 24;
/// DATA: msg_id u32, rx_id u32, offset u64.
pub const DATA_LEN: usize = BASE_LEN + 16;
/// RECEIPT: msg_id u32, tx_id u32.
pub const RECEIPT_LEN: usize = BASE_LEN + 8;
/// HANDSHAKE: max_version u8, addr_len u8, window u16, features u64.
pub const HANDSHAKE_LEN: usize = BASE_LEN + 12;
/// CREDIT: next_msg_id u32, reserved u32.
pub const CREDIT_LEN: usize = BASE_LEN + 8;
/// RTW (emulated write, one per packet): tx_id u32, op_gen u32, key u64,
/// addr u64, total_len u64, offset u64, cq_data u64; data follows.
pub const RTW_LEN: usize = BASE_LEN + 48;
/// RTR (emulated read): tx_id u32, op_gen u32, key u64, addr u64, len u64.
pub const RTR_LEN: usize = BASE_LEN + 32;
/// RTA (atomic): tx_id u32, op_gen u32, key u64, addr u64, op u8,
/// datatype u8, kind u8, reserved u8, count u32; operands follow (then the
/// compare operands for the compare kind).
pub const RTA_LEN: usize = BASE_LEN + 32;
/// READRSP: tx_id u32, op_gen u32, offset u64, status u32, reserved u32;
/// data follows.
pub const READRSP_LEN: usize = BASE_LEN + 24;
/// WRITERSP / ATOMRSP: tx_id u32, op_gen u32, status u32, reserved u32;
/// ATOMRSP carries the fetched values after it.
pub const RSP_LEN: usize = BASE_LEN + 16;

/// FIN (long-read done): msg_id u32, tx_id u32, status u32, reserved u32.
pub const FIN_LEN: usize = BASE_LEN + 16;

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
pub const CMA_DESC_HDR: usize = 8;
/// Bytes per segment of a [`CmaDesc`]: address u64, length u64.
pub const CMA_SEG_LEN: usize = 16;

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

/// A checked view of an RDM packet.
#[derive(Debug)]
pub struct Packet<T: AsRef<[u8]>> {
    buf: T,
}

fn rd16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}
fn rd32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap_or([0; 4]))
}
fn rd64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap_or([0; 8]))
}
fn wr16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_le_bytes());
}
fn wr32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}
fn wr64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

impl<T: AsRef<[u8]>> Packet<T> {
    pub fn new_unchecked(buf: T) -> Self {
        Packet { buf }
    }

    /// Validates the version, and that the fixed header of the family and
    /// any declared address fit in the buffer. Unknown types pass (the
    /// caller counts them).
    pub fn new_checked(buf: T) -> Result<Self, WireError> {
        let p = Packet { buf };
        let b = p.buf.as_ref();
        if b.len() < BASE_LEN {
            return Err(WireError::Truncated);
        }
        if b[0] != VERSION {
            return Err(WireError::Version(b[0]));
        }
        let fixed = match p.packet_type() {
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
        };
        if b.len() < fixed {
            return Err(WireError::Truncated);
        }
        if p.addr_len() > b.len() - fixed {
            return Err(WireError::Truncated);
        }
        Ok(p)
    }

    pub fn version(&self) -> u8 {
        self.buf.as_ref()[0]
    }
    pub fn packet_type(&self) -> PacketType {
        PacketType::from(self.buf.as_ref()[1])
    }
    pub fn flags(&self) -> u16 {
        rd16(self.buf.as_ref(), 2)
    }
    /// Length of the carried address (REQ with REQ_HAS_ADDR, HANDSHAKE).
    pub fn addr_len(&self) -> usize {
        let b = self.buf.as_ref();
        match self.packet_type() {
            PacketType::Req if self.flags() & REQ_HAS_ADDR != 0 => b[5] as usize,
            PacketType::Handshake => b[5] as usize,
            _ => 0,
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

/// A checked description of memory in a process of this host, read or
/// written with CMA (process_vm_readv/writev):
///
/// ```text
/// 0  pid   u32   (the process owning the memory; 0: not stated)
/// 4  count u32   (segments, 1..=MAX_CMA_SEGS)
/// 8  count × (address u64, length u64)
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CmaDesc<'a> {
    pub pid: u32,
    segs: &'a [u8],
}

impl<'a> CmaDesc<'a> {
    /// Checks the layout and that the lengths add up to `total` without
    /// overflow (and every segment's end fits the address space).
    pub fn parse(b: &'a [u8], total: u64) -> Result<CmaDesc<'a>, WireError> {
        if b.len() < CMA_DESC_HDR {
            return Err(WireError::Truncated);
        }
        let n = rd32(b, 4) as usize;
        if n == 0 || n > MAX_CMA_SEGS || b.len() != CMA_DESC_HDR + n * CMA_SEG_LEN {
            return Err(WireError::Malformed);
        }
        let d = CmaDesc {
            pid: rd32(b, 0),
            segs: &b[CMA_DESC_HDR..],
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

    /// (address, length) of each segment, in order.
    pub fn segments(&self) -> impl Iterator<Item = (u64, u64)> + 'a {
        self.segs
            .chunks_exact(CMA_SEG_LEN)
            .map(|c| (rd64(c, 0), rd64(c, 8)))
    }
}

/// Bytes of a descriptor with `n` segments.
pub fn cma_desc_len(n: usize) -> usize {
    CMA_DESC_HDR + n * CMA_SEG_LEN
}

/// Writes a descriptor; `out` must hold `cma_desc_len(segs.len())` bytes.
pub fn emit_cma_desc(out: &mut [u8], pid: u32, segs: &[(u64, u64)]) -> usize {
    wr32(out, 0, pid);
    wr32(out, 4, segs.len() as u32);
    for (i, &(a, l)) in segs.iter().enumerate() {
        let at = CMA_DESC_HDR + i * CMA_SEG_LEN;
        wr64(out, at, a);
        wr64(out, at + 8, l);
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

fn op_ref(b: &[u8]) -> OpRef {
    OpRef {
        tx_id: rd32(b, 4),
        op_gen: rd32(b, 8),
    }
}

impl<'a> Repr<'a> {
    pub fn parse(p: &Packet<&'a [u8]>) -> Result<Repr<'a>, WireError> {
        let b: &'a [u8] = p.buf;
        let flags = p.flags();
        Ok(match p.packet_type() {
            PacketType::Req => {
                let alen = p.addr_len();
                let hdr = ReqRepr {
                    flags,
                    proto: Proto::from(b[4]),
                    msg_id: rd32(b, 8),
                    tx_id: rd32(b, 12),
                    tag: rd64(b, 16),
                    cq_data: rd64(b, 24),
                    total_len: rd64(b, 32),
                    offset: rd64(b, 40),
                };
                let payload = &b[REQ_LEN + alen..];
                if hdr.proto == Proto::LongRead {
                    // The payload describes the data; it is not data.
                    if hdr.offset != 0 {
                        return Err(WireError::Malformed);
                    }
                    CmaDesc::parse(payload, hdr.total_len)?;
                } else if hdr
                    .offset
                    .checked_add(payload.len() as u64)
                    .is_none_or(|e| e > hdr.total_len)
                {
                    return Err(WireError::Malformed);
                }
                let addr = (flags & REQ_HAS_ADDR != 0).then(|| &b[REQ_LEN..REQ_LEN + alen]);
                Repr::Req { hdr, addr, payload }
            }
            PacketType::Cts => Repr::Cts(CtsRepr {
                msg_id: rd32(b, 4),
                tx_id: rd32(b, 8),
                rx_id: rd32(b, 12),
                grant_end: rd64(b, 20),
            }),
            PacketType::Data => Repr::Data {
                hdr: DataRepr {
                    msg_id: rd32(b, 4),
                    rx_id: rd32(b, 8),
                    offset: rd64(b, 12),
                },
                payload: &b[DATA_LEN..],
            },
            PacketType::Receipt => Repr::Receipt(ReceiptRepr {
                msg_id: rd32(b, 4),
                tx_id: rd32(b, 8),
            }),
            PacketType::Handshake => {
                let alen = p.addr_len();
                Repr::Handshake {
                    hdr: HandshakeRepr {
                        flags,
                        max_version: b[4],
                        window: rd16(b, 6),
                        features: rd64(b, 8),
                    },
                    addr: &b[HANDSHAKE_LEN..HANDSHAKE_LEN + alen],
                }
            }
            PacketType::Credit => Repr::Credit(CreditRepr {
                next_msg_id: rd32(b, 4),
            }),
            PacketType::Rtw => {
                let hdr = RtwRepr {
                    flags,
                    op: op_ref(b),
                    key: rd64(b, 12),
                    addr: rd64(b, 20),
                    total_len: rd64(b, 28),
                    offset: rd64(b, 36),
                    cq_data: rd64(b, 44),
                };
                let payload = &b[RTW_LEN..];
                if hdr.addr.checked_add(hdr.total_len).is_none() {
                    return Err(WireError::Malformed);
                }
                if flags & RTW_CMA != 0 {
                    if hdr.offset != 0 {
                        return Err(WireError::Malformed);
                    }
                    CmaDesc::parse(payload, hdr.total_len)?;
                } else {
                    let end = hdr.offset.checked_add(payload.len() as u64);
                    if end.is_none_or(|e| e > hdr.total_len) {
                        return Err(WireError::Malformed);
                    }
                }
                Repr::Rtw { hdr, payload }
            }
            PacketType::Rtr => {
                let hdr = RtrRepr {
                    flags,
                    op: op_ref(b),
                    key: rd64(b, 12),
                    addr: rd64(b, 20),
                    len: rd64(b, 28),
                };
                if hdr.addr.checked_add(hdr.len).is_none() {
                    return Err(WireError::Malformed);
                }
                let desc = if flags & RTR_CMA != 0 {
                    Some(CmaDesc::parse(&b[RTR_LEN..], hdr.len)?)
                } else {
                    None
                };
                Repr::Rtr { hdr, desc }
            }
            PacketType::Rta => Repr::Rta {
                hdr: RtaRepr {
                    op: op_ref(b),
                    key: rd64(b, 12),
                    addr: rd64(b, 20),
                    atomic_op: b[28],
                    datatype: b[29],
                    kind: b[30],
                    count: rd32(b, 32),
                },
                payload: &b[RTA_LEN..],
            },
            PacketType::ReadRsp => {
                let hdr = ReadRspRepr {
                    flags,
                    op: op_ref(b),
                    offset: rd64(b, 12),
                    status: rd32(b, 20).into(),
                };
                let payload = &b[READRSP_LEN..];
                let placed = flags & READRSP_PLACED != 0;
                if (!hdr.status.is_ok() || placed) && !payload.is_empty() {
                    return Err(WireError::Malformed);
                }
                Repr::ReadRsp { hdr, payload }
            }
            PacketType::WriteRsp => {
                if b.len() != RSP_LEN {
                    return Err(WireError::Malformed);
                }
                Repr::WriteRsp(RspRepr {
                    flags,
                    op: op_ref(b),
                    status: rd32(b, 12).into(),
                })
            }
            PacketType::AtomRsp => Repr::AtomRsp {
                hdr: RspRepr {
                    flags,
                    op: op_ref(b),
                    status: rd32(b, 12).into(),
                },
                payload: &b[RSP_LEN..],
            },
            PacketType::Fin => Repr::Fin(FinRepr {
                msg_id: rd32(b, 4),
                tx_id: rd32(b, 8),
                status: rd32(b, 12).into(),
            }),
            PacketType::Unknown(t) => Repr::Unknown(t),
        })
    }
}

fn emit_base(out: &mut [u8], t: PacketType, flags: u16) {
    out[0] = VERSION;
    out[1] = t.into();
    wr16(out, 2, flags);
}

/// Writes a REQ header (and the address when `addr` is given) and returns
/// the offset where the payload goes. `out` must hold `REQ_LEN + addr.len()`.
pub fn emit_req(out: &mut [u8], hdr: &ReqRepr, addr: Option<&[u8]>) -> usize {
    let mut flags = hdr.flags & !REQ_HAS_ADDR;
    let alen = addr.map_or(0, |a| a.len().min(MAX_ADDR_LEN));
    if addr.is_some() {
        flags |= REQ_HAS_ADDR;
    }
    emit_base(out, PacketType::Req, flags);
    out[4] = hdr.proto.into();
    out[5] = alen as u8;
    wr16(out, 6, 0);
    wr32(out, 8, hdr.msg_id);
    wr32(out, 12, hdr.tx_id);
    wr64(out, 16, hdr.tag);
    wr64(out, 24, hdr.cq_data);
    wr64(out, 32, hdr.total_len);
    wr64(out, 40, hdr.offset);
    if let Some(a) = addr {
        out[REQ_LEN..REQ_LEN + alen].copy_from_slice(&a[..alen]);
    }
    REQ_LEN + alen
}

pub fn emit_cts(out: &mut [u8], c: &CtsRepr) -> usize {
    emit_base(out, PacketType::Cts, 0);
    wr32(out, 4, c.msg_id);
    wr32(out, 8, c.tx_id);
    wr32(out, 12, c.rx_id);
    wr32(out, 16, 0);
    wr64(out, 20, c.grant_end);
    CTS_LEN
}

/// Writes a DATA header; the payload goes at the returned offset.
pub fn emit_data(out: &mut [u8], d: &DataRepr) -> usize {
    emit_base(out, PacketType::Data, 0);
    wr32(out, 4, d.msg_id);
    wr32(out, 8, d.rx_id);
    wr64(out, 12, d.offset);
    DATA_LEN
}

pub fn emit_receipt(out: &mut [u8], r: &ReceiptRepr) -> usize {
    emit_base(out, PacketType::Receipt, 0);
    wr32(out, 4, r.msg_id);
    wr32(out, 8, r.tx_id);
    RECEIPT_LEN
}

pub fn emit_credit(out: &mut [u8], c: &CreditRepr) -> usize {
    emit_base(out, PacketType::Credit, 0);
    wr32(out, 4, c.next_msg_id);
    wr32(out, 8, 0);
    CREDIT_LEN
}

pub fn emit_handshake(out: &mut [u8], h: &HandshakeRepr, addr: &[u8]) -> usize {
    let alen = addr.len().min(MAX_ADDR_LEN);
    emit_base(out, PacketType::Handshake, h.flags);
    out[4] = h.max_version;
    out[5] = alen as u8;
    wr16(out, 6, h.window);
    wr64(out, 8, h.features);
    out[HANDSHAKE_LEN..HANDSHAKE_LEN + alen].copy_from_slice(&addr[..alen]);
    HANDSHAKE_LEN + alen
}

fn emit_op(out: &mut [u8], op: OpRef) {
    wr32(out, 4, op.tx_id);
    wr32(out, 8, op.op_gen);
}

/// Writes an RTW header; the data goes at the returned offset.
pub fn emit_rtw(out: &mut [u8], h: &RtwRepr) -> usize {
    emit_base(out, PacketType::Rtw, h.flags);
    emit_op(out, h.op);
    wr64(out, 12, h.key);
    wr64(out, 20, h.addr);
    wr64(out, 28, h.total_len);
    wr64(out, 36, h.offset);
    wr64(out, 44, h.cq_data);
    RTW_LEN
}

/// Writes an RTR header; with RTR_CMA the descriptor goes at the returned
/// offset.
pub fn emit_rtr(out: &mut [u8], h: &RtrRepr) -> usize {
    emit_base(out, PacketType::Rtr, h.flags);
    emit_op(out, h.op);
    wr64(out, 12, h.key);
    wr64(out, 20, h.addr);
    wr64(out, 28, h.len);
    RTR_LEN
}

/// Writes an RTA header; the operands go at the returned offset.
pub fn emit_rta(out: &mut [u8], h: &RtaRepr) -> usize {
    emit_base(out, PacketType::Rta, 0);
    emit_op(out, h.op);
    wr64(out, 12, h.key);
    wr64(out, 20, h.addr);
    out[28] = h.atomic_op;
    out[29] = h.datatype;
    out[30] = h.kind;
    out[31] = 0;
    wr32(out, 32, h.count);
    RTA_LEN
}

/// Writes a READRSP header; the data goes at the returned offset.
pub fn emit_readrsp(out: &mut [u8], h: &ReadRspRepr) -> usize {
    emit_base(out, PacketType::ReadRsp, h.flags);
    emit_op(out, h.op);
    wr64(out, 12, h.offset);
    wr32(out, 20, h.status.into());
    wr32(out, 24, 0);
    READRSP_LEN
}

/// Writes a WRITERSP (`atomic == false`) or ATOMRSP header; ATOMRSP's
/// fetched values go at the returned offset.
pub fn emit_rsp(out: &mut [u8], h: &RspRepr, atomic: bool) -> usize {
    let t = if atomic {
        PacketType::AtomRsp
    } else {
        PacketType::WriteRsp
    };
    emit_base(out, t, h.flags);
    emit_op(out, h.op);
    wr32(out, 12, h.status.into());
    wr32(out, 16, 0);
    RSP_LEN
}

pub fn emit_fin(out: &mut [u8], f: &FinRepr) -> usize {
    emit_base(out, PacketType::Fin, 0);
    wr32(out, 4, f.msg_id);
    wr32(out, 8, f.tx_id);
    wr32(out, 12, f.status.into());
    wr32(out, 16, 0);
    FIN_LEN
}

#[cfg(test)]
mod tests {
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
        assert_eq!(parse(&[other, 1, 0, 0]), Err(WireError::Version(other)));
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
}
