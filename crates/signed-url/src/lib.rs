//! Signed, expiring, revocable download URLs.
//!
//! A signed content URL is the credential of a download: whoever holds it may `GET`/`HEAD` the
//! content until it expires or is revoked. Its shape (also in docs/CONTRACTS.md and openapi.yaml):
//!
//! ```text
//! {public_base_url}/api/v1/files/{attachmentId}?t={tenantId}&e={expiry}&d={a|i}&g={generation}&k={kid}&s={sig}
//! ```
//!
//! - `attachmentId`, `t`: canonical lowercase hyphenated UUIDs; `e`: expiry, epoch seconds;
//!   `d`: disposition (`a` attachment, `i` inline); `g`: the attachment's `url_generation` when the URL
//!   was issued (revoke-urls increments it, so older URLs stop working); `k`: the id of the signing key;
//! - `s` = unpadded base64url(HMAC-SHA256(key[k], "attachments-download-url/v1\n" + id + "\n" + t + "\n" +
//!   e + "\n" + d + "\n" + g + "\n" + k)). The leading version tag keeps a future format from ever
//!   verifying as this one.
//!
//! Verification ([`UrlSigner::verify`]) is strict: the parameters must appear exactly in this order,
//! once each, nothing else, every value in its canonical spelling; the MAC is computed over the text
//! as received and compared in constant time (`auth_core::ct::eq`) with the one received, as text, so
//! no lenient decoding (upper-case hex, base64 trailing bits, leading zeros) can let a changed URL
//! through. Any deviation is [`VerifyError::SignatureInvalid`]; only a URL whose signature verifies
//! can be [`VerifyError::Expired`]. Revocation (the generation) is checked by the caller against the
//! database.
//!
//! The key ring (secret variable `url_signing_keys`) is `kid:key[,kid:key...]`: each `kid` 1..=32 of
//! `[A-Za-z0-9_-]`, each key 32..=128 bytes as unpadded base64url or hex. The first key signs, all
//! verify: rotate by deploying `new:..,old:..`, then drop `old` once its URLs (at most 7 days) are gone.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use uuid::Uuid;

/// The path prefix of the public signed content route (the attachment id follows).
pub const ROUTE_PREFIX: &str = "/api/v1/files/";
/// The Spin route of the public content URL.
pub const SPIN_ROUTE: &str = "/api/v1/files/...";
/// The version tag that starts every signed message.
pub const VERSION_TAG: &str = "attachments-download-url/v1";
/// Default lifetime of a URL, seconds (the `download_url_ttl_secs` variable overrides it).
pub const DEFAULT_EXPIRES_IN: u32 = 3600;
/// Longest lifetime, seconds (7 days).
pub const MAX_EXPIRES_IN: u32 = 604_800;
/// Smallest key, bytes.
pub const MIN_KEY_LEN: usize = 32;
/// Largest key, bytes.
pub const MAX_KEY_LEN: usize = 128;
/// Longest key id.
pub const MAX_KID_LEN: usize = 32;
/// Longest query string looked at.
pub const MAX_QUERY_LEN: usize = 512;
const PARAMS: [&str; 6] = ["t", "e", "d", "g", "k", "s"];
const SIG_LEN: usize = 43; // unpadded base64url of 32 bytes

/// Errors of the configuration (key ring, base URL, default lifetime).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("url_signing_keys: {0}")]
    Keys(String),
    #[error("public_base_url: {0}")]
    BaseUrl(String),
    #[error("download URL lifetime must be 1..={MAX_EXPIRES_IN} seconds")]
    Lifetime,
}

/// Why a URL does not grant access. Both are `403` on the wire (`signature_invalid`, `url_expired`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// Anything changed, missing, added, or signed by an unknown (retired) key.
    #[error("signature invalid")]
    SignatureInvalid,
    /// Correctly signed, but `now >= expiry`.
    #[error("url expired")]
    Expired,
}

/// How the content is to be presented: `crates/delivery` owns the type (it writes the header);
/// a URL carries it as `d=a|i`.
pub use delivery::Disposition;

/// A disposition's code in the URL.
const fn url_code(d: Disposition) -> &'static str {
    match d {
        Disposition::Attachment => "a",
        Disposition::Inline => "i",
    }
}

/// What a URL grants: the signed claims.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Grant {
    pub attachment_id: Uuid,
    pub tenant_id: Uuid,
    /// Epoch seconds; the URL works while `now < expires_at`.
    pub expires_at: i64,
    pub disposition: Disposition,
    /// The attachment's `url_generation` at issue time.
    pub generation: u32,
}

/// What a URL is issued for (a [`Grant`] without its expiry).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Target {
    pub attachment_id: Uuid,
    pub tenant_id: Uuid,
    pub disposition: Disposition,
    /// The attachment's current `url_generation`.
    pub generation: u32,
}

/// A signed content URL (absolute). Its text is a credential: do not log it.
#[derive(Clone, PartialEq, Eq)]
pub struct SignedUrl(String);

impl SignedUrl {
    pub fn as_str(&self) -> &str {
        &self.0
    }
    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Debug for SignedUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SignedUrl(..)")
    }
}

impl fmt::Display for SignedUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The public base URL (variable `public_base_url`): `http(s)://host[:port][/prefix]`, no query,
/// fragment or trailing slash (a trailing slash is dropped).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicBaseUrl(String);

impl PublicBaseUrl {
    pub fn parse(s: &str) -> Result<Self, ConfigError> {
        let s = s.trim().trim_end_matches('/');
        let rest = s
            .strip_prefix("https://")
            .or_else(|| s.strip_prefix("http://"))
            .ok_or_else(|| ConfigError::BaseUrl("must start with http:// or https://".into()))?;
        let host = rest.split('/').next().unwrap_or("");
        if host.is_empty() {
            return Err(ConfigError::BaseUrl("has no host".into()));
        }
        if !s
            .bytes()
            .all(|b| b.is_ascii_graphic() && !matches!(b, b'?' | b'#' | b'"' | b'\\' | b'<' | b'>'))
        {
            return Err(ConfigError::BaseUrl(
                "must be printable ASCII without query or fragment".into(),
            ));
        }
        Ok(Self(s.to_owned()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A validated lifetime in seconds (`expiresIn`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExpiresIn(u32);

impl ExpiresIn {
    /// `requested` if given, else `default`; either must be within `1..=604800`.
    pub fn from_request(requested: Option<i64>, default: ExpiresIn) -> Result<Self, ConfigError> {
        match requested {
            None => Ok(default),
            Some(v) => Self::new(v),
        }
    }
    pub fn new(secs: i64) -> Result<Self, ConfigError> {
        if (1..=i64::from(MAX_EXPIRES_IN)).contains(&secs) {
            Ok(Self(secs as u32))
        } else {
            Err(ConfigError::Lifetime)
        }
    }
    /// Parses the `download_url_ttl_secs` variable (empty = [`DEFAULT_EXPIRES_IN`]).
    pub fn parse_config(s: &str) -> Result<Self, ConfigError> {
        let s = s.trim();
        if s.is_empty() {
            return Ok(Self(DEFAULT_EXPIRES_IN));
        }
        Self::new(s.parse().map_err(|_| ConfigError::Lifetime)?)
    }
    pub fn secs(self) -> u32 {
        self.0
    }
}

impl Default for ExpiresIn {
    fn default() -> Self {
        Self(DEFAULT_EXPIRES_IN)
    }
}

/// The key ring. `Debug` shows only the key ids.
#[derive(Clone)]
pub struct UrlSigner {
    keys: Vec<(String, Vec<u8>)>,
}

impl fmt::Debug for UrlSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kids: Vec<&str> = self.keys.iter().map(|(k, _)| k.as_str()).collect();
        write!(f, "UrlSigner(kids: {kids:?})")
    }
}

fn valid_kid(s: &str) -> bool {
    (1..=MAX_KID_LEN).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn decode_key(s: &str) -> Option<Vec<u8>> {
    let bytes = if s.len().is_multiple_of(2)
        && s.len() >= 2 * MIN_KEY_LEN
        && s.bytes().all(|b| b.is_ascii_hexdigit())
    {
        hex::decode(s).ok()?
    } else {
        URL_SAFE_NO_PAD.decode(s).ok()?
    };
    (MIN_KEY_LEN..=MAX_KEY_LEN)
        .contains(&bytes.len())
        .then_some(bytes)
}

impl UrlSigner {
    /// Parses `kid:key[,kid:key...]` (see the crate docs).
    pub fn from_config(config: &str) -> Result<Self, ConfigError> {
        let mut keys: Vec<(String, Vec<u8>)> = Vec::new();
        for part in config.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (kid, key) = part
                .split_once(':')
                .ok_or_else(|| ConfigError::Keys("each entry must be kid:key".into()))?;
            let (kid, key) = (kid.trim(), key.trim());
            if !valid_kid(kid) {
                return Err(ConfigError::Keys(format!(
                    "key id must be 1..={MAX_KID_LEN} of [A-Za-z0-9_-]"
                )));
            }
            if keys.iter().any(|(k, _)| k == kid) {
                return Err(ConfigError::Keys(format!("duplicate key id {kid}")));
            }
            let key = decode_key(key).ok_or_else(|| {
                ConfigError::Keys(format!(
                    "key {kid} must be {MIN_KEY_LEN}..={MAX_KEY_LEN} bytes of unpadded base64url or hex"
                ))
            })?;
            keys.push((kid.to_owned(), key));
        }
        if keys.is_empty() {
            return Err(ConfigError::Keys("no keys".into()));
        }
        Ok(Self { keys })
    }

    /// The id of the key that signs.
    pub fn signing_kid(&self) -> &str {
        &self.keys[0].0
    }

    fn mac(key: &[u8], id: &str, t: &str, e: &str, d: &str, g: &str, k: &str) -> String {
        let mut mac =
            <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC takes any key length");
        for (i, part) in [VERSION_TAG, id, t, e, d, g, k].into_iter().enumerate() {
            if i > 0 {
                mac.update(b"\n");
            }
            mac.update(part.as_bytes());
        }
        URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    }

    /// The path and query of the URL granting `grant` (without the base URL).
    pub fn sign_path(&self, grant: &Grant) -> String {
        let (kid, key) = &self.keys[0];
        let id = grant.attachment_id.hyphenated().to_string();
        let t = grant.tenant_id.hyphenated().to_string();
        let e = grant.expires_at.max(0).to_string();
        let d = url_code(grant.disposition);
        let g = grant.generation.to_string();
        let s = Self::mac(key, &id, &t, &e, d, &g, kid);
        format!("{ROUTE_PREFIX}{id}?t={t}&e={e}&d={d}&g={g}&k={kid}&s={s}")
    }

    /// The absolute URL granting `grant`.
    pub fn sign(&self, base: &PublicBaseUrl, grant: &Grant) -> SignedUrl {
        SignedUrl(format!("{}{}", base.as_str(), self.sign_path(grant)))
    }

    /// Issues a URL for `expires_in` seconds from `now` (epoch seconds); returns it with its grant.
    pub fn issue(
        &self,
        base: &PublicBaseUrl,
        target: Target,
        expires_in: ExpiresIn,
        now: i64,
    ) -> (SignedUrl, Grant) {
        let grant = Grant {
            attachment_id: target.attachment_id,
            tenant_id: target.tenant_id,
            expires_at: now + i64::from(expires_in.secs()),
            disposition: target.disposition,
            generation: target.generation,
        };
        (self.sign(base, &grant), grant)
    }

    /// Verifies a request to the content route: `path` is the request path (must be
    /// `/api/v1/files/{id}`), `query` the raw query string without `?`. `now` is epoch seconds.
    pub fn verify(&self, path: &str, query: &str, now: i64) -> Result<Grant, VerifyError> {
        use VerifyError::SignatureInvalid as Bad;
        let id = path.strip_prefix(ROUTE_PREFIX).ok_or(Bad)?;
        if query.len() > MAX_QUERY_LEN {
            return Err(Bad);
        }
        let mut values = [""; 6];
        let mut parts = query.split('&');
        for (slot, name) in values.iter_mut().zip(PARAMS) {
            let (n, v) = parts.next().ok_or(Bad)?.split_once('=').ok_or(Bad)?;
            if n != name {
                return Err(Bad);
            }
            *slot = v;
        }
        if parts.next().is_some() {
            return Err(Bad);
        }
        let [t, e, d, g, k, s] = values;
        let attachment_id = canonical_uuid(id).ok_or(Bad)?;
        let tenant_id = canonical_uuid(t).ok_or(Bad)?;
        let expires_at = canonical_number(e, 12).ok_or(Bad)?;
        let disposition = match d {
            "a" => Disposition::Attachment,
            "i" => Disposition::Inline,
            _ => return Err(Bad),
        };
        let generation = u32::try_from(canonical_number(g, 10).ok_or(Bad)?).map_err(|_| Bad)?;
        if !valid_kid(k) || s.len() != SIG_LEN {
            return Err(Bad);
        }
        let (_, key) = self.keys.iter().find(|(kid, _)| kid == k).ok_or(Bad)?;
        let expected = Self::mac(key, id, t, e, d, g, k);
        if !auth_core::ct::eq(expected.as_bytes(), s.as_bytes()) {
            return Err(Bad);
        }
        if now >= expires_at {
            return Err(VerifyError::Expired);
        }
        Ok(Grant {
            attachment_id,
            tenant_id,
            expires_at,
            disposition,
            generation,
        })
    }

    /// A fresh configuration string with one random 32-byte key under `kid` (for dev/test setups).
    pub fn config_from_key_bytes(kid: &str, key: &[u8]) -> String {
        format!("{kid}:{}", URL_SAFE_NO_PAD.encode(key))
    }
}

/// An opaque id of one URL (32 lowercase hex: the first 16 bytes of SHA-256 over its path, `?` and
/// query), for what is counted or recorded per URL (its rate limit, its audit rows): never the URL
/// itself, whose query is a credential, and no way back to it. [`UrlSigner::verify`] accepts exactly
/// one spelling of a URL, so a verified URL has exactly one id.
pub fn url_id(path: &str, query: &str) -> String {
    use sha2::Digest as _;
    let mut h = Sha256::new();
    h.update(path.as_bytes());
    h.update(b"?");
    h.update(query.as_bytes());
    hex::encode(&h.finalize()[..16])
}

/// A UUID in its canonical lowercase hyphenated spelling, and only that spelling.
fn canonical_uuid(s: &str) -> Option<Uuid> {
    if s.len() != 36 {
        return None;
    }
    let u = Uuid::try_parse(s).ok()?;
    (u.hyphenated().to_string() == s).then_some(u)
}

/// A non-negative decimal of at most `max_digits` digits without leading zeros.
fn canonical_number(s: &str, max_digits: usize) -> Option<i64> {
    if s.is_empty()
        || s.len() > max_digits
        || !s.bytes().all(|b| b.is_ascii_digit())
        || (s.len() > 1 && s.starts_with('0'))
    {
        return None;
    }
    s.parse().ok()
}

#[cfg(test)]
mod tests;
