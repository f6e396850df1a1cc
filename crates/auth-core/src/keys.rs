//! The key ring: the signing and verification keys, read from a configuration string (a Spin
//! variable), rotated without logging anyone out, and published as a JWKS.
//!
//! # Configuration format
//!
//! A JSON object; `keys` is a JWK set where every key has a `kid` and may carry its private part:
//!
//! ```json
//! {"active": "k2",
//!  "keys": [
//!    {"kid": "k1", "x": "<base64url Ed25519 public key>"},
//!    {"kid": "k2", "d": "<base64url 32-byte Ed25519 seed>"},
//!    {"kid": "e1", "alg": "ES256", "d": "<base64url 32-byte P-256 scalar>"}
//!  ]}
//! ```
//!
//! * `alg` is `EdDSA` (default) or `ES256`; it may also be implied by standard JWK members
//!   (`"kty":"OKP","crv":"Ed25519"` or `"kty":"EC","crv":"P-256"`). A key is bound to its
//!   algorithm: a token naming this `kid` with another `alg` is refused.
//! * A key has `d` (private; the public half is derived, and must equal `x`/`y` if those are also
//!   given) or only the public half (`x` for Ed25519, `x` and `y` for P-256).
//! * `active` names the key new tokens are signed with; it must have `d`. Verifiers need no
//!   `active` and no private parts: the JWKS this module prints (`{"keys":[...]}`) is itself a valid
//!   verification-only ring.
//! * `kid`: 1..=64 chars of `[A-Za-z0-9._-]`, unique. At most [`MAX_KEYS`] keys. A `use` other
//!   than `sig` is refused; other JWK members are ignored.
//!
//! # Rotation
//!
//! 1. Add a new key (`keygen rotate` does it) while the old one stays `active`; deploy. Verifiers
//!    now accept both.
//! 2. Make the new key `active`; deploy. New tokens use it, old ones still verify.
//! 3. After the longest access-token lifetime (plus leeway) has passed, delete the old key: tokens
//!    naming it are then refused as `unknown kid`.

use std::borrow::Cow;
use std::fmt;

use ed25519_dalek::Signer as _;
use jwt_compact::alg::Es256;
use jwt_compact::jwk::JsonWebKey;
use serde::Deserialize;

use crate::{Error, b64};

/// Most keys a ring may hold.
pub const MAX_KEYS: usize = 16;

/// Longest `kid`.
pub const MAX_KID_LEN: usize = 64;

pub(crate) type EdSecretKey = ed25519_dalek::SigningKey;
pub(crate) type EdPublicKey = ed25519_dalek::VerifyingKey;
pub(crate) type EsSigningKey = <Es256 as jwt_compact::Algorithm>::SigningKey;
pub(crate) type EsVerifyingKey = <Es256 as jwt_compact::Algorithm>::VerifyingKey;

/// `EdDSA` (Ed25519) with `ed25519-dalek`, verifying with `verify_strict`.
///
/// Not `jwt_compact::alg::Ed25519`: jwt-compact's dalek backend verifies with dalek's non-strict
/// `verify`, which accepts a small-order public key (with the identity as `x`, the signature
/// R = identity, S = 0 verifies every message) and a small-order R. `ed25519-compact`, the previous
/// backend, refused both, and so does `verify_strict`: a ring entry with a weak `x` still verifies
/// nothing. Both also refuse a non-canonical S or R. What remains different: dalek checks the
/// cofactorless equation, ed25519-compact the cofactored one, which only matters for a signature
/// the private-key holder deliberately built with a small-order component in R (signing never
/// does that); such a signature is now refused.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct StrictEd25519;

impl jwt_compact::Algorithm for StrictEd25519 {
    type SigningKey = EdSecretKey;
    type VerifyingKey = EdPublicKey;
    type Signature = ed25519_dalek::Signature;

    fn name(&self) -> Cow<'static, str> {
        Cow::Borrowed(Alg::EdDsa.name())
    }

    fn sign(&self, signing_key: &EdSecretKey, message: &[u8]) -> ed25519_dalek::Signature {
        signing_key.sign(message)
    }

    fn verify_signature(
        &self,
        signature: &ed25519_dalek::Signature,
        verifying_key: &EdPublicKey,
        message: &[u8],
    ) -> bool {
        verifying_key.verify_strict(message, signature).is_ok()
    }
}

/// A JWS algorithm this crate can sign and verify with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Alg {
    /// Ed25519 (`EdDSA`), the default.
    EdDsa,
    /// ECDSA P-256 with SHA-256 (`ES256`); off by default in [`crate::VerifierConfig`].
    Es256,
}

impl Alg {
    /// The JOSE name.
    pub const fn name(self) -> &'static str {
        match self {
            Alg::EdDsa => "EdDSA",
            Alg::Es256 => "ES256",
        }
    }

    /// Parses a JOSE name (exact, case-sensitive as RFC 7515 requires).
    pub fn from_name(s: &str) -> Option<Alg> {
        match s {
            "EdDSA" => Some(Alg::EdDsa),
            "ES256" => Some(Alg::Es256),
            _ => None,
        }
    }
}

#[derive(Clone)]
pub(crate) enum SigningMaterial {
    Ed25519(Box<EdSecretKey>),
    Es256(Box<EsSigningKey>),
}

#[derive(Clone)]
pub(crate) enum VerifyingMaterial {
    Ed25519(EdPublicKey),
    Es256(Box<EsVerifyingKey>),
}

/// One key of the ring. Its `Debug` output shows the `kid` and algorithm only.
#[derive(Clone)]
pub struct Key {
    kid: String,
    alg: Alg,
    pub(crate) signing: Option<SigningMaterial>,
    pub(crate) verifying: VerifyingMaterial,
}

impl Key {
    /// The key id.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The algorithm the key is bound to.
    pub fn alg(&self) -> Alg {
        self.alg
    }

    /// Whether the private half is present.
    pub fn can_sign(&self) -> bool {
        self.signing.is_some()
    }

    /// The public half as a JWK (`kid`, `alg`, `use: sig`, no private members).
    pub fn public_jwk(&self) -> serde_json::Value {
        let mut obj = serde_json::Map::new();
        match &self.verifying {
            VerifyingMaterial::Ed25519(pk) => {
                obj.insert("kty".into(), "OKP".into());
                obj.insert("crv".into(), "Ed25519".into());
                obj.insert("x".into(), b64::encode(pk.as_ref()).into());
            }
            VerifyingMaterial::Es256(vk) => {
                let (x, y) = ec_coordinates(vk);
                obj.insert("kty".into(), "EC".into());
                obj.insert("crv".into(), "P-256".into());
                obj.insert("x".into(), b64::encode(x).into());
                obj.insert("y".into(), b64::encode(y).into());
            }
        }
        obj.insert("kid".into(), self.kid.clone().into());
        obj.insert("alg".into(), self.alg.name().into());
        obj.insert("use".into(), "sig".into());
        serde_json::Value::Object(obj)
    }

    /// The key as a configuration entry, with its private part (`d`) when present.
    fn config_jwk(&self) -> serde_json::Value {
        let mut v = self.public_jwk();
        if let Some(s) = &self.signing {
            let d = match s {
                SigningMaterial::Ed25519(sk) => b64::encode(sk.as_bytes()),
                SigningMaterial::Es256(sk) => b64::encode(sk.to_bytes()),
            };
            v["d"] = d.into();
        }
        v
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Key")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("can_sign", &self.can_sign())
            .finish_non_exhaustive()
    }
}

fn ec_coordinates(vk: &EsVerifyingKey) -> (Vec<u8>, Vec<u8>) {
    match JsonWebKey::from(vk) {
        JsonWebKey::EllipticCurve { x, y, .. } => (x.into_owned(), y.into_owned()),
        // `From<&VerifyingKey>` always builds the EC variant.
        _ => (Vec::new(), Vec::new()),
    }
}

/// The set of keys in force. Cheap to clone (a handful of small keys).
#[derive(Clone, Debug)]
pub struct KeyRing {
    active: Option<String>,
    keys: Vec<Key>,
}

#[derive(Deserialize)]
struct RingConfig {
    #[serde(default)]
    active: Option<String>,
    keys: Vec<KeyConfig>,
}

#[derive(Deserialize)]
struct KeyConfig {
    kid: Option<String>,
    alg: Option<String>,
    kty: Option<String>,
    crv: Option<String>,
    #[serde(rename = "use")]
    use_: Option<String>,
    d: Option<String>,
    x: Option<String>,
    y: Option<String>,
}

fn cfg(msg: impl Into<String>) -> Error {
    Error::Config(msg.into())
}

/// Whether `kid` is an acceptable key id.
pub fn is_valid_kid(kid: &str) -> bool {
    !kid.is_empty()
        && kid.len() <= MAX_KID_LEN
        && kid
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

fn decode_exact(kid: &str, member: &str, value: &str, len: usize) -> Result<Vec<u8>, Error> {
    match b64::decode(value) {
        Some(bytes) if bytes.len() == len => Ok(bytes),
        _ => Err(cfg(format!(
            "key {kid}: `{member}` must be {len} bytes of unpadded base64url"
        ))),
    }
}

impl KeyConfig {
    fn into_key(self) -> Result<Key, Error> {
        let kid = self.kid.ok_or_else(|| cfg("every key needs a `kid`"))?;
        if !is_valid_kid(&kid) {
            return Err(cfg("a `kid` must be 1..=64 characters of [A-Za-z0-9._-]"));
        }
        if let Some(u) = &self.use_
            && u != "sig"
        {
            return Err(cfg(format!("key {kid}: `use` must be \"sig\"")));
        }
        let implied = match (self.kty.as_deref(), self.crv.as_deref()) {
            (None, None) => None,
            (Some("OKP"), Some("Ed25519")) => Some(Alg::EdDsa),
            (Some("EC"), Some("P-256")) => Some(Alg::Es256),
            _ => return Err(cfg(format!("key {kid}: unsupported `kty`/`crv`"))),
        };
        let named = match self.alg.as_deref() {
            None => None,
            Some(a) => Some(
                Alg::from_name(a)
                    .ok_or_else(|| cfg(format!("key {kid}: `alg` must be EdDSA or ES256")))?,
            ),
        };
        let alg = match (named, implied) {
            (Some(a), Some(b)) if a != b => {
                return Err(cfg(format!("key {kid}: `alg` does not match `kty`/`crv`")));
            }
            (Some(a), _) | (None, Some(a)) => a,
            (None, None) => Alg::EdDsa,
        };
        let (signing, verifying) = match alg {
            Alg::EdDsa => {
                if self.y.is_some() {
                    return Err(cfg(format!("key {kid}: an Ed25519 key has no `y`")));
                }
                let signing = match &self.d {
                    Some(d) => {
                        let seed = decode_exact(&kid, "d", d, 32)?;
                        let seed: [u8; 32] = seed.try_into().map_err(|_| cfg("seed length"))?;
                        // ed25519-compact refused it by panicking; still refused, now as an error.
                        if seed == [0u8; 32] {
                            return Err(cfg(format!("key {kid}: `d` is all zeros")));
                        }
                        Some(EdSecretKey::from_bytes(&seed))
                    }
                    None => None,
                };
                let public = match &self.x {
                    Some(x) => Some(
                        EdPublicKey::try_from(decode_exact(&kid, "x", x, 32)?.as_slice())
                            .map_err(|_| cfg(format!("key {kid}: `x` is not an Ed25519 key")))?,
                    ),
                    None => None,
                };
                let verifying = match (&signing, public) {
                    (Some(sk), Some(pk)) if sk.verifying_key() != pk => {
                        return Err(cfg(format!("key {kid}: `x` does not match `d`")));
                    }
                    (Some(sk), _) => sk.verifying_key(),
                    (None, Some(pk)) => pk,
                    (None, None) => return Err(cfg(format!("key {kid}: needs `d` or `x`"))),
                };
                (
                    signing.map(|sk| SigningMaterial::Ed25519(Box::new(sk))),
                    VerifyingMaterial::Ed25519(verifying),
                )
            }
            Alg::Es256 => {
                let signing = match &self.d {
                    Some(d) => {
                        let scalar = decode_exact(&kid, "d", d, 32)?;
                        Some(
                            <EsSigningKey as jwt_compact::alg::SigningKey<Es256>>::from_slice(
                                &scalar,
                            )
                            .map_err(|_| cfg(format!("key {kid}: `d` is not a P-256 scalar")))?,
                        )
                    }
                    None => None,
                };
                let public =
                    match (&self.x, &self.y) {
                        (Some(x), Some(y)) => {
                            let jwk = JsonWebKey::EllipticCurve {
                                curve: "P-256".into(),
                                x: decode_exact(&kid, "x", x, 32)?.into(),
                                y: decode_exact(&kid, "y", y, 32)?.into(),
                                secret: None,
                            };
                            Some(EsVerifyingKey::try_from(&jwk).map_err(|_| {
                                cfg(format!("key {kid}: `x`/`y` is not a P-256 point"))
                            })?)
                        }
                        (None, None) => None,
                        _ => {
                            return Err(cfg(format!(
                                "key {kid}: a P-256 key needs both `x` and `y`"
                            )));
                        }
                    };
                let verifying = match (&signing, public) {
                    (Some(sk), Some(pk)) if *sk.verifying_key() != pk => {
                        return Err(cfg(format!("key {kid}: `x`/`y` do not match `d`")));
                    }
                    (Some(sk), _) => *sk.verifying_key(),
                    (None, Some(pk)) => pk,
                    (None, None) => {
                        return Err(cfg(format!("key {kid}: needs `d` or `x` and `y`")));
                    }
                };
                (
                    signing.map(|s| SigningMaterial::Es256(Box::new(s))),
                    VerifyingMaterial::Es256(Box::new(verifying)),
                )
            }
        };
        Ok(Key {
            kid,
            alg,
            signing,
            verifying,
        })
    }
}

impl KeyRing {
    /// Parses the configuration format described in the module docs. Error messages name the
    /// offending `kid` and member, never key material.
    pub fn from_json(config: &str) -> Result<Self, Error> {
        let parsed: RingConfig = serde_json::from_str(config.trim())
            .map_err(|_| cfg("key ring is not JSON of the form {\"active\":..,\"keys\":[..]}"))?;
        if parsed.keys.is_empty() {
            return Err(cfg("key ring has no keys"));
        }
        if parsed.keys.len() > MAX_KEYS {
            return Err(cfg(format!("key ring has more than {MAX_KEYS} keys")));
        }
        let mut keys: Vec<Key> = Vec::with_capacity(parsed.keys.len());
        for k in parsed.keys {
            let key = k.into_key()?;
            if keys.iter().any(|other| other.kid == key.kid) {
                return Err(cfg(format!("duplicate kid {}", key.kid)));
            }
            keys.push(key);
        }
        if let Some(active) = &parsed.active {
            match keys.iter().find(|k| &k.kid == active) {
                None => return Err(cfg(format!("active key {active} is not in the ring"))),
                Some(k) if !k.can_sign() => {
                    return Err(cfg(format!("active key {active} has no private part `d`")));
                }
                Some(_) => {}
            }
        }
        Ok(Self {
            active: parsed.active,
            keys,
        })
    }

    /// A fresh ring with one new Ed25519 key, active.
    pub fn generate(kid: &str) -> Result<Self, Error> {
        let key = new_ed25519_key(kid)?;
        Ok(Self {
            active: Some(key.kid.clone()),
            keys: vec![key],
        })
    }

    /// Adds a new Ed25519 key `kid` and, if `activate`, makes it the active one. When the ring
    /// would then hold more than `keep` keys, the oldest (first) non-active keys are dropped, i.e.
    /// retired: tokens they signed stop verifying. Use `keep >= 2` so the previous key survives.
    pub fn rotate(&mut self, kid: &str, activate: bool, keep: usize) -> Result<(), Error> {
        if self.keys.iter().any(|k| k.kid == kid) {
            return Err(cfg(format!("duplicate kid {kid}")));
        }
        let key = new_ed25519_key(kid)?;
        self.keys.push(key);
        if activate {
            self.active = Some(kid.to_owned());
        }
        let keep = keep.clamp(1, MAX_KEYS);
        while self.keys.len() > keep {
            let Some(pos) = self
                .keys
                .iter()
                .position(|k| Some(&k.kid) != self.active.as_ref() && k.kid != kid)
            else {
                break;
            };
            self.keys.remove(pos);
        }
        Ok(())
    }

    /// Drops a key (retires it). Refuses to drop the active key.
    pub fn retire(&mut self, kid: &str) -> Result<(), Error> {
        if self.active.as_deref() == Some(kid) {
            return Err(cfg(format!("key {kid} is active")));
        }
        let before = self.keys.len();
        self.keys.retain(|k| k.kid != kid);
        if self.keys.len() == before {
            return Err(cfg(format!("key {kid} is not in the ring")));
        }
        Ok(())
    }

    /// The key new tokens are signed with.
    pub fn active_key(&self) -> Result<&Key, Error> {
        let active = self
            .active
            .as_deref()
            .ok_or_else(|| cfg("key ring has no active key"))?;
        self.get(active).ok_or_else(|| cfg("active key missing"))
    }

    /// The key with this `kid`, if any.
    pub fn get(&self, kid: &str) -> Option<&Key> {
        self.keys.iter().find(|k| k.kid == kid)
    }

    /// All keys, in configuration order.
    pub fn keys(&self) -> &[Key] {
        &self.keys
    }

    /// The same ring without any private part (what a verifier needs).
    pub fn public_only(&self) -> Self {
        Self {
            active: None,
            keys: self
                .keys
                .iter()
                .map(|k| Key {
                    signing: None,
                    ..k.clone()
                })
                .collect(),
        }
    }

    /// The JWKS (`{"keys":[...]}`) of every key's public half, for `GET /.well-known/jwks.json`.
    pub fn jwks_json(&self) -> String {
        let keys: Vec<_> = self.keys.iter().map(Key::public_jwk).collect();
        serde_json::json!({ "keys": keys }).to_string()
    }

    /// The ring in its configuration format, private parts included. This is a secret.
    pub fn to_config_json(&self) -> String {
        let keys: Vec<_> = self.keys.iter().map(Key::config_jwk).collect();
        let mut obj = serde_json::Map::new();
        if let Some(a) = &self.active {
            obj.insert("active".into(), a.clone().into());
        }
        obj.insert("keys".into(), keys.into());
        serde_json::Value::Object(obj).to_string()
    }
}

fn new_ed25519_key(kid: &str) -> Result<Key, Error> {
    if !is_valid_kid(kid) {
        return Err(cfg("a `kid` must be 1..=64 characters of [A-Za-z0-9._-]"));
    }
    let mut seed = [0u8; 32];
    crate::random_bytes(&mut seed)?;
    let sk = EdSecretKey::from_bytes(&seed);
    Ok(Key {
        kid: kid.to_owned(),
        alg: Alg::EdDsa,
        verifying: VerifyingMaterial::Ed25519(sk.verifying_key()),
        signing: Some(SigningMaterial::Ed25519(Box::new(sk))),
    })
}

/// A new key id derived from the time and randomness: `k<unix seconds>-<4 hex>`.
pub fn new_kid(now: i64) -> Result<String, Error> {
    let mut r = [0u8; 2];
    crate::random_bytes(&mut r)?;
    Ok(format!("k{now}-{}", hex::encode(r)))
}

/// A fresh key ring (one Ed25519 key, active) in configuration format: what the dev scripts put
/// into the `auth_signing_keys` variable.
pub fn generate_keyring_json() -> Result<String, Error> {
    let kid = new_kid(crate::unix_now())?;
    Ok(KeyRing::generate(&kid)?.to_config_json())
}

/// Signs `message` with a key's private half; `None` if the key has none (tests craft tokens).
#[cfg(test)]
pub(crate) fn sign_with(key: &Key, message: &[u8]) -> Option<Vec<u8>> {
    use jwt_compact::Algorithm as _;
    match key.signing.as_ref()? {
        SigningMaterial::Ed25519(sk) => Some(StrictEd25519.sign(sk, message).to_vec()),
        SigningMaterial::Es256(sk) => Some(Es256.sign(sk, message).to_bytes().to_vec()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEED_A: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8"; // bytes 0..32

    #[test]
    fn parses_seed_only_and_derives_public_key() {
        let ring = KeyRing::from_json(&format!(
            r#"{{"active":"k1","keys":[{{"kid":"k1","d":"{SEED_A}"}}]}}"#
        ))
        .unwrap();
        let k = ring.active_key().unwrap();
        assert_eq!(k.kid(), "k1");
        assert_eq!(k.alg(), Alg::EdDsa);
        assert!(k.can_sign());
        let jwks: serde_json::Value = serde_json::from_str(&ring.jwks_json()).unwrap();
        let jwk = &jwks["keys"][0];
        assert_eq!(jwk["kty"], "OKP");
        assert_eq!(jwk["crv"], "Ed25519");
        assert_eq!(jwk["kid"], "k1");
        assert_eq!(jwk["alg"], "EdDSA");
        assert_eq!(jwk["use"], "sig");
        assert!(
            jwk.get("d").is_none(),
            "JWKS must not contain private parts"
        );
        assert_eq!(b64::decode(jwk["x"].as_str().unwrap()).unwrap().len(), 32);
    }

    /// The seed → public key derivation and the signatures are plain RFC 8032 (checked against
    /// OpenSSL), so rings and tokens made with the previous backend (`ed25519-compact`) still work.
    #[test]
    fn ed25519_known_answers() {
        use jwt_compact::Algorithm as _;
        let ring = KeyRing::from_json(&format!(
            r#"{{"active":"k1","keys":[{{"kid":"k1","d":"{SEED_A}"}}]}}"#
        ))
        .unwrap();
        let key = ring.active_key().unwrap();
        assert_eq!(
            key.public_jwk()["x"],
            "A6EHv_POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg"
        );
        let sig = sign_with(key, b"jwt").unwrap();
        assert_eq!(
            hex::encode(&sig),
            "707b49d2a666249a653a87e05455be1a8d415941010cec108fa5f7a6edd6ca66\
             31ae86ed79de1bf9809ede3c443d8e997715208fa8634127b6b485a1cc9a7c0b"
        );
        let VerifyingMaterial::Ed25519(pk) = &key.verifying else {
            unreachable!()
        };
        let sig = ed25519_dalek::Signature::from_slice(&sig).unwrap();
        assert!(StrictEd25519.verify_signature(&sig, pk, b"jwt"));
        assert!(!StrictEd25519.verify_signature(&sig, pk, b"jwu"));
        // Same config out as in.
        assert!(ring.to_config_json().contains(SEED_A));
    }

    /// Why `StrictEd25519` exists: with a small-order `x` (here the identity), the signature
    /// R = identity, S = 0 satisfies the non-strict equation for every message.
    #[test]
    fn weak_public_keys_verify_nothing() {
        use jwt_compact::Algorithm as _;
        let mut identity = [0u8; 32];
        identity[0] = 1;
        let ring = KeyRing::from_json(&format!(
            r#"{{"keys":[{{"kid":"w","x":"{}"}}]}}"#,
            b64::encode(identity)
        ))
        .unwrap();
        let VerifyingMaterial::Ed25519(pk) = &ring.get("w").unwrap().verifying else {
            unreachable!()
        };
        let mut forged = [0u8; 64];
        forged[0] = 1;
        let forged = ed25519_dalek::Signature::from_bytes(&forged);
        assert!(jwt_compact::alg::Ed25519.verify_signature(&forged, pk, b"any message"));
        assert!(!StrictEd25519.verify_signature(&forged, pk, b"any message"));
    }

    #[test]
    fn jwks_is_a_valid_verification_ring_and_round_trips() {
        let mut ring = KeyRing::generate("a").unwrap();
        ring.rotate("b", true, 2).unwrap();
        let public = KeyRing::from_json(&ring.jwks_json()).unwrap();
        assert_eq!(public.keys().len(), 2);
        assert!(public.keys().iter().all(|k| !k.can_sign()));
        assert!(public.active_key().is_err());
        let again = KeyRing::from_json(&ring.to_config_json()).unwrap();
        assert_eq!(again.active_key().unwrap().kid(), "b");
        assert_eq!(again.jwks_json(), ring.jwks_json());
    }

    #[test]
    fn rotation_keeps_previous_and_retires_oldest() {
        let mut ring = KeyRing::generate("k1").unwrap();
        ring.rotate("k2", false, 3).unwrap();
        assert_eq!(
            ring.active_key().unwrap().kid(),
            "k1",
            "staged, not yet active"
        );
        ring.rotate("k3", true, 2).unwrap();
        let kids: Vec<_> = ring.keys().iter().map(|k| k.kid().to_owned()).collect();
        assert_eq!(kids, ["k2", "k3"]);
        assert_eq!(ring.active_key().unwrap().kid(), "k3");
        assert!(ring.retire("k3").is_err());
        ring.retire("k2").unwrap();
        assert!(ring.get("k2").is_none());
        assert!(ring.rotate("k3", true, 2).is_err(), "duplicate kid");
    }

    #[test]
    fn es256_keys() {
        let d = b64::encode([7u8; 32]);
        let ring = KeyRing::from_json(&format!(
            r#"{{"active":"e1","keys":[{{"kid":"e1","alg":"ES256","d":"{d}"}}]}}"#
        ))
        .unwrap();
        let jwk = ring.active_key().unwrap().public_jwk();
        assert_eq!(jwk["kty"], "EC");
        assert_eq!(jwk["crv"], "P-256");
        let public = KeyRing::from_json(&ring.jwks_json()).unwrap();
        assert_eq!(public.get("e1").unwrap().alg(), Alg::Es256);
        // x/y given with d must match.
        let bad_y = b64::encode([1u8; 32]);
        let x = jwk["x"].as_str().unwrap();
        assert!(
            KeyRing::from_json(&format!(
                r#"{{"keys":[{{"kid":"e1","alg":"ES256","d":"{d}","x":"{x}","y":"{bad_y}"}}]}}"#
            ))
            .is_err()
        );
    }

    #[test]
    fn rejects_bad_configs_without_echoing_secrets() {
        let secret_looking = "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0"; // 27 bytes, not 32
        let zero_seed = b64::encode([0u8; 32]);
        let mut y2 = [0u8; 32]; // y = 2 is not on the curve
        y2[0] = 2;
        let not_a_point = b64::encode(y2);
        let cases = [
            String::new(),
            "not json".into(),
            r#"{"keys":[]}"#.into(),
            r#"{"active":"k1","keys":[{"kid":"k1"}]}"#.into(),
            format!(r#"{{"keys":[{{"kid":"k1","d":"{secret_looking}"}}]}}"#),
            format!(r#"{{"keys":[{{"d":"{SEED_A}"}}]}}"#),
            format!(r#"{{"keys":[{{"kid":"bad kid","d":"{SEED_A}"}}]}}"#),
            format!(r#"{{"keys":[{{"kid":"k1","d":"{SEED_A}"}},{{"kid":"k1","d":"{SEED_A}"}}]}}"#),
            format!(r#"{{"active":"k2","keys":[{{"kid":"k1","d":"{SEED_A}"}}]}}"#),
            format!(r#"{{"keys":[{{"kid":"k1","alg":"HS256","d":"{SEED_A}"}}]}}"#),
            format!(r#"{{"keys":[{{"kid":"k1","alg":"none","d":"{SEED_A}"}}]}}"#),
            format!(r#"{{"keys":[{{"kid":"k1","kty":"oct","d":"{SEED_A}"}}]}}"#),
            format!(r#"{{"keys":[{{"kid":"k1","use":"enc","d":"{SEED_A}"}}]}}"#),
            format!(
                r#"{{"keys":[{{"kid":"k1","alg":"ES256","kty":"OKP","crv":"Ed25519","d":"{SEED_A}"}}]}}"#
            ),
            format!(r#"{{"keys":[{{"kid":"k1","d":"{SEED_A}=="}}]}}"#),
            format!(r#"{{"keys":[{{"kid":"k1","d":"{zero_seed}"}}]}}"#),
            format!(r#"{{"keys":[{{"kid":"k1","x":"{not_a_point}"}}]}}"#),
        ];
        for c in &cases {
            match KeyRing::from_json(c) {
                Err(Error::Config(msg)) => {
                    assert!(
                        !msg.contains(SEED_A) && !msg.contains(secret_looking),
                        "{msg}"
                    );
                }
                other => panic!("{c}: expected config error, got {other:?}"),
            }
        }
        // Public key not matching the seed.
        let other = KeyRing::generate("x").unwrap();
        let x = other.active_key().unwrap().public_jwk()["x"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(
            KeyRing::from_json(&format!(
                r#"{{"keys":[{{"kid":"k1","d":"{SEED_A}","x":"{x}"}}]}}"#
            ))
            .is_err()
        );
    }

    #[test]
    fn debug_output_hides_key_material() {
        let ring = KeyRing::from_json(&format!(
            r#"{{"active":"k1","keys":[{{"kid":"k1","d":"{SEED_A}"}}]}}"#
        ))
        .unwrap();
        let dbg = format!("{ring:?}");
        assert!(dbg.contains("k1"));
        assert!(!dbg.contains(SEED_A));
        assert!(!dbg.to_lowercase().contains("seed"));
    }

    #[test]
    fn generated_ring_is_usable() {
        let json = generate_keyring_json().unwrap();
        let ring = KeyRing::from_json(&json).unwrap();
        assert!(ring.active_key().unwrap().can_sign());
        assert!(is_valid_kid(ring.active_key().unwrap().kid()));
        assert_ne!(generate_keyring_json().unwrap(), json);
    }
}
