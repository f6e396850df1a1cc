//! `spinlet`: runs a Spin 4.1 application (`spin.toml`, HTTP trigger, WASI P3 components) locally on wasmtime,
//! the way `spin up` would, for development and tests. Production runs the same manifest on real Spin.

mod allowed_hosts;
mod app;
mod compose;
mod deny;
mod host;
mod manifest;
mod routes;
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
        /// The application manifest.
        #[arg(long, short = 'f', default_value = "spin.toml")]
        manifest: PathBuf,
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:3000", env = "SPINLET_LISTEN")]
        listen: String,
        /// Where compiled components are cached (keyed by their bytes); none to compile every start.
        #[arg(long, env = "SPINLET_CACHE_DIR")]
        cache_dir: Option<PathBuf>,
        /// Longest a request may take, bodies included, in seconds; then its instance is dropped (503 if no
        /// response was produced yet).
        #[arg(long, default_value_t = 600, env = "SPINLET_REQUEST_TIMEOUT_SECS")]
        request_timeout_secs: u64,
        /// Largest linear memory one instance may use, in MiB; growing past it traps (500).
        #[arg(long, default_value_t = 128, env = "SPINLET_MAX_MEMORY_MIB")]
        max_memory_mib: usize,
        /// Instances alive at once (sizes the pooling allocator).
        #[arg(long, default_value_t = 256, env = "SPINLET_MAX_INSTANCES")]
        max_instances: u32,
        /// Bytes of each freed linear memory reset with memset and kept resident, in KiB, instead of being
        /// returned to the kernel: the next instance in that slot then starts without page faults.
        #[arg(long, default_value_t = 0, env = "SPINLET_KEEP_RESIDENT_KIB")]
        keep_resident_kib: usize,
    },
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Up {
            manifest,
            listen,
            cache_dir,
            request_timeout_secs,
            max_memory_mib,
            max_instances,
            keep_resident_kib,
        } => {
            let limits = app::Limits {
                request_timeout: Duration::from_secs(request_timeout_secs),
                max_memory: max_memory_mib << 20,
                max_instances,
                keep_resident: keep_resident_kib << 10,
            };
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            runtime.block_on(async move {
                let app = app::App::load(&manifest, |k| std::env::var(k).ok(), limits, cache_dir)
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

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("signal handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
