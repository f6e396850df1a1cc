//! Compiles the console's build output (web/console/dist, written by `npm run build` in web/, which
//! scripts/build runs first) into the component: one `static_site::Asset` per file, with its content
//! type and a strong ETag of its bytes. Without a build output the component serves a page saying so.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let dist = manifest.join("../../web/console/dist");
    println!("cargo:rerun-if-changed={}", dist.display());
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap());

    let mut files = Vec::new();
    if dist.join("index.html").is_file() {
        collect(&dist, &dist, &mut files);
    } else {
        println!(
            "cargo:warning=web/console/dist is missing: the console serves a placeholder (scripts/build builds it)"
        );
        let placeholder = out.join("placeholder.html");
        std::fs::write(
            &placeholder,
            "<!doctype html><title>Attachments console</title><p>The console was not built: run scripts/build.</p>\n",
        )
        .unwrap();
        files.push(("/".to_owned(), placeholder));
    }
    files.sort();

    let mut code = String::new();
    let mut index = None;
    let mut assets = Vec::new();
    for (route, path) in &files {
        let body = std::fs::read(path).unwrap();
        let etag = format!("\"{}\"", hex::encode(Sha256::digest(&body)));
        let item = format!(
            "static_site::Asset {{ path: {route:?}, content_type: {:?}, body: include_bytes!({:?}), etag: {etag:?} }}",
            content_type(path),
            path.canonicalize().unwrap().display().to_string(),
        );
        if route == "/" {
            index = Some(item);
        } else {
            assets.push(item);
        }
    }
    writeln!(
        code,
        "static INDEX: static_site::Asset = {};",
        index.expect("an index.html")
    )
    .unwrap();
    writeln!(
        code,
        "static ASSETS: [static_site::Asset; {}] = [",
        assets.len()
    )
    .unwrap();
    for a in &assets {
        writeln!(code, "    {a},").unwrap();
    }
    writeln!(code, "];").unwrap();
    std::fs::write(out.join("assets.rs"), code).unwrap();
}

/// Every file under `dir`, as (request path, file): `index.html` is `/`, the rest keep their path.
/// Source maps stay out.
fn collect(root: &Path, dir: &Path, out: &mut Vec<(String, PathBuf)>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            collect(root, &p, out);
            continue;
        }
        let rel = p
            .strip_prefix(root)
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        if rel.ends_with(".map") {
            continue;
        }
        let route = if rel == "index.html" {
            "/".to_owned()
        } else {
            format!("/{rel}")
        };
        out.push((route, p));
    }
}

fn content_type(p: &Path) -> &'static str {
    match p.extension().and_then(|e| e.to_str()).unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "woff2" => "font/woff2",
        "json" => "application/json",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}
