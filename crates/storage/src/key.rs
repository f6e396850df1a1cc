//! Object keys. A key is only ever minted by us, from a tenant id plus a fresh UUID (uploads) or
//! read back from our own database; nothing a client sends becomes part of a key.

use std::fmt;

use uuid::Uuid;

use crate::StorageError;

/// An object key: `[a-z0-9/-]`, 1..=1024 bytes, no empty segments, no `.`/`..`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ObjectKey(String);

impl ObjectKey {
    /// The key of a new upload of `tenant`: `tenants/<tenant>/blobs/<uuid v4>`. A fresh key per
    /// upload, so two concurrent uploads of the same content never overwrite each other; dedup
    /// happens afterwards in the database, by content hash.
    pub fn new_upload(tenant: Uuid) -> Self {
        Self(format!(
            "tenants/{}/blobs/{}",
            tenant.hyphenated(),
            Uuid::new_v4().hyphenated()
        ))
    }

    /// A key read back from our own records (e.g. `attachment_blobs.storage_key`), validated.
    pub fn from_stored(s: &str) -> Result<Self, StorageError> {
        let ok = (1..=1024).contains(&s.len())
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'/' || b == b'-')
            && s.split('/').all(|seg| !seg.is_empty());
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(StorageError::Config("malformed stored object key".into()))
        }
    }

    /// A prefix for listing (`tenants/<tenant>/`).
    pub fn tenant_prefix(tenant: Uuid) -> String {
        format!("tenants/{}/", tenant.hyphenated())
    }

    /// The key.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_keys_are_unique_and_round_trip() {
        let t = Uuid::new_v4();
        let a = ObjectKey::new_upload(t);
        let b = ObjectKey::new_upload(t);
        assert_ne!(a, b);
        assert!(a.as_str().starts_with(&ObjectKey::tenant_prefix(t)));
        assert_eq!(ObjectKey::from_stored(a.as_str()).unwrap(), a);
    }

    #[test]
    fn stored_keys_are_checked() {
        for bad in [
            "", "a//b", "/a", "a/", "../x", "a/./b", "A", "a b", "a?b", "a%2f",
        ] {
            assert!(ObjectKey::from_stored(bad).is_err(), "{bad:?}");
        }
        assert!(ObjectKey::from_stored(&"a".repeat(1025)).is_err());
    }
}
