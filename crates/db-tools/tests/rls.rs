//! Tenant isolation as the application role, on every tenant table, with queries that omit tenant filters.

mod common;

use common::{TenantRows, TestDb, error_text, random_hex, set_tenant, sqlstate, tenant_with_rows};
use tokio_postgres::Client;
use uuid::Uuid;

/// Every tenant table: name, the column holding the tenant, and the primary key column.
struct Table {
    name: &'static str,
    tenant_col: &'static str,
    id_col: &'static str,
    /// Whether the app role is granted INSERT (others must be refused by privilege, not only by RLS).
    app_inserts: bool,
}

const TABLES: &[Table] = &[
    Table {
        name: "tenants",
        tenant_col: "id",
        id_col: "id",
        app_inserts: false,
    },
    Table {
        name: "users",
        tenant_col: "tenant_id",
        id_col: "id",
        app_inserts: false,
    },
    Table {
        name: "refresh_tokens",
        tenant_col: "tenant_id",
        id_col: "id",
        app_inserts: true,
    },
    Table {
        name: "email_accounts",
        tenant_col: "tenant_id",
        id_col: "id",
        app_inserts: true,
    },
    Table {
        name: "email_folders",
        tenant_col: "tenant_id",
        id_col: "id",
        app_inserts: true,
    },
    Table {
        name: "email_messages",
        tenant_col: "tenant_id",
        id_col: "id",
        app_inserts: true,
    },
    Table {
        name: "attachment_blobs",
        tenant_col: "tenant_id",
        id_col: "id",
        app_inserts: true,
    },
    Table {
        name: "email_attachments",
        tenant_col: "tenant_id",
        id_col: "id",
        app_inserts: true,
    },
    Table {
        name: "scan_jobs",
        tenant_col: "tenant_id",
        id_col: "id",
        app_inserts: true,
    },
    Table {
        name: "scan_engine_verdicts",
        tenant_col: "tenant_id",
        id_col: "blob_id",
        app_inserts: true,
    },
    Table {
        name: "email_audit_log",
        tenant_col: "tenant_id",
        id_col: "id",
        app_inserts: true,
    },
    Table {
        name: "upload_sessions",
        tenant_col: "tenant_id",
        id_col: "id",
        app_inserts: true,
    },
    Table {
        name: "tenant_quotas",
        tenant_col: "tenant_id",
        id_col: "tenant_id",
        app_inserts: false,
    },
    Table {
        name: "tenant_usage",
        tenant_col: "tenant_id",
        id_col: "tenant_id",
        app_inserts: false,
    },
    Table {
        name: "user_usage",
        tenant_col: "tenant_id",
        id_col: "user_id",
        app_inserts: false,
    },
    Table {
        name: "user_download_usage",
        tenant_col: "tenant_id",
        id_col: "user_id",
        app_inserts: true,
    },
];

/// Tables with a tenant column that only the owner reaches (through SECURITY DEFINER functions and
/// triggers): the app role has no privilege on them at all, and their policy admits no row.
const OWNER_ONLY: &[&str] = &["scan_fair_clocks"];

/// The fixture row's primary key in `table`, as an SQL literal.
fn id_literal(table: &str, r: &TenantRows) -> String {
    match table {
        "tenants" => format!("'{}'", r.tenant),
        "users" => format!("'{}'", r.user),
        "refresh_tokens" => format!("'{}'", r.refresh_token),
        "email_accounts" => format!("'{}'", r.account),
        "email_folders" => format!("'{}'", r.folder),
        "email_messages" => format!("'{}'", r.message),
        "attachment_blobs" => format!("'{}'", r.blob),
        "email_attachments" => format!("'{}'", r.attachment),
        "scan_jobs" => format!("'{}'", r.scan_job),
        "scan_engine_verdicts" => format!("'{}'", r.blob),
        "email_audit_log" => r.audit.to_string(),
        "upload_sessions" => format!("'{}'", r.upload_session),
        "tenant_quotas" | "tenant_usage" => format!("'{}'", r.tenant),
        "user_usage" | "user_download_usage" => format!("'{}'", r.user),
        other => panic!("no fixture row for {other}"),
    }
}

/// A valid INSERT of a new row into `table` for tenant `r.tenant`, referencing `r`'s parent rows.
fn insert_sql(table: &str, r: &TenantRows) -> String {
    let t = r.tenant;
    let h = random_hex(32);
    match table {
        "tenants" => format!("INSERT INTO tenants (id, name) VALUES ('{}', 'new-{h}')", Uuid::new_v4()),
        "users" => format!(
            "INSERT INTO users (tenant_id, email, password_hash) VALUES ('{t}', 'u{h}@x.test', '{}')",
            common::DUMMY_HASH
        ),
        "refresh_tokens" => format!(
            "INSERT INTO refresh_tokens (tenant_id, user_id, family_id, token_hash, expires_at)
             VALUES ('{t}', '{}', gen_random_uuid(), '{h}', app_now_ms() + 1000)",
            r.user
        ),
        "email_accounts" => format!("INSERT INTO email_accounts (tenant_id, email_address) VALUES ('{t}', 'a{h}@x.test')"),
        "email_folders" => format!(
            "INSERT INTO email_folders (tenant_id, account_id, name, path) VALUES ('{t}', '{}', 'F', 'F{h}')",
            r.account
        ),
        "email_messages" => format!(
            "INSERT INTO email_messages (tenant_id, account_id, folder_id, owner_user_id, from_address)
             VALUES ('{t}', '{}', '{}', '{}', 'x@x.test')",
            r.account, r.folder, r.user
        ),
        "attachment_blobs" => format!(
            "INSERT INTO attachment_blobs (tenant_id, content_sha256, size_bytes, storage_key)
             VALUES ('{t}', '{h}', 1, 'k{h}')"
        ),
        "email_attachments" => format!(
            "INSERT INTO email_attachments (tenant_id, message_id, blob_id, uploader_user_id, filename, size_bytes)
             VALUES ('{t}', '{}', '{}', '{}', 'f.txt', 1)",
            r.message, r.blob, r.user
        ),
        "scan_jobs" => format!("INSERT INTO scan_jobs (tenant_id, blob_id) VALUES ('{t}', '{}')", r.blob),
        "scan_engine_verdicts" => format!(
            "INSERT INTO scan_engine_verdicts (tenant_id, blob_id, engine, status, scanned_at)
             VALUES ('{t}', '{}', 'e{}', 'clean', 1)",
            r.blob,
            &h[..8]
        ),
        "email_audit_log" => format!("INSERT INTO email_audit_log (tenant_id, action) VALUES ('{t}', 'test.insert')"),
        "upload_sessions" => format!(
            "INSERT INTO upload_sessions (tenant_id, message_id, user_id, filename, claimed_size, storage_key,
                                          s3_upload_id, part_size, part_count, expires_at)
             VALUES ('{t}', '{}', '{}', 'n.bin', 1, 'k{h}', 'u', 5242880, 1, app_now_ms() + 60000)",
            r.message, r.user
        ),
        "tenant_quotas" => format!("INSERT INTO tenant_quotas (tenant_id, user_bytes) VALUES ('{t}', 1)"),
        "tenant_usage" => format!("INSERT INTO tenant_usage (tenant_id) VALUES ('{t}')"),
        "user_usage" => format!(
            "INSERT INTO user_usage (tenant_id, user_id) VALUES ('{t}', '{}')",
            r.user
        ),
        "user_download_usage" => format!(
            "INSERT INTO user_download_usage (tenant_id, user_id, day, bytes) VALUES ('{t}', '{}', current_date - 1, 1)",
            r.user
        ),
        other => panic!("no insert for {other}"),
    }
}

async fn count(c: &impl tokio_postgres::GenericClient, sql: &str) -> i64 {
    c.query_one(sql, &[])
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .get(0)
}

/// Row counts per table as the admin sees them: (table, rows of tenant, rows total).
async fn admin_counts(admin: &Client, tenant: Uuid) -> Vec<(String, i64, i64)> {
    let mut out = Vec::new();
    for t in TABLES {
        let mine = count(
            admin,
            &format!(
                "SELECT count(*) FROM {} WHERE {} = '{tenant}'",
                t.name, t.tenant_col
            ),
        )
        .await;
        let all = count(admin, &format!("SELECT count(*) FROM {}", t.name)).await;
        out.push((t.name.to_string(), mine, all));
    }
    out
}

/// xmin of a row, as the admin sees it: changes whenever the row is updated, even to the same values.
async fn xmin(admin: &Client, table: &Table, r: &TenantRows) -> String {
    admin
        .query_one(
            &format!(
                "SELECT xmin::text FROM {} WHERE {} = {}",
                table.name,
                table.id_col,
                id_literal(table.name, r)
            ),
            &[],
        )
        .await
        .unwrap_or_else(|e| panic!("{} row of the fixture is gone: {e}", table.name))
        .get(0)
}

async fn three_tenants(db: &TestDb) -> (Client, TenantRows, TenantRows, TenantRows) {
    let admin = db.admin().await;
    let a = tenant_with_rows(&admin).await;
    let b = tenant_with_rows(&admin).await;
    let c = tenant_with_rows(&admin).await;
    (admin, a, b, c)
}

#[tokio::test]
async fn app_sees_and_writes_only_its_own_tenant_in_every_table() {
    let db = TestDb::migrated().await;
    let (admin, a, b, _c) = three_tenants(&db).await;
    let mut app = db.app().await;

    let tx = app.transaction().await.unwrap();
    set_tenant(&tx, a.tenant).await;
    for t in TABLES {
        // Unfiltered: exactly tenant A's rows, while other tenants' rows exist.
        let visible = count(&tx, &format!("SELECT count(*) FROM {}", t.name)).await;
        let mine = count(
            &admin,
            &format!(
                "SELECT count(*) FROM {} WHERE {} = '{}'",
                t.name, t.tenant_col, a.tenant
            ),
        )
        .await;
        let all = count(&admin, &format!("SELECT count(*) FROM {}", t.name)).await;
        assert!(
            mine >= 1 && all > mine,
            "{}: fixture must have rows of several tenants",
            t.name
        );
        assert_eq!(
            visible, mine,
            "{}: unfiltered SELECT shows other tenants' rows",
            t.name
        );
        let foreign = count(
            &tx,
            &format!(
                "SELECT count(*) FROM {} WHERE {} <> '{}'",
                t.name, t.tenant_col, a.tenant
            ),
        )
        .await;
        assert_eq!(foreign, 0, "{}: rows of other tenants visible", t.name);
        // By B's primary key, without any tenant filter.
        let by_id = count(
            &tx,
            &format!(
                "SELECT count(*) FROM {} WHERE {} = {}",
                t.name,
                t.id_col,
                id_literal(t.name, &b)
            ),
        )
        .await;
        assert_eq!(by_id, 0, "{}: B's row readable by id", t.name);
        // And A's own row by id is visible (so the previous assertion is not vacuous).
        let own = count(
            &tx,
            &format!(
                "SELECT count(*) FROM {} WHERE {} = {}",
                t.name,
                t.id_col,
                id_literal(t.name, &a)
            ),
        )
        .await;
        assert_eq!(own, 1, "{}: own row not readable by id", t.name);
    }
    tx.rollback().await.unwrap();

    // Writes: a row for tenant B (with B's parents) is refused while acting as A; the same statement shape
    // for A succeeds (positive control), and nothing lands in B.
    let before = admin_counts(&admin, b.tenant).await;
    for t in TABLES {
        let tx = app.transaction().await.unwrap();
        set_tenant(&tx, a.tenant).await;
        let r = tx.execute(&insert_sql(t.name, &b), &[]).await;
        assert_eq!(
            sqlstate(&r).as_deref(),
            Some("42501"),
            "{}: insert for B not refused: {r:?}",
            t.name
        );
        if t.app_inserts {
            assert!(
                error_text(&r).contains("row-level security"),
                "{}: expected an RLS refusal, got {}",
                t.name,
                error_text(&r)
            );
        }
        tx.rollback().await.unwrap();

        let tx = app.transaction().await.unwrap();
        set_tenant(&tx, a.tenant).await;
        let r = tx.execute(&insert_sql(t.name, &a), &[]).await;
        if t.app_inserts {
            assert_eq!(
                r.as_ref().ok(),
                Some(&1),
                "{}: own-tenant insert (positive control) failed: {r:?}",
                t.name
            );
        } else {
            assert!(
                error_text(&r).contains("permission denied"),
                "{}: app may insert: {r:?}",
                t.name
            );
        }
        tx.rollback().await.unwrap();
    }
    assert_eq!(
        admin_counts(&admin, b.tenant).await,
        before,
        "some row was written"
    );

    // An A row cannot point at B's parent rows (composite foreign keys), even though RLS lets it be A's row.
    let tx = app.transaction().await.unwrap();
    set_tenant(&tx, a.tenant).await;
    let r = tx
        .execute(
            &format!(
                "INSERT INTO email_attachments (tenant_id, message_id, blob_id, uploader_user_id, filename, size_bytes)
                 VALUES ('{}', '{}', '{}', '{}', 'x.txt', 1)",
                a.tenant, b.message, b.blob, b.user
            ),
            &[],
        )
        .await;
    assert_eq!(
        sqlstate(&r).as_deref(),
        Some("23503"),
        "cross-tenant reference accepted: {r:?}"
    );
    tx.rollback().await.unwrap();
}

#[tokio::test]
async fn without_the_tenant_setting_nothing_is_visible_and_nothing_is_written() {
    let db = TestDb::migrated().await;
    let (admin, a, _b, _c) = three_tenants(&db).await;
    let mut app = db.app().await;
    let before = admin_counts(&admin, a.tenant).await;

    // Never set, set to '', set to garbage: all fail closed, none raises on read.
    for setting in [
        None,
        Some(""),
        Some("not-a-uuid"),
        Some("'; DROP TABLE users; --"),
    ] {
        let tx = app.transaction().await.unwrap();
        if let Some(value) = setting {
            tx.query_one(
                "SELECT set_config('app.current_tenant_id', $1, true)",
                &[&value],
            )
            .await
            .unwrap();
        }
        for t in TABLES {
            let n = count(&tx, &format!("SELECT count(*) FROM {}", t.name)).await;
            assert_eq!(n, 0, "{} visible with setting {setting:?}", t.name);
        }
        // Updates the app is granted touch nothing.
        for (table, set) in [
            ("refresh_tokens", "last_used_at = 1"),
            ("email_messages", "is_read = true"),
            ("attachment_blobs", "ref_count = ref_count + 1"),
            ("email_attachments", "url_generation = url_generation + 1"),
            ("scan_jobs", "last_error = 'x'"),
        ] {
            let n = tx
                .execute(&format!("UPDATE {table} SET {set}"), &[])
                .await
                .unwrap();
            assert_eq!(
                n, 0,
                "{table}: update reached rows with setting {setting:?}"
            );
        }
        tx.rollback().await.unwrap();

        for t in TABLES {
            let tx = app.transaction().await.unwrap();
            if let Some(value) = setting {
                tx.query_one(
                    "SELECT set_config('app.current_tenant_id', $1, true)",
                    &[&value],
                )
                .await
                .unwrap();
            }
            let r = tx.execute(&insert_sql(t.name, &a), &[]).await;
            assert_eq!(
                sqlstate(&r).as_deref(),
                Some("42501"),
                "{}: insert without tenant: {r:?}",
                t.name
            );
            tx.commit().await.ok();
        }
    }
    assert_eq!(
        admin_counts(&admin, a.tenant).await,
        before,
        "a row was written without a tenant"
    );

    // The setting is transaction-local: after COMMIT the next transaction sees nothing again.
    let tx = app.transaction().await.unwrap();
    set_tenant(&tx, a.tenant).await;
    assert_eq!(
        count(&tx, "SELECT count(*) FROM email_attachments").await,
        1
    );
    tx.commit().await.unwrap();
    assert_eq!(
        count(&app, "SELECT count(*) FROM email_attachments").await,
        0,
        "tenant leaked past COMMIT"
    );
}

#[tokio::test]
async fn updates_and_deletes_cannot_reach_another_tenant_even_with_broad_grants() {
    let db = TestDb::migrated().await;
    let (admin, a, b, _c) = three_tenants(&db).await;
    // Give the app every UPDATE and DELETE (this database only) to prove RLS alone holds the line, in case a
    // later migration grants too much.
    admin
        .batch_execute("GRANT UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO attachments_app")
        .await
        .unwrap();
    let mut app = db.app().await;

    let mut b_xmins = Vec::new();
    for t in TABLES {
        b_xmins.push(xmin(&admin, t, &b).await);
    }

    for t in TABLES {
        let tx = app.transaction().await.unwrap();
        set_tenant(&tx, a.tenant).await;
        let by_id = format!("{} = {}", t.id_col, id_literal(t.name, &b));
        let n = tx
            .execute(
                &format!(
                    "UPDATE {} SET {} = {} WHERE {by_id}",
                    t.name, t.tenant_col, t.tenant_col
                ),
                &[],
            )
            .await
            .unwrap();
        assert_eq!(n, 0, "{}: updated B's row by id", t.name);
        let n = tx
            .execute(
                &format!(
                    "UPDATE {} SET {} = {} WHERE {} = '{}'",
                    t.name, t.tenant_col, t.tenant_col, t.tenant_col, b.tenant
                ),
                &[],
            )
            .await
            .unwrap();
        assert_eq!(n, 0, "{}: updated B's rows by tenant", t.name);
        if t.name != "email_audit_log" {
            // Unfiltered: exactly A's rows.
            let n = tx
                .execute(
                    &format!("UPDATE {} SET {} = {}", t.name, t.tenant_col, t.tenant_col),
                    &[],
                )
                .await;
            assert_eq!(
                n.as_ref().ok(),
                Some(&1),
                "{}: unfiltered update touched {n:?} rows",
                t.name
            );
        }
        let n = tx
            .execute(&format!("DELETE FROM {} WHERE {by_id}", t.name), &[])
            .await
            .unwrap();
        assert_eq!(n, 0, "{}: deleted B's row by id", t.name);
        let n = tx
            .execute(
                &format!(
                    "DELETE FROM {} WHERE {} = '{}'",
                    t.name, t.tenant_col, b.tenant
                ),
                &[],
            )
            .await
            .unwrap();
        assert_eq!(n, 0, "{}: deleted B's rows by tenant", t.name);
        tx.commit().await.unwrap();

        // Handing one of A's rows over to B is refused by WITH CHECK.
        if t.tenant_col == "tenant_id" && t.name != "email_audit_log" {
            let tx = app.transaction().await.unwrap();
            set_tenant(&tx, a.tenant).await;
            let r = tx
                .execute(
                    &format!(
                        "UPDATE {} SET tenant_id = '{}' WHERE {} = {}",
                        t.name,
                        b.tenant,
                        t.id_col,
                        id_literal(t.name, &a)
                    ),
                    &[],
                )
                .await;
            assert!(r.is_err(), "{}: row moved to tenant B", t.name);
            tx.rollback().await.unwrap();
        }
    }
    for (t, before) in TABLES.iter().zip(&b_xmins) {
        assert_eq!(
            &xmin(&admin, t, &b).await,
            before,
            "{}: B's row was modified",
            t.name
        );
    }

    // The audit log stays append-only even with UPDATE/DELETE granted: the trigger refuses, for own rows too.
    let tx = app.transaction().await.unwrap();
    set_tenant(&tx, a.tenant).await;
    let r = tx
        .execute("UPDATE email_audit_log SET action = 'tampered'", &[])
        .await;
    assert_eq!(
        sqlstate(&r).as_deref(),
        Some("42501"),
        "audit log updated: {r:?}"
    );
    tx.rollback().await.unwrap();
    let tx = app.transaction().await.unwrap();
    set_tenant(&tx, a.tenant).await;
    let r = tx.execute("DELETE FROM email_audit_log", &[]).await;
    assert_eq!(
        sqlstate(&r).as_deref(),
        Some("42501"),
        "audit log deleted: {r:?}"
    );
    tx.rollback().await.unwrap();
}

#[tokio::test]
async fn shipped_grants_are_minimal_and_the_app_cannot_escape_rls() {
    let db = TestDb::migrated().await;
    let (admin, a, _b, _c) = three_tenants(&db).await;
    let mut app = db.app().await;

    for t in TABLES {
        let tx = app.transaction().await.unwrap();
        set_tenant(&tx, a.tenant).await;
        let r = tx
            .execute(
                &format!(
                    "DELETE FROM {} WHERE {} = {}",
                    t.name,
                    t.id_col,
                    id_literal(t.name, &a)
                ),
                &[],
            )
            .await;
        assert!(
            error_text(&r).contains("permission denied"),
            "{}: app may DELETE: {r:?}",
            t.name
        );
        tx.rollback().await.unwrap();
    }

    // Audit log: insert and read own rows, never update, delete or truncate.
    let tx = app.transaction().await.unwrap();
    set_tenant(&tx, a.tenant).await;
    let n = tx
        .execute(
            "INSERT INTO email_audit_log (tenant_id, user_id, action, resource_type, resource_id, request_id, client_addr, details)
             VALUES ($1, $2, 'attachment.delete', 'attachment', 'x', 'req-1', $3::text::inet, '{\"k\":1}')",
            &[&a.tenant, &a.user, &"127.0.0.1"],
        )
        .await
        .unwrap();
    assert_eq!(n, 1);
    assert_eq!(count(&tx, "SELECT count(*) FROM email_audit_log").await, 2);
    tx.commit().await.unwrap();
    for sql in [
        "UPDATE email_audit_log SET action = 'x'",
        "DELETE FROM email_audit_log",
        "TRUNCATE email_audit_log",
    ] {
        let tx = app.transaction().await.unwrap();
        set_tenant(&tx, a.tenant).await;
        let r = tx.execute(sql, &[]).await;
        assert_eq!(sqlstate(&r).as_deref(), Some("42501"), "{sql}: {r:?}");
        tx.rollback().await.unwrap();
    }
    assert_eq!(
        count(
            &admin,
            &format!(
                "SELECT count(*) FROM email_audit_log WHERE tenant_id = '{}'",
                a.tenant
            )
        )
        .await,
        2
    );

    // Read-only or partly writable tables.
    for sql in [
        "UPDATE tenants SET name = 'x'",
        "UPDATE users SET role = 'admin'",
        "UPDATE attachment_blobs SET content_sha256 = content_sha256",
        "UPDATE attachment_blobs SET storage_key = storage_key",
        "UPDATE email_attachments SET blob_id = blob_id",
        "UPDATE scan_jobs SET tenant_id = tenant_id",
        "SELECT password_hash FROM users",
        "SELECT * FROM users",
        "SELECT * FROM schema_migrations",
        "CREATE TABLE sneaky (x int)",
        "SET ROLE attachments_owner",
        "SELECT * FROM ops.connections_by_state",
        "SELECT * FROM ops.table_bloat",
    ] {
        let tx = app.transaction().await.unwrap();
        set_tenant(&tx, a.tenant).await;
        let r = tx.batch_execute(sql).await;
        assert_eq!(
            sqlstate(&r).as_deref(),
            Some("42501"),
            "app may run `{sql}`: {r:?}"
        );
        tx.rollback().await.unwrap();
    }

    // Owner-only tables: no privilege of any kind for the app.
    for t in OWNER_ONLY {
        let granted: bool = admin
            .query_one(
                "SELECT has_table_privilege('attachments_app', $1, \
                 'SELECT, INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER')",
                &[t],
            )
            .await
            .unwrap()
            .get(0);
        assert!(!granted, "app has a privilege on {t}");
        let tx = app.transaction().await.unwrap();
        set_tenant(&tx, a.tenant).await;
        let r = tx.batch_execute(&format!("SELECT * FROM {t}")).await;
        assert_eq!(sqlstate(&r).as_deref(), Some("42501"), "{t}: {r:?}");
        tx.rollback().await.unwrap();
    }

    // Turning row security off does not bypass it: the query errors instead of returning rows.
    let r = app
        .batch_execute("SET row_security = off; SELECT count(*) FROM email_attachments")
        .await;
    assert!(
        r.is_err(),
        "row_security=off let the app read without policies"
    );
    app.batch_execute("RESET row_security").await.unwrap();

    // Role attributes and ownership.
    let row = admin
        .query_one(
            "SELECT r.rolsuper, r.rolbypassrls, r.rolcanlogin, pg_has_role('attachments_app', 'attachments_owner', 'MEMBER'),
                    (SELECT count(*) FROM pg_class c WHERE c.relowner = r.oid),
                    (SELECT count(*) FROM pg_proc p WHERE p.proowner = r.oid)
             FROM pg_roles r WHERE r.rolname = 'attachments_app'",
            &[],
        )
        .await
        .unwrap();
    assert!(!row.get::<_, bool>(0), "app is superuser");
    assert!(!row.get::<_, bool>(1), "app has BYPASSRLS");
    assert!(row.get::<_, bool>(2), "app cannot log in");
    assert!(!row.get::<_, bool>(3), "app is a member of the owner");
    assert_eq!(row.get::<_, i64>(4), 0, "app owns relations");
    assert_eq!(row.get::<_, i64>(5), 0, "app owns functions");

    // Every SECURITY DEFINER function pins search_path and is not executable by PUBLIC.
    let loose: Vec<String> = admin
        .query(
            "SELECT p.oid::regprocedure::text FROM pg_proc p
             WHERE p.prosecdef AND p.pronamespace IN ('public'::regnamespace, 'ops'::regnamespace)
               AND (p.proconfig IS NULL OR NOT EXISTS (SELECT 1 FROM unnest(p.proconfig) c WHERE c LIKE 'search_path=%')
                    OR has_function_privilege('public', p.oid, 'EXECUTE'))",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(
        loose.is_empty(),
        "SECURITY DEFINER functions without pinned search_path or open to PUBLIC: {loose:?}"
    );
}

#[tokio::test]
async fn every_tenant_table_has_forced_rls_and_a_policy() {
    let db = TestDb::migrated().await;
    let admin = db.admin().await;
    let rows = admin
        .query(
            "SELECT c.relname::text, c.relrowsecurity, c.relforcerowsecurity,
                    (SELECT count(*) FROM pg_policy p WHERE p.polrelid = c.oid)
             FROM pg_class c
             WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p')
               AND (c.relname = 'tenants' OR EXISTS (
                    SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped))
             ORDER BY 1",
            &[],
        )
        .await
        .unwrap();
    let mut found: Vec<String> = Vec::new();
    for r in &rows {
        let name: String = r.get(0);
        assert!(r.get::<_, bool>(1), "{name}: RLS not enabled");
        assert!(r.get::<_, bool>(2), "{name}: RLS not forced");
        assert!(r.get::<_, i64>(3) >= 1, "{name}: no policy");
        found.push(name);
    }
    let mut expected: Vec<String> = TABLES.iter().map(|t| t.name.to_string()).collect();
    expected.extend(OWNER_ONLY.iter().map(|t| t.to_string()));
    expected.sort();
    // A new tenant table must be added to TABLES so the isolation tests above cover it.
    assert_eq!(found, expected);
}
