//! The migration runner: versioned, ordered, checksummed SQL files applied one transaction each.
//!
//! # Where migrations come from
//! The SQL files in the workspace's `migrations/` directory are **embedded at build time** (see `build.rs`):
//! a `migrate` binary carries exactly the schema it was built and tested with, needs no checkout next to it,
//! and cannot pick up a half-edited working copy. [`load_dir`] (`migrate --dir`) exists for reviewing a
//! directory against a database and for tests that simulate an edited file; the embedded set is the default.
//!
//! # Rules
//! - Files are named `NNNN_name.sql`; the number is the version, applied in ascending order.
//! - Each file runs inside its own transaction together with its `schema_migrations` row, so a failing file
//!   leaves nothing behind. (So `CREATE INDEX CONCURRENTLY` and friends cannot be used in a migration.)
//! - Applying twice is a no-op: applied versions are skipped.
//! - An applied file whose SHA-256 changed is refused, naming the file: applied migrations are immutable;
//!   fixes go into a new file. A database that has a version this build does not know, or a new file
//!   numbered below the newest applied one, is refused too.
//! - Concurrent runners on one database are serialised by a session-level `pg_advisory_lock`, taken before
//!   the history is read.
//! - Migrations run as [`crate::OWNER_ROLE`] (`SET ROLE`), so every object is owned by it, never by the
//!   superuser that connected.

use std::{fmt, path::Path, time::Instant};

use sha2::{Digest, Sha256};
use tokio_postgres::{Client, Config, error::SqlState};

use crate::{OWNER_ROLE, bootstrap, connect, quote_ident};

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/embedded_migrations.rs"));
}

/// Arbitrary but fixed key of the advisory lock that serialises runners on one database.
const LOCK_KEY: i64 = 0x6174_7461_6368_6d69; // "attachmi"

/// One migration file.
#[derive(Clone, Debug)]
pub struct Migration {
    pub version: i64,
    /// The file name, e.g. `0003_email_core.sql`: what errors and the history table show.
    pub file_name: String,
    pub sql: String,
    /// Lowercase hex SHA-256 of the file's bytes.
    pub checksum: String,
}

impl Migration {
    /// Parses `NNNN_name.sql` and computes the checksum.
    pub fn new(file_name: &str, sql: impl Into<String>) -> Result<Self, MigrateError> {
        let bad = || MigrateError::BadFileName {
            file: file_name.to_string(),
        };
        let stem = file_name.strip_suffix(".sql").ok_or_else(bad)?;
        let (number, name) = stem.split_once('_').ok_or_else(bad)?;
        if number.is_empty()
            || !number.bytes().all(|b| b.is_ascii_digit())
            || name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        {
            return Err(bad());
        }
        let version = number.parse().map_err(|_| bad())?;
        let sql = sql.into();
        let checksum = hex::encode(Sha256::digest(sql.as_bytes()));
        Ok(Self {
            version,
            file_name: file_name.to_string(),
            sql,
            checksum,
        })
    }
}

/// The migrations embedded in this build, validated and sorted.
pub fn embedded() -> Vec<Migration> {
    let list = embedded::EMBEDDED
        .iter()
        .map(|(name, sql)| Migration::new(name, *sql))
        .collect::<Result<Vec<_>, _>>()
        .and_then(validate);
    // The set is fixed at build time and covered by tests; a bad file name is a build defect.
    list.expect("embedded migrations are valid")
}

/// Reads `*.sql` from a directory (other files are ignored), validated and sorted.
pub fn load_dir(dir: &Path) -> Result<Vec<Migration>, MigrateError> {
    let io = |e: std::io::Error| MigrateError::Io {
        path: dir.display().to_string(),
        message: e.to_string(),
    };
    let mut list = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let path = entry.map_err(io)?.path();
        if path.extension().is_none_or(|e| e != "sql") {
            continue;
        }
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();
        let sql = std::fs::read_to_string(&path).map_err(io)?;
        list.push(Migration::new(&name, sql)?);
    }
    validate(list)
}

fn validate(mut list: Vec<Migration>) -> Result<Vec<Migration>, MigrateError> {
    list.sort_by_key(|m| m.version);
    for pair in list.windows(2) {
        if pair[0].version == pair[1].version {
            return Err(MigrateError::DuplicateVersion {
                first: pair[0].file_name.clone(),
                second: pair[1].file_name.clone(),
            });
        }
    }
    Ok(list)
}

/// Everything that stops a migration run, worded for the operator reading it.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error("invalid database URL: {0}")]
    Url(String),
    #[error("cannot connect to {target}: {source}")]
    Connect {
        target: String,
        source: crate::ConnectError,
    },
    #[error("{0}")]
    Bootstrap(#[from] bootstrap::BootstrapError),
    #[error("database error: {0}")]
    Db(#[from] tokio_postgres::Error),
    #[error("cannot read {path}: {message}")]
    Io { path: String, message: String },
    #[error("migration file name `{file}` does not match NNNN_name.sql (lowercase name)")]
    BadFileName { file: String },
    #[error("migrations {first} and {second} have the same version number")]
    DuplicateVersion { first: String, second: String },
    #[error(
        "migration {file} was edited after it was applied to this database \
         (applied sha256 {applied}, file sha256 {current}); applied migrations are immutable: \
         restore the file and put the change in a new migration"
    )]
    Edited {
        file: String,
        applied: String,
        current: String,
    },
    #[error(
        "this database has migration {version} ({file}) applied, which this build does not know; \
         refusing to run an older schema against a newer database"
    )]
    UnknownApplied { version: i64, file: String },
    #[error(
        "migration {file} is numbered below the newest applied migration {newest}; \
         renumber it after {newest} (migrations only ever append)"
    )]
    OutOfOrder { file: String, newest: String },
    #[error("migration {file} failed: {detail}")]
    Failed { file: String, detail: String },
}

/// What a run did.
#[derive(Debug, Default)]
pub struct Report {
    pub database: String,
    /// File names applied by this run, in order.
    pub applied: Vec<String>,
    /// How many were already applied before this run.
    pub already_applied: usize,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "database {} is current: {} migration(s) applied now, {} already applied",
            self.database,
            self.applied.len(),
            self.already_applied
        )
    }
}

/// Options of [`migrate`].
pub struct Options {
    /// Create the database (as the owner role) when it does not exist.
    pub create_db: bool,
    /// Set the app role's password (superuser only).
    pub app_password: Option<String>,
    /// Set the scanner role's password (superuser only).
    pub scanner_password: Option<String>,
    pub migrations: Vec<Migration>,
}

impl Options {
    /// The passwords to set.
    pub fn passwords(&self) -> bootstrap::Passwords<'_> {
        bootstrap::Passwords {
            app: self.app_password.as_deref(),
            scanner: self.scanner_password.as_deref(),
        }
    }
}

/// Brings the database named by `database_url` to the newest migration: optionally creates it, makes sure
/// the roles exist (superuser session) or are usable (owner session), then applies pending migrations.
pub async fn migrate(database_url: &str, options: Options) -> Result<Report, MigrateError> {
    let config: Config = database_url
        .parse()
        .map_err(|e: tokio_postgres::Error| MigrateError::Url(e.to_string()))?;
    let db_name = config
        .get_dbname()
        .map(str::to_string)
        .unwrap_or_else(|| config.get_user().unwrap_or("postgres").to_string());

    if options.create_db {
        create_database_if_missing(&config, &db_name, options.passwords()).await?;
    }

    let mut client = connect(&config)
        .await
        .map_err(|source| MigrateError::Connect {
            target: format!("database {db_name}"),
            source,
        })?;

    client
        .query_one("SELECT pg_advisory_lock($1)", &[&LOCK_KEY])
        .await?;
    let result = async {
        if bootstrap::is_superuser(&client).await? {
            bootstrap::ensure_roles(&client, options.passwords()).await?;
            bootstrap::prepare_database(&client).await?;
        } else {
            if options.passwords().any() {
                return Err(bootstrap::BootstrapError::PasswordNeedsSuperuser.into());
            }
            bootstrap::check_owner_session(&client).await?;
        }
        client
            .batch_execute(&format!("SET ROLE {OWNER_ROLE}"))
            .await?;
        apply(&mut client, &options.migrations).await
    }
    .await;
    // Closing the session would release the lock too; unlocking explicitly keeps a pooled caller honest.
    let _ = client.batch_execute("RESET ROLE").await;
    let _ = client
        .query_one("SELECT pg_advisory_unlock($1)", &[&LOCK_KEY])
        .await;
    result
}

/// Creates the database owned by the owner role, from the server's maintenance database `postgres`.
async fn create_database_if_missing(
    config: &Config,
    db_name: &str,
    passwords: bootstrap::Passwords<'_>,
) -> Result<(), MigrateError> {
    let mut maintenance = config.clone();
    maintenance.dbname("postgres");
    let client = connect(&maintenance)
        .await
        .map_err(|source| MigrateError::Connect {
            target: "maintenance database postgres".into(),
            source,
        })?;
    let exists = client
        .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&db_name])
        .await?
        .is_some();
    if exists {
        return Ok(());
    }
    // OWNER needs the role to exist; creating roles needs a superuser, which CREATE DATABASE OWNER <other role>
    // effectively needs as well.
    bootstrap::ensure_roles(&client, passwords).await?;
    match client
        .batch_execute(&format!(
            "CREATE DATABASE {} OWNER {OWNER_ROLE}",
            quote_ident(db_name)
        ))
        .await
    {
        Ok(()) => Ok(()),
        // Another runner created it meanwhile: fine, the advisory lock serialises the rest.
        Err(e) if e.code() == Some(&SqlState::DUPLICATE_DATABASE) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Applies pending migrations on a session that already acts as the owner and holds the advisory lock.
/// Public for tests that drive the runner on their own connection.
pub async fn apply(client: &mut Client, migrations: &[Migration]) -> Result<Report, MigrateError> {
    let database: String = client
        .query_one("SELECT current_database()", &[])
        .await?
        .get(0);
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS public.schema_migrations (
                 version     bigint PRIMARY KEY,
                 file_name   text NOT NULL,
                 checksum    text NOT NULL,
                 applied_at  bigint NOT NULL DEFAULT floor(extract(epoch FROM now()) * 1000)::bigint,
                 duration_ms bigint NOT NULL
             )",
        )
        .await?;

    let applied: Vec<(i64, String, String)> = client
        .query(
            "SELECT version, file_name, checksum FROM public.schema_migrations ORDER BY version",
            &[],
        )
        .await?
        .into_iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();

    for (version, file_name, checksum) in &applied {
        match migrations.iter().find(|m| m.version == *version) {
            None => {
                return Err(MigrateError::UnknownApplied {
                    version: *version,
                    file: file_name.clone(),
                });
            }
            Some(m) if &m.checksum != checksum => {
                return Err(MigrateError::Edited {
                    file: m.file_name.clone(),
                    applied: checksum.clone(),
                    current: m.checksum.clone(),
                });
            }
            Some(_) => {}
        }
    }

    let newest = applied.last().map(|(v, f, _)| (*v, f.clone()));
    let pending: Vec<&Migration> = migrations
        .iter()
        .filter(|m| !applied.iter().any(|(v, _, _)| *v == m.version))
        .collect();
    if let (Some((newest_version, newest_file)), Some(first)) = (&newest, pending.first())
        && first.version < *newest_version
    {
        return Err(MigrateError::OutOfOrder {
            file: first.file_name.clone(),
            newest: newest_file.clone(),
        });
    }

    let mut report = Report {
        database,
        applied: Vec::new(),
        already_applied: applied.len(),
    };
    for m in pending {
        let started = Instant::now();
        let tx = client.transaction().await?;
        if let Err(e) = tx.batch_execute(&m.sql).await {
            return Err(MigrateError::Failed {
                file: m.file_name.clone(),
                detail: describe_sql_error(&e, &m.sql),
            });
        }
        let duration_ms = started.elapsed().as_millis() as i64;
        tx.execute(
            "INSERT INTO public.schema_migrations (version, file_name, checksum, duration_ms) VALUES ($1, $2, $3, $4)",
            &[&m.version, &m.file_name, &m.checksum, &duration_ms],
        )
        .await?;
        tx.commit().await?;
        report.applied.push(m.file_name.clone());
    }
    Ok(report)
}

/// Postgres' message, SQLSTATE and the line of the file it points at, when it points at one.
fn describe_sql_error(e: &tokio_postgres::Error, sql: &str) -> String {
    let Some(db) = e.as_db_error() else {
        return e.to_string();
    };
    let mut out = format!("{} (SQLSTATE {})", db.message(), db.code().code());
    if let Some(tokio_postgres::error::ErrorPosition::Original(pos)) = db.position() {
        // The position counts characters, 1-based, from the start of the batch.
        let line = sql
            .chars()
            .take(*pos as usize)
            .filter(|c| *c == '\n')
            .count()
            + 1;
        out.push_str(&format!(" at line {line}"));
    }
    if let Some(detail) = db.detail() {
        out.push_str(&format!("; {detail}"));
    }
    if let Some(wh) = db.where_() {
        out.push_str(&format!("; {wh}"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_are_parsed_strictly() {
        let m = Migration::new("0003_email_core.sql", "SELECT 1").unwrap();
        assert_eq!(m.version, 3);
        assert_eq!(m.checksum, hex::encode(Sha256::digest(b"SELECT 1")));
        for bad in [
            "3.sql",
            "0003.sql",
            "0003_.sql",
            "abcd_x.sql",
            "0003_Email.sql",
            "0003_x.txt",
            "_x.sql",
        ] {
            assert!(Migration::new(bad, "").is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn duplicate_versions_are_refused() {
        let list = vec![
            Migration::new("0001_a.sql", "").unwrap(),
            Migration::new("0001_b.sql", "").unwrap(),
        ];
        assert!(matches!(
            validate(list),
            Err(MigrateError::DuplicateVersion { .. })
        ));
    }

    #[test]
    fn embedded_set_is_sorted_and_complete() {
        let list = embedded();
        assert!(!list.is_empty());
        assert!(list.windows(2).all(|w| w[0].version < w[1].version));
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../migrations");
        let on_disk = load_dir(&dir).unwrap();
        assert_eq!(
            list.iter()
                .map(|m| (&m.file_name, &m.checksum))
                .collect::<Vec<_>>(),
            on_disk
                .iter()
                .map(|m| (&m.file_name, &m.checksum))
                .collect::<Vec<_>>()
        );
    }
}
