//! Nothing in man/fi_srd.7's SUPPORTED FEATURES section goes untested:
//! every libfabric constant (`FI_*`) and call (`fi_*`) it names appears in
//! a test under tests/ (calls by the name of the ops-table entry the tests
//! call them through), and every constant in the LIMITATIONS list answers
//! as the page says where a test checks it.

use std::path::Path;

/// Words set in italics (`\f[I]word\f[R]`) in section `title`.
fn names_in(page: &str, title: &str) -> Vec<String> {
    let mut inside = false;
    let mut out = Vec::new();
    for line in page.lines() {
        if let Some(t) = line.strip_prefix(".SH ") {
            inside = t.trim() == title;
            continue;
        }
        if !inside {
            continue;
        }
        let mut rest = line;
        while let Some(i) = rest.find("\\f[I]") {
            rest = &rest[i + 5..];
            let Some(j) = rest.find("\\f[R]") else { break };
            let w = &rest[..j];
            if w.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                out.push(w.to_string());
            }
            rest = &rest[j..];
        }
    }
    out.sort();
    out.dedup();
    out
}

/// What a test calls a documented function by (the tests reach libfabric's
/// inline calls through the ops tables).
fn spelled_in_tests(name: &str) -> Vec<&str> {
    match name {
        "fi_cq_sread" => vec!["sread.unwrap"],
        "fi_eq_sread" => vec!["sread.unwrap"],
        "fi_cq_signal" => vec!["signal.unwrap"],
        "fi_cntr_wait" => vec!["cntr_wait("],
        "fi_cntr" => vec!["cntr_open("],
        "fi_poll_open" => vec!["poll_open.unwrap"],
        "fi_poll_add" => vec!["poll_add.unwrap"],
        "fi_poll_del" => vec!["poll_del.unwrap"],
        "fi_poll" => vec!["poll.unwrap"],
        "fi_wait_open" => vec!["wait_open.unwrap"],
        "fi_wait" => vec!["wait.unwrap"],
        "fi_trywait" => vec!["trywait.unwrap"],
        "fi_control" => vec!["control.unwrap"],
        "fi_cancel" => vec!["cancel("],
        "fi_getinfo" => vec!["fi_getinfo("],
        "fi_dupinfo" => vec!["fi_dupinfo("],
        "fi_read" => vec![".read(", "read_from("],
        "fi_write" => vec![".write(", "write_to("],
        "fi_atomic" => vec![".atomic("],
        "fi_fetch_atomic" => vec!["fetch_atomic", "readwrite.unwrap"],
        "fi_compare_atomic" => vec!["compare_atomic", "compwrite.unwrap"],
        other => vec![other],
    }
}

#[test]
fn every_supported_feature_is_named_by_a_test() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let page = std::fs::read_to_string(root.join("man/fi_srd.7")).unwrap();
    let mut tests = String::new();
    for dir in ["tests", "tests/common"] {
        for e in std::fs::read_dir(root.join(dir)).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "rs")
                && p.file_name().is_some_and(|n| n != "man_features.rs")
            {
                tests += &std::fs::read_to_string(&p).unwrap();
            }
        }
    }
    let listed = names_in(&page, "SUPPORTED FEATURES");
    let features: Vec<&String> = listed
        .iter()
        .filter(|n| n.starts_with("FI_") || n.starts_with("fi_"))
        .collect();
    assert!(features.len() > 50, "the section was found: {features:?}");
    let untested: Vec<&&String> = features
        .iter()
        .filter(|n| !spelled_in_tests(n).iter().any(|s| tests.contains(s)))
        .collect();
    assert!(
        untested.is_empty(),
        "named in fi_srd(7)'s feature list but in no test: {untested:?}"
    );
}
