//! Deployment settings as an operator gets them wrong, and the managed-service settings: a mistake is
//! `500 misconfigured` naming the setting in the log, never an outage-looking `503` or a silent
//! failure of other connections; Redis with a password works end to end.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use integration_tests::{App, Stack, client, free_port, login, login_reply, send};

/// A `path` in `s3_endpoint`: the storage crate refuses it, and Spin would refuse the whole
/// `allowed_outbound_hosts` list of every component that names it (so Postgres and Redis too). Every
/// route of those components answers `misconfigured`; the components without storage keep working.
#[test]
fn a_path_in_the_storage_endpoint_is_misconfigured_not_an_outage() {
    let stack = Stack::get();
    let seed = stack.seed();
    let tenant = &seed.tenants[0];
    let user = tenant.user(0);
    let endpoint = format!(
        "{}/s3",
        stack.spin_var("S3_ENDPOINT", "").trim_end_matches('/')
    );
    let app = App::start("spin.toml", &[("SPIN_VARIABLE_S3_ENDPOINT", &endpoint)]);
    let c = client();
    // auth does not reach storage: logging in still works.
    let t = login(&c, &app.base_url, user);
    let message = &tenant.message_of(user, 0).id;
    let r = send(
        c.get(format!(
            "{}/api/v1/emails/{message}/attachments",
            app.base_url
        ))
        .bearer_auth(&t.access),
    );
    r.assert_problem(500, "misconfigured");
    // The public content route has no middleware in front: the download component itself says so.
    let r = send(c.get(format!(
        "{}/api/v1/files/00000000-0000-4000-8000-000000000000?exp=1&kid=x&sig=x",
        app.base_url
    )));
    r.assert_problem(500, "misconfigured");
    let log = app.log_text();
    assert!(
        log.contains("allowed_outbound_hosts") || log.contains("without a path"),
        "the log says which setting: {log}"
    );
    assert!(
        !log.contains(stack.spin_var("S3_SECRET_ACCESS_KEY", "never-a-default")),
        "no secret in the log"
    );
}

/// `db_sslmode` takes what Spin's Postgres client understands; anything else (libpq's `verify-full`)
/// would fail every connection with a parse error, so it is refused at the first request.
#[test]
fn an_sslmode_spin_cannot_honour_is_misconfigured() {
    let stack = Stack::get();
    let seed = stack.seed();
    let user = seed.tenants[0].user(0);
    let app = App::start("spin.toml", &[("SPIN_VARIABLE_DB_SSLMODE", "verify-full")]);
    let r = login_reply(&client(), &app.base_url, &user.email, &user.password);
    r.assert_problem(500, "misconfigured");
    assert!(app.log_text().contains("db_sslmode"), "{}", app.log_text());
}

/// A private `redis-server` that requires a password; stopped when dropped.
struct PasswordRedis {
    child: Child,
    port: u16,
}

impl PasswordRedis {
    fn start(password: &str) -> PasswordRedis {
        let port = free_port();
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .args([
                "--save",
                "",
                "--appendonly",
                "no",
                "--requirepass",
                password,
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server (the scripts install it)");
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "redis-server did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        PasswordRedis { child, port }
    }
}

impl Drop for PasswordRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `redis_password` reaches Redis (AUTH): the login limits (which fail closed) and the per-user limit
/// work against a Redis that requires one; a wrong password is a Redis that refuses us, so the
/// login limits' fail mode applies (closed: `503`).
#[test]
fn redis_with_a_password() {
    let stack = Stack::get();
    let seed = stack.seed();
    let user = seed.tenants[0].user(0);
    let redis = PasswordRedis::start("s3cret-redis-pw");
    let host = format!("127.0.0.1:{}", redis.port);
    let c = client();

    let app = App::start(
        "spin.toml",
        &[
            ("SPIN_VARIABLE_REDIS_HOST", host.as_str()),
            ("SPIN_VARIABLE_REDIS_PASSWORD", "s3cret-redis-pw"),
        ],
    );
    let t = login(&c, &app.base_url, user);
    let r = send(
        c.get(format!("{}/api/v1/auth/me", app.base_url))
            .bearer_auth(&t.access),
    );
    assert_eq!(r.status, 200, "{r:?}");
    assert!(
        r.header("ratelimit").is_some(),
        "counted in that Redis: {r:?}"
    );
    drop(app);

    let wrong = App::start(
        "spin.toml",
        &[
            ("SPIN_VARIABLE_REDIS_HOST", host.as_str()),
            ("SPIN_VARIABLE_REDIS_PASSWORD", "not-the-password"),
            ("SPIN_VARIABLE_LOGIN_RATE_LIMIT_FAIL_MODE", "closed"),
        ],
    );
    let r = login_reply(&c, &wrong.base_url, &user.email, &user.password);
    r.assert_problem(503, "service_unavailable");
    assert!(
        !wrong.log_text().contains("not-the-password"),
        "the password never reaches the log"
    );
}
