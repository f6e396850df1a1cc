use proptest::prelude::*;

use super::*;

const K1: &str = "k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";
const K2_HEX: &str = "k2:2021222324252627282930313233343536373839404142434445464748495051";

fn signer(cfg: &str) -> UrlSigner {
    UrlSigner::from_config(cfg).unwrap()
}

fn grant() -> Grant {
    Grant {
        attachment_id: Uuid::parse_str("0b4f3b9e-2a51-4c43-9d55-4a1e7cf0b2aa").unwrap(),
        tenant_id: Uuid::parse_str("7d0c0d5c-6f3e-4c8f-a1d2-19b0f2a7c001").unwrap(),
        expires_at: 1_800_000_000,
        disposition: Disposition::Attachment,
        generation: 3,
    }
}

fn split(path_query: &str) -> (&str, &str) {
    path_query.split_once('?').unwrap_or((path_query, ""))
}

const NOW: i64 = 1_700_000_000;

#[test]
fn round_trip() {
    let s = signer(K1);
    let pq = s.sign_path(&grant());
    assert!(pq.starts_with("/api/v1/files/0b4f3b9e-2a51-4c43-9d55-4a1e7cf0b2aa?t=7d0c0d5c-"));
    let (p, q) = split(&pq);
    assert_eq!(s.verify(p, q, NOW), Ok(grant()));
    let inline = Grant {
        disposition: Disposition::Inline,
        generation: 0,
        ..grant()
    };
    let pq = s.sign_path(&inline);
    let (p, q) = split(&pq);
    assert_eq!(s.verify(p, q, NOW), Ok(inline));
}

#[test]
fn absolute_url_uses_base() {
    let base = PublicBaseUrl::parse("https://files.example.com/dl/").unwrap();
    let url = signer(K1).sign(&base, &grant());
    assert!(
        url.as_str()
            .starts_with("https://files.example.com/dl/api/v1/files/")
    );
    assert_eq!(format!("{url:?}"), "SignedUrl(..)");
    let (u, g) = signer(K1).issue(
        &base,
        Target {
            attachment_id: grant().attachment_id,
            tenant_id: grant().tenant_id,
            disposition: Disposition::Inline,
            generation: 7,
        },
        ExpiresIn::new(60).unwrap(),
        NOW,
    );
    assert_eq!(g.expires_at, NOW + 60);
    assert!(u.as_str().contains("&d=i&g=7&k=k1&s="));
}

#[test]
fn every_bit_flip_of_every_byte_is_signature_invalid() {
    let s = signer(K1);
    let pq = s.sign_path(&grant());
    let mut tried = 0;
    for i in 0..pq.len() {
        for bit in 0..8 {
            let mut bytes = pq.clone().into_bytes();
            bytes[i] ^= 1 << bit;
            let Ok(m) = String::from_utf8(bytes) else {
                continue;
            };
            let (p, q) = split(&m);
            assert_eq!(
                s.verify(p, q, NOW),
                Err(VerifyError::SignatureInvalid),
                "flip bit {bit} of byte {i}: {m}"
            );
            tried += 1;
        }
    }
    assert_eq!(tried, 7 * pq.len()); // bit 7 makes invalid UTF-8: not a request path
}

#[test]
fn expiry_is_checked_after_the_signature() {
    let s = signer(K1);
    let g = grant();
    let pq = s.sign_path(&g);
    let (p, q) = split(&pq);
    assert!(s.verify(p, q, g.expires_at - 1).is_ok());
    assert_eq!(s.verify(p, q, g.expires_at), Err(VerifyError::Expired));
    assert_eq!(s.verify(p, q, g.expires_at + 10), Err(VerifyError::Expired));
    // A forged later expiry is not "expired" but invalid.
    let forged = pq.replace("e=1800000000", "e=1900000000");
    let (p, q) = split(&forged);
    assert_eq!(
        s.verify(p, q, g.expires_at + 10),
        Err(VerifyError::SignatureInvalid)
    );
}

#[test]
fn every_claim_is_covered() {
    let s = signer(K1);
    let pq = s.sign_path(&grant());
    let base = grant();
    let variants = [
        Grant {
            attachment_id: Uuid::nil(),
            ..base
        },
        Grant {
            tenant_id: Uuid::nil(),
            ..base
        },
        Grant {
            expires_at: base.expires_at + 1,
            ..base
        },
        Grant {
            disposition: Disposition::Inline,
            ..base
        },
        Grant {
            generation: 4,
            ..base
        },
    ];
    let sig = pq.rsplit_once("&s=").unwrap().1;
    for v in variants {
        let other = s.sign_path(&v);
        // The other URL's claims with this URL's signature.
        let spliced = format!("{}&s={sig}", other.rsplit_once("&s=").unwrap().0);
        let (p, q) = split(&spliced);
        assert_eq!(
            s.verify(p, q, NOW),
            Err(VerifyError::SignatureInvalid),
            "{v:?}"
        );
    }
}

#[test]
fn structure_is_strict() {
    let s = signer(K1);
    let pq = s.sign_path(&grant());
    let (p, q) = split(&pq);
    for (p2, q2) in [
        (p.to_owned(), format!("{q}&x=1")),
        (p.to_owned(), format!("{q}&")),
        (p.to_owned(), format!("&{q}")),
        (p.to_owned(), q.replacen("t=", "t=t=", 1)),
        (p.to_owned(), String::new()),
        (format!("{p}/"), q.to_owned()),
        (
            p.to_uppercase().replace("/API/V1/FILES/", ROUTE_PREFIX),
            q.to_owned(),
        ),
        (p.to_owned(), q.replace("e=1800000000", "e=01800000000")),
        (p.to_owned(), q.replace("g=3", "g=03")),
        (p.to_owned(), q.replace("g=3", "g=%33")),
        (p.replace("/api/v1/files/", "/api/v1/files//"), q.to_owned()),
    ] {
        assert_eq!(
            s.verify(&p2, &q2, NOW),
            Err(VerifyError::SignatureInvalid),
            "{p2}?{q2}"
        );
    }
    // Reordered parameters.
    let mut parts: Vec<&str> = q.split('&').collect();
    parts.swap(0, 1);
    assert_eq!(
        s.verify(p, &parts.join("&"), NOW),
        Err(VerifyError::SignatureInvalid)
    );
}

#[test]
fn rotation_old_urls_verify_until_the_key_is_retired() {
    let old = signer(K1);
    let url = old.sign_path(&grant());
    let (p, q) = split(&url);
    let rotated = signer(&format!("{K2_HEX},{K1}"));
    assert_eq!(rotated.signing_kid(), "k2");
    assert!(rotated.verify(p, q, NOW).is_ok());
    let new_url = rotated.sign_path(&grant());
    assert!(new_url.contains("&k=k2&"));
    let (np, nq) = split(&new_url);
    assert!(rotated.verify(np, nq, NOW).is_ok());
    // Old deployments (only k1) do not accept k2 URLs; after retiring k1 its URLs stop working.
    assert_eq!(old.verify(np, nq, NOW), Err(VerifyError::SignatureInvalid));
    let retired = signer(K2_HEX);
    assert_eq!(
        retired.verify(p, q, NOW),
        Err(VerifyError::SignatureInvalid)
    );
    assert!(retired.verify(np, nq, NOW).is_ok());
    // Same kid, different key material: invalid.
    let other = signer("k1:ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8");
    assert_eq!(other.verify(p, q, NOW), Err(VerifyError::SignatureInvalid));
}

#[test]
fn key_ring_config() {
    for bad in [
        "",
        " , ",
        "k1",
        "k1:short",
        ":AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8",
        "k 1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8",
        "k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
        &format!("{K1},{K1}"),
    ] {
        assert!(UrlSigner::from_config(bad).is_err(), "{bad:?}");
    }
    let s = signer(&format!(" {K1} , {K2_HEX} "));
    assert_eq!(format!("{s:?}"), r#"UrlSigner(kids: ["k1", "k2"])"#);
    let cfg = UrlSigner::config_from_key_bytes("x", &[7u8; 32]);
    assert!(UrlSigner::from_config(&cfg).is_ok());
}

#[test]
fn expires_in_rules() {
    let d = ExpiresIn::default();
    assert_eq!(d.secs(), 3600);
    assert_eq!(ExpiresIn::from_request(None, d), Ok(d));
    assert_eq!(ExpiresIn::from_request(Some(1), d).unwrap().secs(), 1);
    assert_eq!(
        ExpiresIn::from_request(Some(604_800), d).unwrap().secs(),
        604_800
    );
    for bad in [0, -1, 604_801, i64::MAX, i64::MIN] {
        assert_eq!(
            ExpiresIn::from_request(Some(bad), d),
            Err(ConfigError::Lifetime)
        );
    }
    assert_eq!(ExpiresIn::parse_config("").unwrap().secs(), 3600);
    assert_eq!(ExpiresIn::parse_config("60").unwrap().secs(), 60);
    assert!(ExpiresIn::parse_config("0").is_err());
    assert!(ExpiresIn::parse_config("1h").is_err());
}

#[test]
fn base_url() {
    assert_eq!(
        PublicBaseUrl::parse("http://127.0.0.1:3000/")
            .unwrap()
            .as_str(),
        "http://127.0.0.1:3000"
    );
    for bad in [
        "",
        "ftp://x",
        "http://",
        "http://x/?a",
        "http://x/#f",
        "http://x y",
        "http://x\ny",
    ] {
        assert!(PublicBaseUrl::parse(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn signature_comparison_is_constant_time() {
    let src = include_str!("lib.rs");
    let code = src.split("#[cfg(test)]").next().unwrap();
    assert!(code.contains("auth_core::ct::eq(expected.as_bytes(), s.as_bytes())"));
    assert!(!code.contains("expected == s") && !code.contains("s == expected"));
}

fn arb_grant() -> impl Strategy<Value = Grant> {
    (
        any::<u128>(),
        any::<u128>(),
        0i64..=999_999_999_999,
        any::<bool>(),
        any::<u32>(),
    )
        .prop_map(|(a, t, e, inline, g)| Grant {
            attachment_id: Uuid::from_u128(a),
            tenant_id: Uuid::from_u128(t),
            expires_at: e,
            disposition: if inline {
                Disposition::Inline
            } else {
                Disposition::Attachment
            },
            generation: g,
        })
}

proptest! {
    #[test]
    fn signed_grants_round_trip(g in arb_grant()) {
        let s = signer(K1);
        let pq = s.sign_path(&g);
        let (p, q) = split(&pq);
        let now = g.expires_at - 1;
        prop_assert_eq!(s.verify(p, q, now), Ok(g));
    }

    #[test]
    fn any_edit_is_invalid(g in arb_grant(), pos in any::<prop::sample::Index>(), ch in any::<char>(), op in 0u8..3) {
        let s = signer(K1);
        let pq = s.sign_path(&g);
        let mut chars: Vec<char> = pq.chars().collect();
        let i = pos.index(chars.len());
        match op {
            0 => { chars.remove(i); }
            1 => chars.insert(i, ch),
            _ => chars[i] = ch,
        }
        let m: String = chars.into_iter().collect();
        prop_assume!(m != pq);
        let (p, q) = split(&m);
        prop_assert_eq!(s.verify(p, q, i64::MIN), Err(VerifyError::SignatureInvalid));
    }
}

#[test]
fn a_url_id_is_opaque_stable_and_per_url() {
    let s = signer(K1);
    let a = s.sign_path(&grant());
    let b = s.sign_path(&Grant {
        disposition: Disposition::Inline,
        ..grant()
    });
    let (pa, qa) = split(&a);
    let (pb, qb) = split(&b);
    let id = url_id(pa, qa);
    assert_eq!(id.len(), 32);
    assert!(
        id.bytes()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
    );
    assert_eq!(id, url_id(pa, qa), "stable");
    assert_ne!(id, url_id(pb, qb), "another URL of the same attachment");
    // Nothing of the credential shows.
    let sig = qa.rsplit_once("s=").unwrap().1;
    assert!(!id.contains(&sig[..8]));
}
