//! Who may do what to an attachment, as pure rules over the ids the statements return. Every route
//! that touches an attachment asks here, so reading the record, its scan status, minting a URL for its
//! content and revoking those URLs cannot drift apart. Another tenant's rows never get this far: row-level security hides
//! them, and the routes answer `404`.

use auth_core::{AuthContext, Role};
use uuid::Uuid;

/// Reading an attachment (its record, scan status, content: issuing a download URL is reading the
/// content, and so is revoking the URLs issued for it): the message's owner, the uploader, or an admin
/// of the tenant. `uploader` is `None` for rules about a message as a whole.
pub fn may_read(ctx: &AuthContext, message_owner: Uuid, uploader: Option<Uuid>) -> bool {
    let me = *ctx.user.as_uuid();
    ctx.role == Role::Admin || message_owner == me || uploader == Some(me)
}

/// Changing an attachment (deleting it): the uploader or an admin.
pub fn may_manage(ctx: &AuthContext, uploader: Uuid) -> bool {
    ctx.role == Role::Admin || uploader == *ctx.user.as_uuid()
}

#[cfg(test)]
mod tests {
    use super::*;
    use auth_core::claims::AccessClaims;
    use auth_core::{TenantId, UserId};

    fn ctx(user: Uuid, role: Role) -> AuthContext {
        let claims = AccessClaims {
            user: UserId::from(user),
            tenant: TenantId::from(Uuid::from_u128(99)),
            role,
            jti: "j".into(),
            issued_at: 0,
            not_before: 0,
            expires_at: 900,
            kid: "k".into(),
        };
        AuthContext::from_claims(&claims, "rid", 0)
    }

    #[test]
    fn readers_are_owner_uploader_and_admins() {
        let (owner, uploader, other) = (Uuid::from_u128(1), Uuid::from_u128(2), Uuid::from_u128(3));
        assert!(may_read(&ctx(owner, Role::User), owner, Some(uploader)));
        assert!(may_read(&ctx(uploader, Role::User), owner, Some(uploader)));
        assert!(may_read(&ctx(other, Role::Admin), owner, Some(uploader)));
        assert!(!may_read(&ctx(other, Role::User), owner, Some(uploader)));
        assert!(!may_read(&ctx(uploader, Role::User), owner, None));
    }

    #[test]
    fn managers_are_uploader_and_admins() {
        let (owner, uploader) = (Uuid::from_u128(1), Uuid::from_u128(2));
        assert!(may_manage(&ctx(uploader, Role::User), uploader));
        assert!(may_manage(&ctx(owner, Role::Admin), uploader));
        assert!(!may_manage(&ctx(owner, Role::User), uploader));
    }
}
