//! The worker's side of direct-to-storage uploads (`upload_sessions`, migration 0014): claiming
//! completed sessions to verify and handing them back after a transient failure, and the janitor's
//! work (aborting expired multipart uploads, deleting unused objects, forgetting finished rows).
//! Every statement is one call of a `SECURITY DEFINER` function that works across tenants with a
//! lease (`FOR UPDATE SKIP LOCKED`: workers side by side take disjoint rows), the only thing the
//! scanner role may do with the table. The app's side (creating sessions, recording a verification's
//! outcome) is `uploads`.

use uuid::Uuid;

use crate::conn::Conn;
use crate::error::{Result, StoreError};
use crate::value::{Param, Row};

/// Hands out up to `$3` verifying sessions to worker `$1` with a lease of `$2` seconds; sessions
/// that used up `$4` attempts are rejected (`verification_failed`) on the way.
const CLAIM: &str = "SELECT upload_id, tenant_id, storage_key, claimed_size, claimed_sha256, filename, \
     declared_mime, attempts FROM upload_claim_verifications($1, $2, $3, $4)";

/// `pending` (retried after a backoff) or `not_owner`.
const RELEASE: &str = "SELECT upload_release_verification($1, $2, $3)";

/// Up to `$3` rows of janitor work for worker `$1`, leased for `$2` seconds.
const JANITOR_CLAIM: &str = "SELECT upload_id, tenant_id, action, storage_key, s3_upload_id \
     FROM upload_janitor_claim($1, $2, $3)";

/// Whether the unused object's deletion was recorded.
const OBJECT_DELETED: &str = "SELECT upload_object_deleted($1, $2)";

/// Whether the expired row was deleted.
const FORGET: &str = "SELECT upload_forget_session($1, $2)";

/// A completed upload to verify: what its client claimed, and where the object is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedVerification {
    /// The upload session (`uploadId`).
    pub upload_id: Uuid,
    /// Its tenant.
    pub tenant_id: Uuid,
    /// Where the completed object is.
    pub storage_key: String,
    /// The size the client claimed when it created the session.
    pub claimed_size: u64,
    /// The lowercase hex SHA-256 the client claimed, if it did.
    pub claimed_sha256: Option<String>,
    /// The filename the session was created with (already through the app's filename policy).
    pub filename: String,
    /// The type the client declared, as recorded (`declared_type`).
    pub declared_mime: Option<String>,
    /// This is the session's `attempts`-th claim.
    pub attempts: u32,
}

/// What became of a verification handed back with [`release_verification`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReleaseState {
    /// Back in the queue, after a backoff.
    Pending,
    /// Not this worker's any more: its lease passed to another worker, or the outcome was recorded.
    NotOwner,
}

impl ReleaseState {
    /// The database's (and the log's) word for it.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::NotOwner => "not_owner",
        }
    }
}

/// What the janitor does with a row it claimed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JanitorAction {
    /// An expired session that never completed: AbortMultipartUpload, then [`forget_session`].
    Abort,
    /// An object nobody uses: DeleteObject, then [`object_deleted`].
    Delete,
    /// An expired finished session whose object is settled: [`forget_session`].
    Forget,
}

impl JanitorAction {
    /// The database's (and the log's) word for it.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Abort => "abort",
            Self::Delete => "delete",
            Self::Forget => "forget",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        [Self::Abort, Self::Delete, Self::Forget]
            .into_iter()
            .find(|a| a.as_str() == s)
    }
}

/// One row of janitor work, leased to the worker that claimed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JanitorTask {
    /// The upload session.
    pub upload_id: Uuid,
    /// Its tenant.
    pub tenant_id: Uuid,
    /// What to do.
    pub action: JanitorAction,
    /// The session's object key.
    pub storage_key: String,
    /// The session's multipart upload at storage.
    pub s3_upload_id: String,
}

fn int4(n: u32) -> Param {
    Param::Int32(i32::try_from(n).unwrap_or(i32::MAX))
}

fn one_row<'r>(context: &'static str, rows: &'r [Row]) -> Result<&'r Row> {
    rows.first()
        .ok_or_else(|| StoreError::decode(context, "no row"))
}

/// Claims up to `limit` verifying sessions for `worker` with a lease of `lease_secs`; sessions
/// that already had `max_attempts` claims are rejected with `verification_failed` (their object is
/// then unused) instead of being handed out. One statement outside a transaction, so the claim
/// commits with it. The database refuses an empty or overlong worker name, a lease outside
/// 1..=86400 s, a limit outside 1..=1000 and `max_attempts` outside 1..=100
/// (`invalid_parameter_value`).
pub async fn claim_verifications<C: Conn>(
    conn: &C,
    worker: &str,
    lease_secs: u32,
    limit: u32,
    max_attempts: u32,
) -> Result<Vec<ClaimedVerification>> {
    const CONTEXT: &str = "claim upload verifications";
    let rows = conn
        .query(
            CONTEXT,
            CLAIM,
            vec![
                worker.into(),
                int4(lease_secs),
                int4(limit),
                int4(max_attempts),
            ],
        )
        .await?;
    rows.iter()
        .map(|r| {
            let size = r.int(3)?;
            let attempts = r.int(7)?;
            Ok(ClaimedVerification {
                upload_id: r.uuid(0)?,
                tenant_id: r.uuid(1)?,
                storage_key: r.text(2)?,
                claimed_size: u64::try_from(size)
                    .map_err(|_| StoreError::decode(CONTEXT, format!("claimed_size {size}")))?,
                claimed_sha256: r.opt_text(4)?,
                filename: r.text(5)?,
                declared_mime: r.opt_text(6)?,
                attempts: u32::try_from(attempts)
                    .map_err(|_| StoreError::decode(CONTEXT, format!("attempts {attempts}")))?,
            })
        })
        .collect()
}

/// Hands verification `upload` back after a transient failure (`error`, kept as the session's
/// `last_error`): it is claimable again after a backoff, until its attempts run out. Only the
/// worker holding the lease may.
pub async fn release_verification<C: Conn>(
    conn: &C,
    upload: Uuid,
    worker: &str,
    error: &str,
) -> Result<ReleaseState> {
    const CONTEXT: &str = "release upload verification";
    let rows = conn
        .query(
            CONTEXT,
            RELEASE,
            vec![upload.into(), worker.into(), error.into()],
        )
        .await?;
    match one_row(CONTEXT, &rows)?.text(0)?.as_str() {
        "pending" => Ok(ReleaseState::Pending),
        "not_owner" => Ok(ReleaseState::NotOwner),
        other => Err(StoreError::decode(CONTEXT, format!("state {other:?}"))),
    }
}

/// Claims up to `limit` rows of janitor work for `worker` with a lease of `lease_secs` (the same
/// argument limits as [`claim_verifications`]).
pub async fn janitor_claim<C: Conn>(
    conn: &C,
    worker: &str,
    lease_secs: u32,
    limit: u32,
) -> Result<Vec<JanitorTask>> {
    const CONTEXT: &str = "claim upload janitor work";
    let rows = conn
        .query(
            CONTEXT,
            JANITOR_CLAIM,
            vec![worker.into(), int4(lease_secs), int4(limit)],
        )
        .await?;
    rows.iter()
        .map(|r| {
            let action = r.text(2)?;
            Ok(JanitorTask {
                upload_id: r.uuid(0)?,
                tenant_id: r.uuid(1)?,
                action: JanitorAction::parse(&action)
                    .ok_or_else(|| StoreError::decode(CONTEXT, format!("action {action:?}")))?,
                storage_key: r.text(3)?,
                s3_upload_id: r.text(4)?,
            })
        })
        .collect()
}

/// Records that the unused object of `upload` is gone from storage. `worker` must hold the row's
/// lease, or the row must hold none (the verifier deleting at once after the app's answer); false
/// when the row is not (or no longer) marked unused or another worker holds it.
pub async fn object_deleted<C: Conn>(conn: &C, upload: Uuid, worker: &str) -> Result<bool> {
    const CONTEXT: &str = "record unused upload object deleted";
    let rows = conn
        .query(CONTEXT, OBJECT_DELETED, vec![upload.into(), worker.into()])
        .await?;
    one_row(CONTEXT, &rows)?.bool(0)
}

/// Deletes the expired row of `upload`, which `worker` holds with a janitor lease, once its
/// multipart upload is aborted or its object settled; false when it may not (any more): another
/// worker's lease, an object still to delete, or a session that turned `verifying` meanwhile.
pub async fn forget_session<C: Conn>(conn: &C, upload: Uuid, worker: &str) -> Result<bool> {
    const CONTEXT: &str = "forget upload session";
    let rows = conn
        .query(CONTEXT, FORGET, vec![upload.into(), worker.into()])
        .await?;
    one_row(CONTEXT, &rows)?.bool(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn janitor_actions_are_the_database_words() {
        for a in [
            JanitorAction::Abort,
            JanitorAction::Delete,
            JanitorAction::Forget,
        ] {
            assert_eq!(JanitorAction::parse(a.as_str()), Some(a));
        }
        assert_eq!(JanitorAction::parse("Abort"), None);
        assert_eq!(JanitorAction::parse(""), None);
    }

    #[test]
    fn oversized_numbers_do_not_wrap() {
        // The database refuses a limit out of range; a huge u32 must reach it as a huge number,
        // not wrap into a negative or small one that it would accept.
        assert_eq!(int4(u32::MAX), Param::Int32(i32::MAX));
        assert_eq!(int4(7), Param::Int32(7));
    }
}
