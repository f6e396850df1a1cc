//! A tus upload ends like a direct one, with the real scan worker (`target/release/scan-worker`):
//! once complete, the worker's one read verifies it (size, the SHA-256 the chunks added up to,
//! content policy, dedup, clamd) and the attachment appears; an upload left open past its expiry
//! is aborted by the worker's janitor, its parts gone from the bucket.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use integration_tests::bucket::Bucket;
use integration_tests::{Stack, client, login, psql, scan_worker, send, sha256_hex, sql_str};
use sha2::{Digest, Sha256};

const MIB: usize = 1024 * 1024;

/// Runs the scan worker (the shared `scan_worker` command) for `queues` with `args`, to its end.
fn run_worker(queues: &str, args: &[&str]) {
    let out = scan_worker(queues, args, &[])
        .output()
        .expect("scan-worker");
    assert!(
        out.status.success(),
        "scan-worker failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
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

struct Upload {
    token: String,
    url: String,
    id: String,
}

/// A tus upload of `data` whose first `sent` bytes are sent in chunks of `chunk`.
fn upload(data: &[u8], sent: usize, chunk: usize) -> Upload {
    let mut seed = Stack::get().seed();
    let tenant = seed.tenants.remove(0);
    let user = tenant.user(0).clone();
    let token = login(&client(), &Stack::get().base_url, &user).access;
    let message = tenant.message_of(&user, 0).id.clone();
    let r = send(
        client()
            .post(Stack::get().url(&format!("/api/v1/emails/{message}/tus")))
            .bearer_auth(&token)
            .header("tus-resumable", "1.0.0")
            .header("upload-length", data.len().to_string())
            .header(
                "upload-metadata",
                format!("filename {}", STANDARD.encode("report.bin")),
            ),
    );
    assert_eq!(r.status, 201, "{r:?}");
    let url = Stack::get().url(r.header("location").unwrap());
    let mut offset = 0;
    while offset < sent {
        let end = (offset + chunk).min(sent);
        let piece = &data[offset..end];
        let r = send(
            client()
                .patch(&url)
                .bearer_auth(&token)
                .header("tus-resumable", "1.0.0")
                .header("upload-offset", offset.to_string())
                .header("content-type", "application/offset+octet-stream")
                .header(
                    "upload-checksum",
                    format!("sha256 {}", STANDARD.encode(Sha256::digest(piece))),
                )
                .body(piece.to_vec()),
        );
        assert_eq!(r.status, 204, "{r:?}");
        offset = end;
    }
    let id = url.rsplit('/').next().unwrap().to_owned();
    Upload { token, url, id }
}

#[test]
fn the_worker_verifies_a_completed_tus_upload_into_an_attachment() {
    let data = bytes(8 * MIB + 777, 31);
    let u = upload(&data, data.len(), 8 * MIB);
    let attachment = psql(&format!(
        "SELECT attachment_id FROM upload_sessions WHERE id = {}",
        sql_str(&u.id)
    ));
    // Earlier tests leave completed uploads to verify too: run passes until this one is judged.
    let state = || {
        psql(&format!(
            "SELECT state FROM upload_sessions WHERE id = {}",
            sql_str(&u.id)
        ))
    };
    for _ in 0..20 {
        if state() != "verifying" {
            break;
        }
        run_worker("verify", &["--once"]);
    }
    assert_eq!(
        psql(&format!(
            "SELECT state FROM upload_sessions WHERE id = {}",
            sql_str(&u.id)
        )),
        "done"
    );
    let a = send(
        client()
            .get(Stack::get().url(&format!("/api/v1/attachments/{attachment}")))
            .bearer_auth(&u.token),
    );
    assert_eq!(a.status, 200, "{a:?}");
    let a = a.json();
    assert_eq!(a["contentHash"], sha256_hex(&data), "{a}");
    assert_eq!(a["size"], data.len());
    assert_ne!(a["virusScanStatus"], "verifying");
}

#[test]
fn the_janitor_aborts_an_expired_tus_upload() {
    let data = bytes(8 * MIB + 5, 32);
    let u = upload(&data, 8 * MIB, 8 * MIB);
    let key = psql(&format!(
        "SELECT storage_key FROM upload_sessions WHERE id = {}",
        sql_str(&u.id)
    ));
    assert_eq!(Bucket::get().uploads(&key), vec![key.clone()]);
    psql(&format!(
        "UPDATE upload_sessions SET expires_at = app_now_ms() - 1000 WHERE id = {}",
        sql_str(&u.id)
    ));
    run_worker("verify", &["janitor", "--once"]);
    assert!(Bucket::get().uploads(&key).is_empty(), "its parts are gone");
    assert_eq!(
        psql(&format!(
            "SELECT count(*) FROM upload_sessions WHERE id = {}",
            sql_str(&u.id)
        )),
        "0",
        "the session is forgotten"
    );
    let r = send(
        client()
            .head(&u.url)
            .bearer_auth(&u.token)
            .header("tus-resumable", "1.0.0"),
    );
    assert_eq!(r.status, 404);
}

/// The test signature through tus: the worker's read judges it `infected`, and it is never served.
#[test]
fn eicar_through_tus_ends_infected_and_is_never_served() {
    const EICAR: &[u8] = br"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*";
    let u = integration_tests::uploads::Uploader::new();
    let url = u.tus_create("eicar.txt", EICAR.len() as u64);
    let r = u.tus_patch(&client(), &url, 0, EICAR.to_vec(), true);
    assert_eq!(r.status, 204, "{r:?}");
    let id = url.rsplit('/').next().unwrap();
    let attachment = psql(&format!(
        "SELECT attachment_id FROM upload_sessions WHERE id = {}",
        sql_str(id)
    ));
    for _ in 0..20 {
        let state = psql(&format!(
            "SELECT state FROM upload_sessions WHERE id = {}",
            sql_str(id)
        ));
        if state != "verifying" {
            break;
        }
        run_worker("verify", &["--once"]);
    }
    let a = u.attachment(&attachment);
    assert_eq!(a["virusScanStatus"], "infected", "{a}");
    let (status, _, _) = u.download_digest(&attachment);
    assert_eq!(status, 403, "infected content is refused");
}
