//! The C boundary: entry points called by the shim in `ofi-shim/`, the
//! generated libfabric bindings, and the few types that wrap caller memory.
//!
//! Every `extern "C"` function here checks its pointers, catches panics and
//! returns a libfabric error code; the mapping of errors lives in `fi::errno`.
//! Ownership: objects handed to C are `Arc`s owned by their fid (see
//! `object`); fi_info lists are owned by the caller and freed by fi_freeinfo.

pub mod guard;
pub mod info;
pub mod nic;
pub mod object;
// Entry points take raw pointers from C by design; each checks them for NULL
// before use and documents its ownership rules.
#[allow(clippy::not_unsafe_ptr_arg_deref)]
pub mod objects;
#[allow(clippy::not_unsafe_ptr_arg_deref)]
pub mod prov;
#[allow(clippy::not_unsafe_ptr_arg_deref, clippy::too_many_arguments)]
pub mod rma;
#[allow(clippy::not_unsafe_ptr_arg_deref)]
pub mod wait;
