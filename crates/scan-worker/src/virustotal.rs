//! The VirusTotal engine (API v3): a second opinion on content ClamAV judged, off unless
//! `VT_API_KEY` is set.
//!
//! For each content: `GET /api/v3/files/{sha256}` first, so content VirusTotal already knows is
//! judged without any byte leaving the tenant. Content it does not know is uploaded
//! (`POST /api/v3/files`) only where the tenant allows it (`tenants.virustotal_upload`, default off)
//! and it is at most `VT_MAX_UPLOAD_BYTES`; the analysis is then polled
//! (`GET /api/v3/analyses/{id}`) with backoff until it completes or `VT_ANALYSIS_DEADLINE_SECS`
//! passes. Every request carries the key in `x-apikey`; the key is never logged.
//!
//! | VirusTotal says | verdict |
//! |---|---|
//! | any engine `malicious` | `infected`, with the most frequent detection names |
//! | else any `suspicious` | `suspicious` |
//! | else (engines answered) | `clean` |
//! | unknown, not uploaded (tenant policy, size) | no opinion: nothing is posted |
//! | known but never analysed (all counts 0) | no opinion |
//! | analysis not done by the deadline | `error` |
//! | quota: `429` past the deadline | `error` |
//! | the shared budget has no room before the deadline (nothing was asked) | no opinion |
//! | key refused (`401`/`403`) | `error` (and an `vt.key_refused` error line) |
//! | other failures (5xx, network, malformed answers) | `error` |
//!
//! Never `infected` without a `malicious` count: an `error` ranks below any engine's `clean`
//! (`scan_core::engines`), so a VirusTotal outage never blocks content.
//!
//! Requests are paced by a budget shared by every worker replica ([`Budget`]): a fixed window of
//! `VT_REQUESTS_PER_MINUTE` requests per minute counted in Redis (`REDIS_URL`), and a cool-down
//! every replica honours after any of them got a `429`.

use std::future::Future;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::backoff::Backoff;
use crate::log;
use crate::verdict::{Status, Verdict};

/// The engine text of VirusTotal's verdicts (its engine key is `virustotal`).
pub const ENGINE: &str = "VirusTotal v3";

/// VirusTotal's limit for `POST /api/v3/files` (larger files need an upload URL, which we do not use).
pub const MAX_DIRECT_UPLOAD_BYTES: u64 = 32 * 1024 * 1024;

/// How many detection names a verdict carries.
const TOP_NAMES: usize = 3;

/// The engine's settings.
#[derive(Clone)]
pub struct Settings {
    /// `VT_API_URL`: `https://www.virustotal.com` (tests point it at a local server).
    pub api_url: String,
    /// `VT_API_KEY` (environment only; redacted in `Debug`, never logged).
    pub api_key: String,
    /// `VT_REQUESTS_PER_MINUTE`: the shared budget (the public API allows 4).
    pub requests_per_minute: u32,
    /// `VT_ANALYSIS_DEADLINE_SECS`: how long one content's judgement may take, waits included.
    pub deadline: Duration,
    /// `VT_MAX_UPLOAD_BYTES`: larger unknown content is not uploaded (no opinion).
    pub max_upload_bytes: u64,
    /// The first wait between two polls of an analysis, doubling up to 30 s.
    pub poll_base: Duration,
    /// `REDIS_URL`: where the budget is kept; `None`: this process only (one replica, tests).
    pub redis_url: Option<String>,
    /// The prefix of the budget's Redis keys ([`BUDGET_NAMESPACE`]; replicas sharing a budget
    /// share it).
    pub budget_namespace: String,
}

/// The prefix of the budget's Redis keys.
pub const BUDGET_NAMESPACE: &str = "scan:vt";

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("api_url", &self.api_url)
            .field("api_key", &"<redacted>")
            .field("requests_per_minute", &self.requests_per_minute)
            .field("deadline", &self.deadline)
            .field("max_upload_bytes", &self.max_upload_bytes)
            .field("poll_base", &self.poll_base)
            .field("budget_namespace", &self.budget_namespace)
            .field("redis_url", &self.redis_url.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// What VirusTotal made of a content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Opinion {
    /// A verdict to post (engine [`ENGINE`]).
    Verdict(Verdict),
    /// Nothing to say (unknown and not uploaded, known but never analysed): nothing is posted.
    None(String),
}

/// The counts of `last_analysis_stats` (file) or `stats` (analysis).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    pub malicious: u64,
    pub suspicious: u64,
    pub undetected: u64,
    pub harmless: u64,
}

impl Stats {
    fn of(v: &Value) -> Option<Self> {
        let n = |k: &str| v.get(k).and_then(Value::as_u64).unwrap_or(0);
        v.is_object().then(|| Self {
            malicious: n("malicious"),
            suspicious: n("suspicious"),
            undetected: n("undetected"),
            harmless: n("harmless"),
        })
    }

    fn answered(&self) -> u64 {
        self.malicious + self.suspicious + self.undetected + self.harmless
    }
}

/// The detection names of `results` (`{engine: {category, result}}`) in the given category, most
/// frequent first (ties by name), at most [`TOP_NAMES`].
pub fn top_names(results: &Value, category: &str) -> Vec<String> {
    let mut counts: std::collections::BTreeMap<String, usize> = Default::default();
    if let Some(m) = results.as_object() {
        for r in m.values() {
            if r.get("category").and_then(Value::as_str) == Some(category)
                && let Some(name) = r.get("result").and_then(Value::as_str)
            {
                let name: String = name
                    .chars()
                    .filter(|c| !c.is_control() && *c != ',')
                    .take(80)
                    .collect();
                let name = name.trim().to_owned();
                if !name.is_empty() {
                    *counts.entry(name).or_default() += 1;
                }
            }
        }
    }
    let mut v: Vec<(String, usize)> = counts.into_iter().collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    v.into_iter().take(TOP_NAMES).map(|(n, _)| n).collect()
}

/// The verdict for a report's `stats` and `results` (see the module docs); `None` when no engine
/// answered.
pub fn judge(stats: Stats, results: &Value) -> Option<Verdict> {
    if stats.answered() == 0 {
        return None;
    }
    let of = format!(
        "{} of {} engines",
        stats.malicious.max(stats.suspicious),
        stats.answered()
    );
    Some(if stats.malicious > 0 {
        let names = top_names(results, "malicious");
        Verdict {
            status: Status::Infected,
            signature: (!names.is_empty()).then(|| names.join(", ")),
            details: format!("VirusTotal: malicious according to {of}"),
        }
    } else if stats.suspicious > 0 {
        let names = top_names(results, "suspicious");
        Verdict {
            status: Status::Suspicious,
            signature: (!names.is_empty()).then(|| names.join(", ")),
            details: format!("VirusTotal: suspicious according to {of}"),
        }
    } else {
        Verdict {
            status: Status::Clean,
            signature: None,
            details: format!(
                "VirusTotal: no engine of {} found anything",
                stats.answered()
            ),
        }
    })
}

fn error(details: impl Into<String>) -> Opinion {
    Opinion::Verdict(Verdict {
        status: Status::Error,
        signature: None,
        details: details.into(),
    })
}

/// The request budget shared by the worker's replicas (see the module docs).
pub struct Budget {
    per_minute: u32,
    namespace: String,
    redis: Option<redis::Client>,
    /// Without Redis: (window start, requests in it, cool-down until).
    local: std::sync::Mutex<(Instant, u32, Option<Instant>)>,
}

/// Takes one request from the window, unless a cool-down is on or the window is spent: 0, or the
/// milliseconds to wait. KEYS[1] the window's counter, KEYS[2] the cool-down; ARGV[1] the limit.
const TAKE: &str = "\
local cool = redis.call('PTTL', KEYS[2]) \
if cool > 0 then return cool end \
local n = redis.call('INCR', KEYS[1]) \
if n == 1 then redis.call('PEXPIRE', KEYS[1], 60000) end \
if n > tonumber(ARGV[1]) then \
  local left = redis.call('PTTL', KEYS[1]) \
  if left < 1 then left = 1 end \
  return left \
end \
return 0";

impl Budget {
    /// A budget of `per_minute` requests, kept in Redis at `redis_url` when given.
    pub fn new(per_minute: u32, redis_url: Option<&str>, namespace: &str) -> Result<Self, String> {
        let redis = redis_url
            .map(|u| redis::Client::open(u).map_err(|e| format!("REDIS_URL: {e}")))
            .transpose()?;
        Ok(Self {
            per_minute: per_minute.max(1),
            namespace: namespace.to_owned(),
            redis,
            local: std::sync::Mutex::new((Instant::now(), 0, None)),
        })
    }

    /// The Redis keys of the current minute's window and of the cool-down.
    fn keys(namespace: &str) -> (String, String) {
        let minute = crate::log::now_ms() / 60_000;
        (
            format!("{namespace}:budget:{minute}"),
            format!("{namespace}:cooldown"),
        )
    }

    /// 0 when a request may go now, else how long to wait (ms).
    async fn try_take(&self) -> Result<u64, String> {
        let Some(client) = self.redis.clone() else {
            let mut l = self.local.lock().unwrap();
            let now = Instant::now();
            if let Some(until) = l.2.filter(|u| *u > now) {
                return Ok(until.duration_since(now).as_millis() as u64 + 1);
            }
            if now.duration_since(l.0) >= Duration::from_secs(60) {
                *l = (now, 0, None);
            }
            if l.1 >= self.per_minute {
                let ends = l.0 + Duration::from_secs(60);
                return Ok(ends.saturating_duration_since(now).as_millis() as u64 + 1);
            }
            l.1 += 1;
            return Ok(0);
        };
        let limit = self.per_minute;
        let (window, cooldown) = Self::keys(&self.namespace);
        tokio::task::spawn_blocking(move || {
            let mut conn = client
                .get_connection_with_timeout(Duration::from_secs(2))
                .map_err(|e| format!("redis: {e}"))?;
            let _ = conn.set_read_timeout(Some(Duration::from_secs(2)));
            let wait: i64 = redis::cmd("EVAL")
                .arg(TAKE)
                .arg(2)
                .arg(window)
                .arg(cooldown)
                .arg(limit)
                .query(&mut conn)
                .map_err(|e| format!("redis: {e}"))?;
            Ok(u64::try_from(wait).unwrap_or(0))
        })
        .await
        .map_err(|e| format!("redis: {e}"))?
    }

    /// Waits for a request of the budget until `deadline`; `Err` when none comes by then (or
    /// Redis cannot be asked).
    pub async fn acquire(&self, deadline: Instant) -> Result<(), String> {
        loop {
            let wait = Duration::from_millis(self.try_take().await?);
            if wait.is_zero() {
                return Ok(());
            }
            if Instant::now() + wait > deadline {
                return Err(format!(
                    "the VirusTotal request budget ({} a minute, shared by the workers) has no room before the deadline",
                    self.per_minute
                ));
            }
            tokio::time::sleep(wait).await;
        }
    }

    /// After a `429`: no replica sends before `d` passed.
    pub async fn cool_down(&self, d: Duration) -> Result<(), String> {
        let ms = d.as_millis().max(1) as u64;
        let Some(client) = self.redis.clone() else {
            self.local.lock().unwrap().2 = Some(Instant::now() + d);
            return Ok(());
        };
        let (_, cooldown) = Self::keys(&self.namespace);
        tokio::task::spawn_blocking(move || {
            let mut conn = client
                .get_connection_with_timeout(Duration::from_secs(2))
                .map_err(|e| format!("redis: {e}"))?;
            redis::cmd("SET")
                .arg(cooldown)
                .arg(1)
                .arg("PX")
                .arg(ms)
                .query::<()>(&mut conn)
                .map_err(|e| format!("redis: {e}"))
        })
        .await
        .map_err(|e| format!("redis: {e}"))?
    }
}

/// One answer from the API.
enum Answer {
    Ok(Value),
    NotFound,
    /// The shared budget had no room before the deadline: the request was never sent.
    NoBudget(String),
    /// 401/403.
    KeyRefused(u16),
    /// Ran past the deadline (waiting for the budget, or after `429`s).
    OutOfTime(String),
    /// Anything else that did not work.
    Failed(String),
}

/// The VirusTotal engine.
pub struct VirusTotal {
    settings: Settings,
    http: reqwest::Client,
    budget: Budget,
}

impl VirusTotal {
    pub fn new(settings: Settings) -> Result<Self, String> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(60))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!(
                "attachments-scan-worker/",
                env!("CARGO_PKG_VERSION")
            ))
            .build()
            .map_err(|e| e.to_string())?;
        let budget = Budget::new(
            settings.requests_per_minute,
            settings.redis_url.as_deref(),
            &settings.budget_namespace,
        )?;
        Ok(Self {
            settings,
            http,
            budget,
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.settings.api_url.trim_end_matches('/'))
    }

    /// Sends a request built by `build` within the budget until `deadline`: `429` cools every
    /// replica down and retries with backoff; 5xx and network failures retry a few times.
    async fn call(
        &self,
        what: &'static str,
        deadline: Instant,
        build: impl Fn() -> reqwest::RequestBuilder,
    ) -> Answer {
        let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
        let mut failures = 0u32;
        loop {
            if let Err(e) = self.budget.acquire(deadline).await {
                return Answer::NoBudget(e);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Answer::OutOfTime(format!("{what}: deadline passed"));
            }
            let sent = build()
                .header("x-apikey", &self.settings.api_key)
                .header("accept", "application/json")
                .timeout(left.min(Duration::from_secs(60)))
                .send()
                .await;
            let retry_in = match sent {
                Ok(res) => {
                    let status = res.status().as_u16();
                    match status {
                        200 => return read_json(what, res).await,
                        404 => return Answer::NotFound,
                        401 | 403 => return Answer::KeyRefused(status),
                        429 => {
                            let wait = res
                                .headers()
                                .get("retry-after")
                                .and_then(|v| v.to_str().ok())
                                .and_then(|v| v.trim().parse::<u64>().ok())
                                .map(Duration::from_secs)
                                .unwrap_or_default()
                                .max(backoff.next_delay());
                            log::warn(
                                "vt.throttled",
                                json!({"request": what, "retry_ms": wait.as_millis() as u64}),
                            );
                            if let Err(e) = self.budget.cool_down(wait).await {
                                log::warn("vt.budget_unavailable", json!({"error": e}));
                            }
                            wait
                        }
                        s if s >= 500 && failures < 3 => {
                            failures += 1;
                            backoff.next_delay()
                        }
                        s => return Answer::Failed(format!("{what}: VirusTotal answered {s}")),
                    }
                }
                Err(e) if e.is_timeout() => {
                    return Answer::OutOfTime(format!("{what}: no answer before the deadline"));
                }
                Err(e) if failures < 3 => {
                    failures += 1;
                    log::warn(
                        "vt.request_failed",
                        json!({"request": what, "error": crate::worker::without_url(&e)}),
                    );
                    backoff.next_delay()
                }
                Err(e) => {
                    return Answer::Failed(format!("{what}: {}", crate::worker::without_url(&e)));
                }
            };
            if Instant::now() + retry_in > deadline {
                return Answer::OutOfTime(format!(
                    "{what}: VirusTotal's quota or trouble outlasted the deadline"
                ));
            }
            tokio::time::sleep(retry_in).await;
        }
    }

    fn refused(status: u16) -> Opinion {
        log::error(
            "vt.key_refused",
            json!({"http": status, "hint": "check VT_API_KEY"}),
        );
        error(format!("VirusTotal refused the API key ({status})"))
    }

    /// VirusTotal's opinion of the content with this SHA-256. `upload` gives the content's bytes
    /// (at most `VT_MAX_UPLOAD_BYTES`) when the tenant allows uploading it; `None` when it does
    /// not.
    pub async fn opinion<F, Fut>(&self, sha256: &str, size: u64, upload: Option<F>) -> Opinion
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Vec<u8>, String>>,
    {
        let deadline = Instant::now() + self.settings.deadline;
        let url = self.url(&format!("/api/v3/files/{sha256}"));
        match self
            .call("file report", deadline, || self.http.get(&url))
            .await
        {
            Answer::Ok(v) => {
                let attrs = &v["data"]["attributes"];
                return match Stats::of(&attrs["last_analysis_stats"]) {
                    Some(stats) => match judge(stats, &attrs["last_analysis_results"]) {
                        Some(verdict) => Opinion::Verdict(verdict),
                        None => Opinion::None("known to VirusTotal but not analysed".into()),
                    },
                    None => error("VirusTotal's file report has no analysis stats"),
                };
            }
            Answer::NotFound => {}
            // Not asked at all: no opinion (an error would only say the budget is small).
            Answer::NoBudget(m) => return Opinion::None(m),
            Answer::KeyRefused(s) => return Self::refused(s),
            Answer::OutOfTime(m) | Answer::Failed(m) => return error(format!("VirusTotal: {m}")),
        }
        let Some(upload) = upload else {
            return Opinion::None(
                "unknown to VirusTotal; the tenant does not allow uploading content".into(),
            );
        };
        let cap = self.settings.max_upload_bytes.min(MAX_DIRECT_UPLOAD_BYTES);
        if size > cap {
            return Opinion::None(format!(
                "unknown to VirusTotal and larger than the upload limit ({size} > {cap} bytes)"
            ));
        }
        let bytes = match upload().await {
            Ok(b) => b,
            Err(e) => return error(format!("VirusTotal: reading the content to upload: {e}")),
        };
        let boundary = format!("vt{}", uuid::Uuid::new_v4().simple());
        let body = multipart_file(&boundary, sha256, &bytes);
        drop(bytes);
        let files = self.url("/api/v3/files");
        let id = match self
            .call("upload", deadline, || {
                self.http
                    .post(&files)
                    .header(
                        "content-type",
                        format!("multipart/form-data; boundary={boundary}"),
                    )
                    .body(body.clone())
            })
            .await
        {
            Answer::Ok(v) => match v["data"]["id"].as_str() {
                Some(id) if !id.is_empty() && id.len() < 200 => id.to_owned(),
                _ => return error("VirusTotal's upload answer names no analysis"),
            },
            Answer::NotFound => return error("VirusTotal: upload answered 404"),
            Answer::NoBudget(m) => return Opinion::None(m),
            Answer::KeyRefused(s) => return Self::refused(s),
            Answer::OutOfTime(m) | Answer::Failed(m) => return error(format!("VirusTotal: {m}")),
        };
        log::info("vt.uploaded", json!({"analysis": id}));
        self.poll(&id, deadline).await
    }

    /// Polls analysis `id` until it completes or `deadline` passes.
    async fn poll(&self, id: &str, deadline: Instant) -> Opinion {
        let url = self.url(&format!("/api/v3/analyses/{id}"));
        let mut wait = Backoff::new(self.settings.poll_base, Duration::from_secs(30));
        loop {
            let delay = wait.next_delay();
            if Instant::now() + delay > deadline {
                return error(format!(
                    "VirusTotal did not finish the analysis within {} s",
                    self.settings.deadline.as_secs()
                ));
            }
            tokio::time::sleep(delay).await;
            match self
                .call("analysis", deadline, || self.http.get(&url))
                .await
            {
                Answer::Ok(v) => {
                    let attrs = &v["data"]["attributes"];
                    if attrs["status"].as_str() != Some("completed") {
                        continue;
                    }
                    return match Stats::of(&attrs["stats"])
                        .and_then(|s| judge(s, &attrs["results"]))
                    {
                        Some(verdict) => Opinion::Verdict(verdict),
                        None => {
                            error("VirusTotal completed the analysis without any engine's answer")
                        }
                    };
                }
                Answer::NotFound => return error("VirusTotal lost the analysis (404)"),
                Answer::KeyRefused(s) => return Self::refused(s),
                Answer::OutOfTime(_) | Answer::NoBudget(_) => {
                    return error(format!(
                        "VirusTotal did not finish the analysis within {} s",
                        self.settings.deadline.as_secs()
                    ));
                }
                Answer::Failed(m) => return error(format!("VirusTotal: {m}")),
            }
        }
    }
}

/// Longest answer read (a file report with every engine's result is some hundreds of KiB).
const MAX_ANSWER_BYTES: usize = 8 * 1024 * 1024;

/// The JSON body of a `200`, read up to [`MAX_ANSWER_BYTES`].
async fn read_json(what: &str, mut res: reqwest::Response) -> Answer {
    let mut body = Vec::new();
    loop {
        match res.chunk().await {
            Ok(Some(c)) if body.len() + c.len() <= MAX_ANSWER_BYTES => body.extend_from_slice(&c),
            Ok(Some(_)) => {
                return Answer::Failed(format!(
                    "{what}: answer larger than {MAX_ANSWER_BYTES} bytes"
                ));
            }
            Ok(None) => break,
            Err(e) => {
                return Answer::Failed(format!(
                    "{what}: reading the answer: {}",
                    crate::worker::without_url(&e)
                ));
            }
        }
    }
    match serde_json::from_slice(&body) {
        Ok(v) => Answer::Ok(v),
        Err(_) => Answer::Failed(format!("{what}: the answer is not JSON")),
    }
}

/// A `multipart/form-data` body with the one part `file`.
fn multipart_file(boundary: &str, name: &str, bytes: &[u8]) -> Vec<u8> {
    let mut body = Vec::with_capacity(bytes.len() + 256);
    body.extend_from_slice(
        format!(
            "--{boundary}\r\ncontent-disposition: form-data; name=\"file\"; filename=\"{name}\"\r\ncontent-type: application/octet-stream\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(bytes);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    fn results(pairs: &[(&str, &str, Option<&str>)]) -> Value {
        let mut m = serde_json::Map::new();
        for (engine, category, result) in pairs {
            m.insert(
                (*engine).into(),
                json!({"category": category, "engine_name": engine, "result": result}),
            );
        }
        Value::Object(m)
    }

    #[test]
    fn the_mapping() {
        let none = Stats::default();
        assert_eq!(judge(none, &json!({})), None);
        let r = results(&[
            ("A", "malicious", Some("EICAR-Test-File")),
            ("B", "malicious", Some("Eicar.Test")),
            ("C", "malicious", Some("EICAR-Test-File")),
            ("D", "suspicious", Some("Heur.Gen")),
            ("E", "undetected", None),
            ("F", "malicious", Some("Zed, with a comma")),
            ("G", "malicious", Some("Aaa")),
        ]);
        let v = judge(
            Stats {
                malicious: 5,
                suspicious: 1,
                undetected: 1,
                harmless: 0,
            },
            &r,
        )
        .unwrap();
        assert_eq!(v.status, Status::Infected);
        assert_eq!(
            v.signature.as_deref(),
            Some("EICAR-Test-File, Aaa, Eicar.Test")
        );
        assert!(v.details.contains("5 of 7"), "{}", v.details);
        let v = judge(
            Stats {
                suspicious: 1,
                undetected: 60,
                ..Stats::default()
            },
            &r,
        )
        .unwrap();
        assert_eq!(
            (v.status, v.signature.as_deref()),
            (Status::Suspicious, Some("Heur.Gen"))
        );
        let v = judge(
            Stats {
                undetected: 60,
                harmless: 2,
                ..Stats::default()
            },
            &json!({}),
        )
        .unwrap();
        assert_eq!((v.status, v.signature), (Status::Clean, None));
        assert_eq!(top_names(&json!(null), "malicious"), Vec::<String>::new());
    }

    #[test]
    fn the_key_stays_out_of_debug() {
        let s = Settings {
            api_url: "http://x".into(),
            api_key: "very-secret-key".into(),
            requests_per_minute: 4,
            deadline: Duration::from_secs(1),
            max_upload_bytes: 1,
            poll_base: Duration::from_millis(1),
            redis_url: Some("redis://:pw@host".into()),
            budget_namespace: BUDGET_NAMESPACE.into(),
        };
        let d = format!("{s:?}");
        assert!(!d.contains("very-secret-key") && !d.contains("pw@"), "{d}");
    }

    #[tokio::test]
    async fn a_local_budget_refuses_past_its_window() {
        let b = Budget::new(2, None, BUDGET_NAMESPACE).unwrap();
        let soon = Instant::now() + Duration::from_millis(50);
        b.acquire(soon).await.unwrap();
        b.acquire(soon).await.unwrap();
        assert!(b.acquire(soon).await.is_err());
    }

    #[test]
    fn the_upload_body() {
        let b = multipart_file("XB", "ab", b"hello");
        let s = String::from_utf8(b).unwrap();
        assert!(
            s.starts_with("--XB\r\ncontent-disposition: form-data; name=\"file\"; filename=\"ab\"")
        );
        assert!(s.ends_with("\r\n\r\nhello\r\n--XB--\r\n"));
    }
}
