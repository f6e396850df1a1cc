//! A gibibyte through each path built for files above the platform's limits, end to end with the
//! real scan worker (`target/release/scan-worker`, its scan cap raised above the file; the stack's
//! clamd takes 1 GiB streams): direct-to-storage (create → parts straight to the bucket → complete)
//! and tus (8 MiB PATCHes through the function), each verified by the worker's one read (size,
//! SHA-256, policy, clamd) into a `clean` attachment that downloads whole, through the redirect to
//! storage, with the same SHA-256.
//!
//! Under `scripts/test`'s platform profile (10 MiB request and response bodies, 30 s per request,
//! 128 MiB of guest memory) these pass only if no request carries, and no instance holds, the file.
//! The verification queue is one for the whole stack, and each worker pass reads a gibibyte, so the
//! tests here run one at a time ([`SERIAL`]).

use std::sync::{Mutex, MutexGuard};

use integration_tests::uploads::{Noise, Uploader};
use integration_tests::{client, psql, scan_worker, sql_str};

const MIB: u64 = 1024 * 1024;
const GIB: u64 = 1024 * MIB;
/// tus chunks: `upload_chunk_bytes`' default, under the platform's 10 MiB request cap.
const CHUNK: u64 = 8 * MIB;

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Runs verification passes (the worker, `--once`, with a scan cap above a gibibyte) until upload
/// session `session` is judged; its final state.
fn verify(session: &str) -> String {
    let state = || {
        psql(&format!(
            "SELECT state FROM upload_sessions WHERE id = {}",
            sql_str(session)
        ))
    };
    let cap = (GIB + 64 * MIB).to_string();
    for _ in 0..5 {
        if state() != "verifying" {
            break;
        }
        let out = scan_worker("verify", &["--once", "--max-scan-bytes", &cap], &[])
            .output()
            .expect("scan-worker");
        assert!(
            out.status.success(),
            "scan-worker failed: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    state()
}

/// What the owner sees of `attachment` once verified: clean, the right size and hash, and a
/// download (through the redirect: a gibibyte is above the response cap) of exactly those bytes.
fn assert_clean_and_whole(u: &Uploader, attachment: &str, sha256: &str) {
    let a = u.attachment(attachment);
    assert_eq!(a["virusScanStatus"], "clean", "{a}");
    assert_eq!(a["size"], GIB, "{a}");
    assert_eq!(a["contentHash"], sha256, "{a}");
    let (status, len, got) = u.download_digest(attachment);
    assert_eq!(status, 200);
    assert_eq!(len, GIB);
    assert_eq!(got, sha256, "the download is the upload");
}

#[test]
fn a_gibibyte_through_the_direct_path_ends_clean_and_downloads_whole() {
    let _one = serial();
    let u = Uploader::new();
    let mut content = Noise::new(1301, GIB);
    let session = u.direct("archive.bin", &mut content, GIB);
    let sha256 = content.sha256_hex();
    let id = session["uploadId"].as_str().unwrap();
    assert_eq!(verify(id), "done");
    assert_clean_and_whole(&u, session["attachmentId"].as_str().unwrap(), &sha256);
}

#[test]
fn a_gibibyte_through_tus_ends_clean_and_downloads_whole() {
    let _one = serial();
    let u = Uploader::new();
    let url = u.tus_create("archive.bin", GIB);
    let id = url.rsplit('/').next().unwrap().to_owned();
    let mut content = Noise::new(1302, GIB);
    let c = client();
    let mut offset = 0;
    while offset < GIB {
        let chunk = content.take(CHUNK as usize);
        let len = chunk.len() as u64;
        // Every 16th chunk carries its Upload-Checksum, as a client that asks for it would.
        let checksum = (offset / CHUNK).is_multiple_of(16);
        let r = u.tus_patch(&c, &url, offset, chunk, checksum);
        assert_eq!(r.status, 204, "PATCH at {offset}: {r:?}");
        offset += len;
        assert_eq!(r.header("upload-offset"), Some(offset.to_string().as_str()));
    }
    let sha256 = content.sha256_hex();
    let attachment = psql(&format!(
        "SELECT attachment_id FROM upload_sessions WHERE id = {}",
        sql_str(&id)
    ));
    assert_eq!(verify(&id), "done");
    assert_clean_and_whole(&u, &attachment, &sha256);
}
