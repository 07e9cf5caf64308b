//! srd-fabric: the libfabric provider `srd`.
//!
//! Layers (see docs/srd-spec.md and DESIGN §2): `wire` (checked packet views),
//! `srd` (the software SRD device, sans-IO, with its backends), `rdm` (the RDM
//! protocol, sans-IO), `fi` (libfabric objects) and `ffi` (the C boundary).

pub mod ffi;
pub mod fi;
pub mod rdm;
pub mod srd;
pub mod wire;
