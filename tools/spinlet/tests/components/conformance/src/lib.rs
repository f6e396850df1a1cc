//! Fixture component for the runner's conformance tests. Each path exercises one host behaviour and
//! reports what it saw as JSON, so the tests (tools/spinlet/tests/conformance.rs) can assert on it over
//! plain HTTP.

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use spin_sdk::http::body::IncomingBodyExt;
use spin_sdk::http::{IntoResponse, Request, Response, StatusCode};
use spin_sdk::http_service;
use spin_sdk::pg::{self, DbValue, ParameterValue};
use spin_sdk::redis::{self, RedisParameter, RedisResult};
use std::sync::atomic::{AtomicU64, Ordering};

/// Incremented by every request this instance serves: how many requests the instance has taken (Spin 4
/// reuses WASI P3 instances; with `--max-instance-reuse-count 1` it is always 1).
static REQUESTS_SEEN: AtomicU64 = AtomicU64::new(0);

fn json_response(status: StatusCode, value: Value) -> Response<String> {
    http::Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(value.to_string())
        .expect("valid response")
}

#[http_service]
async fn handle(request: Request) -> anyhow::Result<impl IntoResponse> {
    let seen = REQUESTS_SEEN.fetch_add(1, Ordering::SeqCst) + 1;
    let path = request.uri().path().to_string();
    let query = request.uri().query().unwrap_or("").to_string();
    let leaf = path.rsplit('/').next().unwrap_or("").to_string();
    let response: Response<spin_sdk::http::BoxBody> = match leaf.as_str() {
        "state" => boxed(json_response(
            StatusCode::OK,
            json!({ "requestsSeen": seen }),
        )),
        "vars" => boxed(variables().await),
        "pg" => boxed(postgres(&query).await),
        "redis" => boxed(redis_roundtrip(&query).await),
        "outbound" => boxed(outbound(&query).await),
        "trap" => panic!("fixture asked to trap"),
        "spin" => {
            // A runaway guest: the runner must time it out without stalling other requests.
            let mut x: u64 = 0;
            loop {
                x = std::hint::black_box(x.wrapping_add(1));
            }
        }
        "oom" => {
            let mut hoard: Vec<Vec<u8>> = Vec::new();
            loop {
                hoard.push(vec![1u8; 16 << 20]);
                std::hint::black_box(&hoard);
            }
        }
        "count" => boxed(count_body(request).await),
        "pressure" => {
            // Refuses concurrent requests while it reads its body (component-model backpressure): the
            // runner must send other requests to another instance meanwhile.
            spin_sdk::wit_bindgen::backpressure_inc();
            let res = count_body(request).await;
            spin_sdk::wit_bindgen::backpressure_dec();
            boxed(res)
        }
        "generate" => generate(&query),
        _ => boxed(echo(&request)),
    };
    Ok(response)
}

fn boxed<B>(res: Response<B>) -> Response<spin_sdk::http::BoxBody>
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<anyhow::Error>,
{
    res.map(spin_sdk::http::box_body)
}

/// The request as the component saw it: method, path, and every header (the Spin ones included):
/// `headers` by name (the last value of a repeated one), `headerList` every value in order.
fn echo(request: &Request) -> Response<String> {
    let value = |v: &http::HeaderValue| Value::from(v.to_str().unwrap_or("<binary>"));
    let headers: serde_json::Map<String, Value> = request
        .headers()
        .iter()
        .map(|(k, v)| (k.to_string(), value(v)))
        .collect();
    let header_list: Vec<Value> = request
        .headers()
        .iter()
        .map(|(k, v)| json!([k.as_str(), value(v)]))
        .collect();
    json_response(
        StatusCode::OK,
        json!({ "method": request.method().as_str(), "uri": request.uri().to_string(), "headers": headers, "headerList": header_list, "body": "core" }),
    )
}

async fn variables() -> Response<String> {
    let mut out = serde_json::Map::new();
    for name in ["greeting", "overridden", "composed", "undeclared"] {
        let value = match spin_sdk::variables::get(name).await {
            Ok(v) => json!({ "ok": v }),
            Err(e) => json!({ "error": e.to_string() }),
        };
        out.insert(name.into(), value);
    }
    json_response(StatusCode::OK, Value::Object(out))
}

fn param(query: &str, key: &str) -> Option<String> {
    query.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == key).then(|| {
            v.replace("%3A", ":")
                .replace("%2F", "/")
                .replace("%40", "@")
                .replace("%3F", "?")
                .replace("%3D", "=")
        })
    })
}

fn db_value(v: &DbValue) -> Value {
    match v {
        DbValue::Boolean(b) => json!(b),
        DbValue::Int32(i) => json!(i),
        DbValue::Int64(i) => json!(i),
        DbValue::Str(s) => json!(s),
        DbValue::Uuid(s) => json!(s),
        DbValue::Binary(b) => json!(b),
        DbValue::Jsonb(b) => serde_json::from_slice(b).unwrap_or(Value::Null),
        DbValue::Datetime((y, mo, d, h, mi, s, ns)) => json!([y, mo, d, h, mi, s, ns]),
        DbValue::DbNull => json!({ "null": true }),
        other => json!(format!("{other:?}")),
    }
}

/// Round-trips one value of each type the product uses, through parameters and back.
async fn postgres(query: &str) -> Response<String> {
    let Some(address) = param(query, "address") else {
        return json_response(
            StatusCode::BAD_REQUEST,
            json!({ "error": "address missing" }),
        );
    };
    let result: anyhow::Result<Value> = async {
        let conn = pg::Connection::open(address).await?;
        let sql = "SELECT $1::uuid AS u, $2::text AS t, $3::int4 AS i, $4::int8 AS b, $5::bool AS o, \
                   $6::bytea AS y, $7::jsonb AS j, $8::timestamptz AS ts, $9::text AS n, now() - now() = interval '0' AS sane";
        let params = vec![
            ParameterValue::Uuid("6f1c7f38-2d0e-4c59-9a53-0f6a7c1f4b2e".into()),
            ParameterValue::Str("héllo ✓".into()),
            ParameterValue::Int32(-42),
            ParameterValue::Int64(9_007_199_254_740_993),
            ParameterValue::Boolean(true),
            ParameterValue::Binary(vec![0, 1, 2, 255]),
            ParameterValue::Jsonb(br#"{"a":[1,2,{"b":null}]}"#.to_vec()),
            ParameterValue::Datetime((2026, 11, 22, 7, 51, 28, 123_000_000)),
            ParameterValue::DbNull,
        ];
        let rows = conn.query(sql, params).await?;
        let columns: Vec<String> = rows.columns().iter().map(|c| c.name.clone()).collect();
        let rows = rows.collect().await?;
        let row = rows.first().ok_or_else(|| anyhow::anyhow!("no row"))?;
        let mut out = serde_json::Map::new();
        for (i, name) in columns.iter().enumerate() {
            out.insert(name.clone(), db_value(&row[i]));
        }
        // A transaction-local setting must not leak into the next request's pooled connection.
        let setting = conn.query("SELECT current_setting('app.fixture', true) AS s", Vec::<ParameterValue>::new()).await?;
        let setting = setting.collect().await?;
        out.insert("leakedSetting".into(), db_value(&setting[0][0]));
        // A session-level setting and a transaction left open on purpose: the runner must clean both
        // before the pooled connection serves another request.
        conn.execute("SELECT set_config('app.fixture', 'set-by-previous-request', false)", Vec::<ParameterValue>::new()).await?;
        conn.execute("BEGIN", Vec::<ParameterValue>::new()).await?;
        Ok(Value::Object(out))
    }
    .await;
    match result {
        Ok(v) => json_response(StatusCode::OK, v),
        Err(e) => json_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            json!({ "error": e.to_string() }),
        ),
    }
}

async fn redis_roundtrip(query: &str) -> Response<String> {
    let (Some(address), Some(key)) = (param(query, "address"), param(query, "key")) else {
        return json_response(
            StatusCode::BAD_REQUEST,
            json!({ "error": "address and key required" }),
        );
    };
    let result: anyhow::Result<Value> = async {
        let conn = redis::Connection::open(address).await?;
        let count = conn.incr(&key).await?;
        let expire = conn
            .execute(
                "EXPIRE",
                [
                    RedisParameter::Binary(key.clone().into_bytes()),
                    RedisParameter::Int64(60),
                ],
            )
            .await?;
        let ttl = conn
            .execute("TTL", [RedisParameter::Binary(key.clone().into_bytes())])
            .await?;
        let int = |r: &[RedisResult]| match r.first() {
            Some(RedisResult::Int64(i)) => json!(i),
            other => json!(format!("{other:?}")),
        };
        Ok(json!({ "count": count, "expireSet": int(&expire), "ttl": int(&ttl) }))
    }
    .await;
    match result {
        Ok(v) => json_response(StatusCode::OK, v),
        Err(e) => json_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            json!({ "error": e.to_string() }),
        ),
    }
}

async fn outbound(query: &str) -> Response<String> {
    let Some(url) = param(query, "url") else {
        return json_response(StatusCode::BAD_REQUEST, json!({ "error": "url missing" }));
    };
    match spin_sdk::http::get(&url).await {
        Ok(res) => json_response(StatusCode::OK, json!({ "status": res.status().as_u16() })),
        Err(e) => json_response(
            StatusCode::BAD_GATEWAY,
            json!({ "error": format!("{e:?}") }),
        ),
    }
}

/// Streams the request body, keeping only a running count (and a checksum) in memory.
async fn count_body(request: Request) -> Response<String> {
    let mut stream = request.into_body().stream();
    let (mut bytes, mut sum) = (0u64, 0u64);
    while let Some(chunk) = stream.next().await {
        match chunk {
            Ok(chunk) => {
                bytes += chunk.len() as u64;
                sum = chunk.iter().fold(sum, |acc, b| {
                    acc.wrapping_mul(31).wrapping_add(u64::from(*b))
                });
            }
            Err(e) => {
                return json_response(
                    StatusCode::BAD_REQUEST,
                    json!({ "error": format!("{e:?}") }),
                );
            }
        }
    }
    json_response(
        StatusCode::OK,
        json!({ "bytes": bytes, "checksum": sum.to_string() }),
    )
}

/// Streams `size` bytes of a repeating pattern without ever holding more than one chunk.
fn generate(query: &str) -> Response<spin_sdk::http::BoxBody> {
    let size: u64 = param(query, "size")
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let (mut tx, body) = spin_sdk::http::body::stream::<Bytes>();
    spin_sdk::wasip3::spawn(async move {
        let chunk: Bytes = (0..65536u32)
            .map(|i| (i % 251) as u8)
            .collect::<Vec<u8>>()
            .into();
        let mut left = size;
        while left > 0 {
            let n = left.min(chunk.len() as u64) as usize;
            if tx.send(chunk.slice(..n)).await.is_err() {
                return;
            }
            left -= n as u64;
        }
    });
    http::Response::builder()
        .header("content-length", size.to_string())
        .body(spin_sdk::http::box_body(body))
        .expect("valid response")
}
