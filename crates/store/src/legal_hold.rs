//! Legal holds (migration 0019): an attachment, or every attachment of a message, that the
//! retention purge must keep whatever its retention or deletion. Set and lifted by the tenant's
//! admins (`PUT`/`DELETE /api/v1/admin/attachments/{id}/legal-hold` and
//! `.../admin/emails/{messageId}/legal-hold`), in the tenant's transaction; the purge reads them.

use uuid::Uuid;

use crate::conn::{Conn, TenantTx};
use crate::error::Result;

const SET_ATTACHMENT: &str =
    "UPDATE email_attachments SET legal_hold = $2 WHERE id = $1 RETURNING id";
const SET_MESSAGE: &str = "UPDATE email_messages SET legal_hold = $2 WHERE id = $1 RETURNING id";

/// Puts attachment `id` (deleted or not) on hold, or lifts its hold; false when the tenant has no
/// such attachment.
pub async fn set_attachment<C: Conn>(tx: &TenantTx<'_, C>, id: Uuid, hold: bool) -> Result<bool> {
    let rows = tx
        .query(
            "attachment legal hold",
            SET_ATTACHMENT,
            vec![id.into(), hold.into()],
        )
        .await?;
    Ok(!rows.is_empty())
}

/// Puts message `id` (and so every attachment of it) on hold, or lifts its hold; false when the
/// tenant has no such message.
pub async fn set_message<C: Conn>(tx: &TenantTx<'_, C>, id: Uuid, hold: bool) -> Result<bool> {
    let rows = tx
        .query(
            "message legal hold",
            SET_MESSAGE,
            vec![id.into(), hold.into()],
        )
        .await?;
    Ok(!rows.is_empty())
}
