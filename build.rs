//! Builds the C shim, links libfabric, and leaves
//! `target/<profile>/libfabric/libsrd-fi.so` pointing at the built cdylib so
//! `FI_PROVIDER_PATH=target/<profile>/libfabric` works after a plain build.

use std::path::{Path, PathBuf};

fn main() {
    println!("cargo:rerun-if-changed=ofi-shim");
    println!("cargo:rerun-if-changed=build.rs");

    let mut shim = cc::Build::new();
    for entry in std::fs::read_dir("ofi-shim").expect("ofi-shim/ exists") {
        let path = entry.expect("readable ofi-shim entry").path();
        if path.extension().is_some_and(|e| e == "c") {
            shim.file(&path);
        }
    }
    shim.include("ofi-shim")
        .flag("-fvisibility=hidden")
        .flag_if_supported("-Wall")
        .flag_if_supported("-Wextra")
        .flag_if_supported("-Wno-unused-parameter")
        .compile("srdshim");
    println!("cargo:rustc-link-lib=dylib=fabric");
    #[cfg(feature = "regen-bindings")]
    regen_bindings();

    link_provider_dir();
}

/// Creates `<target>/<profile>/libfabric/libsrd-fi.so -> ../libsrd_fi.so`.
/// The symlink may dangle until the cdylib is linked at the end of the build.
fn link_provider_dir() {
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR set by cargo"));
    // OUT_DIR = <target>/<profile>/build/<pkg>-<hash>/out
    let Some(profile_dir) = out.ancestors().nth(3) else {
        return;
    };
    let dir = profile_dir.join("libfabric");
    let _ = std::fs::create_dir_all(&dir);
    // Only one name for the library in this folder: the core would register
    // the provider once per file it finds.
    if let Ok(entries) = std::fs::read_dir(&dir) {
        for e in entries.flatten() {
            if e.file_name() != "libsrd-fi.so" {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
    let link = dir.join("libsrd-fi.so");
    let target = Path::new("../libsrd_fi.so");
    if std::fs::read_link(&link).ok().as_deref() != Some(target) {
        let _ = std::fs::remove_file(&link);
        #[cfg(unix)]
        let _ = std::os::unix::fs::symlink(target, &link);
    }
}

#[cfg(feature = "regen-bindings")]
fn regen_bindings() {
    let bindings = bindgen::Builder::default()
        .header("ofi-shim/bindings.h")
        .allowlist_type("fi_.*|fid.*|fi_info|iovec")
        .allowlist_function("fi_.*")
        .allowlist_var("FI_.*|FI_.*")
        .blocklist_function("fi_.*_ops_.*")
        .derive_default(true)
        .layout_tests(false)
        .generate_comments(false)
        .prepend_enum_name(false)
        .generate_inline_functions(false)
        .parse_callbacks(Box::new(MacroKinds))
        .generate()
        .expect("bindgen ran over the libfabric headers");
    bindings
        .write_to_file("src/bindings.rs")
        .expect("wrote src/bindings.rs");
}

/// Flag and capability macros are 64-bit bit masks in libfabric; errno values
/// are C ints.  bindgen would otherwise pick the smallest type that fits.
#[cfg(feature = "regen-bindings")]
#[derive(Debug)]
struct MacroKinds;

#[cfg(feature = "regen-bindings")]
impl bindgen::callbacks::ParseCallbacks for MacroKinds {
    fn int_macro(&self, name: &str, _value: i64) -> Option<bindgen::callbacks::IntKind> {
        use bindgen::callbacks::IntKind;
        if (name.starts_with("FI_E") && name != "FI_EVENT") || name == "FI_ERRNO_OFFSET" {
            Some(IntKind::Int)
        } else if name.starts_with("FI_") {
            Some(IntKind::U64)
        } else {
            None
        }
    }
}
