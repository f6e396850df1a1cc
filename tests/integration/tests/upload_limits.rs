//! What one upload may cost the service, over HTTP against the real stack: a multipart body's
//! number of parts and the size of its part headers are bounded while it streams, and a refused body
//! leaves nothing behind (no object, no attachment, blob or scan job).

use std::time::{Duration, Instant, SystemTime};

use integration_tests::{Reply, Stack, Tenant, User, client, login, psql, send};
use reqwest::blocking::Client;
use storage::request::Signer;
use storage::{Body, S3Request, StorageConfig, response};

/// The stack's bucket, listed with the storage crate's signed requests.
struct Bucket {
    cfg: StorageConfig,
    http: Client,
}

impl Bucket {
    fn get() -> Bucket {
        let s = Stack::get();
        let v = |k: &str| {
            s.var(k)
                .unwrap_or_else(|| panic!("{k} is not set (run through scripts/test)"))
                .to_owned()
        };
        Bucket {
            cfg: StorageConfig::new(
                &v("S3_ENDPOINT"),
                &v("S3_REGION"),
                &v("S3_BUCKET"),
                &v("S3_ACCESS_KEY_ID"),
                &v("S3_SECRET_ACCESS_KEY"),
            )
            .expect("storage config"),
            http: Client::new(),
        }
    }

    fn send(&self, r: S3Request) -> (u16, Vec<u8>) {
        let method = reqwest::Method::from_bytes(r.method.as_str().as_bytes()).unwrap();
        let mut rb = self.http.request(method, &r.url);
        for (n, v) in &r.headers {
            if n != "content-length" {
                rb = rb.header(n, v);
            }
        }
        if let Body::Bytes(b) = &r.body {
            rb = rb.body(b.to_vec());
        }
        let res = rb.send().expect("storage request");
        let status = res.status().as_u16();
        (status, res.bytes().expect("storage body").to_vec())
    }

    /// Objects and unfinished multipart uploads under `prefix`.
    fn held(&self, prefix: &str) -> (Vec<String>, Vec<String>) {
        let mut keys = Vec::new();
        let mut next: Option<String> = None;
        loop {
            let req = Signer::new(&self.cfg)
                .list_objects_v2(prefix, next.as_deref(), SystemTime::now())
                .unwrap();
            let (status, body) = self.send(req);
            let page = response::list_page(status, &body).expect("ListObjectsV2");
            keys.extend(page.keys);
            match page.next {
                Some(n) => next = Some(n),
                None => break,
            }
        }
        let req = Signer::new(&self.cfg)
            .list_multipart_uploads(prefix, SystemTime::now())
            .unwrap();
        let (status, body) = self.send(req);
        let uploads = response::multipart_upload_keys(status, &body).expect("ListMultipartUploads");
        (keys, uploads)
    }

    /// Waits (a little: cleanup runs after the answer) until `tenant` holds no object and no open
    /// multipart upload.
    fn assert_tenant_empty(&self, tenant: &str) {
        let prefix = format!("tenants/{tenant}/");
        let start = Instant::now();
        loop {
            let (keys, uploads) = self.held(&prefix);
            if keys.is_empty() && uploads.is_empty() {
                return;
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "left behind: {} objects {keys:?}, multipart uploads {uploads:?}",
                keys.len()
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

/// Rows of `tenant`: attachments, blobs, scan jobs.
fn tenant_rows(tenant: &str) -> String {
    psql(&format!(
        "SELECT (SELECT count(*) FROM email_attachments WHERE tenant_id = '{tenant}') || ',' || \
                (SELECT count(*) FROM attachment_blobs WHERE tenant_id = '{tenant}') || ',' || \
                (SELECT count(*) FROM scan_jobs WHERE tenant_id = '{tenant}')"
    ))
}

struct Who {
    token: String,
    c: Client,
    message: String,
}

fn who(t: &Tenant, user: &User) -> Who {
    let c = client();
    let token = login(&c, &Stack::get().base_url, user).access;
    Who {
        token,
        c,
        message: t.message_of(user, 0).id.clone(),
    }
}

fn post_multipart(w: &Who, base: &str, boundary: &str, body: Vec<u8>) -> Reply {
    send(
        w.c.post(format!("{base}/api/v1/emails/{}/attachments", w.message))
            .bearer_auth(&w.token)
            .header(
                "content-type",
                format!("multipart/form-data; boundary={boundary}"),
            )
            .body(body),
    )
}

/// A multipart body of `n` file parts of `size` bytes each (all different), and its boundary.
fn many_files(n: usize, size: usize) -> (String, Vec<u8>) {
    let boundary = format!("itest-{}", uuid::Uuid::new_v4().simple());
    let mut b = Vec::new();
    for i in 0..n {
        b.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"f{i}\"; \
                 filename=\"f{i}.txt\"\r\nContent-Type: text/plain\r\n\r\n"
            )
            .as_bytes(),
        );
        let line = format!("file {i} ");
        b.extend(line.bytes().cycle().take(size.max(line.len())));
        b.extend_from_slice(b"\r\n");
    }
    b.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (boundary, b)
}

/// One multipart request may carry at most `max_upload_parts` parts and `max_part_header_bytes` of
/// headers per part, judged while the body streams: thousands of tiny files are `413 too_many_parts`
/// (on the unguarded service: thousands of attachments, blobs and scan jobs from one small request),
/// a part header that never ends is `400 part_header_too_large` (unguarded: buffered whole), and one
/// part over the limit after many stored ones refuses the whole request. Nothing is left behind for
/// the tenant: no object, no multipart upload, no attachment, blob or scan job.
#[test]
fn multipart_fan_out_is_refused_while_streaming_and_leaves_nothing() {
    let stack = Stack::get();
    let seed = stack.seed();
    let t = &seed.tenants[0];
    let u = who(t, t.user(0));
    let base = &stack.base_url;
    let max_parts: usize = stack.spin_var("max_upload_parts", "100").parse().unwrap();
    let header_limit: usize = stack
        .spin_var("max_part_header_bytes", "8192")
        .parse()
        .unwrap();
    let bucket = Bucket::get();
    assert_eq!(tenant_rows(&t.id), "0,0,0");

    // 3,000 files of a few bytes: some 250 KiB.
    let (boundary, body) = many_files(3000, 8);
    assert!(body.len() < 300 * 1024);
    post_multipart(&u, base, &boundary, body).assert_problem(413, "too_many_parts");

    // One part more than allowed, after files large enough that the first ones are stored before
    // the last part arrives: the stored ones are deleted again.
    let (boundary, body) = many_files(max_parts + 1, 24 * 1024);
    post_multipart(&u, base, &boundary, body).assert_problem(413, "too_many_parts");

    // A part header that never ends (1 MiB of one header line).
    let boundary = "itest-endless";
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"f\"; filename=\"a.txt\"\r\nX-Pad: "
    )
    .into_bytes();
    body.extend(std::iter::repeat_n(b'a', 1024 * 1024));
    body.extend_from_slice(format!("\r\n\r\nhello\r\n--{boundary}--\r\n").as_bytes());
    post_multipart(&u, base, boundary, body).assert_problem(400, "part_header_too_large");

    // A preamble that never reaches the first boundary is bounded the same way.
    let mut body = vec![b'p'; 4 * header_limit];
    body.extend_from_slice(b"\r\n--itest-late\r\n\r\n\r\nx\r\n--itest-late--\r\n");
    post_multipart(&u, base, "itest-late", body).assert_problem(400, "part_header_too_large");

    bucket.assert_tenant_empty(&t.id);
    assert_eq!(tenant_rows(&t.id), "0,0,0");

    // Within the limits, a multipart upload is accepted as before.
    let (boundary, body) = many_files(3, 16);
    let r = post_multipart(&u, base, &boundary, body);
    assert_eq!(r.status, 201, "{r:?}");
    assert_eq!(r.json()["attachments"].as_array().map(Vec::len), Some(3));
    assert_eq!(tenant_rows(&t.id), "3,3,3");
}
