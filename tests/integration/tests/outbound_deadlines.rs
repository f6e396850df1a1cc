//! Outbound calls have deadlines: a dependency that stops answering in the middle of an upload costs
//! the request `outbound_timeout_secs`, not the platform's whole handler limit, and the upload then
//! answers `503 upstream_timeout` and leaves nothing behind: no attachment row, no object, no
//! unfinished multipart upload. Each test runs a private app whose storage or database is reached
//! through a [`StallProxy`], so only that app sees the dependency hang; the shared services keep
//! serving the other tests.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use integration_tests::bucket::Bucket;
use integration_tests::proxy::StallProxy;
use integration_tests::{App, Stack, Tenant, User, client, login, psql};

/// The deadline the private apps run with: short, so a stall is noticed quickly.
const TIMEOUT_SECS: &str = "2";
/// The uploads here are over the platforms' 10 MiB request cap (a multipart upload has to be under way
/// when the service stops answering): they run on an unlimited host of their own, as `spin up` or
/// SpinKube, that takes 50 MiB.
const UNCAPPED_MAX_UPLOAD: (&str, &str) = ("SPIN_VARIABLE_MAX_UPLOAD_BYTES", "52428800");

/// More than one part of the ingest component's multipart uploads (8 MiB): a multipart upload is
/// under way once this much has been sent.
const FIRST: usize = 9 * 1024 * 1024;

/// Rows of `tenant`: attachments, blobs, scan jobs.
fn tenant_rows(tenant: &str) -> String {
    psql(&format!(
        "SELECT (SELECT count(*) FROM email_attachments WHERE tenant_id = '{tenant}') || ',' || \
                (SELECT count(*) FROM attachment_blobs WHERE tenant_id = '{tenant}') || ',' || \
                (SELECT count(*) FROM scan_jobs WHERE tenant_id = '{tenant}')"
    ))
}

/// `host:port` of a URL such as `http://127.0.0.1:3900`.
fn host_port(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    rest.split('/').next().unwrap_or(rest)
}

/// A raw upload of `total` bytes by `user` over its own connection to `app`: `FIRST` bytes are sent,
/// then `between` runs (the test stalls a dependency there), then the rest is sent. Returns the
/// answer's status and body. The server may answer before it has read everything: sending the rest
/// may then fail, which is fine.
fn upload_with_pause(
    app: &App,
    user: &User,
    message: &str,
    total: usize,
    between: impl FnOnce(),
) -> (u16, String) {
    let token = login(&client(), &Stack::get().base_url, user).access;
    let addr = app.base_url.trim_start_matches("http://").to_owned();
    let mut s = TcpStream::connect(&addr).expect("connect");
    let head = format!(
        "POST /api/v1/emails/{message}/attachments?filename=stalled.bin HTTP/1.1\r\nHost: {addr}\r\n\
         Authorization: Bearer {token}\r\nContent-Type: application/octet-stream\r\n\
         Content-Length: {total}\r\n\r\n"
    );
    let mut writer = s.try_clone().expect("clone");
    let (sent_first, first_sent) = mpsc::channel();
    let (go_on, go) = mpsc::channel::<()>();
    let sender = std::thread::spawn(move || {
        // Different bytes per part, so nothing about the content is special.
        let body: Vec<u8> = (0..total).map(|i| (i / 4096 % 251) as u8).collect();
        let ok =
            writer.write_all(head.as_bytes()).is_ok() && writer.write_all(&body[..FIRST]).is_ok();
        let _ = sent_first.send(ok);
        if go.recv().is_ok() {
            let _ = writer.write_all(&body[FIRST..]);
        }
    });
    assert!(
        first_sent.recv().expect("sender"),
        "the first bytes could not be sent"
    );
    between();
    go_on.send(()).expect("sender waits");
    // The answer: complete once its body is there (Content-Length, or the last chunk), or the
    // server closed.
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
        let text = String::from_utf8_lossy(&out);
        if let Some((h, b)) = text.split_once("\r\n\r\n") {
            if is_chunked(h) {
                if b.ends_with("0\r\n\r\n") {
                    break;
                }
                continue;
            }
            let len = h
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse::<usize>().ok())?
                })
                .unwrap_or(0);
            if b.len() >= len {
                break;
            }
        }
    }
    let _ = s.shutdown(std::net::Shutdown::Both);
    let _ = sender.join();
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no answer: {text:?}\n{}", app.log_text()));
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let body = if is_chunked(head) {
        dechunk(body)
    } else {
        body.to_owned()
    };
    (status, body)
}

fn is_chunked(head: &str) -> bool {
    head.lines().any(|l| {
        l.split_once(':').is_some_and(|(k, v)| {
            k.eq_ignore_ascii_case("transfer-encoding") && v.trim().eq_ignore_ascii_case("chunked")
        })
    })
}

/// The content of a chunked body (`<hex size>\r\n<data>\r\n ... 0\r\n\r\n`).
fn dechunk(mut rest: &str) -> String {
    let mut out = String::new();
    while let Some((size, after)) = rest.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || after.len() < n {
            break;
        }
        out.push_str(&after[..n]);
        rest = after[n..].trim_start_matches("\r\n");
    }
    out
}

/// Waits until `app` has logged `needle`; the app writes its log lines as things happen, so this
/// waits for the event, not for a time.
#[track_caller]
fn wait_for_log(app: &App, needle: &str) {
    let start = Instant::now();
    while !app.log_text().contains(needle) {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no {needle} in the log:\n{}",
            app.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The answer is `503 upstream_timeout` problem+json (and so not a `201`).
#[track_caller]
fn assert_upstream_timeout(answer: &(u16, String), app: &App) {
    let (status, body) = answer;
    assert_eq!(*status, 503, "{body}\n{}", app.log_text());
    let v: serde_json::Value =
        serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"));
    assert_eq!(v["code"], "upstream_timeout", "{body}");
    assert_eq!(v["status"], 503, "{body}");
}

fn owner(t: &Tenant) -> (&User, String) {
    let u = t.user(0);
    (u, t.message_of(u, 0).id.clone())
}

/// Storage stops answering in the middle of a 20 MiB upload (a multipart upload under way, parts
/// going up): on the service without deadlines the request waited for as long as storage hung. Here
/// the part upload gives up after the deadline, the upload answers `503 upstream_timeout`, and the
/// multipart upload it began is aborted: not while storage hangs (that would cost the request
/// another deadline), but by retries after the answer, once storage is back. No row is written.
#[test]
fn storage_that_stops_answering_mid_upload_is_a_503_and_leaves_nothing() {
    let stack = Stack::get();
    let seed = stack.seed();
    let t = &seed.tenants[0];
    let (user, message) = owner(t);
    let endpoint = stack.var("S3_ENDPOINT").expect("S3_ENDPOINT");
    let proxy = StallProxy::start(host_port(endpoint));
    let app = App::start_unlimited_host(
        "spin.toml",
        &[
            UNCAPPED_MAX_UPLOAD,
            ("SPIN_VARIABLE_RATE_LIMIT", "1000/60s"),
            ("SPIN_VARIABLE_OUTBOUND_TIMEOUT_SECS", TIMEOUT_SECS),
            (
                "SPIN_VARIABLE_S3_ENDPOINT",
                &format!("http://{}", proxy.addr()),
            ),
        ],
    );
    let bucket = Bucket::get();
    assert_eq!(tenant_rows(&t.id), "0,0,0");

    let answer = upload_with_pause(&app, user, &message, 20 * 1024 * 1024, || {
        bucket.wait_for_multipart_upload(&t.id);
        proxy.stall();
    });
    assert_upstream_timeout(&answer, &app);
    // Storage had just run into the deadline: the abort was handed to the retries, not tried then.
    assert!(
        app.log_text().contains("storage_cleanup_deferred"),
        "{}",
        app.log_text()
    );

    proxy.resume();
    bucket.assert_tenant_empty_or(&t.id, || app.log_text());
    // It was the retry that removed it (its log line may trail storage's answer a little).
    wait_for_log(&app, "storage_cleanup_retried");
    assert_eq!(tenant_rows(&t.id), "0,0,0");
}

/// The database stops answering after an upload's checks, while its body streams to storage: the
/// transaction that records it cannot begin within the deadline, the upload answers
/// `503 upstream_timeout`, and the object it stored is deleted. No row is written, then or once the
/// database answers again.
#[test]
fn a_database_that_stops_answering_mid_upload_is_a_503_and_leaves_nothing() {
    let stack = Stack::get();
    let seed = stack.seed();
    let t = &seed.tenants[1];
    let (user, message) = owner(t);
    let db_host = stack
        .var("SPIN_VARIABLE_DB_HOST")
        .expect("SPIN_VARIABLE_DB_HOST");
    let proxy = StallProxy::start(db_host);
    let app = App::start_unlimited_host(
        "spin.toml",
        &[
            UNCAPPED_MAX_UPLOAD,
            ("SPIN_VARIABLE_RATE_LIMIT", "1000/60s"),
            ("SPIN_VARIABLE_OUTBOUND_TIMEOUT_SECS", TIMEOUT_SECS),
            ("SPIN_VARIABLE_DB_HOST", proxy.addr()),
        ],
    );
    let bucket = Bucket::get();
    assert_eq!(tenant_rows(&t.id), "0,0,0");

    let answer = upload_with_pause(&app, user, &message, 12 * 1024 * 1024, || {
        // The upload's checks (message, owner) went through the proxy: the database was reachable.
        bucket.wait_for_multipart_upload(&t.id);
        assert!(proxy.accepted() > 0, "the app never reached the database");
        proxy.stall();
    });
    assert_upstream_timeout(&answer, &app);
    bucket.assert_tenant_empty_or(&t.id, || app.log_text());

    proxy.resume();
    assert_eq!(tenant_rows(&t.id), "0,0,0");
    // The app serves again once the database answers: what the abandoned connection held did not
    // stay in anyone's way.
    let c = client();
    let token = login(&c, &app.base_url, user).access;
    let r = integration_tests::send(
        c.get(format!(
            "{}/api/v1/emails/{message}/attachments",
            app.base_url
        ))
        .bearer_auth(&token),
    );
    assert_eq!(r.status, 200, "{r:?}\n{}", app.log_text());
    assert_eq!(
        r.json()["attachments"].as_array().map(Vec::len),
        Some(0),
        "{r:?}"
    );
}
