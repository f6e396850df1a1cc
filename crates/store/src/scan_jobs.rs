//! The scan queue (`scan_jobs`): the worker's claim and completion (`SECURITY DEFINER` functions
//! that work across tenants with a lease, `FOR UPDATE SKIP LOCKED`: workers side by side take
//! disjoint jobs), and the callback's side: a content's open jobs, locked and then answered by its
//! verdict. Enqueueing a new content's job belongs to the upload (`blobs`).

use uuid::Uuid;

use crate::conn::{Conn, TenantTx};
use crate::error::{Result, StoreError};
use crate::value::Param;
use crate::verdicts::Content;

/// Hands out up to `$3` jobs to worker `$1` with a lease of `$2` seconds: expired leases first,
/// then pending jobs whose backoff has passed; jobs out of attempts fail, and their content gets
/// the verdict `error`.
const CLAIM: &str = "SELECT job_id, tenant_id, blob_id, content_sha256, storage_key, size_bytes, attempts \
     FROM scan_claim_jobs($1, $2, $3)";

/// `done`, `pending` (retried after a backoff), `failed` or `not_owner`.
const COMPLETE: &str = "SELECT scan_complete_job($1, $2, $3)";

/// A content's open jobs, locked: the queue's functions lock a job and then update its content, so
/// the callback takes its locks in the same order (jobs, then the content row).
const LOCK_OPEN_BY_ID: &str = "SELECT j.id FROM scan_jobs j \
     JOIN attachment_blobs b ON b.tenant_id = j.tenant_id AND b.id = j.blob_id \
     WHERE b.id = $1 AND j.status IN ('pending', 'running') ORDER BY j.id FOR UPDATE OF j";
const LOCK_OPEN_BY_HASH: &str = "SELECT j.id FROM scan_jobs j \
     JOIN attachment_blobs b ON b.tenant_id = j.tenant_id AND b.id = j.blob_id \
     WHERE b.content_sha256 = $1 AND j.status IN ('pending', 'running') ORDER BY j.id FOR UPDATE OF j";

/// A content's open jobs are answered by its verdict.
const COMPLETE_OPEN: &str = "UPDATE scan_jobs \
     SET status = 'done', lease_expires_at = NULL, locked_by = NULL, finished_at = app_now_ms() \
     WHERE blob_id = $1 AND status IN ('pending', 'running')";

/// A claimed job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedJob {
    /// The job.
    pub id: Uuid,
    /// The content's tenant.
    pub tenant_id: Uuid,
    /// The content row.
    pub blob_id: Uuid,
    /// The content's lowercase hex SHA-256.
    pub content_sha256: String,
    /// Where the object is.
    pub storage_key: String,
    /// Its size.
    pub size_bytes: i64,
    /// This is the job's `attempts`-th claim.
    pub attempts: i32,
}

/// What became of a job handed back with [`complete`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobState {
    /// Finished.
    Done,
    /// Back in the queue, after a backoff.
    Pending,
    /// Out of attempts: the content got the verdict `error`.
    Failed,
    /// Not this worker's any more: its lease passed to another worker, or a verdict answered the
    /// job already.
    NotOwner,
}

impl JobState {
    /// The database's (and the log's) word for it.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Done => "done",
            Self::Pending => "pending",
            Self::Failed => "failed",
            Self::NotOwner => "not_owner",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        [Self::Done, Self::Pending, Self::Failed, Self::NotOwner]
            .into_iter()
            .find(|j| j.as_str() == s)
    }
}

/// Claims up to `limit` jobs for `worker` with a lease of `lease_secs`: one statement, without a
/// tenant and outside a transaction, so the claim commits with it. The database refuses an
/// empty or overlong worker name, a lease outside 1..=86400 s and a limit outside 1..=1000
/// (`invalid_parameter_value`).
pub async fn claim<C: Conn>(
    conn: &C,
    worker: &str,
    lease_secs: u32,
    limit: u32,
) -> Result<Vec<ClaimedJob>> {
    const CONTEXT: &str = "claim scan jobs";
    let int = |n: u32| Param::Int32(i32::try_from(n).unwrap_or(i32::MAX));
    let rows = conn
        .query(
            CONTEXT,
            CLAIM,
            vec![worker.into(), int(lease_secs), int(limit)],
        )
        .await?;
    rows.iter()
        .map(|r| {
            let attempts = r.int(6)?;
            Ok(ClaimedJob {
                id: r.uuid(0)?,
                tenant_id: r.uuid(1)?,
                blob_id: r.uuid(2)?,
                content_sha256: r.text(3)?,
                storage_key: r.text(4)?,
                size_bytes: r.int(5)?,
                attempts: i32::try_from(attempts)
                    .map_err(|_| StoreError::decode(CONTEXT, format!("attempts {attempts}")))?,
            })
        })
        .collect()
}

/// Hands job `job` back: finished (`error` `None`), or failed this time for `error` (retried with
/// backoff until its attempts run out). Only the worker holding the lease may.
pub async fn complete<C: Conn>(
    conn: &C,
    job: Uuid,
    worker: &str,
    error: Option<&str>,
) -> Result<JobState> {
    const CONTEXT: &str = "complete scan job";
    let rows = conn
        .query(
            CONTEXT,
            COMPLETE,
            vec![job.into(), worker.into(), Param::opt_text(error)],
        )
        .await?;
    let state = match rows.first() {
        Some(r) => r.text(0)?,
        None => return Err(StoreError::decode(CONTEXT, "no row")),
    };
    JobState::parse(&state)
        .ok_or_else(|| StoreError::decode(CONTEXT, format!("job state {state:?}")))
}

/// Locks the open (`pending`, `running`) jobs of `content`; how many there are. Call it before
/// [`crate::verdicts::lock_blob`] (see there).
pub async fn lock_open<C: Conn>(tx: &TenantTx<'_, C>, content: Content<'_>) -> Result<usize> {
    let sql = match content {
        Content::Id(_) => LOCK_OPEN_BY_ID,
        Content::Hash(_) => LOCK_OPEN_BY_HASH,
    };
    Ok(tx
        .query("lock open scan jobs", sql, vec![content.param()])
        .await?
        .len())
}

/// Marks the open jobs of content `blob` done (its verdict answered them); how many.
pub async fn complete_open<C: Conn>(tx: &TenantTx<'_, C>, blob: Uuid) -> Result<u64> {
    tx.execute("complete open scan jobs", COMPLETE_OPEN, vec![blob.into()])
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_states_are_the_database_words() {
        for s in [
            JobState::Done,
            JobState::Pending,
            JobState::Failed,
            JobState::NotOwner,
        ] {
            assert_eq!(JobState::parse(s.as_str()), Some(s));
        }
        assert_eq!(JobState::parse("running"), None);
    }
}
