//! SQL is written in one place: this crate. A statement anywhere else in the product (a component, the
//! scan worker, the edge) is a statement nobody reviews with the others, that the database tests do
//! not run, and that can drift from its copy here; so this test reads the product's sources and
//! fails on one. Tools that are not the product keep their own: the migration runner and seeding
//! (`crates/db-tools`) and the runner's Postgres host (`tools/spinlet`).

use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Words that start an SQL statement, as they appear in a Rust string literal.
const STATEMENT_STARTS: &[&str] = &[
    "\"SELECT ",
    "\"INSERT INTO",
    "\"UPDATE ",
    "\"DELETE FROM",
    "\"WITH ",
    "\"BEGIN\"",
    "\"COMMIT\"",
    "\"ROLLBACK",
    "\"SAVEPOINT",
    "\"SET ",
    "\"CALL ",
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            if p.file_name().is_some_and(|n| n == "target") {
                continue;
            }
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

#[test]
fn no_sql_outside_the_store() {
    let mut files = Vec::new();
    for dir in ["components", "crates/edge/src", "crates/scan-worker/src"] {
        rust_files(&repo().join(dir), &mut files);
    }
    assert!(
        files.len() > 20,
        "found only {} files: wrong root?",
        files.len()
    );
    let mut found = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        for (n, line) in text.lines().enumerate() {
            let upper = line.to_ascii_uppercase();
            let hit =
                STATEMENT_STARTS.iter().any(|s| upper.contains(s)) || line.contains("spin_sdk::pg");
            if hit && !line.trim_start().starts_with("//") {
                found.push(format!(
                    "{}:{}: {}",
                    f.strip_prefix(repo()).unwrap_or(f).display(),
                    n + 1,
                    line.trim()
                ));
            }
        }
    }
    assert!(
        found.is_empty(),
        "SQL outside crates/store:\n{}",
        found.join("\n")
    );
}
