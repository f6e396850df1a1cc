//! tus 1.0.0 resumable uploads over HTTP: creation, chunks by PATCH (each one multipart part in
//! Garage), HEAD after a lost connection, completion into `verifying`, and every refusal on the way
//! (offset, checksum, sizes, termination, expiry, another user's upload, concurrent PATCHes). The
//! real tus-js-client is in `tus_js_client.rs`.

use std::io::Write;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use integration_tests::bucket::Bucket;
use integration_tests::uploads::Uploader;
use integration_tests::{
    Reply, Stack, client, login, parse_remaining, psql, send, send_expecting_continue,
    send_may_be_cut, sql_str,
};
use sha2::{Digest, Sha256};

const MIB: usize = 1024 * 1024;
/// `upload_chunk_bytes` as the stack runs it.
fn chunk_limit() -> usize {
    Stack::get()
        .spin_var("upload_chunk_bytes", "8388608")
        .parse()
        .unwrap()
}

/// A fresh tenant's first user, logged in ([`Uploader`]), with this file's requests.
struct World(Uploader);

impl std::ops::Deref for World {
    type Target = Uploader;
    fn deref(&self) -> &Uploader {
        &self.0
    }
}

fn world() -> World {
    World(Uploader::new())
}

/// Pseudo-random bytes (distinct per seed).
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

fn b64(s: &str) -> String {
    STANDARD.encode(s)
}

fn checksum(chunk: &[u8]) -> String {
    format!("sha256 {}", STANDARD.encode(Sha256::digest(chunk)))
}

impl World {
    /// `POST .../tus` for `len` bytes named `name`, as `token`.
    fn create_as(&self, token: &str, name: &str, len: usize) -> Reply {
        send(
            client()
                .post(Stack::get().url(&format!("/api/v1/emails/{}/tus", self.message())))
                .bearer_auth(token)
                .header("tus-resumable", "1.0.0")
                .header("upload-length", len.to_string())
                .header(
                    "upload-metadata",
                    format!(
                        "filename {},filetype {}",
                        b64(name),
                        b64("application/octet-stream")
                    ),
                ),
        )
    }

    /// A tus upload of `len` bytes (must be `201`): its URL.
    fn create(&self, len: usize) -> String {
        let r = self.create_as(&self.token, "big.bin", len);
        assert_eq!(r.status, 201, "create: {r:?}");
        assert_eq!(r.header("tus-resumable"), Some("1.0.0"));
        assert!(
            r.header("upload-expires")
                .is_some_and(|d| d.ends_with(" GMT"))
        );
        let location = r.header("location").expect("Location").to_owned();
        assert!(location.starts_with("/api/v1/tus/"), "{location}");
        Stack::get().url(&location)
    }

    /// A PATCH with `Expect: 100-continue`: the service may refuse a chunk from its head alone (a
    /// wrong offset, version or checksum algorithm) and then closes the connection without reading
    /// the body; a client sending the body regardless could see the reset instead of the answer.
    fn patch_as(
        &self,
        token: &str,
        url: &str,
        offset: usize,
        chunk: &[u8],
        sum: Option<&str>,
    ) -> Reply {
        self.patch_with(token, url, "1.0.0", offset, chunk, sum)
    }

    fn patch_with(
        &self,
        token: &str,
        url: &str,
        version: &str,
        offset: usize,
        chunk: &[u8],
        sum: Option<&str>,
    ) -> Reply {
        let auth = format!("Bearer {token}");
        let offset = offset.to_string();
        let mut headers = vec![
            ("Authorization", auth.as_str()),
            ("Tus-Resumable", version),
            ("Upload-Offset", offset.as_str()),
            ("Content-Type", "application/offset+octet-stream"),
        ];
        if let Some(s) = sum {
            headers.push(("Upload-Checksum", s));
        }
        send_expecting_continue("PATCH", url, &headers, chunk)
    }

    fn patch(&self, url: &str, offset: usize, chunk: &[u8]) -> Reply {
        self.patch_as(&self.token, url, offset, chunk, Some(&checksum(chunk)))
    }

    /// A PATCH that may meet the claim of an earlier one the server has not given back yet (after
    /// a cut, until the server's read of the cut body fails: at once when the host reports the
    /// disconnect, else after the 20 s idle limit): retried on `423`, as tus clients do. With
    /// `Expect: 100-continue`, so a `423` (answered before the body) does not cost the body.
    fn patch_retrying(&self, url: &str, offset: usize, chunk: &[u8]) -> Reply {
        let until = Instant::now() + Duration::from_secs(40);
        let auth = format!("Bearer {}", self.token);
        let sum = checksum(chunk);
        let offset = offset.to_string();
        loop {
            let r = send_expecting_continue(
                "PATCH",
                url,
                &[
                    ("Authorization", &auth),
                    ("Tus-Resumable", "1.0.0"),
                    ("Upload-Offset", &offset),
                    ("Content-Type", "application/offset+octet-stream"),
                    ("Upload-Checksum", &sum),
                ],
                chunk,
            );
            if r.status != 423 || Instant::now() > until {
                return r;
            }
            assert!(r.header("retry-after").is_some(), "{r:?}");
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    fn head_as(&self, token: &str, url: &str) -> Reply {
        send(
            client()
                .head(url)
                .bearer_auth(token)
                .header("tus-resumable", "1.0.0"),
        )
    }

    /// The offset `HEAD` reports (must be `200`).
    fn offset(&self, url: &str) -> usize {
        let r = self.head_as(&self.token, url);
        assert_eq!(r.status, 200, "HEAD: {r:?}");
        assert_eq!(r.header("cache-control"), Some("no-store"));
        r.header("upload-offset").unwrap().parse().unwrap()
    }

    fn delete_as(&self, token: &str, url: &str) -> Reply {
        send(
            client()
                .delete(url)
                .bearer_auth(token)
                .header("tus-resumable", "1.0.0"),
        )
    }
}

fn upload_id(url: &str) -> String {
    url.rsplit('/').next().unwrap().to_owned()
}

/// A column of the upload's session row.
fn session(url: &str, column: &str) -> String {
    psql(&format!(
        "SELECT {column} FROM upload_sessions WHERE id = {}",
        sql_str(&upload_id(url))
    ))
}

/// Sends the head of a PATCH announcing all of `chunk` and only its first half, then drops the
/// connection: a client that lost its network mid-chunk.
fn cut_patch(w: &World, url: &str, offset: usize, chunk: &[u8]) {
    let rest = url.strip_prefix("http://").unwrap();
    let (authority, path) = rest.split_at(rest.find('/').unwrap());
    let mut sock = std::net::TcpStream::connect(authority).unwrap();
    let head = format!(
        "PATCH {path} HTTP/1.1\r\nHost: {authority}\r\nAuthorization: Bearer {}\r\n\
         Tus-Resumable: 1.0.0\r\nUpload-Offset: {offset}\r\n\
         Content-Type: application/offset+octet-stream\r\nContent-Length: {}\r\n\r\n",
        w.token,
        chunk.len()
    );
    sock.write_all(head.as_bytes()).unwrap();
    sock.write_all(&chunk[..chunk.len() / 2]).unwrap();
    sock.flush().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    drop(sock);
}

#[test]
fn chunks_resume_after_a_cut_and_the_last_one_leaves_the_upload_verifying() {
    let w = world();
    let chunk = chunk_limit();
    let size = 2 * chunk + 4 * MIB + 5;
    let data = bytes(size, 1);
    let url = w.create(size);
    assert_eq!(w.offset(&url), 0);

    let first = &data[..chunk];
    let r = w.patch(&url, 0, first);
    assert_eq!(r.status, 204, "{r:?}");
    assert_eq!(r.header("upload-offset"), Some(chunk.to_string().as_str()));
    assert_eq!(r.header("tus-resumable"), Some("1.0.0"));
    assert!(r.header("upload-expires").is_some());

    // The connection breaks half-way through the second chunk: nothing of it counts.
    let second = &data[chunk..2 * chunk];
    cut_patch(&w, &url, chunk, second);
    assert_eq!(
        w.offset(&url),
        chunk,
        "a cut chunk leaves the offset where it was"
    );
    assert_eq!(session(&url, "parts_done"), "1");

    // The client resumes from HEAD's offset with the whole chunk, then the last one.
    let r = w.patch_retrying(&url, chunk, second);
    assert_eq!(r.status, 204, "{r:?}");
    let r = w.patch(&url, 2 * chunk, &data[2 * chunk..]);
    assert_eq!(r.status, 204, "{r:?}");
    assert_eq!(r.header("upload-offset"), Some(size.to_string().as_str()));
    // HEAD after the end says so (a client whose last answer was lost knows it is done).
    assert_eq!(w.offset(&url), size);

    assert_eq!(session(&url, "state"), "verifying");
    // No hash is claimed: the worker's read of the object gives it.
    assert_eq!(session(&url, "claimed_sha256"), "");
    assert_eq!(session(&url, "parts_done"), "3");
    let key = session(&url, "storage_key");
    assert_eq!(
        Bucket::get().object(&key),
        data,
        "stored bytes are the file"
    );
    assert_eq!(Bucket::get().upload_parts(&key), Some(3));
    // Like a direct upload, its attachment is listed as verifying until the worker has read it.
    let attachment = session(&url, "attachment_id");
    let a = send(
        client()
            .get(Stack::get().url(&format!("/api/v1/attachments/{attachment}")))
            .bearer_auth(&w.token),
    );
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(a.json()["virusScanStatus"], "verifying");

    // A PATCH after the end is refused; nothing moves.
    w.patch(&url, size, b"x")
        .assert_problem(409, "upload_not_open");
}

#[test]
fn offset_and_checksum_mismatches_store_nothing() {
    let w = world();
    let chunk = chunk_limit();
    let size = chunk + 3 * MIB;
    let data = bytes(size, 2);
    let url = w.create(size);
    let first = &data[..chunk];

    let r = w.patch(&url, 5, first);
    r.assert_problem(409, "offset_mismatch");
    assert_eq!(r.header("upload-offset"), Some("0"), "says where to resume");

    // A chunk that is not what its checksum says: 460, nothing stored.
    let wrong = checksum(&data[1..chunk + 1]);
    let r = w.patch_as(&w.token, &url, 0, first, Some(&wrong));
    let p = r.assert_problem(460, "checksum_mismatch");
    assert_eq!(p["title"], "Checksum Mismatch");
    assert_eq!(w.offset(&url), 0);
    assert_eq!(session(&url, "parts_done"), "0");

    // Only sha256 is spoken.
    let md5 = format!("md5 {}", STANDARD.encode([0u8; 16]));
    w.patch_as(&w.token, &url, 0, first, Some(&md5))
        .assert_problem(400, "bad_request");
    // Another protocol version.
    let r = w.patch_with(&w.token, &url, "0.2.2", 0, first, None);
    r.assert_problem(412, "tus_version_unsupported");
    assert_eq!(r.header("tus-version"), Some("1.0.0"));
    // A chunk that does not finish the upload must be a whole storage part (5 MiB).
    w.patch(&url, 0, &data[..MIB])
        .assert_problem(400, "chunk_too_small");
    assert_eq!(w.offset(&url), 0);

    // Then the right chunk goes in.
    assert_eq!(w.patch(&url, 0, first).status, 204);
    assert_eq!(w.offset(&url), chunk);
}

#[test]
fn chunks_over_the_limit_or_past_the_length_are_refused() {
    let w = world();
    let chunk = chunk_limit();
    let size = chunk + 3 * MIB;
    let data = bytes(size, 3);
    let url = w.create(size);
    let auth = format!("Bearer {}", w.token);
    let headers = |offset: usize| {
        vec![
            ("Authorization".to_owned(), auth.clone()),
            ("Tus-Resumable".to_owned(), "1.0.0".to_owned()),
            ("Upload-Offset".to_owned(), offset.to_string()),
            (
                "Content-Type".to_owned(),
                "application/offset+octet-stream".to_owned(),
            ),
        ]
    };
    let sendc = |h: Vec<(String, String)>, body: &[u8]| {
        let h: Vec<(&str, &str)> = h.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        send_expecting_continue("PATCH", &url, &h, body)
    };
    // More than upload_chunk_bytes in one PATCH: 413 before a byte is read.
    let over = bytes(chunk + 1, 4);
    let r = sendc(headers(0), &over);
    r.assert_problem(413, "payload_too_large");
    assert_eq!(r.header("tus-resumable"), Some("1.0.0"));
    assert_eq!(w.offset(&url), 0);

    assert_eq!(w.patch(&url, 0, &data[..chunk]).status, 204);
    // 3 MiB are left: 5 MiB more reach past Upload-Length.
    let r = sendc(headers(chunk), &bytes(5 * MIB, 5));
    r.assert_problem(413, "upload_length_exceeded");
    assert_eq!(w.offset(&url), chunk);
    // The same when the length is not declared up front (chunked): counted while reading.
    // The service answers as soon as the count passes the length and does not read the rest: the
    // client may see the connection cut instead of the answer; nothing is stored either way.
    let r = send_may_be_cut(
        client()
            .patch(&url)
            .bearer_auth(&w.token)
            .header("tus-resumable", "1.0.0")
            .header("upload-offset", chunk.to_string())
            .header("content-type", "application/offset+octet-stream")
            .body(reqwest::blocking::Body::new(std::io::Cursor::new(bytes(
                5 * MIB,
                6,
            )))),
    );
    if let Some(r) = r {
        r.assert_problem(413, "upload_length_exceeded");
    }
    assert_eq!(w.offset(&url), chunk);
    assert_eq!(w.patch(&url, chunk, &data[chunk..]).status, 204);
    assert_eq!(
        Bucket::get().object(&session(&url, "storage_key")),
        data,
        "nothing past the length was stored"
    );
}

#[test]
fn termination_aborts_the_parts_and_the_upload_is_gone() {
    let w = world();
    let chunk = chunk_limit();
    let size = chunk + MIB;
    let data = bytes(size, 7);
    let url = w.create(size);
    assert_eq!(w.patch(&url, 0, &data[..chunk]).status, 204);
    let key = session(&url, "storage_key");
    assert_eq!(
        Bucket::get().uploads(&key),
        vec![key.clone()],
        "a multipart upload in progress"
    );

    let r = w.delete_as(&w.token, &url);
    assert_eq!(r.status, 204, "{r:?}");
    assert_eq!(r.header("tus-resumable"), Some("1.0.0"));
    assert!(
        Bucket::get().uploads(&key).is_empty(),
        "no multipart upload left"
    );
    assert!(!Bucket::get().exists(&key));
    assert_eq!(session(&url, "state"), "aborted");
    // Choice: a terminated upload is gone, 404 for everything (tus allows 404 or 410).
    w.patch(&url, chunk, &data[chunk..])
        .assert_problem(404, "not_found");
    assert_eq!(w.head_as(&w.token, &url).status, 404);
    w.delete_as(&w.token, &url).assert_problem(404, "not_found");
}

#[test]
fn an_expired_upload_answers_410() {
    let w = world();
    let chunk = chunk_limit();
    let size = chunk + MIB;
    let data = bytes(size, 8);
    let url = w.create(size);
    assert_eq!(w.patch(&url, 0, &data[..chunk]).status, 204);
    psql(&format!(
        "UPDATE upload_sessions SET expires_at = app_now_ms() - 1000 WHERE id = {}",
        sql_str(&upload_id(&url))
    ));
    assert_eq!(w.head_as(&w.token, &url).status, 410);
    w.patch(&url, chunk, &data[chunk..])
        .assert_problem(410, "upload_expired");
    assert_eq!(session(&url, "upload_offset"), chunk.to_string());
    // The janitor's view: an open session past its expiry is one to abort.
    let claimable = psql(&format!(
        "SELECT count(*) FROM upload_sessions WHERE id = {} AND state = 'open' AND expires_at <= app_now_ms()",
        sql_str(&upload_id(&url))
    ));
    assert_eq!(claimable, "1");
}

#[test]
fn another_users_upload_is_not_found() {
    let w = world();
    let size = 100;
    let url = w.create(size);
    let other = login(&client(), &Stack::get().base_url, w.tenant.user(1)).access;
    assert_eq!(w.head_as(&other, &url).status, 404);
    w.patch_as(&other, &url, 0, &bytes(size, 9), None)
        .assert_problem(404, "not_found");
    w.delete_as(&other, &url).assert_problem(404, "not_found");
    // Another tenant's user, too.
    let mut seed = Stack::get().seed();
    let stranger = login(
        &client(),
        &Stack::get().base_url,
        seed.tenants.remove(0).user(0),
    )
    .access;
    assert_eq!(w.head_as(&stranger, &url).status, 404);
    // The owner's upload is untouched.
    assert_eq!(w.offset(&url), 0);
    assert_eq!(w.patch(&url, 0, &bytes(size, 9)).status, 204);
}

#[test]
fn concurrent_patches_at_one_offset_store_one_chunk() {
    let w = world();
    let chunk = chunk_limit();
    let size = chunk + 2 * MIB;
    let data = bytes(size, 10);
    let url = w.create(size);
    let first = data[..chunk].to_vec();
    let statuses: Vec<u16> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..2)
            .map(|_| s.spawn(|| w.patch(&url, 0, &first).status))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let wins = statuses.iter().filter(|s| **s == 204).count();
    assert_eq!(wins, 1, "exactly one wins: {statuses:?}");
    assert!(
        statuses.iter().all(|s| [204, 409, 423].contains(s)),
        "the other is locked out or finds the offset moved: {statuses:?}"
    );
    assert_eq!(w.offset(&url), chunk);
    assert_eq!(session(&url, "parts_done"), "1");
    assert_eq!(w.patch(&url, chunk, &data[chunk..]).status, 204);
    let key = session(&url, "storage_key");
    assert_eq!(Bucket::get().object(&key), data);
    // No hash is claimed: the worker's read of the object gives it.
    assert_eq!(session(&url, "claimed_sha256"), "");
}

#[test]
fn creation_checks_the_policy_and_may_carry_the_first_chunk() {
    let w = world();
    // The direct upload's checks, before any byte.
    w.create_as(&w.token, "invoice.pdf.exe", 100)
        .assert_problem(415, "blocked_file_type");
    let no_name = send(
        client()
            .post(Stack::get().url(&format!("/api/v1/emails/{}/tus", w.message())))
            .bearer_auth(&w.token)
            .header("tus-resumable", "1.0.0")
            .header("upload-length", "100"),
    );
    no_name.assert_problem(422, "invalid_filename");
    let max: u64 = Stack::get()
        .spin_var("direct_upload_max_bytes", "5368709120")
        .parse()
        .unwrap();
    let r = send(
        client()
            .post(Stack::get().url(&format!("/api/v1/emails/{}/tus", w.message())))
            .bearer_auth(&w.token)
            .header("tus-resumable", "1.0.0")
            .header("upload-length", (max + 1).to_string())
            .header("upload-metadata", format!("filename {}", b64("a.bin"))),
    );
    r.assert_problem(413, "payload_too_large");
    let r = send(
        client()
            .post(Stack::get().url(&format!("/api/v1/emails/{}/tus", w.message())))
            .bearer_auth(&w.token)
            .header("upload-length", "100")
            .header("upload-metadata", format!("filename {}", b64("a.bin"))),
    );
    r.assert_problem(400, "bad_request");

    // creation-with-upload: a small file in the creation request itself.
    let data = bytes(3000, 11);
    let r = send(
        client()
            .post(Stack::get().url(&format!("/api/v1/emails/{}/tus", w.message())))
            .bearer_auth(&w.token)
            .header("tus-resumable", "1.0.0")
            .header("upload-length", data.len().to_string())
            .header("upload-metadata", format!("filename {}", b64("notes.txt")))
            .header("content-type", "application/offset+octet-stream")
            .header("upload-checksum", checksum(&data))
            .body(data.clone()),
    );
    assert_eq!(r.status, 201, "{r:?}");
    assert_eq!(r.header("upload-offset"), Some("3000"));
    let url = Stack::get().url(r.header("location").unwrap());
    assert_eq!(session(&url, "state"), "verifying");
    assert_eq!(session(&url, "protocol"), "tus");
    // No hash is claimed: the worker's read of the object gives it.
    assert_eq!(session(&url, "claimed_sha256"), "");
    assert_eq!(Bucket::get().object(&session(&url, "storage_key")), data);
}

#[test]
fn options_discovers_the_tus_server() {
    let w = world();
    let r = send(client().request(
        reqwest::Method::OPTIONS,
        Stack::get().url(&format!("/api/v1/emails/{}/tus", w.message())),
    ));
    assert_eq!(r.status, 204, "{r:?}");
    assert_eq!(r.header("tus-version"), Some("1.0.0"));
    let ext = r.header("tus-extension").unwrap();
    for e in [
        "creation",
        "creation-with-upload",
        "termination",
        "expiration",
        "checksum",
    ] {
        assert!(ext.split(',').any(|x| x == e), "{e} in {ext}");
    }
    assert_eq!(r.header("tus-checksum-algorithm"), Some("sha256"));
    // Tus-Max-Size is optional and left out (the middleware does not read ingest's limit).
    assert_eq!(r.header("tus-max-size"), None);
    assert!(r.header("allow").unwrap().contains("POST"));
    // On an upload's URL: its methods.
    let r = send(client().request(
        reqwest::Method::OPTIONS,
        Stack::get().url("/api/v1/tus/6f1c2a8e-3b4d-4e5f-8a9b-0c1d2e3f4a5b"),
    ));
    assert_eq!(r.status, 204);
    let allow = r.header("allow").unwrap();
    for m in ["HEAD", "PATCH", "DELETE"] {
        assert!(allow.contains(m), "{m} in {allow}");
    }
    assert_eq!(r.header("tus-version"), Some("1.0.0"));
}

/// A large file is hundreds of chunks: they are counted against the user's chunk limit
/// (`upload_chunk_rate_limit`), never against the per-user request limit (`rate_limit`, 50 a minute
/// by default, which a 1 GiB upload's 128 chunks would exhaust).
#[test]
fn chunks_are_counted_apart_from_the_request_limit() {
    let w = world();
    let me = || {
        send(
            client()
                .get(Stack::get().url("/api/v1/auth/me"))
                .bearer_auth(&w.token),
        )
    };
    let before = me();
    assert!(
        before
            .header("ratelimit-policy")
            .is_some_and(|p| p.starts_with("\"user\"")),
        "{before:?}"
    );
    let left = parse_remaining(before.header("ratelimit").expect("RateLimit"));
    let data = bytes(6 * MIB, 77);
    let url = w.create(data.len() + 1);
    let r = w.patch(&url, 0, &data);
    assert_eq!(r.status, 204, "{r:?}");
    let policy = r.header("ratelimit-policy").expect("RateLimit-Policy");
    assert!(policy.starts_with("\"chunks\""), "{policy}");
    let after = me();
    assert_eq!(
        parse_remaining(after.header("ratelimit").expect("RateLimit")),
        left - 2,
        "the creation and the second GET counted against rate_limit, the chunk did not"
    );
}
