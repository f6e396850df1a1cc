//! The verifier's memory does not grow with the object: a 72 MiB object in the real bucket goes
//! through the one pass (size, SHA-256, content policy, clamd) while the process's peak resident
//! memory stays far below the object's size. A test binary of its own, so no other test's
//! allocations move the peak. Needs `S3_*` and `CLAMD_ADDR` like `tests/uploads.rs`.

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use scan_worker::clamd::Clamd;
use scan_worker::storage::Storage;
use scan_worker::verify;
use sha2::{Digest, Sha256};
use storage::request::{Body, Signer};
use storage::{ObjectKey, StorageConfig};

const SIZE: usize = 72 << 20;

fn var(k: &str) -> Option<String> {
    std::env::var(k).ok().filter(|v| !v.is_empty())
}

/// `VmRSS` or `VmHWM` of this process, in KiB.
fn status_kib(field: &str) -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    s.lines()
        .find_map(|l| {
            l.strip_prefix(field)?
                .trim()
                .strip_suffix("kB")?
                .trim()
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("{field} not in /proc/self/status"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_object_is_verified_in_bounded_memory() {
    let (Some(endpoint), Some(id), Some(secret), Some(clamd)) = (
        var("S3_ENDPOINT"),
        var("S3_ACCESS_KEY_ID"),
        var("S3_SECRET_ACCESS_KEY"),
        var("CLAMD_ADDR"),
    ) else {
        eprintln!("S3_* or CLAMD_ADDR is not set: skipped (scripts/test and scripts/dev set them)");
        return;
    };
    let cfg = StorageConfig::new(
        &endpoint,
        &var("S3_REGION").unwrap_or_else(|| "garage".into()),
        &var("S3_BUCKET").unwrap_or_else(|| "attachments".into()),
        &id,
        &secret,
    )
    .unwrap();

    // Text lines (the policy's text path), its hash known before upload.
    let mut content = Vec::with_capacity(SIZE);
    let mut i = 0u64;
    while content.len() < SIZE {
        content.extend_from_slice(
            format!("line {i:>12} of a long plain-text attachment\n").as_bytes(),
        );
        i += 1;
    }
    content.truncate(SIZE);
    let sha = hex::encode(Sha256::digest(&content));
    let key = ObjectKey::new_upload(uuid::Uuid::new_v4());
    let req = Signer::new(&cfg)
        .put_object(
            &key,
            None,
            Body::Stream {
                content_length: Some(SIZE as u64),
            },
            SystemTime::now(),
        )
        .unwrap();
    let mut rb = reqwest::Client::new().put(&req.url);
    for (n, v) in &req.headers {
        // reqwest frames the body itself.
        if n != "content-length" {
            rb = rb.header(n, v);
        }
    }
    let res = rb.body(Bytes::from(content)).send().await.unwrap();
    assert_eq!(res.status().as_u16(), 200, "PUT");
    drop(res);

    // The upload's buffer is gone; from here the peak is the verifier's.
    std::fs::write("/proc/self/clear_refs", "5").expect("reset the peak RSS (Linux)");
    let before = status_kib("VmRSS:");

    let storage = Storage::new(cfg.clone()).unwrap();
    let mut object = storage.get(key.as_str()).await.unwrap();
    assert_eq!(object.length, SIZE as u64);
    let pass = verify::one_pass(
        &mut object.body,
        object.length,
        Some("text/plain"),
        Some("txt"),
        &Clamd::new(clamd, Duration::from_secs(120)),
        u64::MAX,
    )
    .await
    .unwrap();
    let peak = status_kib("VmHWM:");
    storage.delete(key.as_str()).await.unwrap();

    assert_eq!(pass.size, SIZE as u64);
    assert_eq!(pass.sha256.hex(), sha);
    assert_eq!(pass.content.unwrap().mime, "text/plain");
    // clamd took what its StreamMaxLength allows (64M in the scripts) and answered; either way the
    // pass went on to the end.
    eprintln!("scan: {:?}", pass.scan);
    let grew_kib = peak.saturating_sub(before);
    eprintln!(
        "rss before {before} KiB, peak {peak} KiB, growth {grew_kib} KiB for a {} KiB object",
        SIZE >> 10
    );
    assert!(
        grew_kib < 16 * 1024,
        "peak memory grew by {grew_kib} KiB while verifying a {} KiB object",
        SIZE >> 10
    );
}
