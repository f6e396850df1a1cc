//! One module per route (see the table in the crate docs), and the message check two of them share.

pub(crate) mod delete;
pub(crate) mod direct;
pub(crate) mod emails;
pub(crate) mod get;
pub(crate) mod legal_hold;
pub(crate) mod list;
pub(crate) mod tus;
pub(crate) mod upload;
pub(crate) mod usage;

use auth_core::AuthContext;
use edge::{ApiError, Problem};
use store::{Conn, TenantTx, access, messages};
use uuid::Uuid;

/// The message must be a live one of the caller's tenant (`404`) and readable by the caller: its
/// owner or an admin (`403`).
pub(crate) async fn check_message<C: Conn>(
    tx: &TenantTx<'_, C>,
    ctx: &AuthContext,
    message: Uuid,
) -> Result<(), ApiError> {
    let Some(owner) = messages::live_owner(tx, message).await? else {
        return Err(Problem::not_found().into());
    };
    if access::may_read(ctx, owner, None) {
        Ok(())
    } else {
        Err(Problem::forbidden().into())
    }
}
