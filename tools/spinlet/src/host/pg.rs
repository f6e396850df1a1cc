//! `spin:postgres/postgres@4.2.0` on tokio-postgres. Connections come from a pool per address; a guest's
//! `connection` owns one pooled client for its lifetime, so `BEGIN … COMMIT` and `set_config(…, true)` work
//! across statements. When the guest drops it, the client goes back to the pool and is cleaned before its
//! next use: by default `ROLLBACK`, then `DISCARD ALL`, so no transaction, setting or tenant context leaks
//! between requests. Spin 4 cleans less (deadpool-postgres' `Clean`: settings, cursors, locks, temporary
//! tables; an open transaction stays open for the next user), so a component must end its transactions
//! itself; `SPINLET_PG_RECYCLE=spin` cleans the way Spin does, for tests that check that.
//!
//! TLS as Spin does it: `sslmode=disable` in the address is plain TCP; otherwise (tokio-postgres'
//! default is `prefer`) TLS whenever the server offers it, the certificate and name always verified,
//! against the system roots or the one CA a guest gives with `connection-builder.set-ca-root`. (Spin
//! uses native-tls on the same system roots; this is rustls.) A pool per address and CA.

use super::State;
use super::bindings::spin::postgres::postgres::{
    self as pg, Column, DbDataType, DbError, DbValue, Error, ParameterValue, QueryError, RowSet,
};
use bytes::BytesMut;
use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, NaiveTime, Timelike, Utc};
use deadpool::managed::{self, Metrics, Object, RecycleError, RecycleResult};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_postgres::types::{FromSql, IsNull, Kind, ToSql, Type, to_sql_checked};
use wasmtime::component::{Accessor, FutureReader, HasSelf, Resource, StreamReader};

/// Connections per address unless the runtime config's `[outbound_pg] max_connections` says otherwise.
const DEFAULT_POOL_SIZE: usize = 32;
static MAX_CONNECTIONS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();

/// `[outbound_pg] max_connections` of the runtime config (`None`: the default); set once at start.
pub fn set_max_connections(max: Option<usize>) {
    if let Some(max) = max {
        let _ = MAX_CONNECTIONS.set(max);
    }
}
const CHECKOUT_TIMEOUT: Duration = Duration::from_secs(10);

/// A guest `connection`: one pooled client, held until the guest drops the resource.
pub struct PgConnection {
    client: Arc<Object<PgManager>>,
}

pub struct PgConnectionBuilder {
    address: String,
    ca_root: Option<String>,
}

pub struct PgManager {
    config: tokio_postgres::Config,
    recycle: Recycle,
    /// `None` for `sslmode=disable`.
    tls: Option<tokio_postgres_rustls::MakeRustlsConnect>,
}

/// The TLS connector for `ca_root` (PEM), or the system roots.
fn tls_connector(ca_root: Option<&str>) -> Result<tokio_postgres_rustls::MakeRustlsConnect, Error> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    match ca_root {
        Some(pem) => {
            for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
                let cert =
                    cert.map_err(|e| Error::Other(format!("invalid root certificate: {e}")))?;
                roots
                    .add(cert)
                    .map_err(|e| Error::Other(format!("invalid root certificate: {e}")))?;
            }
            if roots.is_empty() {
                return Err(Error::Other(
                    "invalid root certificate: no certificate in it".into(),
                ));
            }
        }
        None => {
            roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Other(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
}

/// How a pooled client is cleaned before its next use (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recycle {
    /// `ROLLBACK` and `DISCARD ALL`: nothing survives.
    Strict,
    /// What Spin 4's pool runs (deadpool-postgres `RecyclingMethod::Clean`): an open transaction survives.
    Spin,
}

impl Recycle {
    /// `SPINLET_PG_RECYCLE=spin`, else strict.
    pub fn from_env() -> Self {
        match std::env::var("SPINLET_PG_RECYCLE").as_deref() {
            Ok("spin") => Self::Spin,
            _ => Self::Strict,
        }
    }
}

impl managed::Manager for PgManager {
    type Type = tokio_postgres::Client;
    type Error = tokio_postgres::Error;

    async fn create(&self) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
        let client = match &self.tls {
            None => {
                let (client, connection) = self.config.connect(tokio_postgres::NoTls).await?;
                tokio::spawn(async move {
                    let _ = connection.await;
                });
                client
            }
            Some(tls) => {
                let (client, connection) = self.config.connect(tls.clone()).await?;
                tokio::spawn(async move {
                    let _ = connection.await;
                });
                client
            }
        };
        Ok(client)
    }

    async fn recycle(
        &self,
        client: &mut tokio_postgres::Client,
        _: &Metrics,
    ) -> RecycleResult<tokio_postgres::Error> {
        if client.is_closed() {
            return Err(RecycleError::message("connection closed"));
        }
        match self.recycle {
            Recycle::Strict => {
                // Separate statements: DISCARD ALL refuses to run inside a (multi-statement implicit)
                // transaction.
                client.batch_execute("ROLLBACK").await?;
                client.batch_execute("DISCARD ALL").await?;
            }
            Recycle::Spin => {
                client
                    .batch_execute(
                        "CLOSE ALL; SET SESSION AUTHORIZATION DEFAULT; RESET ALL; UNLISTEN *; \
                         SELECT pg_advisory_unlock_all(); DISCARD TEMP; DISCARD SEQUENCES;",
                    )
                    .await?;
            }
        }
        Ok(())
    }
}

/// The pools, shared by every instance of every component (keyed by the address the guest asked for
/// and the CA it gave).
pub struct PgPools {
    pools: Mutex<HashMap<(String, Option<String>), managed::Pool<PgManager>>>,
    recycle: Recycle,
}

impl Default for PgPools {
    fn default() -> Self {
        Self {
            pools: Mutex::default(),
            recycle: Recycle::from_env(),
        }
    }
}

impl PgPools {
    fn pool(
        &self,
        address: &str,
        ca_root: Option<&str>,
    ) -> Result<managed::Pool<PgManager>, Error> {
        let key = (address.to_owned(), ca_root.map(str::to_owned));
        let mut pools = self.pools.lock().unwrap();
        if let Some(p) = pools.get(&key) {
            return Ok(p.clone());
        }
        let config: tokio_postgres::Config = address
            .parse()
            .map_err(|e| Error::ConnectionFailed(format!("invalid address: {e}")))?;
        let tls = match config.get_ssl_mode() {
            tokio_postgres::config::SslMode::Disable => None,
            _ => Some(tls_connector(ca_root)?),
        };
        let pool = managed::Pool::builder(PgManager {
            config,
            recycle: self.recycle,
            tls,
        })
        .max_size(*MAX_CONNECTIONS.get().unwrap_or(&DEFAULT_POOL_SIZE))
        .wait_timeout(Some(CHECKOUT_TIMEOUT))
        .create_timeout(Some(CHECKOUT_TIMEOUT))
        .runtime(deadpool::Runtime::Tokio1)
        .build()
        .map_err(|e| Error::Other(e.to_string()))?;
        pools.insert(key, pool.clone());
        Ok(pool)
    }
}

/// Every host the address names must be allowed as `postgres://host:port`.
fn check_allowed(state: &State, address: &str) -> Result<(), Error> {
    let config: tokio_postgres::Config = address
        .parse()
        .map_err(|e| Error::ConnectionFailed(format!("invalid address: {e}")))?;
    let ports = config.get_ports();
    let hosts = config.get_hosts();
    if hosts.is_empty() {
        return Err(Error::ConnectionFailed("address names no host".into()));
    }
    for (i, host) in hosts.iter().enumerate() {
        let host = match host {
            tokio_postgres::config::Host::Tcp(h) => h.clone(),
            #[cfg(unix)]
            tokio_postgres::config::Host::Unix(_) => {
                return Err(Error::ConnectionFailed(
                    "unix sockets are not allowed".into(),
                ));
            }
        };
        let port = ports.get(i).or(ports.first()).copied().unwrap_or(5432);
        if !state
            .component
            .allowed_hosts
            .allows("postgres", &host, Some(port))
        {
            return Err(Error::ConnectionFailed(format!(
                "address postgres://{host}:{port} is not permitted: add it to the component's allowed_outbound_hosts"
            )));
        }
    }
    Ok(())
}

async fn open(
    pools: Arc<PgPools>,
    address: String,
    ca_root: Option<String>,
) -> Result<PgConnection, Error> {
    let pool = pools.pool(&address, ca_root.as_deref())?;
    let client = pool
        .get()
        .await
        .map_err(|e| Error::ConnectionFailed(e.to_string()))?;
    Ok(PgConnection {
        client: Arc::new(client),
    })
}

fn client_of(
    state: &mut State,
    conn: &Resource<PgConnection>,
) -> wasmtime::Result<Arc<Object<PgManager>>> {
    Ok(state.table.get(conn)?.client.clone())
}

impl pg::Host for State {}

impl pg::HostConnectionBuilder for State {
    async fn new(&mut self, address: String) -> wasmtime::Result<Resource<PgConnectionBuilder>> {
        Ok(self.table.push(PgConnectionBuilder {
            address,
            ca_root: None,
        })?)
    }

    async fn set_ca_root(
        &mut self,
        builder: Resource<PgConnectionBuilder>,
        certificate: String,
    ) -> wasmtime::Result<Result<(), Error>> {
        // Refused now if it is not a certificate, as Spin does.
        if let Err(e) = tls_connector(Some(&certificate)) {
            return Ok(Err(e));
        }
        self.table.get_mut(&builder)?.ca_root = Some(certificate);
        Ok(Ok(()))
    }

    async fn build(
        &mut self,
        builder: Resource<PgConnectionBuilder>,
    ) -> wasmtime::Result<Result<Resource<PgConnection>, Error>> {
        let b = self.table.get(&builder)?;
        let (address, ca_root) = (b.address.clone(), b.ca_root.clone());
        if let Err(e) = check_allowed(self, &address) {
            return Ok(Err(e));
        }
        match open(self.services.pg.clone(), address, ca_root).await {
            Ok(c) => Ok(Ok(self.table.push(c)?)),
            Err(e) => Ok(Err(e)),
        }
    }

    async fn drop(&mut self, builder: Resource<PgConnectionBuilder>) -> wasmtime::Result<()> {
        self.table.delete(builder)?;
        Ok(())
    }
}

impl<T: Send> pg::HostConnectionBuilderWithStore<T> for HasSelf<State> {
    async fn build_async(
        accessor: &Accessor<T, Self>,
        builder: Resource<PgConnectionBuilder>,
    ) -> wasmtime::Result<Result<Resource<PgConnection>, Error>> {
        type Checked = (String, Option<String>, Arc<PgPools>);
        let checked = accessor.with(|mut access| -> wasmtime::Result<Result<Checked, Error>> {
            let state = access.get();
            let b = state.table.get(&builder)?;
            let (address, ca_root) = (b.address.clone(), b.ca_root.clone());
            Ok(check_allowed(state, &address)
                .map(|()| (address, ca_root, state.services.pg.clone())))
        })?;
        let (address, ca_root, pools) = match checked {
            Ok(v) => v,
            Err(e) => return Ok(Err(e)),
        };
        match open(pools, address, ca_root).await {
            Ok(c) => Ok(Ok(accessor.with(|mut access| access.get().table.push(c))?)),
            Err(e) => Ok(Err(e)),
        }
    }
}

impl pg::HostConnection for State {
    async fn open(
        &mut self,
        address: String,
    ) -> wasmtime::Result<Result<Resource<PgConnection>, Error>> {
        if let Err(e) = check_allowed(self, &address) {
            return Ok(Err(e));
        }
        match open(self.services.pg.clone(), address, None).await {
            Ok(c) => Ok(Ok(self.table.push(c)?)),
            Err(e) => Ok(Err(e)),
        }
    }

    async fn query(
        &mut self,
        conn: Resource<PgConnection>,
        statement: String,
        params: Vec<ParameterValue>,
    ) -> wasmtime::Result<Result<RowSet, Error>> {
        let client = client_of(self, &conn)?;
        Ok(run_query(&client, &statement, params).await)
    }

    async fn execute(
        &mut self,
        conn: Resource<PgConnection>,
        statement: String,
        params: Vec<ParameterValue>,
    ) -> wasmtime::Result<Result<u64, Error>> {
        let client = client_of(self, &conn)?;
        Ok(run_execute(&client, &statement, params).await)
    }

    async fn drop(&mut self, conn: Resource<PgConnection>) -> wasmtime::Result<()> {
        self.table.delete(conn)?;
        Ok(())
    }
}

impl<T: Send> pg::HostConnectionWithStore<T> for HasSelf<State> {
    async fn open_async(
        accessor: &Accessor<T, Self>,
        address: String,
    ) -> wasmtime::Result<Result<Resource<PgConnection>, Error>> {
        let checked = accessor.with(|mut access| {
            let state = access.get();
            check_allowed(state, &address).map(|()| state.services.pg.clone())
        });
        let pools = match checked {
            Ok(p) => p,
            Err(e) => return Ok(Err(e)),
        };
        match open(pools, address, None).await {
            Ok(c) => Ok(Ok(accessor.with(|mut access| access.get().table.push(c))?)),
            Err(e) => Ok(Err(e)),
        }
    }

    async fn query_async(
        accessor: &Accessor<T, Self>,
        conn: Resource<PgConnection>,
        statement: String,
        params: Vec<ParameterValue>,
    ) -> wasmtime::Result<
        Result<
            (
                Vec<Column>,
                StreamReader<Vec<DbValue>>,
                FutureReader<Result<(), Error>>,
            ),
            Error,
        >,
    > {
        let client = accessor.with(|mut access| client_of(access.get(), &conn))?;
        let RowSet { columns, rows } = match run_query(&client, &statement, params).await {
            Ok(set) => set,
            Err(e) => return Ok(Err(e)),
        };
        type Readers = (StreamReader<Vec<DbValue>>, FutureReader<Result<(), Error>>);
        let (rows, done) = accessor.with(|mut access| -> wasmtime::Result<Readers> {
            let rows = StreamReader::new(&mut access, rows)?;
            let done = FutureReader::new(&mut access, async {
                wasmtime::Result::<Result<(), Error>>::Ok(Ok(()))
            })?;
            Ok((rows, done))
        })?;
        Ok(Ok((columns, rows, done)))
    }

    async fn execute_async(
        accessor: &Accessor<T, Self>,
        conn: Resource<PgConnection>,
        statement: String,
        params: Vec<ParameterValue>,
    ) -> wasmtime::Result<Result<u64, Error>> {
        let client = accessor.with(|mut access| client_of(access.get(), &conn))?;
        Ok(run_execute(&client, &statement, params).await)
    }
}

async fn run_execute(
    client: &tokio_postgres::Client,
    statement: &str,
    params: Vec<ParameterValue>,
) -> Result<u64, Error> {
    let params: Vec<Param> = params.into_iter().map(Param).collect();
    let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p as &(dyn ToSql + Sync)).collect();
    client.execute(statement, &refs).await.map_err(query_error)
}

async fn run_query(
    client: &tokio_postgres::Client,
    statement: &str,
    params: Vec<ParameterValue>,
) -> Result<RowSet, Error> {
    let params: Vec<Param> = params.into_iter().map(Param).collect();
    let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p as &(dyn ToSql + Sync)).collect();
    let stmt = client.prepare(statement).await.map_err(query_error)?;
    let columns = stmt
        .columns()
        .iter()
        .map(|c| Column {
            name: c.name().to_string(),
            data_type: data_type(c.type_()),
        })
        .collect();
    let rows = client.query(&stmt, &refs).await.map_err(query_error)?;
    let rows = rows
        .iter()
        .map(convert_row)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(RowSet { columns, rows })
}

fn query_error(e: tokio_postgres::Error) -> Error {
    match e.as_db_error() {
        Some(db) => Error::QueryFailed(QueryError::DbError(DbError {
            as_text: e.to_string(),
            severity: db.severity().to_string(),
            code: db.code().code().to_string(),
            message: db.message().to_string(),
            detail: db.detail().map(str::to_string),
            extras: [
                ("hint", db.hint()),
                ("schema", db.schema()),
                ("table", db.table()),
                ("column", db.column()),
                ("constraint", db.constraint()),
            ]
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| (k.to_string(), v.to_string())))
            .collect(),
        })),
        None if e.is_closed() => Error::ConnectionFailed(e.to_string()),
        None => Error::QueryFailed(QueryError::Text(e.to_string())),
    }
}

fn is_text(ty: &Type) -> bool {
    matches!(
        *ty,
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::UNKNOWN
    ) || ty.name() == "citext"
        || matches!(ty.kind(), Kind::Enum(_))
}

fn data_type(ty: &Type) -> DbDataType {
    match *ty {
        Type::BOOL => DbDataType::Boolean,
        Type::CHAR => DbDataType::Int8,
        Type::INT2 => DbDataType::Int16,
        Type::INT4 => DbDataType::Int32,
        Type::INT8 => DbDataType::Int64,
        Type::FLOAT4 => DbDataType::Floating32,
        Type::FLOAT8 => DbDataType::Floating64,
        Type::BYTEA => DbDataType::Binary,
        Type::DATE => DbDataType::Date,
        Type::TIME => DbDataType::Time,
        Type::TIMESTAMP | Type::TIMESTAMPTZ => DbDataType::Datetime,
        Type::UUID => DbDataType::Uuid,
        Type::JSON | Type::JSONB => DbDataType::Jsonb,
        Type::INT4_ARRAY => DbDataType::ArrayInt32,
        Type::INT8_ARRAY => DbDataType::ArrayInt64,
        Type::TEXT_ARRAY | Type::VARCHAR_ARRAY => DbDataType::ArrayStr,
        _ if is_text(ty) => DbDataType::Str,
        _ => DbDataType::Other(ty.name().to_string()),
    }
}

/// Raw column bytes, for types we pass through as text or as `unsupported`.
struct Raw(Vec<u8>);

impl<'a> FromSql<'a> for Raw {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(Raw(raw.to_vec()))
    }
    fn accepts(_: &Type) -> bool {
        true
    }
}

fn datetime_tuple(dt: NaiveDateTime) -> (i32, u8, u8, u8, u8, u8, u32) {
    (
        dt.year(),
        dt.month() as u8,
        dt.day() as u8,
        dt.hour() as u8,
        dt.minute() as u8,
        dt.second() as u8,
        dt.nanosecond(),
    )
}

fn convert_row(row: &tokio_postgres::Row) -> Result<Vec<DbValue>, Error> {
    (0..row.len()).map(|i| convert_value(row, i)).collect()
}

fn convert_value(row: &tokio_postgres::Row, i: usize) -> Result<DbValue, Error> {
    fn get<'a, T: FromSql<'a>>(row: &'a tokio_postgres::Row, i: usize) -> Result<Option<T>, Error> {
        row.try_get::<_, Option<T>>(i)
            .map_err(|e| Error::ValueConversionFailed(e.to_string()))
    }
    let ty = row.columns()[i].type_().clone();
    let value = match ty {
        Type::BOOL => get::<bool>(row, i)?.map(DbValue::Boolean),
        Type::CHAR => get::<i8>(row, i)?.map(DbValue::Int8),
        Type::INT2 => get::<i16>(row, i)?.map(DbValue::Int16),
        Type::INT4 => get::<i32>(row, i)?.map(DbValue::Int32),
        Type::INT8 => get::<i64>(row, i)?.map(DbValue::Int64),
        Type::FLOAT4 => get::<f32>(row, i)?.map(DbValue::Floating32),
        Type::FLOAT8 => get::<f64>(row, i)?.map(DbValue::Floating64),
        Type::BYTEA => get::<Vec<u8>>(row, i)?.map(DbValue::Binary),
        Type::UUID => get::<uuid::Uuid>(row, i)?.map(|u| DbValue::Uuid(u.to_string())),
        Type::JSON | Type::JSONB => get::<serde_json::Value>(row, i)?
            .map(|v| DbValue::Jsonb(serde_json::to_vec(&v).unwrap_or_default())),
        Type::TIMESTAMPTZ => {
            get::<DateTime<Utc>>(row, i)?.map(|d| DbValue::Datetime(datetime_tuple(d.naive_utc())))
        }
        Type::TIMESTAMP => {
            get::<NaiveDateTime>(row, i)?.map(|d| DbValue::Datetime(datetime_tuple(d)))
        }
        Type::DATE => get::<NaiveDate>(row, i)?
            .map(|d| DbValue::Date((d.year(), d.month() as u8, d.day() as u8))),
        Type::TIME => get::<NaiveTime>(row, i)?.map(|t| {
            DbValue::Time((
                t.hour() as u8,
                t.minute() as u8,
                t.second() as u8,
                t.nanosecond(),
            ))
        }),
        Type::INT4_ARRAY => get::<Vec<Option<i32>>>(row, i)?.map(DbValue::ArrayInt32),
        Type::INT8_ARRAY => get::<Vec<Option<i64>>>(row, i)?.map(DbValue::ArrayInt64),
        Type::TEXT_ARRAY | Type::VARCHAR_ARRAY => {
            get::<Vec<Option<String>>>(row, i)?.map(DbValue::ArrayStr)
        }
        Type::INET => get::<std::net::IpAddr>(row, i)?.map(|ip| DbValue::Str(ip.to_string())),
        ref t if is_text(t) => get::<Raw>(row, i)?
            .map(|r| String::from_utf8(r.0).map(DbValue::Str))
            .transpose()
            .map_err(|e| Error::ValueConversionFailed(e.to_string()))?,
        _ => get::<Raw>(row, i)?.map(|r| DbValue::Unsupported(r.0)),
    };
    Ok(value.unwrap_or(DbValue::DbNull))
}

/// A guest parameter, encoded according to the type Postgres inferred for its placeholder.
#[derive(Debug)]
struct Param(ParameterValue);

type BoxError = Box<dyn std::error::Error + Sync + Send>;

fn naive_datetime(t: &(i32, u8, u8, u8, u8, u8, u32)) -> Result<NaiveDateTime, BoxError> {
    let date = NaiveDate::from_ymd_opt(t.0, t.1.into(), t.2.into()).ok_or("invalid date")?;
    let time = NaiveTime::from_hms_nano_opt(t.3.into(), t.4.into(), t.5.into(), t.6)
        .ok_or("invalid time")?;
    Ok(NaiveDateTime::new(date, time))
}

impl ToSql for Param {
    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
        use ParameterValue as P;
        match &self.0 {
            P::Boolean(v) => v.to_sql_checked(ty, out),
            P::Int8(v) => v.to_sql_checked(ty, out),
            P::Int16(v) => v.to_sql_checked(ty, out),
            P::Int32(v) => v.to_sql_checked(ty, out),
            P::Int64(v) => v.to_sql_checked(ty, out),
            P::Floating32(v) => v.to_sql_checked(ty, out),
            P::Floating64(v) => v.to_sql_checked(ty, out),
            P::Str(v) if is_text(ty) => {
                out.extend_from_slice(v.as_bytes());
                Ok(IsNull::No)
            }
            P::Str(v) => v.to_sql_checked(ty, out),
            P::Binary(v) => v.to_sql_checked(ty, out),
            P::Uuid(v) => uuid::Uuid::parse_str(v)?.to_sql_checked(ty, out),
            P::Jsonb(v) => serde_json::from_slice::<serde_json::Value>(v)?.to_sql_checked(ty, out),
            P::Date((y, m, d)) => NaiveDate::from_ymd_opt(*y, (*m).into(), (*d).into())
                .ok_or("invalid date")?
                .to_sql_checked(ty, out),
            P::Time((h, m, s, ns)) => {
                NaiveTime::from_hms_nano_opt((*h).into(), (*m).into(), (*s).into(), *ns)
                    .ok_or("invalid time")?
                    .to_sql_checked(ty, out)
            }
            P::Datetime(t) => {
                let naive = naive_datetime(t)?;
                if *ty == Type::TIMESTAMPTZ {
                    naive.and_utc().to_sql_checked(ty, out)
                } else {
                    naive.to_sql_checked(ty, out)
                }
            }
            P::Timestamp(secs) => {
                let dt =
                    DateTime::<Utc>::from_timestamp(*secs, 0).ok_or("timestamp out of range")?;
                if *ty == Type::TIMESTAMPTZ {
                    dt.to_sql_checked(ty, out)
                } else {
                    dt.naive_utc().to_sql_checked(ty, out)
                }
            }
            P::ArrayInt32(v) => v.to_sql_checked(ty, out),
            P::ArrayInt64(v) => v.to_sql_checked(ty, out),
            P::ArrayStr(v) => v.to_sql_checked(ty, out),
            P::DbNull => Ok(IsNull::Yes),
            P::Decimal(_)
            | P::ArrayDecimal(_)
            | P::RangeInt32(_)
            | P::RangeInt64(_)
            | P::RangeDecimal(_)
            | P::Interval(_) => Err(format!(
                "{} parameters are not supported by the local runner",
                param_kind(&self.0)
            )
            .into()),
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

fn param_kind(p: &ParameterValue) -> &'static str {
    match p {
        ParameterValue::Decimal(_) | ParameterValue::ArrayDecimal(_) => "decimal",
        ParameterValue::Interval(_) => "interval",
        _ => "range",
    }
}
