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

/// Hands out up to `$3` pending rescans to worker `$1` (lease `$2` s), newest content first.
const CLAIM_RESCANS: &str = "SELECT job_id, tenant_id, blob_id, content_sha256, storage_key, size_bytes, attempts \
     FROM scan_claim_rescans($1, $2, $3)";

/// Queues rescans (see [`enqueue_rescans`]).
const ENQUEUE_RESCANS: &str = "SELECT scan_enqueue_rescans($1, $2, $3, $4, $5, $6, $7)";

/// How many rescans are open.
const OPEN_RESCANS: &str = "SELECT scan_open_rescans()";

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

/// Whether the tenant lets the VirusTotal engine upload content VirusTotal does not know.
const ALLOWS_UPLOAD: &str = "SELECT scan_tenant_allows_upload($1)";

/// Whether `tenant` lets the VirusTotal engine upload its content (`tenants.virustotal_upload`,
/// default off; `false` for an unknown tenant). The scanner role's one statement about tenants.
pub async fn allows_virustotal_upload<C: Conn>(conn: &C, tenant: Uuid) -> Result<bool> {
    const CONTEXT: &str = "tenant upload policy";
    let rows = conn
        .query(CONTEXT, ALLOWS_UPLOAD, vec![tenant.into()])
        .await?;
    match rows.first() {
        Some(r) => r.bool(0),
        None => Err(StoreError::decode(CONTEXT, "no row")),
    }
}

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
    /// A rescan of content judged clean before (claimed with [`claim_rescans`]).
    pub rescan: bool,
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
    claim_from(
        conn,
        "claim scan jobs",
        CLAIM,
        worker,
        lease_secs,
        limit,
        false,
    )
    .await
}

/// Claims up to `limit` pending rescans (newest content first) for `worker`, like [`claim`]. The
/// first scans of new content are never among them: [`claim`] takes those, and rescans only get
/// the slots first scans left free.
pub async fn claim_rescans<C: Conn>(
    conn: &C,
    worker: &str,
    lease_secs: u32,
    limit: u32,
) -> Result<Vec<ClaimedJob>> {
    claim_from(
        conn,
        "claim rescans",
        CLAIM_RESCANS,
        worker,
        lease_secs,
        limit,
        true,
    )
    .await
}

/// Which content to rescan (see [`enqueue_rescans`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RescanSelection<'a> {
    /// The engine whose verdict is outdated (`clamav`, `virustotal`).
    pub engine: &'a str,
    /// Content that engine judged under a smaller signature version.
    pub signature_version: Option<i64>,
    /// Content whose verdict by that engine arrived before this time (epoch ms).
    pub judged_before: Option<i64>,
    /// Only content created at or after this time (epoch ms).
    pub created_since: Option<i64>,
    /// Also content that engine never judged.
    pub unjudged_too: bool,
    /// One tenant's content only.
    pub tenant: Option<Uuid>,
}

/// Queues rescans of clean content matching `what`, newest first, until `max_open` rescans are
/// open; how many it queued.
pub async fn enqueue_rescans<C: Conn>(
    conn: &C,
    what: &RescanSelection<'_>,
    max_open: u32,
) -> Result<u64> {
    const CONTEXT: &str = "enqueue rescans";
    let opt_int = |v: Option<i64>| v.map_or(Param::Null, Param::Int64);
    let rows = conn
        .query(
            CONTEXT,
            ENQUEUE_RESCANS,
            vec![
                what.engine.into(),
                opt_int(what.signature_version),
                opt_int(what.judged_before),
                opt_int(what.created_since),
                Param::Bool(what.unjudged_too),
                Param::opt_uuid(what.tenant),
                Param::Int32(i32::try_from(max_open).unwrap_or(i32::MAX)),
            ],
        )
        .await?;
    match rows.first() {
        Some(r) => Ok(u64::try_from(r.int(0)?).unwrap_or(0)),
        None => Err(StoreError::decode(CONTEXT, "no row")),
    }
}

/// How many rescans are open (pending or running).
pub async fn open_rescans<C: Conn>(conn: &C) -> Result<u64> {
    const CONTEXT: &str = "open rescans";
    let rows = conn.query(CONTEXT, OPEN_RESCANS, vec![]).await?;
    match rows.first() {
        Some(r) => Ok(u64::try_from(r.int(0)?).unwrap_or(0)),
        None => Err(StoreError::decode(CONTEXT, "no row")),
    }
}

async fn claim_from<C: Conn>(
    conn: &C,
    context: &'static str,
    sql: &'static str,
    worker: &str,
    lease_secs: u32,
    limit: u32,
    rescan: bool,
) -> Result<Vec<ClaimedJob>> {
    let int = |n: u32| Param::Int32(i32::try_from(n).unwrap_or(i32::MAX));
    let rows = conn
        .query(
            context,
            sql,
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
                    .map_err(|_| StoreError::decode(context, format!("attempts {attempts}")))?,
                rescan,
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
