//! The provider through the real libfabric core: loading, fi_getinfo with
//! hints, fabric and domain lifetime, argument checking.

mod common;

use common::*;
use srd_fi::bindings as b;
use std::process::Command;

const ENODATA: i32 = -(b::FI_ENODATA);
const EINVAL: i32 = -(b::FI_EINVAL);
const EBUSY: i32 = -(b::FI_EBUSY);
const ENOSYS: i32 = -(b::FI_ENOSYS);

#[test]
fn core_lists_rdm_and_dgram_per_interface() {
    let h = hints(0);
    // SAFETY: h is a valid fi_info we own.
    unsafe { (*h.0).mode = b::FI_CONTEXT | b::FI_MSG_PREFIX };
    let list = getinfo(None, None, 0, Some(&h)).expect("srd entries");
    let mut rdm_domains = vec![];
    let mut dgram_domains = vec![];
    for i in list.iter() {
        // SAFETY: returned entries carry all attribute structs.
        let (fab, dom, ep) = unsafe { (&*i.fabric_attr, &*i.domain_attr, &*i.ep_attr) };
        assert_eq!(cstr(fab.prov_name), "srd", "core fills prov_name");
        assert_eq!(cstr(fab.name), "srd");
        assert_eq!(i.addr_format, b::FI_FORMAT_UNSPEC);
        assert_eq!(i.src_addrlen, 40);
        match ep.type_ {
            t if t == b::FI_EP_RDM => rdm_domains.push(cstr(dom.name)),
            t if t == b::FI_EP_DGRAM => dgram_domains.push(cstr(dom.name)),
            t => panic!("unexpected endpoint type {t}"),
        }
    }
    // Loopback is listed only when nothing routable is up (ranks spread over
    // entries must publish reachable addresses) or when asked for by name.
    let routable = srd_fi::io::udp::interfaces()
        .unwrap()
        .iter()
        .any(|i| i.is_up && !i.is_loopback);
    assert_eq!(
        rdm_domains.contains(&"lo".to_string()),
        !routable,
        "{rdm_domains:?}"
    );
    let lo_hints = hints(b::FI_EP_RDM);
    // SAFETY: lo_hints is a valid fi_info we own; the name is freed with it.
    unsafe { (*(*lo_hints.0).domain_attr).name = libc::strdup(c"lo".as_ptr()) };
    let lo = getinfo(None, None, 0, Some(&lo_hints)).expect("lo by name");
    // SAFETY: returned entries carry their attributes.
    assert!(
        lo.iter()
            .all(|i| cstr(unsafe { (*i.domain_attr).name }) == "lo")
    );
    for d in &rdm_domains {
        assert_eq!(
            dgram_domains.iter().filter(|x| *x == d).count(),
            2,
            "dgram +/- prefix for {d}"
        );
    }
    // Without FI_MSG_PREFIX in the application's mode, only the plain DGRAM
    // entry is offered.
    let plain = getinfo(None, None, 0, Some(&hints(b::FI_EP_DGRAM))).unwrap();
    assert!(plain.iter().all(|i| i.mode & b::FI_MSG_PREFIX == 0));
    assert_eq!(plain.iter().count(), rdm_domains.len());
}

#[test]
fn unsatisfiable_hints_get_enodata() {
    // A MSG endpoint.
    let h = hints(b::FI_EP_MSG);
    assert_eq!(getinfo(None, None, 0, Some(&h)).err(), Some(ENODATA));
    // A domain that is not there.
    let h = hints(b::FI_EP_RDM);
    // SAFETY: h's attrs are valid; the string is freed by fi_freeinfo.
    unsafe { (*(*h.0).domain_attr).name = libc::strdup(c"nosuchif0".as_ptr()) };
    assert_eq!(getinfo(None, None, 0, Some(&h)).err(), Some(ENODATA));
    // Automatic data progress.
    let h = hints(b::FI_EP_RDM);
    // SAFETY: as above.
    unsafe { (*(*h.0).domain_attr).data_progress = b::FI_PROGRESS_AUTO };
    assert_eq!(getinfo(None, None, 0, Some(&h)).err(), Some(ENODATA));
    // A capability we do not have.
    let h = hints(0);
    // SAFETY: as above.
    unsafe { (*h.0).caps = b::FI_COLLECTIVE };
    assert_eq!(getinfo(None, None, 0, Some(&h)).err(), Some(ENODATA));
}

#[test]
fn source_node_picks_the_interface() {
    let list = getinfo(
        Some("127.0.0.1"),
        Some("0"),
        b::FI_SOURCE,
        Some(&hints(b::FI_EP_DGRAM)),
    )
    .expect("loopback entry");
    for i in list.iter() {
        // SAFETY: as above.
        assert_eq!(cstr(unsafe { (*i.domain_attr).name }), "lo");
    }
}

#[test]
fn fabric_and_domain_open_and_close() {
    let list = getinfo(None, None, 0, Some(&hints(b::FI_EP_RDM))).unwrap();
    let info = list.0;
    // SAFETY: info is the first entry of a returned list.
    let fab = fabric(unsafe { &*info }).expect("fi_fabric");
    let dom = domain(fab, info).expect("fi_domain");
    // The fabric is busy while its domain is open.
    assert_eq!(close(fid_of(fab)), EBUSY);
    assert_eq!(close(fid_of(dom)), 0);
    assert_eq!(close(fid_of(fab)), 0);
}

#[test]
fn bad_arguments_are_einval_not_crashes() {
    let list = getinfo(None, None, 0, Some(&hints(b::FI_EP_RDM))).unwrap();
    // SAFETY: as above.
    let fab = fabric(unsafe { &*list.0 }).unwrap();
    assert_eq!(domain(fab, null()).err(), Some(EINVAL));
    // A domain named after no interface.
    // SAFETY: dupinfo of a valid entry; we own the copy.
    let copy = InfoList(unsafe { b::fi_dupinfo(list.0) });
    // SAFETY: copy's domain_attr is valid; name is malloc'd.
    unsafe {
        libc::free((*(*copy.0).domain_attr).name as *mut _);
        (*(*copy.0).domain_attr).name = libc::strdup(c"nosuchif0".as_ptr());
    }
    assert_eq!(domain(fab, copy.0).err(), Some(EINVAL));
    // NULL output pointer through the ops table.
    // SAFETY: fab is open; the provider must reject the NULL out-pointer.
    let rc = unsafe { ((*(*fab).ops).domain.unwrap())(fab, list.0, null(), void()) };
    assert_eq!(rc, EINVAL);
    // fi_fabric with another fabric's name.
    // SAFETY: fabric_attr of a dup we own.
    let other = InfoList(unsafe { b::fi_dupinfo(list.0) });
    unsafe {
        libc::free((*(*other.0).fabric_attr).name as *mut _);
        (*(*other.0).fabric_attr).name = libc::strdup(c"ib-fabric".as_ptr());
    }
    // SAFETY: valid attr.
    assert!(fabric(unsafe { &*other.0 }).is_err());
    assert_eq!(close(fid_of(fab)), 0);
}

#[test]
fn operations_not_built_are_enosys() {
    let list = getinfo(None, None, 0, Some(&hints(b::FI_EP_RDM))).unwrap();
    // SAFETY: as above.
    let fab = fabric(unsafe { &*list.0 }).unwrap();
    let dom = domain(fab, list.0).unwrap();
    let mut pep = null();
    // SAFETY: fabric ops table is fully populated.
    let rc = unsafe { ((*(*fab).ops).passive_ep.unwrap())(fab, list.0, &mut pep, void()) };
    assert_eq!(rc, ENOSYS);
    let mut sep = null();
    // SAFETY: domain ops table is fully populated.
    let rc = unsafe { ((*(*dom).ops).scalable_ep.unwrap())(dom, list.0, &mut sep, void()) };
    assert_eq!(rc, ENOSYS);
    assert_eq!(close(fid_of(dom)), 0);
    assert_eq!(close(fid_of(fab)), 0);
}

#[test]
fn other_providers_still_load_beside_srd() {
    init();
    let out = Command::new("fi_info")
        .arg("-l")
        .env("FI_PROVIDER_PATH", provider_dir())
        .env_remove("FI_PROVIDER")
        .output()
        .expect("fi_info runs (libfabric-bin installed)");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for p in ["srd:", "tcp:", "udp:", "shm:", "ofi_rxm:", "ofi_rxd:"] {
        assert!(
            text.lines().any(|l| l.trim() == p),
            "{p} missing from fi_info -l:\n{text}"
        );
    }
    assert_eq!(
        text.lines().filter(|l| l.trim() == "srd:").count(),
        1,
        "registered once"
    );
}

#[test]
fn fi_info_e_lists_parameters() {
    init();
    let out = Command::new("fi_info")
        .arg("-e")
        .env("FI_PROVIDER_PATH", provider_dir())
        .output()
        .expect("fi_info runs");
    let text = String::from_utf8_lossy(&out.stdout);
    for name in srd_fi::fi::params::DEFS
        .iter()
        .map(|d| d.name.to_ascii_uppercase())
    {
        assert!(
            text.contains(&format!("FI_SRD_{name}:")),
            "FI_SRD_{name} missing"
        );
    }
}
