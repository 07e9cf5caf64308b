//! The NIC behind a domain, as fi_info's `nic` attributes show it
//! (`struct fid_nic`: device, bus and link attributes), read from sysfs.
//!
//! Clients use the bus location to pick the NIC nearest to a process: Open
//! MPI's common ofi code looks the PCI address up in its hwloc topology and
//! prefers NICs whose CPU set intersects the rank's binding. An interface on
//! a PCI device (directly, or through a virtio device under it) reports
//! FI_BUS_PCI with domain/bus/device/function; virtual interfaces (lo, veth,
//! bridges) have no device and report FI_BUS_UNKNOWN.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

/// Where a NIC sits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Bus {
    #[default]
    Unknown,
    Pci {
        domain: u16,
        bus: u8,
        device: u8,
        function: u8,
    },
}

/// Link state as fi_link_attr says it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LinkState {
    #[default]
    Unknown,
    Down,
    Up,
}

/// Mirror of the three attribute structs of `struct fid_nic`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Nic {
    /// Interface name (the domain name).
    pub name: String,
    /// Kernel driver of the network device (e.g. virtio_net, mlx5_core).
    pub driver: Option<String>,
    /// PCI vendor and device ids and revision, as sysfs writes them ("0x1af4").
    pub vendor_id: Option<String>,
    pub device_id: Option<String>,
    pub device_version: Option<String>,
    pub bus: Bus,
    /// The interface's IPv4 address (what srd addresses carry).
    pub address: String,
    pub mtu: usize,
    /// Bits per second; 0 when the driver does not say.
    pub speed: usize,
    pub state: LinkState,
}

/// The network type every srd NIC reports.
pub const NETWORK_TYPE: &str = "Ethernet";

/// Parses a PCI address "dddd:bb:dd.f" (hex; as sysfs names device folders).
pub fn parse_bdf(s: &str) -> Option<(u16, u8, u8, u8)> {
    let (domain, rest) = s.split_once(':')?;
    let (bus, rest) = rest.split_once(':')?;
    let (device, function) = rest.split_once('.')?;
    if domain.len() != 4 || bus.len() != 2 || device.len() != 2 || function.len() != 1 {
        return None;
    }
    let device = u8::from_str_radix(device, 16).ok()?;
    let function = u8::from_str_radix(function, 16).ok()?;
    if device > 0x1f || function > 7 {
        return None;
    }
    Some((
        u16::from_str_radix(domain, 16).ok()?,
        u8::from_str_radix(bus, 16).ok()?,
        device,
        function,
    ))
}

fn read_trimmed(p: &Path) -> Option<String> {
    let s = std::fs::read_to_string(p).ok()?;
    let s = s.trim();
    (!s.is_empty()).then(|| s.to_string())
}

/// The nearest PCI device folder at or above `dev` (a resolved device path):
/// a virtio NIC's device is `.../0000:00:03.0/virtio2`.
fn pci_ancestor(dev: &Path) -> Option<(PathBuf, (u16, u8, u8, u8))> {
    dev.ancestors().find_map(|a| {
        let bdf = parse_bdf(a.file_name()?.to_str()?)?;
        Some((a.to_path_buf(), bdf))
    })
}

/// Reads the NIC of interface `iface` from a sysfs tree rooted at `sys`
/// (`/sys` on a live system; tests pass a fake tree). Missing files leave
/// fields unknown; nothing here fails.
pub fn probe_at(sys: &Path, iface: &str, addr: Ipv4Addr, mtu: usize) -> Nic {
    let net = sys.join("class/net").join(iface);
    let mut nic = Nic {
        name: iface.to_string(),
        address: addr.to_string(),
        mtu: read_trimmed(&net.join("mtu"))
            .and_then(|m| m.parse().ok())
            .unwrap_or(mtu),
        ..Nic::default()
    };
    // Mb/s; virtual devices answer EINVAL or -1.
    nic.speed = read_trimmed(&net.join("speed"))
        .and_then(|s| s.parse::<i64>().ok())
        .filter(|&s| s > 0)
        .map_or(0, |s| (s as usize).saturating_mul(1_000_000));
    nic.state = match read_trimmed(&net.join("carrier")).as_deref() {
        Some("1") => LinkState::Up,
        Some("0") => LinkState::Down,
        _ => match read_trimmed(&net.join("operstate")).as_deref() {
            Some("up") => LinkState::Up,
            Some("down") | Some("lowerlayerdown") => LinkState::Down,
            _ => LinkState::Unknown,
        },
    };
    // Virtual interfaces have no `device` link.
    let Ok(dev) = std::fs::canonicalize(net.join("device")) else {
        return nic;
    };
    nic.driver = std::fs::read_link(dev.join("driver"))
        .ok()
        .and_then(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()));
    if let Some((pci, (domain, bus, device, function))) = pci_ancestor(&dev) {
        nic.bus = Bus::Pci {
            domain,
            bus,
            device,
            function,
        };
        nic.vendor_id = read_trimmed(&pci.join("vendor"));
        nic.device_id = read_trimmed(&pci.join("device"));
        nic.device_version = read_trimmed(&pci.join("revision"));
    }
    nic
}

/// The NIC of `iface` on this system.
pub fn probe(iface: &str, addr: Ipv4Addr, mtu: usize) -> Nic {
    probe_at(Path::new("/sys"), iface, addr, mtu)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn write(p: &Path, s: &str) {
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, s).unwrap();
    }

    #[test]
    fn bdf_parsing() {
        assert_eq!(parse_bdf("0000:00:03.0"), Some((0, 0, 3, 0)));
        assert_eq!(parse_bdf("0001:af:1f.7"), Some((1, 0xaf, 0x1f, 7)));
        for bad in [
            "virtio2",
            "0000:00:03",
            "pci0000:00",
            "0000:00:20.0",
            "0000:00:03.8",
            "00:03.0",
        ] {
            assert_eq!(parse_bdf(bad), None, "{bad}");
        }
    }

    /// A fake sysfs: a virtio NIC under a PCI device, a PCI NIC directly,
    /// and a virtual interface without a device.
    #[test]
    fn sysfs_tree() {
        let root = std::env::temp_dir().join(format!("srd-nic-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let pci = root.join("devices/pci0000:00/0000:00:03.0");
        let virtio = pci.join("virtio2");
        write(&pci.join("vendor"), "0x1af4\n");
        write(&pci.join("device"), "0x1000\n");
        write(&pci.join("revision"), "0x00\n");
        std::fs::create_dir_all(&virtio).unwrap();
        std::fs::create_dir_all(root.join("bus/virtio/drivers/virtio_net")).unwrap();
        symlink(
            root.join("bus/virtio/drivers/virtio_net"),
            virtio.join("driver"),
        )
        .unwrap();
        let eth0 = root.join("class/net/eth0");
        write(&eth0.join("mtu"), "1400\n");
        write(&eth0.join("speed"), "-1\n");
        write(&eth0.join("carrier"), "1\n");
        symlink(&virtio, eth0.join("device")).unwrap();

        let mlx = root.join("devices/pci0000:80/0000:80:01.0/0002:af:00.1");
        write(&mlx.join("vendor"), "0x15b3\n");
        write(&mlx.join("device"), "0x1017\n");
        std::fs::create_dir_all(root.join("bus/pci/drivers/mlx5_core")).unwrap();
        symlink(root.join("bus/pci/drivers/mlx5_core"), mlx.join("driver")).unwrap();
        let ens = root.join("class/net/ens1f1");
        write(&ens.join("speed"), "100000\n");
        write(&ens.join("carrier"), "0\n");
        symlink(&mlx, ens.join("device")).unwrap();

        let veth = root.join("class/net/veth7");
        write(&veth.join("mtu"), "1500\n");
        write(&veth.join("operstate"), "up\n");

        let ip = Ipv4Addr::new(192, 0, 2, 7);
        let n = probe_at(&root, "eth0", ip, 9000);
        assert_eq!(
            n.bus,
            Bus::Pci {
                domain: 0,
                bus: 0,
                device: 3,
                function: 0
            }
        );
        assert_eq!(n.driver.as_deref(), Some("virtio_net"));
        assert_eq!(n.vendor_id.as_deref(), Some("0x1af4"));
        assert_eq!(n.device_id.as_deref(), Some("0x1000"));
        assert_eq!((n.mtu, n.speed, n.state), (1400, 0, LinkState::Up));
        assert_eq!(n.address, "192.0.2.7");

        let n = probe_at(&root, "ens1f1", ip, 9000);
        assert_eq!(
            n.bus,
            Bus::Pci {
                domain: 2,
                bus: 0xaf,
                device: 0,
                function: 1
            }
        );
        assert_eq!(n.driver.as_deref(), Some("mlx5_core"));
        assert_eq!(n.device_version, None);
        // No mtu file: the interface's MTU as given; 100 Gb/s in bits.
        assert_eq!(
            (n.mtu, n.speed, n.state),
            (9000, 100_000_000_000, LinkState::Down)
        );

        let n = probe_at(&root, "veth7", ip, 1500);
        assert_eq!((n.bus, n.driver.as_deref()), (Bus::Unknown, None));
        assert_eq!(n.state, LinkState::Up);
        // An interface sysfs does not know at all.
        let n = probe_at(&root, "gone0", ip, 1234);
        assert_eq!(
            (n.bus, n.mtu, n.state),
            (Bus::Unknown, 1234, LinkState::Unknown)
        );
        std::fs::remove_dir_all(&root).unwrap();
    }
}
