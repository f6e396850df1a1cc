//! The scan worker's database role (`attachments_scanner`, `SCAN_DATABASE_URL`): it may call the scan
//! queue's two functions and read nothing else, not the attachments, not the users, not the queue
//! itself. (That the worker still works through it: every scan test in `scan_e2e` runs the worker
//! with this URL.) And the app role ends a transaction left idle.

use std::process::Command;

use integration_tests::Stack;

fn var(k: &str) -> String {
    Stack::get()
        .var(k)
        .unwrap_or_else(|| panic!("{k} is not set (run through scripts/test)"))
        .to_owned()
}

/// Runs `sql` as the role of `url`: `Ok(output)` or `Err(stderr)`.
fn psql_as(url: &str, sql: &str) -> Result<String, String> {
    let out = Command::new("psql")
        .args([url, "-XAtq", "-v", "ON_ERROR_STOP=1", "-c", sql])
        .output()
        .expect("running psql");
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

#[test]
fn the_scanner_role_reads_no_table() {
    let scanner = var("SCAN_DATABASE_URL");
    assert!(
        scanner.contains("attachments_scanner"),
        "the worker's URL names the scanner role"
    );
    assert_eq!(
        psql_as(&scanner, "SELECT current_user").as_deref(),
        Ok("attachments_scanner")
    );
    for table in [
        "email_attachments",
        "attachment_blobs",
        "users",
        "tenants",
        "refresh_tokens",
        "email_messages",
        "email_audit_log",
        "scan_jobs",
        "scan_engine_verdicts",
    ] {
        let e = psql_as(&scanner, &format!("SELECT count(*) FROM {table}"))
            .expect_err(&format!("the scanner read {table}"));
        assert!(e.contains("permission denied"), "{table}: {e}");
    }
    // Nor any other function: the login lookup, the callback's resolver, the download audit.
    for call in [
        "SELECT * FROM auth_lookup_user('someone@example.test')",
        "SELECT * FROM resolve_attachment_tenant(gen_random_uuid())",
        "SELECT scan_record_quarantine(gen_random_uuid(), 'k', 'deleted')",
    ] {
        let e = psql_as(&scanner, call).expect_err(call);
        assert!(e.contains("permission denied"), "{call}: {e}");
    }
    // What it is for: the queue's functions (a job it does not hold is simply not its own).
    assert_eq!(
        psql_as(
            &scanner,
            "SELECT scan_complete_job(gen_random_uuid(), 'probe', NULL)"
        )
        .as_deref(),
        Ok("not_owner")
    );
}

#[test]
fn the_app_role_ends_a_transaction_left_idle() {
    let app = var("DATABASE_URL");
    assert_eq!(
        psql_as(&app, "SHOW idle_in_transaction_session_timeout").as_deref(),
        Ok("5s")
    );
    assert_eq!(
        psql_as(
            &var("SCAN_DATABASE_URL"),
            "SHOW idle_in_transaction_session_timeout"
        )
        .as_deref(),
        Ok("5s")
    );
}
