//! man/fi_srd.7's RUNTIME PARAMETERS section lists exactly the parameters
//! src/fi/params.rs defines, each with the provider's default.

mod docs_common;

use docs_common::{Listed, differences};

/// The entries of the RUNTIME PARAMETERS section: each `.TP` paragraph whose
/// tag is `\f[I]FI_SRD_NAME\f[R]`, with the default from the last
/// "(default: X)" of its body.
fn man_params(page: &str) -> Vec<Listed> {
    let mut in_section = false;
    let mut entries: Vec<Vec<&str>> = Vec::new();
    for line in page.lines() {
        if let Some(title) = line.strip_prefix(".SH ") {
            in_section = title.trim().trim_matches('"') == "RUNTIME PARAMETERS";
            continue;
        }
        if !in_section {
            continue;
        }
        if line.starts_with(".TP") {
            entries.push(Vec::new());
        } else if let Some(e) = entries.last_mut() {
            e.push(line);
        }
    }
    entries
        .iter()
        .filter_map(|e| {
            let tag = e.first()?;
            let name = tag
                .strip_prefix("\\f[I]FI_SRD_")?
                .strip_suffix("\\f[R]")?
                .to_string();
            let body = e[1..].join(" ");
            let default = body
                .rsplit_once("(default: ")
                .and_then(|(_, rest)| rest.split_once(')'))
                .map_or(String::new(), |(d, _)| d.replace("\\-", "-"));
            Some(Listed { name, default })
        })
        .collect()
}

#[test]
fn man_page_documents_every_parameter() {
    let page = docs_common::read("man/fi_srd.7");
    let listed = man_params(&page);
    let diff = differences("man/fi_srd.7", &listed);
    assert!(diff.is_empty(), "{}", diff.join("\n"));
}

#[test]
fn man_section_is_parsed() {
    let page = ".SH RUNTIME PARAMETERS\n.PP\nintro\n.TP\n\\f[I]FI_SRD_A\\f[R]\nText\n(default: 3)\n\
                .TP\n\\f[I]FI_SRD_B\\f[R]\nno default here\n.SH SEE ALSO\n.TP\n\\f[I]FI_SRD_C\\f[R]\n(default: 1)\n";
    assert_eq!(
        man_params(page),
        [
            Listed {
                name: "A".into(),
                default: "3".into()
            },
            Listed {
                name: "B".into(),
                default: String::new()
            },
        ]
    );
    // Entries outside the section are not counted; a missing default shows.
    let mut all = docs_common::expected();
    all[0].default = String::new();
    assert_eq!(differences("x", &all).len(), 1);
}
