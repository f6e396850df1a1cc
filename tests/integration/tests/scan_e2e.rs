//! Virus scanning end to end: uploads through the app, the real scan worker (`target/release/scan-worker`)
//! against the stack's private clamd (test signatures from crates/scan-worker/signatures), the
//! signed callback, and what users then see (`scan-status`, downloads).
//!
//! The scan queue is one table for the whole stack, so every test here holds [`SERIAL`] and moves
//! its own jobs to the front (`available_at = 0` and `fair_at = 0`, as the admin) before running a worker with
//! `--once --max-jobs n`: the worker then takes exactly those jobs, whatever other tests left
//! pending. Tests whose name starts with `scan_worker_` need no callback component (they post to a
//! tiny receiver in the test); the others go through `POST /api/v1/scan/callback`.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use integration_tests::{Reply, Stack, Tenant, User, client, login, send};
use integration_tests::{now_ms, now_s, psql, sha256_hex};
use reqwest::blocking::Client;
use serde_json::{Value, json};

const EICAR: &[u8] = br"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*";
/// `Attachments.Test.Marker` (test.ndb) matches these bytes anywhere in the content.
const MARKER: &[u8] = b"ATTACHMENTS-SCAN-TEST-MARKER";

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

// ---------------------------------------------------------------------------------------------
// Helpers

fn var(k: &str) -> String {
    Stack::get()
        .var(k)
        .unwrap_or_else(|| panic!("{k} is not set (run through scripts/test)"))
        .to_owned()
}

/// Unique content: `label`, a uuid, then filler up to `len` bytes.
fn content(label: &str, len: usize) -> Vec<u8> {
    let mut v = format!("{label}:{}:", uuid::Uuid::new_v4()).into_bytes();
    let mut i = 0u32;
    while v.len() < len {
        v.push(b'a' + (i.wrapping_mul(2_654_435_761) >> 27) as u8 % 26);
        i += 1;
    }
    v
}

struct World {
    tenant: Tenant,
    user: User,
    token: String,
}

fn world() -> World {
    let mut seed = Stack::get().seed();
    let tenant = seed.tenants.remove(0);
    let user = tenant.user(0).clone();
    let token = login(&client(), &Stack::get().base_url, &user).access;
    World {
        tenant,
        user,
        token,
    }
}

impl World {
    fn message(&self, n: usize) -> String {
        self.tenant.message_of(&self.user, n).id.clone()
    }

    /// A raw upload (must be `201`); returns the Attachment.
    fn upload(&self, message: &str, name: &str, body: &[u8]) -> Value {
        let r = send(
            client()
                .post(Stack::get().url(&format!("/api/v1/emails/{message}/attachments")))
                .bearer_auth(&self.token)
                .header("content-type", "text/plain")
                .header(
                    "content-disposition",
                    format!("attachment; filename=\"{name}\""),
                )
                .body(body.to_vec()),
        );
        assert_eq!(r.status, 201, "upload {name}: {r:?}");
        r.json()
    }

    fn scan_status(&self, id: &str) -> Value {
        let r = send(
            client()
                .get(Stack::get().url(&format!("/api/v1/attachments/{id}/scan-status")))
                .bearer_auth(&self.token),
        );
        assert_eq!(r.status, 200, "scan-status: {r:?}");
        r.json()
    }

    /// Issues a download URL and fetches it: `(status, body)`. Refused issuance counts as the answer.
    fn download(&self, id: &str) -> (Reply, Vec<u8>) {
        let c: Client = client();
        let r = send(
            c.post(Stack::get().url(&format!("/api/v1/attachments/{id}/download-url")))
                .bearer_auth(&self.token)
                .json(&json!({})),
        );
        if r.status != 200 {
            return (r, Vec::new());
        }
        let url = r.json()["url"].as_str().expect("url").to_owned();
        let res = c.get(url).send().expect("download");
        let status = res.status().as_u16();
        let ct = res
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let rid = res
            .headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let bytes = res.bytes().expect("body").to_vec();
        let mut headers = HashMap::new();
        headers.insert("content-type".to_owned(), ct);
        headers.insert("x-request-id".to_owned(), rid);
        let reply = Reply {
            status,
            headers,
            body: String::from_utf8_lossy(&bytes).into_owned(),
        };
        (reply, bytes)
    }

    #[track_caller]
    fn assert_blocked(&self, id: &str) {
        let (r, _) = self.download(id);
        assert_eq!(r.status, 403, "download of {id} must be refused: {r:?}");
        assert_eq!(r.json()["code"], "scan_blocked", "{r:?}");
    }
}

/// The open job of an attachment's content: (job id, blob id).
fn job_of(attachment: &str) -> (String, String) {
    let row = psql(&format!(
        "SELECT j.id || ' ' || j.blob_id FROM scan_jobs j JOIN email_attachments a ON a.blob_id = j.blob_id \
         WHERE a.id = '{attachment}' ORDER BY j.created_at DESC LIMIT 1"
    ));
    let (j, b) = row
        .split_once(' ')
        .unwrap_or_else(|| panic!("no scan job for attachment {attachment}: {row:?}"));
    (j.to_owned(), b.to_owned())
}

fn job_row(job: &str) -> Value {
    let row = psql(&format!(
        "SELECT json_build_object('status', status, 'attempts', attempts, 'locked_by', locked_by, \
         'last_error', last_error, 'lease_expires_at', lease_expires_at, 'available_at', available_at) \
         FROM scan_jobs WHERE id = '{job}'"
    ));
    serde_json::from_str(&row).unwrap_or_else(|e| panic!("job {job}: {e}: {row}"))
}

/// Puts these jobs first in the queue (pending ones become available now, first in fair order).
fn prioritise(jobs: &[&str]) {
    let list = jobs
        .iter()
        .map(|j| format!("'{j}'"))
        .collect::<Vec<_>>()
        .join(",");
    psql(&format!(
        "UPDATE scan_jobs SET available_at = 0, fair_at = 0 WHERE id IN ({list}) AND status = 'pending'"
    ));
}

/// A scan worker that takes scan jobs only: `--max-jobs n` then counts exactly this test's jobs,
/// whatever direct uploads other tests left to verify.
fn worker(extra: &[&str], env: &[(&str, &str)]) -> Command {
    integration_tests::scan_worker("scan", extra, env)
}

/// Runs a worker to its end (`--once`); returns its JSON log lines.
#[track_caller]
fn run_worker(extra: &[&str], env: &[(&str, &str)]) -> Vec<Value> {
    let out: Output = worker(&[&["--once"], extra].concat(), env)
        .output()
        .expect("scan-worker");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "scan-worker failed ({}): {stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
        .lines()
        .map(|l| {
            serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON log line ({e}): {l}"))
        })
        .collect()
}

/// Scans exactly these attachments' jobs now.
#[track_caller]
fn scan_now(attachments: &[&str]) -> Vec<Value> {
    let jobs: Vec<String> = attachments.iter().map(|a| job_of(a).0).collect();
    let refs: Vec<&str> = jobs.iter().map(String::as_str).collect();
    prioritise(&refs);
    let n = jobs.len().to_string();
    let log = run_worker(&["--max-jobs", &n, "--concurrency", "2"], &[]);
    for j in &jobs {
        assert!(
            log.iter()
                .any(|l| l["job"] == j.as_str() && l["msg"] == "job.done"),
            "job {j} not done by the worker: {log:#?}"
        );
    }
    log
}

/// What the stand-in callback received: headers (lower-case names) and body.
type Received = (HashMap<String, String>, Vec<u8>);

/// A tiny HTTP receiver standing in for the callback: answers `status` to every request and hands
/// over (headers, body) of each.
fn receiver(status: u16) -> (String, mpsc::Receiver<Received>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/api/v1/scan/callback", l.local_addr().unwrap());
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for conn in l.incoming() {
            let Ok(mut conn) = conn else { return };
            let mut r = BufReader::new(conn.try_clone().unwrap());
            let mut headers = HashMap::new();
            let mut line = String::new();
            r.read_line(&mut line).unwrap();
            loop {
                line.clear();
                if r.read_line(&mut line).unwrap() == 0 || line == "\r\n" {
                    break;
                }
                if let Some((k, v)) = line.trim_end().split_once(':') {
                    headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
                }
            }
            let len: usize = headers
                .get("content-length")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            let mut body = vec![0; len];
            r.read_exact(&mut body).unwrap();
            let _ = conn.write_all(
                format!("HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                    .as_bytes(),
            );
            if tx.send((headers, body)).is_err() {
                return;
            }
        }
    });
    (url, rx)
}

// ---------------------------------------------------------------------------------------------
// The worker on its own: database, storage, clamd, and the exact request it sends.

#[test]
fn scan_worker_posts_a_signed_verdict() {
    let _g = serial();
    let w = world();
    let a = w.upload(&w.message(0), "notes.txt", EICAR);
    assert_eq!(a["virusScanStatus"], "pending", "{a}");
    let id = a["id"].as_str().unwrap();
    let (job, _) = job_of(id);
    prioritise(&[&job]);

    let (url, got) = receiver(204);
    let log = run_worker(&["--max-jobs", "1"], &[("SCAN_CALLBACK_URL", &url)]);
    let (headers, body) = got
        .recv_timeout(Duration::from_secs(5))
        .expect("the worker posted a verdict");

    // Signed with the stack's secret over the exact bytes, with a current timestamp.
    let header = headers.get("x-scan-signature").expect("X-Scan-Signature");
    // `scan-worker:<secret>`: the worker signs with the secret the app knows by that name.
    let named = var("SCAN_CALLBACK_SECRET");
    let (name, secret) = named.split(',').next().unwrap().split_once(':').unwrap();
    assert_eq!(name, "scan-worker");
    assert!(
        log.iter()
            .any(|l| l["msg"] == "worker.started" && l["callback_as"] == "scan-worker"),
        "{log:#?}"
    );
    let t: i64 = header
        .split(',')
        .find_map(|p| p.strip_prefix("t="))
        .unwrap()
        .parse()
        .unwrap();
    assert!((t - now_s()).abs() < 60, "t={t}");
    let expected = scan_core::signature::sign(secret.as_bytes(), t, &body);
    assert_eq!(header, &expected);
    assert!(
        headers
            .get("content-type")
            .is_some_and(|v| v.starts_with("application/json"))
    );

    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["tenantId"], w.tenant.id.as_str(), "{v}");
    assert_eq!(v["contentHash"], sha256_hex(EICAR), "{v}");
    assert_eq!(v["status"], "infected", "{v}");
    assert!(v["signature"].as_str().unwrap().contains("EICAR"), "{v}");
    assert!(v["engine"].as_str().unwrap().starts_with("ClamAV"), "{v}");
    let at = v["scannedAt"].as_i64().unwrap();
    assert!((at / 1000 - now_s()).abs() < 60, "scannedAt {at}");

    // The job is done; nothing in the log carries a secret.
    assert_eq!(job_row(&job)["status"], "done");
    let text = log.iter().map(Value::to_string).collect::<String>();
    for s in [secret, &var("S3_SECRET_ACCESS_KEY"), header.as_str()] {
        assert!(!text.contains(s), "a secret in the log: {text}");
    }
}

#[test]
fn scan_worker_hands_back_on_callback_5xx_and_too_large_is_an_error() {
    let _g = serial();
    let w = world();
    let a = w.upload(&w.message(0), "a.txt", &content("retry", 2000));
    let (job, _) = job_of(a["id"].as_str().unwrap());
    prioritise(&[&job]);
    let (url, got) = receiver(503);
    let log = run_worker(&["--max-jobs", "1"], &[("SCAN_CALLBACK_URL", &url)]);
    // Retried a few times within the job, then handed back to the database with backoff.
    assert!(got.recv_timeout(Duration::from_secs(1)).is_ok());
    assert!(got.try_iter().count() >= 2, "retried within the job");
    let row = job_row(&job);
    assert_eq!(row["status"], "pending", "{row} {log:?}");
    assert_eq!(row["attempts"], 1);
    assert!(row["last_error"].as_str().unwrap().contains("503"), "{row}");
    assert!(
        row["available_at"].as_i64().unwrap() > now_s() * 1000,
        "backed off: {row}"
    );

    // Above the worker's cap: verdict error "too large to scan", nothing sent to clamd.
    let big = w.upload(&w.message(1), "big.txt", &content("big", 5000));
    let (job, _) = job_of(big["id"].as_str().unwrap());
    prioritise(&[&job]);
    let (url, got) = receiver(204);
    run_worker(
        &["--max-jobs", "1", "--max-scan-bytes", "4096"],
        &[("SCAN_CALLBACK_URL", &url)],
    );
    let (_, body) = got.recv_timeout(Duration::from_secs(5)).expect("a verdict");
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["status"], "error", "{v}");
    assert!(
        v["details"].as_str().unwrap().contains("too large to scan"),
        "{v}"
    );
    assert_eq!(job_row(&job)["status"], "done");
}

// ---------------------------------------------------------------------------------------------
// Through the scan callback: what users see.

#[test]
fn scan_eicar_is_infected_and_never_served() {
    let _g = serial();
    let w = world();
    let a = w.upload(&w.message(0), "notes.txt", EICAR);
    assert_eq!(a["virusScanStatus"], "pending", "{a}");
    let id = a["id"].as_str().unwrap();
    assert_eq!(w.scan_status(id)["status"], "pending");
    w.assert_blocked(id);
    // The same bytes on another message of the tenant: deduplicated, one job for both.
    let b = w.upload(&w.message(1), "copy.txt", EICAR);
    assert_eq!(b["isDeduplicated"], true, "{b}");
    let b_id = b["id"].as_str().unwrap();

    scan_now(&[id]);

    for att in [id, b_id] {
        let s = w.scan_status(att);
        assert_eq!(s["status"], "infected", "{s}");
        assert!(
            s.to_string().contains("Attachments.Test.EICAR"),
            "the signature name: {s}"
        );
        assert!(
            s["engine"]
                .as_str()
                .is_some_and(|e| e.starts_with("ClamAV")),
            "{s}"
        );
        assert!(s["scannedAt"].is_number(), "{s}");
        w.assert_blocked(att);
    }
    let (job, blob) = job_of(id);
    assert_eq!(job_row(&job)["status"], "done");
    // The verdict's audit row names the worker: its key is `scan-worker` in the app's ring.
    let scanner = psql(&format!(
        "SELECT string_agg(details->>'scanner', ',') FROM email_audit_log \
         WHERE action = 'scan.verdict' AND resource_id = '{blob}'"
    ));
    assert_eq!(scanner, "scan-worker");
    // The callback also took the object out of its normal key (moved to quarantine/ or deleted).
    let start = Instant::now();
    while psql(&format!(
        "SELECT coalesce(quarantine_action, '') FROM attachment_blobs WHERE id = '{blob}'"
    ))
    .is_empty()
    {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the infected object was not quarantined"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn scan_clean_file_is_served_and_dedup_shares_the_verdict() {
    let _g = serial();
    let w = world();
    let bytes = content("clean", 3000);
    let a = w.upload(&w.message(0), "report.txt", &bytes);
    let id = a["id"].as_str().unwrap();
    w.assert_blocked(id);
    scan_now(&[id]);
    let s = w.scan_status(id);
    assert_eq!(s["status"], "clean", "{s}");
    let (r, got) = w.download(id);
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(got, bytes);

    // Uploaded again after the verdict, on another message: the stored content's verdict holds at once.
    let b = w.upload(&w.message(1), "again.txt", &bytes);
    assert_eq!(b["isDeduplicated"], true, "{b}");
    assert_eq!(b["virusScanStatus"], "clean", "{b}");
    let b_id = b["id"].as_str().unwrap();
    assert_eq!(w.scan_status(b_id)["status"], "clean");
    let (r, got) = w.download(b_id);
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(got, bytes);
}

#[test]
fn scan_a_colleagues_upload_of_the_same_bytes_is_not_revealed() {
    let _g = serial();
    let a = world();
    let b_user = a.tenant.user(1).clone();
    let b = World {
        tenant: a.tenant.clone(),
        token: login(&client(), &Stack::get().base_url, &b_user).access,
        user: b_user,
    };
    let bytes = content("colleague", 2500);
    let first = a.upload(&a.message(0), "minutes.txt", &bytes);
    let first_id = first["id"].as_str().unwrap();
    scan_now(&[first_id]);
    assert_eq!(a.scan_status(first_id)["status"], "clean");

    // A colleague uploads the same bytes: nothing in the answer says anyone had them, and the
    // content's verdict is not handed over before a scan of this upload.
    let second = b.upload(&b.message(0), "copy-of-minutes.txt", &bytes);
    assert_eq!(second["isDeduplicated"], false, "{second}");
    assert_eq!(second["virusScanStatus"], "pending", "{second}");
    let id = second["id"].as_str().unwrap();
    let s = b.scan_status(id);
    assert_eq!(s["status"], "pending", "{s}");
    for k in ["engine", "signature", "details", "scannedAt"] {
        assert!(s[k].is_null(), "{k} of a pending upload: {s}");
    }
    b.assert_blocked(id);
    let listed = send(
        client()
            .get(Stack::get().url(&format!("/api/v1/emails/{}/attachments", b.message(0))))
            .bearer_auth(&b.token),
    )
    .json();
    let row = &listed["attachments"][0];
    assert_eq!(
        (
            row["id"].as_str(),
            &row["isDeduplicated"],
            &row["virusScanStatus"]
        ),
        (Some(id), &json!(false), &json!("pending")),
        "{listed}"
    );
    // Their own second copy is deduplicated against their own first one, and pending alike.
    let again = b.upload(&b.message(1), "again.txt", &bytes);
    assert_eq!(again["isDeduplicated"], true, "{again}");
    assert_eq!(again["virusScanStatus"], "pending", "{again}");
    // The first uploader still sees the verdict.
    assert_eq!(a.scan_status(first_id)["status"], "clean");

    // The scan of the colleague's upload: then (and only then) its verdict.
    scan_now(&[id]);
    for att in [id, again["id"].as_str().unwrap()] {
        let s = b.scan_status(att);
        assert_eq!(s["status"], "clean", "{s}");
        assert!(s["scannedAt"].is_number(), "{s}");
        let (r, got) = b.download(att);
        assert_eq!(r.status, 200, "{r:?}");
        assert_eq!(got, bytes);
    }
}

#[test]
fn scan_marker_at_the_end_of_a_large_file_is_found() {
    let _g = serial();
    let w = world();
    // 6 MiB of text with the test marker in its last bytes: the whole object went through clamd.
    let mut bytes = content("large", 6 * 1024 * 1024);
    bytes.extend_from_slice(MARKER);
    let a = w.upload(&w.message(0), "large.txt", &bytes);
    let id = a["id"].as_str().unwrap();
    scan_now(&[id]);
    let s = w.scan_status(id);
    assert_eq!(s["status"], "infected", "{s}");
    assert!(s.to_string().contains("Attachments.Test.Marker"), "{s}");
    w.assert_blocked(id);
}

#[test]
fn scan_job_of_a_killed_worker_is_taken_over_after_its_lease() {
    let _g = serial();
    let w = world();
    let bytes = content("takeover", 1000);
    let a = w.upload(&w.message(0), "t.txt", &bytes);
    let id = a["id"].as_str().unwrap();
    let (job, _) = job_of(id);
    prioritise(&[&job]);

    // A "clamd" that accepts connections and never answers: the first worker hangs mid-job.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_addr = silent.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for c in silent.incoming() {
            match c {
                Ok(c) => held.push(c),
                Err(_) => return,
            }
        }
    });
    let name = format!("itest-hung-{}", uuid::Uuid::new_v4().simple());
    let mut hung: Child = worker(
        &[
            "--once",
            "--max-jobs",
            "1",
            "--concurrency",
            "1",
            "--lease-secs",
            "6",
            "--worker-name",
            &name,
            "--clamd",
            &silent_addr,
        ],
        &[],
    )
    .stdout(Stdio::null())
    .spawn()
    .expect("scan-worker");
    let start = Instant::now();
    loop {
        let row = job_row(&job);
        if row["status"] == "running" && row["locked_by"] == name.as_str() {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the first worker never claimed the job: {row}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(300));
    hung.kill().unwrap();
    hung.wait().unwrap();
    let row = job_row(&job);
    assert_eq!(row["status"], "running", "{row}");
    assert_eq!(row["locked_by"], name.as_str());
    assert_eq!(w.scan_status(id)["status"], "pending");

    // Before the lease ends nobody else may take it; after, the next worker does.
    let lease_end = row["lease_expires_at"].as_i64().unwrap();
    if lease_end > now_ms() + 1500 {
        let log = run_worker(&["--max-jobs", "1"], &[]);
        assert!(
            !log.iter().any(|l| l["job"] == job.as_str()),
            "taken before the lease ended: {log:?}"
        );
    }
    let now = now_ms();
    if lease_end > now {
        std::thread::sleep(Duration::from_millis((lease_end - now + 300) as u64));
    }
    let log = run_worker(&["--max-jobs", "1"], &[]);
    assert!(
        log.iter()
            .any(|l| l["job"] == job.as_str() && l["msg"] == "job.done" && l["attempt"] == 2),
        "the job was not taken over: {log:#?}"
    );
    let row = job_row(&job);
    assert_eq!(
        (row["status"].as_str(), row["attempts"].as_i64()),
        (Some("done"), Some(2)),
        "{row}"
    );
    assert_eq!(w.scan_status(id)["status"], "clean");
}
