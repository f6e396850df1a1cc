//! The migration runner against the real Postgres: idempotence, refusal of edited/unknown/out-of-order files,
//! rollback of a failing file, concurrent runners, --create-db and the roles it leaves behind.

mod common;

use std::process::Command;

use common::TestDb;
use db_tools::migrations::{self, MigrateError, Migration, Options};
use tokio_postgres::Client;

fn options(list: Vec<Migration>) -> Options {
    Options {
        create_db: false,
        app_password: common::app_password(),
        scanner_password: common::scanner_password(),
        migrations: list,
    }
}

/// A fingerprint of everything the migrations create: objects, their owners, policies, privileges.
async fn schema_fingerprint(admin: &Client) -> String {
    let row = admin
        .query_one(
            "SELECT md5(string_agg(x, ',' ORDER BY x)) FROM (
                 SELECT 'c:' || c.oid::regclass::text || ':' || c.relkind::text || ':' || c.relowner::regrole::text
                        || ':' || coalesce(c.relacl::text, '') AS x
                 FROM pg_class c WHERE c.relnamespace IN ('public'::regnamespace, 'ops'::regnamespace)
                 UNION ALL SELECT 'p:' || polname || ':' || polrelid::regclass::text FROM pg_policy
                 UNION ALL SELECT 'f:' || p.oid::regprocedure::text || ':' || coalesce(p.proacl::text, '')
                 FROM pg_proc p WHERE p.pronamespace IN ('public'::regnamespace, 'ops'::regnamespace)
                 UNION ALL SELECT 'm:' || version || ':' || checksum FROM schema_migrations
             ) s",
            &[],
        )
        .await
        .unwrap();
    row.get(0)
}

#[tokio::test]
async fn applies_everything_once_and_a_second_run_is_a_no_op() {
    let db = TestDb::empty().await;
    let all = migrations::embedded();
    let first = migrations::migrate(&db.url(), options(all.clone()))
        .await
        .expect("first run");
    assert_eq!(
        first.applied,
        all.iter().map(|m| m.file_name.clone()).collect::<Vec<_>>()
    );
    assert_eq!(first.already_applied, 0);

    let admin = db.admin().await;
    let before = schema_fingerprint(&admin).await;
    let applied_at: Vec<i64> = admin
        .query(
            "SELECT applied_at FROM schema_migrations ORDER BY version",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();

    let second = migrations::migrate(&db.url(), options(all.clone()))
        .await
        .expect("second run");
    assert!(
        second.applied.is_empty(),
        "second run applied {:?}",
        second.applied
    );
    assert_eq!(second.already_applied, all.len());
    assert_eq!(
        schema_fingerprint(&admin).await,
        before,
        "second run changed the schema"
    );
    let applied_at_after: Vec<i64> = admin
        .query(
            "SELECT applied_at FROM schema_migrations ORDER BY version",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(applied_at, applied_at_after);

    // Every object belongs to the owner, none to the superuser that connected.
    let foreign: i64 = admin
        .query_one(
            "SELECT count(*) FROM pg_class c
             WHERE c.relnamespace IN ('public'::regnamespace, 'ops'::regnamespace)
               AND c.relowner <> 'attachments_owner'::regrole",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(foreign, 0, "objects not owned by attachments_owner");
}

#[tokio::test]
async fn an_edited_applied_file_is_refused_naming_the_file() {
    let db = TestDb::empty().await;
    let all = migrations::embedded();
    migrations::migrate(&db.url(), options(all.clone()))
        .await
        .unwrap();
    let admin = db.admin().await;
    let before = schema_fingerprint(&admin).await;

    let mut edited = all.clone();
    let victim = edited[2].file_name.clone();
    edited[2] = Migration::new(
        &victim,
        format!("{}\n-- a harmless-looking edit\n", edited[2].sql),
    )
    .unwrap();
    // A new file after it must not be applied either: the run stops before applying anything.
    edited.push(
        Migration::new(
            "9000_should_not_apply.sql",
            "CREATE TABLE should_not_exist (x int);",
        )
        .unwrap(),
    );

    let err = migrations::migrate(&db.url(), options(edited))
        .await
        .expect_err("edited file accepted");
    match &err {
        MigrateError::Edited {
            file,
            applied,
            current,
        } => {
            assert_eq!(file, &victim);
            assert_ne!(applied, current);
        }
        other => panic!("wrong error: {other}"),
    }
    let message = err.to_string();
    assert!(
        message.contains(&victim) && message.contains("edited"),
        "unclear message: {message}"
    );
    assert_eq!(
        schema_fingerprint(&admin).await,
        before,
        "refused run changed the schema"
    );
}

#[tokio::test]
async fn the_migrate_binary_refuses_an_edited_file_from_dir() {
    let db = TestDb::empty().await;
    let dir = std::env::temp_dir().join(format!("dbtools-migrations-{}", db.name));
    std::fs::create_dir_all(&dir).unwrap();
    for m in migrations::embedded() {
        std::fs::write(dir.join(&m.file_name), &m.sql).unwrap();
    }
    let run = |dir: &std::path::Path| {
        Command::new(env!("CARGO_BIN_EXE_migrate"))
            .args(["--database-url", &db.url(), "--dir"])
            .arg(dir)
            .output()
            .expect("run migrate")
    };
    let ok = run(&dir);
    assert!(
        ok.status.success(),
        "migrate failed: {}",
        String::from_utf8_lossy(&ok.stderr)
    );

    let target = dir.join("0004_attachments.sql");
    let mut sql = std::fs::read_to_string(&target).unwrap();
    sql.push_str("\nCREATE INDEX sneaky_idx ON scan_jobs (attempts);\n");
    std::fs::write(&target, sql).unwrap();
    let refused = run(&dir);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    std::fs::remove_dir_all(&dir).ok();
    assert!(!refused.status.success(), "edited file accepted: {stderr}");
    assert!(
        stderr.contains("0004_attachments.sql") && stderr.contains("edited"),
        "unclear message: {stderr}"
    );
    let admin = db.admin().await;
    let exists: bool = admin
        .query_one("SELECT to_regclass('sneaky_idx') IS NOT NULL", &[])
        .await
        .unwrap()
        .get(0);
    assert!(!exists, "the edited file's statement ran");
}

#[tokio::test]
async fn unknown_applied_and_out_of_order_files_are_refused() {
    let db = TestDb::empty().await;
    let all = migrations::embedded();
    migrations::migrate(&db.url(), options(all.clone()))
        .await
        .unwrap();

    // An older build (fewer migrations) against this newer database.
    let older = all[..all.len() - 1].to_vec();
    let err = migrations::migrate(&db.url(), options(older))
        .await
        .expect_err("older build accepted");
    assert!(
        matches!(err, MigrateError::UnknownApplied { .. }),
        "wrong error: {err}"
    );

    // A new file numbered below the newest applied one (a late-merged branch): numbering with gaps.
    let db2 = TestDb::empty().await;
    let gapped: Vec<Migration> = all
        .iter()
        .map(|m| {
            Migration::new(
                &format!("{:04}_{}", m.version * 10, &m.file_name[5..]),
                m.sql.clone(),
            )
            .unwrap()
        })
        .collect();
    migrations::migrate(&db2.url(), options(gapped.clone()))
        .await
        .unwrap();
    let mut with_late = gapped.clone();
    with_late.push(Migration::new("0015_late.sql", "CREATE TABLE late_one (x int);").unwrap());
    with_late.sort_by_key(|m| m.version);
    let err = migrations::migrate(&db2.url(), options(with_late))
        .await
        .expect_err("out-of-order file accepted");
    match &err {
        MigrateError::OutOfOrder { file, .. } => assert_eq!(file, "0015_late.sql"),
        other => panic!("wrong error: {other}"),
    }
}

#[tokio::test]
async fn a_failing_migration_leaves_nothing_behind() {
    let db = TestDb::empty().await;
    let mut list = migrations::embedded();
    list.push(
        Migration::new(
            "9001_broken.sql",
            "CREATE TABLE half_done (x int);\nINSERT INTO half_done VALUES (1);\nSELECT 1 / 0;\n",
        )
        .unwrap(),
    );
    let err = migrations::migrate(&db.url(), options(list))
        .await
        .expect_err("broken migration accepted");
    let message = err.to_string();
    assert!(
        matches!(err, MigrateError::Failed { ref file, .. } if file == "9001_broken.sql"),
        "{message}"
    );
    assert!(message.contains("division by zero"), "{message}");

    let admin = db.admin().await;
    let exists: bool = admin
        .query_one("SELECT to_regclass('half_done') IS NOT NULL", &[])
        .await
        .unwrap()
        .get(0);
    assert!(!exists, "the failed migration's table survived");
    let versions: Vec<i64> = admin
        .query(
            "SELECT version FROM schema_migrations ORDER BY version",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    // Everything before it was applied and recorded; it was not.
    assert_eq!(
        versions,
        migrations::embedded()
            .iter()
            .map(|m| m.version)
            .collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn concurrent_runners_are_serialised() {
    let db = TestDb::empty().await;
    let url = db.url();
    let runs: Vec<_> = (0..4)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(
                async move { migrations::migrate(&url, options(migrations::embedded())).await },
            )
        })
        .collect();
    let mut applied_total = 0;
    for run in runs {
        let report = run.await.unwrap().expect("a concurrent runner failed");
        applied_total += report.applied.len();
    }
    let n = migrations::embedded().len();
    assert_eq!(
        applied_total, n,
        "migrations applied more (or less) than once in total"
    );
    let admin = db.admin().await;
    let rows: i64 = admin
        .query_one("SELECT count(*) FROM schema_migrations", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(rows, n as i64);
}

#[tokio::test]
async fn create_db_creates_an_owner_owned_database_and_safe_roles() {
    let (name, _admin_config, maintenance) = TestDb::fresh_name();
    // Borrow TestDb's URL logic and cleanup for a database that does not exist yet.
    let db = TestDb::adopt(name.clone());
    // Whatever the environment uses (other tests connect with it), else a throwaway one reset below.
    let password = common::app_password().unwrap_or_else(|| "s3cret-for-test".to_string());
    let out = Command::new(env!("CARGO_BIN_EXE_migrate"))
        .args([
            "--database-url",
            &db.url(),
            "--create-db",
            "--app-password",
            &password,
        ])
        .output()
        .expect("run migrate");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "migrate --create-db failed: {stderr}");
    assert!(stderr.contains("0001_foundation.sql"), "{stderr}");

    let admin = db_tools::connect(&maintenance).await.unwrap();
    let owner: String = admin
        .query_one(
            "SELECT pg_get_userbyid(datdba)::text FROM pg_database WHERE datname = $1",
            &[&name],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(owner, "attachments_owner");
    let row = admin
        .query_one(
            "SELECT o.rolcanlogin, o.rolbypassrls, a.rolcanlogin, a.rolbypassrls, a.rolsuper,
                    (SELECT rolpassword FROM pg_authid WHERE rolname = 'attachments_app') LIKE 'SCRAM-SHA-256$%'
             FROM pg_roles o, pg_roles a WHERE o.rolname = 'attachments_owner' AND a.rolname = 'attachments_app'",
            &[],
        )
        .await
        .unwrap();
    assert!(!row.get::<_, bool>(0), "owner can log in");
    assert!(
        row.get::<_, bool>(1),
        "owner lacks BYPASSRLS (SECURITY DEFINER lookups would see nothing)"
    );
    assert!(row.get::<_, bool>(2), "app cannot log in");
    assert!(
        !row.get::<_, bool>(3) && !row.get::<_, bool>(4),
        "app can bypass RLS"
    );
    assert!(
        row.get::<_, bool>(5),
        "app password not stored as a SCRAM verifier"
    );
    // Leave the password as other test runs expect (trust auth ignores it anyway).
    if common::app_password().is_none() {
        admin
            .batch_execute("ALTER ROLE attachments_app PASSWORD NULL")
            .await
            .unwrap();
    }

    // Running it again on the existing database is fine.
    let again = Command::new(env!("CARGO_BIN_EXE_migrate"))
        .args(["--database-url", &db.url(), "--create-db"])
        .output()
        .unwrap();
    assert!(
        again.status.success(),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
}

#[tokio::test]
async fn monitoring_views_answer() {
    let db = TestDb::migrated().await;
    let admin = db.admin().await;
    let states: i64 = admin
        .query_one("SELECT count(*) FROM ops.connections_by_state", &[])
        .await
        .unwrap()
        .get(0);
    assert!(states >= 1, "our own connection is not listed");
    admin
        .query("SELECT * FROM ops.long_running_queries", &[])
        .await
        .unwrap();
    admin.batch_execute("ANALYZE").await.unwrap();
    let tables: Vec<String> = admin
        .query("SELECT table_name FROM ops.table_bloat", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(
        tables.contains(&"email_attachments".to_string()),
        "{tables:?}"
    );
}
