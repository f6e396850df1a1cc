//! Fixtures: the exact JSON shape of `seed --json`, real argon2id hashes, fresh tenants per run, and the
//! idempotent demo tenant.

mod common;

use std::{collections::HashSet, process::Command};

use argon2::{Argon2, PasswordHash, PasswordVerifier};
use common::TestDb;
use serde_json::Value;

fn keys(v: &Value) -> Vec<&str> {
    let mut k: Vec<&str> = v
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    k.sort();
    k
}

#[tokio::test]
async fn seed_json_prints_the_contract_shape_with_working_passwords() {
    let db = TestDb::migrated().await;
    let out = Command::new(env!("CARGO_BIN_EXE_seed"))
        .args(["--database-url", &db.url(), "--json"])
        .output()
        .expect("run seed");
    assert!(
        out.status.success(),
        "seed failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        stdout.trim().lines().count(),
        1,
        "stdout must be exactly one JSON document"
    );
    let json: Value = serde_json::from_str(&stdout).expect("valid JSON");

    assert_eq!(keys(&json), ["tenants"]);
    let tenants = json["tenants"].as_array().unwrap();
    assert_eq!(tenants.len(), 2, "default is two tenants");
    let admin = db.admin().await;
    let app = db.app().await;
    let mut emails = HashSet::new();
    for t in tenants {
        assert_eq!(keys(t), ["id", "messages", "name", "users"]);
        let users = t["users"].as_array().unwrap();
        let roles: Vec<&str> = users.iter().map(|u| u["role"].as_str().unwrap()).collect();
        assert_eq!(roles, ["admin", "user", "user"]);
        for u in users {
            assert_eq!(keys(u), ["email", "id", "password", "role"]);
            let email = u["email"].as_str().unwrap();
            assert!(emails.insert(email.to_string()), "duplicate email {email}");
            // The stored hash is a default-parameter argon2id hash of the printed password, and the login
            // lookup (no tenant) finds it.
            let row = app
                .query_one("SELECT user_id::text, tenant_id::text, password_hash FROM auth_lookup_user($1)", &[&email])
                .await
                .unwrap();
            assert_eq!(row.get::<_, String>(0), u["id"].as_str().unwrap());
            assert_eq!(row.get::<_, String>(1), t["id"].as_str().unwrap());
            let hash: String = row.get(2);
            assert!(
                hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
                "{hash}"
            );
            let parsed = PasswordHash::new(&hash).unwrap();
            let password = u["password"].as_str().unwrap();
            assert!(
                Argon2::default()
                    .verify_password(password.as_bytes(), &parsed)
                    .is_ok(),
                "password mismatch"
            );
            assert!(
                Argon2::default()
                    .verify_password(b"wrong", &parsed)
                    .is_err()
            );
        }
        let messages = t["messages"].as_array().unwrap();
        assert_eq!(messages.len(), 9);
        for u in users {
            let owned = messages
                .iter()
                .filter(|m| m["ownerUserId"] == u["id"])
                .count();
            assert_eq!(owned, 3, "each user owns three messages");
        }
        for m in messages {
            assert_eq!(keys(m), ["id", "ownerUserId"]);
            // The message exists in that tenant, in an inbox of the tenant's single account.
            let row = admin
                .query_one(
                    "SELECT m.tenant_id::text, f.special_use,
                            (SELECT count(*) FROM email_accounts a WHERE a.tenant_id = m.tenant_id)
                     FROM email_messages m JOIN email_folders f ON f.id = m.folder_id
                     WHERE m.id = $1::text::uuid",
                    &[&m["id"].as_str().unwrap()],
                )
                .await
                .unwrap();
            assert_eq!(row.get::<_, String>(0), t["id"].as_str().unwrap());
            assert_eq!(row.get::<_, String>(1), "inbox");
            assert_eq!(row.get::<_, i64>(2), 1);
        }
    }

    // A second run creates new tenants with new emails.
    let again = Command::new(env!("CARGO_BIN_EXE_seed"))
        .args(["--database-url", &db.url(), "--json", "--tenants", "1"])
        .output()
        .unwrap();
    assert!(again.status.success());
    let json2: Value = serde_json::from_slice(&again.stdout).unwrap();
    let t2 = &json2["tenants"][0];
    assert!(
        tenants
            .iter()
            .all(|t| t["id"] != t2["id"] && t["name"] != t2["name"])
    );
    for u in t2["users"].as_array().unwrap() {
        assert!(
            !emails.contains(u["email"].as_str().unwrap()),
            "email reused across runs"
        );
    }
}

#[tokio::test]
async fn demo_tenant_is_created_once_even_by_concurrent_runs() {
    let db = TestDb::migrated().await;
    let run = |extra: &'static [&'static str]| {
        let url = db.url();
        std::thread::spawn(move || {
            let out = Command::new(env!("CARGO_BIN_EXE_seed"))
                .args(["--database-url", &url, "--demo"])
                .args(extra)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            serde_json::from_slice::<Value>(&out.stdout).unwrap()
        })
    };
    let (x, y) = (run(&[]), run(&[]));
    let (x, y) = (x.join().unwrap(), y.join().unwrap());
    let created: Vec<bool> = [&x, &y]
        .iter()
        .map(|v| v["created"].as_bool().unwrap())
        .collect();
    assert_eq!(
        created.iter().filter(|c| **c).count(),
        1,
        "demo created {created:?} times"
    );
    assert_eq!(x["tenants"][0]["id"], y["tenants"][0]["id"]);
    let (fresh, existing) = if created[0] { (&x, &y) } else { (&y, &x) };
    assert!(
        fresh["tenants"][0]["users"]
            .as_array()
            .unwrap()
            .iter()
            .all(|u| u["password"].is_string())
    );
    assert!(
        existing["tenants"][0]["users"]
            .as_array()
            .unwrap()
            .iter()
            .all(|u| u["password"].is_null())
    );
    assert_eq!(
        existing["tenants"][0]["messages"].as_array().unwrap().len(),
        9
    );

    // --reset-passwords hands out new working passwords for the same users.
    let reset = run(&["--reset-passwords"]).join().unwrap();
    assert_eq!(reset["created"], false);
    let app = db.app().await;
    for u in reset["tenants"][0]["users"].as_array().unwrap() {
        let hash: String = app
            .query_one(
                "SELECT password_hash FROM auth_lookup_user($1)",
                &[&u["email"].as_str().unwrap()],
            )
            .await
            .unwrap()
            .get(0);
        let parsed = PasswordHash::new(&hash).unwrap();
        assert!(
            Argon2::default()
                .verify_password(u["password"].as_str().unwrap().as_bytes(), &parsed)
                .is_ok()
        );
    }
    let admin = db.admin().await;
    let tenants: i64 = admin
        .query_one("SELECT count(*) FROM tenants WHERE name = 'demo'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(tenants, 1);
}
