//! `GET /health/ready`: `200` on the running stack, `503 not_ready` naming exactly the dependencies
//! a second app instance cannot reach (Redis and storage on closed loopback ports), with nothing of
//! their addresses or the settings in the answer; public (no token); and one `attachment.processed`
//! event line per committed upload.

use integration_tests::{App, Stack, client, free_port, login, send};

#[test]
fn ready_on_the_stack_without_a_token() {
    let stack = Stack::get();
    let r = send(client().get(stack.url("/health/ready")));
    assert_eq!(r.status, 200, "{r:?}");
    assert!(
        r.header("content-type")
            .is_some_and(|t| t.starts_with("application/json"))
    );
    assert!(r.header("x-request-id").is_some(), "{r:?}");
    assert_eq!(
        r.json(),
        serde_json::json!({"status": "ready", "checks": {"database": "up", "redis": "up", "storage": "up"}})
    );
    // Only GET: another method on the path is 405.
    let r = send(client().post(stack.url("/health/ready")));
    r.assert_problem(405, "method_not_allowed");
}

#[test]
fn not_ready_names_what_is_down_and_only_that() {
    let redis = format!("127.0.0.1:{}", free_port());
    let storage = format!("http://127.0.0.1:{}", free_port());
    let app = App::start(
        "spin.toml",
        &[
            ("SPIN_VARIABLE_REDIS_HOST", &redis),
            ("SPIN_VARIABLE_S3_ENDPOINT", &storage),
        ],
    );
    let r = send(client().get(format!("{}/health/ready", app.base_url)));
    let v = r.assert_problem(503, "not_ready");
    assert_eq!(v["detail"], "not ready: redis, storage unreachable", "{v}");
    assert!(
        !r.body.contains("127.0.0.1"),
        "no address in the answer: {}",
        r.body
    );

    // Redis alone down: only Redis is named (the database is reachable from this instance).
    let app = App::start("spin.toml", &[("SPIN_VARIABLE_REDIS_HOST", &redis)]);
    let r = send(client().get(format!("{}/health/ready", app.base_url)));
    let v = r.assert_problem(503, "not_ready");
    assert_eq!(v["detail"], "not ready: redis unreachable", "{v}");
    let log = app.log_text();
    assert!(log.contains("not_ready"), "the answer is logged: {log}");
}

#[test]
fn an_upload_writes_one_processed_event() {
    let stack = Stack::get();
    let seed = stack.seed();
    let tenant = &seed.tenants[0];
    let user = tenant.user(0);
    // An instance of its own, so that its log holds only this test's lines.
    let app = App::start("spin.toml", &[]);
    let c = client();
    let t = login(&c, &app.base_url, user);
    let message = &tenant.message_of(user, 0).id;
    let content = format!("processed event {}\n", uuid::Uuid::new_v4());
    let r = send(
        c.post(format!(
            "{}/api/v1/emails/{message}/attachments",
            app.base_url
        ))
        .bearer_auth(&t.access)
        .header("content-type", "text/plain")
        .header("content-disposition", "attachment; filename=note.txt")
        .body(content.clone()),
    );
    assert_eq!(r.status, 201, "{r:?}");
    let id = r.json()["id"].as_str().unwrap().to_owned();
    let log = app.log_text();
    let events: Vec<serde_json::Value> = log
        .lines()
        .filter_map(|l| l.find('{').map(|i| &l[i..]))
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["event"] == "attachment.processed")
        .collect();
    assert_eq!(events.len(), 1, "{log}");
    let e = &events[0];
    assert_eq!(e["attachmentId"], id.as_str());
    assert_eq!(e["tenantId"], tenant.id.as_str());
    assert_eq!(e["size"], content.len());
    assert_eq!(e["mimeType"], "text/plain");
    assert_eq!(e["verdict"], "pending");
    assert_eq!(e["deduplicated"], false);
    assert_eq!(
        (e["upload"].as_str(), e["storage"].as_str()),
        (Some("request"), Some("s3"))
    );
    assert!(e["processingMs"].as_u64().is_some(), "{e}");
    assert!(
        !e.to_string().contains("note.txt"),
        "no filename in the event: {e}"
    );
}
