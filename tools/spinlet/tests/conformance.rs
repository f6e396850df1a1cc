//! Runner conformance: starts `spinlet` on the fixture app (tests/spin.toml, built by scripts/build)
//! on a free port and speaks HTTP to it, like `spin up` would be spoken to. Needs the wasm fixtures built and
//! Postgres/Redis reachable (PG_ADMIN_URL / REDIS_URL, defaulting to the standard local ports).

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn pg_url() -> String {
    std::env::var("PG_ADMIN_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable".into())
}

/// `url` as the fixture's `address` query parameter.
fn address_param(url: &str) -> String {
    url.replace(':', "%3A")
        .replace('/', "%2F")
        .replace('@', "%40")
        .replace('?', "%3F")
        .replace('=', "%3D")
}

fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

#[test]
fn postgres_tls_is_verified_as_in_spin() {
    // The local server either offers no TLS or a certificate not made for 127.0.0.1: with
    // `sslmode=require` the connection must fail (Spin verifies the certificate), and the same
    // address with `sslmode=disable` works.
    let r = start(&[]);
    let plain = pg_url();
    let base = plain.split('?').next().unwrap();
    let (status, body) = get_json(
        &r,
        &format!(
            "/pg?address={}",
            address_param(&format!("{base}?sslmode=require"))
        ),
    );
    assert_ne!(
        status, 200,
        "an unverifiable server must be refused: {body}"
    );
    let (status, body) = get_json(
        &r,
        &format!(
            "/pg?address={}",
            address_param(&format!("{base}?sslmode=disable"))
        ),
    );
    assert_eq!(status, 200, "{body}");
}

/// host:port of a URL like `postgres://user@host:port/db`.
fn host_port(url: &str) -> String {
    let rest = url.split_once("://").unwrap().1;
    let authority = rest.split('/').next().unwrap();
    authority.rsplit('@').next().unwrap().to_string()
}

struct Runner {
    child: Child,
    base: String,
}

impl Drop for Runner {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn command(envs: &[(&str, String)]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_spinlet"));
    let root = repo_root();
    cmd.current_dir(&root)
        .args(["up", "--manifest", "tools/spinlet/tests/spin.toml"])
        .env("SPINLET_CACHE_DIR", root.join("target/spinlet-cache"))
        .env("SPIN_VARIABLE_DB_HOST", host_port(&pg_url()))
        .env("SPIN_VARIABLE_REDIS_HOST", host_port(&redis_url()))
        .env_remove("SPIN_VARIABLE_ALLOWED_ORIGIN")
        .env_remove("SPIN_VARIABLE_OVERRIDDEN");
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd
}

fn start(envs: &[(&str, String)]) -> Runner {
    let port = free_port();
    let mut envs = envs.to_vec();
    envs.push(("SPIN_HTTP_LISTEN_ADDR", format!("127.0.0.1:{port}")));
    if !envs
        .iter()
        .any(|(k, _)| *k == "SPIN_VARIABLE_ALLOWED_ORIGIN")
    {
        envs.push(("SPIN_VARIABLE_ALLOWED_ORIGIN", "127.0.0.1:9".into()));
    }
    let child = command(&envs)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn spinlet");
    let runner = Runner {
        child,
        base: format!("http://127.0.0.1:{port}"),
    };
    let deadline = Instant::now() + Duration::from_secs(240);
    loop {
        if let Ok(res) = reqwest::blocking::get(format!("{}/.well-known/spin/health", runner.base))
        {
            if res.status().is_success() {
                return runner;
            }
        }
        assert!(Instant::now() < deadline, "spinlet did not become healthy");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()
        .unwrap()
}

fn get_json(runner: &Runner, path: &str) -> (u16, Value) {
    let res = client()
        .get(format!("{}{path}", runner.base))
        .send()
        .unwrap();
    let status = res.status().as_u16();
    let text = res.text().unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

#[test]
fn routes_follow_spin_precedence_and_carry_spin_headers() {
    let r = start(&[]);
    let (status, body) = get_json(&r, "/items/42/sub/report%20one");
    assert_eq!(status, 200);
    let h = &body["headers"];
    assert_eq!(h["spin-matched-route"], "/items/:id/sub/:name");
    assert_eq!(h["spin-path-match-id"], "42");
    assert_eq!(h["spin-path-match-name"], "report%20one");
    assert_eq!(h["spin-path-info"], "");
    assert_eq!(h["spin-component-route"], "/items/:id/sub/:name");
    assert!(
        h["spin-full-url"]
            .as_str()
            .unwrap()
            .ends_with("/items/42/sub/report%20one")
    );
    assert!(
        h["spin-client-addr"]
            .as_str()
            .unwrap()
            .starts_with("127.0.0.1:")
    );

    let (_, body) = get_json(&r, "/items/special");
    assert_eq!(body["headers"]["spin-matched-route"], "/items/special");
    let (_, body) = get_json(&r, "/items/a/b/c");
    assert_eq!(body["headers"]["spin-matched-route"], "/items/...");
    assert_eq!(body["headers"]["spin-path-info"], "/a/b/c");
    assert_eq!(body["headers"]["spin-component-route"], "/items");
    let (_, body) = get_json(&r, "/elsewhere");
    assert_eq!(body["headers"]["spin-matched-route"], "/...");
}

/// Every value of header `name` the component received, in order.
fn values_of(body: &Value, name: &str) -> Vec<String> {
    body["headerList"]
        .as_array()
        .expect("headerList")
        .iter()
        .filter(|pair| pair[0] == name)
        .map(|pair| pair[1].as_str().unwrap().to_owned())
        .collect()
}

/// Spin's HTTP trigger keeps the headers a client sent, `spin-*` ones included, and appends its own
/// after them (so a component must read the LAST `spin-client-addr`, never the first).
#[test]
fn client_sent_spin_headers_are_kept_and_spin_appends_its_own() {
    let r = start(&[]);
    let res = client()
        .get(format!("{}/items/special", r.base))
        .header("spin-matched-route", "/admin/...")
        .header("spin-client-addr", "10.0.0.1:1")
        .header("spin-path-match-id", "forged")
        .send()
        .unwrap();
    let body: Value = res.json().unwrap();
    let addrs = values_of(&body, "spin-client-addr");
    assert_eq!(addrs.len(), 2, "{addrs:?}");
    assert_eq!(addrs[0], "10.0.0.1:1", "the client's copy comes first");
    assert!(addrs[1].starts_with("127.0.0.1:"), "then Spin's: {addrs:?}");
    assert_eq!(
        values_of(&body, "spin-matched-route"),
        ["/admin/...", "/items/special"]
    );
    // A header Spin does not set for this route is passed on as the client sent it.
    assert_eq!(values_of(&body, "spin-path-match-id"), ["forged"]);
    // Without client copies, each of Spin's headers arrives once.
    let (_, body) = get_json(&r, "/items/42/sub/x");
    for name in [
        "spin-client-addr",
        "spin-matched-route",
        "spin-path-match-id",
    ] {
        assert_eq!(values_of(&body, name).len(), 1, "{name}: {body}");
    }
}

#[test]
fn middleware_chain_transforms_request_and_response_in_order() {
    let r = start(&[]);
    let res = client().get(format!("{}/chain/x", r.base)).send().unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.headers()["x-chain-response"],
        "beta,alpha",
        "responses unwind innermost first"
    );
    let text = res.text().unwrap();
    let inner = text
        .strip_prefix("alpha(beta(")
        .and_then(|t| t.strip_suffix("))"))
        .unwrap_or_else(|| panic!("{text}"));
    let echoed: Value = serde_json::from_str(inner).unwrap();
    assert_eq!(
        echoed["headers"]["x-chain"], "alpha,beta",
        "requests pass outermost first"
    );
    assert_eq!(echoed["headers"]["spin-matched-route"], "/chain/...");
    // Without middleware the same component sees no chain.
    let (_, plain) = get_json(&r, "/x");
    assert!(plain["headers"].get("x-chain").is_none());
}

#[test]
fn middleware_only_reaches_inherited_configuration() {
    let r = start(&[]);
    let res = client()
        .get(format!("{}/chain/alpha-variable-probe", r.base))
        .send()
        .unwrap();
    assert_eq!(res.status(), 200, "alpha inherits all configuration");
    let text = res.text().unwrap();
    assert!(text.contains(r#""x-probe":"hello""#), "{text}");
    let res = client()
        .get(format!("{}/chain/beta-variable-probe", r.base))
        .send()
        .unwrap();
    assert_eq!(
        res.status(),
        500,
        "beta inherits nothing: reading a variable must fail"
    );
    let (status, _) = get_json(&r, "/chain/still-serving");
    assert_eq!(status, 200);
}

#[test]
fn variables_defaults_env_overrides_templates_and_scoping() {
    let r = start(&[("SPIN_VARIABLE_OVERRIDDEN", "from-env".into())]);
    let (status, body) = get_json(&r, "/vars");
    assert_eq!(status, 200);
    assert_eq!(body["greeting"]["ok"], "hello");
    assert_eq!(body["overridden"]["ok"], "from-env");
    assert_eq!(body["composed"]["ok"], "hello-from-env");
    assert!(
        body["undeclared"]["error"].is_string(),
        "a component sees only its own variables: {body}"
    );
}

#[test]
fn missing_required_variable_is_a_clear_startup_error() {
    let out = command(&[(
        "SPIN_HTTP_LISTEN_ADDR",
        format!("127.0.0.1:{}", free_port()),
    )])
    .output()
    .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("allowed_origin") && stderr.contains("SPIN_VARIABLE_ALLOWED_ORIGIN"),
        "{stderr}"
    );
}

#[test]
fn postgres_round_trips_types_and_pooled_connections_are_clean() {
    let r = start(&[]);
    let address = address_param(&pg_url());
    let (status, body) = get_json(&r, &format!("/pg?address={address}"));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["u"], "6f1c7f38-2d0e-4c59-9a53-0f6a7c1f4b2e");
    assert_eq!(body["t"], "héllo ✓");
    assert_eq!(body["i"], -42);
    assert_eq!(body["b"], 9_007_199_254_740_993i64);
    assert_eq!(body["o"], true);
    assert_eq!(body["y"], serde_json::json!([0, 1, 2, 255]));
    assert_eq!(body["j"], serde_json::json!({"a": [1, 2, {"b": null}]}));
    assert_eq!(
        body["ts"],
        serde_json::json!([2026, 11, 22, 7, 51, 28, 123_000_000])
    );
    assert_eq!(body["n"], serde_json::json!({"null": true}));
    assert_eq!(body["sane"], true);
    // Every request left a session setting and an open transaction behind; none may leak.
    for _ in 0..40 {
        let (status, body) = get_json(&r, &format!("/pg?address={address}"));
        assert_eq!(status, 200, "{body}");
        // Postgres reports a reset custom setting as '' (the placeholder stays), never the old value.
        let leaked = &body["leakedSetting"];
        assert!(
            *leaked == serde_json::json!({"null": true}) || *leaked == "",
            "setting leaked: {leaked}"
        );
    }
}

#[test]
fn postgres_and_redis_outside_allowed_hosts_are_refused() {
    let r = start(&[]);
    let (status, body) = get_json(
        &r,
        "/pg?address=postgres%3A%2F%2Fpostgres%40127.0.0.1%3A1%2Fpostgres",
    );
    assert_eq!(status, 500);
    assert!(
        body["error"].as_str().unwrap().contains("not permitted"),
        "{body}"
    );
    // Redis answers as Spin's does: `invalid-address` (the reason goes to the runner's log).
    let (status, body) = get_json(&r, "/redis?address=redis%3A%2F%2F127.0.0.1%3A1&key=k");
    assert_eq!(status, 500);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .to_ascii_lowercase()
            .contains("invalid"),
        "{body}"
    );
}

#[test]
fn redis_incr_and_expire() {
    let r = start(&[]);
    let key = format!("spinlet-conformance-{}", uuid::Uuid::new_v4());
    let address = redis_url().replace(':', "%3A").replace('/', "%2F");
    let (status, first) = get_json(&r, &format!("/redis?address={address}&key={key}"));
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["count"], 1);
    assert_eq!(first["expireSet"], 1);
    let ttl = first["ttl"].as_i64().unwrap();
    assert!((1..=60).contains(&ttl), "{first}");
    let (_, second) = get_json(&r, &format!("/redis?address={address}&key={key}"));
    assert_eq!(second["count"], 2);
}

/// A one-shot HTTP server answering 204 to whatever comes, on a free port.
fn tiny_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(&stream);
            let mut line = String::new();
            while reader.read_line(&mut line).map(|n| n > 2).unwrap_or(false) {
                line.clear();
            }
            use std::io::Write;
            let _ = (&stream).write_all(b"HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n");
        }
    });
    port
}

#[test]
fn outbound_http_only_to_allowed_hosts() {
    let allowed = tiny_server();
    let denied = tiny_server();
    let r = start(&[(
        "SPIN_VARIABLE_ALLOWED_ORIGIN",
        format!("127.0.0.1:{allowed}"),
    )]);
    let (status, body) = get_json(
        &r,
        &format!("/outbound?url=http%3A%2F%2F127.0.0.1%3A{allowed}%2Fping"),
    );
    assert_eq!(
        (status, body["status"].as_u64()),
        (200, Some(204)),
        "{body}"
    );
    let (status, body) = get_json(
        &r,
        &format!("/outbound?url=http%3A%2F%2F127.0.0.1%3A{denied}%2Fping"),
    );
    assert_eq!(status, 502);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("HttpRequestDenied"),
        "{body}"
    );
}

fn requests_seen(r: &Runner) -> u64 {
    let (status, body) = get_json(r, "/state");
    assert_eq!(status, 200, "{body}");
    body["requestsSeen"].as_u64().expect("requestsSeen")
}

#[test]
fn instances_are_reused_serially_as_spin_4_does() {
    // Spin 4's defaults: one idle instance takes the next request.
    let r = start(&[]);
    let seen: Vec<u64> = (0..5).map(|_| requests_seen(&r)).collect();
    assert_eq!(seen, [1, 2, 3, 4, 5]);
    // An instance serves at most --max-instance-reuse-count requests.
    let r = start(&[("SPINLET_MAX_INSTANCE_REUSE_COUNT", "3".into())]);
    let seen: Vec<u64> = (0..7).map(|_| requests_seen(&r)).collect();
    assert_eq!(seen, [1, 2, 3, 1, 2, 3, 1]);
}

#[test]
fn reuse_count_1_gives_every_request_a_fresh_instance() {
    let r = start(&[("SPINLET_MAX_INSTANCE_REUSE_COUNT", "1".into())]);
    for _ in 0..5 {
        assert_eq!(requests_seen(&r), 1, "state leaked between requests");
    }
}

#[test]
fn an_idle_instance_is_dropped_after_the_idle_timeout() {
    let r = start(&[("SPINLET_IDLE_INSTANCE_TIMEOUT", "150ms".into())]);
    assert_eq!(requests_seen(&r), 1);
    assert_eq!(requests_seen(&r), 2, "reused while recently busy");
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(
        requests_seen(&r),
        1,
        "a new instance after the idle timeout"
    );
}

/// A request body fed from a channel: it ends when the sender is dropped.
struct ChannelBody {
    chunks: std::sync::mpsc::Receiver<Vec<u8>>,
    current: Vec<u8>,
    at: usize,
}

impl ChannelBody {
    fn new(chunks: std::sync::mpsc::Receiver<Vec<u8>>) -> Self {
        Self {
            chunks,
            current: Vec::new(),
            at: 0,
        }
    }
}

impl std::io::Read for ChannelBody {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.at == self.current.len() {
            match self.chunks.recv() {
                Ok(next) => (self.current, self.at) = (next, 0),
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len() - self.at);
        buf[..n].copy_from_slice(&self.current[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// Starts `POST {path}` whose body arrives only when the returned sender says so (dropped: the body ends).
fn request_in_flight(
    r: &Runner,
    path: &str,
) -> (
    std::sync::mpsc::SyncSender<Vec<u8>>,
    std::thread::JoinHandle<(u16, Value)>,
) {
    let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(1);
    let url = format!("{}{path}", r.base);
    let handle = std::thread::spawn(move || {
        let res = client()
            .post(url)
            .body(reqwest::blocking::Body::new(ChannelBody::new(rx)))
            .send()
            .unwrap();
        let status = res.status().as_u16();
        (status, serde_json::from_str(&res.text().unwrap()).unwrap())
    });
    tx.send(b"first".to_vec()).unwrap();
    // Let the request reach its instance before the caller sends others.
    std::thread::sleep(Duration::from_millis(300));
    (tx, handle)
}

#[test]
fn a_busy_instance_takes_concurrent_requests_up_to_the_limit() {
    // Default: 16 at once. /count is waiting for the rest of its body, and /state joins its instance.
    let r = start(&[]);
    let (tx, pending) = request_in_flight(&r, "/count");
    assert_eq!(
        requests_seen(&r),
        2,
        "served by the busy instance, concurrently"
    );
    drop(tx);
    assert_eq!(pending.join().unwrap().0, 200);
    // At most 1 at once: /state gets an instance of its own.
    let r = start(&[("SPINLET_MAX_INSTANCE_CONCURRENT_REUSE_COUNT", "1".into())]);
    let (tx, pending) = request_in_flight(&r, "/count");
    assert_eq!(requests_seen(&r), 1, "a second instance");
    drop(tx);
    assert_eq!(pending.join().unwrap().0, 200);
}

#[test]
fn backpressure_sends_new_requests_to_another_instance() {
    let r = start(&[]);
    let (tx, pending) = request_in_flight(&r, "/pressure");
    assert_eq!(
        requests_seen(&r),
        1,
        "the instance under backpressure took no other request"
    );
    tx.send(b"more".to_vec()).unwrap();
    drop(tx);
    let (status, body) = pending.join().unwrap();
    assert_eq!((status, body["bytes"].as_u64()), (200, Some(9)));
}

#[test]
fn traps_and_memory_exhaustion_are_500_and_the_runner_keeps_serving() {
    let r = start(&[]);
    let res = client().get(format!("{}/trap", r.base)).send().unwrap();
    assert_eq!(res.status(), 500);
    let res = client().get(format!("{}/oom", r.base)).send().unwrap();
    assert_eq!(res.status(), 500);
    let (status, body) = get_json(&r, "/state");
    assert_eq!((status, body["requestsSeen"].as_u64()), (200, Some(1)));
}

#[test]
fn runaway_component_is_stopped_and_others_are_served_meanwhile() {
    let r = start(&[("SPINLET_REQUEST_TIMEOUT_SECS", "3".into())]);
    let base = r.base.clone();
    let runaway = std::thread::spawn(move || {
        client()
            .get(format!("{base}/spin"))
            .send()
            .unwrap()
            .status()
            .as_u16()
    });
    std::thread::sleep(Duration::from_millis(500));
    // While the runaway spins, the runner still answers other requests.
    let (status, _) = get_json(&r, "/state");
    assert_eq!(status, 200);
    assert_eq!(runaway.join().unwrap(), 503);
    let (status, _) = get_json(&r, "/state");
    assert_eq!(status, 200);
}

/// Sends `head` (request line and headers, without the blank line) and `body_prefix` on a new
/// connection, reads one response (status line, headers, a `Content-Length` body) and then whatever
/// follows until the server closes (or 10 s pass). Returns the status and whether the server closed
/// the connection after the response.
fn raw_exchange(base: &str, head: &str, body_prefix: &[u8]) -> (u16, String, bool) {
    use std::io::{Read, Write};
    let addr = base.trim_start_matches("http://");
    let mut sock = std::net::TcpStream::connect(addr).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    sock.write_all(format!("{head}\r\n\r\n").as_bytes())
        .unwrap();
    // A server that closes early may reset the connection while this is written: that is allowed.
    let _ = sock.write_all(body_prefix);
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = sock.read(&mut buf).expect("the answer arrives");
        assert!(
            n > 0,
            "closed before answering: {:?}",
            String::from_utf8_lossy(&got)
        );
        got.extend_from_slice(&buf[..n]);
    };
    let text = String::from_utf8_lossy(&got[..head_end]).to_string();
    let status: u16 = text[9..12].parse().unwrap();
    let len: usize = text
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().unwrap())
        })
        .unwrap_or(0);
    while got.len() < head_end + len {
        let n = sock.read(&mut buf).unwrap();
        assert!(n > 0, "closed within the answer");
        got.extend_from_slice(&buf[..n]);
    }
    let closed = match sock.read(&mut buf) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => !matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
    };
    (status, text, closed)
}

#[test]
fn early_answer_closes_the_connection_as_spin_does() {
    // `state` answers without reading the body. As under `spin up`, the rest of the body is not read:
    // the answer goes out and the connection is closed (a client still sending may see a reset).
    let r = start(&[]);
    let head = format!(
        "POST /state HTTP/1.1\r\nHost: {}\r\nContent-Length: {}",
        r.base.trim_start_matches("http://"),
        48 << 20
    );
    let (status, _, closed) = raw_exchange(&r.base, &head, &vec![b'x'; 64 << 10]);
    assert_eq!(status, 200);
    assert!(
        closed,
        "the connection must close instead of reading 48 MiB on"
    );

    // With `Expect: 100-continue` the client sends nothing until told to: the early answer comes
    // first, no `100 Continue` before it (as under `spin up`), and the client never sends its body.
    // (When the connection closes then depends on when the component drops the unread body.)
    let (status, text, _) = raw_exchange(&r.base, &format!("{head}\r\nExpect: 100-continue"), b"");
    assert_eq!(status, 200, "{text}");
}

fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[test]
fn bodies_stream_both_ways_without_buffering() {
    const SIZE: u64 = 512 << 20;
    let r = start(&[]);
    // Upload: a generated body the server must count chunk by chunk.
    let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(4);
    std::thread::spawn(move || {
        let chunk: Vec<u8> = (0..(1u32 << 20)).map(|i| (i % 251) as u8).collect();
        for _ in 0..(SIZE >> 20) {
            if tx.send(chunk.clone()).is_err() {
                return;
            }
        }
    });
    let body = reqwest::blocking::Body::sized(ChannelBody::new(rx), SIZE);
    let res = client()
        .post(format!("{}/count", r.base))
        .body(body)
        .send()
        .unwrap();
    assert_eq!(res.status(), 200);
    let counted: Value = res.json().unwrap();
    assert_eq!(counted["bytes"], SIZE);

    // Download: a generated body of the same size, read as it comes.
    let mut res = client()
        .get(format!("{}/generate?size={SIZE}", r.base))
        .send()
        .unwrap();
    assert_eq!(res.status(), 200);
    let mut buf = vec![0u8; 1 << 16];
    let (mut total, mut position_ok) = (0u64, true);
    loop {
        let n = std::io::Read::read(&mut res, &mut buf).unwrap();
        if n == 0 {
            break;
        }
        position_ok &= buf[..n]
            .iter()
            .enumerate()
            .all(|(i, b)| u64::from(*b) == ((total + i as u64) % 65536) % 251);
        total += n as u64;
    }
    assert_eq!(total, SIZE);
    assert!(
        position_ok,
        "downloaded bytes differ from what the component generated"
    );
    // Moving 1 GiB through the runner must not have grown it anywhere near that size.
    let peak = peak_rss_kib(r.child.id());
    assert!(
        peak < 300 * 1024,
        "runner peak RSS {peak} KiB suggests a body was buffered"
    );
}

#[test]
fn a_platform_profile_caps_bodies_as_the_platform_does() {
    const CAP: u64 = 10 << 20;
    let r = start(&[("SPINLET_PLATFORM", "fermyon-wasm-functions".into())]);
    let sized =
        |n: u64| reqwest::blocking::Body::new(std::io::Read::take(std::io::repeat(b'x'), n));

    // Declared over the cap: 413 before the component runs (no `100 Continue` first).
    let head = format!(
        "POST /count HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nExpect: 100-continue",
        CAP + 1
    );
    let (status, text, _) = raw_exchange(&r.base, &head, b"");
    assert_eq!(status, 413, "{text}");

    // Exactly the cap without a declared length (chunked): the component counts all of it.
    let res = client()
        .post(format!("{}/count", r.base))
        .body(sized(CAP))
        .send()
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<Value>().unwrap()["bytes"], CAP);
    // One byte more: the platform answers 413 itself, unless the connection was reset under the
    // client while it was still sending (the rest of the body is not read).
    match client()
        .post(format!("{}/count", r.base))
        .body(sized(CAP + 1))
        .send()
    {
        Ok(res) => assert_eq!(res.status(), 413),
        Err(e) => assert!(e.is_request() || e.is_body(), "{e}"),
    }

    // Responses: the cap whole; one byte more is cut (or refused when its length was declared).
    let mut res = client()
        .get(format!("{}/generate?size={CAP}", r.base))
        .send()
        .unwrap();
    let mut got = Vec::new();
    std::io::Read::read_to_end(&mut res, &mut got).unwrap();
    assert_eq!(got.len() as u64, CAP);
    // (The fixture declares its length, so the platform refuses before sending anything.)
    let res = client()
        .get(format!("{}/generate?size={}", r.base, CAP + 1))
        .send()
        .unwrap();
    assert_eq!(res.status(), 500);
    assert!(res.text().unwrap().contains("platform"));
}
