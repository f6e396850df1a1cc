//! Locates the WIT that the `spin-sdk` crate ships (a build-dependency, so cargo has downloaded it) and
//! writes a `bindgen!` invocation pointing at it into OUT_DIR. We never copy Spin's WIT into the repo.

use std::path::{Path, PathBuf};

fn main() {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap());
    warn_unless_shared_target_dir(&manifest_dir, &out);
    // This workspace's own lockfile: the spin-sdk version cargo resolved for the build-dependency.
    let lock = manifest_dir.join("Cargo.lock");
    println!("cargo:rerun-if-changed={}", lock.display());
    let version = spin_sdk_version(&lock).expect("spin-sdk is not in Cargo.lock");
    let wit = find_sdk_wit(&version).unwrap_or_else(|| {
        panic!(
            "the WIT of spin-sdk {version} was not found in the cargo registry; run `cargo fetch`"
        )
    });
    std::fs::write(out.join("spin_wit_dir.txt"), wit.display().to_string()).unwrap();
    let bindings = format!(
        r#"wasmtime::component::bindgen!({{
    path: {path:?},
    inline: "package spinlet:host; world host {{ import spin:postgres/postgres@4.2.0; import spin:redis/redis@3.0.0; import spin:variables/variables@3.0.0; }}",
    world: "spinlet:host/host",
    imports: {{ default: async | trappable }},
    with: {{
        "spin:postgres/postgres@4.2.0.connection": crate::host::pg::PgConnection,
        "spin:postgres/postgres@4.2.0.connection-builder": crate::host::pg::PgConnectionBuilder,
        "spin:redis/redis@3.0.0.connection": crate::host::redis::RedisConnection,
    }},
}});
"#,
        path = wit.display().to_string()
    );
    std::fs::write(out.join("spin_bindings.rs"), bindings).unwrap();
}

/// The scripts and tests run `target/release/spinlet` of the repository, which only a build from
/// tools/spinlet (where .cargo/config.toml points cargo at ../../target) produces. Says so when cargo
/// builds elsewhere, e.g. with `--manifest-path` from the repository root.
fn warn_unless_shared_target_dir(manifest_dir: &Path, out_dir: &Path) {
    let Ok(repo) = manifest_dir.join("../..").canonicalize() else {
        return;
    };
    let shared = repo.join("target");
    let under_shared = out_dir
        .canonicalize()
        .is_ok_and(|out| out.starts_with(&shared));
    if !under_shared && std::env::var_os("CARGO_TARGET_DIR").is_none() {
        println!(
            "cargo:warning=building outside the repository's target/ (cargo ran outside tools/spinlet, \
             so tools/spinlet/.cargo/config.toml was not read): scripts/* use target/release/spinlet; \
             run `cd tools/spinlet && cargo build --release` or scripts/build"
        );
    }
}

fn spin_sdk_version(lock: &Path) -> Option<String> {
    let text = std::fs::read_to_string(lock).ok()?;
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        if line.trim() == "name = \"spin-sdk\"" {
            let v = lines.next()?.trim();
            return v
                .strip_prefix("version = \"")?
                .strip_suffix('"')
                .map(str::to_owned);
        }
    }
    None
}

fn find_sdk_wit(version: &str) -> Option<PathBuf> {
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))?;
    let registry = cargo_home.join("registry/src");
    for index in std::fs::read_dir(registry).ok()?.flatten() {
        let wit = index.path().join(format!("spin-sdk-{version}/wit"));
        if wit.join("deps").is_dir() {
            return Some(wit);
        }
    }
    None
}
