//! Retention and legal holds through the API, and the purge (`scan-worker purge --once`) against the
//! stack: a new attachment carries its retention, admins hold content from the purge, the purge
//! takes what is due once the hold is lifted. Time is moved by writing `retention_expires_at` into
//! the past (psql as the owner), never by sleeping.

use integration_tests::{App, Reply, Stack, client, login, psql, scan_worker, send, sql_str};
use reqwest::blocking::Client;

const DAY_MS: i64 = 86_400_000;

fn upload(c: &Client, base: &str, token: &str, message: &str, body: &str) -> Reply {
    send(
        c.post(format!("{base}/api/v1/emails/{message}/attachments"))
            .bearer_auth(token)
            .header("content-type", "text/plain")
            .header("content-disposition", "attachment; filename=kept.txt")
            .body(body.to_owned()),
    )
}

fn hold(c: &Client, method: reqwest::Method, path: &str, token: &str) -> Reply {
    send(
        c.request(method, format!("{}{path}", Stack::get().base_url))
            .bearer_auth(token),
    )
}

/// One purge run over the stack's database, as its own process.
fn purge() {
    let status = scan_worker(
        "scan",
        &["purge", "--once"],
        &[("SCAN_WORKER_NAME", "itest-purge")],
    )
    .status()
    .expect("run scan-worker purge");
    assert!(status.success(), "scan-worker purge --once: {status}");
}

#[test]
fn admins_hold_content_from_the_purge_and_the_purge_takes_it_once_released() {
    let stack = Stack::get();
    let seed = stack.seed();
    let tenant = &seed.tenants[0];
    let (user, admin) = (tenant.user(0), tenant.admin());
    let c = client();
    let ut = login(&c, &stack.base_url, user);
    let at = login(&c, &stack.base_url, admin);
    let message = &tenant.message_of(user, 0).id;

    let body = format!("retention {}", uuid::Uuid::new_v4());
    let r = upload(&c, &stack.base_url, &ut.access, message, &body);
    assert_eq!(r.status, 201, "{r:?}");
    let id = r.json()["id"].as_str().unwrap().to_owned();
    // Written at creation: upload time + the app's retention_days (90 by default).
    let kept = psql(&format!(
        "SELECT retention_expires_at - created_at FROM email_attachments WHERE id = {}",
        sql_str(&id)
    ));
    let days: i64 = stack.spin_var("retention_days", "90").parse().unwrap();
    assert_eq!(kept, (days * DAY_MS).to_string());

    let path = format!("/api/v1/admin/attachments/{id}/legal-hold");
    // A plain user may not; another tenant's admin finds nothing; an unknown id is 404.
    hold(&c, reqwest::Method::PUT, &path, &ut.access).assert_problem(403, "forbidden");
    let other = &seed.tenants[1];
    let ot = login(&c, &stack.base_url, other.admin());
    hold(&c, reqwest::Method::PUT, &path, &ot.access).assert_problem(404, "not_found");
    hold(
        &c,
        reqwest::Method::PUT,
        &format!(
            "/api/v1/admin/attachments/{}/legal-hold",
            uuid::Uuid::new_v4()
        ),
        &at.access,
    )
    .assert_problem(404, "not_found");
    hold(
        &c,
        reqwest::Method::PUT,
        "/api/v1/admin/attachments/nope/legal-hold",
        &at.access,
    )
    .assert_problem(400, "invalid_id");

    for _ in 0..2 {
        // Idempotent.
        let r = hold(&c, reqwest::Method::PUT, &path, &at.access);
        assert_eq!(r.status, 204, "{r:?}");
    }
    assert_eq!(
        psql(&format!(
            "SELECT legal_hold FROM email_attachments WHERE id = {}",
            sql_str(&id)
        )),
        "t"
    );
    let audited = psql(&format!(
        "SELECT count(*) FROM email_audit_log WHERE action = 'attachment.legal_hold' AND resource_id = {} \
           AND user_id = {} AND details->>'hold' = 'true'",
        sql_str(&id),
        sql_str(&admin.id)
    ));
    assert_eq!(audited, "2");

    // Its retention ends; the hold keeps it.
    psql(&format!(
        "UPDATE email_attachments SET retention_expires_at = app_now_ms() - 1 WHERE id = {}",
        sql_str(&id)
    ));
    purge();
    let get = |token: &str| {
        send(
            c.get(format!("{}/api/v1/attachments/{id}", stack.base_url))
                .bearer_auth(token),
        )
    };
    assert_eq!(get(&ut.access).status, 200);

    // A hold on its message keeps it too, after the attachment's own is lifted.
    let mpath = format!("/api/v1/admin/emails/{message}/legal-hold");
    hold(&c, reqwest::Method::PUT, &mpath, &ut.access).assert_problem(403, "forbidden");
    assert_eq!(
        hold(&c, reqwest::Method::PUT, &mpath, &at.access).status,
        204
    );
    assert_eq!(
        hold(&c, reqwest::Method::DELETE, &path, &at.access).status,
        204
    );
    purge();
    assert_eq!(get(&ut.access).status, 200);

    // Released: the next run purges it, audited as the system.
    assert_eq!(
        hold(&c, reqwest::Method::DELETE, &mpath, &at.access).status,
        204
    );
    purge();
    get(&ut.access).assert_problem(404, "not_found");
    assert_eq!(
        psql(&format!(
            "SELECT count(*) FROM email_audit_log WHERE action = 'attachment.purge' AND resource_id = {} \
               AND user_id IS NULL AND details->>'reason' = 'retention'",
            sql_str(&id)
        )),
        "1"
    );
}

#[test]
fn an_absurd_retention_is_misconfigured() {
    let stack = Stack::get();
    let seed = stack.seed();
    let tenant = &seed.tenants[0];
    let user = tenant.user(0);
    for bad in ["-1", "1000000"] {
        let app = App::start("spin.toml", &[("SPIN_VARIABLE_RETENTION_DAYS", bad)]);
        let c = client();
        let t = login(&c, &app.base_url, user);
        let message = &tenant.message_of(user, 0).id;
        upload(&c, &app.base_url, &t.access, message, "x").assert_problem(500, "misconfigured");
        let log = app.log_text();
        assert!(
            log.contains("retention_days"),
            "the log names the setting: {log}"
        );
    }
}
