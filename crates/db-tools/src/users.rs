//! The operator's account changes (the `users` binary): deactivate or reactivate a user, change their
//! role, or end their sessions. The app role may not write `users`, so this runs with the owner's
//! connection.
//!
//! A change that ends sessions (deactivation, a role change, `end_sessions`) revokes every refresh
//! token of the user in the database and puts a revocation mark for the user in Redis
//! (`auth_core::revocation`), which the auth middleware reads on every request, so the user's access
//! tokens stop working at once instead of at their `exp`. The Redis mark is written before the
//! database commits: if Redis is unreachable nothing changes and the tool fails, so an operator
//! never believes a user was locked out while their tokens still work. The change and its audit row
//! (`admin.user_updated`) commit together.

use auth_core::claims::MAX_ACCESS_TTL_SECS;
use auth_core::{Email, Role, TenantId, UserId, revocation};
use serde::Serialize;
use serde_json::json;
use store::audit_log::{self, AuditEntry};
use store::sessions::{self, EndedBy};
use store::{Tx, identity};
use tokio_postgres::Client;

/// What to change; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Change {
    pub active: Option<bool>,
    pub role: Option<Role>,
    /// End every session even if nothing else changes.
    pub end_sessions: bool,
}

/// The user after the change, as the tool prints it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Outcome {
    pub id: UserId,
    pub tenant_id: TenantId,
    pub email: String,
    pub role: Role,
    pub active: bool,
    /// Whether the user's sessions were ended (refresh tokens revoked, access tokens marked).
    pub sessions_ended: bool,
    pub revoked_refresh_tokens: u64,
}

/// Whether `change` ends the sessions of a user whose role is now `role`.
pub fn ends_sessions(change: &Change, role: Role) -> bool {
    change.end_sessions || change.active == Some(false) || change.role.is_some_and(|r| r != role)
}

/// Applies `change` to the user whose email is `email`; `Ok(None)` when there is no such user.
pub async fn apply(
    client: &Client,
    redis_url: &str,
    email: &Email,
    change: &Change,
    now: i64,
) -> Result<Option<Outcome>, String> {
    let Some(found) = identity::login_user(client, email)
        .await
        .map_err(|e| e.to_string())?
    else {
        return Ok(None);
    };
    let ending = ends_sessions(change, found.role);
    let tx = Tx::for_tenant(client, &found.tenant)
        .await
        .map_err(|e| e.to_string())?;
    let state = identity::set_state(&tx, &found.id, change.active, change.role)
        .await
        .map_err(|e| e.to_string())?
        .ok_or("the user vanished during the change")?;
    let revoked = if ending {
        sessions::revoke_all_of_user(&tx, &found.id, now.saturating_mul(1000), EndedBy::Admin)
            .await
            .map_err(|e| e.to_string())?
    } else {
        0
    };
    audit_log::record(
        &tx,
        &AuditEntry {
            user: None,
            action: "admin.user_updated",
            resource_type: Some("user"),
            resource_id: Some(found.id.to_string()),
            request_id: "users-tool",
            client_addr: None,
            details: json!({
                "active": state.active,
                "role": state.role.as_str(),
                "sessionsEnded": ending,
                "revokedRefreshTokens": revoked,
            }),
        },
    )
    .await
    .map_err(|e| e.to_string())?;
    if ending {
        mark_user(redis_url, &found.id, now)?;
    }
    tx.commit().await.map_err(|e| e.to_string())?;
    Ok(Some(Outcome {
        id: found.id,
        tenant_id: found.tenant,
        email: state.email,
        role: state.role,
        active: state.active,
        sessions_ended: ending,
        revoked_refresh_tokens: revoked,
    }))
}

/// Puts `user`'s revocation mark (every token issued up to `now`) in Redis.
fn mark_user(redis_url: &str, user: &UserId, now: i64) -> Result<(), String> {
    let unreachable = |e: redis::RedisError| format!("redis {redis_url}: {e}");
    let mut conn = redis::Client::open(redis_url)
        .map_err(unreachable)?
        .get_connection()
        .map_err(unreachable)?;
    let mut cmd = redis::cmd("EVAL");
    for arg in revocation::mark_user_args(user, now, MAX_ACCESS_TTL_SECS) {
        cmd.arg(arg);
    }
    cmd.query::<i64>(&mut conn).map(|_| ()).map_err(unreachable)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_end_on_deactivation_a_new_role_or_when_asked() {
        let none = Change::default();
        assert!(!ends_sessions(&none, Role::User));
        let off = Change {
            active: Some(false),
            ..Change::default()
        };
        assert!(ends_sessions(&off, Role::User));
        let on = Change {
            active: Some(true),
            ..Change::default()
        };
        assert!(!ends_sessions(&on, Role::User));
        let demote = Change {
            role: Some(Role::User),
            ..Change::default()
        };
        assert!(ends_sessions(&demote, Role::Admin));
        assert!(
            !ends_sessions(&demote, Role::User),
            "the same role is no change"
        );
        let end = Change {
            end_sessions: true,
            ..Change::default()
        };
        assert!(ends_sessions(&end, Role::User));
    }
}
