//! Fabric and domain objects.

use super::errno::{Error, Result};
use super::info::{FABRIC_NAME, Info};
use super::params::{self, Params};
use crate::bindings as b;
use crate::io::udp::{self as netif, Iface};
use std::sync::Arc;

/// An open fabric (fi_fabric).
#[derive(Debug)]
pub struct Fabric {
    pub api_version: u32,
}

impl Fabric {
    /// Opens the fabric named in `name` (ours is "srd"; NULL means ours).
    pub fn open(name: Option<&str>, api_version: u32) -> Result<Fabric> {
        match name {
            None => Ok(Fabric { api_version }),
            Some(n) if n == FABRIC_NAME => Ok(Fabric { api_version }),
            Some(_) => Err(Error::Inval),
        }
    }
}

/// An open domain (fi_domain): one interface, with the attributes the
/// application's fi_info asked for.
#[derive(Debug)]
pub struct Domain {
    pub fabric: Arc<Fabric>,
    pub mrs: super::mr::Registry,
    pub iface: Iface,
    pub info: Info,
    pub params: Params,
}

impl Domain {
    /// Opens the domain described by `info` (an entry we returned, maybe
    /// edited by the application).
    pub fn open(fabric: Arc<Fabric>, info: Info) -> Result<Domain> {
        let params = params::get().clone();
        let d = info.domain.as_ref().ok_or(Error::Inval)?;
        if let Some(f) = &info.fabric
            && f.name.as_deref().is_some_and(|n| n != FABRIC_NAME)
        {
            return Err(Error::Inval);
        }
        let name = d.name.as_deref().ok_or(Error::Inval)?;
        let iface = netif::interfaces()
            .unwrap_or_default()
            .into_iter()
            .find(|i| i.name == name)
            .ok_or(Error::Inval)?;
        if d.data_progress == b::FI_PROGRESS_AUTO {
            return Err(Error::Inval);
        }
        Ok(Domain {
            fabric,
            mrs: super::mr::Registry::default(),
            iface,
            info,
            params,
        })
    }

    /// Threading level in force.
    pub fn threading(&self) -> u32 {
        self.info
            .domain
            .as_ref()
            .map_or(b::FI_THREAD_SAFE, |d| d.threading)
    }

    /// mr_mode in force.
    pub fn mr_mode(&self) -> i32 {
        self.info.domain.as_ref().map_or(0, |d| d.mr_mode)
    }
}
