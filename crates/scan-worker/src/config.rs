//! Settings from flags and the environment (a flag wins over its variable). Secrets come from the
//! environment only (`SCAN_CALLBACK_SECRET`, and preferably `SCAN_DATABASE_URL`), so they never show in `ps`;
//! `Debug` redacts them.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use attachment_policy::ExtensionPolicy;
use storage::StorageConfig;

pub const USAGE: &str = "\
usage: scan-worker [--once] [options]
       scan-worker janitor [--once] [options]
       scan-worker reconcile [--dry-run] [--once] [--tenant UUID] [options]
       scan-worker purge [--once] [--dry-run] [options]
       scan-worker rescan (--tenant UUID | --all) [options]

Claims virus-scan jobs from Postgres, streams each object from S3 to clamd (INSTREAM) and posts the
signed verdict to the scan callback. Beside them it verifies direct uploads (one read of the object:
size, SHA-256, the content policy and clamd; the outcome is posted, signed, to the upload-verification
route) and, every JANITOR_INTERVAL_SECS, runs the upload janitor (aborts expired multipart uploads,
deletes unused objects, forgets expired sessions). `janitor` runs only the janitor (`--once`: one pass,
then exit). Every PURGE_INTERVAL_SECS it also runs the retention purge (attachments past retention or
soft-deleted longer than PURGE_GRACE_DAYS, not on legal hold, are deleted with an audit row each, then
the stored content nobody references any more); `purge` runs only the purge (`--once`: one pass;
`--dry-run`: print what one pass would purge and change nothing), and needs neither clamd nor the
callback. `reconcile` compares the bucket with the database: deletes objects no row knows (older than
RECONCILE_SAFETY_SECS), marks blobs whose object is missing (missing_since) and aborts stale multipart
uploads, then prints its report (JSON); `--dry-run` only reports; it needs only the database and S3
settings. Every option also reads an environment variable (the flag wins).

  --database-url URL        SCAN_DATABASE_URL   the scanner role (attachments_scanner): it may claim and complete
                                                scan jobs and nothing else (never the app's DATABASE_URL)
  --clamd HOST:PORT         CLAMD_ADDR          clamd's TCP socket (default 127.0.0.1:3310)
  --callback-url URL        SCAN_CALLBACK_URL   POST /api/v1/scan/callback of the app
                            SCAN_CALLBACK_SECRET  signing secret (env only): `name:secret` as the app's
                                                scan_callback_secrets lists it (e.g. scan-worker:<secret>) or
                                                the bare secret; of a comma-separated ring the first signs
                            S3_ENDPOINT, S3_REGION (garage), S3_BUCKET (attachments), S3_ACCESS_KEY_ID,
                            S3_SECRET_ACCESS_KEY  the bucket (env only)
  --worker-name NAME        SCAN_WORKER_NAME    lease holder name (default <hostname>-<pid>)
  --lease-secs N            SCAN_LEASE_SECS     lease per claimed job (default 300); a job is given up before it ends
  --concurrency N           SCAN_CONCURRENCY    jobs scanned at once (default 2)
  --max-scan-bytes N        SCAN_MAX_BYTES      larger objects get the verdict error \"too large to scan\"
                                                (default 62914560 = 60 MiB; keep it below clamd's StreamMaxLength)
  --poll-secs S             SCAN_POLL_SECS      idle wait between claims, may be fractional (default 2)
  --clamd-timeout-secs N    SCAN_CLAMD_TIMEOUT_SECS  connect / answer timeout (default 120)
  --db-timeout-secs N       SCAN_DB_TIMEOUT_SECS  connecting to Postgres and each claim / completion (default 10)
  --queues LIST             SCAN_QUEUES         what this worker claims: scan (scan jobs), verify (direct
                                                uploads to verify), comma separated (default scan,verify)
  --verification-url URL    SCAN_VERIFICATION_URL  POST /api/v1/scan/upload-verification of the app (default:
                                                the callback URL with its last segment `callback` replaced)
  --blocked-extensions LIST BLOCKED_EXTENSIONS  refused file extensions: set it to the app's blocked_extensions
                                                when that is not the default (the default is the same list)
  --janitor-interval-secs N JANITOR_INTERVAL_SECS  seconds between janitor runs (default 60; 0: no janitor)
  --metrics-addr HOST:PORT  METRICS_ADDR        serve Prometheus metrics at http://HOST:PORT/metrics (default: off)
  --reconcile-safety-secs N RECONCILE_SAFETY_SECS  reconcile leaves objects and multipart uploads younger than
                                                this alone (default 86400; 0 only for tests)
  --reconcile-interval-secs N RECONCILE_INTERVAL_SECS  seconds between reconcile runs without --once (default 86400)
  --tenant UUID                                 reconcile one tenant's keys only; `rescan`: that tenant's content
  --all                                         `rescan`: every tenant's content
  --rescan-interval-secs N  RESCAN_INTERVAL_SECS  how often the worker looks for clean content to rescan: judged
                                                by ClamAV under older signatures than clamd's VERSION now names,
                                                or (with VirusTotal) younger than VT_RESCAN_WINDOW_SECS and not
                                                asked for VT_RESCAN_EVERY_SECS (default 60; 0: no rescans)
  --rescan-slots N          SCAN_RESCAN_SLOTS   of SCAN_CONCURRENCY, how many slots rescans may hold at most
                                                (default half, at least 1); first scans always claim first
  --rescan-queue N          RESCAN_QUEUE        rescans queued at a time (default 1000; 1..=1000000)
                            VT_RESCAN_WINDOW_SECS  VirusTotal asks again about content younger than this
                                                (default 604800, 7 days; 0: never)
                            VT_RESCAN_EVERY_SECS   ...at most this often per content (default 86400)
  --purge-interval-secs N   PURGE_INTERVAL_SECS  seconds between purge runs (default 3600; 0: no purge beside
                                                the worker loop)
  --purge-grace-days N      PURGE_GRACE_DAYS    soft-deleted attachments are purged this many days after their
                                                deletion (default 30; 0..=36500)
  --purge-batch N           PURGE_BATCH         attachments purged per transaction (default 500; 1..=10000)
  --purge-concurrency N     PURGE_CONCURRENCY   objects deleted at once (default 8; 1..=64)
  --dry-run                                     `reconcile` and `purge` only: report what a run would do, change
                                                nothing
  --once                                        process what is claimable now, then exit (tests, cron)
                            VT_API_KEY          the VirusTotal engine's API key (env only; default unset: no
                                                VirusTotal). With it, each content ClamAV did not find infected
                                                is looked up by SHA-256 (and uploaded where the tenant allows it)
                            VT_API_URL          default https://www.virustotal.com
                            VT_REQUESTS_PER_MINUTE  the request budget, shared by every worker through REDIS_URL
                                                (default 4, the public API's quota)
                            VT_ANALYSIS_DEADLINE_SECS  one content's VirusTotal judgement, waits included (default 120)
                            VT_MAX_UPLOAD_BYTES larger unknown content is not uploaded (default and most 33554432)
                            VT_POLL_MS          first wait between polls of an analysis, doubling (default 5000)
                            REDIS_URL           where the VirusTotal budget is shared (default: this process only)
  --max-jobs N                                  claim at most N scan jobs and verifications together, then
                                                finish them and exit
  --help";

/// What the worker runs with.
#[derive(Clone)]
pub struct Config {
    pub database_url: String,
    pub storage: StorageConfig,
    pub clamd_addr: String,
    pub callback_url: String,
    pub callback_secret: Vec<u8>,
    /// The scanner name `SCAN_CALLBACK_SECRET` gives the secret (`unnamed` for a bare one): what the
    /// app records as the sender when its `scan_callback_secrets` lists the same `name:secret`.
    pub callback_as: String,
    pub worker_name: String,
    pub lease_secs: u32,
    pub concurrency: usize,
    pub max_scan_bytes: u64,
    pub poll_interval: Duration,
    pub clamd_timeout: Duration,
    /// Postgres: connecting, and each claim or completion.
    pub db_timeout: Duration,
    pub once: bool,
    pub max_jobs: Option<u64>,
    /// What this process runs.
    pub mode: Mode,
    /// Whether scan jobs are claimed.
    pub scan_jobs: bool,
    /// Whether direct uploads are verified.
    pub verify_uploads: bool,
    /// `POST /api/v1/scan/upload-verification` of the app.
    pub verification_url: String,
    /// The blocked extensions (the app's `blocked_extensions`).
    pub extensions: ExtensionPolicy,
    /// Between janitor runs; `None`: no janitor.
    pub janitor_interval: Option<Duration>,
    /// Where `/metrics` is served; `None`: nowhere.
    pub metrics_addr: Option<std::net::SocketAddr>,
    /// What reconcile runs with.
    pub reconcile: ReconcileSettings,
    /// The retention purge's settings.
    pub purge: PurgeSettings,
    /// Rescans of content judged clean.
    pub rescan: RescanSettings,
    /// The VirusTotal engine's settings; `None` (the default) without `VT_API_KEY`.
    pub virustotal: Option<crate::virustotal::Settings>,
}

/// The reconcile job's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReconcileSettings {
    /// Objects and multipart uploads younger than this are never taken: an upload in flight has
    /// stored its object but not yet written its row.
    pub safety_window: Duration,
    /// Between runs without `--once`.
    pub interval: Duration,
    /// Report only.
    pub dry_run: bool,
    /// One tenant's keys only.
    pub tenant: Option<uuid::Uuid>,
}

/// Rescans of content judged clean.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RescanSettings {
    /// Between looks for content to rescan; `None`: never.
    pub interval: Option<Duration>,
    /// Slots of `SCAN_CONCURRENCY` rescans may hold at most.
    pub slots: usize,
    /// Rescans open at a time.
    pub queue: u32,
    /// VirusTotal asks again about content younger than this; `None`: never.
    pub vt_window: Option<Duration>,
    /// ...at most this often per content.
    pub vt_every: Duration,
    /// `scan-worker rescan --tenant`: that tenant's content (`--all`: `None`).
    pub tenant: Option<uuid::Uuid>,
}

/// The retention purge's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PurgeSettings {
    /// Between purge runs; `None`: no purge beside the worker loop.
    pub interval: Option<Duration>,
    /// Days a soft-deleted attachment is kept before it is purged.
    pub grace_days: u32,
    /// Attachments purged per transaction (and purging blobs claimed at once).
    pub batch: u32,
    /// DeleteObject requests at once.
    pub concurrency: usize,
    /// `--dry-run`: list, change nothing.
    pub dry_run: bool,
    /// A test hook (`PURGE_FAULT`, environment only): abort the process at this point of a purge,
    /// as a crash or SIGKILL would, to prove a rerun finishes the job.
    pub fault: Option<PurgeFault>,
}

/// Where `PURGE_FAULT` aborts a purge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PurgeFault {
    /// `after-rows`: the attachments are deleted and their content purging, no object deleted yet.
    AfterRows,
    /// `after-object`: an object is deleted, its blob row not yet forgotten.
    AfterObject,
}

/// What the process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Scan jobs and upload verifications, with the janitor on its interval.
    Work,
    /// The janitor alone (`scan-worker janitor`).
    Janitor,
    /// Bucket against database (`scan-worker reconcile`).
    Reconcile,
    /// The retention purge alone (`scan-worker purge`).
    Purge,
    /// Queue rescans of one tenant's or every tenant's clean content (`scan-worker rescan`).
    Rescan,
}

/// The upload-verification URL beside a callback URL `.../scan/callback`: the same origin and
/// prefix, last segment `upload-verification`.
pub fn verification_url_beside(callback_url: &str) -> Option<String> {
    let mut url = reqwest::Url::parse(callback_url).ok()?;
    let path = url.path().strip_suffix("/callback")?.to_owned();
    url.set_path(&format!("{path}/upload-verification"));
    url.set_query(None);
    Some(url.to_string())
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("database_url", &"<redacted>")
            .field("storage", &self.storage)
            .field("clamd_addr", &self.clamd_addr)
            .field("callback_url", &self.callback_url)
            .field("callback_secret", &"<redacted>")
            .field("callback_as", &self.callback_as)
            .field("worker_name", &self.worker_name)
            .field("lease_secs", &self.lease_secs)
            .field("concurrency", &self.concurrency)
            .field("max_scan_bytes", &self.max_scan_bytes)
            .field("poll_interval", &self.poll_interval)
            .field("clamd_timeout", &self.clamd_timeout)
            .field("db_timeout", &self.db_timeout)
            .field("once", &self.once)
            .field("max_jobs", &self.max_jobs)
            .field("mode", &self.mode)
            .field("scan_jobs", &self.scan_jobs)
            .field("verify_uploads", &self.verify_uploads)
            .field("verification_url", &self.verification_url)
            .field("janitor_interval", &self.janitor_interval)
            .field("metrics_addr", &self.metrics_addr)
            .field("reconcile", &self.reconcile)
            .field("purge", &self.purge)
            .field("virustotal", &self.virustotal)
            .field("rescan", &self.rescan)
            .finish()
    }
}

/// `--help`, or a configuration error (one line).
#[derive(Debug, PartialEq, Eq)]
pub enum ConfigError {
    Help,
    Invalid(String),
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Help => f.write_str("help requested"),
            ConfigError::Invalid(m) => f.write_str(m),
        }
    }
}

fn invalid(m: impl Into<String>) -> ConfigError {
    ConfigError::Invalid(m.into())
}

/// (flag, environment variable) of the valued options.
const VALUED: &[(&str, Option<&str>)] = &[
    ("database-url", Some("SCAN_DATABASE_URL")),
    ("clamd", Some("CLAMD_ADDR")),
    ("callback-url", Some("SCAN_CALLBACK_URL")),
    ("worker-name", Some("SCAN_WORKER_NAME")),
    ("lease-secs", Some("SCAN_LEASE_SECS")),
    ("concurrency", Some("SCAN_CONCURRENCY")),
    ("max-scan-bytes", Some("SCAN_MAX_BYTES")),
    ("poll-secs", Some("SCAN_POLL_SECS")),
    ("clamd-timeout-secs", Some("SCAN_CLAMD_TIMEOUT_SECS")),
    ("db-timeout-secs", Some("SCAN_DB_TIMEOUT_SECS")),
    ("queues", Some("SCAN_QUEUES")),
    ("verification-url", Some("SCAN_VERIFICATION_URL")),
    ("blocked-extensions", Some("BLOCKED_EXTENSIONS")),
    ("janitor-interval-secs", Some("JANITOR_INTERVAL_SECS")),
    ("metrics-addr", Some("METRICS_ADDR")),
    ("reconcile-safety-secs", Some("RECONCILE_SAFETY_SECS")),
    ("reconcile-interval-secs", Some("RECONCILE_INTERVAL_SECS")),
    ("tenant", None),
    ("purge-interval-secs", Some("PURGE_INTERVAL_SECS")),
    ("purge-grace-days", Some("PURGE_GRACE_DAYS")),
    ("purge-batch", Some("PURGE_BATCH")),
    ("purge-concurrency", Some("PURGE_CONCURRENCY")),
    ("rescan-interval-secs", Some("RESCAN_INTERVAL_SECS")),
    ("rescan-slots", Some("SCAN_RESCAN_SLOTS")),
    ("rescan-queue", Some("RESCAN_QUEUE")),
    ("max-jobs", None),
];

pub const DEFAULT_MAX_SCAN_BYTES: u64 = 60 * 1024 * 1024;

impl Config {
    /// From `argv[1..]`, an environment lookup and the default worker name.
    pub fn parse(
        argv: impl IntoIterator<Item = String>,
        env: impl Fn(&str) -> Option<String>,
        default_worker_name: impl FnOnce() -> String,
    ) -> Result<Config, ConfigError> {
        let mut flags: BTreeMap<&str, String> = BTreeMap::new();
        let mut once = false;
        let mut dry_run = false;
        let mut all = false;
        let mut mode = Mode::Work;
        let mut it = argv.into_iter().peekable();
        if let Some(m) = it.peek().and_then(|a| match a.as_str() {
            "janitor" => Some(Mode::Janitor),
            "reconcile" => Some(Mode::Reconcile),
            "purge" => Some(Mode::Purge),
            "rescan" => Some(Mode::Rescan),
            _ => None,
        }) {
            it.next();
            mode = m;
        }
        while let Some(arg) = it.next() {
            let body = arg
                .strip_prefix("--")
                .ok_or_else(|| invalid(format!("unexpected argument `{arg}`")))?;
            let (name, inline) = match body.split_once('=') {
                Some((n, v)) => (n, Some(v.to_owned())),
                None => (body, None),
            };
            match name {
                "help" => return Err(ConfigError::Help),
                "once" if inline.is_none() => once = true,
                "all" if inline.is_none() && mode == Mode::Rescan => all = true,
                "dry-run" if inline.is_none() && matches!(mode, Mode::Reconcile | Mode::Purge) => {
                    dry_run = true
                }
                _ => {
                    let (flag, _) = VALUED
                        .iter()
                        .find(|(f, _)| *f == name)
                        .ok_or_else(|| invalid(format!("unknown option --{name}")))?;
                    let value = match inline {
                        Some(v) => v,
                        None => it
                            .next()
                            .ok_or_else(|| invalid(format!("--{name} needs a value")))?,
                    };
                    flags.insert(flag, value);
                }
            }
        }
        let env = |k: &str| {
            env(k)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let get = |flag: &str| -> Option<String> {
            flags.get(flag).cloned().or_else(|| {
                VALUED
                    .iter()
                    .find(|(f, _)| *f == flag)
                    .and_then(|(_, var)| var.and_then(&env))
            })
        };
        let required = |flag: &str, var: &str| {
            get(flag).ok_or_else(|| invalid(format!("--{flag} or {var} is required")))
        };
        fn number<T: std::str::FromStr>(
            flag: &str,
            v: Option<String>,
            default: T,
        ) -> Result<T, ConfigError> {
            match v {
                None => Ok(default),
                Some(v) => v
                    .parse()
                    .map_err(|_| invalid(format!("--{flag}: `{v}` is not a valid number"))),
            }
        }

        let database_url = required("database-url", "SCAN_DATABASE_URL")?;
        database_url
            .parse::<tokio_postgres::Config>()
            .map_err(|_| invalid("SCAN_DATABASE_URL is not a valid postgres URL"))?;

        let env_req = |k: &str| env(k).ok_or_else(|| invalid(format!("{k} is required")));
        let storage = StorageConfig::new(
            &env_req("S3_ENDPOINT")?,
            &env("S3_REGION").unwrap_or_else(|| "garage".into()),
            &env("S3_BUCKET").unwrap_or_else(|| "attachments".into()),
            &env_req("S3_ACCESS_KEY_ID")?,
            &env_req("S3_SECRET_ACCESS_KEY")?,
        )
        .map_err(|e| invalid(format!("S3 settings: {e}")))?;

        let clamd_addr = get("clamd").unwrap_or_else(|| "127.0.0.1:3310".into());
        match clamd_addr.rsplit_once(':') {
            Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0) => {}
            _ => {
                return Err(invalid(format!(
                    "--clamd / CLAMD_ADDR must be host:port, not `{clamd_addr}`"
                )));
            }
        }

        // Reconcile and the purge alone post nothing: they need the database and the bucket only.
        let posts = !matches!(mode, Mode::Reconcile | Mode::Purge | Mode::Rescan);
        let callback_url = if posts {
            required("callback-url", "SCAN_CALLBACK_URL")?
        } else {
            get("callback-url").unwrap_or_default()
        };
        if posts || !callback_url.is_empty() {
            let parsed = reqwest::Url::parse(&callback_url)
                .map_err(|_| invalid("SCAN_CALLBACK_URL is not a URL"))?;
            if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
                return Err(invalid("SCAN_CALLBACK_URL must be an http(s) URL"));
            }
        }
        let (callback_secret, callback_as) = match env("SCAN_CALLBACK_SECRET") {
            None if !posts => (Vec::new(), String::new()),
            ring => {
                let ring = ring.ok_or_else(|| invalid("SCAN_CALLBACK_SECRET is required"))?;
                let ring = scan_core::signature::SecretRing::parse(&ring)
                    .map_err(|e| invalid(format!("SCAN_CALLBACK_SECRET: {e}")))?;
                (ring.current().to_vec(), ring.current_name().to_owned())
            }
        };

        let worker_name = get("worker-name").unwrap_or_else(default_worker_name);
        if worker_name.is_empty()
            || worker_name.len() > 200
            || worker_name.chars().any(char::is_control)
        {
            return Err(invalid("worker name must be 1..=200 printable characters"));
        }
        let lease_secs: u32 = number("lease-secs", get("lease-secs"), 300)?;
        if !(1..=86_400).contains(&lease_secs) {
            return Err(invalid("--lease-secs must be 1..=86400"));
        }
        let concurrency: usize = number("concurrency", get("concurrency"), 2)?;
        if !(1..=64).contains(&concurrency) {
            return Err(invalid("--concurrency must be 1..=64"));
        }
        let max_scan_bytes: u64 = number(
            "max-scan-bytes",
            get("max-scan-bytes"),
            DEFAULT_MAX_SCAN_BYTES,
        )?;
        if max_scan_bytes == 0 {
            return Err(invalid("--max-scan-bytes must be positive"));
        }
        let poll: f64 = number("poll-secs", get("poll-secs"), 2.0)?;
        let clamd_timeout: u64 = number("clamd-timeout-secs", get("clamd-timeout-secs"), 120)?;
        let db_timeout: u64 = number("db-timeout-secs", get("db-timeout-secs"), 10)?;
        let max_jobs = match get("max-jobs") {
            None => None,
            Some(v) => match v.parse::<u64>() {
                Ok(n) if n > 0 => Some(n),
                _ => {
                    return Err(invalid(format!(
                        "--max-jobs: `{v}` is not a positive number"
                    )));
                }
            },
        };
        if !(0.05..=3600.0).contains(&poll) {
            return Err(invalid("--poll-secs must be 0.05..=3600"));
        }
        if clamd_timeout == 0 || clamd_timeout > 3600 {
            return Err(invalid("--clamd-timeout-secs must be 1..=3600"));
        }
        if !(1..=300).contains(&db_timeout) {
            return Err(invalid("--db-timeout-secs must be 1..=300"));
        }
        let (mut scan_jobs, mut verify_uploads) = (false, false);
        for q in get("queues")
            .as_deref()
            .unwrap_or("scan,verify")
            .split(',')
            .map(str::trim)
        {
            match q {
                "scan" => scan_jobs = true,
                "verify" => verify_uploads = true,
                _ => {
                    return Err(invalid(format!(
                        "--queues / SCAN_QUEUES lists scan and verify, comma separated, not `{q}`"
                    )));
                }
            }
        }
        // Needed only to verify uploads; a worker of scan jobs alone may have any callback URL.
        let verification_url = match get("verification-url") {
            Some(u) => u,
            None => match verification_url_beside(&callback_url) {
                Some(u) => u,
                None if !verify_uploads || !posts => String::new(),
                None => {
                    return Err(invalid(
                        "SCAN_VERIFICATION_URL is required when SCAN_CALLBACK_URL does not end in /callback",
                    ));
                }
            },
        };
        if !verification_url.is_empty() {
            let parsed = reqwest::Url::parse(&verification_url)
                .map_err(|_| invalid("SCAN_VERIFICATION_URL is not a URL"))?;
            if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
                return Err(invalid("SCAN_VERIFICATION_URL must be an http(s) URL"));
            }
        }
        let extensions = match get("blocked-extensions") {
            None => ExtensionPolicy::default(),
            Some(list) => ExtensionPolicy::from_config(&list).map_err(invalid)?,
        };
        let janitor_secs: u64 = number("janitor-interval-secs", get("janitor-interval-secs"), 60)?;
        if janitor_secs > 86_400 {
            return Err(invalid("--janitor-interval-secs must be 0..=86400"));
        }
        if mode == Mode::Janitor && janitor_secs == 0 && !once {
            return Err(invalid(
                "`janitor` needs --once or a positive --janitor-interval-secs",
            ));
        }
        let metrics_addr = match get("metrics-addr") {
            None => None,
            Some(a) => Some(a.parse::<std::net::SocketAddr>().map_err(|_| {
                invalid(format!(
                    "--metrics-addr / METRICS_ADDR must be an IP address and port (e.g. 127.0.0.1:9464), not `{a}`"
                ))
            })?),
        };
        let safety: u64 = number(
            "reconcile-safety-secs",
            get("reconcile-safety-secs"),
            86_400,
        )?;
        if safety > 30 * 86_400 {
            return Err(invalid("--reconcile-safety-secs must be 0..=2592000"));
        }
        let reconcile_every: u64 = number(
            "reconcile-interval-secs",
            get("reconcile-interval-secs"),
            86_400,
        )?;
        if !(60..=30 * 86_400).contains(&reconcile_every) {
            return Err(invalid("--reconcile-interval-secs must be 60..=2592000"));
        }
        let tenant = match get("tenant") {
            None => None,
            Some(_) if !matches!(mode, Mode::Reconcile | Mode::Rescan) => {
                return Err(invalid("--tenant is an option of `reconcile` and `rescan`"));
            }
            Some(t) => Some(
                uuid::Uuid::parse_str(&t)
                    .map_err(|_| invalid(format!("--tenant: `{t}` is not a UUID")))?,
            ),
        };
        let purge = purge_settings(&get, env("PURGE_FAULT"), dry_run, once, mode)?;
        let virustotal = virustotal_settings(&env)?;
        if mode == Mode::Rescan && tenant.is_some() == all {
            return Err(invalid(
                "`rescan` needs exactly one of --tenant UUID and --all",
            ));
        }
        let rescan_every: u64 = number("rescan-interval-secs", get("rescan-interval-secs"), 60)?;
        if rescan_every > 86_400 {
            return Err(invalid("--rescan-interval-secs must be 0..=86400"));
        }
        let rescan_slots: usize = number(
            "rescan-slots",
            get("rescan-slots"),
            (concurrency / 2).max(1),
        )?;
        if !(1..=concurrency).contains(&rescan_slots) {
            return Err(invalid("--rescan-slots must be 1..=SCAN_CONCURRENCY"));
        }
        let rescan_queue: u32 = number("rescan-queue", get("rescan-queue"), 1000)?;
        if !(1..=1_000_000).contains(&rescan_queue) {
            return Err(invalid("--rescan-queue must be 1..=1000000"));
        }
        let vt_window: u64 = number("vt-rescan-window", env("VT_RESCAN_WINDOW_SECS"), 7 * 86_400)?;
        let vt_every: u64 = number("vt-rescan-every", env("VT_RESCAN_EVERY_SECS"), 86_400)?;
        if vt_window > 366 * 86_400 || !(60..=366 * 86_400).contains(&vt_every) {
            return Err(invalid(
                "VT_RESCAN_WINDOW_SECS must be 0..=31622400 and VT_RESCAN_EVERY_SECS 60..=31622400",
            ));
        }
        let rescan = RescanSettings {
            interval: (rescan_every > 0).then(|| Duration::from_secs(rescan_every)),
            slots: rescan_slots,
            queue: rescan_queue,
            vt_window: (vt_window > 0).then(|| Duration::from_secs(vt_window)),
            vt_every: Duration::from_secs(vt_every),
            tenant: if mode == Mode::Rescan { tenant } else { None },
        };
        Ok(Config {
            virustotal,
            rescan,
            metrics_addr,
            reconcile: ReconcileSettings {
                safety_window: Duration::from_secs(safety),
                interval: Duration::from_secs(reconcile_every),
                dry_run: dry_run && mode == Mode::Reconcile,
                tenant: if mode == Mode::Reconcile {
                    tenant
                } else {
                    None
                },
            },
            database_url,
            storage,
            clamd_addr,
            callback_url,
            callback_secret,
            callback_as,
            worker_name,
            lease_secs,
            concurrency,
            max_scan_bytes,
            poll_interval: Duration::from_secs_f64(poll),
            clamd_timeout: Duration::from_secs(clamd_timeout),
            db_timeout: Duration::from_secs(db_timeout),
            once,
            max_jobs,
            mode,
            scan_jobs,
            verify_uploads,
            verification_url,
            extensions,
            janitor_interval: (janitor_secs > 0).then(|| Duration::from_secs(janitor_secs)),
            purge,
        })
    }
}

/// The VirusTotal engine's settings from the environment (environment only: `VT_API_KEY` is a
/// secret); `None` without a key.
fn virustotal_settings(
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<crate::virustotal::Settings>, ConfigError> {
    let Some(api_key) = env("VT_API_KEY") else {
        return Ok(None);
    };
    if api_key.len() > 200 || api_key.chars().any(|c| c.is_control() || c == ' ') {
        return Err(invalid("VT_API_KEY must be one printable word"));
    }
    let api_url = env("VT_API_URL").unwrap_or_else(|| "https://www.virustotal.com".into());
    match reqwest::Url::parse(&api_url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => {}
        _ => return Err(invalid("VT_API_URL must be an http(s) URL")),
    }
    let num = |k: &str, default: u64, range: std::ops::RangeInclusive<u64>| {
        let v = match env(k) {
            None => default,
            Some(v) => v
                .parse::<u64>()
                .map_err(|_| invalid(format!("{k}: `{v}` is not a valid number")))?,
        };
        if range.contains(&v) {
            Ok(v)
        } else {
            Err(invalid(format!(
                "{k} must be {}..={}",
                range.start(),
                range.end()
            )))
        }
    };
    let per_minute = num("VT_REQUESTS_PER_MINUTE", 4, 1..=100_000)?;
    let deadline = num("VT_ANALYSIS_DEADLINE_SECS", 120, 1..=3600)?;
    let max_upload = num(
        "VT_MAX_UPLOAD_BYTES",
        crate::virustotal::MAX_DIRECT_UPLOAD_BYTES,
        0..=crate::virustotal::MAX_DIRECT_UPLOAD_BYTES,
    )?;
    let poll_ms = num("VT_POLL_MS", 5_000, 10..=600_000)?;
    Ok(Some(crate::virustotal::Settings {
        api_url,
        api_key,
        requests_per_minute: per_minute as u32,
        deadline: Duration::from_secs(deadline),
        max_upload_bytes: max_upload,
        poll_base: Duration::from_millis(poll_ms),
        redis_url: env("REDIS_URL"),
        budget_namespace: crate::virustotal::BUDGET_NAMESPACE.into(),
    }))
}

/// The purge's settings, each refused with a clear message when negative or absurd.
fn purge_settings(
    get: &dyn Fn(&str) -> Option<String>,
    fault: Option<String>,
    dry_run: bool,
    once: bool,
    mode: Mode,
) -> Result<PurgeSettings, ConfigError> {
    fn bounded(
        flag: &str,
        var: &str,
        v: Option<String>,
        default: u64,
        range: std::ops::RangeInclusive<u64>,
    ) -> Result<u64, ConfigError> {
        let Some(v) = v else { return Ok(default) };
        match v.parse::<u64>() {
            Ok(n) if range.contains(&n) => Ok(n),
            _ => Err(invalid(format!(
                "--{flag} / {var} must be a whole number in {}..={}, not `{v}`",
                range.start(),
                range.end()
            ))),
        }
    }
    let interval = bounded(
        "purge-interval-secs",
        "PURGE_INTERVAL_SECS",
        get("purge-interval-secs"),
        3600,
        0..=604_800,
    )?;
    let grace_days = bounded(
        "purge-grace-days",
        "PURGE_GRACE_DAYS",
        get("purge-grace-days"),
        30,
        0..=36_500,
    )?;
    let batch = bounded(
        "purge-batch",
        "PURGE_BATCH",
        get("purge-batch"),
        500,
        1..=10_000,
    )?;
    let concurrency = bounded(
        "purge-concurrency",
        "PURGE_CONCURRENCY",
        get("purge-concurrency"),
        8,
        1..=64,
    )?;
    let fault = match fault.as_deref() {
        None => None,
        Some("after-rows") => Some(PurgeFault::AfterRows),
        Some("after-object") => Some(PurgeFault::AfterObject),
        Some(other) => {
            return Err(invalid(format!(
                "PURGE_FAULT is after-rows or after-object, not `{other}`"
            )));
        }
    };
    if dry_run && !matches!(mode, Mode::Purge | Mode::Reconcile) {
        return Err(invalid("--dry-run is an option of `reconcile` and `purge`"));
    }
    if mode == Mode::Purge && interval == 0 && !once && !dry_run {
        return Err(invalid(
            "`purge` needs --once, --dry-run or a positive --purge-interval-secs",
        ));
    }
    Ok(PurgeSettings {
        interval: (interval > 0).then(|| Duration::from_secs(interval)),
        grace_days: grace_days as u32,
        batch: batch as u32,
        concurrency: concurrency as usize,
        dry_run,
        fault,
    })
}

/// `<hostname>-<pid>`.
pub fn default_worker_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "scan-worker".into());
    format!("{host}-{}", std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
        let m: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k: &str| m.get(k).cloned()
    }

    fn base_env() -> Vec<(&'static str, &'static str)> {
        vec![
            (
                "SCAN_DATABASE_URL",
                "postgres://attachments_scanner:pw@127.0.0.1:5432/attachments",
            ),
            ("S3_ENDPOINT", "http://127.0.0.1:3900"),
            ("S3_ACCESS_KEY_ID", "GK1"),
            ("S3_SECRET_ACCESS_KEY", "s3cret"),
            (
                "SCAN_CALLBACK_URL",
                "http://127.0.0.1:3000/api/v1/scan/callback",
            ),
            ("SCAN_CALLBACK_SECRET", SECRET),
        ]
    }

    fn parse(args: &[&str], env: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Config::parse(args.iter().map(|s| s.to_string()), env_of(env), || {
            "host-1".into()
        })
    }

    #[test]
    fn defaults_from_the_environment() {
        let c = parse(&[], &base_env()).unwrap();
        assert_eq!(c.clamd_addr, "127.0.0.1:3310");
        assert_eq!(c.worker_name, "host-1");
        assert_eq!(
            (c.lease_secs, c.concurrency, c.max_scan_bytes),
            (300, 2, DEFAULT_MAX_SCAN_BYTES)
        );
        assert_eq!(c.storage.bucket(), "attachments");
        assert_eq!(c.callback_secret, SECRET.as_bytes());
        assert_eq!(c.callback_as, "unnamed");
        assert_eq!(c.db_timeout, Duration::from_secs(10));
        assert!(!c.once);
        assert_eq!(c.mode, Mode::Work);
        assert!(c.verify_uploads && c.scan_jobs);
        assert_eq!(
            c.verification_url,
            "http://127.0.0.1:3000/api/v1/scan/upload-verification"
        );
        assert_eq!(c.janitor_interval, Some(Duration::from_secs(60)));
        assert_eq!(c.extensions, ExtensionPolicy::default());
        let dbg = format!("{c:?}");
        assert!(
            !dbg.contains("pw@") && !dbg.contains(SECRET) && !dbg.contains("s3cret"),
            "{dbg}"
        );
    }

    #[test]
    fn flags_win_over_the_environment() {
        let mut env = base_env();
        env.push(("CLAMD_ADDR", "127.0.0.1:1"));
        env.push(("SCAN_LEASE_SECS", "60"));
        env.push((
            "SCAN_CALLBACK_SECRET",
            "scan-worker:ffffffffffffffffffffffffffffffff,old:0123456789abcdef0123456789abcdef",
        ));
        let c = parse(
            &[
                "--clamd",
                "127.0.0.1:2",
                "--lease-secs=3",
                "--once",
                "--worker-name",
                "w9",
                "--max-jobs",
                "1",
            ],
            &env,
        )
        .unwrap();
        assert_eq!(c.max_jobs, Some(1));
        assert_eq!(
            parse(&["--db-timeout-secs", "3"], &env).unwrap().db_timeout,
            Duration::from_secs(3)
        );
        assert_eq!(
            parse(&["--poll-secs", "0.25"], &env).unwrap().poll_interval,
            Duration::from_millis(250)
        );
        assert_eq!(c.clamd_addr, "127.0.0.1:2");
        assert_eq!(c.lease_secs, 3);
        assert_eq!(c.worker_name, "w9");
        assert!(c.once);
        // A ring signs with its first secret, under that secret's name.
        assert_eq!(c.callback_secret, b"ffffffffffffffffffffffffffffffff");
        assert_eq!(c.callback_as, "scan-worker");
        assert!(!format!("{c:?}").contains("ffffffff"));
    }

    #[test]
    fn refusals() {
        assert_eq!(
            parse(&["--help"], &base_env()).unwrap_err(),
            ConfigError::Help
        );
        for (args, drop, add) in [
            (&["--nope"][..], "", ("", "")),
            (&["stray"][..], "", ("", "")),
            (&["--lease-secs"][..], "", ("", "")),
            (&["--lease-secs", "0"][..], "", ("", "")),
            (&["--concurrency", "x"][..], "", ("", "")),
            (&["--clamd", "nohost"][..], "", ("", "")),
            (&["--max-scan-bytes", "0"][..], "", ("", "")),
            (&["--max-jobs", "0"][..], "", ("", "")),
            (&["--poll-secs", "0.01"][..], "", ("", "")),
            (&["--db-timeout-secs", "0"][..], "", ("", "")),
            (&["--db-timeout-secs", "301"][..], "", ("", "")),
            (&[][..], "SCAN_DATABASE_URL", ("", "")),
            // The app's database URL is not the worker's: it does not stand in.
            (
                &[][..],
                "SCAN_DATABASE_URL",
                (
                    "DATABASE_URL",
                    "postgres://attachments_app:pw@127.0.0.1:5432/attachments",
                ),
            ),
            (&[][..], "SCAN_CALLBACK_SECRET", ("", "")),
            (&[][..], "S3_ENDPOINT", ("", "")),
            (
                &[][..],
                "SCAN_CALLBACK_SECRET",
                ("SCAN_CALLBACK_SECRET", "short"),
            ),
            (
                &[][..],
                "SCAN_CALLBACK_SECRET",
                (
                    "SCAN_CALLBACK_SECRET",
                    "scan worker!:0123456789abcdef0123456789abcdef",
                ),
            ),
            (
                &[][..],
                "SCAN_CALLBACK_URL",
                ("SCAN_CALLBACK_URL", "ftp://x/y"),
            ),
        ] {
            let mut env: Vec<(&str, &str)> =
                base_env().into_iter().filter(|(k, _)| *k != drop).collect();
            if !add.0.is_empty() {
                env.push(add);
            }
            assert!(
                matches!(parse(args, &env), Err(ConfigError::Invalid(_))),
                "{args:?} without {drop} with {add:?}"
            );
        }
    }

    #[test]
    fn uploads_and_janitor_settings() {
        let env = base_env();
        let c = parse(
            &[
                "janitor",
                "--once",
                "--janitor-interval-secs",
                "0",
                "--queues",
                "scan",
                "--blocked-extensions",
                "exe, .js",
            ],
            &env,
        )
        .unwrap();
        assert_eq!(c.mode, Mode::Janitor);
        assert!(c.once && c.scan_jobs && !c.verify_uploads);
        assert_eq!(c.janitor_interval, None);
        assert!(c.extensions.is_blocked("js") && !c.extensions.is_blocked("scr"));
        let mut env = base_env();
        env.push(("JANITOR_INTERVAL_SECS", "5"));
        env.push(("SCAN_VERIFICATION_URL", "https://app.example/v/verify"));
        env.push(("SCAN_QUEUES", " verify "));
        let c = parse(&[], &env).unwrap();
        assert!(c.verify_uploads && !c.scan_jobs);
        assert_eq!(c.janitor_interval, Some(Duration::from_secs(5)));
        assert_eq!(c.verification_url, "https://app.example/v/verify");
        // Beside the callback, whatever the prefix; the query does not carry over.
        assert_eq!(
            verification_url_beside("https://edge.example/prefix/api/v1/scan/callback?x=1")
                .as_deref(),
            Some("https://edge.example/prefix/api/v1/scan/upload-verification")
        );
        assert_eq!(verification_url_beside("https://edge.example/hook"), None);
        // A worker of scan jobs alone needs no verification route.
        let mut env = base_env();
        env.retain(|(k, _)| *k != "SCAN_CALLBACK_URL");
        env.push(("SCAN_CALLBACK_URL", "https://edge.example/hook"));
        assert!(!parse(&["--queues", "scan"], &env).unwrap().verify_uploads);
    }

    #[test]
    fn upload_setting_refusals() {
        for (args, env_add) in [
            (&["--queues", "scan,janitor"][..], None),
            (&["--queues", ""][..], None),
            (&["--queues", "scan,"][..], None),
            (&["--janitor-interval-secs", "86401"][..], None),
            (&["--janitor-interval-secs", "-1"][..], None),
            (&["--blocked-extensions", "e x e!"][..], None),
            (&["--verification-url", "ftp://x/y"][..], None),
            // A janitor that would never run.
            (&["janitor", "--janitor-interval-secs", "0"][..], None),
            // `janitor` is a command, not an argument anywhere else.
            (&["--once", "janitor"][..], None),
            // No URL to derive the verification route from.
            (
                &[][..],
                Some(("SCAN_CALLBACK_URL", "https://edge.example/hook")),
            ),
            (
                &["--queues", "verify"][..],
                Some(("SCAN_CALLBACK_URL", "https://edge.example/hook")),
            ),
        ] {
            let mut env: Vec<(&str, &str)> = base_env();
            if let Some((k, v)) = env_add {
                env.retain(|(e, _)| *e != k);
                env.push((k, v));
            }
            assert!(
                matches!(parse(args, &env), Err(ConfigError::Invalid(_))),
                "{args:?} {env_add:?}"
            );
        }
    }

    #[test]
    fn reconcile_and_metrics_settings() {
        // Reconcile posts nothing: no callback settings needed.
        let env: Vec<(&str, &str)> = base_env()
            .into_iter()
            .filter(|(k, _)| !k.starts_with("SCAN_CALLBACK"))
            .collect();
        let t = "6f1c1c2e-4b1e-4c3a-9d43-0d7f3f5b2a11";
        let c = parse(&["reconcile", "--dry-run", "--once", "--tenant", t], &env).unwrap();
        assert_eq!(c.mode, Mode::Reconcile);
        assert!(c.once && c.reconcile.dry_run);
        assert_eq!(c.reconcile.tenant.unwrap().to_string(), t);
        assert_eq!(c.reconcile.safety_window, Duration::from_secs(86_400));
        assert_eq!(c.reconcile.interval, Duration::from_secs(86_400));
        assert_eq!(c.metrics_addr, None);
        let mut env2 = env.clone();
        env2.push(("RECONCILE_SAFETY_SECS", "0"));
        env2.push(("RECONCILE_INTERVAL_SECS", "3600"));
        env2.push(("METRICS_ADDR", "127.0.0.1:9464"));
        let c = parse(&["reconcile"], &env2).unwrap();
        assert_eq!(c.reconcile.safety_window, Duration::ZERO);
        assert_eq!(c.reconcile.interval, Duration::from_secs(3600));
        assert!(!c.reconcile.dry_run);
        assert_eq!(c.metrics_addr, Some("127.0.0.1:9464".parse().unwrap()));
        // The scanning modes still need their callback.
        assert!(parse(&[], &env).is_err());
        for (args, add) in [
            (&["reconcile", "--tenant", "nope"][..], None),
            (&["--tenant", t][..], None),
            (&["--dry-run"][..], None),
            (&["janitor", "--dry-run"][..], None),
            (&["reconcile", "--reconcile-safety-secs", "-1"][..], None),
            (
                &["reconcile", "--reconcile-safety-secs", "2592001"][..],
                None,
            ),
            (&["reconcile", "--reconcile-interval-secs", "59"][..], None),
            (&["reconcile"][..], Some(("METRICS_ADDR", "localhost"))),
            (&["reconcile"][..], Some(("METRICS_ADDR", "127.0.0.1"))),
        ] {
            // With the callback settings: each refusal is the option's own.
            let mut env = base_env();
            if let Some(kv) = add {
                env.push(kv);
            }
            assert!(
                matches!(parse(args, &env), Err(ConfigError::Invalid(_))),
                "{args:?} {add:?}"
            );
        }
    }

    #[test]
    fn default_name_has_the_pid() {
        assert!(default_worker_name().ends_with(&format!("-{}", std::process::id())));
    }

    #[test]
    fn purge_settings_and_their_refusals() {
        let c = parse(&[], &base_env()).unwrap();
        assert_eq!(
            c.purge,
            PurgeSettings {
                interval: Some(Duration::from_secs(3600)),
                grace_days: 30,
                batch: 500,
                concurrency: 8,
                dry_run: false,
                fault: None,
            }
        );
        // `purge` needs neither the callback nor its secret.
        let env: Vec<(&str, &str)> = base_env()
            .into_iter()
            .filter(|(k, _)| !k.starts_with("SCAN_CALLBACK"))
            .chain([("PURGE_GRACE_DAYS", "0"), ("PURGE_FAULT", "after-rows")])
            .collect();
        let c = parse(&["purge", "--once", "--purge-batch", "10"], &env).unwrap();
        assert_eq!(c.mode, Mode::Purge);
        assert!(c.once);
        assert_eq!((c.purge.grace_days, c.purge.batch), (0, 10));
        assert_eq!(c.purge.fault, Some(PurgeFault::AfterRows));
        assert!(parse(&["purge", "--dry-run"], &env).unwrap().purge.dry_run);
        for (args, var) in [
            (&["purge", "--purge-grace-days", "-1"][..], None),
            (&["purge", "--purge-grace-days", "36501"][..], None),
            (&["purge", "--purge-batch", "0"][..], None),
            (&["purge", "--purge-batch", "100000"][..], None),
            (&["purge", "--purge-concurrency", "0"][..], None),
            (&["purge", "--purge-interval-secs", "-5"][..], None),
            (&["purge", "--purge-interval-secs", "0"][..], None),
            (&["purge", "--once"][..], Some(("PURGE_FAULT", "sometimes"))),
            (
                &["purge", "--once"][..],
                Some(("PURGE_GRACE_DAYS", "thirty")),
            ),
            // --dry-run belongs to `reconcile` and `purge`, and the callback to the other modes.
            (&["--dry-run"][..], None),
            (&["janitor", "--once"][..], None),
        ] {
            let mut env = env.clone();
            env.extend(var);
            match parse(args, &env) {
                Err(ConfigError::Invalid(m)) => assert!(!m.is_empty(), "{args:?}"),
                other => panic!("{args:?} {var:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn virustotal_and_rescan_settings() {
        let c = parse(&[], &base_env()).unwrap();
        assert!(c.virustotal.is_none(), "off without a key");
        assert_eq!(c.rescan.interval, Some(Duration::from_secs(60)));
        assert_eq!((c.rescan.slots, c.rescan.queue), (1, 1000));
        assert_eq!(c.rescan.vt_window, Some(Duration::from_secs(7 * 86_400)));

        let mut env = base_env();
        env.extend([
            ("VT_API_KEY", "k3y-0123"),
            ("VT_REQUESTS_PER_MINUTE", "500"),
            ("REDIS_URL", "redis://127.0.0.1:6379"),
            ("RESCAN_INTERVAL_SECS", "0"),
            ("SCAN_RESCAN_SLOTS", "3"),
            ("SCAN_CONCURRENCY", "4"),
            ("VT_RESCAN_WINDOW_SECS", "0"),
        ]);
        let c = parse(&[], &env).unwrap();
        let vt = c.virustotal.as_ref().unwrap();
        assert_eq!(vt.api_url, "https://www.virustotal.com");
        assert_eq!(vt.requests_per_minute, 500);
        assert_eq!(vt.deadline, Duration::from_secs(120));
        assert_eq!(vt.redis_url.as_deref(), Some("redis://127.0.0.1:6379"));
        assert_eq!(c.rescan.interval, None);
        assert_eq!(c.rescan.slots, 3);
        assert_eq!(c.rescan.vt_window, None);
        // The key never shows in Debug.
        assert!(!format!("{c:?}").contains("k3y-0123"));

        let t = "6f1c1d5e-8c1b-4d5e-9f00-000000000001";
        let c = parse(
            &["rescan", "--tenant", t],
            &[
                ("SCAN_DATABASE_URL", base_env()[0].1),
                ("S3_ENDPOINT", "http://s3"),
                ("S3_ACCESS_KEY_ID", "a"),
                ("S3_SECRET_ACCESS_KEY", "b"),
            ],
        )
        .unwrap();
        assert_eq!(
            (c.mode, c.rescan.tenant.map(|u| u.to_string())),
            (Mode::Rescan, Some(t.to_owned()))
        );
        assert_eq!(c.reconcile.tenant, None);
        let c = parse(&["rescan", "--all"], &base_env()).unwrap();
        assert_eq!((c.mode, c.rescan.tenant), (Mode::Rescan, None));

        for (args, add) in [
            (&["rescan"][..], ("", "")),
            (&["rescan", "--all", "--tenant", t][..], ("", "")),
            (&["--all"][..], ("", "")),
            (&[][..], ("VT_API_KEY", "two words")),
            (&[][..], ("VT_API_URL", "ftp://x")),
            (&[][..], ("VT_REQUESTS_PER_MINUTE", "0")),
            (&[][..], ("VT_MAX_UPLOAD_BYTES", "40000000")),
            (&[][..], ("SCAN_RESCAN_SLOTS", "3")),
            (&[][..], ("RESCAN_QUEUE", "0")),
            (&[][..], ("VT_RESCAN_EVERY_SECS", "1")),
        ] {
            let mut env = base_env();
            env.push(("VT_API_KEY", "key"));
            if !add.0.is_empty() {
                env.retain(|(k, _)| *k != add.0);
                env.push(add);
            }
            match parse(args, &env) {
                Err(ConfigError::Invalid(_)) => {}
                other => panic!("{args:?} {add:?}: {other:?}"),
            }
        }
    }
}
