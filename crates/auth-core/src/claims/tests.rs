//! The claims validation matrix: expired, not yet valid, wrong iss/aud, `alg: none`,
//! `HS256` with the public key as secret, unknown kid, truncated/garbled, huge; key rotation.

use super::*;
use crate::b64;
use crate::keys::sign_with;
use jwt_compact::alg::{Hs256, Hs256Key};
use proptest::prelude::*;
use serde_json::json;

const ISS: &str = "https://auth.test";
const AUD: &str = "attachments-api";
const NOW: i64 = 1_750_000_000;
const USER: &str = "6f1c2a8e-3b4d-4e5f-8a9b-0c1d2e3f4a5b";
const TENANT: &str = "0a1b2c3d-4e5f-4a6b-8c7d-8e9f0a1b2c3d";

fn ring() -> KeyRing {
    KeyRing::generate("k1").unwrap()
}

fn verifier(ring: &KeyRing) -> Verifier {
    Verifier::new(ring, VerifierConfig::new(ISS, AUD)).unwrap()
}

fn issuer(ring: &KeyRing) -> Issuer {
    Issuer::new(ring, ISS, AUD).unwrap()
}

fn user() -> UserId {
    UserId::parse(USER).unwrap()
}

fn tenant() -> TenantId {
    TenantId::parse(TENANT).unwrap()
}

fn good_claims() -> serde_json::Value {
    json!({"iss": ISS, "aud": AUD, "sub": USER, "tid": TENANT, "role": "user",
           "iat": NOW, "nbf": NOW, "exp": NOW + 900, "jti": "3c1d6a9e-1111-4222-8333-444455556666"})
}

fn good_header(kid: &str) -> serde_json::Value {
    json!({"alg": "EdDSA", "kid": kid, "typ": "at+jwt"})
}

/// Builds a token from raw JSON parts, signed with `kid`'s private key from `ring`.
fn craft(
    ring: &KeyRing,
    header: &serde_json::Value,
    claims: &serde_json::Value,
    kid: &str,
) -> String {
    let signing_input = format!(
        "{}.{}",
        b64::encode(header.to_string()),
        b64::encode(claims.to_string())
    );
    let sig = sign_with(ring.get(kid).unwrap(), signing_input.as_bytes()).unwrap();
    format!("{signing_input}.{}", b64::encode(sig))
}

fn with(mut v: serde_json::Value, key: &str, value: serde_json::Value) -> serde_json::Value {
    v[key] = value;
    v
}

fn without(mut v: serde_json::Value, key: &str) -> serde_json::Value {
    v.as_object_mut().unwrap().remove(key);
    v
}

#[test]
fn issued_token_round_trips() {
    let ring = ring();
    let issued = issuer(&ring)
        .issue(user(), tenant(), Role::Admin, NOW)
        .unwrap();
    assert_eq!(issued.expires_in, 900);
    let claims = verifier(&ring).verify(&issued.token, NOW + 1).unwrap();
    assert_eq!(claims, issued.claims);
    assert_eq!(claims.user, user());
    assert_eq!(claims.tenant, tenant());
    assert_eq!(claims.role, Role::Admin);
    assert_eq!(claims.expires_at, NOW + 900);
    assert_eq!(claims.kid, "k1");
    assert!(uuid::Uuid::parse_str(&claims.jti).is_ok());
    // Header is what the docs promise.
    let header: serde_json::Value =
        serde_json::from_slice(&b64::decode(issued.token.split('.').next().unwrap()).unwrap())
            .unwrap();
    assert_eq!(
        header,
        json!({"alg": "EdDSA", "kid": "k1", "typ": "at+jwt"})
    );
    // Every token has its own jti.
    let again = issuer(&ring)
        .issue(user(), tenant(), Role::Admin, NOW)
        .unwrap();
    assert_ne!(again.claims.jti, issued.claims.jti);
}

#[test]
fn crafted_good_token_verifies() {
    let ring = ring();
    let t = craft(&ring, &good_header("k1"), &good_claims(), "k1");
    assert!(verifier(&ring).verify(&t, NOW).is_ok());
}

#[test]
fn expired_with_leeway() {
    let ring = ring();
    let v = verifier(&ring);
    let t = issuer(&ring)
        .issue(user(), tenant(), Role::User, NOW)
        .unwrap()
        .token;
    let exp = NOW + 900;
    assert!(v.verify(&t, exp - 1).is_ok());
    assert!(v.verify(&t, exp + 29).is_ok(), "inside the 30 s leeway");
    assert_eq!(v.verify(&t, exp + 30), Err(Error::Expired));
    assert_eq!(v.verify(&t, exp + 86_400), Err(Error::Expired));
    let strict = Verifier::new(&ring, VerifierConfig::new(ISS, AUD).with_leeway(0)).unwrap();
    assert_eq!(strict.verify(&t, exp), Err(Error::Expired));
    assert!(strict.verify(&t, exp - 1).is_ok());
}

#[test]
fn not_yet_valid_with_leeway() {
    let ring = ring();
    let v = verifier(&ring);
    let t = issuer(&ring)
        .issue(user(), tenant(), Role::User, NOW)
        .unwrap()
        .token;
    assert!(v.verify(&t, NOW - 30).is_ok(), "30 s clock skew tolerated");
    assert_eq!(v.verify(&t, NOW - 31), Err(Error::NotYetValid));
    // nbf later than iat.
    let c = with(good_claims(), "nbf", json!(NOW + 120));
    let t = craft(&ring, &good_header("k1"), &c, "k1");
    assert_eq!(v.verify(&t, NOW), Err(Error::NotYetValid));
    assert!(v.verify(&t, NOW + 90).is_ok());
    // iat in the future.
    let c = with(
        with(good_claims(), "iat", json!(NOW + 600)),
        "nbf",
        json!(NOW - 10),
    );
    let t = craft(&ring, &good_header("k1"), &c, "k1");
    assert_eq!(v.verify(&t, NOW), Err(Error::NotYetValid));
}

#[test]
fn wrong_issuer_and_audience() {
    let ring = ring();
    let v = verifier(&ring);
    let t = Issuer::new(&ring, "https://evil.test", AUD)
        .unwrap()
        .issue(user(), tenant(), Role::User, NOW)
        .unwrap();
    assert_eq!(v.verify(&t.token, NOW), Err(Error::WrongIssuer));
    let t = Issuer::new(&ring, ISS, "another-api")
        .unwrap()
        .issue(user(), tenant(), Role::User, NOW)
        .unwrap();
    assert_eq!(v.verify(&t.token, NOW), Err(Error::WrongAudience));
    // Near misses are misses.
    for iss in [
        json!("https://auth.test/"),
        json!("HTTPS://AUTH.TEST"),
        json!(["https://auth.test"]),
        json!(null),
    ] {
        let t = craft(
            &ring,
            &good_header("k1"),
            &with(good_claims(), "iss", iss.clone()),
            "k1",
        );
        assert!(v.verify(&t, NOW).is_err(), "{iss}");
    }
    // aud as an array containing ours is fine; without it, or empty, is not.
    let t = craft(
        &ring,
        &good_header("k1"),
        &with(good_claims(), "aud", json!(["x", AUD])),
        "k1",
    );
    assert!(v.verify(&t, NOW).is_ok());
    let t = craft(
        &ring,
        &good_header("k1"),
        &with(good_claims(), "aud", json!(["x", "y"])),
        "k1",
    );
    assert_eq!(v.verify(&t, NOW), Err(Error::WrongAudience));
    let t = craft(
        &ring,
        &good_header("k1"),
        &with(good_claims(), "aud", json!([])),
        "k1",
    );
    assert_eq!(v.verify(&t, NOW), Err(Error::WrongAudience));
}

#[test]
fn alg_none_is_refused() {
    let ring = ring();
    let v = verifier(&ring);
    let claims = b64::encode(good_claims().to_string());
    for alg in ["none", "None", "NONE", "nOnE", ""] {
        let header = b64::encode(json!({"alg": alg, "kid": "k1", "typ": "at+jwt"}).to_string());
        for sig in ["", "AAAA"] {
            let t = format!("{header}.{claims}.{sig}");
            assert_eq!(
                v.verify(&t, NOW),
                Err(Error::AlgorithmNotAllowed),
                "alg {alg:?} sig {sig:?}"
            );
        }
    }
    // And with no alg at all.
    let header = b64::encode(json!({"kid": "k1", "typ": "at+jwt"}).to_string());
    assert!(v.verify(&format!("{header}.{claims}."), NOW).is_err());
}

#[test]
fn hs256_with_the_public_key_as_secret_is_refused() {
    let ring = ring();
    let v = verifier(&ring);
    let jwk = ring.get("k1").unwrap().public_jwk();
    let x_text = jwk["x"].as_str().unwrap().to_owned();
    let x_raw = b64::decode(&x_text).unwrap();
    let jwks = ring.jwks_json();
    let header = Header::empty()
        .with_key_id("k1")
        .with_token_type(TOKEN_TYPE);
    let mut claims = Claims::new(WireClaims {
        iss: ISS.into(),
        aud: Audience::One(AUD.into()),
        sub: USER.into(),
        tid: TENANT.into(),
        role: "admin".into(),
        jti: "j".into(),
    });
    claims.issued_at = DateTime::from_timestamp(NOW, 0);
    claims.not_before = DateTime::from_timestamp(NOW, 0);
    claims.expiration = DateTime::from_timestamp(NOW + 900, 0);
    for secret in [
        &x_raw[..],
        x_text.as_bytes(),
        jwks.as_bytes(),
        jwk.to_string().as_bytes(),
    ] {
        let t = Hs256
            .token(&header, &claims, &Hs256Key::new(secret))
            .unwrap();
        assert_eq!(v.verify(&t, NOW), Err(Error::AlgorithmNotAllowed));
        // Even a verifier that also allows ES256 refuses HS256: the HMAC family is not selectable.
        let v2 = Verifier::new(&ring, VerifierConfig::new(ISS, AUD).allow_es256()).unwrap();
        assert_eq!(v2.verify(&t, NOW), Err(Error::AlgorithmNotAllowed));
    }
    for alg in [
        "HS256", "HS384", "HS512", "RS256", "PS256", "ES256K", "Ed25519", "eddsa",
    ] {
        let t = craft(
            &ring,
            &json!({"alg": alg, "kid": "k1", "typ": "at+jwt"}),
            &good_claims(),
            "k1",
        );
        assert_eq!(v.verify(&t, NOW), Err(Error::AlgorithmNotAllowed), "{alg}");
    }
}

#[test]
fn key_is_bound_to_its_algorithm() {
    let d = b64::encode([9u8; 32]);
    let x = {
        let r = KeyRing::generate("k1").unwrap();
        r.to_config_json()
    };
    let mut cfg: serde_json::Value = serde_json::from_str(&x).unwrap();
    cfg["keys"]
        .as_array_mut()
        .unwrap()
        .push(json!({"kid": "e1", "alg": "ES256", "d": d}));
    let ring = KeyRing::from_json(&cfg.to_string()).unwrap();
    let v = Verifier::new(&ring, VerifierConfig::new(ISS, AUD).allow_es256()).unwrap();
    // An EdDSA signature presented as ES256 under the EdDSA kid.
    let t = craft(
        &ring,
        &json!({"alg": "ES256", "kid": "k1", "typ": "at+jwt"}),
        &good_claims(),
        "k1",
    );
    assert_eq!(v.verify(&t, NOW), Err(Error::AlgorithmNotAllowed));
    // An ES256 signature under the ES256 kid verifies; claimed as EdDSA it does not.
    let t = craft(
        &ring,
        &json!({"alg": "ES256", "kid": "e1", "typ": "at+jwt"}),
        &good_claims(),
        "e1",
    );
    assert!(v.verify(&t, NOW).is_ok());
    let t = craft(
        &ring,
        &json!({"alg": "EdDSA", "kid": "e1", "typ": "at+jwt"}),
        &good_claims(),
        "e1",
    );
    assert_eq!(v.verify(&t, NOW), Err(Error::AlgorithmNotAllowed));
    // ES256 is off by default.
    let t = craft(
        &ring,
        &json!({"alg": "ES256", "kid": "e1", "typ": "at+jwt"}),
        &good_claims(),
        "e1",
    );
    assert_eq!(
        verifier(&ring).verify(&t, NOW),
        Err(Error::AlgorithmNotAllowed)
    );
    // An ES256 issuer.
    let es_ring = KeyRing::from_json(
        &json!({"active": "e1", "keys": [{"kid": "e1", "alg": "ES256", "d": d}]}).to_string(),
    )
    .unwrap();
    let issued = Issuer::new(&es_ring, ISS, AUD)
        .unwrap()
        .issue(user(), tenant(), Role::User, NOW)
        .unwrap();
    let v = Verifier::new(&es_ring, VerifierConfig::new(ISS, AUD).allow_es256()).unwrap();
    assert_eq!(v.verify(&issued.token, NOW).unwrap().kid, "e1");
}

#[test]
fn unknown_or_missing_kid() {
    let ring = ring();
    let v = verifier(&ring);
    let other = KeyRing::generate("k9").unwrap();
    let t = issuer(&other)
        .issue(user(), tenant(), Role::User, NOW)
        .unwrap()
        .token;
    assert_eq!(v.verify(&t, NOW), Err(Error::UnknownKeyId));
    let t = craft(
        &ring,
        &without(good_header("k1"), "kid"),
        &good_claims(),
        "k1",
    );
    assert_eq!(v.verify(&t, NOW), Err(Error::MissingKeyId));
    let t = craft(
        &ring,
        &with(good_header("k1"), "kid", json!("")),
        &good_claims(),
        "k1",
    );
    assert_eq!(v.verify(&t, NOW), Err(Error::UnknownKeyId));
    let t = craft(
        &ring,
        &with(good_header("k1"), "kid", json!(1)),
        &good_claims(),
        "k1",
    );
    assert_eq!(v.verify(&t, NOW), Err(Error::MalformedToken));
    // Same kid, different key: the signature fails.
    let impostor = KeyRing::generate("k1").unwrap();
    let t = issuer(&impostor)
        .issue(user(), tenant(), Role::Admin, NOW)
        .unwrap()
        .token;
    assert_eq!(v.verify(&t, NOW), Err(Error::BadSignature));
}

#[test]
fn truncated_and_garbled_tokens() {
    let ring = ring();
    let v = verifier(&ring);
    let t = issuer(&ring)
        .issue(user(), tenant(), Role::User, NOW)
        .unwrap()
        .token;
    let parts: Vec<&str> = t.split('.').collect();
    let cases = [
        String::new(),
        ".".into(),
        "..".into(),
        "...".into(),
        parts[0].into(),
        format!("{}.{}", parts[0], parts[1]),
        format!("{}.{}.", parts[0], parts[1]),
        format!("{}.{}.{}.{}", parts[0], parts[1], parts[2], parts[2]),
        t[..t.len() - 1].into(),
        t[..t.len() - 10].into(),
        t[..t.len() / 2].into(),
        format!(
            "{}.{}.{}",
            parts[0],
            &parts[1][..parts[1].len() - 3],
            parts[2]
        ),
        format!("{t}="),
        format!("{t} "),
        format!(" {t}"),
        t.replace('.', ".\n"),
        format!(
            "{}.{}.{}",
            parts[0],
            parts[1],
            parts[2].replace(|c: char| c.is_ascii_alphabetic(), "A")
        ),
        "not a token".into(),
        "eyJ.eyJ.sig".into(),
        format!(
            "{}.{}.{}",
            b64::encode("{\"alg\":\"EdDSA\""),
            parts[1],
            parts[2]
        ),
        format!("{}.{}.{}", b64::encode("[]"), parts[1], parts[2]),
        format!("{}.{}.{}", parts[0], b64::encode("null"), parts[2]),
        format!("{}.{}.{}", parts[0], b64::encode("{}"), parts[2]),
    ];
    for c in &cases {
        let r = v.verify(c, NOW);
        assert!(r.is_err(), "{c:?} verified");
        assert!(r.as_ref().unwrap_err().is_token_error(), "{c:?}: {r:?}");
        assert_eq!(
            r.unwrap_err().problem().code(),
            problem::Code::InvalidToken,
            "{c:?}"
        );
    }
    // Flip one character in each part.
    for part in 0..3 {
        let mut p: Vec<String> = parts.iter().map(|s| s.to_string()).collect();
        let mid = p[part].len() / 2;
        let c = p[part].as_bytes()[mid];
        let replacement = if c == b'A' { "B" } else { "A" };
        p[part].replace_range(mid..mid + 1, replacement);
        let garbled = p.join(".");
        assert!(v.verify(&garbled, NOW).is_err(), "part {part}");
    }
    // Swap in the claims of another (valid) token: signature no longer matches.
    let admin = issuer(&ring)
        .issue(user(), tenant(), Role::Admin, NOW)
        .unwrap()
        .token;
    let admin_claims = admin.split('.').nth(1).unwrap();
    let spliced = format!("{}.{}.{}", parts[0], admin_claims, parts[2]);
    assert_eq!(v.verify(&spliced, NOW), Err(Error::BadSignature));
}

#[test]
fn huge_tokens_are_refused_before_parsing() {
    let ring = ring();
    let v = verifier(&ring);
    let t = issuer(&ring)
        .issue(user(), tenant(), Role::User, NOW)
        .unwrap()
        .token;
    // A signed token whose claims are padded past the cap.
    let big = with(good_claims(), "pad", json!("x".repeat(MAX_TOKEN_LEN)));
    let big = craft(&ring, &good_header("k1"), &big, "k1");
    assert!(big.len() > MAX_TOKEN_LEN);
    assert_eq!(v.verify(&big, NOW), Err(Error::TokenTooLarge));
    let junk = "a".repeat(MAX_TOKEN_LEN + 1);
    assert_eq!(v.verify(&junk, NOW), Err(Error::TokenTooLarge));
    let megabyte = format!("{t}{}", "A".repeat(1 << 20));
    assert_eq!(v.verify(&megabyte, NOW), Err(Error::TokenTooLarge));
    // Just under the cap is parsed (and fails for other reasons, or succeeds).
    let padded = with(good_claims(), "pad", json!("x".repeat(5000)));
    let padded = craft(&ring, &good_header("k1"), &padded, "k1");
    assert!(padded.len() <= MAX_TOKEN_LEN);
    assert!(v.verify(&padded, NOW).is_ok());
    assert_eq!(
        bearer_token(Some("Bearer ".repeat(2000).as_bytes())),
        Err(Error::TokenTooLarge)
    );
}

#[test]
fn header_rules() {
    let ring = ring();
    let v = verifier(&ring);
    let t = craft(
        &ring,
        &with(good_header("k1"), "crit", json!(["exp"])),
        &good_claims(),
        "k1",
    );
    assert_eq!(v.verify(&t, NOW), Err(Error::MalformedToken));
    let t = craft(
        &ring,
        &without(good_header("k1"), "typ"),
        &good_claims(),
        "k1",
    );
    assert_eq!(v.verify(&t, NOW), Err(Error::InvalidClaims));
    let t = craft(
        &ring,
        &with(good_header("k1"), "typ", json!("JWT")),
        &good_claims(),
        "k1",
    );
    assert_eq!(v.verify(&t, NOW), Err(Error::InvalidClaims));
    let t = craft(
        &ring,
        &with(good_header("k1"), "typ", json!("application/at+JWT")),
        &good_claims(),
        "k1",
    );
    assert!(v.verify(&t, NOW).is_ok());
    // jku/x5u are ignored, never fetched: the ring decides.
    let t = craft(
        &ring,
        &with(good_header("k1"), "jku", json!("https://evil.test/jwks")),
        &good_claims(),
        "k1",
    );
    assert!(v.verify(&t, NOW).is_ok());
    // Duplicate alg member.
    let header = r#"{"alg":"EdDSA","alg":"none","kid":"k1","typ":"at+jwt"}"#;
    let input = format!(
        "{}.{}",
        b64::encode(header),
        b64::encode(good_claims().to_string())
    );
    let sig = sign_with(ring.get("k1").unwrap(), input.as_bytes()).unwrap();
    assert!(
        v.verify(&format!("{input}.{}", b64::encode(sig)), NOW)
            .is_err()
    );
}

#[test]
fn claim_shapes() {
    let ring = ring();
    let v = verifier(&ring);
    let cases = [
        without(good_claims(), "exp"),
        without(good_claims(), "nbf"),
        without(good_claims(), "iat"),
        without(good_claims(), "sub"),
        without(good_claims(), "tid"),
        without(good_claims(), "role"),
        without(good_claims(), "jti"),
        without(good_claims(), "iss"),
        without(good_claims(), "aud"),
        with(good_claims(), "sub", json!("alice")),
        with(good_claims(), "tid", json!("00000000")),
        with(good_claims(), "role", json!("root")),
        with(good_claims(), "role", json!("Admin")),
        with(good_claims(), "jti", json!("")),
        with(good_claims(), "jti", json!("a b")),
        with(good_claims(), "jti", json!("x".repeat(200))),
        with(good_claims(), "exp", json!("soon")),
        with(good_claims(), "exp", json!(i64::MAX)),
        with(good_claims(), "exp", json!(1e300)),
        with(good_claims(), "nbf", json!(-9_000_000_000_000_i64)),
        with(good_claims(), "exp", json!(NOW + MAX_ACCESS_TTL_SECS + 1)),
        with(good_claims(), "exp", json!(NOW)),
    ];
    for c in &cases {
        let t = craft(&ring, &good_header("k1"), c, "k1");
        let r = v.verify(&t, NOW);
        assert!(r.is_err(), "{c}");
        assert_ne!(r.unwrap_err(), Error::BadSignature, "{c}");
    }
}

#[test]
fn key_rotation_without_logging_anyone_out() {
    // Day 0: k1 active.
    let mut ring = KeyRing::generate("k1").unwrap();
    let old = issuer(&ring)
        .issue(user(), tenant(), Role::User, NOW)
        .unwrap()
        .token;
    // Stage k2 (verifiers learn it first), then activate it.
    ring.rotate("k2", false, 3).unwrap();
    assert_eq!(issuer(&ring).kid(), "k1");
    ring.rotate("k3", true, 3).unwrap();
    assert_eq!(issuer(&ring).kid(), "k3");
    let new = issuer(&ring)
        .issue(user(), tenant(), Role::User, NOW + 60)
        .unwrap()
        .token;
    // Verifiers configured from the JWKS (public parts only) accept both generations.
    let public = KeyRing::from_json(&ring.jwks_json()).unwrap();
    let v = verifier(&public);
    assert_eq!(v.verify(&old, NOW + 120).unwrap().kid, "k1");
    assert_eq!(v.verify(&new, NOW + 120).unwrap().kid, "k3");
    // Retire k1 once its tokens have expired: they are refused, new ones still verify.
    ring.retire("k1").unwrap();
    let v = verifier(&ring);
    assert_eq!(v.verify(&old, NOW + 120), Err(Error::UnknownKeyId));
    assert!(v.verify(&new, NOW + 120).is_ok());
}

#[test]
fn verifier_and_issuer_config_checks() {
    let ring = ring();
    assert!(Verifier::new(&ring, VerifierConfig::new("", AUD)).is_err());
    assert!(Verifier::new(&ring, VerifierConfig::new(ISS, AUD).with_leeway(-1)).is_err());
    assert!(Verifier::new(&ring, VerifierConfig::new(ISS, AUD).with_leeway(301)).is_err());
    let mut cfg = VerifierConfig::new(ISS, AUD);
    cfg.algorithms.clear();
    assert!(Verifier::new(&ring, cfg).is_err());
    assert!(Issuer::new(&ring.public_only(), ISS, AUD).is_err());
    assert_eq!(
        issuer(&ring)
            .with_configured_ttl(" 900 ")
            .unwrap()
            .ttl_secs(),
        900
    );
    for bad in ["0", "86401", "", "15m"] {
        assert!(
            matches!(
                issuer(&ring).with_configured_ttl(bad),
                Err(Error::Config(_))
            ),
            "{bad:?}"
        );
    }
    assert!(issuer(&ring).with_ttl(0).is_err());
    assert!(issuer(&ring).with_ttl(MAX_ACCESS_TTL_SECS + 1).is_err());
    let short = issuer(&ring).with_ttl(60).unwrap();
    let t = short.issue(user(), tenant(), Role::User, NOW).unwrap();
    assert_eq!(t.expires_in, 60);
    assert_eq!(
        verifier(&ring).verify(&t.token, NOW + 90),
        Err(Error::Expired)
    );
}

#[test]
fn bearer_header_parsing() {
    assert_eq!(bearer_token(None), Err(Error::MissingToken));
    assert_eq!(bearer_token(Some(b"Bearer abc.def.ghi")), Ok("abc.def.ghi"));
    assert_eq!(
        bearer_token(Some(b"bearer   abc.def.ghi ")),
        Ok("abc.def.ghi")
    );
    assert_eq!(bearer_token(Some(b"BEARER abc")), Ok("abc"));
    assert_eq!(
        bearer_token(Some(b"Basic dXNlcjpwYXNz")),
        Err(Error::MissingToken)
    );
    assert_eq!(bearer_token(Some(b"Bearer")), Err(Error::MalformedToken));
    assert_eq!(bearer_token(Some(b"Bearer ")), Err(Error::MalformedToken));
    assert_eq!(
        bearer_token(Some(b"Bearer a b")),
        Err(Error::MalformedToken)
    );
    assert_eq!(
        bearer_token(Some(b"Bearer \xff")),
        Err(Error::MalformedToken)
    );
    assert_eq!(bearer_token(Some(b"Bearerabc")), Err(Error::MissingToken));
}

#[test]
fn errors_map_to_contract_codes_and_headers() {
    assert_eq!(Error::Expired.problem().code(), problem::Code::TokenExpired);
    assert_eq!(Error::Expired.problem().status(), 401);
    for e in [
        Error::MissingToken,
        Error::TokenTooLarge,
        Error::MalformedToken,
        Error::AlgorithmNotAllowed,
        Error::MissingKeyId,
        Error::UnknownKeyId,
        Error::BadSignature,
        Error::NotYetValid,
        Error::WrongIssuer,
        Error::WrongAudience,
        Error::InvalidClaims,
    ] {
        assert_eq!(e.problem().code(), problem::Code::InvalidToken, "{e:?}");
        assert_eq!(e.problem().status(), 401);
        let h = e.www_authenticate().unwrap();
        assert!(h.starts_with("Bearer "), "{h}");
        if e != Error::MissingToken {
            assert!(h.contains("error=\"invalid_token\""), "{h}");
        }
    }
    assert!(
        Error::Expired
            .www_authenticate()
            .unwrap()
            .contains("error=\"invalid_token\"")
    );
    assert_eq!(
        Error::Config("x".into()).problem(),
        problem::Problem::new(problem::Code::Misconfigured)
    );
    assert_eq!(Error::Random.problem(), problem::Problem::internal());
    assert!(Error::Config("x".into()).www_authenticate().is_none());
}

fn mutate(token: &str, pos: usize, byte: u8) -> String {
    let mut b = token.as_bytes().to_vec();
    let i = pos % b.len();
    b[i] = byte;
    String::from_utf8_lossy(&b).into_owned()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, .. ProptestConfig::default() })]

    #[test]
    fn verify_never_panics_on_arbitrary_strings(s in "\\PC{0,600}") {
        let ring = ring();
        prop_assert!(verifier(&ring).verify(&s, NOW).is_err());
    }

    #[test]
    fn verify_never_panics_on_token_shaped_input(a in "[A-Za-z0-9_-]{0,200}", b in "[A-Za-z0-9_-]{0,400}", c in "[A-Za-z0-9_-]{0,120}") {
        let ring = ring();
        let token = format!("{a}.{b}.{c}");
        prop_assert!(verifier(&ring).verify(&token, NOW).is_err());
    }

    #[test]
    fn verify_never_panics_on_arbitrary_json_parts(h in any::<std::collections::HashMap<String, i64>>(), c in any::<std::collections::HashMap<String, String>>()) {
        let ring = ring();
        let t = format!("{}.{}.{}", b64::encode(serde_json::to_string(&h).unwrap()), b64::encode(serde_json::to_string(&c).unwrap()), b64::encode([0u8; 64]));
        prop_assert!(verifier(&ring).verify(&t, NOW).is_err());
    }

    #[test]
    fn single_byte_mutations_never_forge(pos in any::<usize>(), byte in any::<u8>()) {
        let ring = ring();
        let v = verifier(&ring);
        let t = issuer(&ring).issue(user(), tenant(), Role::User, NOW).unwrap();
        let m = mutate(&t.token, pos, byte);
        match v.verify(&m, NOW) {
            // Only a no-op mutation (or a non-canonical base64 spelling of the same bytes) may pass.
            Ok(claims) => prop_assert_eq!(claims, t.claims),
            Err(e) => prop_assert!(e.is_token_error()),
        }
    }

    #[test]
    fn bearer_parsing_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let _ = bearer_token(Some(&bytes));
    }
}
