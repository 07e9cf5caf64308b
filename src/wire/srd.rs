//! The SRD transport header (docs/srd-spec.md §3).
//!
//! All multi-byte fields are big-endian. Every packet starts with a 20-byte
//! common header whose first byte is the version; the type byte selects an
//! extension:
//!
//! ```text
//! common   0 ver | 1 type | 2 flags | 3 path | 4..8 src ip | 8..10 src port
//!          10..12 total length | 12..16 src epoch | 16..20 crc32c
//! data     20 dst qpn | 24 src qpn | 28 qkey | 32 psn | 36 una | 40 ack  (44 bytes, payload follows)
//! ack      20 cum psn | 24 sack words n (0..=16) | 25..27 grant | 27 zero | 28.. n x u64 bitmap
//! nak      20 psn | 24 reason | 25..28 zero                          (28 bytes)
//! ```
//!
//! The checksum is CRC32C over the first `total length` bytes with the
//! checksum field taken as zero; with flag `HDR_CSUM` it covers only the header.

use super::WireError;
use super::crc32c::Crc32c;
use std::net::Ipv4Addr;

/// The only wire version this build speaks.
pub const VERSION: u8 = 3;
/// Bytes of the common header.
pub const COMMON_LEN: usize = 20;
/// Bytes of a data (SRD or UD) header; the payload follows.
pub const DATA_HEADER_LEN: usize = 44;
/// Bytes of an ack header without its SACK words.
pub const ACK_BASE_LEN: usize = 28;
/// Most SACK words an ack may carry (1024 PSNs beyond the cumulative
/// point: a whole receive window, so one ack shows every hole in it).
pub const MAX_SACK_WORDS: usize = 16;
/// Unit of an ack's window grant, bytes.
pub const GRANT_UNIT: usize = 64;
/// Bytes of a NAK.
pub const NAK_LEN: usize = 28;
/// Largest datagram the 16-bit length field can describe.
pub const MAX_TOTAL_LEN: usize = 65_535;

mod field {
    use std::ops::Range;
    pub const VERSION: usize = 0;
    pub const TYPE: usize = 1;
    pub const FLAGS: usize = 2;
    pub const PATH: usize = 3;
    pub const SRC_IP: Range<usize> = 4..8;
    pub const SRC_PORT: Range<usize> = 8..10;
    pub const TOTAL_LEN: Range<usize> = 10..12;
    pub const EPOCH: Range<usize> = 12..16;
    pub const CSUM: Range<usize> = 16..20;
    // data
    pub const DST_QPN: Range<usize> = 20..24;
    pub const SRC_QPN: Range<usize> = 24..28;
    pub const QKEY: Range<usize> = 28..32;
    pub const PSN: Range<usize> = 32..36;
    pub const UNA: Range<usize> = 36..40;
    pub const ACK: Range<usize> = 40..44;
    // ack
    pub const CUM: Range<usize> = 20..24;
    pub const SACK_WORDS: usize = 24;
    pub const GRANT: Range<usize> = 25..27;
    pub const ACK_RSVD: usize = 27;
    pub const SACK: usize = 28;
    // nak
    pub const NAK_PSN: Range<usize> = 20..24;
    pub const NAK_REASON: usize = 24;
    pub const NAK_RSVD: Range<usize> = 25..28;
}

/// Packet type (byte 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PacketType {
    /// Reliable data for an SRD QP.
    SrdData,
    /// Best-effort data for a UD QP (no PSN, never acked).
    UdData,
    /// Cumulative + selective acknowledgement.
    Ack,
    /// Negative acknowledgement of one PSN (RNR or a receiver-side error).
    Nak,
    Unknown(u8),
}

impl From<u8> for PacketType {
    fn from(v: u8) -> Self {
        match v {
            1 => PacketType::SrdData,
            2 => PacketType::UdData,
            3 => PacketType::Ack,
            4 => PacketType::Nak,
            x => PacketType::Unknown(x),
        }
    }
}

impl From<PacketType> for u8 {
    fn from(t: PacketType) -> u8 {
        match t {
            PacketType::SrdData => 1,
            PacketType::UdData => 2,
            PacketType::Ack => 3,
            PacketType::Nak => 4,
            PacketType::Unknown(x) => x,
        }
    }
}

/// Header flags (byte 2). Unknown bits are ignored on receive, zero on send.
pub mod flags {
    /// The receiver should ack now rather than coalesce (sender has nothing
    /// more queued, or its window is nearly closed).
    pub const ACK_REQ: u8 = 0x01;
    /// This transmission is a retransmission (diagnostics only).
    pub const RETX: u8 = 0x02;
    /// The checksum covers the header only, not the payload.
    pub const HDR_CSUM: u8 = 0x04;
    /// Data packets: the `ack` field acknowledges the receiver's own data
    /// cumulatively (an ack riding on data going the other way).
    pub const ACK_PIGGY: u8 = 0x08;
}

/// Reason carried by a NAK (byte 24).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NakReason {
    /// Receiver not ready: no receive posted (or its CQ is full). Retry later.
    Rnr,
    /// No QP with the destination QPN, or it is not an SRD QP.
    BadQpn,
    /// The QKey does not match the destination QP's.
    BadQkey,
    /// The destination QP is not in RTR or RTS.
    BadState,
    Unknown(u8),
}

impl From<u8> for NakReason {
    fn from(v: u8) -> Self {
        match v {
            1 => NakReason::Rnr,
            2 => NakReason::BadQpn,
            3 => NakReason::BadQkey,
            4 => NakReason::BadState,
            x => NakReason::Unknown(x),
        }
    }
}

impl From<NakReason> for u8 {
    fn from(r: NakReason) -> u8 {
        match r {
            NakReason::Rnr => 1,
            NakReason::BadQpn => 2,
            NakReason::BadQkey => 3,
            NakReason::BadState => 4,
            NakReason::Unknown(x) => x,
        }
    }
}

fn be16(b: &[u8]) -> u16 {
    let mut a = [0u8; 2];
    a.copy_from_slice(b);
    u16::from_be_bytes(a)
}

fn be32(b: &[u8]) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(b);
    u32::from_be_bytes(a)
}

fn be64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(b);
    u64::from_be_bytes(a)
}

/// A checked view of an SRD datagram.
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps without checking; accessors may panic on short buffers. Use only
    /// on buffers you are about to fill with `Repr::emit`.
    pub const fn new_unchecked(buffer: T) -> Self {
        Packet { buffer }
    }

    /// Wraps and validates: version first (so another version gets a clear
    /// error), then that the buffer holds the declared total length and the
    /// fixed header of its type. Does not verify the checksum (see
    /// [`Packet::verify_checksum`]) so counters can tell corruption apart.
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        let p = Packet { buffer };
        p.check_len()?;
        Ok(p)
    }

    fn check_len(&self) -> Result<(), WireError> {
        let b = self.buffer.as_ref();
        let Some(&v) = b.first() else {
            return Err(WireError::Truncated);
        };
        if v != VERSION {
            return Err(WireError::BadVersion(v));
        }
        if b.len() < COMMON_LEN {
            return Err(WireError::Truncated);
        }
        let total = usize::from(be16(&b[field::TOTAL_LEN]));
        if total < COMMON_LEN {
            return Err(WireError::Malformed);
        }
        if b.len() < total {
            return Err(WireError::Truncated);
        }
        let need = match PacketType::from(b[field::TYPE]) {
            PacketType::SrdData | PacketType::UdData => DATA_HEADER_LEN,
            PacketType::Ack => {
                if total < ACK_BASE_LEN {
                    return Err(WireError::Truncated);
                }
                let words = usize::from(b[field::SACK_WORDS]);
                if words > MAX_SACK_WORDS {
                    return Err(WireError::Malformed);
                }
                ACK_BASE_LEN + 8 * words
            }
            PacketType::Nak => NAK_LEN,
            PacketType::Unknown(_) => COMMON_LEN,
        };
        if total < need {
            return Err(WireError::Truncated);
        }
        // Control packets carry no payload; trailing bytes inside the declared
        // length mean the length field was forged or corrupted.
        let exact = matches!(
            PacketType::from(b[field::TYPE]),
            PacketType::Ack | PacketType::Nak
        );
        if exact && total != need {
            return Err(WireError::Malformed);
        }
        Ok(())
    }

    fn b(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    pub fn version(&self) -> u8 {
        self.b()[field::VERSION]
    }
    pub fn packet_type(&self) -> PacketType {
        PacketType::from(self.b()[field::TYPE])
    }
    pub fn flags(&self) -> u8 {
        self.b()[field::FLAGS]
    }
    pub fn path(&self) -> u8 {
        self.b()[field::PATH]
    }
    pub fn src_ip(&self) -> Ipv4Addr {
        let s = &self.b()[field::SRC_IP];
        Ipv4Addr::new(s[0], s[1], s[2], s[3])
    }
    pub fn src_port(&self) -> u16 {
        be16(&self.b()[field::SRC_PORT])
    }
    /// Header + payload bytes (the datagram may carry trailing padding).
    pub fn total_len(&self) -> usize {
        usize::from(be16(&self.b()[field::TOTAL_LEN]))
    }
    pub fn epoch(&self) -> u32 {
        be32(&self.b()[field::EPOCH])
    }
    pub fn checksum(&self) -> u32 {
        be32(&self.b()[field::CSUM])
    }
    /// Data packets: the destination QP number.
    pub fn dst_qpn(&self) -> u32 {
        be32(&self.b()[field::DST_QPN])
    }
    pub fn src_qpn(&self) -> u32 {
        be32(&self.b()[field::SRC_QPN])
    }
    pub fn qkey(&self) -> u32 {
        be32(&self.b()[field::QKEY])
    }
    pub fn psn(&self) -> u32 {
        be32(&self.b()[field::PSN])
    }
    pub fn una(&self) -> u32 {
        be32(&self.b()[field::UNA])
    }

    /// The piggybacked ack of a data packet (meaningful with `ACK_PIGGY`).
    pub fn piggy_ack(&self) -> u32 {
        be32(&self.b()[field::ACK])
    }
    /// Acks: every PSN before this one has been received.
    pub fn cum_psn(&self) -> u32 {
        be32(&self.b()[field::CUM])
    }
    pub fn sack_words(&self) -> usize {
        usize::from(self.b()[field::SACK_WORDS])
    }
    /// Ack SACK word `i` (< `sack_words()`): bit j means PSN cum+1+64i+j arrived.
    pub fn sack_word(&self, i: usize) -> u64 {
        let at = field::SACK + 8 * i;
        be64(&self.b()[at..at + 8])
    }
    pub fn nak_psn(&self) -> u32 {
        be32(&self.b()[field::NAK_PSN])
    }
    pub fn nak_reason(&self) -> NakReason {
        NakReason::from(self.b()[field::NAK_REASON])
    }

    /// Length of the header for this packet's type.
    pub fn header_len(&self) -> usize {
        match self.packet_type() {
            PacketType::SrdData | PacketType::UdData => DATA_HEADER_LEN,
            PacketType::Ack => ACK_BASE_LEN + 8 * self.sack_words(),
            PacketType::Nak => NAK_LEN,
            PacketType::Unknown(_) => COMMON_LEN,
        }
    }

    /// Data packets: the payload bytes.
    pub fn payload(&self) -> &[u8] {
        let (h, t) = (self.header_len(), self.total_len());
        &self.b()[h..t]
    }

    /// Recomputes the CRC32C and compares it with the header field.
    pub fn verify_checksum(&self) -> bool {
        compute_checksum(&self.b()[..self.total_len()], self.header_len()) == self.checksum()
    }
}

/// CRC over `datagram` with the checksum field as zero; with `HDR_CSUM` set
/// only the first `header_len` bytes are covered.
fn compute_checksum(datagram: &[u8], header_len: usize) -> u32 {
    let covered = if datagram[field::FLAGS] & flags::HDR_CSUM != 0 {
        &datagram[..header_len]
    } else {
        datagram
    };
    let mut c = Crc32c::new();
    if covered.len() <= 64 {
        // A header: one pass over a copy with the field zeroed (three
        // short updates cost twice as much, per packet both ways).
        let mut b = [0u8; 64];
        b[..covered.len()].copy_from_slice(covered);
        b[field::CSUM].fill(0);
        c.update(&b[..covered.len()]);
    } else {
        c.update(&covered[..field::CSUM.start]);
        c.update(&[0u8; 4]);
        c.update(&covered[field::CSUM.end..]);
    }
    c.finish()
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    fn bm(&mut self) -> &mut [u8] {
        self.buffer.as_mut()
    }

    fn set_checksum(&mut self) {
        let (h, t) = (self.header_len(), self.total_len());
        let c = compute_checksum(&self.b()[..t], h);
        self.bm()[field::CSUM].copy_from_slice(&c.to_be_bytes());
    }
}

/// Type-specific part of a parsed header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body {
    /// SrdData and UdData. For UD, `psn` and `una` are zero.
    Data {
        dst_qpn: u32,
        src_qpn: u32,
        qkey: u32,
        psn: u32,
        /// Lowest PSN the sender still needs delivered: the receiver may treat
        /// everything before it as done (abandoned after a peer error).
        una: u32,
        /// A cumulative ack of the receiver's data (flag `ACK_PIGGY`): every
        /// PSN before it arrived.
        ack: Option<u32>,
    },
    Ack {
        cum_psn: u32,
        sack_words: u8,
        sack: [u64; MAX_SACK_WORDS],
        /// The receiver's share of its in-flight budget for this sender,
        /// in units of `GRANT_UNIT` bytes (docs/srd-spec.md §11.1); 0: no
        /// limit.
        grant: u16,
    },
    Nak {
        psn: u32,
        reason: NakReason,
    },
}

/// A parsed SRD header (owned, no payload).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    pub packet_type: PacketType,
    pub flags: u8,
    pub path: u8,
    pub src_ip: Ipv4Addr,
    pub src_port: u16,
    pub epoch: u32,
    pub body: Body,
    /// Data packets: payload length; zero otherwise.
    pub payload_len: usize,
}

impl Repr {
    /// Parses a checked packet, verifying the checksum. Unknown types are an
    /// error (`UnknownType`) so the caller counts them instead of guessing.
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Result<Repr, WireError> {
        let body = match p.packet_type() {
            PacketType::SrdData | PacketType::UdData => Body::Data {
                dst_qpn: p.dst_qpn(),
                src_qpn: p.src_qpn(),
                qkey: p.qkey(),
                psn: p.psn(),
                una: p.una(),
                ack: (p.flags() & flags::ACK_PIGGY != 0).then(|| p.piggy_ack()),
            },
            PacketType::Ack => {
                let n = p.sack_words();
                let mut sack = [0u64; MAX_SACK_WORDS];
                for (i, w) in sack.iter_mut().enumerate().take(n) {
                    *w = p.sack_word(i);
                }
                if p.b()[field::ACK_RSVD] != 0 {
                    return Err(WireError::Malformed);
                }
                let g = &p.b()[field::GRANT];
                Body::Ack {
                    cum_psn: p.cum_psn(),
                    // n <= MAX_SACK_WORDS was checked in new_checked.
                    sack_words: p.b()[field::SACK_WORDS],
                    sack,
                    grant: u16::from_be_bytes([g[0], g[1]]),
                }
            }
            PacketType::Nak => {
                if p.b()[field::NAK_RSVD] != [0, 0, 0] {
                    return Err(WireError::Malformed);
                }
                Body::Nak {
                    psn: p.nak_psn(),
                    reason: p.nak_reason(),
                }
            }
            PacketType::Unknown(t) => return Err(WireError::UnknownType(t)),
        };
        if !p.verify_checksum() {
            return Err(WireError::Checksum);
        }
        let payload_len = match body {
            Body::Data { .. } => p.total_len() - DATA_HEADER_LEN,
            _ => 0,
        };
        Ok(Repr {
            packet_type: p.packet_type(),
            // ACK_PIGGY is in the body (`Body::Data::ack`).
            flags: p.flags() & !flags::ACK_PIGGY,
            path: p.path(),
            src_ip: p.src_ip(),
            src_port: p.src_port(),
            epoch: p.epoch(),
            body,
            payload_len,
        })
    }

    /// Header bytes this repr emits.
    pub fn header_len(&self) -> usize {
        match self.body {
            Body::Data { .. } => DATA_HEADER_LEN,
            Body::Ack { sack_words, .. } => {
                ACK_BASE_LEN + 8 * usize::from(sack_words).min(MAX_SACK_WORDS)
            }
            Body::Nak { .. } => NAK_LEN,
        }
    }

    /// Header plus payload.
    pub fn total_len(&self) -> usize {
        self.header_len() + self.payload_len
    }

    /// Writes the header and `payload` into `buf` and seals it with the
    /// checksum. Returns the datagram length, or `None` if `buf` is too short,
    /// the datagram would exceed 64 KiB, or `payload` does not match
    /// `payload_len`.
    pub fn emit(&self, buf: &mut [u8], payload: &[u8]) -> Option<usize> {
        if payload.len() != self.payload_len {
            return None;
        }
        let h = self.header_len();
        buf.get_mut(h..h + payload.len())?.copy_from_slice(payload);
        self.emit_in_place(buf)
    }

    /// As `emit`, with the payload already in place at
    /// `buf[header_len()..header_len() + payload_len]` (a send buffer with
    /// room for the header in front): writes the header and the checksum.
    pub fn emit_in_place(&self, buf: &mut [u8]) -> Option<usize> {
        self.emit_into(buf, true)
    }

    /// As `emit_in_place` for a datagram whose payload goes out from
    /// elsewhere (gathered by iovec behind `buf[..header_len()]`, which is
    /// all this writes): the checksum must cover the header alone (flag
    /// `HDR_CSUM`, else `None`). Returns the whole datagram's length.
    pub fn emit_head_in_place(&self, buf: &mut [u8]) -> Option<usize> {
        if self.flags & flags::HDR_CSUM == 0 {
            return None;
        }
        self.emit_into(buf, false)
    }

    fn emit_into(&self, buf: &mut [u8], whole: bool) -> Option<usize> {
        let h = self.header_len();
        let total = h + self.payload_len;
        let total16 = u16::try_from(total).ok()?;
        let out = buf.get_mut(..if whole { total } else { h })?;
        out[field::VERSION] = VERSION;
        out[field::TYPE] = u8::from(self.packet_type);
        out[field::FLAGS] = self.flags;
        out[field::PATH] = self.path;
        out[field::SRC_IP].copy_from_slice(&self.src_ip.octets());
        out[field::SRC_PORT].copy_from_slice(&self.src_port.to_be_bytes());
        out[field::TOTAL_LEN].copy_from_slice(&total16.to_be_bytes());
        out[field::EPOCH].copy_from_slice(&self.epoch.to_be_bytes());
        out[field::CSUM].copy_from_slice(&[0; 4]);
        match self.body {
            Body::Data {
                dst_qpn,
                src_qpn,
                qkey,
                psn,
                una,
                ack,
            } => {
                if ack.is_some() {
                    out[field::FLAGS] |= flags::ACK_PIGGY;
                } else {
                    out[field::FLAGS] &= !flags::ACK_PIGGY;
                }
                out[field::ACK].copy_from_slice(&ack.unwrap_or(0).to_be_bytes());
                out[field::DST_QPN].copy_from_slice(&dst_qpn.to_be_bytes());
                out[field::SRC_QPN].copy_from_slice(&src_qpn.to_be_bytes());
                out[field::QKEY].copy_from_slice(&qkey.to_be_bytes());
                out[field::PSN].copy_from_slice(&psn.to_be_bytes());
                out[field::UNA].copy_from_slice(&una.to_be_bytes());
            }
            Body::Ack {
                cum_psn,
                sack_words,
                sack,
                grant,
            } => {
                let n = usize::from(sack_words).min(MAX_SACK_WORDS);
                out[field::CUM].copy_from_slice(&cum_psn.to_be_bytes());
                // n <= MAX_SACK_WORDS fits a byte.
                out[field::SACK_WORDS] = n as u8;
                out[field::GRANT].copy_from_slice(&grant.to_be_bytes());
                out[field::ACK_RSVD] = 0;
                for (i, w) in sack.iter().enumerate().take(n) {
                    let at = field::SACK + 8 * i;
                    out[at..at + 8].copy_from_slice(&w.to_be_bytes());
                }
            }
            Body::Nak { psn, reason } => {
                out[field::NAK_PSN].copy_from_slice(&psn.to_be_bytes());
                out[field::NAK_REASON] = u8::from(reason);
                out[field::NAK_RSVD].copy_from_slice(&[0; 3]);
            }
        }
        if whole {
            Packet::new_unchecked(out).set_checksum();
        } else {
            let c = compute_checksum(out, h);
            out[field::CSUM].copy_from_slice(&c.to_be_bytes());
        }
        Some(total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data_repr(payload_len: usize) -> Repr {
        Repr {
            packet_type: PacketType::SrdData,
            flags: flags::ACK_REQ,
            path: 3,
            src_ip: Ipv4Addr::new(10, 1, 2, 3),
            src_port: 4791,
            epoch: 0xdead_beef,
            body: Body::Data {
                dst_qpn: 7,
                src_qpn: 9,
                qkey: 0x1234_5678,
                psn: 0xffff_fffe,
                una: 0xffff_fff0,
                ack: Some(0x1234),
            },
            payload_len,
        }
    }

    #[test]
    fn a_head_emitted_alone_checks_with_its_payload_behind_it() {
        let payload: Vec<u8> = (0..100u8).collect();
        let mut r = data_repr(payload.len());
        let mut buf = [0u8; 256];
        assert_eq!(r.emit_head_in_place(&mut buf), None, "needs HDR_CSUM");
        r.flags |= flags::HDR_CSUM;
        let mut head = [0u8; DATA_HEADER_LEN];
        assert_eq!(r.emit_head_in_place(&mut head), Some(DATA_HEADER_LEN + 100));
        buf[..DATA_HEADER_LEN].copy_from_slice(&head);
        buf[DATA_HEADER_LEN..DATA_HEADER_LEN + 100].copy_from_slice(&payload);
        let p = Packet::new_checked(&buf[..DATA_HEADER_LEN + 100]).unwrap();
        assert!(p.verify_checksum());
        assert_eq!(p.payload(), &payload[..]);
        assert_eq!(Repr::parse(&p).unwrap(), r);
    }

    #[test]
    fn data_roundtrip() {
        let payload: Vec<u8> = (0..100u8).collect();
        let r = data_repr(payload.len());
        let mut buf = [0u8; 256];
        let n = r.emit(&mut buf, &payload).unwrap();
        assert_eq!(n, DATA_HEADER_LEN + 100);
        let p = Packet::new_checked(&buf[..n]).unwrap();
        assert_eq!(p.payload(), &payload[..]);
        assert_eq!(p.psn(), 0xffff_fffe);
        assert_eq!(Repr::parse(&p).unwrap(), r);
        // Trailing padding beyond the declared length is ignored.
        let p = Packet::new_checked(&buf[..]).unwrap();
        assert_eq!(Repr::parse(&p).unwrap(), r);
    }

    /// A SACK array whose first words are `w`.
    fn sack_of(w: &[u64]) -> [u64; MAX_SACK_WORDS] {
        let mut s = [0; MAX_SACK_WORDS];
        s[..w.len()].copy_from_slice(w);
        s
    }

    #[test]
    fn ack_and_nak_roundtrip() {
        let r = Repr {
            packet_type: PacketType::Ack,
            flags: 0,
            path: 0,
            src_ip: Ipv4Addr::LOCALHOST,
            src_port: 1,
            epoch: 1,
            body: Body::Ack {
                cum_psn: 42,
                sack_words: 2,
                sack: sack_of(&[0x8000_0000_0000_0001, 5]),
                grant: 0x1234,
            },
            payload_len: 0,
        };
        let mut buf = [0u8; 64];
        let n = r.emit(&mut buf, &[]).unwrap();
        assert_eq!(n, 44);
        assert_eq!(&buf[25..28], &[0x12, 0x34, 0], "grant, reserved");
        assert_eq!(
            Repr::parse(&Packet::new_checked(&buf[..n]).unwrap()).unwrap(),
            r
        );
        let mut bad = buf;
        bad[27] = 1;
        Packet::new_unchecked(&mut bad[..n]).set_checksum();
        assert_eq!(
            Repr::parse(&Packet::new_checked(&bad[..n]).unwrap()),
            Err(WireError::Malformed),
            "the reserved byte must be zero"
        );

        let r = Repr {
            packet_type: PacketType::Nak,
            body: Body::Nak {
                psn: 5,
                reason: NakReason::Rnr,
            },
            ..r
        };
        let n = r.emit(&mut buf, &[]).unwrap();
        assert_eq!(n, NAK_LEN);
        assert_eq!(
            Repr::parse(&Packet::new_checked(&buf[..n]).unwrap()).unwrap(),
            r
        );
    }

    #[test]
    fn rejects_bad_input() {
        let payload = [7u8; 10];
        let mut buf = [0u8; 64];
        let n = data_repr(10).emit(&mut buf, &payload).unwrap();
        assert_eq!(
            Packet::new_checked(&buf[..0]).unwrap_err(),
            WireError::Truncated
        );
        for cut in 1..n {
            assert_eq!(
                Packet::new_checked(&buf[..cut]).unwrap_err(),
                WireError::Truncated,
                "cut {cut}"
            );
        }
        let mut v = buf;
        v[0] = VERSION + 1;
        assert_eq!(
            Packet::new_checked(&v[..n]).unwrap_err(),
            WireError::BadVersion(VERSION + 1)
        );
        let mut t = buf;
        t[1] = 99;
        let p = Packet::new_checked(&t[..n]).unwrap();
        assert_eq!(p.packet_type(), PacketType::Unknown(99));
        assert_eq!(Repr::parse(&p).unwrap_err(), WireError::UnknownType(99));
        // Every single-bit flip in header or payload is caught.
        for byte in 0..n {
            for bit in 0..8 {
                let mut c = buf;
                c[byte] ^= 1 << bit;
                let res = Packet::new_checked(&c[..n]).and_then(|p| Repr::parse(&p));
                assert!(res.is_err(), "flip {byte}.{bit} accepted");
            }
        }
    }

    #[test]
    fn header_only_checksum_ignores_payload() {
        let mut r = data_repr(4);
        r.flags |= flags::HDR_CSUM;
        let mut buf = [0u8; 64];
        let n = r.emit(&mut buf, &[1, 2, 3, 4]).unwrap();
        buf[n - 1] ^= 0xff;
        assert!(Repr::parse(&Packet::new_checked(&buf[..n]).unwrap()).is_ok());
        buf[5] ^= 1;
        assert_eq!(
            Repr::parse(&Packet::new_checked(&buf[..n]).unwrap()).unwrap_err(),
            WireError::Checksum
        );
    }

    #[test]
    fn ack_length_rules() {
        let mut buf = [0u8; 64];
        let r = Repr {
            packet_type: PacketType::Ack,
            flags: 0,
            path: 0,
            src_ip: Ipv4Addr::LOCALHOST,
            src_port: 1,
            epoch: 1,
            body: Body::Ack {
                cum_psn: 1,
                sack_words: 1,
                sack: sack_of(&[1]),
                grant: 0,
            },
            payload_len: 0,
        };
        let n = r.emit(&mut buf, &[]).unwrap();
        let mut w = buf;
        w[24] = MAX_SACK_WORDS as u8 + 1; // more SACK words than allowed
        assert_eq!(
            Packet::new_checked(&w[..n]).unwrap_err(),
            WireError::Malformed
        );
        let mut w = buf;
        w[24] = 2; // declares more words than the length holds
        assert_eq!(
            Packet::new_checked(&w[..n]).unwrap_err(),
            WireError::Truncated
        );
        assert!(r.emit(&mut buf[..n - 1], &[]).is_none());
    }

    #[test]
    fn emit_refuses_oversize() {
        let big = vec![0u8; MAX_TOTAL_LEN];
        let mut out = vec![0u8; MAX_TOTAL_LEN + 64];
        assert!(data_repr(big.len()).emit(&mut out, &big).is_none());
        let ok = &big[..MAX_TOTAL_LEN - DATA_HEADER_LEN];
        assert_eq!(data_repr(ok.len()).emit(&mut out, ok), Some(MAX_TOTAL_LEN));
    }
}
