//! Quota counters and limits: a tenant's own limits (`tenant_quotas`), what it and its users store
//! (`tenant_usage`, `user_usage`: kept by a trigger on `email_attachments`, read-only to the app),
//! and the bytes each user downloaded per UTC day (`user_download_usage`), charged with a
//! conditional upsert so concurrent downloads cannot together pass the limit.
//!
//! The stored counters move inside the transaction that inserts or deletes an attachment, and the
//! trigger's update locks the tenant's row (then the user's) until it ends: [`stored`] read after
//! the insert in that transaction sees totals no concurrent commit can change before this one
//! ends, which is what makes the check at commit race-free.

use ::quota::{Overrides, StoredUsage};
use uuid::Uuid;

use crate::conn::{Conn, TenantTx};
use crate::error::{Result, StoreError};
use crate::value::{Param, Row};

const OVERRIDES: &str = "SELECT tenant_bytes, tenant_attachments, user_bytes, user_attachments, \
     user_download_bytes_per_day FROM tenant_quotas WHERE tenant_id = $1";

const STORED: &str = "SELECT \
     coalesce((SELECT stored_bytes FROM tenant_usage WHERE tenant_id = $1), 0), \
     coalesce((SELECT attachments FROM tenant_usage WHERE tenant_id = $1), 0), \
     coalesce((SELECT stored_bytes FROM user_usage WHERE tenant_id = $1 AND user_id = $2), 0), \
     coalesce((SELECT attachments FROM user_usage WHERE tenant_id = $1 AND user_id = $2), 0)";

/// Today in UTC, as the database sees it (one clock for every instance).
const TODAY: &str = "(now() AT TIME ZONE 'UTC')::date";

const CHARGE_DOWNLOAD: &str = "INSERT INTO user_download_usage AS u (tenant_id, user_id, day, bytes) \
     SELECT $1, $2, (now() AT TIME ZONE 'UTC')::date, $3 WHERE $4::bigint IS NULL OR $3 <= $4::bigint \
     ON CONFLICT (tenant_id, user_id, day) DO UPDATE SET bytes = u.bytes + EXCLUDED.bytes \
     WHERE $4::bigint IS NULL OR u.bytes + EXCLUDED.bytes <= $4::bigint \
     RETURNING u.bytes";

const PER_USER: &str = "SELECT u.id, u.email, u.role, coalesce(s.stored_bytes, 0), \
     coalesce(s.attachments, 0), coalesce(d.bytes, 0) \
     FROM users u \
     LEFT JOIN user_usage s ON s.tenant_id = u.tenant_id AND s.user_id = u.id \
     LEFT JOIN user_download_usage d ON d.tenant_id = u.tenant_id AND d.user_id = u.id \
          AND d.day = (now() AT TIME ZONE 'UTC')::date \
     WHERE u.tenant_id = $1 ORDER BY u.email, u.id";

fn count(context: &'static str, n: i64) -> Result<u64> {
    u64::try_from(n).map_err(|_| StoreError::decode(context, format!("negative count {n}")))
}

fn opt_count(context: &'static str, r: &Row, i: usize) -> Result<Option<u64>> {
    r.opt_int(i)?.map(|n| count(context, n)).transpose()
}

/// The transaction's tenant's own limits (none set: every default applies).
pub async fn overrides<C: Conn>(tx: &TenantTx<'_, C>) -> Result<Overrides> {
    const CONTEXT: &str = "quota overrides";
    let rows = tx
        .query(CONTEXT, OVERRIDES, vec![tx.tenant().into()])
        .await?;
    let Some(r) = rows.first() else {
        return Ok(Overrides::default());
    };
    Ok(Overrides {
        tenant_bytes: opt_count(CONTEXT, r, 0)?,
        tenant_attachments: opt_count(CONTEXT, r, 1)?,
        user_bytes: opt_count(CONTEXT, r, 2)?,
        user_attachments: opt_count(CONTEXT, r, 3)?,
        user_download_bytes_per_day: opt_count(CONTEXT, r, 4)?,
    })
}

/// What the transaction's tenant and `user` store now, this transaction's own changes included.
pub async fn stored<C: Conn>(tx: &TenantTx<'_, C>, user: Uuid) -> Result<StoredUsage> {
    const CONTEXT: &str = "stored usage";
    let rows = tx
        .query(CONTEXT, STORED, vec![tx.tenant().into(), user.into()])
        .await?;
    let r = rows
        .first()
        .ok_or_else(|| StoreError::decode(CONTEXT, "no row returned"))?;
    Ok(StoredUsage {
        tenant_bytes: count(CONTEXT, r.int(0)?)?,
        tenant_attachments: count(CONTEXT, r.int(1)?)?,
        user_bytes: count(CONTEXT, r.int(2)?)?,
        user_attachments: count(CONTEXT, r.int(3)?)?,
    })
}

/// Bytes served to `user` today (UTC).
pub async fn downloaded_today<C: Conn>(tx: &TenantTx<'_, C>, user: Uuid) -> Result<u64> {
    const CONTEXT: &str = "downloads today";
    let sql = format!(
        "SELECT coalesce((SELECT bytes FROM user_download_usage \
         WHERE tenant_id = $1 AND user_id = $2 AND day = {TODAY}), 0)"
    );
    let rows = tx
        .query(CONTEXT, &sql, vec![tx.tenant().into(), user.into()])
        .await?;
    let r = rows
        .first()
        .ok_or_else(|| StoreError::decode(CONTEXT, "no row returned"))?;
    count(CONTEXT, r.int(0)?)
}

/// Adds `bytes` to what `user` downloaded today, unless that would pass `limit` (`None`:
/// unlimited): `Ok(true)` when charged, `Ok(false)` when refused (nothing changed).
pub async fn charge_download<C: Conn>(
    tx: &TenantTx<'_, C>,
    user: Uuid,
    bytes: u64,
    limit: Option<u64>,
) -> Result<bool> {
    const CONTEXT: &str = "charge download";
    let bytes = i64::try_from(bytes).unwrap_or(i64::MAX);
    let limit = limit.map_or(Param::Null, |l| {
        Param::Int64(i64::try_from(l).unwrap_or(i64::MAX))
    });
    let rows = tx
        .query(
            CONTEXT,
            CHARGE_DOWNLOAD,
            vec![tx.tenant().into(), user.into(), bytes.into(), limit],
        )
        .await?;
    Ok(!rows.is_empty())
}

/// One user's usage, as the tenant's admins see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserUsage {
    pub user: Uuid,
    pub email: String,
    pub role: String,
    pub stored_bytes: u64,
    pub attachments: u64,
    pub downloaded_today: u64,
}

/// Every user of the transaction's tenant with their usage, by email.
pub async fn per_user<C: Conn>(tx: &TenantTx<'_, C>) -> Result<Vec<UserUsage>> {
    const CONTEXT: &str = "usage per user";
    let rows = tx
        .query(CONTEXT, PER_USER, vec![tx.tenant().into()])
        .await?;
    rows.iter()
        .map(|r| {
            Ok(UserUsage {
                user: r.uuid(0)?,
                email: r.text(1)?,
                role: r.text(2)?,
                stored_bytes: count(CONTEXT, r.int(3)?)?,
                attachments: count(CONTEXT, r.int(4)?)?,
                downloaded_today: count(CONTEXT, r.int(5)?)?,
            })
        })
        .collect()
}
