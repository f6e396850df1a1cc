//! `email_messages` as the attachment routes see them: whether a message is there (live, in the
//! transaction's tenant) and whose it is.

use uuid::Uuid;

use crate::conn::{Conn, TenantTx};
use crate::error::Result;

const LIVE_OWNER: &str =
    "SELECT owner_user_id FROM email_messages WHERE id = $1 AND NOT is_deleted";

/// The owner of `message` when it is a live message of the transaction's tenant; `None` when it is
/// deleted, another tenant's, or does not exist.
pub async fn live_owner<C: Conn>(tx: &TenantTx<'_, C>, message: Uuid) -> Result<Option<Uuid>> {
    let rows = tx
        .query("message owner", LIVE_OWNER, vec![message.into()])
        .await?;
    rows.first().map(|r| r.uuid(0)).transpose()
}
