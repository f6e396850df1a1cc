//! Cluster-wide roles and per-database grants: what must exist before the first migration runs.
//!
//! Roles are shared by every database of the cluster, so several runners (parallel test databases, two
//! deployments) may create or fix them at the same moment; per-database advisory locks cannot serialise
//! that. Every step is therefore idempotent and written to tolerate losing a race: creation swallows
//! "already exists", attributes are altered only when they differ, and a transient catalog conflict is
//! retried.

use std::time::Duration;

use tokio_postgres::{Client, error::SqlState};

use crate::{APP_ROLE, IDLE_IN_TRANSACTION_TIMEOUT, OWNER_ROLE, SCANNER_ROLE, quote_ident};

/// Failures of the bootstrap, each with the action an operator has to take.
#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    #[error("{0}")]
    Db(#[from] tokio_postgres::Error),
    #[error(
        "connected as `{user}`, which is neither a superuser nor a member of {OWNER_ROLE}; \
         run migrate with a superuser URL the first time (roles are created then)"
    )]
    NotPrivileged { user: String },
    #[error("role {role} is missing; run migrate once with a superuser URL to create it")]
    MissingRole { role: &'static str },
    #[error("role {role} is unsafe ({problem}); fix it as a superuser or rerun migrate as one")]
    UnsafeRole { role: &'static str, problem: String },
    #[error(
        "--app-password and --scanner-password need a superuser connection (only a superuser may set another role's password here)"
    )]
    PasswordNeedsSuperuser,
}

/// Whether the session user may create roles and fix their attributes.
pub async fn is_superuser(client: &Client) -> Result<bool, tokio_postgres::Error> {
    let row = client
        .query_one(
            "SELECT rolsuper FROM pg_roles WHERE rolname = session_user",
            &[],
        )
        .await?;
    Ok(row.get(0))
}

/// The login roles' passwords to set (unset: leave as they are).
#[derive(Debug, Clone, Copy, Default)]
pub struct Passwords<'a> {
    /// [`APP_ROLE`]'s.
    pub app: Option<&'a str>,
    /// [`SCANNER_ROLE`]'s.
    pub scanner: Option<&'a str>,
}

impl Passwords<'_> {
    /// Whether any password is to be set.
    pub fn any(&self) -> bool {
        self.app.is_some() || self.scanner.is_some()
    }
}

/// Creates [`OWNER_ROLE`], [`APP_ROLE`] and [`SCANNER_ROLE`] if missing and makes their attributes safe
/// (the two login roles also end a transaction left idle for [`IDLE_IN_TRANSACTION_TIMEOUT`]);
/// optionally sets the login roles' passwords (sent as SCRAM verifiers computed here, so the plaintext
/// never reaches the server's logs). Needs a superuser session (BYPASSRLS can only be granted by one).
pub async fn ensure_roles(client: &Client, passwords: Passwords<'_>) -> Result<(), BootstrapError> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        match ensure_roles_once(client, passwords).await {
            Err(BootstrapError::Db(e)) if attempt < 6 && is_transient_catalog_conflict(&e) => {
                tokio::time::sleep(Duration::from_millis(50 * attempt)).await;
            }
            other => return other,
        }
    }
}

fn is_transient_catalog_conflict(e: &tokio_postgres::Error) -> bool {
    match e.code() {
        Some(code) => {
            *code == SqlState::UNIQUE_VIOLATION
                || *code == SqlState::DUPLICATE_OBJECT
                || *code == SqlState::T_R_SERIALIZATION_FAILURE
                || *code == SqlState::T_R_DEADLOCK_DETECTED
                // "tuple concurrently updated": two sessions altering the same pg_authid row.
                || (*code == SqlState::INTERNAL_ERROR
                    && e.as_db_error().is_some_and(|d| d.message().contains("concurrently")))
        }
        None => false,
    }
}

/// Attributes of the two login roles: nothing beyond logging in.
const LOGIN_ONLY: &str = "LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE NOREPLICATION";

async fn ensure_roles_once(
    client: &Client,
    passwords: Passwords<'_>,
) -> Result<(), BootstrapError> {
    // The owner logs in nowhere (migrations SET ROLE to it). BYPASSRLS: its SECURITY DEFINER functions serve
    // the flows that run before a tenant is known (login, refresh, the cross-tenant scan queue).
    create_role_if_missing(client, OWNER_ROLE, "NOLOGIN BYPASSRLS").await?;
    create_role_if_missing(client, APP_ROLE, LOGIN_ONLY).await?;
    create_role_if_missing(client, SCANNER_ROLE, LOGIN_ONLY).await?;

    let owner = client
        .query_one(
            "SELECT rolbypassrls FROM pg_roles WHERE rolname = $1",
            &[&OWNER_ROLE],
        )
        .await?;
    if !owner.get::<_, bool>(0) {
        client
            .batch_execute(&format!("ALTER ROLE {OWNER_ROLE} BYPASSRLS"))
            .await?;
    }

    for role in [APP_ROLE, SCANNER_ROLE] {
        make_login_role_safe(client, role).await?;
    }
    check_app_role(client).await?;
    check_scanner_role(client).await?;

    for (role, password) in [(APP_ROLE, passwords.app), (SCANNER_ROLE, passwords.scanner)] {
        let Some(password) = password else { continue };
        let verifier = postgres_protocol::password::scram_sha_256(password.as_bytes());
        // The verifier is base64 and `$:` only; quoting it as a literal is safe.
        client
            .batch_execute(&format!(
                "ALTER ROLE {role} PASSWORD '{}'",
                verifier.replace('\'', "''")
            ))
            .await?;
    }
    Ok(())
}

/// A login role: no attribute beyond LOGIN, never able to `SET ROLE` to the owner (that would bypass
/// RLS and grants alike), and a session idle in a transaction ends after
/// [`IDLE_IN_TRANSACTION_TIMEOUT`].
async fn make_login_role_safe(client: &Client, role: &str) -> Result<(), BootstrapError> {
    let row = client
        .query_one(
            "SELECT rolcanlogin AND NOT rolsuper AND NOT rolbypassrls AND NOT rolcreatedb
                    AND NOT rolcreaterole AND NOT rolreplication,
                    coalesce((SELECT s.setconfig FROM pg_db_role_setting s
                              WHERE s.setrole = r.oid AND s.setdatabase = 0), '{}')
             FROM pg_roles r WHERE rolname = $1",
            &[&role],
        )
        .await?;
    if !row.get::<_, bool>(0) {
        client
            .batch_execute(&format!("ALTER ROLE {role} {LOGIN_ONLY}"))
            .await?;
    }
    let settings: Vec<String> = row.get(1);
    let wanted = format!("idle_in_transaction_session_timeout={IDLE_IN_TRANSACTION_TIMEOUT}");
    if !settings.contains(&wanted) {
        client
            .batch_execute(&format!(
                "ALTER ROLE {role} SET idle_in_transaction_session_timeout = '{IDLE_IN_TRANSACTION_TIMEOUT}'"
            ))
            .await?;
    }
    let direct = client
        .query_opt(
            "SELECT 1 FROM pg_auth_members m
             JOIN pg_roles r ON r.oid = m.roleid JOIN pg_roles u ON u.oid = m.member
             WHERE r.rolname = $1 AND u.rolname = $2",
            &[&OWNER_ROLE, &role],
        )
        .await?;
    if direct.is_some() {
        client
            .batch_execute(&format!("REVOKE {OWNER_ROLE} FROM {role}"))
            .await?;
    }
    Ok(())
}

async fn create_role_if_missing(
    client: &Client,
    role: &str,
    attributes: &str,
) -> Result<(), BootstrapError> {
    let exists = client
        .query_opt("SELECT 1 FROM pg_roles WHERE rolname = $1", &[&role])
        .await?
        .is_some();
    if exists {
        return Ok(());
    }
    // A concurrent runner may create it between the check and here: that is success, not failure.
    let sql = format!(
        "DO $$ BEGIN CREATE ROLE {} {attributes}; \
         EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$",
        quote_ident(role)
    );
    client.batch_execute(&sql).await?;
    Ok(())
}

/// Verifies (without changing anything) that the app role exists and cannot bypass RLS or become the owner.
pub async fn check_app_role(client: &Client) -> Result<(), BootstrapError> {
    check_login_role(client, APP_ROLE).await
}

/// Verifies (without changing anything) that the scanner role exists and cannot bypass RLS or become
/// the owner.
pub async fn check_scanner_role(client: &Client) -> Result<(), BootstrapError> {
    check_login_role(client, SCANNER_ROLE).await
}

async fn check_login_role(client: &Client, role: &'static str) -> Result<(), BootstrapError> {
    let row = client
        .query_opt(
            "SELECT rolsuper, rolbypassrls, rolcanlogin, pg_has_role(oid, $2::name, 'MEMBER')
             FROM pg_roles WHERE rolname = $1",
            &[&role, &OWNER_ROLE],
        )
        .await?;
    let Some(row) = row else {
        return Err(BootstrapError::MissingRole { role });
    };
    let mut problems = Vec::new();
    if row.get::<_, bool>(0) {
        problems.push("SUPERUSER");
    }
    if row.get::<_, bool>(1) {
        problems.push("BYPASSRLS");
    }
    if !row.get::<_, bool>(2) {
        problems.push("NOLOGIN");
    }
    if row.get::<_, bool>(3) {
        problems.push("member of the owner role");
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(BootstrapError::UnsafeRole {
            role,
            problem: problems.join(", "),
        })
    }
}

/// Prepares the connected database for the owner (superuser session): the owner owns schema `public` and
/// may create schemas (the `ops` monitoring schema); the app may connect and use temp tables; the
/// scanner may connect. Callers hold
/// the migration advisory lock, so concurrent runners on one database do not race on these catalog rows.
pub async fn prepare_database(client: &Client) -> Result<(), BootstrapError> {
    let db: String = client
        .query_one("SELECT current_database()", &[])
        .await?
        .get(0);
    let db = quote_ident(&db);
    let public_owner: String = client
        .query_one(
            "SELECT nspowner::regrole::text FROM pg_namespace WHERE nspname = 'public'",
            &[],
        )
        .await?
        .get(0);
    if public_owner != OWNER_ROLE {
        client
            .batch_execute(&format!("ALTER SCHEMA public OWNER TO {OWNER_ROLE}"))
            .await?;
    }
    let granted = client
        .query_one(
            "SELECT has_database_privilege($1, current_database(), 'CREATE')
                AND has_database_privilege($2, current_database(), 'CONNECT')
                AND has_database_privilege($3, current_database(), 'CONNECT')",
            &[&OWNER_ROLE, &APP_ROLE, &SCANNER_ROLE],
        )
        .await?;
    if !granted.get::<_, bool>(0) {
        client
            .batch_execute(&format!(
                "GRANT CONNECT, CREATE, TEMPORARY ON DATABASE {db} TO {OWNER_ROLE};
                 GRANT CONNECT, TEMPORARY ON DATABASE {db} TO {APP_ROLE};
                 GRANT CONNECT ON DATABASE {db} TO {SCANNER_ROLE};"
            ))
            .await?;
    }
    Ok(())
}

/// Checks a non-superuser session can act as the owner and that the roles look right; it cannot fix them.
pub async fn check_owner_session(client: &Client) -> Result<(), BootstrapError> {
    let row = client
        .query_one(
            "SELECT session_user::text,
                    EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1),
                    EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)
                        AND pg_has_role(session_user, $1::name, 'MEMBER')",
            &[&OWNER_ROLE],
        )
        .await?;
    let user: String = row.get(0);
    if !row.get::<_, bool>(1) {
        return Err(BootstrapError::MissingRole { role: OWNER_ROLE });
    }
    if !row.get::<_, bool>(2) {
        return Err(BootstrapError::NotPrivileged { user });
    }
    check_app_role(client).await?;
    check_scanner_role(client).await
}
