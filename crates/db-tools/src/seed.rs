//! Fixtures: fresh tenants for tests (`seed --json`) and the idempotent demo tenant (`seed --demo`).
//!
//! Each tenant gets one admin and two users (argon2id PHC hashes with the `argon2` crate's default
//! parameters, exactly like real accounts), one mail account, an INBOX and three messages owned by each user.
//! Every write of a tenant happens in one transaction with `app.current_tenant_id` set to it, so seeding
//! works for any role with the grants (RLS holds), not only for a superuser.
//!
//! The output shape is relied on by the integration tests, the bench scripts and the README's walkthrough:
//! `{"tenants":[{"id","name","users":[{"id","email","password","role"}],"messages":[{"id","ownerUserId"}]}]}`.

use argon2::{Argon2, PasswordHasher, password_hash::SaltString};
use rand::{Rng, RngCore, distr::Alphanumeric};
use serde::Serialize;
use tokio_postgres::{Client, GenericClient};
use uuid::Uuid;

use crate::TENANT_GUC;

/// `seed --json` output.
#[derive(Debug, Serialize)]
pub struct SeedOutput {
    pub tenants: Vec<SeedTenant>,
}

/// `seed --demo` output: the same tenant shape plus whether this run created it.
#[derive(Debug, Serialize)]
pub struct DemoOutput {
    pub created: bool,
    pub tenants: Vec<SeedTenant>,
}

#[derive(Debug, Serialize)]
pub struct SeedTenant {
    pub id: Uuid,
    pub name: String,
    pub users: Vec<SeedUser>,
    pub messages: Vec<SeedMessage>,
}

#[derive(Debug, Serialize)]
pub struct SeedUser {
    pub id: Uuid,
    pub email: String,
    /// Plaintext, known only to this run; `null` for an existing demo tenant whose passwords were kept.
    pub password: Option<String>,
    pub role: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SeedMessage {
    pub id: Uuid,
    pub owner_user_id: Uuid,
}

/// Name of the demo tenant (stable, so `seed --demo` can find it again).
pub const DEMO_TENANT: &str = "demo";
const DEMO_DOMAIN: &str = "demo.attachments.test";

/// A random password of 24 alphanumerics (~143 bits).
pub fn random_password() -> String {
    rand::rng()
        .sample_iter(&Alphanumeric)
        .take(24)
        .map(char::from)
        .collect()
}

/// Hashes like the auth component does: argon2id, default parameters, random 16-byte salt, PHC string.
pub fn hash_password(password: &str) -> String {
    let mut salt = [0u8; 16];
    rand::rng().fill_bytes(&mut salt);
    // rand 0.9 and argon2 0.5 use different rand_core versions, so the salt is made here and encoded.
    let salt = SaltString::encode_b64(&salt).expect("16 bytes is a valid salt length");
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .expect("argon2 with default params")
        .to_string()
}

/// Hashes several passwords on the blocking pool (argon2 is deliberately slow; do them in parallel).
async fn hash_all(passwords: &[String]) -> Vec<String> {
    let handles: Vec<_> = passwords
        .iter()
        .cloned()
        .map(|p| tokio::task::spawn_blocking(move || hash_password(&p)))
        .collect();
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        out.push(h.await.expect("hashing task"));
    }
    out
}

fn random_suffix() -> String {
    let mut bytes = [0u8; 6];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// Creates `count` fresh tenants with random names, emails and passwords.
pub async fn seed_tenants(
    client: &mut Client,
    count: usize,
) -> Result<SeedOutput, tokio_postgres::Error> {
    let mut tenants = Vec::with_capacity(count);
    for _ in 0..count {
        let suffix = random_suffix();
        let name = format!("seed-{suffix}");
        let domain = format!("t-{suffix}.seed.test");
        let people = [("admin", "admin"), ("user1", "user"), ("user2", "user")]
            .map(|(local, role)| (format!("{local}@{domain}"), role.to_string()));
        let passwords: Vec<String> = people.iter().map(|_| random_password()).collect();
        let hashes = hash_all(&passwords).await;

        let tx = client.transaction().await?;
        let id = Uuid::new_v4();
        set_tenant(&tx, id).await?;
        tx.execute(
            "INSERT INTO tenants (id, name) VALUES ($1, $2)",
            &[&id, &name],
        )
        .await?;
        let tenant = populate(&tx, id, name, &domain, &people, &passwords, &hashes).await?;
        tx.commit().await?;
        tenants.push(tenant);
    }
    Ok(SeedOutput { tenants })
}

/// Creates the demo tenant if absent (returning fresh passwords), or describes the existing one (passwords
/// `null`, unless `reset_passwords`, which sets and returns new ones). Safe to run concurrently.
pub async fn seed_demo(
    client: &mut Client,
    reset_passwords: bool,
) -> Result<DemoOutput, tokio_postgres::Error> {
    let people = [("admin", "admin"), ("alice", "user"), ("bob", "user")]
        .map(|(local, role)| (format!("{local}@{DEMO_DOMAIN}"), role.to_string()));
    let passwords: Vec<String> = people.iter().map(|_| random_password()).collect();
    let hashes = hash_all(&passwords).await;

    let tx = client.transaction().await?;
    let new_id = Uuid::new_v4();
    // The tenant row decides who creates the demo: the unique name makes concurrent runs agree.
    set_tenant(&tx, new_id).await?;
    let inserted = tx
        .query_opt(
            "INSERT INTO tenants (id, name) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING RETURNING id",
            &[&new_id, &DEMO_TENANT],
        )
        .await?;
    if inserted.is_some() {
        let tenant = populate(
            &tx,
            new_id,
            DEMO_TENANT.to_string(),
            DEMO_DOMAIN,
            &people,
            &passwords,
            &hashes,
        )
        .await?;
        tx.commit().await?;
        return Ok(DemoOutput {
            created: true,
            tenants: vec![tenant],
        });
    }
    tx.rollback().await?;

    // Existing demo. Finding a tenant by name needs a session that sees every tenant (superuser or owner),
    // which is what the admin URL of every tool is.
    let tx = client.transaction().await?;
    let id: Uuid = tx
        .query_one("SELECT id FROM tenants WHERE name = $1", &[&DEMO_TENANT])
        .await?
        .get(0);
    set_tenant(&tx, id).await?;
    let rows = tx
        .query(
            "SELECT id, email, role FROM users WHERE tenant_id = $1 ORDER BY role, email",
            &[&id],
        )
        .await?;
    let fresh: Vec<String> = if reset_passwords {
        rows.iter().map(|_| random_password()).collect()
    } else {
        Vec::new()
    };
    let fresh_hashes = hash_all(&fresh).await;
    let mut users = Vec::new();
    for (i, row) in rows.iter().enumerate() {
        let user_id: Uuid = row.get(0);
        let password = if reset_passwords {
            tx.execute(
                "UPDATE users SET password_hash = $1 WHERE id = $2",
                &[&fresh_hashes[i], &user_id],
            )
            .await?;
            Some(fresh[i].clone())
        } else {
            None
        };
        users.push(SeedUser {
            id: user_id,
            email: row.get(1),
            password,
            role: row.get(2),
        });
    }
    let messages = tx
        .query(
            "SELECT id, owner_user_id FROM email_messages WHERE tenant_id = $1 ORDER BY received_at, id",
            &[&id],
        )
        .await?
        .iter()
        .map(|r| SeedMessage { id: r.get(0), owner_user_id: r.get(1) })
        .collect();
    tx.commit().await?;
    Ok(DemoOutput {
        created: false,
        tenants: vec![SeedTenant {
            id,
            name: DEMO_TENANT.to_string(),
            users,
            messages,
        }],
    })
}

async fn set_tenant(tx: &impl GenericClient, tenant: Uuid) -> Result<(), tokio_postgres::Error> {
    // Transaction-local, exactly like the components do it.
    tx.query_one(
        "SELECT set_config($1, $2, true)",
        &[&TENANT_GUC, &tenant.to_string()],
    )
    .await?;
    Ok(())
}

/// Users, account, inbox and three messages per user for a tenant row that already exists.
async fn populate(
    tx: &impl GenericClient,
    tenant_id: Uuid,
    name: String,
    domain: &str,
    people: &[(String, String)],
    passwords: &[String],
    hashes: &[String],
) -> Result<SeedTenant, tokio_postgres::Error> {
    let mut users = Vec::new();
    for (((email, role), password), hash) in people.iter().zip(passwords).zip(hashes) {
        let id: Uuid = tx
            .query_one(
                "INSERT INTO users (tenant_id, email, password_hash, role) VALUES ($1, $2, $3, $4) RETURNING id",
                &[&tenant_id, email, hash, role],
            )
            .await?
            .get(0);
        users.push(SeedUser {
            id,
            email: email.clone(),
            password: Some(password.clone()),
            role: role.clone(),
        });
    }
    let admin_id = users[0].id;
    let account_id: Uuid = tx
        .query_one(
            "INSERT INTO email_accounts (tenant_id, owner_user_id, email_address, display_name)
             VALUES ($1, $2, $3, $4) RETURNING id",
            &[
                &tenant_id,
                &admin_id,
                &format!("mail@{domain}"),
                &format!("{name} mail"),
            ],
        )
        .await?
        .get(0);
    let folder_id: Uuid = tx
        .query_one(
            "INSERT INTO email_folders (tenant_id, account_id, name, path, special_use, imap_uidvalidity)
             VALUES ($1, $2, 'INBOX', 'INBOX', 'inbox', 1) RETURNING id",
            &[&tenant_id, &account_id],
        )
        .await?
        .get(0);

    let mut messages = Vec::new();
    let mut uid: i64 = 0;
    for user in &users {
        for n in 1..=3 {
            uid += 1;
            let subject = format!("Seed message {n} for {}", user.email);
            let body = format!(
                "Hello {},\n\nthis is seed message {n}. It has no attachments yet.\n",
                user.email
            );
            let id: Uuid = tx
                .query_one(
                    "INSERT INTO email_messages
                         (tenant_id, account_id, folder_id, owner_user_id, message_id, imap_uid, subject,
                          from_address, to_addresses, body_text, size_bytes, sent_at, received_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, ARRAY[$9], $10, $11,
                             app_now_ms() - $12, app_now_ms() - $12 + 1000)
                     RETURNING id",
                    &[
                        &tenant_id,
                        &account_id,
                        &folder_id,
                        &user.id,
                        &format!("{}@{domain}", Uuid::new_v4()),
                        &uid,
                        &subject,
                        &format!("sender@{domain}"),
                        &user.email,
                        &body,
                        &(body.len() as i64),
                        &((10 - uid) * 60_000),
                    ],
                )
                .await?
                .get(0);
            messages.push(SeedMessage {
                id,
                owner_user_id: user.id,
            });
        }
    }
    Ok(SeedTenant {
        id: tenant_id,
        name,
        users,
        messages,
    })
}
