//! Every FI_SRD_ parameter the provider registers is documented in the
//! README's parameter table, and the table lists nothing that is not one.

use srd_fi::fi::params::DEFS;

#[test]
fn readme_documents_every_parameter() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let listed: Vec<String> = readme
        .lines()
        .filter_map(|l| l.strip_prefix("| FI_SRD_"))
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect();
    for d in DEFS {
        let name = d.name.to_ascii_uppercase();
        assert!(listed.contains(&name), "FI_SRD_{name} missing from README");
    }
    for l in &listed {
        assert!(
            DEFS.iter().any(|d| d.name.eq_ignore_ascii_case(l)),
            "README lists FI_SRD_{l}, which the provider does not define"
        );
    }
}
