//! `GET /health/ready` → `200 {"status":"ready","checks":{...}}` when the database, Redis and
//! storage answer, else `503 not_ready` naming the ones that do not (`edge::ready`). Public and
//! cheap: one `SELECT 1` as the app role, one Redis `PING`, one storage `HeadObject` of a key that
//! never exists (a `404` proves the endpoint, the bucket and the keys work), run at once, each within
//! `outbound_timeout_secs`. Causes are logged, never sent.

use edge::app::{Call, Reply};
use edge::ready::{self, Check};
use edge::spin::RateLimiter;
use edge::{ApiError, response};
use http::StatusCode;
use serde_json::json;
use storage::ObjectKey;
use store::spin::Db;

use crate::Config;

/// The key the storage check asks for: under no prefix we write to.
const PROBE_KEY: &str = "health/ready-probe";

pub(crate) async fn handle(call: &mut Call, cfg: &Config) -> Result<Reply, ApiError> {
    let (database, redis, storage) = futures::join!(database(cfg), redis(cfg), storage(cfg));
    let checks = [
        Check {
            name: "database",
            outcome: database,
        },
        Check {
            name: "redis",
            outcome: redis,
        },
        Check {
            name: "storage",
            outcome: storage,
        },
    ];
    match ready::answer(&checks) {
        Ok(body) => Ok(response::json(StatusCode::OK, &body, &call.request_id).into()),
        Err(problem) => {
            let causes: serde_json::Map<String, serde_json::Value> = checks
                .iter()
                .filter_map(|c| {
                    c.outcome
                        .as_ref()
                        .err()
                        .map(|e| (c.name.to_owned(), json!(e)))
                })
                .collect();
            Err(ApiError::new(problem).with_cause(serde_json::Value::Object(causes)))
        }
    }
}

async fn database(cfg: &Config) -> Result<(), String> {
    let db = Db::open(&cfg.database, cfg.outbound_timeout)
        .await
        .map_err(|e| e.to_string())?;
    store::health::ping(&db).await.map_err(|e| e.to_string())
}

async fn redis(cfg: &Config) -> Result<(), String> {
    RateLimiter::new(cfg.redis_url.clone(), cfg.outbound_timeout)
        .ping()
        .await
}

async fn storage(cfg: &Config) -> Result<(), String> {
    let key = ObjectKey::from_stored(PROBE_KEY).map_err(|e| e.to_string())?;
    cfg.storage
        .object_size(&key)
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}
