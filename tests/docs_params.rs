//! Every FI_SRD_ parameter the provider registers is documented in the
//! README's parameter table with its default, and the table lists nothing
//! that is not one.

mod docs_common;

use docs_common::{Listed, differences};

/// Rows `| FI_SRD_NAME | default | meaning |` of the README.
fn readme_rows(readme: &str) -> Vec<Listed> {
    readme
        .lines()
        .filter_map(|l| l.strip_prefix("| FI_SRD_"))
        .filter_map(|l| {
            let mut cells = l.split('|').map(str::trim);
            Some(Listed {
                name: cells.next()?.to_string(),
                default: cells.next()?.trim_matches('`').to_string(),
            })
        })
        .collect()
}

#[test]
fn readme_documents_every_parameter() {
    let rows = readme_rows(&docs_common::read("README.md"));
    let diff = differences("README.md", &rows);
    assert!(diff.is_empty(), "{}", diff.join("\n"));
}

#[test]
fn readme_rows_are_parsed() {
    let rows = readme_rows("| FI_SRD_A | 3 | x |\n| FI_SRD_B | `unset` | y |\nFI_SRD_C\n");
    assert_eq!(
        rows,
        [
            Listed {
                name: "A".into(),
                default: "3".into()
            },
            Listed {
                name: "B".into(),
                default: "unset".into()
            },
        ]
    );
    // A wrong default and an unknown row are both reported.
    let mut bad = docs_common::expected();
    bad[0].default = "999".into();
    bad.push(Listed {
        name: "NOPE".into(),
        default: "0".into(),
    });
    assert_eq!(differences("x", &bad).len(), 2);
}
