//! Storage and download quotas as pure rules, tested natively; the counters live in Postgres
//! (`store::quota`), the components ask here whether a usage may grow.
//!
//! - [`Limits`]: the five limits (stored bytes and attachments per tenant and per user, download
//!   bytes per user and UTC day), each `None` for unlimited. The defaults are settings (`quota_*`,
//!   `0` or empty = unlimited, anything else a whole number of at most `i64::MAX`); a tenant's
//!   [`Overrides`] replace any of them (`0` = unlimited there too).
//! - [`StoredUsage`] + [`Limits::check_stored`]: whether storing `bytes` more in `count` more
//!   attachments keeps the tenant and the user within their limits; the first limit it would pass
//!   is an [`Exceeded`].
//! - [`Exceeded::problem`]: `403 quota_exceeded`, with `quota` (which limit), `limit`, `usage` and
//!   `requested` as extension members.
//!
//! Bytes are logical: every attachment counts its own size, deduplicated or not.

use problem::{Code, Problem};
use serde::Serialize;

/// One limit: `None` is unlimited.
pub type Limit = Option<u64>;

/// A setting that is not a limit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{name}: {reason}")]
pub struct SettingError {
    pub name: &'static str,
    pub reason: &'static str,
}

/// Parses one limit setting: empty or `0` is unlimited; otherwise a whole number of at most
/// `i64::MAX` (what the database counts in). A sign, a fraction or garbage is refused.
pub fn parse_limit(name: &'static str, s: &str) -> Result<Limit, SettingError> {
    let s = s.trim();
    if s.is_empty() {
        return Ok(None);
    }
    if !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(SettingError {
            name,
            reason: "must be a whole number of 0 or more (0 or empty: unlimited)",
        });
    }
    let n: u64 = s.parse().map_err(|_| SettingError {
        name,
        reason: "is too large",
    })?;
    if n > i64::MAX as u64 {
        return Err(SettingError {
            name,
            reason: "is too large",
        });
    }
    Ok((n > 0).then_some(n))
}

/// Which limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Quota {
    TenantBytes,
    TenantAttachments,
    UserBytes,
    UserAttachments,
    UserDownloadBytesPerDay,
}

impl Quota {
    /// The wire name (`quota` of the problem, the setting's suffix).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::TenantBytes => "tenant_bytes",
            Self::TenantAttachments => "tenant_attachments",
            Self::UserBytes => "user_bytes",
            Self::UserAttachments => "user_attachments",
            Self::UserDownloadBytesPerDay => "user_download_bytes_per_day",
        }
    }
}

/// The limits in force for one tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Limits {
    pub tenant_bytes: Limit,
    pub tenant_attachments: Limit,
    pub user_bytes: Limit,
    pub user_attachments: Limit,
    pub user_download_bytes_per_day: Limit,
}

/// A tenant's own limits, as stored: `None` keeps the default, `Some(0)` is unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Overrides {
    pub tenant_bytes: Option<u64>,
    pub tenant_attachments: Option<u64>,
    pub user_bytes: Option<u64>,
    pub user_attachments: Option<u64>,
    pub user_download_bytes_per_day: Option<u64>,
}

/// What a tenant and one of its users store now (live attachments).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StoredUsage {
    pub tenant_bytes: u64,
    pub tenant_attachments: u64,
    pub user_bytes: u64,
    pub user_attachments: u64,
}

/// A limit a request would pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exceeded {
    pub quota: Quota,
    pub limit: u64,
    /// What is used now, without the request.
    pub usage: u64,
    /// What the request would add.
    pub requested: u64,
}

impl Exceeded {
    /// `403 quota_exceeded`, saying which limit, the limit, the usage and the request.
    pub fn problem(&self) -> Problem {
        let detail = match self.quota {
            Quota::TenantBytes => "The organisation's storage quota does not allow this upload.",
            Quota::TenantAttachments => {
                "The organisation's attachment count quota does not allow this upload."
            }
            Quota::UserBytes => "Your storage quota does not allow this upload.",
            Quota::UserAttachments => "Your attachment count quota does not allow this upload.",
            Quota::UserDownloadBytesPerDay => {
                "Your daily download quota does not allow this download; it resets at 00:00 UTC."
            }
        };
        Problem::new(Code::QuotaExceeded)
            .detail(detail)
            .extension("quota", self.quota.as_str())
            .extension("limit", self.limit)
            .extension("usage", self.usage)
            .extension("requested", self.requested)
    }
}

fn within(quota: Quota, limit: Limit, usage: u64, requested: u64) -> Result<(), Exceeded> {
    match limit {
        Some(limit) if usage.saturating_add(requested) > limit => Err(Exceeded {
            quota,
            limit,
            usage,
            requested,
        }),
        _ => Ok(()),
    }
}

fn pick(default: Limit, own: Option<u64>) -> Limit {
    match own {
        None => default,
        Some(0) => None,
        Some(n) => Some(n),
    }
}

impl Limits {
    /// The defaults from the five settings (see [`parse_limit`]), in the order of the fields.
    pub fn from_config(
        tenant_bytes: &str,
        tenant_attachments: &str,
        user_bytes: &str,
        user_attachments: &str,
        user_download_bytes_per_day: &str,
    ) -> Result<Self, SettingError> {
        Ok(Self {
            tenant_bytes: parse_limit("quota_tenant_bytes", tenant_bytes)?,
            tenant_attachments: parse_limit("quota_tenant_attachments", tenant_attachments)?,
            user_bytes: parse_limit("quota_user_bytes", user_bytes)?,
            user_attachments: parse_limit("quota_user_attachments", user_attachments)?,
            user_download_bytes_per_day: parse_limit(
                "quota_user_download_bytes_per_day",
                user_download_bytes_per_day,
            )?,
        })
    }

    /// These defaults with a tenant's own limits in their place.
    pub fn with_overrides(&self, own: &Overrides) -> Self {
        Self {
            tenant_bytes: pick(self.tenant_bytes, own.tenant_bytes),
            tenant_attachments: pick(self.tenant_attachments, own.tenant_attachments),
            user_bytes: pick(self.user_bytes, own.user_bytes),
            user_attachments: pick(self.user_attachments, own.user_attachments),
            user_download_bytes_per_day: pick(
                self.user_download_bytes_per_day,
                own.user_download_bytes_per_day,
            ),
        }
    }

    /// Whether any stored-content limit is set (else the checks need no counters).
    pub fn limits_storage(&self) -> bool {
        self.tenant_bytes.is_some()
            || self.tenant_attachments.is_some()
            || self.user_bytes.is_some()
            || self.user_attachments.is_some()
    }

    /// Whether `usage` plus `bytes` in `count` more attachments stays within every stored-content
    /// limit; the first it would pass (tenant before user, bytes before count) otherwise.
    pub fn check_stored(
        &self,
        usage: &StoredUsage,
        bytes: u64,
        count: u64,
    ) -> Result<(), Exceeded> {
        within(
            Quota::TenantBytes,
            self.tenant_bytes,
            usage.tenant_bytes,
            bytes,
        )?;
        within(
            Quota::TenantAttachments,
            self.tenant_attachments,
            usage.tenant_attachments,
            count,
        )?;
        within(Quota::UserBytes, self.user_bytes, usage.user_bytes, bytes)?;
        within(
            Quota::UserAttachments,
            self.user_attachments,
            usage.user_attachments,
            count,
        )
    }

    /// Whether totals that already include the request stay within every stored-content limit (the
    /// check at commit, after the counters moved); the request is `bytes` in `count` attachments.
    pub fn check_stored_after(
        &self,
        totals: &StoredUsage,
        bytes: u64,
        count: u64,
    ) -> Result<(), Exceeded> {
        let before = StoredUsage {
            tenant_bytes: totals.tenant_bytes.saturating_sub(bytes),
            tenant_attachments: totals.tenant_attachments.saturating_sub(count),
            user_bytes: totals.user_bytes.saturating_sub(bytes),
            user_attachments: totals.user_attachments.saturating_sub(count),
        };
        self.check_stored(&before, bytes, count)
    }

    /// Whether `used_today` plus `bytes` stays within the user's daily download limit.
    pub fn check_download(&self, used_today: u64, bytes: u64) -> Result<(), Exceeded> {
        within(
            Quota::UserDownloadBytesPerDay,
            self.user_download_bytes_per_day,
            used_today,
            bytes,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_zero_and_empty_are_unlimited_and_garbage_is_refused() {
        assert_eq!(parse_limit("x", ""), Ok(None));
        assert_eq!(parse_limit("x", " 0 "), Ok(None));
        assert_eq!(parse_limit("x", "1048576"), Ok(Some(1_048_576)));
        for bad in [
            "-1",
            "1.5",
            "1e6",
            "ten",
            "+5",
            "9223372036854775808",
            "99999999999999999999",
        ] {
            assert!(parse_limit("x", bad).is_err(), "{bad}");
        }
        assert_eq!(
            parse_limit("x", "9223372036854775807"),
            Ok(Some(i64::MAX as u64))
        );
    }

    #[test]
    fn overrides_replace_defaults_and_zero_lifts_a_limit() {
        let d = Limits::from_config("100", "", "10", "5", "0").unwrap();
        let own = Overrides {
            tenant_bytes: Some(0),
            user_bytes: Some(20),
            user_download_bytes_per_day: Some(7),
            ..Overrides::default()
        };
        let l = d.with_overrides(&own);
        assert_eq!(l.tenant_bytes, None);
        assert_eq!(l.tenant_attachments, None);
        assert_eq!(l.user_bytes, Some(20));
        assert_eq!(l.user_attachments, Some(5));
        assert_eq!(l.user_download_bytes_per_day, Some(7));
        assert!(l.limits_storage());
        assert!(!Limits::default().limits_storage());
    }

    #[test]
    fn exactly_at_the_limit_fits_one_more_byte_does_not() {
        let l = Limits {
            user_bytes: Some(100),
            ..Limits::default()
        };
        let u = StoredUsage {
            user_bytes: 60,
            ..StoredUsage::default()
        };
        assert!(l.check_stored(&u, 40, 1).is_ok());
        let e = l.check_stored(&u, 41, 1).unwrap_err();
        assert_eq!(
            e,
            Exceeded {
                quota: Quota::UserBytes,
                limit: 100,
                usage: 60,
                requested: 41
            }
        );
        // After the counters moved: the same answers.
        let after = StoredUsage {
            user_bytes: 101,
            user_attachments: 1,
            ..StoredUsage::default()
        };
        assert_eq!(l.check_stored_after(&after, 41, 1), Err(e));
        assert!(
            l.check_stored_after(
                &StoredUsage {
                    user_bytes: 100,
                    ..after
                },
                40,
                1
            )
            .is_ok()
        );
    }

    #[test]
    fn tenant_limits_are_judged_before_the_users_and_counts_too() {
        let l = Limits {
            tenant_bytes: Some(10),
            tenant_attachments: Some(2),
            user_bytes: Some(5),
            user_attachments: Some(1),
            user_download_bytes_per_day: None,
        };
        let u = StoredUsage {
            tenant_bytes: 9,
            tenant_attachments: 0,
            user_bytes: 5,
            user_attachments: 1,
        };
        assert_eq!(
            l.check_stored(&u, 2, 1).unwrap_err().quota,
            Quota::TenantBytes
        );
        assert_eq!(
            l.check_stored(&u, 0, 1).unwrap_err().quota,
            Quota::UserAttachments
        );
        let u = StoredUsage {
            tenant_attachments: 2,
            ..StoredUsage::default()
        };
        assert_eq!(
            l.check_stored(&u, 0, 1).unwrap_err().quota,
            Quota::TenantAttachments
        );
        assert!(l.check_download(u64::MAX, u64::MAX).is_ok());
    }

    #[test]
    fn the_problem_carries_which_limit_the_limit_and_the_usage() {
        let e = Exceeded {
            quota: Quota::UserDownloadBytesPerDay,
            limit: 1000,
            usage: 900,
            requested: 200,
        };
        let p = e.problem();
        assert_eq!(p.status(), 403);
        assert_eq!(p.code(), Code::QuotaExceeded);
        let body: serde_json::Value =
            serde_json::from_str(&p.to_json(&problem::RequestId::generate())).unwrap();
        assert_eq!(body["code"], "quota_exceeded");
        assert_eq!(body["quota"], "user_download_bytes_per_day");
        assert_eq!(body["limit"], 1000);
        assert_eq!(body["usage"], 900);
        assert_eq!(body["requested"], 200);
    }
}
