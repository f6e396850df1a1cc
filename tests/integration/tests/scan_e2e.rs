//! Virus scanning end to end: uploads through the app, the real scan worker (`target/release/scan-worker`)
//! against the stack's private clamd (test signatures from crates/scan-worker/signatures), the
//! signed callback, and what users then see (`scan-status`, downloads).
//!
//! The scan queue is one table for the whole stack, so every test here holds [`SERIAL`] and moves
//! its own jobs to the front (`available_at = 0`, and a `fair_at` below every earlier test's: minus
//! the time in ms, as the admin) before running a worker with `--once --max-jobs n`: the worker then
//! takes exactly those jobs, whatever other tests left pending, also a job another test prioritised
//! and handed back whose retry backoff ends meanwhile. Tests whose name starts with `scan_worker_` need no callback component (they post to a
//! tiny receiver in the test); the others go through `POST /api/v1/scan/callback`.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use integration_tests::uploads::Uploader;
use integration_tests::{Reply, Stack, client, login, send};
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
        "UPDATE scan_jobs SET available_at = 0, fair_at = {AHEAD_OF_EARLIER} \
         WHERE id IN ({list}) AND status = 'pending'"
    ));
}

/// A `fair_at` below that of every job prioritised earlier (the claim takes the lowest first).
const AHEAD_OF_EARLIER: &str = "-(extract(epoch FROM clock_timestamp()) * 1000)::bigint";

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

/// Waits (at most 10 s) until the callback has taken content `blob` out of its normal key
/// (moved to `quarantine/` or deleted, as `quarantine_action` says).
#[track_caller]
fn assert_quarantined(blob: &str) {
    let start = Instant::now();
    while psql(&format!(
        "SELECT coalesce(quarantine_action, '') FROM attachment_blobs WHERE id = '{blob}'"
    ))
    .is_empty()
    {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "content {blob} was not quarantined"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
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
    assert_quarantined(&blob);
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
    let b = World(Uploader {
        tenant: a.tenant.clone(),
        token: login(&client(), &Stack::get().base_url, &b_user).access,
        user: b_user,
    });
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

/// Puts `job` before every other claimable first scan, also those other tests prioritised and
/// whose retry backoff ends meanwhile.
fn first_in_line(job: &str) {
    prioritise(&[job]);
}

/// A clamd of this test's own whose signature database has a version (a `daily.cud` built with
/// `sigtool --build --unsigned`, beside the project's test signatures), so that a signature update
/// can be played: [`Clamd::update`] builds the next version with one more signature and sends
/// `RELOAD`. Stopped on drop.
struct Clamd {
    child: Child,
    dir: std::path::PathBuf,
    addr: String,
}

/// `Attachments.Test.Rescan` (the updated database's new signature) matches these bytes anywhere.
const RESCAN_MARKER: &[u8] = b"ATTACHMENTS-RESCAN-TEST-SIGNATURE";

impl Clamd {
    /// `None` (with a note) without clamd and sigtool on this machine.
    fn start(version: u32) -> Option<Self> {
        let found = |b: &str| {
            Command::new("sh")
                .args(["-c", &format!("command -v {b}")])
                .output()
                .is_ok_and(|o| o.status.success())
        };
        if !found("clamd") || !found("sigtool") {
            eprintln!(
                "clamd or sigtool is not installed: skipped (scripts/bootstrap installs them)"
            );
            return None;
        }
        let dir = std::env::temp_dir().join(format!("rescan-clamd-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(dir.join("db")).unwrap();
        std::fs::create_dir_all(dir.join("tmp")).unwrap();
        let sigs = integration_tests::root().join("crates/scan-worker/signatures");
        for f in ["test.hdb", "test.ndb"] {
            std::fs::copy(sigs.join(f), dir.join("db").join(f)).unwrap();
        }
        // Version 1 knows a signature no test content has.
        Self::build(
            &dir,
            version,
            &[(
                "Attachments.Test.Placeholder",
                b"NO-CONTENT-HAS-THESE-BYTES-0f3a",
            )],
        );
        let port = integration_tests::free_port();
        std::fs::write(
            dir.join("clamd.conf"),
            format!(
                "Foreground yes\nTCPSocket {port}\nTCPAddr 127.0.0.1\nDatabaseDirectory {}\n\
                 TemporaryDirectory {}\nLogFile {}\nAlertExceedsMax yes\nSelfCheck 3600\n",
                dir.join("db").display(),
                dir.join("tmp").display(),
                dir.join("clamd.log").display()
            ),
        )
        .unwrap();
        let child = Command::new("clamd")
            .arg(format!(
                "--config-file={}",
                dir.join("clamd.conf").display()
            ))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("clamd");
        let c = Self {
            child,
            dir,
            addr: format!("127.0.0.1:{port}"),
        };
        c.wait_for_version(version);
        Some(c)
    }

    /// Writes `daily.cud` of `version` with these `(name, bytes)` body signatures.
    fn build(dir: &std::path::Path, version: u32, sigs: &[(&str, &[u8])]) {
        let work = dir.join(format!("build-{version}"));
        std::fs::create_dir_all(&work).unwrap();
        std::fs::write(
            work.join("COPYING"),
            "test signatures, never for production\n",
        )
        .unwrap();
        let ndb: String = sigs
            .iter()
            .map(|(name, bytes)| format!("{name}:0:*:{}\n", hex(bytes)))
            .collect();
        std::fs::write(work.join("daily.ndb"), ndb).unwrap();
        let mut child = Command::new("sigtool")
            .current_dir(&work)
            .args([
                "--build=daily.cud",
                "--unsigned",
                "--no-cdiff",
                &format!("--cvd-version={version}"),
                &format!("--datadir={}", work.display()),
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("sigtool");
        // It asks for the builder's name.
        child
            .stdin
            .take()
            .unwrap()
            .write_all(b"integration-tests\n")
            .unwrap();
        let out = child.wait_with_output().unwrap();
        let built = work.join("daily.cud");
        assert!(
            built.exists(),
            "sigtool did not build daily.cud: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        // Renamed into place: clamd never reads a half-written file.
        std::fs::copy(&built, dir.join("daily.cud.new")).unwrap();
        std::fs::rename(dir.join("daily.cud.new"), dir.join("db/daily.cud")).unwrap();
    }

    fn command(&self, cmd: &str) -> Option<String> {
        let mut s = std::net::TcpStream::connect(&self.addr).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        s.write_all(format!("z{cmd}\0").as_bytes()).ok()?;
        let mut out = Vec::new();
        s.read_to_end(&mut out).ok()?;
        Some(
            String::from_utf8_lossy(&out)
                .trim_end_matches('\0')
                .to_owned(),
        )
    }

    fn wait_for_version(&self, version: u32) {
        let want = format!("/{version}/");
        let start = Instant::now();
        loop {
            if self.command("VERSION").is_some_and(|v| v.contains(&want)) {
                return;
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "clamd never answered VERSION with signature version {version}: {:?}\n{}",
                self.command("VERSION"),
                std::fs::read_to_string(self.dir.join("clamd.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The signature update: `version` knows `Attachments.Test.Rescan`.
    fn update(&self, version: u32) {
        Self::build(
            &self.dir,
            version,
            &[
                (
                    "Attachments.Test.Placeholder",
                    b"NO-CONTENT-HAS-THESE-BYTES-0f3a",
                ),
                ("Attachments.Test.Rescan", RESCAN_MARKER),
            ],
        );
        assert_eq!(self.command("RELOAD").as_deref(), Some("RELOADING"));
        self.wait_for_version(version);
    }
}

impl Drop for Clamd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A signature update finds yesterday's clean file: after clamd's signature version changes, the
/// worker queues a rescan of the content judged clean under the old version; it becomes infected,
/// quarantined and audited, with one `rescan.flipped` line. A new upload waiting at the same time is
/// scanned first: no rescan is claimed while a first scan is claimable.
#[test]
fn scan_rescan_after_a_signature_update_flips_clean_to_infected() {
    let _g = serial();
    // Versions from the clock: a rerun on the same database finds its own content newer.
    let v1 = (now_s() / 10) as u32;
    let Some(clamd) = Clamd::start(v1) else {
        return;
    };
    let env = [("CLAMD_ADDR", clamd.addr.as_str())];
    let w = world();

    // Yesterday's file: clean under version v1.
    let mut old = content("rescan old", 2000);
    old.extend_from_slice(RESCAN_MARKER);
    let a = w.upload(&w.message(0), "old.txt", &old);
    let a_id = a["id"].as_str().unwrap().to_owned();
    let (a_job, blob) = job_of(&a_id);
    first_in_line(&a_job);
    run_worker(&["--max-jobs", "1", "--concurrency", "1"], &env);
    let s = w.scan_status(&a_id);
    assert_eq!(s["status"], "clean", "{s}");
    assert_eq!(s["engines"][0]["engine"], "clamav", "{s}");
    assert_eq!(s["engines"][0]["signatureVersion"], v1, "{s}");

    // The update, and a new upload arriving meanwhile.
    clamd.update(v1 + 1);
    let b = w.upload(&w.message(1), "new.txt", &content("rescan new", 2000));
    let b_id = b["id"].as_str().unwrap().to_owned();
    let (b_job, _) = job_of(&b_id);
    first_in_line(&b_job);

    // A worker that looks for due rescans every second: it queues the rescan of the old file (judged
    // under v1) and claims every claimable first scan (the new upload first in line) before any
    // rescan. It runs until the old file flipped, then stops (SIGTERM).
    let mut running = worker(
        &["--concurrency", "2", "--poll-secs", "0.2"],
        &[env[0], ("RESCAN_INTERVAL_SECS", "1")],
    )
    .stdout(Stdio::piped())
    .spawn()
    .expect("scan-worker");
    let start = Instant::now();
    while w.scan_status(&a_id)["status"] != "infected" {
        if start.elapsed() > Duration::from_secs(60) {
            let _ = running.kill();
            panic!("the old file did not flip: {}", w.scan_status(&a_id));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let stopped = Command::new("kill")
        .args(["-TERM", &running.id().to_string()])
        .status()
        .unwrap();
    assert!(stopped.success());
    let out = running.wait_with_output().unwrap();
    let log: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let claimed: Vec<&Value> = log.iter().filter(|l| l["msg"] == "job.claimed").collect();
    let done: HashMap<String, &Value> = log
        .iter()
        .filter(|l| {
            ["job.done", "job.retry", "job.moot"].contains(&l["msg"].as_str().unwrap_or(""))
        })
        .map(|l| (l["job"].as_str().unwrap().to_owned(), l))
        .collect();
    let is_rescan = |job: &str| done.get(job).is_some_and(|l| l["rescan"] == true);
    let order: Vec<(String, bool)> = claimed
        .iter()
        .map(|l| {
            let j = l["job"].as_str().unwrap().to_owned();
            let r = is_rescan(&j);
            (j, r)
        })
        .collect();
    let first_rescan = order
        .iter()
        .position(|(_, r)| *r)
        .expect("a rescan was claimed");
    let b_at = order
        .iter()
        .position(|(j, _)| *j == b_job)
        .expect("the new upload's job");
    assert!(b_at < first_rescan, "{order:?}");
    assert_eq!(w.scan_status(&b_id)["status"], "clean");

    // The old file flipped: infected, under the new version, quarantined, audited, one event line.
    let s = w.scan_status(&a_id);
    assert_eq!(s["status"], "infected", "{s}");
    assert!(s.to_string().contains("Attachments.Test.Rescan"), "{s}");
    assert_eq!(s["engines"][0]["signatureVersion"], v1 + 1, "{s}");
    w.assert_blocked(&a_id);
    let flipped: Vec<&Value> = log
        .iter()
        .filter(|l| l["msg"] == "rescan.flipped" && l["blob"] == blob.as_str())
        .collect();
    assert_eq!(flipped.len(), 1, "{log:#?}");
    assert_eq!(flipped[0]["to"], "infected");
    let audit = psql(&format!(
        "SELECT string_agg(details->>'previousStatus' || '>' || (details->>'status'), ',' ORDER BY id) \
         FROM email_audit_log WHERE action = 'scan.verdict' AND resource_id = '{blob}'"
    ));
    assert!(audit.ends_with("clean>infected"), "{audit}");
    assert_quarantined(&blob);
}

/// `scan-worker rescan --tenant` queues every clean content of that tenant, and only of that tenant.
#[test]
fn scan_rescan_on_demand_of_one_tenant() {
    let _g = serial();
    let w = world();
    let bytes = content("on demand", 1500);
    let a = w.upload(&w.message(0), "demand.txt", &bytes);
    let a_id = a["id"].as_str().unwrap();
    scan_now(&[a_id]);
    assert_eq!(w.scan_status(a_id)["status"], "clean");
    let (_, blob) = job_of(a_id);
    let tenant = w.tenant.id.clone();
    let since = psql("SELECT app_now_ms()");
    let out: Output =
        integration_tests::scan_worker("scan", &["rescan", "--tenant", &tenant, "--once"], &[])
            .output()
            .expect("scan-worker rescan");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let open = psql(&format!(
        "SELECT count(*) FROM scan_jobs WHERE blob_id = '{blob}' AND rescan AND status = 'pending'"
    ));
    assert_eq!(open, "1");
    let other_tenant = psql(&format!(
        "SELECT count(*) FROM scan_jobs j WHERE j.rescan AND j.created_at >= {since} AND j.tenant_id <> '{tenant}'"
    ));
    assert_eq!(other_tenant, "0");
    // The rescan runs like any scan job; the content stays clean and its ClamAV verdict is new.
    let before = w.scan_status(a_id)["engines"][0]["scannedAt"]
        .as_i64()
        .unwrap();
    std::thread::sleep(Duration::from_millis(5));
    let log = run_worker(&["--concurrency", "2"], &[]);
    assert!(
        log.iter()
            .any(|l| l["msg"] == "job.done" && l["blob"] == blob.as_str() && l["rescan"] == true),
        "{log:#?}"
    );
    let s = w.scan_status(a_id);
    assert_eq!(s["status"], "clean", "{s}");
    assert!(
        s["engines"][0]["scannedAt"].as_i64().unwrap() > before,
        "{s}"
    );
}

/// The requests a stand-in server saw: method, path and `x-apikey`.
type Asked = std::sync::Arc<Mutex<Vec<(String, String, String)>>>;

/// A stand-in for VirusTotal's API v3 (the real one cannot be reached from here): every file it is
/// asked about by hash is known and judged malicious by two of its engines, for the key
/// `vt-test-key` only. Its URL, and the requests it saw (method, path, `x-apikey`).
fn fake_virustotal() -> (String, Asked) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    let seen: Asked = Default::default();
    let log = seen.clone();
    std::thread::spawn(move || {
        for conn in l.incoming() {
            let Ok(mut conn) = conn else { return };
            let mut r = BufReader::new(conn.try_clone().unwrap());
            let mut line = String::new();
            if r.read_line(&mut line).unwrap_or(0) == 0 {
                continue;
            }
            let mut parts = line.split_whitespace();
            let (method, path) = (
                parts.next().unwrap_or("").to_owned(),
                parts.next().unwrap_or("").to_owned(),
            );
            let (mut key, mut len) = (String::new(), 0usize);
            loop {
                line.clear();
                if r.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some((k, v)) = line.trim_end().split_once(':') {
                    match k.trim().to_ascii_lowercase().as_str() {
                        "x-apikey" => key = v.trim().to_owned(),
                        "content-length" => len = v.trim().parse().unwrap_or(0),
                        _ => {}
                    }
                }
            }
            let mut body = vec![0; len];
            let _ = r.read_exact(&mut body);
            log.lock()
                .unwrap()
                .push((method.clone(), path.clone(), key.clone()));
            let (status, answer) = match path.strip_prefix("/api/v3/files/") {
                _ if key != "vt-test-key" => (
                    401,
                    json!({"error": {"code": "WrongCredentialsError", "message": "wrong key"}}),
                ),
                Some(hash) if method == "GET" => (
                    200,
                    json!({"data": {"type": "file", "id": hash, "attributes": {
                        "last_analysis_stats": {"malicious": 2, "suspicious": 0, "undetected": 60,
                                                "harmless": 0, "timeout": 0},
                        "last_analysis_results": {
                            "EngineA": {"category": "malicious", "engine_name": "EngineA",
                                        "result": "Trojan.ZeroDay.Fake"},
                            "EngineB": {"category": "malicious", "engine_name": "EngineB",
                                        "result": "Trojan.ZeroDay.Fake"},
                            "EngineC": {"category": "undetected", "engine_name": "EngineC",
                                        "result": null}}}}}),
                ),
                _ => (
                    404,
                    json!({"error": {"code": "NotFoundError", "message": "not found"}}),
                ),
            };
            let text = answer.to_string();
            let _ = conn.write_all(
                format!(
                    "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
                     connection: close\r\n\r\n{text}",
                    text.len()
                )
                .as_bytes(),
            );
        }
    });
    (url, seen)
}

/// Two engines end to end: content ClamAV finds clean but VirusTotal knows as malicious (looked up by
/// its SHA-256 only: nothing is uploaded, the tenant never allowed it) ends `infected`, quarantined
/// and never served; `scan-status` lists both engines' own verdicts, VirusTotal's with the names
/// its engines gave. ClamAV's `clean` does not hide VirusTotal's `infected`.
#[test]
fn scan_virustotal_finds_what_clamav_missed_and_both_verdicts_are_listed() {
    let _g = serial();
    let w = world();
    let body = content("zero-day", 2048);
    let a = w.upload(&w.message(0), "invoice.txt", &body);
    let id = a["id"].as_str().unwrap();
    let (job, blob) = job_of(id);
    prioritise(&[&job]);
    let (vt_url, seen) = fake_virustotal();
    let log = run_worker(
        &["--max-jobs", "1", "--concurrency", "1"],
        &[("VT_API_KEY", "vt-test-key"), ("VT_API_URL", &vt_url)],
    );
    assert!(
        log.iter()
            .any(|l| l["job"] == job.as_str() && l["msg"] == "job.done"),
        "{log:#?}"
    );
    // The key went with every request and never into the worker's log.
    let asked = seen.lock().unwrap().clone();
    let hash = sha256_hex(&body);
    assert_eq!(
        asked,
        vec![(
            "GET".to_owned(),
            format!("/api/v3/files/{hash}"),
            "vt-test-key".to_owned()
        )],
        "one lookup by hash, no upload"
    );
    assert!(
        !log.iter().any(|l| l.to_string().contains("vt-test-key")),
        "{log:#?}"
    );

    let start = Instant::now();
    let s = loop {
        let s = w.scan_status(id);
        if s["status"] == "infected" || start.elapsed() > Duration::from_secs(10) {
            break s;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(s["status"], "infected", "{s}");
    let engines = s["engines"].as_array().expect("engines");
    let by = |name: &str| {
        engines
            .iter()
            .find(|e| e["engine"] == name)
            .unwrap_or_else(|| panic!("no {name} verdict: {s}"))
            .clone()
    };
    assert_eq!(by("clamav")["status"], "clean", "{s}");
    let vt = by("virustotal");
    assert_eq!(vt["status"], "infected", "{s}");
    assert!(
        vt["names"]
            .as_array()
            .is_some_and(|n| n.iter().any(|n| n == "Trojan.ZeroDay.Fake")),
        "{s}"
    );
    w.assert_blocked(id);
    assert_quarantined(&blob);
}
