//! The endpoint address: what fi_getname returns and fi_av_insert takes.
//!
//! Binary form (little-endian, 40 bytes, versioned):
//! ```text
//!  0  u8   version (1)
//!  1  u8   kind: 1 = RDM endpoint, 2 = DGRAM endpoint
//!  2  u16  reserved (0)
//!  4  u32  IPv4 address (network order bytes)
//!  8  u16  UDP port of path 0
//! 10  u16  reserved (0)
//! 12  u32  QPN
//! 16  u32  QKey
//! 20  u32  process id (with the nonce: the shared-memory ring's name)
//! 24  u64  host identity (same value = same host: shared memory reaches it)
//! 32  u64  endpoint nonce (random per endpoint; names its shared-memory ring)
//! ```
//! String form (FI_ADDR_STR): `fi_srd://<ip>:<port>/<qpn>/<qkey>/<kind>/<host hex>/<nonce hex>[/<pid>]`.

use std::fmt;
use std::net::{Ipv4Addr, SocketAddrV4};

pub const ADDR_LEN: usize = 40;
pub const ADDR_VERSION: u8 = 1;

/// Endpoint kinds carried in the address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    Rdm,
    Dgram,
}

/// A parsed endpoint address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct EpAddr {
    pub kind: Kind,
    pub sock: SocketAddrV4,
    pub qpn: u32,
    pub qkey: u32,
    pub host_id: u64,
    pub nonce: u64,
    /// Process id (0: no shared-memory ring to offer).
    pub pid: u32,
}

/// Why an address was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AddrError {
    Truncated,
    Version(u8),
    Kind(u8),
    Syntax,
}

impl EpAddr {
    pub fn to_bytes(&self) -> [u8; ADDR_LEN] {
        let mut b = [0u8; ADDR_LEN];
        b[0] = ADDR_VERSION;
        b[1] = match self.kind {
            Kind::Rdm => 1,
            Kind::Dgram => 2,
        };
        b[4..8].copy_from_slice(&self.sock.ip().octets());
        b[8..10].copy_from_slice(&self.sock.port().to_le_bytes());
        b[12..16].copy_from_slice(&self.qpn.to_le_bytes());
        b[16..20].copy_from_slice(&self.qkey.to_le_bytes());
        b[20..24].copy_from_slice(&self.pid.to_le_bytes());
        b[24..32].copy_from_slice(&self.host_id.to_le_bytes());
        b[32..40].copy_from_slice(&self.nonce.to_le_bytes());
        b
    }

    pub fn from_bytes(b: &[u8]) -> Result<EpAddr, AddrError> {
        if b.len() < ADDR_LEN {
            return Err(AddrError::Truncated);
        }
        if b[0] != ADDR_VERSION {
            return Err(AddrError::Version(b[0]));
        }
        let kind = match b[1] {
            1 => Kind::Rdm,
            2 => Kind::Dgram,
            k => return Err(AddrError::Kind(k)),
        };
        let u16_at = |i: usize| u16::from_le_bytes([b[i], b[i + 1]]);
        let u32_at = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let u64_at = |i: usize| {
            let mut a = [0u8; 8];
            a.copy_from_slice(&b[i..i + 8]);
            u64::from_le_bytes(a)
        };
        Ok(EpAddr {
            kind,
            sock: SocketAddrV4::new(Ipv4Addr::new(b[4], b[5], b[6], b[7]), u16_at(8)),
            qpn: u32_at(12),
            qkey: u32_at(16),
            host_id: u64_at(24),
            nonce: u64_at(32),
            pid: u32_at(20),
        })
    }

    /// Parses the FI_ADDR_STR form (with or without a trailing NUL).
    pub fn from_str_form(s: &str) -> Result<EpAddr, AddrError> {
        let s = s.trim_end_matches('\0');
        let rest = s.strip_prefix("fi_srd://").ok_or(AddrError::Syntax)?;
        let mut parts = rest.split('/');
        let sock: SocketAddrV4 = parts
            .next()
            .and_then(|p| p.parse().ok())
            .ok_or(AddrError::Syntax)?;
        let mut num = |radix: u32| {
            parts
                .next()
                .and_then(|p| u64::from_str_radix(p, radix).ok())
                .ok_or(AddrError::Syntax)
        };
        let qpn = u32::try_from(num(10)?).map_err(|_| AddrError::Syntax)?;
        let qkey = u32::try_from(num(10)?).map_err(|_| AddrError::Syntax)?;
        let kind = match num(10)? {
            1 => Kind::Rdm,
            2 => Kind::Dgram,
            k => return Err(AddrError::Kind(k as u8)),
        };
        let host_id = num(16)?;
        let nonce = num(16)?;
        let pid = match parts.next() {
            None => 0,
            Some(p) => p.parse::<u32>().map_err(|_| AddrError::Syntax)?,
        };
        Ok(EpAddr {
            kind,
            sock,
            qpn,
            qkey,
            host_id,
            nonce,
            pid,
        })
    }
}

impl EpAddr {
    /// The address as an application sees it in `format`: the binary form,
    /// or for FI_ADDR_STR the string form with its terminating NUL.
    pub fn encode(&self, format: u32) -> Vec<u8> {
        if format == crate::bindings::FI_ADDR_STR {
            let mut v = self.to_string().into_bytes();
            v.push(0);
            v
        } else {
            self.to_bytes().to_vec()
        }
    }

    /// Parses an address given in `format` (a FI_ADDR_STR address ends at
    /// its first NUL, as a C string does).
    pub fn decode(format: u32, bytes: &[u8]) -> Option<EpAddr> {
        if format == crate::bindings::FI_ADDR_STR {
            let end = bytes.iter().position(|&c| c == 0).unwrap_or(bytes.len());
            EpAddr::from_str_form(std::str::from_utf8(&bytes[..end]).ok()?).ok()
        } else {
            EpAddr::from_bytes(bytes).ok()
        }
    }
}

impl fmt::Display for EpAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            Kind::Rdm => 1,
            Kind::Dgram => 2,
        };
        write!(
            f,
            "fi_srd://{}/{}/{}/{}/{:x}/{:x}",
            self.sock, self.qpn, self.qkey, kind, self.host_id, self.nonce
        )?;
        if self.pid != 0 {
            write!(f, "/{}", self.pid)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> EpAddr {
        EpAddr {
            kind: Kind::Rdm,
            sock: "10.1.2.3:45678".parse().unwrap(),
            qpn: 7,
            qkey: 0x1234_5678,
            host_id: 0xdead_beef_cafe_f00d,
            nonce: 42,
            pid: 0,
        }
    }

    #[test]
    fn binary_round_trip_and_rejections() {
        let a = sample();
        let b = a.to_bytes();
        assert_eq!(EpAddr::from_bytes(&b), Ok(a));
        assert_eq!(EpAddr::from_bytes(&b[..39]), Err(AddrError::Truncated));
        let mut v = b;
        v[0] = 9;
        assert_eq!(EpAddr::from_bytes(&v), Err(AddrError::Version(9)));
        let mut k = b;
        k[1] = 0;
        assert_eq!(EpAddr::from_bytes(&k), Err(AddrError::Kind(0)));
    }

    #[test]
    fn string_round_trip() {
        let a = sample();
        let s = a.to_string();
        assert_eq!(
            s,
            "fi_srd://10.1.2.3:45678/7/305419896/1/deadbeefcafef00d/2a"
        );
        assert_eq!(EpAddr::from_str_form(&s), Ok(a));
        assert_eq!(EpAddr::from_str_form(&(s.clone() + "\0")), Ok(a));
        assert_eq!(
            EpAddr::from_str_form("fi_srd://x/1"),
            Err(AddrError::Syntax)
        );
        assert_eq!(
            EpAddr::from_str_form("udp://1.2.3.4:5"),
            Err(AddrError::Syntax)
        );
    }
}
