//! `GET /api/v1/emails`: a user's own live messages, newest first, paged by cursor, against the real
//! stack: another user's messages (same tenant, admin or not) and another tenant's never appear, the
//! counts follow uploads and deletes, and bad paging parameters are `400` problems.

use integration_tests::{Reply, Stack, Tenant, Tokens, User, client, login, send};
use reqwest::blocking::Client;
use serde_json::Value;

fn list(c: &Client, t: &Tokens, query: &str) -> Reply {
    send(
        c.get(Stack::get().url(&format!("/api/v1/emails{query}")))
            .bearer_auth(&t.access),
    )
}

fn page(c: &Client, t: &Tokens, query: &str) -> Value {
    let r = list(c, t, query);
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.header("cache-control"), Some("no-store"), "{r:?}");
    r.json()
}

fn ids(page: &Value) -> Vec<String> {
    page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_owned())
        .collect()
}

/// The seeded messages of `user`, newest first (the seed lists them oldest first).
fn seeded_newest_first(tenant: &Tenant, user: &User) -> Vec<String> {
    let mut mine: Vec<String> = tenant
        .messages
        .iter()
        .filter(|m| m.owner_user_id == user.id)
        .map(|m| m.id.clone())
        .collect();
    mine.reverse();
    mine
}

#[test]
fn lists_only_the_callers_own_messages_newest_first() {
    let stack = Stack::get();
    let seed = stack.seed();
    let (ta, tb) = (&seed.tenants[0], &seed.tenants[1]);
    let c = client();
    for user in [ta.user(0), ta.user(1), ta.admin(), tb.user(0)] {
        let tenant = if ta.users.iter().any(|u| u.id == user.id) {
            ta
        } else {
            tb
        };
        let t = login(&c, &stack.base_url, user);
        let p = page(&c, &t, "");
        let want = seeded_newest_first(tenant, user);
        assert_eq!(want.len(), 3, "the seed gives every user three messages");
        // Exactly the caller's own: no other user's of the tenant (an admin's listing included),
        // no other tenant's.
        assert_eq!(ids(&p), want, "{}: {p}", user.email);
        assert!(p["nextBefore"].is_null(), "{p}");
        let msgs = p["messages"].as_array().unwrap();
        let times: Vec<i64> = msgs
            .iter()
            .map(|m| m["receivedAt"].as_i64().unwrap())
            .collect();
        assert!(
            times.windows(2).all(|w| w[0] >= w[1]),
            "newest first: {times:?}"
        );
        for m in msgs {
            assert!(m["subject"].as_str().unwrap().contains(&user.email), "{m}");
            assert!(m["from"].as_str().unwrap().contains('@'), "{m}");
            assert_eq!(m["attachmentCount"], 0, "{m}");
        }
    }
}

#[test]
fn pages_follow_the_cursor_to_the_end() {
    let stack = Stack::get();
    let seed = stack.seed();
    let tenant = &seed.tenants[0];
    let user = tenant.user(0);
    let c = client();
    let t = login(&c, &stack.base_url, user);

    let first = page(&c, &t, "?limit=2");
    assert_eq!(ids(&first).len(), 2, "{first}");
    let cursor = first["nextBefore"]
        .as_str()
        .expect("a next page")
        .to_owned();
    let second = page(&c, &t, &format!("?limit=2&before={cursor}"));
    assert_eq!(ids(&second).len(), 1, "{second}");
    assert!(second["nextBefore"].is_null(), "{second}");
    let all: Vec<String> = ids(&first).into_iter().chain(ids(&second)).collect();
    assert_eq!(all, seeded_newest_first(tenant, user));

    // A cursor is only a position: another user's cursor still lists only the caller's messages.
    let other = login(&c, &stack.base_url, tenant.user(1));
    let theirs = page(&c, &other, &format!("?before={cursor}"));
    for id in ids(&theirs) {
        assert!(
            seeded_newest_first(tenant, tenant.user(1)).contains(&id),
            "{theirs}"
        );
    }
}

#[test]
fn the_attachment_count_follows_uploads_and_deletes() {
    let stack = Stack::get();
    let seed = stack.seed();
    let tenant = &seed.tenants[0];
    let user = tenant.user(0);
    let c = client();
    let t = login(&c, &stack.base_url, user);
    let newest = seeded_newest_first(tenant, user)[0].clone();

    let up = send(
        c.post(stack.url(&format!("/api/v1/emails/{newest}/attachments")))
            .bearer_auth(&t.access)
            .header("content-type", "text/plain")
            .header("content-disposition", "attachment; filename=\"count.txt\"")
            .body(format!("counted {}", uuid::Uuid::new_v4())),
    );
    assert_eq!(up.status, 201, "{up:?}");
    let count = |p: &Value| {
        p["messages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["id"] == newest.as_str())
            .map(|m| m["attachmentCount"].as_i64().unwrap())
    };
    assert_eq!(count(&page(&c, &t, "")), Some(1));

    let id = up.json()["id"].as_str().unwrap().to_owned();
    let del = send(
        c.delete(stack.url(&format!("/api/v1/attachments/{id}")))
            .bearer_auth(&t.access),
    );
    assert_eq!(del.status, 204, "{del:?}");
    assert_eq!(count(&page(&c, &t, "")), Some(0));
}

#[test]
fn bad_paging_and_no_token_are_problems() {
    let stack = Stack::get();
    let seed = stack.seed();
    let c = client();
    let t = login(&c, &stack.base_url, seed.tenants[0].user(0));
    for q in [
        "?limit=0",
        "?limit=101",
        "?limit=x",
        "?before=nope",
        "?before=1_2",
        "?before=1_0b7f1a526a434c1e9a0e4f5d2d9c1e77",
    ] {
        list(&c, &t, q).assert_problem(400, "bad_request");
    }
    assert_eq!(list(&c, &t, "?limit=100&unknown=1").status, 200);
    let r = send(c.get(stack.url("/api/v1/emails")));
    r.assert_problem(401, "invalid_token");
    assert!(r.header("www-authenticate").is_some(), "{r:?}");
}
