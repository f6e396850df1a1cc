//! Helpers for the black-box tests in `tests/`: they speak HTTP to a running stack and nothing else
//! (fixtures come from the `seed` tool, like a newcomer would get them).
//!
//! Which stack: the environment of `scripts/test` (`BASE_URL`, `DATABASE_ADMIN_URL`, `REDIS_URL`
//! and the `SPIN_VARIABLE_*` the app was started with), else the `.data/dev.env` that `scripts/dev`
//! writes. Tests that need a differently configured app (CORS origins, Redis down, a manifest
//! without the middleware) start their own instance with [`App::start`] on the run's [`Host`] (our
//! runner or the real Spin CLI): same database, Redis and keys, a few variables overridden, a free
//! port, stopped when dropped.
//!
//! Every HTTP client gets its own random loopback source address (127.x.y.z): the per-address
//! login limit then never sees one test's failures in another test, or in an earlier run against
//! the same Redis.

pub mod bucket;
pub mod proxy;
pub mod uploads;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use reqwest::blocking::{Client, RequestBuilder, Response};
use serde::Deserialize;
use serde_json::Value;

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The running stack's settings.
#[derive(Debug)]
pub struct Stack {
    /// e.g. `http://127.0.0.1:3000`.
    pub base_url: String,
    /// Superuser/owner URL of the stack's database (for the seed tool).
    pub database_admin_url: Option<String>,
    vars: HashMap<String, String>,
}

fn parse_env_file(text: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some((k, v)) = line.split_once('=') {
            let v = v.trim();
            // write_env_file quotes values with shell-special characters as '...'.
            let v = v
                .strip_prefix('\'')
                .and_then(|s| s.strip_suffix('\''))
                .map(|s| s.replace("'\\''", "'"))
                .unwrap_or_else(|| v.to_owned());
            out.insert(k.trim().to_owned(), v);
        }
    }
    out
}

impl Stack {
    /// The stack under test (read once).
    pub fn get() -> &'static Stack {
        static STACK: OnceLock<Stack> = OnceLock::new();
        STACK.get_or_init(|| {
            let mut vars: HashMap<String, String> = std::env::vars().collect();
            if !vars.contains_key("BASE_URL") {
                let dev_env = root().join(".data/dev.env");
                if let Ok(text) = std::fs::read_to_string(&dev_env) {
                    for (k, v) in parse_env_file(&text) {
                        vars.entry(k).or_insert(v);
                    }
                }
            }
            let base_url = vars.get("BASE_URL").cloned().unwrap_or_else(|| {
                panic!(
                    "BASE_URL is not set and there is no .data/dev.env: run these tests through \
                     scripts/test, or start scripts/dev first"
                )
            });
            Stack {
                base_url: base_url.trim_end_matches('/').to_owned(),
                database_admin_url: vars.get("DATABASE_ADMIN_URL").cloned(),
                vars,
            }
        })
    }

    /// A setting of the environment (e.g. `SPIN_VARIABLE_RATE_LIMIT`).
    pub fn var(&self, name: &str) -> Option<&str> {
        self.vars.get(name).map(String::as_str)
    }

    /// The value the app runs with for Spin variable `name`: the `SPIN_VARIABLE_*` set for it,
    /// else `default` (the manifest's default).
    pub fn spin_var<'a>(&'a self, name: &str, default: &'a str) -> &'a str {
        self.var(&format!("SPIN_VARIABLE_{}", name.to_ascii_uppercase()))
            .unwrap_or(default)
    }

    /// `base_url + path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// Two fresh tenants from the seed tool (one admin and two users each).
    pub fn seed(&self) -> Seed {
        let bin = root().join("target/release/seed");
        let mut cmd = if bin.exists() {
            Command::new(bin)
        } else {
            Command::new(root().join("scripts/seed"))
        };
        if let Some(url) = &self.database_admin_url {
            cmd.args(["--database-url", url]);
        }
        let out = cmd.arg("--json").output().expect("running the seed tool");
        assert!(
            out.status.success(),
            "seed failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("seed --json output")
    }
}

/// `seed --json` output.
#[derive(Debug, Clone, Deserialize)]
pub struct Seed {
    /// The fresh tenants.
    pub tenants: Vec<Tenant>,
}

/// A seeded tenant.
#[derive(Debug, Clone, Deserialize)]
pub struct Tenant {
    /// Tenant id.
    pub id: String,
    /// Tenant name.
    pub name: String,
    /// Its users (one admin, two users).
    pub users: Vec<User>,
    /// Its messages (three per user).
    #[serde(default)]
    pub messages: Vec<Message>,
}

/// A seeded message.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Message {
    /// Message id.
    pub id: String,
    /// The user who owns it.
    pub owner_user_id: String,
}

/// A seeded user.
#[derive(Debug, Clone, Deserialize)]
pub struct User {
    /// User id.
    pub id: String,
    /// Email.
    pub email: String,
    /// Password.
    pub password: String,
    /// `user` or `admin`.
    pub role: String,
}

impl Tenant {
    /// The tenant's admin.
    pub fn admin(&self) -> &User {
        self.users
            .iter()
            .find(|u| u.role == "admin")
            .expect("seeded admin")
    }

    /// The `n`-th message owned by `user`.
    pub fn message_of(&self, user: &User, n: usize) -> &Message {
        self.messages
            .iter()
            .filter(|m| m.owner_user_id == user.id)
            .nth(n)
            .expect("seeded message")
    }

    /// The tenant's `n`-th plain user (0 or 1).
    pub fn user(&self, n: usize) -> &User {
        self.users
            .iter()
            .filter(|u| u.role == "user")
            .nth(n)
            .expect("seeded user")
    }
}

/// A fresh random loopback address (127.x.y.z, never 127.0.0.1).
pub fn random_loopback() -> IpAddr {
    let b = *uuid::Uuid::new_v4().as_bytes();
    let pick = |x: u8| 1 + x % 254;
    IpAddr::V4(Ipv4Addr::new(127, pick(b[0]), pick(b[1]), pick(b[2])))
}

/// A blocking client from its own random loopback address; no redirects, 60 s timeout.
pub fn client() -> Client {
    Client::builder()
        .local_address(random_loopback())
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(60))
        .build()
        .expect("http client")
}

/// A response read completely: status, headers (lower-case names) and body.
#[derive(Debug)]
pub struct Reply {
    /// Status code.
    pub status: u16,
    /// Headers; repeated ones joined with `, `.
    pub headers: HashMap<String, String>,
    /// Body text.
    pub body: String,
}

impl Reply {
    /// Reads a response.
    pub fn from(res: Response) -> Reply {
        let status = res.status().as_u16();
        let mut headers: HashMap<String, String> = HashMap::new();
        for (k, v) in res.headers() {
            let v = v.to_str().unwrap_or("<binary>").to_owned();
            headers
                .entry(k.as_str().to_owned())
                .and_modify(|e| {
                    e.push_str(", ");
                    e.push_str(&v);
                })
                .or_insert(v);
        }
        let body = res.text().unwrap_or_default();
        Reply {
            status,
            headers,
            body,
        }
    }

    /// A header (name in lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }

    /// The body as JSON (panics with the body if it is not).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {} {}", self.status, self.body))
    }

    /// Asserts a problem+json error with this status and code, and returns the body.
    #[track_caller]
    pub fn assert_problem(&self, status: u16, code: &str) -> Value {
        assert_eq!(
            self.status, status,
            "expected {status} {code}, got: {self:?}"
        );
        assert_eq!(
            self.header("content-type"),
            Some("application/problem+json"),
            "{self:?}"
        );
        let v = self.json();
        assert_eq!(v["code"], code, "{self:?}");
        assert_eq!(v["status"], status, "{self:?}");
        assert!(
            self.header("x-request-id")
                .is_some_and(|r| v["requestId"] == r),
            "requestId must equal the x-request-id header: {self:?}"
        );
        v
    }
}

/// Sends a request and reads the reply.
pub fn send(rb: RequestBuilder) -> Reply {
    Reply::from(rb.send().expect("request failed"))
}

/// Sends a request whose body the service may refuse part-way (a blocked type at its first bytes, one
/// part too many): the answer, or `None` when the connection was reset under the client while it was
/// still sending. Both hosts close the connection after such an early answer without reading the rest
/// (as Spin does), so a client sending a large body may lose the answer to the reset; that is what
/// production clients see, and the caller asserts what must hold either way (nothing stored).
pub fn send_may_be_cut(rb: RequestBuilder) -> Option<Reply> {
    match rb.send() {
        Ok(res) => Some(Reply::from(res)),
        Err(e) if e.is_request() || e.is_body() || e.is_connect() => {
            eprintln!("(the connection was cut while sending: {e})");
            None
        }
        Err(e) => panic!("request failed: {e}"),
    }
}

/// Sends a request the way a client should when the service may answer before reading the body (too
/// large, too many parts, a blocked type, no token): with `Expect: 100-continue` (as curl does for large
/// bodies), sending the body only after `100 Continue`. Both hosts close the connection after an early
/// answer instead of reading the rest (Spin does; our runner does as Spin does), so a client that sends
/// its whole body regardless may see the connection reset instead of the answer. `url` is
/// `http://host:port/path?query`; the body goes in one `Content-Length` piece. Returns the final answer.
pub fn send_expecting_continue(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Reply {
    use std::io::Write;
    let rest = url.strip_prefix("http://").expect("an http:// URL");
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let path = if path.is_empty() { "/" } else { path };
    let mut sock = std::net::TcpStream::connect(authority).expect("connect");
    sock.set_read_timeout(Some(Duration::from_secs(60)))
        .expect("timeout");
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {authority}\r\nContent-Length: {}\r\nExpect: 100-continue\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    sock.write_all(head.as_bytes()).expect("sending the head");
    let mut reader = std::io::BufReader::new(sock.try_clone().expect("clone"));
    loop {
        let reply = read_reply(&mut reader);
        if reply.status == 100 {
            // Told to go on: the body, then the real answer. A reset while sending means the service
            // answered meanwhile; that answer is read below.
            let _ = sock.write_all(body);
            continue;
        }
        return reply;
    }
}

/// One HTTP/1.1 response from `r`: `Content-Length`, chunked, or (a `100`) none.
fn read_reply(r: &mut impl std::io::BufRead) -> Reply {
    let mut line = String::new();
    r.read_line(&mut line).expect("status line");
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {line:?}"));
    let mut headers: HashMap<String, String> = HashMap::new();
    loop {
        let mut h = String::new();
        r.read_line(&mut h).expect("header line");
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers
                .entry(k.trim().to_ascii_lowercase())
                .and_modify(|e| {
                    e.push_str(", ");
                    e.push_str(v.trim());
                })
                .or_insert_with(|| v.trim().to_owned());
        }
    }
    let mut body = Vec::new();
    if status >= 200 && status != 204 && status != 304 {
        if headers
            .get("transfer-encoding")
            .is_some_and(|t| t.contains("chunked"))
        {
            loop {
                let mut size = String::new();
                r.read_line(&mut size).expect("chunk size");
                let n = usize::from_str_radix(size.trim().split(';').next().unwrap_or(""), 16)
                    .expect("chunk size");
                let mut chunk = vec![0u8; n + 2];
                std::io::Read::read_exact(r, &mut chunk).expect("chunk");
                if n == 0 {
                    break;
                }
                body.extend_from_slice(&chunk[..n]);
            }
        } else if let Some(n) = headers.get("content-length") {
            let mut b = vec![0u8; n.parse().expect("content-length")];
            std::io::Read::read_exact(r, &mut b).expect("body");
            body = b;
        } else {
            let _ = std::io::Read::read_to_end(r, &mut body);
        }
    }
    Reply {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

/// Tokens from `/token` or `/refresh`.
#[derive(Debug, Clone)]
pub struct Tokens {
    /// The access token.
    pub access: String,
    /// The refresh token.
    pub refresh: String,
    /// The whole response body.
    pub body: Value,
}

impl Tokens {
    /// Reads a `200` token response.
    #[track_caller]
    pub fn from_reply(r: &Reply) -> Tokens {
        assert_eq!(r.status, 200, "token response: {r:?}");
        let body = r.json();
        Tokens {
            access: body["accessToken"]
                .as_str()
                .expect("accessToken")
                .to_owned(),
            refresh: body["refreshToken"]
                .as_str()
                .expect("refreshToken")
                .to_owned(),
            body,
        }
    }
}

/// `POST /api/v1/auth/token`.
pub fn login_reply(c: &Client, base: &str, email: &str, password: &str) -> Reply {
    send(
        c.post(format!("{base}/api/v1/auth/token"))
            .json(&serde_json::json!({ "email": email, "password": password })),
    )
}

/// Logs `user` in (must succeed).
#[track_caller]
pub fn login(c: &Client, base: &str, user: &User) -> Tokens {
    Tokens::from_reply(&login_reply(c, base, &user.email, &user.password))
}

/// A free TCP port on 127.0.0.1 (free when asked; good enough for a test).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// The host that runs the app: `APP_HOST` = `spinlet` (our runner, the default) or `spin` (the real
/// Spin CLI: `SPIN_BIN`, else `spin` on `PATH`). `scripts/test` runs the suite once under each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    Spinlet,
    Spin(PathBuf),
}

impl Host {
    /// The host of this run (read once).
    pub fn get() -> &'static Host {
        static HOST: OnceLock<Host> = OnceLock::new();
        HOST.get_or_init(|| match Stack::get().var("APP_HOST").unwrap_or("spinlet") {
            "spinlet" => Host::Spinlet,
            "spin" => Host::Spin(
                Stack::get()
                    .var("SPIN_BIN")
                    .filter(|b| !b.is_empty())
                    .map(PathBuf::from)
                    .unwrap_or_else(|| PathBuf::from("spin")),
            ),
            other => panic!("APP_HOST={other:?}: expected spinlet or spin"),
        })
    }

    /// Its name, for messages.
    pub fn name(&self) -> &'static str {
        match self {
            Host::Spinlet => "spinlet",
            Host::Spin(_) => "spin",
        }
    }
}

/// The production platform profile this run's app is served under (`APP_PLATFORM`, our runner's
/// `--platform`): `scripts/test` sets `fermyon-wasm-functions` for the spinlet pass, so a path that cannot
/// work on Fermyon Wasm Functions / Akamai Functions (a body over 10 MiB through a function, a request
/// over 30 s, an instance over 128 MiB) fails there; unset, or under real Spin, no platform caps.
pub fn platform() -> Option<&'static str> {
    static PLATFORM: OnceLock<Option<String>> = OnceLock::new();
    PLATFORM
        .get_or_init(|| {
            let p = Stack::get()
                .var("APP_PLATFORM")
                .filter(|p| !p.is_empty() && *p != "none")?;
            assert!(
                *Host::get() == Host::Spinlet,
                "APP_PLATFORM={p}: a platform profile is our runner's (APP_HOST=spinlet)"
            );
            Some(p.to_owned())
        })
        .as_deref()
}

/// What the host of an instance caps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limits {
    /// The run's platform profile, if any ([`platform`]).
    OfTheRun,
    /// No platform caps: an unlimited host, as `spin up` or SpinKube (behind an ingress, whose own
    /// body-size limit is the deployment's) serve the app. For tests that deliberately move a body over
    /// a platform's cap through a function, which those hosts allow.
    UnlimitedHost,
}

/// An app instance the test started on this run's [`Host`]; killed when dropped.
pub struct App {
    child: Child,
    /// Its base URL.
    pub base_url: String,
    log: PathBuf,
    state_dir: Option<PathBuf>,
}

impl App {
    /// Starts `manifest` (relative to the repository root) on a free port with the stack's
    /// environment plus `overrides`, and waits until healthy. Overrides are `SPIN_VARIABLE_*` names,
    /// or a runner setting: `SPINLET_MAX_MEMORY_MIB` (under Spin: `--max-instance-memory`) and
    /// `SPINLET_PG_RECYCLE` (Spin's pool always cleans its own way, which `spin` names). Under the run's
    /// platform profile, if any ([`Limits::OfTheRun`]).
    pub fn start(manifest: &str, overrides: &[(&str, &str)]) -> App {
        App::start_with(manifest, overrides, Limits::OfTheRun)
    }

    /// [`App::start`] on an unlimited host, as `spin up` or SpinKube serve the app
    /// ([`Limits::UnlimitedHost`]), whatever the run's platform profile.
    pub fn start_unlimited_host(manifest: &str, overrides: &[(&str, &str)]) -> App {
        App::start_with(manifest, overrides, Limits::UnlimitedHost)
    }

    /// [`App::start`] with the host's `limits`.
    pub fn start_with(manifest: &str, overrides: &[(&str, &str)], limits: Limits) -> App {
        let port = free_port();
        let host = Host::get();
        let log = std::env::temp_dir().join(format!(
            "itest-{}-{port}-{}.log",
            host.name(),
            std::process::id()
        ));
        let log_file = std::fs::File::create(&log).expect("app log file");
        let listen = format!("127.0.0.1:{port}");
        let mut state_dir = None;
        // Connection caps: this app runs beside the stack's own and other tests' (see the file).
        let runtime_config = root().join("tests/integration/app-runtime-config.toml");
        let mut cmd = match host {
            Host::Spinlet => {
                let bin = root().join("target/release/spinlet");
                assert!(
                    bin.exists(),
                    "target/release/spinlet is not built (scripts/build)"
                );
                let mut cmd = Command::new(bin);
                cmd.args(["up", "--from", manifest, "--listen", &listen])
                    .arg("--cache-dir")
                    .arg(root().join(".data/cache"));
                // Explicit either way: an inherited SPINLET_PLATFORM must not choose for the test.
                let profile = match limits {
                    Limits::OfTheRun => platform().unwrap_or("none"),
                    Limits::UnlimitedHost => "none",
                };
                cmd.args(["--platform", profile]);
                cmd.arg("--runtime-config-file").arg(&runtime_config);
                cmd
            }
            Host::Spin(bin) => {
                // A state directory of its own: instances started side by side share nothing.
                let dir = std::env::temp_dir()
                    .join(format!("itest-spin-state-{port}-{}", std::process::id()));
                let mut cmd = Command::new(bin);
                // Component output goes to its stdout (the log file) and to files under --log-dir.
                cmd.args(["up", "--from", manifest, "--listen", &listen])
                    .arg("--state-dir")
                    .arg(&dir)
                    .arg("--log-dir")
                    .arg(dir.join("logs"))
                    .arg("--runtime-config-file")
                    .arg(&runtime_config);
                state_dir = Some(dir);
                cmd
            }
        };
        // A process group of its own: `spin up` runs the app in a child process (`spin trigger http`),
        // which must go when the instance is dropped (see `Drop`).
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        cmd.current_dir(root())
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().expect("log"))
            .stderr(log_file);
        // The stack's own settings first (they may come from .data/dev.env), then the overrides.
        for (k, v) in &Stack::get().vars {
            if k.starts_with("SPIN_VARIABLE_") {
                cmd.env(k, v);
            }
        }
        for (k, v) in overrides {
            match (host, *k) {
                (Host::Spin(_), "SPINLET_MAX_MEMORY_MIB") => {
                    let mib: u64 = v.parse().expect("SPINLET_MAX_MEMORY_MIB");
                    cmd.arg("--max-instance-memory")
                        .arg((mib << 20).to_string());
                }
                (Host::Spin(_), "SPINLET_PG_RECYCLE") => {
                    assert_eq!(*v, "spin", "Spin's pool cleans only its own way");
                }
                _ => {
                    cmd.env(k, v);
                }
            }
        }
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", host.name()));
        let mut s = App {
            child,
            base_url: format!("http://127.0.0.1:{port}"),
            log,
            state_dir,
        };
        s.wait_healthy(Duration::from_secs(300));
        s
    }

    fn wait_healthy(&mut self, limit: Duration) {
        let c = Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .expect("client");
        let start = Instant::now();
        let host = Host::get().name();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("{host} exited ({status}): {}", self.log_text());
            }
            if c.get(format!("{}/.well-known/spin/health", self.base_url))
                .send()
                .is_ok_and(|r| r.status().is_success())
            {
                return;
            }
            assert!(
                start.elapsed() < limit,
                "{host} not healthy after {limit:?}: {}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// What it wrote so far (stdout and stderr: its own lines and the components').
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for App {
    fn drop(&mut self) {
        // The whole group: killing `spin up` alone would leave its `spin trigger http` child serving,
        // with its database connections.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
        if let Some(dir) = &self.state_dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// Decodes the (unverified) JSON header of a JWT.
pub fn jwt_header(token: &str) -> Value {
    use base64::Engine as _;
    let part = token.split('.').next().unwrap_or("");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .expect("base64url JWT header");
    serde_json::from_slice(&bytes).expect("JSON JWT header")
}

/// Parses `RateLimit-Policy: "user";q=50;w=60` into `(q, w)`.
pub fn parse_policy(value: &str) -> (u64, u64) {
    let param = |name: &str| {
        value
            .split(';')
            .find_map(|p| p.trim().strip_prefix(&format!("{name}=")))
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{name} in RateLimit-Policy {value:?}"))
    };
    (param("q"), param("w"))
}

/// Parses `r` of `RateLimit: "user";r=49;t=60`.
pub fn parse_remaining(value: &str) -> u64 {
    value
        .split(';')
        .find_map(|p| p.trim().strip_prefix("r="))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("r in RateLimit {value:?}"))
}

/// Lowercase hex SHA-256 of `bytes`, as the API reports content hashes.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Runs `sql` on the stack's database as its owner (`psql`, stopping at the first error) and returns
/// what it printed, unaligned and trimmed. For looking behind the API, never for setting a test up
/// in a way the API could not.
pub fn psql(sql: &str) -> String {
    let url = Stack::get()
        .database_admin_url
        .clone()
        .expect("DATABASE_ADMIN_URL");
    let out = Command::new("psql")
        .args([&url, "-XAtq", "-v", "ON_ERROR_STOP=1", "-c", sql])
        .output()
        .expect("running psql");
    assert!(
        out.status.success(),
        "psql failed: {}\n{sql}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("psql prints UTF-8")
        .trim()
        .to_owned()
}

/// `s` as an SQL string literal.
pub fn sql_str(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// Unix seconds now.
pub fn now_s() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs() as i64
}

/// Unix milliseconds now.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_millis() as i64
}

/// The scan worker (`target/release/scan-worker`) with the stack's settings: the scanner role's
/// database URL, storage, clamd and the callback with its secret; `queues` is its `SCAN_QUEUES`
/// (`scan`, `verify` or both), then `env` and the arguments `extra`.
pub fn scan_worker(queues: &str, extra: &[&str], env: &[(&str, &str)]) -> Command {
    let bin = root().join("target/release/scan-worker");
    assert!(
        bin.exists(),
        "target/release/scan-worker is not built (scripts/build)"
    );
    let stack = Stack::get();
    let mut cmd = Command::new(bin);
    for k in [
        // The scanner role: the queue's functions and nothing else (see scanner_role.rs).
        "SCAN_DATABASE_URL",
        "S3_ENDPOINT",
        "S3_REGION",
        "S3_BUCKET",
        "S3_ACCESS_KEY_ID",
        "S3_SECRET_ACCESS_KEY",
        "CLAMD_ADDR",
        "SCAN_CALLBACK_URL",
        "SCAN_CALLBACK_SECRET",
    ] {
        let v = stack
            .var(k)
            .unwrap_or_else(|| panic!("{k} is not set (run through scripts/test)"));
        cmd.env(k, v);
    }
    cmd.env("SCAN_QUEUES", queues);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.args(extra).stdin(Stdio::null());
    cmd
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_file_parsing() {
        let m = parse_env_file("# c\nA=1\nB='x y'\nC='it'\\''s'\n\n");
        assert_eq!(m["A"], "1");
        assert_eq!(m["B"], "x y");
        assert_eq!(m["C"], "it's");
    }

    #[test]
    fn stall_proxy_holds_bytes_and_closes_what_it_held() {
        use std::io::{Read, Write};
        use std::net::TcpStream;
        // An echo server upstream.
        let upstream = TcpListener::bind("127.0.0.1:0").unwrap();
        let up_addr = upstream.local_addr().unwrap().to_string();
        std::thread::spawn(move || {
            for conn in upstream.incoming() {
                let Ok(mut c) = conn else { return };
                std::thread::spawn(move || {
                    let mut buf = [0u8; 1024];
                    while let Ok(n) = c.read(&mut buf) {
                        if n == 0 || c.write_all(&buf[..n]).is_err() {
                            return;
                        }
                    }
                });
            }
        });
        let proxy = proxy::StallProxy::start(&up_addr);
        let echo = |s: &mut TcpStream, msg: &[u8]| -> std::io::Result<Vec<u8>> {
            s.write_all(msg)?;
            let mut got = vec![0u8; msg.len()];
            s.read_exact(&mut got)?;
            Ok(got)
        };
        let mut a = TcpStream::connect(proxy.addr()).unwrap();
        a.set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        assert_eq!(echo(&mut a, b"ping").unwrap(), b"ping");

        proxy.stall();
        assert!(echo(&mut a, b"held").is_err(), "nothing passes a stall");
        let mut b = TcpStream::connect(proxy.addr()).unwrap();
        b.set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        assert!(echo(&mut b, b"new").is_err(), "nor on a new connection");

        proxy.resume();
        // What the stalled connections held is never delivered: they are closed.
        let mut rest = Vec::new();
        a.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let _ = a.read_to_end(&mut rest);
        assert!(rest.is_empty(), "stale bytes delivered: {rest:?}");
        let mut c = TcpStream::connect(proxy.addr()).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        assert_eq!(echo(&mut c, b"again").unwrap(), b"again");
        assert_eq!(proxy.accepted(), 3);
    }

    #[test]
    fn header_parsers() {
        assert_eq!(parse_policy("\"user\";q=50;w=60"), (50, 60));
        assert_eq!(parse_remaining("\"user\";r=7;t=3"), 7);
        match random_loopback() {
            IpAddr::V4(v4) => {
                assert_eq!(v4.octets()[0], 127);
                assert_ne!(v4, Ipv4Addr::new(127, 0, 0, 1));
            }
            IpAddr::V6(_) => panic!("v4 expected"),
        }
    }
}
