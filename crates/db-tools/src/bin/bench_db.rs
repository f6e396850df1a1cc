//! `bench-db`: loads a large synthetic data set (default 1,000,000 attachments across 100 tenants) into a
//! fresh database and measures the hot queries of the attachment service, with `EXPLAIN (ANALYZE, BUFFERS)`
//! evidence that they use their indexes. Prints Markdown; `--benchmarks-md FILE` also replaces the
//! `database` section of that file, between `<!-- bench:database -->` and `<!-- /bench:database -->`
//! (the rest of the file is left alone; `scripts/bench-db` then updates the summary table's row).
//!
//! The data is generated server-side with generate_series (no client round trips per row) while
//! `session_replication_role = replica` skips foreign-key and verdict triggers: the rows are consistent by
//! construction (ids are derived from md5 of their coordinates), and checking 2M foreign keys would
//! measure nothing the benchmark is about. Queries are then measured as `attachments_app` with the tenant
//! set per transaction, exactly as components run them, so RLS is part of every plan and timing.

use std::{
    fmt::Write as _,
    process::ExitCode,
    time::{Duration, Instant},
};

use db_tools::{APP_ROLE, TENANT_GUC, admin_url, args::Args, connect, migrations, quote_ident};
use futures::StreamExt;
use rand::seq::IndexedRandom;
use tokio_postgres::{AsyncMessage, Client, Config, NoTls, types::ToSql};
use uuid::Uuid;

const SECTION: &str = "## Database";
/// The section's markers in BENCHMARKS.md are `<!-- bench:database -->` and `<!-- /bench:database -->`,
/// as for the sections of scripts/bench (scripts/lib/bench-md.sh).
const MARKER: &str = "database";
const USAGE: &str = "\
usage: bench-db [--database-url <superuser url>] [--tenants 100] [--attachments 1000000] [--iterations 2000]
                [--benchmarks-md BENCHMARKS.md] [--keep]
  Creates a fresh database dbtools_bench_<random> next to the URL's database, loads, measures, drops it
  (unless --keep).";

struct Params {
    tenants: i32,
    attachments: i32,
    iterations: usize,
}

fn main() -> ExitCode {
    let args = match Args::parse(
        std::env::args().skip(1),
        &[
            "database-url",
            "tenants",
            "attachments",
            "iterations",
            "benchmarks-md",
        ],
        &["keep", "help"],
    ) {
        Ok(a) if a.flag("help") => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Ok(a) => a,
        Err(e) => {
            eprintln!("bench-db: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let params = match (|| -> Result<Params, String> {
        Ok(Params {
            tenants: args.number("tenants", 100)?,
            attachments: args.number("attachments", 1_000_000)?,
            iterations: args.number("iterations", 2000)?,
        })
    })() {
        Ok(p) if p.tenants >= 1 && p.attachments >= p.tenants * 10 && p.iterations >= 10 => p,
        Ok(_) => {
            eprintln!(
                "bench-db: need tenants >= 1, attachments >= 10 per tenant, iterations >= 10"
            );
            return ExitCode::from(2);
        }
        Err(e) => {
            eprintln!("bench-db: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    match runtime.block_on(run(
        admin_url(args.value("database-url")),
        params,
        args.flag("keep"),
    )) {
        Ok(markdown) => {
            println!("{markdown}");
            if let Some(path) = args.value("benchmarks-md") {
                if let Err(e) = write_section(&path, &markdown) {
                    eprintln!("bench-db: cannot update {path}: {e}");
                    return ExitCode::FAILURE;
                }
                eprintln!("bench-db: wrote section `{SECTION}` of {path}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("bench-db: error: {e}");
            ExitCode::FAILURE
        }
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

async fn run(url: String, p: Params, keep: bool) -> Result<String, BoxError> {
    let base: Config = url.parse()?;
    let name = format!(
        "dbtools_bench_{}",
        &Uuid::new_v4().simple().to_string()[..12]
    );
    let mut db_config = base.clone();
    db_config.dbname(&name);
    let mut db_url = url.clone();
    // Same server and credentials, other database: rebuild the URL path.
    if let Some(scheme_end) = db_url.find("://").map(|i| i + 3) {
        let rest = &db_url[scheme_end..];
        let host_end = rest
            .find(['/', '?'])
            .map(|i| i + scheme_end)
            .unwrap_or(db_url.len());
        let query = db_url[host_end..]
            .find('?')
            .map(|i| db_url[host_end + i..].to_string())
            .unwrap_or_default();
        db_url = format!("{}/{}{}", &db_url[..host_end], name, query);
    }

    eprintln!("bench-db: creating and migrating {name}");
    migrations::migrate(
        &db_url,
        migrations::Options {
            create_db: true,
            app_password: None,
            scanner_password: None,
            migrations: migrations::embedded(),
        },
    )
    .await?;

    let result = measure(&db_config, &name, &p).await;

    if keep {
        eprintln!("bench-db: kept database {name}");
    } else {
        let mut maintenance = base.clone();
        maintenance.dbname("postgres");
        let admin = connect(&maintenance).await?;
        admin
            .batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                quote_ident(&name)
            ))
            .await?;
    }
    result
}

async fn measure(db_config: &Config, name: &str, p: &Params) -> Result<String, BoxError> {
    let admin = connect(db_config).await?;
    let mut md = String::new();
    writeln!(md, "{SECTION}\n")?;
    writeln!(
        md,
        "Generated by `scripts/bench-db` (`crates/db-tools/src/bin/bench_db.rs`); rerun it to refresh this section.\n"
    )?;
    machine(&admin, &mut md).await?;

    // ---- load ---------------------------------------------------------------------------------------------
    let per_tenant = p.attachments / p.tenants;
    let messages_per_tenant = (per_tenant / 5).max(1);
    let blobs_per_tenant = (per_tenant / 2).max(1);
    let pending_per_tenant = 20.min(blobs_per_tenant);
    admin
        .batch_execute("SET session_replication_role = replica; SET maintenance_work_mem = '256MB'")
        .await?;
    let steps: Vec<(&str, String)> = vec![
        ("tenants, users, accounts, folders", format!(
            "INSERT INTO tenants (id, name) SELECT md5('t'||t)::uuid, 'bench-'||t FROM generate_series(1,{nt}) t;
             INSERT INTO users (id, tenant_id, email, password_hash, role)
               SELECT md5('u'||t||'-'||k)::uuid, md5('t'||t)::uuid, 'u'||k||'@bench-'||t||'.test',
                      '$argon2id$v=19$m=19456,t=2,p=1$YmVuY2hzYWx0YmVuY2g$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA',
                      CASE WHEN k = 1 THEN 'admin' ELSE 'user' END
               FROM generate_series(1,{nt}) t, generate_series(1,3) k;
             INSERT INTO email_accounts (id, tenant_id, owner_user_id, email_address)
               SELECT md5('a'||t)::uuid, md5('t'||t)::uuid, md5('u'||t||'-1')::uuid, 'mail@bench-'||t||'.test'
               FROM generate_series(1,{nt}) t;
             INSERT INTO email_folders (id, tenant_id, account_id, name, path, special_use)
               SELECT md5('f'||t)::uuid, md5('t'||t)::uuid, md5('a'||t)::uuid, 'INBOX', 'INBOX', 'inbox'
               FROM generate_series(1,{nt}) t;",
            nt = p.tenants
        )),
        ("email_messages", format!(
            "INSERT INTO email_messages (id, tenant_id, account_id, folder_id, owner_user_id, message_id, imap_uid,
                                         subject, from_address, to_addresses, body_text, sent_at, received_at, is_read)
             SELECT md5('m'||t||'-'||i)::uuid, md5('t'||t)::uuid, md5('a'||t)::uuid, md5('f'||t)::uuid,
                    md5('u'||t||'-'||(i % 3 + 1))::uuid, i||'.'||t||'@bench.test', i,
                    'Quarterly report '||i, 'sender'||(i % 97)||'@example.test', ARRAY['u1@bench-'||t||'.test'],
                    'Please find the figures attached. Message '||i||' of tenant '||t||'.',
                    1700000000000 + (i::bigint * {nt} + t) * 60000 - 5000,
                    1700000000000 + (i::bigint * {nt} + t) * 60000, i % 7 <> 0
             FROM generate_series(1,{nm}) i, generate_series(1,{nt}) t",
            nt = p.tenants, nm = messages_per_tenant
        )),
        ("attachment_blobs", format!(
            "INSERT INTO attachment_blobs (id, tenant_id, content_sha256, size_bytes, storage_key, sniffed_mime,
                                           scan_status, scan_engine, scanned_at, ref_count, created_at)
             SELECT md5('b'||t||'-'||j)::uuid, md5('t'||t)::uuid,
                    encode(sha256(convert_to('content-'||t||'-'||j, 'UTF8')), 'hex'),
                    1000 + (j * 7919) % 5000000, 'tenants/'||md5('t'||t)::uuid||'/blobs/'||md5('b'||t||'-'||j)::uuid,
                    'application/pdf',
                    CASE WHEN j <= {np} THEN 'pending' ELSE 'clean' END,
                    CASE WHEN j <= {np} THEN NULL ELSE 'clamav' END,
                    CASE WHEN j <= {np} THEN NULL ELSE 1700000000000 + (j::bigint * {nt} + t) * 1000 END,
                    2, 1700000000000 + (j::bigint * {nt} + t) * 1000
             FROM generate_series(1,{nb}) j, generate_series(1,{nt}) t",
            nt = p.tenants, nb = blobs_per_tenant, np = pending_per_tenant
        )),
        ("email_attachments", format!(
            "INSERT INTO email_attachments (id, tenant_id, message_id, blob_id, uploader_user_id, filename,
                                            declared_mime, detected_mime, size_bytes, is_deleted, deleted_at,
                                            created_at)
             SELECT md5('x'||t||'-'||i)::uuid, md5('t'||t)::uuid,
                    md5('m'||t||'-'||((i - 1) % {nm} + 1))::uuid, md5('b'||t||'-'||((i - 1) % {nb} + 1))::uuid,
                    md5('u'||t||'-'||(i % 3 + 1))::uuid, 'report-'||i||'.pdf', 'application/pdf', 'application/pdf',
                    1000 + (((i - 1) % {nb} + 1) * 7919) % 5000000, i % 53 = 0,
                    CASE WHEN i % 53 = 0 THEN 1700000000000 + (i::bigint * {nt} + t) * 1000 + 500 END,
                    1700000000000 + (i::bigint * {nt} + t) * 1000
             FROM generate_series(1,{na}) i, generate_series(1,{nt}) t",
            nt = p.tenants, nm = messages_per_tenant, nb = blobs_per_tenant, na = per_tenant
        )),
        ("scan_jobs", format!(
            "INSERT INTO scan_jobs (tenant_id, blob_id, status, attempts, available_at, lease_expires_at, locked_by,
                                    created_at, finished_at)
             SELECT md5('t'||t)::uuid, md5('b'||t||'-'||j)::uuid,
                    CASE WHEN j < {np} THEN 'pending' WHEN j = {np} THEN 'running' ELSE 'done' END,
                    CASE WHEN j < {np} THEN 0 ELSE 1 END,
                    1700000000000 + (j::bigint * {nt} + t) * 1000,
                    CASE WHEN j = {np} THEN 1700000000000 END,
                    CASE WHEN j = {np} THEN 'crashed-worker' END,
                    1700000000000 + (j::bigint * {nt} + t) * 1000,
                    CASE WHEN j > {np} THEN 1700000000000 + (j::bigint * {nt} + t) * 1000 + 2000 END
             FROM generate_series(1,{nb}) j, generate_series(1,{nt}) t",
            nt = p.tenants, nb = blobs_per_tenant, np = pending_per_tenant
        )),
        ("audit log (1 row per attachment upload of the first 10%)", format!(
            "INSERT INTO email_audit_log (tenant_id, user_id, action, resource_type, resource_id, request_id, created_at)
             SELECT md5('t'||t)::uuid, md5('u'||t||'-'||(i % 3 + 1))::uuid, 'attachment.upload', 'attachment',
                    md5('x'||t||'-'||i)::uuid::text, 'req-'||i||'-'||t, 1700000000000 + (i::bigint * {nt} + t) * 1000
             FROM generate_series(1,{n}) i, generate_series(1,{nt}) t",
            nt = p.tenants, n = (per_tenant / 10).max(1)
        )),
    ];
    writeln!(md, "### Data set and load\n")?;
    writeln!(md, "| step | rows | seconds |\n|---|---:|---:|")?;
    let load_started = Instant::now();
    for (label, sql) in &steps {
        let started = Instant::now();
        eprintln!("bench-db: loading {label}");
        admin.batch_execute(sql).await?;
        let secs = started.elapsed().as_secs_f64();
        writeln!(
            md,
            "| {label} | {} | {secs:.1} |",
            rows_hint(label, p, messages_per_tenant, blobs_per_tenant)
        )?;
    }
    admin
        .batch_execute("SET session_replication_role = origin")
        .await?;
    let started = Instant::now();
    eprintln!("bench-db: VACUUM (ANALYZE)");
    admin.batch_execute("VACUUM (ANALYZE)").await?;
    writeln!(
        md,
        "| VACUUM (ANALYZE) | | {:.1} |",
        started.elapsed().as_secs_f64()
    )?;
    writeln!(
        md,
        "| **total** | | **{:.1}** |\n",
        load_started.elapsed().as_secs_f64()
    )?;

    let sizes = admin
        .query(
            "SELECT c.relname::text, c.reltuples::bigint, pg_size_pretty(pg_table_size(c.oid)),
                    pg_size_pretty(pg_indexes_size(c.oid))
             FROM pg_class c WHERE c.relnamespace = 'public'::regnamespace AND c.relkind = 'r'
               AND c.relname <> 'schema_migrations'
             ORDER BY pg_total_relation_size(c.oid) DESC",
            &[],
        )
        .await?;
    writeln!(
        md,
        "| table | rows (estimate) | heap | indexes |\n|---|---:|---:|---:|"
    )?;
    for r in &sizes {
        writeln!(
            md,
            "| {} | {} | {} | {} |",
            r.get::<_, String>(0),
            r.get::<_, i64>(1),
            r.get::<_, String>(2),
            r.get::<_, String>(3)
        )?;
    }
    writeln!(md)?;

    // ---- samples ------------------------------------------------------------------------------------------
    let attachments: Vec<(Uuid, Uuid)> = admin
        .query(
            "SELECT id, tenant_id FROM email_attachments TABLESAMPLE SYSTEM (1) LIMIT 5000",
            &[],
        )
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    // Messages that have at least one live attachment (the list query's interesting case).
    let messages: Vec<(Uuid, Uuid)> = admin
        .query(
            "SELECT DISTINCT message_id, tenant_id FROM email_attachments TABLESAMPLE SYSTEM (1)
             WHERE NOT is_deleted LIMIT 5000",
            &[],
        )
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let blobs: Vec<(String, Uuid)> = admin
        .query("SELECT content_sha256, tenant_id FROM attachment_blobs TABLESAMPLE SYSTEM (1) LIMIT 5000", &[])
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    if attachments.is_empty() || messages.is_empty() || blobs.is_empty() {
        return Err("sampling found no rows".into());
    }

    // ---- queries as the app role ------------------------------------------------------------------------
    let mut app_config = db_config.clone();
    app_config.user(APP_ROLE);
    let mut app = connect(&app_config).await?;

    const BY_ID: &str =
        "SELECT a.id, a.message_id, a.filename, a.detected_mime, a.size_bytes, a.is_deleted,
        a.url_generation, a.created_at, b.content_sha256, b.scan_status, b.ref_count
   FROM email_attachments a JOIN attachment_blobs b ON b.id = a.blob_id
  WHERE a.id = $1";
    const BY_MESSAGE: &str = "SELECT a.id, a.filename, a.detected_mime, a.size_bytes, a.created_at,
        b.content_sha256, b.scan_status, b.ref_count
   FROM email_attachments a JOIN attachment_blobs b ON b.id = a.blob_id
  WHERE a.message_id = $1 AND NOT a.is_deleted
  ORDER BY a.created_at DESC, a.id DESC";
    const BLOB_BY_HASH: &str = "SELECT id, storage_key, scan_status, ref_count
   FROM attachment_blobs WHERE tenant_id = $1 AND content_sha256 = $2";
    const CLAIM: &str = "SELECT * FROM scan_claim_jobs('bench-worker', 60, 1)";

    writeln!(md, "### Hot queries\n")?;
    writeln!(
        md,
        "Measured as `attachments_app` over loopback, each iteration one transaction exactly as a component runs it \
         (`BEGIN; set_config('{TENANT_GUC}', tenant, true); <query>; COMMIT`), with a random sample key each time \
         (prepared statements). *query* is the query's round trip alone, *transaction* the whole four-statement \
         exchange. {} iterations per query after 50 warm-up ones; the claim runs in a transaction that is rolled \
         back so the queue keeps its shape.\n",
        p.iterations
    )?;
    writeln!(
        md,
        "| query | query p50 | p95 | p99 | mean | transaction p50 | p95 |\n|---|---:|---:|---:|---:|---:|---:|"
    )?;

    let mut rng = rand::rng();
    let mut plans = String::new();

    // 1. attachment by id
    let stmt = app.prepare(BY_ID).await?;
    let (q, t) = time_queries(&mut app, p.iterations, &stmt, true, || {
        let (id, tenant) = *attachments.choose(&mut rand::rng()).unwrap();
        (tenant, vec![Box::new(id) as Param])
    })
    .await?;
    row(&mut md, "attachment by id (+ its blob)", &q, &t)?;
    let (id, tenant) = *attachments.choose(&mut rng).unwrap();
    plan_as_app(
        &mut app,
        tenant,
        &BY_ID.replace("$1", &format!("'{id}'")),
        "Attachment by id",
        &mut plans,
    )
    .await?;

    // 2. list by message
    let stmt = app.prepare(BY_MESSAGE).await?;
    let (q, t) = time_queries(&mut app, p.iterations, &stmt, true, || {
        let (id, tenant) = *messages.choose(&mut rand::rng()).unwrap();
        (tenant, vec![Box::new(id) as Param])
    })
    .await?;
    row(&mut md, "list by message (live, newest first)", &q, &t)?;
    let (id, tenant) = *messages.choose(&mut rng).unwrap();
    plan_as_app(
        &mut app,
        tenant,
        &BY_MESSAGE.replace("$1", &format!("'{id}'")),
        "List by message",
        &mut plans,
    )
    .await?;

    // 3. blob by tenant + hash (the dedup probe)
    let stmt = app.prepare(BLOB_BY_HASH).await?;
    let (q, t) = time_queries(&mut app, p.iterations, &stmt, true, || {
        let (hash, tenant) = blobs.choose(&mut rand::rng()).unwrap().clone();
        (
            tenant,
            vec![Box::new(tenant) as Param, Box::new(hash) as Param],
        )
    })
    .await?;
    row(&mut md, "blob by tenant + SHA-256", &q, &t)?;
    let (hash, tenant) = blobs.choose(&mut rng).unwrap().clone();
    plan_as_app(
        &mut app,
        tenant,
        &BLOB_BY_HASH
            .replace("$1", &format!("'{tenant}'"))
            .replace("$2", &format!("'{hash}'")),
        "Blob by tenant + hash",
        &mut plans,
    )
    .await?;

    // 4. claim next scan job (cross-tenant, SECURITY DEFINER; rolled back each time)
    let stmt = app.prepare(CLAIM).await?;
    let (q, t) = time_queries(&mut app, p.iterations, &stmt, false, || {
        (Uuid::nil(), Vec::new())
    })
    .await?;
    row(
        &mut md,
        "claim next scan job (an expired lease waiting)",
        &q,
        &t,
    )?;
    claim_plans(db_config, &mut plans, "an expired lease is taken first").await?;

    // The common case: no scanner crashed, the next job comes from the pending queue.
    admin
        .batch_execute(
            "UPDATE scan_jobs SET status = 'done', lease_expires_at = NULL, locked_by = NULL,
                    finished_at = app_now_ms()
              WHERE status = 'running'",
        )
        .await?;
    let (q, t) = time_queries(&mut app, p.iterations, &stmt, false, || {
        (Uuid::nil(), Vec::new())
    })
    .await?;
    row(
        &mut md,
        "claim next scan job (from the pending queue)",
        &q,
        &t,
    )?;
    claim_plans(db_config, &mut plans, "no lease expired, the pending queue").await?;

    writeln!(
        md,
        "\nLoad average after the measurements: {} (other work shares the 2 cores).",
        loadavg()
    )?;
    writeln!(
        md,
        "\n### Plans (`EXPLAIN (ANALYZE, BUFFERS)`, warm cache)\n"
    )?;
    md.push_str(&plans);
    eprintln!("bench-db: done ({name})");
    Ok(md)
}

fn rows_hint(label: &str, p: &Params, messages_per_tenant: i32, blobs_per_tenant: i32) -> String {
    let n = |x: i64| {
        let s = x.to_string();
        let mut out = String::new();
        for (i, ch) in s.chars().enumerate() {
            if i > 0 && (s.len() - i).is_multiple_of(3) {
                out.push(',');
            }
            out.push(ch);
        }
        out
    };
    let t = p.tenants as i64;
    match label {
        "email_messages" => n(t * messages_per_tenant as i64),
        "attachment_blobs" | "scan_jobs" => n(t * blobs_per_tenant as i64),
        "email_attachments" => n(t * (p.attachments / p.tenants) as i64),
        l if l.starts_with("tenants") => format!("{} / {} / {} / {}", n(t), n(t * 3), n(t), n(t)),
        l if l.starts_with("audit") => n(t * ((p.attachments / p.tenants) / 10).max(1) as i64),
        _ => String::new(),
    }
}

async fn machine(admin: &Client, md: &mut String) -> Result<(), BoxError> {
    let version: String = admin.query_one("SELECT version()", &[]).await?.get(0);
    let settings = admin
        .query(
            "SELECT name, setting || coalesce(unit, '') FROM pg_settings
             WHERE name IN ('shared_buffers', 'work_mem', 'effective_cache_size', 'random_page_cost', 'max_wal_size',
                            'synchronous_commit')
             ORDER BY name",
            &[],
        )
        .await?;
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let cpu_model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines().next().map(|l| {
                l.split_whitespace()
                    .nth(1)
                    .unwrap_or("0")
                    .parse::<u64>()
                    .unwrap_or(0)
            })
        })
        .map(|kb| format!("{:.0} GiB", kb as f64 / 1024.0 / 1024.0))
        .unwrap_or_else(|| "unknown".into());
    writeln!(
        md,
        "Machine: {cpus} cores (`nproc` = {cpus}, {cpu_model}), {mem} RAM; Postgres and the benchmark on the same host; load average at start {}.  ",
        loadavg()
    )?;
    writeln!(md, "Postgres: {version}.  ")?;
    let s: Vec<String> = settings
        .iter()
        .map(|r| format!("{}={}", r.get::<_, String>(0), r.get::<_, String>(1)))
        .collect();
    writeln!(md, "Settings (stock, untuned): {}.\n", s.join(", "))?;
    Ok(())
}

type Param = Box<dyn ToSql + Sync + Send>;

/// The 1/5/15-minute load averages: the machine is shared, and the figures mean little without them.
fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" / "))
        .unwrap_or_else(|_| "unknown".into())
}

/// Runs `iterations` (+50 warm-up) transactions; returns (query durations, transaction durations).
async fn time_queries(
    app: &mut Client,
    iterations: usize,
    stmt: &tokio_postgres::Statement,
    commit: bool,
    mut next: impl FnMut() -> (Uuid, Vec<Param>),
) -> Result<(Vec<Duration>, Vec<Duration>), BoxError> {
    let set = app.prepare("SELECT set_config($1, $2, true)").await?;
    let mut q = Vec::with_capacity(iterations);
    let mut t = Vec::with_capacity(iterations);
    for i in 0..iterations + 50 {
        let (tenant, params) = next();
        let refs: Vec<&(dyn ToSql + Sync)> = params
            .iter()
            .map(|p| p.as_ref() as &(dyn ToSql + Sync))
            .collect();
        let tx_started = Instant::now();
        let tx = app.transaction().await?;
        if !tenant.is_nil() {
            tx.query_one(&set, &[&TENANT_GUC, &tenant.to_string()])
                .await?;
        }
        let started = Instant::now();
        let rows = tx.query(stmt, &refs).await?.len();
        let query_time = started.elapsed();
        if commit {
            tx.commit().await?;
        } else {
            tx.rollback().await?;
        }
        if rows == 0 && !tenant.is_nil() {
            return Err("a sampled key returned no row: RLS or the sample is broken".into());
        }
        if i >= 50 {
            q.push(query_time);
            t.push(tx_started.elapsed());
        }
    }
    Ok((q, t))
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1000.0)
}

fn row(md: &mut String, label: &str, q: &[Duration], t: &[Duration]) -> Result<(), BoxError> {
    let mut q = q.to_vec();
    let mut t = t.to_vec();
    q.sort();
    t.sort();
    let mean = q.iter().sum::<Duration>() / q.len() as u32;
    writeln!(
        md,
        "| {label} | {} | {} | {} | {} | {} | {} |",
        ms(pct(&q, 0.5)),
        ms(pct(&q, 0.95)),
        ms(pct(&q, 0.99)),
        ms(mean),
        ms(pct(&t, 0.5)),
        ms(pct(&t, 0.95))
    )?;
    Ok(())
}

/// EXPLAIN (ANALYZE, BUFFERS) as the app role with the tenant set; run twice, the second (warm) is recorded.
async fn plan_as_app(
    app: &mut Client,
    tenant: Uuid,
    sql: &str,
    title: &str,
    out: &mut String,
) -> Result<(), BoxError> {
    let mut text = String::new();
    for _ in 0..2 {
        let tx = app.transaction().await?;
        tx.query_one(
            "SELECT set_config($1, $2, true)",
            &[&TENANT_GUC, &tenant.to_string()],
        )
        .await?;
        let rows = tx
            .query(&format!("EXPLAIN (ANALYZE, BUFFERS) {sql}"), &[])
            .await?;
        text = rows
            .iter()
            .map(|r| r.get::<_, String>(0))
            .collect::<Vec<_>>()
            .join("\n");
        tx.rollback().await?;
    }
    writeln!(
        out,
        "#### {title}\n\n```sql\n{sql}\n```\n\n```\n{text}\n```\n"
    )?;
    Ok(())
}

/// The claim runs inside a plpgsql function, whose inner plans EXPLAIN cannot show; auto_explain can. Run as
/// the superuser (LOAD needs it; the function runs as its owner either way), with the plans sent to this
/// session as NOTICEs.
async fn claim_plans(db_config: &Config, out: &mut String, case: &str) -> Result<(), BoxError> {
    let (client, mut connection) = db_config.connect(NoTls).await?;
    let (tx_notice, mut rx_notice) = tokio::sync::mpsc::unbounded_channel::<String>();
    tokio::spawn(async move {
        let mut stream = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(msg) = stream.next().await {
            match msg {
                Ok(AsyncMessage::Notice(n)) => {
                    let _ = tx_notice.send(n.message().to_string());
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
    });
    client
        .batch_execute(
            "LOAD 'auto_explain';
             SET auto_explain.log_min_duration = 0;
             SET auto_explain.log_analyze = on;
             SET auto_explain.log_buffers = on;
             SET auto_explain.log_timing = on;
             SET auto_explain.log_nested_statements = on;
             SET auto_explain.log_level = 'notice';
             SET client_min_messages = 'notice'",
        )
        .await?;
    for round in 0..2 {
        client.batch_execute("BEGIN").await?;
        client
            .query("SELECT * FROM scan_claim_jobs('bench-worker', 60, 1)", &[])
            .await?;
        client.batch_execute("ROLLBACK").await?;
        tokio::time::sleep(Duration::from_millis(100)).await;
        let mut notices = Vec::new();
        while let Ok(n) = rx_notice.try_recv() {
            notices.push(n);
        }
        if round == 1 {
            writeln!(
                out,
                "#### Claim next scan job: {case} (`scan_claim_jobs`; the statements inside the function, via auto_explain)\n"
            )?;
            for n in notices {
                writeln!(out, "```\n{}\n```\n", n.trim())?;
            }
        }
    }
    Ok(())
}

/// Replaces what lies between the section's markers in a Markdown file, or appends the section between new
/// markers when the file has none; the rest of the file is left alone.
fn write_section(path: &str, section: &str) -> std::io::Result<()> {
    let existing = std::fs::read_to_string(path).unwrap_or_else(|_| "# Benchmarks\n".to_string());
    let out = with_section(&existing, section)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
    std::fs::write(path, out)
}

fn with_section(existing: &str, section: &str) -> Result<String, String> {
    let (start, end) = (
        format!("<!-- bench:{MARKER} -->"),
        format!("<!-- /bench:{MARKER} -->"),
    );
    if existing.matches(&start).count() > 1 || existing.matches(&end).count() > 1 {
        return Err(format!("more than one {start} section"));
    }
    let block = format!("{start}\n\n{}\n\n{end}", section.trim_matches('\n'));
    match (existing.find(&start), existing.find(&end)) {
        (Some(s), Some(e)) if s < e => Ok(format!(
            "{}{block}{}",
            &existing[..s],
            &existing[e + end.len()..]
        )),
        (None, None) => Ok(format!("{}\n\n{block}\n", existing.trim_end_matches('\n'))),
        _ => Err(format!("unpaired or misordered markers {start} / {end}")),
    }
}

#[cfg(test)]
mod tests {
    use super::with_section;

    const FILE: &str = "# Benchmarks\n\n<!-- bench-summary -->\n\n| a | b |\n\n<!-- /bench-summary -->\n\n\
        <!-- bench:database -->\n\n## Database\n\nold\n\n### Plans\n\n## Not a section end\n\n<!-- /bench:database -->\n\n\
        ## By hand\n\nkept\n";

    #[test]
    fn replaces_only_between_the_markers() {
        let out = with_section(FILE, "## Database\n\nnew\n").unwrap();
        assert_eq!(
            out,
            "# Benchmarks\n\n<!-- bench-summary -->\n\n| a | b |\n\n<!-- /bench-summary -->\n\n\
             <!-- bench:database -->\n\n## Database\n\nnew\n\n<!-- /bench:database -->\n\n## By hand\n\nkept\n"
        );
        assert_eq!(
            with_section(&out, "## Database\n\nnew").unwrap(),
            out,
            "idempotent"
        );
    }

    #[test]
    fn appends_when_the_file_has_no_section() {
        assert_eq!(
            with_section("# Benchmarks\n\n## Other\n", "## Database\n\nx\n").unwrap(),
            "# Benchmarks\n\n## Other\n\n<!-- bench:database -->\n\n## Database\n\nx\n\n<!-- /bench:database -->\n"
        );
    }

    #[test]
    fn refuses_unpaired_or_repeated_markers() {
        assert!(with_section("<!-- bench:database -->\nx\n", "## Database").is_err());
        assert!(
            with_section(
                "<!-- /bench:database -->\n<!-- bench:database -->\n",
                "## Database"
            )
            .is_err()
        );
        let twice = format!("{FILE}{FILE}");
        assert!(with_section(&twice, "## Database").is_err());
    }
}
