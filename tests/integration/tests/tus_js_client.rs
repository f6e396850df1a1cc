//! The real tus-js-client (npm, pinned in `tests/integration/tus-js/package-lock.json`) uploads
//! through the tus routes unmodified, with 8 MiB chunks and a Bearer token: once straight through,
//! once abandoned after its first chunk and resumed by a second client from the upload's URL. What
//! it leaves is checked behind the API: the session `verifying` with the file's SHA-256, the object
//! in Garage byte for byte.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use integration_tests::bucket::Bucket;
use integration_tests::{Stack, client, login, psql, root, sha256_hex, sql_str};
use serde_json::Value;

const MIB: usize = 1024 * 1024;

fn dir() -> PathBuf {
    root().join("tests/integration/tus-js")
}

/// `npm ci` once per run when the client is not installed yet (offline when npm's cache has it).
fn installed() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        if dir()
            .join("node_modules/tus-js-client/package.json")
            .exists()
        {
            return;
        }
        let out = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--prefer-offline"])
            .current_dir(dir())
            .output()
            .expect("npm (scripts/bootstrap installs node and npm)");
        assert!(
            out.status.success(),
            "npm ci failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    });
}

/// Pseudo-random bytes.
fn bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// Runs `upload.js` on a fresh ~20 MiB file; the client's report, and the file.
fn upload(mode: Option<&str>, seed: u64) -> (Value, Vec<u8>) {
    installed();
    let mut s = Stack::get().seed();
    let tenant = s.tenants.remove(0);
    let user = tenant.user(0).clone();
    let token = login(&client(), &Stack::get().base_url, &user).access;
    let message = tenant.message_of(&user, 0).id.clone();
    let data = bytes(20 * MIB + 12_345, seed);
    let file = std::env::temp_dir().join(format!("tus-js-{}-{seed}.bin", std::process::id()));
    std::fs::write(&file, &data).unwrap();
    let endpoint = Stack::get().url(&format!("/api/v1/emails/{message}/tus"));
    let mut cmd = Command::new("node");
    cmd.arg(dir().join("upload.js"))
        .arg(&endpoint)
        .arg(&token)
        .arg(&file)
        .arg((8 * MIB).to_string());
    if let Some(m) = mode {
        cmd.arg(m);
    }
    let out = cmd.output().expect("node");
    let _ = std::fs::remove_file(&file);
    assert!(
        out.status.success(),
        "tus-js-client failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).expect("upload.js prints JSON");
    (report, data)
}

/// Asserts that the upload at `url` is complete: verifying, the file's bytes stored (what the
/// worker's read will hash).
fn assert_stored(url: &str, data: &[u8]) {
    let id = url.rsplit('/').next().unwrap();
    let row = psql(&format!(
        "SELECT state || ' ' || storage_key || ' ' || parts_done \
         FROM upload_sessions WHERE id = {}",
        sql_str(id)
    ));
    let cols: Vec<&str> = row.split(' ').collect();
    assert_eq!(cols[0], "verifying", "{row}");
    assert_eq!(cols[2], "3", "three 8 MiB chunks, the last one short");
    assert_eq!(sha256_hex(&Bucket::get().object(cols[1])), sha256_hex(data));
}

#[test]
fn tus_js_client_uploads_a_20_mib_file_in_8_mib_chunks() {
    let (report, data) = upload(None, 21);
    let url = report["url"].as_str().unwrap();
    assert!(url.contains("/api/v1/tus/"), "{report}");
    assert_stored(url, &data);
}

#[test]
fn tus_js_client_resumes_an_abandoned_upload_from_its_url() {
    let (report, data) = upload(Some("resume"), 22);
    assert_eq!(report["resumed"], true, "{report}");
    assert_stored(report["url"].as_str().unwrap(), &data);
}
