//! Where the bucket is and how to sign for it.

use std::fmt;

use crate::StorageError;

/// Connection settings: a path-style endpoint (`http(s)://host[:port][/base]`), the signing region,
/// the bucket and the static access keys. `Debug` redacts the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct StorageConfig {
    scheme: String,
    authority: String,
    region: String,
    bucket: String,
    access_key_id: String,
    secret_access_key: String,
}

impl fmt::Debug for StorageConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StorageConfig")
            .field("endpoint", &self.endpoint())
            .field("region", &self.region)
            .field("bucket", &self.bucket)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .finish()
    }
}

fn config_err(msg: impl Into<String>) -> StorageError {
    StorageError::Config(msg.into())
}

impl StorageConfig {
    /// Validates and builds the configuration.
    pub fn new(
        endpoint: &str,
        region: &str,
        bucket: &str,
        access_key_id: &str,
        secret_access_key: &str,
    ) -> Result<Self, StorageError> {
        let endpoint = endpoint.trim();
        let (scheme, rest) = endpoint
            .split_once("://")
            .ok_or_else(|| config_err("endpoint must be http(s)://host[:port]"))?;
        let scheme = scheme.to_ascii_lowercase();
        if scheme != "http" && scheme != "https" {
            return Err(config_err("endpoint scheme must be http or https"));
        }
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        if authority.is_empty()
            || authority.contains('@')
            || !authority
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-.:[]_".contains(&b))
        {
            return Err(config_err("endpoint host is missing or malformed"));
        }
        if path.contains('?') || path.contains('#') {
            return Err(config_err("endpoint must not carry a query or fragment"));
        }
        // The manifest allows exactly this endpoint in allowed_outbound_hosts, and Spin refuses an entry
        // with a path (and with it every outbound connection of the component): a storage service behind
        // a path prefix cannot be reached from Spin at all, so say so here instead.
        if !path.trim_end_matches('/').is_empty() {
            return Err(config_err(
                "endpoint must be scheme://host[:port] without a path (Spin's allowed_outbound_hosts takes no path)",
            ));
        }
        let region = region.trim();
        if region.is_empty()
            || !region
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return Err(config_err("region must be [A-Za-z0-9-]+"));
        }
        let bucket = bucket.trim();
        if !(3..=63).contains(&bucket.len())
            || !bucket
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        {
            return Err(config_err("bucket must be 3..=63 of [a-z0-9.-]"));
        }
        let access_key_id = access_key_id.trim();
        let secret_access_key = secret_access_key.trim();
        if access_key_id.is_empty() || secret_access_key.is_empty() {
            return Err(config_err("access key id and secret are required"));
        }
        Ok(Self {
            scheme,
            authority: authority.to_owned(),
            region: region.to_owned(),
            bucket: bucket.to_owned(),
            access_key_id: access_key_id.to_owned(),
            secret_access_key: secret_access_key.to_owned(),
        })
    }

    /// `scheme://authority` (no trailing slash).
    pub fn endpoint(&self) -> String {
        format!("{}://{}", self.scheme, self.authority)
    }

    /// The `host[:port]` requests go to (what `Host` is signed as).
    pub fn authority(&self) -> &str {
        &self.authority
    }

    /// The signing region.
    pub fn region(&self) -> &str {
        &self.region
    }

    /// The bucket.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// The access key id.
    pub fn access_key_id(&self) -> &str {
        &self.access_key_id
    }

    pub(crate) fn secret_access_key(&self) -> &str {
        &self.secret_access_key
    }

    /// The path of the bucket (`/bucket`), path-style.
    pub(crate) fn bucket_path(&self) -> String {
        format!("/{}", self.bucket)
    }

    pub(crate) fn scheme(&self) -> &str {
        &self.scheme
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_path_style_endpoints() {
        let c = StorageConfig::new(
            "http://127.0.0.1:3900/",
            "garage",
            "attachments",
            "GK1",
            "s",
        )
        .unwrap();
        assert_eq!(c.endpoint(), "http://127.0.0.1:3900");
        assert_eq!(c.bucket_path(), "/attachments");
        let c =
            StorageConfig::new("https://s3.example.com", "us-east-1", "b-1.x", "k", "s").unwrap();
        assert_eq!(c.bucket_path(), "/b-1.x");
        assert!(!format!("{c:?}").contains("\"s\""), "secret redacted");
    }

    #[test]
    fn refuses_bad_settings() {
        for (e, r, b, k, s) in [
            ("127.0.0.1:3900", "garage", "bkt", "k", "s"),
            ("ftp://h", "garage", "bkt", "k", "s"),
            ("http://user@h", "garage", "bkt", "k", "s"),
            ("http://h?x=1", "garage", "bkt", "k", "s"),
            ("https://s3.example.com/store", "garage", "bkt", "k", "s"),
            ("http://h", "", "bkt", "k", "s"),
            ("http://h", "garage", "B", "k", "s"),
            ("http://h", "garage", "Bucket", "k", "s"),
            ("http://h", "garage", "bkt", "", "s"),
            ("http://h", "garage", "bkt", "k", " "),
        ] {
            assert!(StorageConfig::new(e, r, b, k, s).is_err(), "{e} {r} {b}");
        }
    }
}
