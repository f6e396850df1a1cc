//! A failed login: `401 invalid_credentials` whatever the reason (unknown email, wrong password,
//! disabled user or tenant), after recording the reason: `auth.login_failed` in the user's tenant,
//! or, for an email nobody has (no tenant to audit in), a log event.

use edge::app::{Call, Component};
use edge::{ApiError, Code, Problem, log};
use serde_json::json;
use store::Tx;
use store::audit_log::{self, AuditEntry};
use store::identity::LoginUser;
use store::spin::Db;

use crate::Auth;

/// The error to answer with, once the failure is recorded (best effort: the answer is the same
/// whether the audit row was written or not).
pub(crate) async fn refuse(
    db: &Db,
    call: &mut Call,
    user: Option<LoginUser>,
    client: Option<String>,
) -> ApiError {
    let reason = match &user {
        None => "unknown_email",
        Some(u) if !u.active => "inactive",
        Some(_) => "wrong_password",
    };
    call.log.outcome = "invalid_credentials".into();
    call.log.reason = Some(reason.into());
    let rid = call.request_id.as_str();
    let Some(u) = user else {
        log::event(
            Auth::NAME,
            "login_failed",
            json!({ "reason": reason, "requestId": rid, "clientAddr": client }),
        );
        return Problem::new(Code::InvalidCredentials).into();
    };
    call.log.user_id = Some(u.id.to_string());
    call.log.tenant_id = Some(u.tenant.to_string());
    let entry = AuditEntry {
        user: Some(&u.id),
        action: "auth.login_failed",
        resource_type: Some("user"),
        resource_id: Some(u.id.to_string()),
        request_id: rid,
        client_addr: client,
        details: json!({ "reason": reason }),
    };
    let written = async {
        let tx = Tx::for_tenant(db, &u.tenant).await?;
        audit_log::record(&tx, &entry).await?;
        tx.commit().await
    }
    .await;
    if let Err(e) = written {
        log::event(
            Auth::NAME,
            "audit_write_failed",
            json!({ "action": entry.action, "requestId": rid, "cause": e.to_string() }),
        );
    }
    Problem::new(Code::InvalidCredentials).into()
}
