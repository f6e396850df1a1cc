//! Test harness: a fresh, randomly named database per test on the real Postgres (`$DATABASE_ADMIN_URL`,
//! default postgres://postgres@127.0.0.1:5432/postgres), migrated with the embedded migrations, dropped when
//! the handle goes out of scope (also when the test panics).
#![allow(dead_code)]

use db_tools::{APP_ROLE, SCANNER_ROLE, TENANT_GUC, admin_url, connect, migrations};
use rand::RngCore;
use tokio_postgres::{Client, Config, GenericClient};
use uuid::Uuid;

/// The app role's password when the server does not trust loopback connections.
pub fn app_password() -> Option<String> {
    std::env::var("ATTACHMENTS_APP_PASSWORD")
        .ok()
        .filter(|s| !s.is_empty())
}

/// The scanner role's password when the server does not trust loopback connections.
pub fn scanner_password() -> Option<String> {
    std::env::var("ATTACHMENTS_SCANNER_PASSWORD")
        .ok()
        .filter(|s| !s.is_empty())
}

pub struct TestDb {
    pub name: String,
    /// Superuser (or whatever the admin URL names) on the test database.
    pub admin_config: Config,
    /// attachments_app on the test database.
    pub app_config: Config,
    /// attachments_scanner on the test database.
    pub scanner_config: Config,
    /// Superuser on the maintenance database, for the final DROP.
    maintenance: Config,
}

impl TestDb {
    /// A fresh database that does not exist yet (nothing created).
    pub fn fresh_name() -> (String, Config, Config) {
        let base: Config = admin_url(None).parse().expect("DATABASE_ADMIN_URL");
        let mut bytes = [0u8; 6];
        rand::rng().fill_bytes(&mut bytes);
        let name = format!("dbtools_test_{}", hex::encode(bytes));
        let mut admin = base.clone();
        admin.dbname(&name);
        let mut maintenance = base;
        maintenance.dbname("postgres");
        (name, admin, maintenance)
    }

    /// Creates an empty database (no migrations) through the runner's --create-db path... minus migrations.
    pub async fn empty() -> Self {
        let (name, admin_config, maintenance) = Self::fresh_name();
        let client = connect(&maintenance).await.expect("connect maintenance db");
        client
            .batch_execute(&format!("CREATE DATABASE {}", db_tools::quote_ident(&name)))
            .await
            .expect("create test database");
        let mut app_config = admin_config.clone();
        app_config.user(APP_ROLE);
        // Trust auth in dev; elsewhere the password migrate set (tests pass the same variable to migrate).
        app_config.password(app_password().unwrap_or_default());
        let mut scanner_config = admin_config.clone();
        scanner_config.user(SCANNER_ROLE);
        scanner_config.password(scanner_password().unwrap_or_default());
        Self {
            name,
            admin_config,
            app_config,
            scanner_config,
            maintenance,
        }
    }

    /// Takes over cleanup (and URL building) for a database that a test creates itself.
    pub fn adopt(name: String) -> Self {
        let (_, _, maintenance) = Self::fresh_name();
        let base: Config = admin_url(None).parse().expect("DATABASE_ADMIN_URL");
        let mut admin_config = base;
        admin_config.dbname(&name);
        let mut app_config = admin_config.clone();
        app_config.user(APP_ROLE);
        app_config.password(app_password().unwrap_or_default());
        let mut scanner_config = admin_config.clone();
        scanner_config.user(SCANNER_ROLE);
        scanner_config.password(scanner_password().unwrap_or_default());
        Self {
            name,
            admin_config,
            app_config,
            scanner_config,
            maintenance,
        }
    }

    /// A database with every embedded migration applied.
    pub async fn migrated() -> Self {
        let db = Self::empty().await;
        migrations::migrate(
            &db.url(),
            migrations::Options {
                create_db: false,
                app_password: app_password(),
                scanner_password: scanner_password(),
                migrations: migrations::embedded(),
            },
        )
        .await
        .expect("migrate test database");
        db
    }

    /// postgres:// URL of the admin connection to this database.
    pub fn url(&self) -> String {
        let base = admin_url(None);
        // Replace the path (database name) of the admin URL, keeping any query string.
        let (head, query) = match base.split_once('?') {
            Some((h, q)) => (h.to_string(), format!("?{q}")),
            None => (base.clone(), String::new()),
        };
        let scheme_end = head.find("://").map(|i| i + 3).unwrap_or(0);
        let host_end = head[scheme_end..]
            .find('/')
            .map(|i| i + scheme_end)
            .unwrap_or(head.len());
        format!("{}/{}{}", &head[..host_end], self.name, query)
    }

    pub async fn admin(&self) -> Client {
        connect(&self.admin_config).await.expect("connect as admin")
    }

    pub async fn app(&self) -> Client {
        connect(&self.app_config)
            .await
            .expect("connect as attachments_app")
    }

    /// A connection as the scan worker's role.
    pub async fn scanner(&self) -> Client {
        connect(&self.scanner_config)
            .await
            .expect("connect as attachments_scanner")
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let name = self.name.clone();
        let maintenance = self.maintenance.clone();
        // Drop runs outside any runtime guarantee; use a private one on a plain thread.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                if let Ok(client) = connect(&maintenance).await {
                    let _ = client
                        .batch_execute(&format!(
                            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                            db_tools::quote_ident(&name)
                        ))
                        .await;
                }
            });
        })
        .join();
    }
}

/// Sets the tenant for the current transaction, as components do.
pub async fn set_tenant(c: &impl GenericClient, tenant: Uuid) {
    c.query_one(
        "SELECT set_config($1, $2, true)",
        &[&TENANT_GUC, &tenant.to_string()],
    )
    .await
    .expect("set tenant");
}

/// A syntactically valid argon2id PHC string; tests that never log in need no real (slow) hash.
pub const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$2Qp2q7E1b1n2Xr8Ckq3m0g3Gm0mJzv1x3GZ0c5y6d9E";

pub fn random_hex(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut b);
    hex::encode(b)
}

/// One row in every tenant table, all belonging to one tenant.
#[derive(Clone, Debug)]
pub struct TenantRows {
    pub tenant: Uuid,
    pub user: Uuid,
    pub refresh_token: Uuid,
    pub account: Uuid,
    pub folder: Uuid,
    pub message: Uuid,
    pub blob: Uuid,
    pub content_sha256: String,
    pub attachment: Uuid,
    pub scan_job: Uuid,
    pub audit: i64,
    pub upload_session: Uuid,
}

/// Inserts a tenant with one row in each tenant table (as admin, bypassing nothing but RLS).
pub async fn tenant_with_rows(admin: &Client) -> TenantRows {
    let tenant = Uuid::new_v4();
    admin
        .execute(
            "INSERT INTO tenants (id, name) VALUES ($1, $2)",
            &[&tenant, &format!("t-{tenant}")],
        )
        .await
        .unwrap();
    let user: Uuid = admin
        .query_one(
            "INSERT INTO users (tenant_id, email, password_hash, role) VALUES ($1, $2, $3, 'admin') RETURNING id",
            &[&tenant, &format!("admin@{tenant}.test"), &DUMMY_HASH],
        )
        .await
        .unwrap()
        .get(0);
    let refresh_token: Uuid = admin
        .query_one(
            "INSERT INTO refresh_tokens (tenant_id, user_id, family_id, token_hash, expires_at)
             VALUES ($1, $2, gen_random_uuid(), $3, app_now_ms() + 3600000) RETURNING id",
            &[&tenant, &user, &random_hex(32)],
        )
        .await
        .unwrap()
        .get(0);
    let account: Uuid = admin
        .query_one(
            "INSERT INTO email_accounts (tenant_id, owner_user_id, email_address) VALUES ($1, $2, $3) RETURNING id",
            &[&tenant, &user, &format!("mail@{tenant}.test")],
        )
        .await
        .unwrap()
        .get(0);
    let folder: Uuid = admin
        .query_one(
            "INSERT INTO email_folders (tenant_id, account_id, name, path, special_use)
             VALUES ($1, $2, 'INBOX', 'INBOX', 'inbox') RETURNING id",
            &[&tenant, &account],
        )
        .await
        .unwrap()
        .get(0);
    let message: Uuid = admin
        .query_one(
            "INSERT INTO email_messages (tenant_id, account_id, folder_id, owner_user_id, message_id, imap_uid,
                                         subject, from_address, to_addresses, body_text)
             VALUES ($1, $2, $3, $4, $5, 1, 'hello', 'a@example.test', ARRAY['b@example.test'], 'body')
             RETURNING id",
            &[&tenant, &account, &folder, &user, &format!("{}@test", Uuid::new_v4())],
        )
        .await
        .unwrap()
        .get(0);
    let content_sha256 = random_hex(32);
    let blob: Uuid = admin
        .query_one(
            "INSERT INTO attachment_blobs (tenant_id, content_sha256, size_bytes, storage_key)
             VALUES ($1, $2, 5, $3) RETURNING id",
            &[
                &tenant,
                &content_sha256,
                &format!("{tenant}/{content_sha256}"),
            ],
        )
        .await
        .unwrap()
        .get(0);
    let attachment: Uuid = admin
        .query_one(
            "INSERT INTO email_attachments (tenant_id, message_id, blob_id, uploader_user_id, filename, size_bytes)
             VALUES ($1, $2, $3, $4, 'a.txt', 5) RETURNING id",
            &[&tenant, &message, &blob, &user],
        )
        .await
        .unwrap()
        .get(0);
    let scan_job: Uuid = admin
        .query_one(
            "INSERT INTO scan_jobs (tenant_id, blob_id, status, finished_at) VALUES ($1, $2, 'done', app_now_ms())
             RETURNING id",
            &[&tenant, &blob],
        )
        .await
        .unwrap()
        .get(0);
    admin
        .execute(
            "INSERT INTO scan_engine_verdicts (tenant_id, blob_id, engine, status, scanned_at)
             VALUES ($1, $2, 'clamav', 'clean', app_now_ms())",
            &[&tenant, &blob],
        )
        .await
        .unwrap();
    let audit: i64 = admin
        .query_one(
            "INSERT INTO email_audit_log (tenant_id, user_id, action, resource_type, resource_id)
             VALUES ($1, $2, 'attachment.upload', 'attachment', $3) RETURNING id",
            &[&tenant, &user, &attachment.to_string()],
        )
        .await
        .unwrap()
        .get(0);
    let upload_session: Uuid = admin
        .query_one(
            "INSERT INTO upload_sessions (tenant_id, message_id, user_id, filename, claimed_size, storage_key,
                                          s3_upload_id, part_size, part_count, expires_at)
             VALUES ($1, $2, $3, 'up.bin', 1, 'tenants/up/' || gen_random_uuid(), 'u',
                     5242880, 1, app_now_ms() + 86400000)
             RETURNING id",
            &[&tenant, &message, &user],
        )
        .await
        .unwrap()
        .get(0);
    // Quotas: the tenant's own limits and a day of downloads (the attachment above made its
    // tenant_usage and user_usage rows through the trigger).
    admin
        .execute(
            "INSERT INTO tenant_quotas (tenant_id, user_bytes) VALUES ($1, 1000000)",
            &[&tenant],
        )
        .await
        .unwrap();
    admin
        .execute(
            "INSERT INTO user_download_usage (tenant_id, user_id, day, bytes) VALUES ($1, $2, current_date, 5)",
            &[&tenant, &user],
        )
        .await
        .unwrap();
    TenantRows {
        upload_session,
        tenant,
        user,
        refresh_token,
        account,
        folder,
        message,
        blob,
        content_sha256,
        attachment,
        scan_job,
        audit,
    }
}

/// The SQLSTATE of a failed statement, or None when it succeeded.
pub fn sqlstate<T>(r: &Result<T, tokio_postgres::Error>) -> Option<String> {
    match r {
        Ok(_) => None,
        Err(e) => Some(
            e.code()
                .map(|c| c.code().to_string())
                .unwrap_or_else(|| format!("non-db error: {e}")),
        ),
    }
}

pub fn error_text<T>(r: &Result<T, tokio_postgres::Error>) -> String {
    match r {
        Ok(_) => String::new(),
        Err(e) => e
            .as_db_error()
            .map(|d| d.message().to_string())
            .unwrap_or_else(|| e.to_string()),
    }
}
