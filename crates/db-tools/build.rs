//! Embeds the workspace's `migrations/*.sql` into the crate at build time.
//!
//! Generates `$OUT_DIR/embedded_migrations.rs`: a sorted slice of (file name, contents) built with
//! `include_str!`, so the binaries carry exactly the schema they were built with. Cargo reruns this script
//! whenever a file in the directory changes.

use std::{env, fs, path::PathBuf};

fn main() {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let dir = manifest_dir.join("../../migrations");
    println!("cargo:rerun-if-changed={}", dir.display());

    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "sql"))
        .collect();
    files.sort();

    let mut out = String::from(
        "/// Migrations embedded at build time: (file name, SQL), sorted by file name.\n",
    );
    out.push_str("pub static EMBEDDED: &[(&str, &str)] = &[\n");
    for path in &files {
        let name = path
            .file_name()
            .unwrap()
            .to_str()
            .expect("UTF-8 migration file name");
        let abs = path.canonicalize().expect("canonical path");
        out.push_str(&format!(
            "    ({name:?}, include_str!({:?})),\n",
            abs.to_str().expect("UTF-8 path")
        ));
    }
    out.push_str("];\n");

    let out_path =
        PathBuf::from(env::var("OUT_DIR").expect("OUT_DIR")).join("embedded_migrations.rs");
    fs::write(&out_path, out).expect("write embedded_migrations.rs");
}
