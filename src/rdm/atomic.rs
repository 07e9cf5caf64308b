//! Atomic operations of fi_atomic(3): which (op, datatype, kind) triples
//! this provider executes, and their execution at the target over byte
//! slices in native byte order (initiator and target share the ABI, as
//! libfabric assumes for atomics).
//!
//! Validity follows libfabric's software atomics (util/ofi_atomic): MIN,
//! MAX and the ordered compares (CSWAP_LE/LT/GE/GT) on real types only;
//! SUM, PROD, the logical ops, READ, WRITE, CSWAP and CSWAP_NE on every
//! arithmetic type including complex; bitwise ops and MSWAP on integers
//! only. Long double (x86 80-bit extended, 16 bytes in memory) and its
//! complex form are moved but not computed on here: READ and WRITE only.

/// An atomic operation (fi_atomic(3)'s fi_op).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AtomicOp {
    Min,
    Max,
    Sum,
    Prod,
    Lor,
    Land,
    Bor,
    Band,
    Lxor,
    Bxor,
    Read,
    Write,
    Cswap,
    CswapNe,
    CswapLe,
    CswapLt,
    CswapGe,
    CswapGt,
    Mswap,
}

/// An element type (fi_atomic(3)'s fi_datatype).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Datatype {
    Int8,
    Uint8,
    Int16,
    Uint16,
    Int32,
    Uint32,
    Int64,
    Uint64,
    Int128,
    Uint128,
    Float,
    Double,
    FloatComplex,
    DoubleComplex,
    LongDouble,
    LongDoubleComplex,
}

/// Which fi_atomic(3) function family: base (fi_atomic), fetch
/// (fi_fetch_atomic), compare (fi_compare_atomic).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AtomicKind {
    Write,
    Fetch,
    Compare,
}

impl AtomicOp {
    pub const ALL: [AtomicOp; 19] = [
        AtomicOp::Min,
        AtomicOp::Max,
        AtomicOp::Sum,
        AtomicOp::Prod,
        AtomicOp::Lor,
        AtomicOp::Land,
        AtomicOp::Bor,
        AtomicOp::Band,
        AtomicOp::Lxor,
        AtomicOp::Bxor,
        AtomicOp::Read,
        AtomicOp::Write,
        AtomicOp::Cswap,
        AtomicOp::CswapNe,
        AtomicOp::CswapLe,
        AtomicOp::CswapLt,
        AtomicOp::CswapGe,
        AtomicOp::CswapGt,
        AtomicOp::Mswap,
    ];

    /// The operation's code on the wire (its place in `ALL`).
    pub fn code(self) -> u8 {
        Self::ALL.iter().position(|&o| o == self).unwrap_or(0) as u8
    }

    pub fn from_code(c: u8) -> Option<Self> {
        Self::ALL.get(usize::from(c)).copied()
    }

    fn is_compare(self) -> bool {
        matches!(
            self,
            AtomicOp::Cswap
                | AtomicOp::CswapNe
                | AtomicOp::CswapLe
                | AtomicOp::CswapLt
                | AtomicOp::CswapGe
                | AtomicOp::CswapGt
                | AtomicOp::Mswap
        )
    }
}

impl Datatype {
    pub const ALL: [Datatype; 16] = [
        Datatype::Int8,
        Datatype::Uint8,
        Datatype::Int16,
        Datatype::Uint16,
        Datatype::Int32,
        Datatype::Uint32,
        Datatype::Int64,
        Datatype::Uint64,
        Datatype::Int128,
        Datatype::Uint128,
        Datatype::Float,
        Datatype::Double,
        Datatype::FloatComplex,
        Datatype::DoubleComplex,
        Datatype::LongDouble,
        Datatype::LongDoubleComplex,
    ];

    /// The datatype's code on the wire (its place in `ALL`).
    pub fn code(self) -> u8 {
        Self::ALL.iter().position(|&d| d == self).unwrap_or(0) as u8
    }

    pub fn from_code(c: u8) -> Option<Self> {
        Self::ALL.get(usize::from(c)).copied()
    }

    /// Bytes of one element (fi_atomic_attr.size).
    pub fn size(self) -> usize {
        match self {
            Datatype::Int8 | Datatype::Uint8 => 1,
            Datatype::Int16 | Datatype::Uint16 => 2,
            Datatype::Int32 | Datatype::Uint32 | Datatype::Float => 4,
            Datatype::Int64 | Datatype::Uint64 | Datatype::Double | Datatype::FloatComplex => 8,
            Datatype::Int128
            | Datatype::Uint128
            | Datatype::DoubleComplex
            | Datatype::LongDouble => 16,
            Datatype::LongDoubleComplex => 32,
        }
    }

    fn is_int(self) -> bool {
        matches!(
            self,
            Datatype::Int8
                | Datatype::Uint8
                | Datatype::Int16
                | Datatype::Uint16
                | Datatype::Int32
                | Datatype::Uint32
                | Datatype::Int64
                | Datatype::Uint64
                | Datatype::Int128
                | Datatype::Uint128
        )
    }

    fn is_long_double(self) -> bool {
        matches!(self, Datatype::LongDouble | Datatype::LongDoubleComplex)
    }

    fn is_complex(self) -> bool {
        matches!(self, Datatype::FloatComplex | Datatype::DoubleComplex)
    }
}

impl AtomicKind {
    pub fn to_wire(self) -> u8 {
        match self {
            AtomicKind::Write => 0,
            AtomicKind::Fetch => 1,
            AtomicKind::Compare => 2,
        }
    }

    pub fn from_wire(v: u8) -> Option<Self> {
        match v {
            0 => Some(AtomicKind::Write),
            1 => Some(AtomicKind::Fetch),
            2 => Some(AtomicKind::Compare),
            _ => None,
        }
    }
}

/// Whether this provider executes `op` on `dt` in the `kind` family
/// (independent of sizes; `Endpoint::atomic_valid` adds the count limit).
pub fn supported(op: AtomicOp, dt: Datatype, kind: AtomicKind) -> bool {
    let family = match kind {
        AtomicKind::Write => !op.is_compare() && op != AtomicOp::Read,
        AtomicKind::Fetch => !op.is_compare(),
        AtomicKind::Compare => op.is_compare(),
    };
    if !family {
        return false;
    }
    if dt.is_long_double() {
        return matches!(op, AtomicOp::Read | AtomicOp::Write);
    }
    match op {
        AtomicOp::Min
        | AtomicOp::Max
        | AtomicOp::CswapLe
        | AtomicOp::CswapLt
        | AtomicOp::CswapGe
        | AtomicOp::CswapGt => !dt.is_complex(),
        AtomicOp::Bor | AtomicOp::Band | AtomicOp::Bxor | AtomicOp::Mswap => dt.is_int(),
        _ => true,
    }
}

/// Bytes of operands an RTA of `kind` carries for `count` elements.
pub fn operand_len(op: AtomicOp, dt: Datatype, kind: AtomicKind, count: usize) -> usize {
    let n = if op == AtomicOp::Read {
        0
    } else {
        count * dt.size()
    };
    if kind == AtomicKind::Compare {
        2 * n
    } else {
        n
    }
}

/// Arithmetic on one element type.
trait Elem: Copy {
    const SIZE: usize;
    fn load(b: &[u8]) -> Self;
    fn store(self, b: &mut [u8]);
    fn add(self, o: Self) -> Self;
    fn mul(self, o: Self) -> Self;
    fn truth(self) -> bool;
    fn from_bool(v: bool) -> Self;
    fn eq(self, o: Self) -> bool;
    /// `None`: unordered (complex, or NaN involved).
    fn lt(self, o: Self) -> bool;
    fn le(self, o: Self) -> bool;
    fn bor(self, o: Self) -> Self;
    fn band(self, o: Self) -> Self;
    fn bxor(self, o: Self) -> Self;
    fn bnot(self) -> Self;
}

macro_rules! int_elem {
    ($t:ty) => {
        impl Elem for $t {
            const SIZE: usize = std::mem::size_of::<$t>();
            fn load(b: &[u8]) -> Self {
                let mut a = [0u8; std::mem::size_of::<$t>()];
                a.copy_from_slice(&b[..Self::SIZE]);
                <$t>::from_ne_bytes(a)
            }
            fn store(self, b: &mut [u8]) {
                b[..Self::SIZE].copy_from_slice(&self.to_ne_bytes());
            }
            fn add(self, o: Self) -> Self {
                self.wrapping_add(o)
            }
            fn mul(self, o: Self) -> Self {
                self.wrapping_mul(o)
            }
            fn truth(self) -> bool {
                self != 0
            }
            fn from_bool(v: bool) -> Self {
                v as $t
            }
            fn eq(self, o: Self) -> bool {
                self == o
            }
            fn lt(self, o: Self) -> bool {
                self < o
            }
            fn le(self, o: Self) -> bool {
                self <= o
            }
            fn bor(self, o: Self) -> Self {
                self | o
            }
            fn band(self, o: Self) -> Self {
                self & o
            }
            fn bxor(self, o: Self) -> Self {
                self ^ o
            }
            fn bnot(self) -> Self {
                !self
            }
        }
    };
}

int_elem!(i8);
int_elem!(u8);
int_elem!(i16);
int_elem!(u16);
int_elem!(i32);
int_elem!(u32);
int_elem!(i64);
int_elem!(u64);
int_elem!(i128);
int_elem!(u128);

macro_rules! float_elem {
    ($t:ty) => {
        impl Elem for $t {
            const SIZE: usize = std::mem::size_of::<$t>();
            fn load(b: &[u8]) -> Self {
                let mut a = [0u8; std::mem::size_of::<$t>()];
                a.copy_from_slice(&b[..Self::SIZE]);
                <$t>::from_ne_bytes(a)
            }
            fn store(self, b: &mut [u8]) {
                b[..Self::SIZE].copy_from_slice(&self.to_ne_bytes());
            }
            fn add(self, o: Self) -> Self {
                self + o
            }
            fn mul(self, o: Self) -> Self {
                self * o
            }
            fn truth(self) -> bool {
                self != 0.0
            }
            fn from_bool(v: bool) -> Self {
                if v { 1.0 } else { 0.0 }
            }
            fn eq(self, o: Self) -> bool {
                self == o
            }
            fn lt(self, o: Self) -> bool {
                self < o
            }
            fn le(self, o: Self) -> bool {
                self <= o
            }
            // Never called: `supported` keeps bitwise ops off floats.
            fn bor(self, o: Self) -> Self {
                <$t>::from_bits(self.to_bits() | o.to_bits())
            }
            fn band(self, o: Self) -> Self {
                <$t>::from_bits(self.to_bits() & o.to_bits())
            }
            fn bxor(self, o: Self) -> Self {
                <$t>::from_bits(self.to_bits() ^ o.to_bits())
            }
            fn bnot(self) -> Self {
                <$t>::from_bits(!self.to_bits())
            }
        }
    };
}

float_elem!(f32);
float_elem!(f64);

/// A complex number: (real, imaginary), each IEEE 754.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Cplx<F>(F, F);

macro_rules! complex_elem {
    ($t:ty) => {
        impl Elem for Cplx<$t> {
            const SIZE: usize = 2 * std::mem::size_of::<$t>();
            fn load(b: &[u8]) -> Self {
                let h = Self::SIZE / 2;
                Cplx(<$t>::load(&b[..h]), <$t>::load(&b[h..]))
            }
            fn store(self, b: &mut [u8]) {
                let h = Self::SIZE / 2;
                self.0.store(&mut b[..h]);
                self.1.store(&mut b[h..]);
            }
            fn add(self, o: Self) -> Self {
                Cplx(self.0 + o.0, self.1 + o.1)
            }
            fn mul(self, o: Self) -> Self {
                Cplx(self.0 * o.0 - self.1 * o.1, self.0 * o.1 + self.1 * o.0)
            }
            fn truth(self) -> bool {
                self.0 != 0.0 || self.1 != 0.0
            }
            fn from_bool(v: bool) -> Self {
                Cplx(if v { 1.0 } else { 0.0 }, 0.0)
            }
            fn eq(self, o: Self) -> bool {
                self.0 == o.0 && self.1 == o.1
            }
            // Never called: `supported` keeps orderings and bitwise ops
            // off complex types.
            fn lt(self, _: Self) -> bool {
                false
            }
            fn le(self, _: Self) -> bool {
                false
            }
            fn bor(self, _: Self) -> Self {
                self
            }
            fn band(self, _: Self) -> Self {
                self
            }
            fn bxor(self, _: Self) -> Self {
                self
            }
            fn bnot(self) -> Self {
                self
            }
        }
    };
}

complex_elem!(f32);
complex_elem!(f64);

/// New value of one element, or `None` to leave it.
fn apply<T: Elem>(op: AtomicOp, cur: T, buf: T, cmp: T) -> Option<T> {
    Some(match op {
        AtomicOp::Min => {
            if buf.lt(cur) {
                buf
            } else {
                return None;
            }
        }
        AtomicOp::Max => {
            if cur.lt(buf) {
                buf
            } else {
                return None;
            }
        }
        AtomicOp::Sum => cur.add(buf),
        AtomicOp::Prod => cur.mul(buf),
        AtomicOp::Lor => T::from_bool(cur.truth() || buf.truth()),
        AtomicOp::Land => T::from_bool(cur.truth() && buf.truth()),
        AtomicOp::Lxor => T::from_bool(cur.truth() != buf.truth()),
        AtomicOp::Bor => cur.bor(buf),
        AtomicOp::Band => cur.band(buf),
        AtomicOp::Bxor => cur.bxor(buf),
        AtomicOp::Read => return None,
        AtomicOp::Write => buf,
        AtomicOp::Cswap => return cmp.eq(cur).then_some(buf),
        AtomicOp::CswapNe => return (!cmp.eq(cur)).then_some(buf),
        AtomicOp::CswapLe => return cmp.le(cur).then_some(buf),
        AtomicOp::CswapLt => return cmp.lt(cur).then_some(buf),
        AtomicOp::CswapGe => return cur.le(cmp).then_some(buf),
        AtomicOp::CswapGt => return cur.lt(cmp).then_some(buf),
        AtomicOp::Mswap => buf.band(cmp).bor(cur.band(cmp.bnot())),
    })
}

fn run<T: Elem>(op: AtomicOp, target: &mut [u8], operand: &[u8], compare: &[u8]) {
    for (i, t) in target.chunks_exact_mut(T::SIZE).enumerate() {
        let cur = T::load(t);
        let at = i * T::SIZE;
        let buf = if operand.is_empty() {
            cur
        } else {
            T::load(&operand[at..])
        };
        let cmp = if compare.is_empty() {
            cur
        } else {
            T::load(&compare[at..])
        };
        if let Some(v) = apply(op, cur, buf, cmp) {
            v.store(t);
        }
    }
}

/// Executes `op` over `target` (count × size bytes, updated in place).
/// `operand` holds one value per element (empty for READ), `compare` one
/// per element for compare ops (empty otherwise). The caller checked
/// `supported` and the lengths; the old values are whatever `target` held
/// before the call.
pub fn execute(op: AtomicOp, dt: Datatype, target: &mut [u8], operand: &[u8], compare: &[u8]) {
    match dt {
        Datatype::Int8 => run::<i8>(op, target, operand, compare),
        Datatype::Uint8 => run::<u8>(op, target, operand, compare),
        Datatype::Int16 => run::<i16>(op, target, operand, compare),
        Datatype::Uint16 => run::<u16>(op, target, operand, compare),
        Datatype::Int32 => run::<i32>(op, target, operand, compare),
        Datatype::Uint32 => run::<u32>(op, target, operand, compare),
        Datatype::Int64 => run::<i64>(op, target, operand, compare),
        Datatype::Uint64 => run::<u64>(op, target, operand, compare),
        Datatype::Int128 => run::<i128>(op, target, operand, compare),
        Datatype::Uint128 => run::<u128>(op, target, operand, compare),
        Datatype::Float => run::<f32>(op, target, operand, compare),
        Datatype::Double => run::<f64>(op, target, operand, compare),
        Datatype::FloatComplex => run::<Cplx<f32>>(op, target, operand, compare),
        Datatype::DoubleComplex => run::<Cplx<f64>>(op, target, operand, compare),
        Datatype::LongDouble | Datatype::LongDoubleComplex => {
            // READ and WRITE only: a byte move.
            if op == AtomicOp::Write && operand.len() == target.len() {
                target.copy_from_slice(operand);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_codes_round_trip() {
        for op in AtomicOp::ALL {
            assert_eq!(AtomicOp::from_code(op.code()), Some(op));
        }
        for dt in Datatype::ALL {
            assert_eq!(Datatype::from_code(dt.code()), Some(dt));
        }
        assert_eq!(AtomicOp::from_code(19), None);
        assert_eq!(Datatype::from_code(16), None);
        // docs/srd-spec.md §18 lists these codes.
        assert_eq!(AtomicOp::Read.code(), 10);
        assert_eq!(AtomicOp::Mswap.code(), 18);
        assert_eq!(Datatype::Float.code(), 10);
        assert_eq!(Datatype::LongDoubleComplex.code(), 15);
    }

    #[test]
    fn validity_table() {
        use AtomicKind::*;
        assert!(supported(AtomicOp::Sum, Datatype::DoubleComplex, Write));
        assert!(!supported(AtomicOp::Min, Datatype::FloatComplex, Write));
        assert!(!supported(AtomicOp::Bor, Datatype::Double, Fetch));
        assert!(supported(AtomicOp::Lor, Datatype::Float, Fetch));
        assert!(!supported(AtomicOp::Read, Datatype::Int32, Write));
        assert!(supported(AtomicOp::Read, Datatype::Int32, Fetch));
        assert!(!supported(AtomicOp::Cswap, Datatype::Int32, Fetch));
        assert!(supported(AtomicOp::Mswap, Datatype::Uint64, Compare));
        assert!(!supported(AtomicOp::Mswap, Datatype::Float, Compare));
        assert!(!supported(
            AtomicOp::CswapLt,
            Datatype::FloatComplex,
            Compare
        ));
        assert!(supported(
            AtomicOp::CswapNe,
            Datatype::FloatComplex,
            Compare
        ));
        assert!(supported(AtomicOp::Write, Datatype::LongDouble, Write));
        assert!(!supported(AtomicOp::Sum, Datatype::LongDouble, Write));
    }

    #[test]
    fn executes_examples() {
        let mut t = 5i32.to_ne_bytes();
        execute(
            AtomicOp::Sum,
            Datatype::Int32,
            &mut t,
            &7i32.to_ne_bytes(),
            &[],
        );
        assert_eq!(i32::from_ne_bytes(t), 12);
        execute(
            AtomicOp::CswapGt,
            Datatype::Int32,
            &mut t,
            &1i32.to_ne_bytes(),
            &20i32.to_ne_bytes(),
        );
        assert_eq!(i32::from_ne_bytes(t), 1, "20 > 12: swapped");
    }
}
