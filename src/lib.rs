//! srd-fabric: the libfabric provider `srd`.
//!
//! Layers, bottom up (docs/layers.md, DESIGN §2): `wire` (checked packet
//! views), `srd` (the software SRD device, sans-IO), `rdm` (the RDM
//! protocol, sans-IO), `io` (the device's I/O backends: UDP sockets,
//! shared-memory rings, CMA), `fi` (libfabric objects; the one place that
//! speaks libfabric's numbers) and `ffi` (the C boundary: `extern "C"`
//! entry points). Beside them, modules any layer may use: `mem` (caller
//! memory: the only unsafe code below `fi`) and `log`; and `bindings`, the
//! generated libfabric types, for `fi` and `ffi` only. `tests/layers.rs`
//! checks who imports whom.

#[allow(
    non_camel_case_types,
    non_snake_case,
    non_upper_case_globals,
    dead_code,
    unsafe_op_in_unsafe_fn,
    clippy::all
)]
pub mod bindings;
pub mod ffi;
pub mod fi;
pub mod io;
pub mod log;
pub mod mem;
pub mod rdm;
pub mod srd;
pub mod wire;
