//! The layer plan (docs/layers.md), held by a test: every source file
//! under src/ belongs to a module of the crate, and each module may name
//! only the modules below it. A lower layer naming a higher one, or a
//! layer below `fi` naming the generated bindings, fails here with the
//! file, line and path.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Each top-level module and what it may import from the crate.
const ALLOWED: &[(&str, &[&str])] = &[
    ("bindings", &[]),
    ("mem", &[]),
    ("log", &[]),
    ("wire", &["log"]),
    ("srd", &["wire", "log"]),
    ("rdm", &["wire", "mem", "log"]),
    ("io", &["srd", "wire", "mem", "log"]),
    (
        "fi",
        &["rdm", "srd", "io", "wire", "mem", "log", "bindings"],
    ),
    (
        "ffi",
        &["fi", "rdm", "srd", "io", "wire", "mem", "log", "bindings"],
    ),
    // The monitoring tool reads stats pages through fi.
    ("bin", &["fi", "log"]),
];

/// Modules whose roots must forbid unsafe code.
const SAFE: &[&str] = &[
    "src/wire/mod.rs",
    "src/srd/mod.rs",
    "src/rdm/mod.rs",
    "src/log.rs",
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The top-level module a file under src/ belongs to.
fn module_of(rel: &Path) -> String {
    let first = rel
        .components()
        .next()
        .unwrap()
        .as_os_str()
        .to_string_lossy();
    first.trim_end_matches(".rs").to_string()
}

/// Crate modules a line names: `crate::x`, `$crate::x`, `srd_fi::x`.
fn named(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    for prefix in ["crate::", "srd_fi::"] {
        let mut rest = line;
        while let Some(i) = rest.find(prefix) {
            let before = rest[..i].chars().last();
            let after = &rest[i + prefix.len()..];
            rest = after;
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                continue;
            }
            let name: String = after
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                out.push(name);
            }
        }
    }
    out
}

/// Code of a line, without a trailing `//` comment (doc comments included).
fn code(line: &str) -> &str {
    line.find("//").map_or(line, |i| &line[..i])
}

#[test]
fn every_module_imports_only_what_lies_below_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let known: BTreeSet<&str> = ALLOWED.iter().map(|a| a.0).collect();
    let mut bad = Vec::new();
    for f in &files {
        let rel = f.strip_prefix(&src).unwrap();
        if rel == Path::new("lib.rs") {
            continue;
        }
        let m = module_of(rel);
        let allowed = ALLOWED
            .iter()
            .find(|a| a.0 == m)
            .unwrap_or_else(|| panic!("{}: module {m} is not in the layer plan", rel.display()))
            .1;
        let text = std::fs::read_to_string(f).unwrap();
        for (n, line) in text.lines().enumerate() {
            for name in named(code(line)) {
                if name == m || !known.contains(name.as_str()) {
                    continue;
                }
                if !allowed.contains(&name.as_str()) {
                    bad.push(format!(
                        "src/{}:{}: {m} names {name}: {}",
                        rel.display(),
                        n + 1,
                        line.trim()
                    ));
                }
            }
        }
    }
    assert!(bad.is_empty(), "layer violations:\n{}", bad.join("\n"));
}

#[test]
fn sans_io_layers_forbid_unsafe_code() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for f in SAFE {
        let text = std::fs::read_to_string(root.join(f)).unwrap();
        assert!(
            text.lines().any(|l| l.trim() == "#![forbid(unsafe_code)]"),
            "{f} must forbid unsafe code"
        );
    }
}

#[test]
fn the_checker_sees_violations() {
    assert_eq!(named("use crate::fi::errno;"), ["fi"]);
    assert_eq!(named("x = $crate::log::enabled()"), ["log"]);
    assert_eq!(named("use srd_fi::bindings::FI_SEND;"), ["bindings"]);
    assert!(named("let my_crate::x = 1;").is_empty());
    assert_eq!(code("use a; // crate::fi"), "use a; ");
    assert_eq!(module_of(Path::new("rdm/rx.rs")), "rdm");
    assert_eq!(module_of(Path::new("log.rs")), "log");
}
