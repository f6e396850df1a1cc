//! `spinlet`: runs a Spin 4.1 application (`spin.toml`, HTTP trigger, WASI P3 components) locally on wasmtime,
//! the way `spin up` would, for development and tests. Production runs the same manifest on real Spin.

mod allowed_hosts;
mod app;
mod compose;
mod deny;
mod host;
mod manifest;
mod platform;
mod reuse;
mod routes;
mod runtime_config;
mod server;
mod variables;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

#[derive(Parser)]
#[command(
    name = "spinlet",
    version,
    about = "Run a Spin 4.1 HTTP application locally on wasmtime"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the application's HTTP trigger.
    Up {
        /// The application manifest (as `spin up -f/--from`; `--manifest` is the older name).
        #[arg(
            long = "from",
            short = 'f',
            visible_alias = "manifest",
            default_value = "spin.toml"
        )]
        manifest: PathBuf,
        /// A variable, as `spin up --variable`: `key=value`, `key=@file`, `@file.json` or `@file.toml`;
        /// repeatable, later wins. Over `SPIN_VARIABLE_<KEY>` and `.env` of the working directory.
        #[arg(long = "variable", value_name = "KEY=VALUE")]
        variables: Vec<String>,
        /// Spin's runtime configuration file; the runner honours `[outbound_pg] max_connections` and
        /// refuses what it cannot do.
        #[arg(long, env = "RUNTIME_CONFIG_FILE")]
        runtime_config_file: Option<PathBuf>,
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:3000", env = "SPIN_HTTP_LISTEN_ADDR")]
        listen: String,
        /// Where compiled components are cached (keyed by their bytes); none to compile every start.
        #[arg(long, env = "SPINLET_CACHE_DIR")]
        cache_dir: Option<PathBuf>,
        /// Longest a request may take, bodies included, in seconds; then its instance is dropped (503 if no
        /// response was produced yet).
        #[arg(long, default_value_t = 600, env = "SPINLET_REQUEST_TIMEOUT_SECS")]
        request_timeout_secs: u64,
        /// The same as `spin up --request-timeout` (`30s`, `500ms`, ...); wins over `--request-timeout-secs`.
        #[arg(long, value_parser = reuse::parse_duration)]
        request_timeout: Option<reuse::Setting<Duration>>,
        /// A production platform's limits, answered as the platform does when crossed: `none` (the
        /// default) or `fermyon-wasm-functions` (also `akamai-functions`): request and response bodies
        /// 10 MiB, a request 30 s, an instance 128 MiB. The flags below override single limits.
        #[arg(long, default_value = "none", env = "SPINLET_PLATFORM")]
        platform: platform::Platform,
        /// Largest request body, bytes (a platform's cap; default: the platform's, else none).
        #[arg(long, env = "SPINLET_MAX_REQUEST_BODY_BYTES")]
        max_request_body_bytes: Option<u64>,
        /// Largest response body, bytes (a platform's cap; default: the platform's, else none).
        #[arg(long, env = "SPINLET_MAX_RESPONSE_BODY_BYTES")]
        max_response_body_bytes: Option<u64>,
        /// Largest linear memory one instance may use, in MiB; growing past it traps (500).
        #[arg(long, default_value_t = 128, env = "SPINLET_MAX_MEMORY_MIB")]
        max_memory_mib: usize,
        /// The same in bytes, as `spin up --max-instance-memory`; wins over `--max-memory-mib`.
        #[arg(long, env = "SPIN_MAX_INSTANCE_MEMORY")]
        max_instance_memory: Option<usize>,
        /// Instances alive at once (sizes the pooling allocator).
        #[arg(long, default_value_t = 256, env = "SPINLET_MAX_INSTANCES")]
        max_instances: u32,
        /// Requests one instance serves before it is dropped, as in Spin 4 (default 128; 1: a fresh
        /// instance per request). A range `a..b` draws a value per instance.
        #[arg(long, default_value = "128", value_parser = reuse::parse_count, env = "SPINLET_MAX_INSTANCE_REUSE_COUNT")]
        max_instance_reuse_count: reuse::Setting<usize>,
        /// Requests one instance runs at the same time, as in Spin 4 (default 16). A range `a..b` draws a
        /// value per instance.
        #[arg(long, default_value = "16", value_parser = reuse::parse_count, env = "SPINLET_MAX_INSTANCE_CONCURRENT_REUSE_COUNT")]
        max_instance_concurrent_reuse_count: reuse::Setting<usize>,
        /// How long an idle instance is kept for reuse, as in Spin 4 (default 1s; `ms`, `us`, `ns`
        /// suffixes; a range `a..b`).
        #[arg(long, default_value = "1s", value_parser = reuse::parse_duration, env = "SPINLET_IDLE_INSTANCE_TIMEOUT")]
        idle_instance_timeout: reuse::Setting<Duration>,
        /// Bytes of each freed linear memory reset in place and kept resident, in KiB, instead of being
        /// returned to the kernel, so the next instance in that slot starts without page faults. Default:
        /// 16384 where the kernel has PAGEMAP_SCAN (Linux 6.7+: only the dirtied pages are reset), else 0
        /// (without it every kept byte would be zeroed on every request).
        #[arg(long, env = "SPINLET_KEEP_RESIDENT_KIB")]
        keep_resident_kib: Option<usize>,
    },
}

fn main() -> Result<()> {
    quiet_library_backtraces();
    let cli = Cli::parse();
    match cli.command {
        Command::Up {
            manifest,
            variables,
            runtime_config_file,
            listen,
            cache_dir,
            request_timeout_secs,
            request_timeout,
            max_memory_mib,
            max_instance_memory,
            platform,
            max_request_body_bytes,
            max_response_body_bytes,
            max_instances,
            max_instance_reuse_count,
            max_instance_concurrent_reuse_count,
            idle_instance_timeout,
            keep_resident_kib,
        } => {
            let caps = platform.caps();
            let request_timeout = match request_timeout {
                Some(reuse::Setting::Value(d)) => d,
                Some(_) => {
                    anyhow::bail!("--request-timeout: the runner takes one value, not a range")
                }
                None => caps
                    .map(|c| c.request_timeout)
                    .unwrap_or(Duration::from_secs(request_timeout_secs)),
            };
            let runtime_config = match &runtime_config_file {
                Some(path) => runtime_config::RuntimeConfig::load(path)?,
                None => runtime_config::RuntimeConfig::default(),
            };
            let sources = variables::Sources::new(&variables, std::path::Path::new(".env"))?;
            let limits = app::Limits {
                request_timeout,
                max_memory: max_instance_memory
                    .or(caps.map(|c| c.max_memory))
                    .unwrap_or(max_memory_mib << 20),
                max_instances,
                reuse: reuse::ReusePolicy {
                    max_requests: max_instance_reuse_count,
                    max_concurrent: max_instance_concurrent_reuse_count,
                    idle_timeout: idle_instance_timeout,
                },
                keep_resident: keep_resident_kib.map_or_else(default_keep_resident, |k| k << 10),
                max_request_body: max_request_body_bytes.or(caps.map(|c| c.max_request_body)),
                max_response_body: max_response_body_bytes.or(caps.map(|c| c.max_response_body)),
            };
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            runtime.block_on(async move {
                host::pg::set_max_connections(runtime_config.pg_max_connections);
                let app = app::App::load(&manifest, |k| sources.lookup(k), limits, cache_dir)
                    .with_context(|| format!("loading {}", manifest.display()))?;
                let listener = tokio::net::TcpListener::bind(&listen)
                    .await
                    .with_context(|| format!("listening on {listen}"))?;
                eprintln!(
                    "spinlet: serving http://{} ({})",
                    listener.local_addr()?,
                    app.name
                );
                tokio::select! {
                    r = server::serve(Arc::new(app), listener) => r,
                    _ = shutdown_signal() => {
                        eprintln!("spinlet: shutting down");
                        Ok(())
                    }
                }
            })
        }
    }
}

/// See `--keep-resident-kib`: measured on the trivial route at one connection with a fresh instance per
/// request, p50 0.33 ms without, 0.28 ms with 16 MiB kept resident and PAGEMAP_SCAN.
fn default_keep_resident() -> usize {
    if wasmtime::PoolingAllocationConfig::is_pagemap_scan_available() {
        16 << 20
    } else {
        0
    }
}

/// wasmtime builds error values on a request's normal path (e.g. disposing a finished instance's fibers),
/// and with `RUST_BACKTRACE=1` in the environment each captured a stack backtrace: measured at 0.03 ms
/// per request on a trivial route and 0.05-0.1 ms through the auth middleware (two components). Library
/// backtraces are off unless `RUST_LIB_BACKTRACE` asks for them; panics still print theirs.
fn quiet_library_backtraces() {
    if std::env::var_os("RUST_LIB_BACKTRACE").is_none() {
        // SAFETY: called first thing in `main`, before any other thread exists.
        unsafe { std::env::set_var("RUST_LIB_BACKTRACE", "0") };
    }
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("signal handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
