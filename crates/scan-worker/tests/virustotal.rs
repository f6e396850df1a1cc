//! The VirusTotal engine against a small server in this file that speaks the parts of the API v3
//! the engine uses (the real service cannot be reached from the test machines): a known-bad hash, an
//! unknown file uploaded and then analysed after two polls, an unknown file the tenant does not let
//! us upload, `429` with backoff, an analysis that outlasts the deadline, a refused key, and the
//! request budget shared through the real Redis (`REDIS_URL`; that test passes with a note without
//! it).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use scan_worker::verdict::Status;
use scan_worker::virustotal::{Opinion, Settings, VirusTotal};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const KEY: &str = "test-key-0123456789";
const BAD: &str = "275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f";
const CLEAN: &str = "1111111111111111111111111111111111111111111111111111111111111111";
const THROTTLED: &str = "2222222222222222222222222222222222222222222222222222222222222222";
const UNKNOWN: &str = "3333333333333333333333333333333333333333333333333333333333333333";
const NEVER_DONE: &str = "4444444444444444444444444444444444444444444444444444444444444444";

/// A request the server saw.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    key: Option<String>,
    body: Vec<u8>,
    at: Instant,
}

#[derive(Default)]
struct State {
    seen: Vec<Seen>,
    /// Polls per analysis id.
    polls: HashMap<String, u32>,
    throttled_once: bool,
}

/// The fake VirusTotal: its base URL and what it saw.
struct FakeVt {
    url: String,
    state: Arc<Mutex<State>>,
}

fn stats(malicious: u64, suspicious: u64, undetected: u64) -> Value {
    json!({"malicious": malicious, "suspicious": suspicious, "undetected": undetected, "harmless": 0,
           "timeout": 0, "type-unsupported": 2})
}

fn detections() -> Value {
    json!({
        "EngineA": {"category": "malicious", "engine_name": "EngineA", "result": "EICAR-Test-File"},
        "EngineB": {"category": "malicious", "engine_name": "EngineB", "result": "EICAR-Test-File"},
        "EngineC": {"category": "malicious", "engine_name": "EngineC", "result": "Win.Test.EICAR_HDB-1"},
        "EngineD": {"category": "undetected", "engine_name": "EngineD", "result": null},
    })
}

fn error(code: &str) -> Value {
    json!({"error": {"code": code, "message": code}})
}

/// The API's answer to one request: status, extra headers, JSON body.
fn answer(st: &mut State, req: &Seen) -> (u16, Vec<(&'static str, String)>, Value) {
    if req.key.as_deref() != Some(KEY) {
        return (401, vec![], error("WrongCredentialsError"));
    }
    let path = req.path.as_str();
    if req.method == "GET"
        && let Some(hash) = path.strip_prefix("/api/v3/files/")
    {
        return match hash {
            BAD => (
                200,
                vec![],
                json!({"data": {"type": "file", "id": BAD, "attributes": {
                    "last_analysis_stats": stats(3, 0, 60), "last_analysis_results": detections()}}}),
            ),
            CLEAN => (
                200,
                vec![],
                json!({"data": {"type": "file", "id": CLEAN, "attributes": {
                    "last_analysis_stats": stats(0, 0, 64), "last_analysis_results": {}}}}),
            ),
            THROTTLED if !st.throttled_once => {
                st.throttled_once = true;
                (
                    429,
                    vec![("retry-after", "1".into())],
                    error("QuotaExceededError"),
                )
            }
            THROTTLED => (
                200,
                vec![],
                json!({"data": {"type": "file", "id": THROTTLED, "attributes": {
                    "last_analysis_stats": stats(0, 0, 64), "last_analysis_results": {}}}}),
            ),
            _ => (404, vec![], error("NotFoundError")),
        };
    }
    if req.method == "POST" && path == "/api/v3/files" {
        let body = String::from_utf8_lossy(&req.body);
        if !body.contains("name=\"file\"") {
            return (400, vec![], error("BadRequestError"));
        }
        let id = if body.contains("never finishes") {
            "analysis-slow"
        } else {
            "analysis-1"
        };
        return (200, vec![], json!({"data": {"type": "analysis", "id": id}}));
    }
    if req.method == "GET"
        && let Some(id) = path.strip_prefix("/api/v3/analyses/")
    {
        let n = st.polls.entry(id.to_owned()).or_default();
        *n += 1;
        let done = id == "analysis-1" && *n > 2;
        return if done {
            (
                200,
                vec![],
                json!({"data": {"type": "analysis", "id": id, "attributes": {
                    "status": "completed", "stats": stats(3, 0, 60), "results": detections()}}}),
            )
        } else {
            (
                200,
                vec![],
                json!({"data": {"type": "analysis", "id": id, "attributes": {
                    "status": if *n == 1 { "queued" } else { "in-progress" }, "stats": stats(0, 0, 0), "results": {}}}}),
            )
        };
    }
    (404, vec![], error("NotFoundError"))
}

/// Reads one HTTP/1.1 request (head, then `content-length` bytes).
async fn read_request(s: &mut tokio::net::TcpStream) -> Option<Seen> {
    let mut buf = Vec::new();
    let mut tmp = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = s.read(&mut tmp).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&tmp[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let mut lines = head.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let method = first.next()?.to_owned();
    let path = first.next()?.to_owned();
    let mut len = 0usize;
    let mut key = None;
    for l in lines {
        if let Some((n, v)) = l.split_once(':') {
            match n.trim().to_ascii_lowercase().as_str() {
                "content-length" => len = v.trim().parse().ok()?,
                "x-apikey" => key = Some(v.trim().to_owned()),
                _ => {}
            }
        }
    }
    let mut body = buf[head_end..].to_vec();
    while body.len() < len {
        let n = s.read(&mut tmp).await.ok()?;
        if n == 0 {
            return None;
        }
        body.extend_from_slice(&tmp[..n]);
    }
    Some(Seen {
        method,
        path,
        key,
        body,
        at: Instant::now(),
    })
}

impl FakeVt {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(Mutex::new(State::default()));
        let st = state.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut s, _)) = listener.accept().await else {
                    return;
                };
                let st = st.clone();
                tokio::spawn(async move {
                    let Some(req) = read_request(&mut s).await else {
                        return;
                    };
                    let (status, headers, body) = {
                        let mut st = st.lock().unwrap();
                        let a = answer(&mut st, &req);
                        st.seen.push(req);
                        a
                    };
                    let body = body.to_string();
                    let mut out = format!(
                        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n",
                        body.len()
                    );
                    for (n, v) in headers {
                        out.push_str(&format!("{n}: {v}\r\n"));
                    }
                    out.push_str("\r\n");
                    out.push_str(&body);
                    let _ = s.write_all(out.as_bytes()).await;
                    let _ = s.shutdown().await;
                });
            }
        });
        Self { url, state }
    }

    fn seen(&self) -> Vec<Seen> {
        self.state.lock().unwrap().seen.clone()
    }

    fn settings(&self) -> Settings {
        Settings {
            api_url: self.url.clone(),
            api_key: KEY.into(),
            requests_per_minute: 1000,
            deadline: Duration::from_secs(20),
            max_upload_bytes: 1024 * 1024,
            poll_base: Duration::from_millis(20),
            redis_url: None,
            budget_namespace: format!("test:vt:{}", uuid::Uuid::new_v4()),
        }
    }
}

type Upload = fn() -> std::future::Ready<Result<Vec<u8>, String>>;

fn content() -> std::future::Ready<Result<Vec<u8>, String>> {
    std::future::ready(Ok(b"some content nobody has seen".to_vec()))
}

fn slow_content() -> std::future::Ready<Result<Vec<u8>, String>> {
    std::future::ready(Ok(b"content whose analysis never finishes".to_vec()))
}

fn verdict(o: Opinion) -> scan_worker::verdict::Verdict {
    match o {
        Opinion::Verdict(v) => v,
        Opinion::None(why) => panic!("no opinion: {why}"),
    }
}

#[tokio::test]
async fn a_known_bad_hash_is_infected_without_any_upload() {
    let vt = FakeVt::start().await;
    let engine = VirusTotal::new(vt.settings()).unwrap();
    let v = verdict(engine.opinion(BAD, 68, Some(content as Upload)).await);
    assert_eq!(v.status, Status::Infected);
    assert_eq!(
        v.signature.as_deref(),
        Some("EICAR-Test-File, Win.Test.EICAR_HDB-1")
    );
    let seen = vt.seen();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(
        (seen[0].method.as_str(), seen[0].path.as_str()),
        ("GET", format!("/api/v3/files/{BAD}").as_str())
    );
    assert_eq!(seen[0].key.as_deref(), Some(KEY));

    let v = verdict(engine.opinion(CLEAN, 10, None::<Upload>).await);
    assert_eq!((v.status, v.signature), (Status::Clean, None));
}

#[tokio::test]
async fn an_unknown_file_is_uploaded_then_analysed_after_two_polls() {
    let vt = FakeVt::start().await;
    let engine = VirusTotal::new(vt.settings()).unwrap();
    let v = verdict(engine.opinion(UNKNOWN, 28, Some(content as Upload)).await);
    assert_eq!(v.status, Status::Infected, "{v:?}");
    let seen = vt.seen();
    let kinds: Vec<(&str, &str)> = seen
        .iter()
        .map(|s| (s.method.as_str(), s.path.as_str()))
        .collect();
    let lookup = format!("/api/v3/files/{UNKNOWN}");
    assert_eq!(
        kinds,
        [
            ("GET", lookup.as_str()),
            ("POST", "/api/v3/files"),
            ("GET", "/api/v3/analyses/analysis-1"),
            ("GET", "/api/v3/analyses/analysis-1"),
            ("GET", "/api/v3/analyses/analysis-1"),
        ]
    );
    let upload = String::from_utf8_lossy(&seen[1].body);
    assert!(upload.contains("some content nobody has seen"), "{upload}");
    assert!(seen.iter().all(|s| s.key.as_deref() == Some(KEY)));
}

#[tokio::test]
async fn an_unknown_file_the_tenant_keeps_is_no_opinion_and_never_leaves() {
    let vt = FakeVt::start().await;
    let engine = VirusTotal::new(vt.settings()).unwrap();
    match engine.opinion(UNKNOWN, 28, None::<Upload>).await {
        Opinion::None(why) => assert!(why.contains("does not allow"), "{why}"),
        other => panic!("{other:?}"),
    }
    // Too large to upload: no opinion either, nothing read.
    let mut s = vt.settings();
    s.max_upload_bytes = 10;
    let engine = VirusTotal::new(s).unwrap();
    let never = || -> std::future::Ready<Result<Vec<u8>, String>> { panic!("read") };
    match engine.opinion(UNKNOWN, 28, Some(never)).await {
        Opinion::None(why) => assert!(why.contains("upload limit"), "{why}"),
        other => panic!("{other:?}"),
    }
    assert!(
        vt.seen().iter().all(|s| s.method == "GET"),
        "{:?}",
        vt.seen()
    );
}

#[tokio::test]
async fn a_429_is_waited_out_and_retried() {
    let vt = FakeVt::start().await;
    let engine = VirusTotal::new(vt.settings()).unwrap();
    let v = verdict(engine.opinion(THROTTLED, 10, None::<Upload>).await);
    assert_eq!(v.status, Status::Clean);
    let seen = vt.seen();
    assert_eq!(seen.len(), 2, "{seen:?}");
    // The second request waited for the answer's Retry-After (1 s).
    assert!(
        seen[1].at.duration_since(seen[0].at) >= Duration::from_millis(950),
        "{:?}",
        seen[1].at.duration_since(seen[0].at)
    );

    // A quota that outlasts the deadline is an error, never a finding.
    let vt = FakeVt::start().await;
    let mut s = vt.settings();
    s.deadline = Duration::from_millis(500);
    let engine = VirusTotal::new(s).unwrap();
    let v = verdict(engine.opinion(THROTTLED, 10, None::<Upload>).await);
    assert_eq!(v.status, Status::Error, "{v:?}");
    assert_eq!(vt.seen().len(), 1);
}

#[tokio::test]
async fn an_analysis_past_the_deadline_ends_in_error() {
    let vt = FakeVt::start().await;
    let mut s = vt.settings();
    s.deadline = Duration::from_secs(2);
    s.poll_base = Duration::from_millis(100);
    let engine = VirusTotal::new(s).unwrap();
    let v = verdict(
        engine
            .opinion(NEVER_DONE, 37, Some(slow_content as Upload))
            .await,
    );
    assert_eq!(v.status, Status::Error);
    assert!(v.details.contains("did not finish"), "{}", v.details);
    let polls = vt
        .seen()
        .iter()
        .filter(|s| s.path == "/api/v3/analyses/analysis-slow")
        .count();
    assert!(polls >= 2, "polled {polls} times");
}

#[tokio::test]
async fn a_refused_key_is_an_error_never_a_finding() {
    let vt = FakeVt::start().await;
    let mut s = vt.settings();
    s.api_key = "not-the-key".into();
    let engine = VirusTotal::new(s).unwrap();
    for hash in [BAD, UNKNOWN] {
        let v = verdict(engine.opinion(hash, 10, Some(content as Upload)).await);
        assert_eq!(v.status, Status::Error, "{hash}: {v:?}");
        assert!(v.details.contains("refused the API key"), "{}", v.details);
        assert!(!v.details.contains("not-the-key"));
    }
    // Nothing was uploaded with a refused key.
    assert!(vt.seen().iter().all(|s| s.method == "GET"));
}

/// Two replicas share one budget in Redis: 3 requests a minute between them, the fourth has to wait
/// for the next window and, with a short deadline, is never sent: no opinion (not a finding, not an
/// error).
#[tokio::test]
async fn replicas_share_the_request_budget_in_redis() {
    let Some(redis_url) = std::env::var("REDIS_URL").ok().filter(|v| !v.is_empty()) else {
        eprintln!("REDIS_URL is not set: skipped (scripts/test and scripts/dev set it)");
        return;
    };
    let vt = FakeVt::start().await;
    let mut s = vt.settings();
    s.redis_url = Some(redis_url);
    s.requests_per_minute = 3;
    s.deadline = Duration::from_millis(300);
    let a = VirusTotal::new(s.clone()).unwrap();
    let b = VirusTotal::new(s).unwrap();
    // The window is the wall clock's minute: start just after a minute began, so that all four
    // requests fall into one window.
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    if ms % 60_000 > 55_000 {
        tokio::time::sleep(Duration::from_millis(60_000 - ms % 60_000 + 50)).await;
    }
    for engine in [&a, &b, &a] {
        let v = verdict(engine.opinion(CLEAN, 10, None::<Upload>).await);
        assert_eq!(v.status, Status::Clean);
    }
    match b.opinion(CLEAN, 10, None::<Upload>).await {
        Opinion::None(why) => assert!(why.contains("budget"), "{why}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(vt.seen().len(), 3, "the fourth request was never sent");
}
