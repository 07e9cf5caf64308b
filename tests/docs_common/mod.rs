//! Shared by the tests that keep documentation in step with the parameter
//! table of src/fi/params.rs (README table, man page): what a document must
//! list, and the comparison of what it lists against that.

use srd_fi::fi::params::DEFS;

/// One documented parameter: name without the `FI_SRD_` prefix, upper case,
/// and the default as written in the document.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listed {
    pub name: String,
    pub default: String,
}

/// How a default is written in the documents: the text itself, or `unset`
/// for an empty string.
pub fn documented_default(default: &str) -> String {
    if default.is_empty() {
        "unset".to_string()
    } else {
        default.to_string()
    }
}

/// Every parameter the provider defines, as the documents must show it.
pub fn expected() -> Vec<Listed> {
    DEFS.iter()
        .map(|d| Listed {
            name: d.name.to_ascii_uppercase(),
            default: documented_default(d.default),
        })
        .collect()
}

/// Compares what document `doc` lists with `expected()`: every parameter
/// once, nothing else, and the same defaults. Returns the differences, one
/// line each (empty when the document is right).
pub fn differences(doc: &str, listed: &[Listed]) -> Vec<String> {
    let want = expected();
    let mut out = Vec::new();
    for w in &want {
        match listed.iter().filter(|l| l.name == w.name).count() {
            0 => out.push(format!("{doc}: FI_SRD_{} missing", w.name)),
            1 => {}
            n => out.push(format!("{doc}: FI_SRD_{} listed {n} times", w.name)),
        }
        if let Some(l) = listed.iter().find(|l| l.name == w.name)
            && l.default != w.default
        {
            out.push(format!(
                "{doc}: FI_SRD_{} default is {:?}, the provider's is {:?}",
                w.name, l.default, w.default
            ));
        }
    }
    for l in listed {
        if !want.iter().any(|w| w.name == l.name) {
            out.push(format!(
                "{doc}: lists FI_SRD_{}, which the provider does not define",
                l.name
            ));
        }
    }
    out
}

/// Reads a file of the repository.
pub fn read(rel: &str) -> String {
    let path = format!("{}/{rel}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}
