//! libfabric's numbers and the protocol's types, both ways, in one place:
//! operation flags, completion flags, access rights, completion errors and
//! atomic operations and datatypes. The layers below speak only their own
//! types (`rdm::{OpFlags, CompFlags, Access, ErrorKind, AtomicOp,
//! Datatype}`); every fi_* call converts here on the way in and every
//! completion on the way out.
//!
//! Beware of the bits libfabric reuses across contexts: FI_CLAIM has the
//! value of FI_DIRECTED_RECV and FI_DISCARD that of FI_MSG_PREFIX, so
//! `op_flags` must only be given operation flags (the `flags` of an fi_*msg
//! call), never capabilities or modes.

use crate::bindings as b;
use crate::rdm::{Access, AtomicOp, CompFlags, Datatype, ErrorKind, OpFlags};

/// Operation flags the protocol acts on, and their libfabric bits.
const OP: [(OpFlags, u64); 9] = [
    (OpFlags::COMPLETION, b::FI_COMPLETION),
    (OpFlags::INJECT, b::FI_INJECT),
    (OpFlags::INJECT_COMPLETE, b::FI_INJECT_COMPLETE),
    (OpFlags::TRANSMIT_COMPLETE, b::FI_TRANSMIT_COMPLETE),
    (OpFlags::DELIVERY_COMPLETE, b::FI_DELIVERY_COMPLETE),
    (OpFlags::MULTI_RECV, b::FI_MULTI_RECV),
    (OpFlags::PEEK, b::FI_PEEK),
    (OpFlags::CLAIM, b::FI_CLAIM),
    (OpFlags::DISCARD, b::FI_DISCARD),
];

const COMP: [(CompFlags, u64); 12] = [
    (CompFlags::SEND, b::FI_SEND),
    (CompFlags::RECV, b::FI_RECV),
    (CompFlags::MSG, b::FI_MSG),
    (CompFlags::TAGGED, b::FI_TAGGED),
    (CompFlags::RMA, b::FI_RMA),
    (CompFlags::ATOMIC, b::FI_ATOMIC),
    (CompFlags::READ, b::FI_READ),
    (CompFlags::WRITE, b::FI_WRITE),
    (CompFlags::REMOTE_READ, b::FI_REMOTE_READ),
    (CompFlags::REMOTE_WRITE, b::FI_REMOTE_WRITE),
    (CompFlags::REMOTE_CQ_DATA, b::FI_REMOTE_CQ_DATA),
    (CompFlags::MULTI_RECV, b::FI_MULTI_RECV),
];

const ACCESS: [(Access, u64); 2] = [
    (Access::REMOTE_READ, b::FI_REMOTE_READ),
    (Access::REMOTE_WRITE, b::FI_REMOTE_WRITE),
];

fn from_bits<F: bitflags::Flags + Copy>(table: &[(F, u64)], v: u64) -> F {
    let mut out = F::empty();
    for &(f, bit) in table {
        if v & bit != 0 {
            out.insert(f);
        }
    }
    out
}

fn to_bits<F: bitflags::Flags + Copy>(table: &[(F, u64)], f: F) -> u64 {
    table
        .iter()
        .filter(|(g, _)| f.contains(*g))
        .fold(0, |acc, &(_, bit)| acc | bit)
}

/// The operation flags of an fi_* call (other bits are not the protocol's
/// business and are ignored).
pub fn op_flags(v: u64) -> OpFlags {
    from_bits(&OP, v)
}

pub fn op_flags_to_fi(f: OpFlags) -> u64 {
    to_bits(&OP, f)
}

/// The flags of a completion entry.
/// By table (this runs once per completion): the low and the high six
/// bits of the flags each index the libfabric bits they stand for.
pub fn comp_flags_to_fi(f: CompFlags) -> u64 {
    let v = f.bits() as usize;
    COMP_LO[v & 63] | COMP_HI[(v >> 6) & 63]
}

const _: () = assert!(CompFlags::all().bits() < 1 << 12);
const COMP_LO: [u64; 64] = comp_table(0);
const COMP_HI: [u64; 64] = comp_table(6);

const fn comp_table(shift: u32) -> [u64; 64] {
    let mut t = [0u64; 64];
    let mut i = 0;
    while i < 64 {
        let mut j = 0;
        while j < COMP.len() {
            if COMP[j].0.bits() & ((i as u32) << shift) != 0 {
                t[i] |= COMP[j].1;
            }
            j += 1;
        }
        i += 1;
    }
    t
}

pub fn comp_flags(v: u64) -> CompFlags {
    from_bits(&COMP, v)
}

/// MR access bits as the protocol's access rights (remote ones only).
pub fn access(v: u64) -> Access {
    from_bits(&ACCESS, v)
}

pub fn access_to_fi(a: Access) -> u64 {
    to_bits(&ACCESS, a)
}

/// The positive FI_E* value of a completion error.
pub fn errno(k: ErrorKind) -> i32 {
    match k {
        ErrorKind::Unreachable => b::FI_EHOSTUNREACH,
        ErrorKind::Io => b::FI_EIO,
        ErrorKind::Truncated => b::FI_ETRUNC as i32,
        ErrorKind::Canceled => b::FI_ECANCELED,
        ErrorKind::AddrNotAvail => b::FI_EADDRNOTAVAIL,
        ErrorKind::TimedOut => b::FI_ETIMEDOUT,
        ErrorKind::AccessDenied => b::FI_EACCES,
        ErrorKind::InvalidArgument => b::FI_EINVAL,
        ErrorKind::NotSupported => b::FI_EOPNOTSUPP,
        ErrorKind::NoMessage => b::FI_ENOMSG,
    }
}

/// The error a positive FI_E* value stands for, if the protocol has one.
pub fn error_kind(errno: i32) -> Option<ErrorKind> {
    ErrorKind::ALL
        .into_iter()
        .find(|&k| self::errno(k) == errno)
}

pub fn atomic_op(v: u32) -> Option<AtomicOp> {
    AtomicOp::ALL.into_iter().find(|&o| atomic_op_to_fi(o) == v)
}

pub fn atomic_op_to_fi(o: AtomicOp) -> u32 {
    match o {
        AtomicOp::Min => b::FI_MIN,
        AtomicOp::Max => b::FI_MAX,
        AtomicOp::Sum => b::FI_SUM,
        AtomicOp::Prod => b::FI_PROD,
        AtomicOp::Lor => b::FI_LOR,
        AtomicOp::Land => b::FI_LAND,
        AtomicOp::Bor => b::FI_BOR,
        AtomicOp::Band => b::FI_BAND,
        AtomicOp::Lxor => b::FI_LXOR,
        AtomicOp::Bxor => b::FI_BXOR,
        AtomicOp::Read => b::FI_ATOMIC_READ,
        AtomicOp::Write => b::FI_ATOMIC_WRITE,
        AtomicOp::Cswap => b::FI_CSWAP,
        AtomicOp::CswapNe => b::FI_CSWAP_NE,
        AtomicOp::CswapLe => b::FI_CSWAP_LE,
        AtomicOp::CswapLt => b::FI_CSWAP_LT,
        AtomicOp::CswapGe => b::FI_CSWAP_GE,
        AtomicOp::CswapGt => b::FI_CSWAP_GT,
        AtomicOp::Mswap => b::FI_MSWAP,
    }
}

pub fn datatype(v: u32) -> Option<Datatype> {
    Datatype::ALL.into_iter().find(|&d| datatype_to_fi(d) == v)
}

pub fn datatype_to_fi(d: Datatype) -> u32 {
    match d {
        Datatype::Int8 => b::FI_INT8,
        Datatype::Uint8 => b::FI_UINT8,
        Datatype::Int16 => b::FI_INT16,
        Datatype::Uint16 => b::FI_UINT16,
        Datatype::Int32 => b::FI_INT32,
        Datatype::Uint32 => b::FI_UINT32,
        Datatype::Int64 => b::FI_INT64,
        Datatype::Uint64 => b::FI_UINT64,
        Datatype::Int128 => b::FI_INT128,
        Datatype::Uint128 => b::FI_UINT128,
        Datatype::Float => b::FI_FLOAT,
        Datatype::Double => b::FI_DOUBLE,
        Datatype::FloatComplex => b::FI_FLOAT_COMPLEX,
        Datatype::DoubleComplex => b::FI_DOUBLE_COMPLEX,
        Datatype::LongDouble => b::FI_LONG_DOUBLE,
        Datatype::LongDoubleComplex => b::FI_LONG_DOUBLE_COMPLEX,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    /// Every flag of `F` has exactly one libfabric bit, distinct from the
    /// others', and every subset converts both ways unchanged.
    fn exhaustive<F>(table: &[(F, u64)], from: fn(u64) -> F, to: fn(F) -> u64)
    where
        F: bitflags::Flags + Copy + PartialEq + std::fmt::Debug,
    {
        let all: Vec<F> = F::FLAGS.iter().map(|f| *f.value()).collect();
        assert_eq!(all.len(), table.len(), "every flag is in the table");
        let bits: HashSet<u64> = table.iter().map(|t| t.1).collect();
        assert_eq!(bits.len(), table.len(), "libfabric bits are distinct");
        for &(_, bit) in table {
            assert_eq!(bit.count_ones(), 1);
        }
        for mask in 0u32..(1 << table.len()) {
            let mut f = F::empty();
            let mut v = 0;
            for (i, &(g, bit)) in table.iter().enumerate() {
                if mask & (1 << i) != 0 {
                    f.insert(g);
                    v |= bit;
                }
            }
            assert_eq!(to(f), v);
            assert_eq!(from(v), f);
        }
    }

    #[test]
    fn op_flags_both_ways() {
        exhaustive(&OP, op_flags, op_flags_to_fi);
        // Capability and mode bits that are not operation flags are ignored.
        assert_eq!(
            op_flags(b::FI_TAGGED | b::FI_REMOTE_CQ_DATA | b::FI_SOURCE),
            OpFlags::empty()
        );
    }

    #[test]
    fn comp_flags_both_ways() {
        exhaustive(&COMP, comp_flags, comp_flags_to_fi);
    }

    #[test]
    fn access_both_ways() {
        exhaustive(&ACCESS, access, access_to_fi);
        assert_eq!(access(b::FI_READ | b::FI_WRITE), Access::empty());
    }

    #[test]
    fn errors_both_ways() {
        let mut seen = HashSet::new();
        for k in ErrorKind::ALL {
            let e = errno(k);
            assert!(e > 0 && seen.insert(e), "{k:?}: distinct positive errno");
            assert_eq!(error_kind(e), Some(k));
        }
        assert_eq!(error_kind(b::FI_EAGAIN), None);
    }

    #[test]
    fn atomics_both_ways() {
        let mut seen = HashSet::new();
        for o in AtomicOp::ALL {
            assert!(seen.insert(atomic_op_to_fi(o)));
            assert_eq!(atomic_op(atomic_op_to_fi(o)), Some(o));
        }
        assert_eq!(seen.len(), b::FI_ATOMIC_OP_LAST as usize, "every fi_op");
        let mut seen = HashSet::new();
        for d in Datatype::ALL {
            assert!(seen.insert(datatype_to_fi(d)));
            assert_eq!(datatype(datatype_to_fi(d)), Some(d));
        }
        assert_eq!(atomic_op(b::FI_ATOMIC_OP_LAST), None);
        assert_eq!(datatype(999), None);
    }
}
