//! fi_info->nic through the real libfabric core: every srd entry carries
//! its interface's NIC (device, bus and link attributes), fi_dupinfo copies
//! it through the provider's FI_DUP, fi_freeinfo releases both, and
//! fi_tostr prints it.

mod common;

use common::*;
use srd_fi::bindings as b;
use std::ffi::CStr;

#[test]
fn entries_carry_their_nic() {
    let list = getinfo(None, None, 0, Some(&hints(0))).expect("srd entries");
    let ifaces = srd_fi::io::udp::interfaces().unwrap();
    for i in list.iter() {
        assert!(!i.nic.is_null(), "entry without nic");
        // SAFETY: the provider fills all three attribute structs.
        let (dom, nic) = unsafe { (&*i.domain_attr, &*i.nic) };
        let (dev, bus, link) = unsafe { (&*nic.device_attr, &*nic.bus_attr, &*nic.link_attr) };
        let name = cstr(dom.name);
        assert_eq!(nic.fid.fclass, b::FI_CLASS_NIC as usize);
        assert_eq!(cstr(dev.name), name);
        assert_eq!(cstr(link.network_type), "Ethernet");
        let iface = ifaces.iter().find(|f| f.name == name).expect("interface");
        assert_eq!(cstr(link.address), iface.addr.to_string());
        assert_eq!(link.mtu, iface.mtu as usize);
        // Bus type as sysfs says: a PCI device somewhere above the netdev.
        let dev_path = std::fs::canonicalize(format!("/sys/class/net/{name}/device")).ok();
        let pci = dev_path.as_ref().and_then(|p| {
            p.ancestors()
                .find_map(|a| srd_fi::fi::nic::parse_bdf(a.file_name()?.to_str()?))
        });
        match pci {
            Some((d, bu, de, f)) => {
                assert_eq!(bus.bus_type, b::FI_BUS_PCI, "{name}");
                // SAFETY: FI_BUS_PCI selects the pci member.
                let p = unsafe { bus.attr.pci };
                assert_eq!(
                    (p.domain_id, p.bus_id, p.device_id, p.function_id),
                    (d, bu, de, f)
                );
                assert!(!dev.driver.is_null() && !dev.vendor_id.is_null());
            }
            None => assert_eq!(bus.bus_type, b::FI_BUS_UNKNOWN, "{name}"),
        }
    }
}

#[test]
fn dupinfo_copies_and_tostr_prints_the_nic() {
    let list = getinfo(None, None, 0, Some(&hints(b::FI_EP_RDM))).expect("srd entries");
    let orig = list.first();
    // SAFETY: orig is a valid entry; the copy is freed by InfoList.
    let dup = InfoList(unsafe { b::fi_dupinfo(orig) });
    assert!(!dup.0.is_null());
    let copy = dup.first();
    assert!(!copy.nic.is_null());
    assert_ne!(copy.nic, orig.nic, "FI_DUP makes a separate nic");
    // SAFETY: both nics are valid with all attributes.
    unsafe {
        assert_ne!((*copy.nic).device_attr, (*orig.nic).device_attr);
        assert_eq!(
            cstr((*(*copy.nic).device_attr).name),
            cstr((*(*orig.nic).device_attr).name)
        );
        assert_eq!(
            (*(*copy.nic).bus_attr).bus_type,
            (*(*orig.nic).bus_attr).bus_type
        );
        assert_eq!((*(*copy.nic).link_attr).mtu, (*(*orig.nic).link_attr).mtu);
    }
    // SAFETY: fi_tostr returns a static buffer valid until the next call.
    let text = unsafe {
        CStr::from_ptr(b::fi_tostr(
            copy as *const b::fi_info as *const _,
            b::FI_TYPE_INFO,
        ))
    }
    .to_string_lossy()
    .into_owned();
    // SAFETY: as above.
    let dom = cstr(unsafe { (*copy.domain_attr).name });
    assert!(
        text.contains("    nic:\n        fi_device_attr:\n"),
        "{text}"
    );
    assert!(
        text.contains(&format!("            name: {dom}\n")),
        "{text}"
    );
    assert!(text.contains("            bus_type: FI_BUS_"), "{text}");
    assert!(
        text.contains("            network_type: Ethernet\n"),
        "{text}"
    );
}
