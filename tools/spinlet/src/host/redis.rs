//! `spin:redis/redis@3.0.0` on the `redis` crate. One multiplexed connection per address is shared by all
//! instances (cheap per request). Because commands of concurrent requests interleave on it, `execute`
//! refuses connection-state commands (MULTI/EXEC/WATCH/SUBSCRIBE/SELECT...): atomic sequences use EVAL.
//! A shared connection that fails at the I/O level is forgotten, so the next `open` reconnects (e.g. after
//! a Redis restart) without paying a health check on every open.

use super::State;
use super::bindings::spin::redis::redis::{self as r, Error, RedisParameter, RedisResult};
use redis::aio::MultiplexedConnection;
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::Mutex;
use wasmtime::component::{Accessor, HasSelf, Resource};

pub struct RedisConnection {
    conn: MultiplexedConnection,
    address: String,
    clients: Arc<RedisClients>,
}

#[derive(Default)]
pub struct RedisClients(Mutex<HashMap<String, MultiplexedConnection>>);

impl RedisClients {
    async fn connect(&self, address: &str) -> Result<MultiplexedConnection, Error> {
        let mut clients = self.0.lock().await;
        if let Some(c) = clients.get(address) {
            return Ok(c.clone());
        }
        let client = redis::Client::open(address).map_err(|_| Error::InvalidAddress)?;
        let conn = client
            .get_multiplexed_async_connection()
            .await
            .map_err(|e| Error::Other(format!("connecting to redis: {e}")))?;
        clients.insert(address.to_string(), conn.clone());
        Ok(conn)
    }

    /// Drops a cached connection that failed, so the next request reconnects (e.g. after a Redis restart).
    async fn forget(&self, address: &str) {
        self.0.lock().await.remove(address);
    }
}

fn broken_connection(e: &redis::RedisError) -> bool {
    e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal() || e.is_timeout()
}

const STATEFUL_COMMANDS: &[&str] = &[
    "MULTI",
    "EXEC",
    "DISCARD",
    "WATCH",
    "UNWATCH",
    "SUBSCRIBE",
    "PSUBSCRIBE",
    "SSUBSCRIBE",
    "SELECT",
    "MONITOR",
    "RESET",
    "CLIENT",
    "AUTH",
    "HELLO",
    "QUIT",
];

fn redis_error(e: redis::RedisError) -> Error {
    match e.kind() {
        redis::ErrorKind::TypeError => Error::TypeError,
        _ => Error::Other(e.to_string()),
    }
}

fn convert(value: redis::Value, out: &mut Vec<RedisResult>) {
    use redis::Value as V;
    match value {
        V::Nil => out.push(RedisResult::Nil),
        V::Int(i) => out.push(RedisResult::Int64(i)),
        V::BulkString(b) => out.push(RedisResult::Binary(b)),
        V::SimpleString(s) => out.push(RedisResult::Status(s)),
        V::Okay => out.push(RedisResult::Status("OK".into())),
        V::Boolean(b) => out.push(RedisResult::Int64(b.into())),
        V::Double(d) => out.push(RedisResult::Binary(d.to_string().into_bytes())),
        V::Array(items) | V::Set(items) => items.into_iter().for_each(|v| convert(v, out)),
        V::Map(pairs) => pairs.into_iter().for_each(|(k, v)| {
            convert(k, out);
            convert(v, out);
        }),
        other => out.push(RedisResult::Binary(format!("{other:?}").into_bytes())),
    }
}

type ConnParts = (MultiplexedConnection, String, Arc<RedisClients>);

fn conn_of<T: Send>(
    accessor: &Accessor<T, HasSelf<State>>,
    res: &Resource<RedisConnection>,
) -> wasmtime::Result<ConnParts> {
    accessor.with(|mut access| {
        let c = access.get().table.get(res)?;
        Ok((c.conn.clone(), c.address.clone(), c.clients.clone()))
    })
}

async fn run<R: redis::FromRedisValue, T: Send>(
    accessor: &Accessor<T, HasSelf<State>>,
    res: &Resource<RedisConnection>,
    cmd: redis::Cmd,
) -> wasmtime::Result<Result<R, Error>> {
    let (mut conn, address, clients) = conn_of(accessor, res)?;
    match cmd.query_async::<R>(&mut conn).await {
        Ok(v) => Ok(Ok(v)),
        Err(e) => {
            if broken_connection(&e) {
                clients.forget(&address).await;
            }
            Ok(Err(redis_error(e)))
        }
    }
}

impl r::Host for State {}

impl r::HostConnection for State {
    async fn drop(&mut self, res: Resource<RedisConnection>) -> wasmtime::Result<()> {
        self.table.delete(res)?;
        Ok(())
    }
}

impl<T: Send> r::HostConnectionWithStore<T> for HasSelf<State> {
    async fn open(
        accessor: &Accessor<T, Self>,
        address: String,
    ) -> wasmtime::Result<Result<Resource<RedisConnection>, Error>> {
        let (allowed, clients) = accessor.with(|mut access| {
            let state = access.get();
            (
                state.component.allowed_hosts.allows_url(&address),
                state.services.redis.clone(),
            )
        });
        if !address.starts_with("redis://") && !address.starts_with("rediss://") {
            return Ok(Err(Error::InvalidAddress));
        }
        if !allowed {
            // Spin answers `invalid-address`, and says why only in its own log.
            eprintln!(
                "spinlet: redis address {} is not permitted: add it to the component's allowed_outbound_hosts",
                address.rsplit('@').next().unwrap_or_default()
            );
            return Ok(Err(Error::InvalidAddress));
        }
        let conn = match clients.connect(&address).await {
            Ok(c) => c,
            Err(e) => return Ok(Err(e)),
        };
        Ok(Ok(accessor.with(|mut access| {
            access.get().table.push(RedisConnection {
                conn,
                address,
                clients,
            })
        })?))
    }

    async fn publish(
        accessor: &Accessor<T, Self>,
        res: Resource<RedisConnection>,
        channel: String,
        payload: Vec<u8>,
    ) -> wasmtime::Result<Result<(), Error>> {
        let mut cmd = redis::cmd("PUBLISH");
        cmd.arg(channel).arg(payload);
        Ok(run::<i64, T>(accessor, &res, cmd).await?.map(|_| ()))
    }

    async fn get(
        accessor: &Accessor<T, Self>,
        res: Resource<RedisConnection>,
        key: String,
    ) -> wasmtime::Result<Result<Option<Vec<u8>>, Error>> {
        let mut cmd = redis::cmd("GET");
        cmd.arg(key);
        run(accessor, &res, cmd).await
    }

    async fn set(
        accessor: &Accessor<T, Self>,
        res: Resource<RedisConnection>,
        key: String,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), Error>> {
        let mut cmd = redis::cmd("SET");
        cmd.arg(key).arg(value);
        Ok(run::<redis::Value, T>(accessor, &res, cmd)
            .await?
            .map(|_| ()))
    }

    async fn incr(
        accessor: &Accessor<T, Self>,
        res: Resource<RedisConnection>,
        key: String,
    ) -> wasmtime::Result<Result<i64, Error>> {
        let mut cmd = redis::cmd("INCR");
        cmd.arg(key);
        run(accessor, &res, cmd).await
    }

    async fn del(
        accessor: &Accessor<T, Self>,
        res: Resource<RedisConnection>,
        keys: Vec<String>,
    ) -> wasmtime::Result<Result<u32, Error>> {
        let mut cmd = redis::cmd("DEL");
        cmd.arg(keys);
        run(accessor, &res, cmd).await
    }

    async fn sadd(
        accessor: &Accessor<T, Self>,
        res: Resource<RedisConnection>,
        key: String,
        values: Vec<String>,
    ) -> wasmtime::Result<Result<u32, Error>> {
        let mut cmd = redis::cmd("SADD");
        cmd.arg(key).arg(values);
        run(accessor, &res, cmd).await
    }

    async fn smembers(
        accessor: &Accessor<T, Self>,
        res: Resource<RedisConnection>,
        key: String,
    ) -> wasmtime::Result<Result<Vec<String>, Error>> {
        let mut cmd = redis::cmd("SMEMBERS");
        cmd.arg(key);
        run(accessor, &res, cmd).await
    }

    async fn srem(
        accessor: &Accessor<T, Self>,
        res: Resource<RedisConnection>,
        key: String,
        values: Vec<String>,
    ) -> wasmtime::Result<Result<u32, Error>> {
        let mut cmd = redis::cmd("SREM");
        cmd.arg(key).arg(values);
        run(accessor, &res, cmd).await
    }

    async fn execute(
        accessor: &Accessor<T, Self>,
        res: Resource<RedisConnection>,
        command: String,
        arguments: Vec<RedisParameter>,
    ) -> wasmtime::Result<Result<Vec<RedisResult>, Error>> {
        if STATEFUL_COMMANDS
            .iter()
            .any(|c| c.eq_ignore_ascii_case(command.trim()))
        {
            return Ok(Err(Error::Other(format!(
                "`{command}` changes connection state and is not available on the shared connection; use EVAL for atomic sequences"
            ))));
        }
        let mut cmd = redis::cmd(&command);
        for arg in arguments {
            match arg {
                RedisParameter::Int64(i) => cmd.arg(i),
                RedisParameter::Binary(b) => cmd.arg(b),
            };
        }
        let value = match run::<redis::Value, T>(accessor, &res, cmd).await? {
            Ok(v) => v,
            Err(e) => return Ok(Err(e)),
        };
        if let redis::Value::ServerError(e) = value {
            return Ok(Err(Error::Other(format!("{e:?}"))));
        }
        let mut out = Vec::new();
        convert(value, &mut out);
        Ok(Ok(out))
    }
}
