//! `users` and `tenants` as the token service reads them: the login lookup (before any tenant is
//! known, through the `SECURITY DEFINER` function `auth_lookup_user`, the only way the app role
//! sees a password hash) and the caller's own record under the tenant's row-level security; and,
//! for the operator's `users` tool only (the app role may not write `users`), a user's state.

use auth_core::{Email, Role, TenantId, UserId};

use crate::conn::{Conn, TenantTx};
use crate::error::{Result, StoreError};
use crate::value::{Param, Row};

const LOOKUP_LOGIN: &str =
    "SELECT user_id, tenant_id, password_hash, role, active FROM auth_lookup_user($1)";

const CURRENT: &str = "SELECT u.email, u.active AND t.active FROM users u \
     JOIN tenants t ON t.id = u.tenant_id WHERE u.id = $1";

/// The user an email logs in as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginUser {
    pub id: UserId,
    pub tenant: TenantId,
    /// The PHC string to verify the password against.
    pub password_hash: String,
    pub role: Role,
    /// The user and its tenant are both enabled.
    pub active: bool,
}

/// The user whose email is `email` (case-insensitive), in whichever tenant; a single statement
/// outside any transaction.
pub async fn login_user<C: Conn>(conn: &C, email: &Email) -> Result<Option<LoginUser>> {
    let rows = conn
        .query("login lookup", LOOKUP_LOGIN, vec![email.as_str().into()])
        .await?;
    let Some(r) = rows.first() else {
        return Ok(None);
    };
    Ok(Some(LoginUser {
        id: UserId::from_uuid(r.uuid(0)?),
        tenant: TenantId::from_uuid(r.uuid(1)?),
        password_hash: r.text(2)?,
        role: role(r, 3)?,
        active: r.bool(4)?,
    }))
}

/// The caller's own record, as `GET /auth/me` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CurrentUser {
    pub email: String,
    /// The user and its tenant are both enabled.
    pub active: bool,
}

/// The user `user` of the transaction's tenant; `None` when there is none (row-level security
/// hides other tenants' users).
pub async fn current_user<C: Conn>(
    tx: &TenantTx<'_, C>,
    user: &UserId,
) -> Result<Option<CurrentUser>> {
    let rows = tx
        .query("current user", CURRENT, vec![Param::from(user)])
        .await?;
    rows.first()
        .map(|r| {
            Ok(CurrentUser {
                email: r.text(0)?,
                active: r.bool(1)?,
            })
        })
        .transpose()
}

const SET_STATE: &str = "UPDATE users SET active = COALESCE($2, active), role = COALESCE($3, role) \
     WHERE id = $1 RETURNING email, role, active";

/// A user's state after [`set_state`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserState {
    pub email: String,
    pub role: Role,
    pub active: bool,
}

/// Sets `user`'s `active` and/or `role` (`None` leaves it) in the transaction's tenant; `None` when
/// there is no such user. Needs a role that may update `users` (the owner, as the `users` tool
/// connects); the app role may not.
pub async fn set_state<C: Conn>(
    tx: &TenantTx<'_, C>,
    user: &UserId,
    active: Option<bool>,
    new_role: Option<Role>,
) -> Result<Option<UserState>> {
    let rows = tx
        .query(
            "set user state",
            SET_STATE,
            vec![
                Param::from(user),
                active.map_or(Param::Null, Param::Bool),
                Param::opt_text(new_role.map(|r| r.as_str())),
            ],
        )
        .await?;
    rows.first()
        .map(|r| {
            Ok(UserState {
                email: r.text(0)?,
                role: role(r, 1)?,
                active: r.bool(2)?,
            })
        })
        .transpose()
}

/// A `role` column (`user` or `admin`, as the table's `CHECK` promises).
pub(crate) fn role(r: &Row, i: usize) -> Result<Role> {
    let text = r.text(i)?;
    text.parse()
        .map_err(|_| StoreError::decode("role", format!("column {i}: {text:?}")))
}
