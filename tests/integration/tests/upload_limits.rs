//! What one upload may cost the service, over HTTP against the real stack: a multipart body's
//! number of parts and the size of its part headers are bounded while it streams; a body must keep a
//! pace, its preamble and part headers included; an upload waits a bounded time for part-buffer
//! memory that others hold. A refused body leaves nothing behind (no object, no attachment, blob or
//! scan job), and other tenants are served meanwhile.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use integration_tests::bucket::Bucket;
use integration_tests::{
    App, Reply, Stack, Tenant, User, client, login, psql, send, send_may_be_cut,
};
use reqwest::blocking::Client;

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

fn multipart_request(
    w: &Who,
    base: &str,
    boundary: &str,
    body: Vec<u8>,
) -> reqwest::blocking::RequestBuilder {
    w.c.post(format!("{base}/api/v1/emails/{}/attachments", w.message))
        .bearer_auth(&w.token)
        .header(
            "content-type",
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(body)
}

fn post_multipart(w: &Who, base: &str, boundary: &str, body: Vec<u8>) -> Reply {
    send(multipart_request(w, base, boundary, body))
}

/// [`post_multipart`] of a body refused while it streams: the answer must be `status` `code`, unless the
/// connection was reset under the client first. Both hosts close the connection after such an early
/// answer without reading the rest of the body (as Spin does), so a client still sending may lose the
/// answer to the reset; that is only possible when the service stopped reading early, i.e. refused.
fn post_multipart_refused(
    w: &Who,
    base: &str,
    boundary: &str,
    body: Vec<u8>,
    status: u16,
    code: &str,
) {
    let r = send_may_be_cut(multipart_request(w, base, boundary, body));
    if let Some(r) = r {
        // The status line comes first; the body may still be lost to the reset.
        assert_eq!(r.status, status, "{r:?}");
        if !r.body.is_empty() {
            r.assert_problem(status, code);
        }
    }
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

    // 3,000 files of a few bytes: some 440 KiB.
    let (boundary, body) = many_files(3000, 8);
    assert!(body.len() < 500 * 1024);
    post_multipart_refused(&u, base, &boundary, body, 413, "too_many_parts");

    // One part more than allowed, after files large enough that the first ones are stored before
    // the last part arrives: the stored ones are deleted again.
    let (boundary, body) = many_files(max_parts + 1, 24 * 1024);
    post_multipart_refused(&u, base, &boundary, body, 413, "too_many_parts");

    // A part header that never ends (1 MiB of one header line).
    let boundary = "itest-endless";
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"f\"; filename=\"a.txt\"\r\nX-Pad: "
    )
    .into_bytes();
    body.extend(std::iter::repeat_n(b'a', 1024 * 1024));
    body.extend_from_slice(format!("\r\n\r\nhello\r\n--{boundary}--\r\n").as_bytes());
    post_multipart_refused(&u, base, boundary, body, 400, "part_header_too_large");

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

/// A hand-written upload over its own connection that sends `head`, then `start` at once, then the
/// rest of `body` one byte every `every`, until the server answers (or `give_up` passes). Returns the
/// answer's status and body, `None` when there was none.
fn trickle(
    addr: &str,
    head: String,
    start: &[u8],
    body: &[u8],
    every: Duration,
    give_up: Duration,
) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(start).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    let begun = Instant::now();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let mut rest = body.iter();
    let mut next_byte = Instant::now() + every;
    while begun.elapsed() < give_up {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                out.extend_from_slice(&buf[..n]);
                // The answer is complete once its body is there: Content-Length bytes, or the
                // last chunk of a chunked body.
                let text = String::from_utf8_lossy(&out);
                if let Some((h, b)) = text.split_once("\r\n\r\n") {
                    let complete = if is_chunked(h) {
                        b.ends_with("0\r\n\r\n")
                    } else {
                        let len = h
                            .lines()
                            .find_map(|l| {
                                let (k, v) = l.split_once(':')?;
                                k.eq_ignore_ascii_case("content-length")
                                    .then(|| v.trim().parse::<usize>().ok())?
                            })
                            .unwrap_or(0);
                        b.len() >= len
                    };
                    if complete {
                        break;
                    }
                }
            }
            Err(_) => {}
        }
        if Instant::now() >= next_byte {
            if let Some(b) = rest.next() {
                // The server may have answered and closed already: the read above then says so.
                let _ = s.write_all(std::slice::from_ref(b));
            }
            next_byte += every;
        }
    }
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text.split_whitespace().nth(1)?.parse().ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    let body = if is_chunked(head) {
        dechunk(body)?
    } else {
        body.to_owned()
    };
    Some((status, body))
}

/// Whether a hand-read answer's head says `Transfer-Encoding: chunked`.
fn is_chunked(head: &str) -> bool {
    head.lines().any(|l| {
        l.split_once(':').is_some_and(|(k, v)| {
            k.eq_ignore_ascii_case("transfer-encoding") && v.trim().eq_ignore_ascii_case("chunked")
        })
    })
}

/// The content of a complete chunked body (`None` when it is not well formed).
fn dechunk(mut body: &str) -> Option<String> {
    let mut out = String::new();
    loop {
        let (size, rest) = body.split_once("\r\n")?;
        let size = usize::from_str_radix(size.split(';').next()?.trim(), 16).ok()?;
        if size == 0 {
            return Some(out);
        }
        out.push_str(rest.get(..size)?);
        body = rest.get(size..)?.strip_prefix("\r\n")?;
    }
}

/// `(status, body)` of a hand-written answer is a problem+json with this code.
#[track_caller]
fn assert_raw_problem(answer: &Option<(u16, String)>, status: u16, code: &str) {
    let Some((got, body)) = answer else {
        panic!("no answer, expected {status} {code}");
    };
    assert_eq!(*got, status, "{body}");
    let v: serde_json::Value =
        serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"));
    assert_eq!(v["code"], code, "{body}");
}

/// Every read of an upload's body keeps a pace, a multipart body's preamble and part headers included
/// (on the unpaced service a byte every 2 s kept an upload alive for as long as the client liked, and a
/// multipart body's headers had no timer at all). On a private app, 40 uploads trickle a byte every 2 s:
/// 20 raw bodies, 10 multipart bodies still in their part headers, 10 in their preamble. Each is
/// `408 request_timeout` once it has spent the 10 s grace below 16 KiB/s, and leaves nothing behind;
/// meanwhile a user of another tenant logs in, uploads, lists and downloads as usual.
#[test]
fn trickling_uploads_time_out_while_other_tenants_are_served() {
    const TRICKLERS: usize = 40;
    let stack = Stack::get();
    let seed = stack.seed();
    let (t1, t2) = (&seed.tenants[0], &seed.tenants[1]);
    let slow = who(t1, t1.user(0));
    let app = App::start(
        "spin.toml",
        &[
            ("SPIN_VARIABLE_RATE_LIMIT", "1000/60s"),
            ("SPIN_VARIABLE_SERVE_UNSCANNED", "true"),
            // One user's forty: the pace is the subject here, not the per-user cap (below).
            ("SPIN_VARIABLE_MAX_CONCURRENT_UPLOADS", "100"),
        ],
    );
    let addr = app.base_url.trim_start_matches("http://").to_owned();
    let boundary = "itest-trickle";
    let part = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"f\"; filename=\"t.txt\"\r\n\
         Content-Type: text/plain\r\n\r\nslow content\r\n--{boundary}--\r\n"
    );
    let answers: Vec<Option<(u16, String)>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..TRICKLERS)
            .map(|i| {
                let (addr, slow, part) = (&addr, &slow, &part);
                scope.spawn(move || {
                    let (ct, start, body): (String, Vec<u8>, Vec<u8>) = match i % 4 {
                        // Raw bodies.
                        0 | 1 => ("text/plain".into(), b"x".to_vec(), vec![b'x'; 999]),
                        // Multipart, in the part headers.
                        2 => (
                            format!("multipart/form-data; boundary={boundary}"),
                            part.as_bytes()[..20].to_vec(),
                            part.as_bytes()[20..].to_vec(),
                        ),
                        // Multipart, in the preamble.
                        _ => {
                            let mut b = b"preamble ".repeat(20);
                            b.extend_from_slice(part.as_bytes());
                            (
                                format!("multipart/form-data; boundary={boundary}"),
                                b[..3].to_vec(),
                                b[3..].to_vec(),
                            )
                        }
                    };
                    let len = if i % 4 < 2 {
                        1000
                    } else {
                        start.len() + body.len()
                    };
                    let head = format!(
                        "POST /api/v1/emails/{}/attachments?filename=slow-{i}.txt HTTP/1.1\r\n\
                         Host: {addr}\r\nAuthorization: Bearer {}\r\nContent-Type: {ct}\r\n\
                         Content-Length: {len}\r\n\r\n",
                        slow.message, slow.token
                    );
                    trickle(
                        addr,
                        head,
                        &start,
                        &body,
                        Duration::from_secs(2),
                        Duration::from_secs(90),
                    )
                })
            })
            .collect();

        // Meanwhile, another tenant's user is served as usual.
        std::thread::sleep(Duration::from_secs(2));
        let c = client();
        let other = t2.user(0);
        let token = login(&c, &app.base_url, other).access;
        let message = &t2.message_of(other, 0).id;
        let attachments = format!("{}/api/v1/emails/{message}/attachments", app.base_url);
        let r = send(
            c.post(format!("{attachments}?filename=fast.txt"))
                .bearer_auth(&token)
                .header("content-type", "text/plain")
                .body("served while others trickle"),
        );
        assert_eq!(r.status, 201, "{r:?}\n{}", app.log_text());
        let id = r.json()["id"].as_str().unwrap().to_owned();
        let r = send(c.get(&attachments).bearer_auth(&token));
        assert_eq!(r.status, 200, "{r:?}");
        assert!(r.body.contains(&id), "{r:?}");
        let r = send(
            c.post(format!(
                "{}/api/v1/attachments/{id}/download-url",
                app.base_url
            ))
            .bearer_auth(&token),
        );
        assert_eq!(r.status, 200, "{r:?}");
        let url = r.json()["url"].as_str().unwrap().to_owned();
        let path = &url[url.find("/api/v1/files/").expect("a signed file URL")..];
        let r = send(c.get(format!("{}{path}", app.base_url)));
        assert_eq!(r.status, 200, "{r:?}");
        assert_eq!(r.body, "served while others trickle");

        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (i, a) in answers.iter().enumerate() {
        assert!(
            a.is_some(),
            "trickling upload {i} got no answer\n{}",
            app.log_text()
        );
        assert_raw_problem(a, 408, "request_timeout");
    }
    Bucket::get().assert_tenant_empty(&t1.id);
    assert_eq!(tenant_rows(&t1.id), "0,0,0");
}

/// One user may have at most `max_concurrent_uploads` uploads in progress, over every instance: on a
/// private app with a cap of 3, three slow uploads of one user hold all three slots (without the cap
/// one user could hold forty, as above, each within its pace); the user's fourth upload is `429
/// too_many_uploads` with `Retry-After` and leaves nothing behind, while a colleague uploads as usual.
/// Once the slow ones have ended (`408`), the user uploads again: every ending gives its slot back.
/// A tus chunk counts too: refused `429` meanwhile, it gives back the claim on its upload taken at
/// the same time, so the same chunk is stored afterwards (not `423 upload_locked`).
#[test]
fn concurrent_uploads_per_user_are_capped() {
    const CAP: usize = 3;
    let stack = Stack::get();
    let seed = stack.seed();
    let t = &seed.tenants[0];
    let (busy, colleague) = (who(t, t.user(0)), who(t, t.user(1)));
    let app = App::start(
        "spin.toml",
        &[
            ("SPIN_VARIABLE_RATE_LIMIT", "1000/60s"),
            ("SPIN_VARIABLE_MAX_CONCURRENT_UPLOADS", "3"),
        ],
    );
    let addr = app.base_url.trim_start_matches("http://").to_owned();
    let upload = |w: &Who, name: &str| {
        send(
            w.c.post(format!(
                "{}/api/v1/emails/{}/attachments?filename={name}",
                app.base_url, w.message
            ))
            .bearer_auth(&w.token)
            .header("content-type", "text/plain")
            .body(format!("content of {name}")),
        )
    };
    let created = send(
        busy.c
            .post(format!(
                "{}/api/v1/emails/{}/tus",
                app.base_url, busy.message
            ))
            .bearer_auth(&busy.token)
            .header("tus-resumable", "1.0.0")
            .header("upload-length", "11")
            .header("upload-metadata", "filename dHVzLnR4dA=="),
    );
    assert_eq!(created.status, 201, "{created:?}");
    let chunk_url = format!(
        "{}{}",
        app.base_url,
        created.header("location").expect("Location")
    );
    let chunk = || {
        send(
            busy.c
                .patch(&chunk_url)
                .bearer_auth(&busy.token)
                .header("tus-resumable", "1.0.0")
                .header("upload-offset", "0")
                .header("content-type", "application/offset+octet-stream")
                .body("tus content"),
        )
    };
    let slow_answers: Vec<Option<(u16, String)>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..CAP)
            .map(|i| {
                let (addr, busy) = (&addr, &busy);
                scope.spawn(move || {
                    let head = format!(
                        "POST /api/v1/emails/{}/attachments?filename=slow-{i}.txt HTTP/1.1\r\n\
                         Host: {addr}\r\nAuthorization: Bearer {}\r\nContent-Type: text/plain\r\n\
                         Content-Length: 1000\r\n\r\n",
                        busy.message, busy.token
                    );
                    trickle(
                        addr,
                        head,
                        b"x",
                        &[b'x'; 999],
                        Duration::from_secs(2),
                        Duration::from_secs(90),
                    )
                })
            })
            .collect();
        // The slow uploads have taken their slots (they are in their 10 s grace).
        std::thread::sleep(Duration::from_secs(3));
        let r = upload(&busy, "fourth.txt");
        r.assert_problem(429, "too_many_uploads");
        assert!(r.header("retry-after").is_some(), "{r:?}");
        chunk().assert_problem(429, "too_many_uploads");
        let r = upload(&colleague, "colleague.txt");
        assert_eq!(r.status, 201, "per user, not per tenant: {r:?}");
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for a in &slow_answers {
        assert_raw_problem(a, 408, "request_timeout");
    }
    let r = upload(&busy, "after.txt");
    assert_eq!(r.status, 201, "the slots were given back: {r:?}");
    let r = chunk();
    assert_eq!(
        r.status, 204,
        "the refused chunk's claim was given back: {r:?}"
    );
    assert_eq!(r.header("upload-offset"), Some("11"), "{r:?}");
    let names = psql(&format!(
        "SELECT string_agg(filename, ',' ORDER BY filename) FROM email_attachments \
         WHERE tenant_id = '{}' AND filename IN ('fourth.txt', 'after.txt', 'colleague.txt') \
         OR filename LIKE 'slow-_.txt' AND tenant_id = '{}'",
        t.id, t.id
    ));
    assert_eq!(names, "after.txt,colleague.txt");
}

/// An upload waits a bounded time for the part-buffer memory that other uploads of the instance hold:
/// on a private app whose budget is one part (8 MiB), a slow upload fills its part buffer and then
/// trickles; a second upload gets `503 service_unavailable` with `Retry-After` after 10 s (on the
/// unbounded service it waited for as long as the slow one lasted), and the slow one ends with
/// `408 request_timeout` at its deadline. Neither leaves anything behind.
#[test]
fn part_buffer_budget_waits_are_bounded() {
    let stack = Stack::get();
    let seed = stack.seed();
    let t = &seed.tenants[1];
    let u = who(t, t.user(1));
    // The holder declares 20 MiB, over the platforms' 10 MiB request cap: an unlimited host of its
    // own, as spin up or SpinKube.
    let app = App::start_unlimited_host(
        "spin.toml",
        &[
            ("SPIN_VARIABLE_MAX_UPLOAD_BYTES", "52428800"),
            ("SPIN_VARIABLE_RATE_LIMIT", "1000/60s"),
            ("SPIN_VARIABLE_UPLOAD_BUFFER_BYTES", "8388608"),
            ("SPIN_VARIABLE_UPLOAD_DEADLINE_SECS", "25"),
        ],
    );
    let addr = app.base_url.trim_start_matches("http://").to_owned();
    let head = format!(
        "POST /api/v1/emails/{}/attachments?filename=holder.dat HTTP/1.1\r\nHost: {addr}\r\n\
         Authorization: Bearer {}\r\nContent-Type: application/octet-stream\r\n\
         Content-Length: {}\r\n\r\n",
        u.message,
        u.token,
        20 * 1024 * 1024
    );
    let filled = vec![b'h'; 7 * 1024 * 1024];
    let trickled = vec![b'h'; 1000];
    std::thread::scope(|scope| {
        let holder = scope.spawn(|| {
            trickle(
                &addr,
                head,
                &filled,
                &trickled,
                Duration::from_secs(2),
                Duration::from_secs(90),
            )
        });
        // The holder's part buffer takes the whole budget once its first bytes are in.
        std::thread::sleep(Duration::from_secs(3));
        // A small waiter: the host reads all of it at once, so the connection holds nothing unread when
        // the early 503 closes it (a larger body would be reset under the client, as under Spin).
        let r = send(
            client()
                .post(format!(
                    "{}/api/v1/emails/{}/attachments?filename=waiter.dat",
                    app.base_url, u.message
                ))
                .bearer_auth(&u.token)
                .header("content-type", "application/octet-stream")
                .body(vec![b'w'; 128 * 1024]),
        );
        r.assert_problem(503, "service_unavailable");
        assert!(r.header("retry-after").is_some(), "{r:?}");
        assert_raw_problem(&holder.join().unwrap(), 408, "request_timeout");
    });
    Bucket::get().assert_tenant_empty(&t.id);
    assert_eq!(tenant_rows(&t.id), "0,0,0");
}

/// A single-request upload over 10 MiB, the request-body cap of Fermyon Wasm Functions / Akamai
/// Functions. Under that platform's profile (the spinlet pass of `scripts/test`) the platform answers it,
/// not the app: declared with `Content-Length`, `413` before the function runs; sent chunked, cut at the
/// cap and answered `413` by the platform whatever the function said. On a host without a cap (real
/// Spin, a dev stack without a profile), the app's own `max_upload_bytes` (10 MiB by default) answers
/// `413 payload_too_large`. Either way nothing is kept: no object, no attachment, blob or scan job.
#[test]
fn the_platform_refuses_a_body_over_its_cap() {
    let stack = Stack::get();
    let seed = stack.seed();
    let t = &seed.tenants[0];
    let u = who(t, t.user(0));
    let over = vec![b'o'; (10 << 20) + (1 << 20)];
    let url = format!(
        "{}/api/v1/emails/{}/attachments?filename=over.bin",
        stack.base_url, u.message
    );
    let auth = format!("Bearer {}", u.token);
    let platform = integration_tests::platform();
    let expect_413 = |r: &Reply| {
        assert_eq!(r.status, 413, "{r:?}");
        let problem = r.header("content-type") == Some("application/problem+json");
        match platform {
            // The platform's own plain answer: the function never answered.
            Some(_) => assert!(!problem, "the platform answers, not the app: {r:?}"),
            None => {
                r.assert_problem(413, "payload_too_large");
            }
        }
    };
    // Declared: judged before the body is sent (Expect: 100-continue, as curl does above 1 MiB).
    let r = integration_tests::send_expecting_continue(
        "POST",
        &url,
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/octet-stream"),
        ],
        &over,
    );
    expect_413(&r);
    // Chunked: no length to judge, counted as it streams and cut at the cap.
    let r = send_may_be_cut(
        u.c.post(&url)
            .bearer_auth(&u.token)
            .header("content-type", "application/octet-stream")
            .body(reqwest::blocking::Body::new(std::io::Cursor::new(
                over.clone(),
            ))),
    );
    if let Some(r) = r {
        expect_413(&r);
    }
    Bucket::get().assert_tenant_empty(&t.id);
    assert_eq!(tenant_rows(&t.id), "0,0,0");
}
