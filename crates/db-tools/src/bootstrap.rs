//! Cluster-wide roles and per-database grants: what must exist before the first migration runs.
//!
//! Roles are shared by every database of the cluster, so several runners (parallel test databases, two
//! deployments) may create or fix them at the same moment; per-database advisory locks cannot serialise
//! that. Every step is therefore idempotent and written to tolerate losing a race: creation swallows
//! "already exists", attributes are altered only when they differ, and a transient catalog conflict is
//! retried.

use std::time::Duration;

use tokio_postgres::{Client, error::SqlState};

use crate::{APP_ROLE, OWNER_ROLE, quote_ident};

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
    #[error("role {APP_ROLE} is unsafe ({problem}); fix it as a superuser or rerun migrate as one")]
    UnsafeAppRole { problem: String },
    #[error(
        "--app-password needs a superuser connection (only a superuser may set another role's password here)"
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

/// Creates [`OWNER_ROLE`] and [`APP_ROLE`] if missing and makes their attributes safe; optionally sets the
/// app role's password (sent as a SCRAM verifier computed here, so the plaintext never reaches the server's
/// logs). Needs a superuser session (BYPASSRLS can only be granted by one).
pub async fn ensure_roles(
    client: &Client,
    app_password: Option<&str>,
) -> Result<(), BootstrapError> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        match ensure_roles_once(client, app_password).await {
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

async fn ensure_roles_once(
    client: &Client,
    app_password: Option<&str>,
) -> Result<(), BootstrapError> {
    // The owner logs in nowhere (migrations SET ROLE to it). BYPASSRLS: its SECURITY DEFINER functions serve
    // the flows that run before a tenant is known (login, refresh, the cross-tenant scan queue).
    create_role_if_missing(client, OWNER_ROLE, "NOLOGIN BYPASSRLS").await?;
    create_role_if_missing(
        client,
        APP_ROLE,
        "LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE NOREPLICATION",
    )
    .await?;

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

    let app = client
        .query_one(
            "SELECT rolcanlogin AND NOT rolsuper AND NOT rolbypassrls AND NOT rolcreatedb
                    AND NOT rolcreaterole AND NOT rolreplication
             FROM pg_roles WHERE rolname = $1",
            &[&APP_ROLE],
        )
        .await?;
    if !app.get::<_, bool>(0) {
        client
            .batch_execute(&format!(
                "ALTER ROLE {APP_ROLE} LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE NOREPLICATION"
            ))
            .await?;
    }

    // The app must never be able to SET ROLE to the owner (that would bypass RLS and grants alike).
    let direct = client
        .query_opt(
            "SELECT 1 FROM pg_auth_members m
             JOIN pg_roles r ON r.oid = m.roleid JOIN pg_roles u ON u.oid = m.member
             WHERE r.rolname = $1 AND u.rolname = $2",
            &[&OWNER_ROLE, &APP_ROLE],
        )
        .await?;
    if direct.is_some() {
        client
            .batch_execute(&format!("REVOKE {OWNER_ROLE} FROM {APP_ROLE}"))
            .await?;
    }
    check_app_role(client).await?;

    if let Some(password) = app_password {
        let verifier = postgres_protocol::password::scram_sha_256(password.as_bytes());
        // The verifier is base64 and `$:` only; quoting it as a literal is safe.
        client
            .batch_execute(&format!(
                "ALTER ROLE {APP_ROLE} PASSWORD '{}'",
                verifier.replace('\'', "''")
            ))
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
    let row = client
        .query_opt(
            "SELECT rolsuper, rolbypassrls, rolcanlogin, pg_has_role(oid, $2::name, 'MEMBER')
             FROM pg_roles WHERE rolname = $1",
            &[&APP_ROLE, &OWNER_ROLE],
        )
        .await?;
    let Some(row) = row else {
        return Err(BootstrapError::MissingRole { role: APP_ROLE });
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
        Err(BootstrapError::UnsafeAppRole {
            problem: problems.join(", "),
        })
    }
}

/// Prepares the connected database for the owner (superuser session): the owner owns schema `public` and
/// may create schemas (the `ops` monitoring schema); the app may connect and use temp tables. Callers hold
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
                AND has_database_privilege($2, current_database(), 'CONNECT')",
            &[&OWNER_ROLE, &APP_ROLE],
        )
        .await?;
    if !granted.get::<_, bool>(0) {
        client
            .batch_execute(&format!(
                "GRANT CONNECT, CREATE, TEMPORARY ON DATABASE {db} TO {OWNER_ROLE};
                 GRANT CONNECT, TEMPORARY ON DATABASE {db} TO {APP_ROLE};"
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
    check_app_role(client).await
}
