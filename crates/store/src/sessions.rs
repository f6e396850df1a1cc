//! `refresh_tokens`: the refresh-token families of logins. A login starts a family; each refresh
//! rotates its token atomically in `auth_rotate_refresh_token` (a `SECURITY DEFINER` function: the
//! presented token is all a refresh knows, no tenant yet); a logout revokes a family. Tokens are
//! stored only as their hash (`auth_core::refresh::TokenHash`).

use auth_core::refresh::{FamilyId, RotateOutcome, TokenHash};
use auth_core::{Role, TenantId, UserId};

use crate::conn::{Conn, TenantTx, Tx};
use crate::error::{Result, StoreError};
use crate::identity;
use crate::value::Param;

const INSERT: &str = "INSERT INTO refresh_tokens (tenant_id, user_id, family_id, token_hash, expires_at) \
     VALUES ($1, $2, $3, $4, $5)";

const ROTATE: &str = "SELECT outcome, tenant_id, user_id, family_id, user_role, new_expires_at \
     FROM auth_rotate_refresh_token($1, $2, $3, $4, $5)";

const REVOKE_FAMILY: &str = "UPDATE refresh_tokens SET revoked_at = $3, revoked_reason = 'logout' \
     WHERE revoked_at IS NULL AND family_id = \
       (SELECT family_id FROM refresh_tokens WHERE token_hash = $1 AND user_id = $2)";

const REVOKE_ALL_OF_USER: &str = "UPDATE refresh_tokens SET revoked_at = $2, revoked_reason = $3 \
     WHERE revoked_at IS NULL AND user_id = $1";

/// Why every session of a user ends (`refresh_tokens.revoked_reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndedBy {
    /// The user logged out everywhere.
    Logout,
    /// An operator deactivated the user, changed their role or ended their sessions.
    Admin,
}

impl EndedBy {
    fn as_str(self) -> &'static str {
        match self {
            Self::Logout => "logout",
            Self::Admin => "admin",
        }
    }
}

/// Stores `token` as the first of the new family `family` of `user` (a login), in the
/// transaction's tenant.
pub async fn start_family<C: Conn>(
    tx: &TenantTx<'_, C>,
    user: &UserId,
    family: &FamilyId,
    token: &TokenHash,
    expires_at_ms: i64,
) -> Result<()> {
    tx.execute(
        "start refresh family",
        INSERT,
        vec![
            tx.tenant().into(),
            user.into(),
            Param::Uuid(*family.as_uuid()),
            token.as_str().into(),
            expires_at_ms.into(),
        ],
    )
    .await
    .map(|_| ())
}

/// Whose token a rotation looked at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenOwner {
    pub tenant: TenantId,
    pub user: UserId,
    pub family: FamilyId,
    /// The user's role now (`None` only if the user row is gone).
    pub role: Option<Role>,
}

/// What `auth_rotate_refresh_token` decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rotation {
    pub outcome: RotateOutcome,
    /// `None` for a token nobody holds ([`RotateOutcome::Unknown`]).
    pub owner: Option<TokenOwner>,
    /// The successor's expiry (epoch ms) when rotated: the asked one, or the family's end if sooner.
    pub next_expires_at_ms: Option<i64>,
}

/// The limits a rotation applies, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RotationLimits {
    /// A family ends this long after its login.
    pub family_max_age_ms: i64,
    /// A rotated token presented again with the same successor within this window gets that
    /// successor (two tabs refreshing at once) instead of counting as reuse.
    pub grace_ms: i64,
}

/// Rotates the token hashed `presented`: on success `next` (expiring at `next_expires_at_ms`, or
/// the family's end if sooner) is its successor in the same family. Commit the transaction
/// whatever the outcome: a reuse revoked the family, an inactive user's token was revoked, and both
/// must stick.
pub async fn rotate<C: Conn>(
    tx: &Tx<'_, C>,
    presented: &TokenHash,
    next: &TokenHash,
    next_expires_at_ms: i64,
    limits: RotationLimits,
) -> Result<Rotation> {
    let rows = tx
        .query(
            "rotate refresh token",
            ROTATE,
            vec![
                presented.as_str().into(),
                next.as_str().into(),
                next_expires_at_ms.into(),
                limits.family_max_age_ms.into(),
                limits.grace_ms.into(),
            ],
        )
        .await?;
    let r = rows
        .first()
        .ok_or_else(|| StoreError::decode("rotate refresh token", "no row"))?;
    let outcome = RotateOutcome::from_db(&r.text(0)?);
    let owner = match (r.opt_uuid(1)?, r.opt_uuid(2)?, r.opt_uuid(3)?) {
        (Some(tenant), Some(user), Some(family)) => Some(TokenOwner {
            tenant: TenantId::from_uuid(tenant),
            user: UserId::from_uuid(user),
            family: FamilyId::from_uuid(family),
            role: match r.opt_text(4)? {
                Some(_) => Some(identity::role(r, 4)?),
                None => None,
            },
        }),
        _ => None,
    };
    Ok(Rotation {
        outcome,
        owner,
        next_expires_at_ms: r.opt_int(5)?,
    })
}

/// Revokes (reason `logout`, at `now_ms`) every live token of the family of the token hashed
/// `token`, if that token is `user`'s; the number of tokens revoked.
pub async fn revoke_family<C: Conn>(
    tx: &TenantTx<'_, C>,
    token: &TokenHash,
    user: &UserId,
    now_ms: i64,
) -> Result<u64> {
    tx.execute(
        "revoke refresh family",
        REVOKE_FAMILY,
        vec![token.as_str().into(), user.into(), now_ms.into()],
    )
    .await
}

/// Revokes (at `now_ms`) every live refresh token of `user` in the transaction's tenant ("log out
/// everywhere", deactivation); the number of tokens revoked.
pub async fn revoke_all_of_user<C: Conn>(
    tx: &TenantTx<'_, C>,
    user: &UserId,
    now_ms: i64,
    by: EndedBy,
) -> Result<u64> {
    tx.execute(
        "revoke every refresh family of a user",
        REVOKE_ALL_OF_USER,
        vec![user.into(), now_ms.into(), by.as_str().into()],
    )
    .await
}
