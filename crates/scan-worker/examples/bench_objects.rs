//! `scripts/bench reconcile`'s loader: PUTs COUNT small objects under a tenant's prefix, straight to
//! the bucket (`S3_*` from the environment), CONCURRENCY at a time, and prints each key on its own
//! line (the benchmark makes half of them known to the database).
//!
//! usage: bench_objects TENANT COUNT [CONCURRENCY]

use std::time::SystemTime;

use bytes::Bytes;
use storage::request::{Body, Signer};
use storage::{ObjectKey, StorageConfig};
use uuid::Uuid;

fn env(k: &str) -> String {
    std::env::var(k).unwrap_or_else(|_| panic!("{k} is not set"))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(tenant), Some(count)) = (args.first(), args.get(1)) else {
        eprintln!("usage: bench_objects TENANT COUNT [CONCURRENCY]");
        std::process::exit(2);
    };
    let tenant: Uuid = tenant.parse().expect("TENANT is a UUID");
    let count: usize = count.parse().expect("COUNT");
    let workers: usize = args.get(2).map_or(32, |c| c.parse().expect("CONCURRENCY"));
    let cfg = StorageConfig::new(
        &env("S3_ENDPOINT"),
        &std::env::var("S3_REGION").unwrap_or_else(|_| "garage".into()),
        &std::env::var("S3_BUCKET").unwrap_or_else(|_| "attachments".into()),
        &env("S3_ACCESS_KEY_ID"),
        &env("S3_SECRET_ACCESS_KEY"),
    )
    .expect("S3 settings");
    let http = reqwest::Client::new();
    let (tx, mut rx) = tokio::sync::mpsc::channel::<String>(1024);
    for w in 0..workers {
        let (cfg, http, tx) = (cfg.clone(), http.clone(), tx.clone());
        let mine = count / workers + usize::from(w < count % workers);
        tokio::spawn(async move {
            for _ in 0..mine {
                let key = ObjectKey::new_upload(tenant);
                let body = Bytes::from_static(b"reconcile bench\n");
                // A busy single-node Garage answers 503 now and then: try again, a little later.
                for attempt in 1.. {
                    let req = Signer::new(&cfg)
                        .put_object(&key, None, Body::Bytes(body.clone()), SystemTime::now())
                        .expect("signing");
                    let mut rb = http.put(&req.url).body(body.clone());
                    for (n, v) in &req.headers {
                        if n != "content-length" {
                            rb = rb.header(n, v);
                        }
                    }
                    let status = rb.send().await.expect("PUT").status();
                    if status.is_success() {
                        break;
                    }
                    assert!(
                        status.is_server_error() && attempt < 10,
                        "PUT answered {status}"
                    );
                    tokio::time::sleep(std::time::Duration::from_millis(100 * attempt)).await;
                }
                tx.send(key.as_str().to_owned()).await.expect("printer");
            }
        });
    }
    drop(tx);
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    while let Some(key) = rx.recv().await {
        use std::io::Write;
        writeln!(out, "{key}").expect("stdout");
    }
}
