use proptest::prelude::*;

use super::*;

const HASH: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

fn rep<'a>(mime: Option<&'a str>, filename: &'a str, size: u64) -> Representation<'a> {
    Representation {
        content_hash: HASH,
        size,
        mime,
        filename,
    }
}

fn header<'a>(a: &'a Answer, name: &str) -> Option<&'a str> {
    a.headers
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v.as_str())
}

fn no_ctl(s: &str) -> bool {
    !s.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0)
}

#[test]
fn disposition_plain_ascii() {
    assert_eq!(
        disposition::header_value(Disposition::Attachment, "report.pdf"),
        "attachment; filename=\"report.pdf\"; filename*=UTF-8''report.pdf"
    );
    assert_eq!(
        disposition::header_value(Disposition::Inline, "a b.txt"),
        "inline; filename=\"a b.txt\"; filename*=UTF-8''a%20b.txt"
    );
}

#[test]
fn disposition_hostile_names() {
    let cases = [
        ("quo\"te.txt", "quo_te.txt", "quo%22te.txt"),
        (
            "a\r\nSet-Cookie: x=1.txt",
            "a__Set-Cookie: x=1.txt",
            "a__Set-Cookie%3A%20x%3D1.txt",
        ),
        ("semi;colon.txt", "semi_colon.txt", "semi%3Bcolon.txt"),
        ("back\\slash.txt", "back_slash.txt", "back_slash.txt"),
        ("100%25.txt", "100_25.txt", "100%2525.txt"),
        ("😀 party.png", "_ party.png", "%F0%9F%98%80%20party.png"),
        (
            "invoice\u{202E}fdp.exe",
            "invoice_fdp.exe",
            "invoice_fdp.exe",
        ),
        ("שלום.txt", "____.txt", "%D7%A9%D7%9C%D7%95%D7%9D.txt"),
        ("../../etc/passwd", "_.._etc_passwd", "_.._etc_passwd"),
        ("", "download", "download"),
        ("\u{0}\u{7}", "__", "__"),
        ("...", "download", "download"),
    ];
    for (name, fallback, star) in cases {
        let v = disposition::header_value(Disposition::Attachment, name);
        assert_eq!(
            v,
            format!("attachment; filename=\"{fallback}\"; filename*=UTF-8''{star}"),
            "{name:?}"
        );
        assert!(no_ctl(&v));
    }
}

#[test]
fn long_names_keep_their_extension() {
    let name = format!("{}.pdf", "x".repeat(300));
    let f = disposition::ascii_fallback(&name);
    assert!(f.len() <= disposition::MAX_FALLBACK_LEN && f.ends_with(".pdf"));
}

#[test]
fn content_types() {
    assert_eq!(
        content_type(Some("Text/Plain; charset=utf-8")),
        "text/plain"
    );
    assert_eq!(content_type(None), FALLBACK_TYPE);
    assert_eq!(content_type(Some("text/html\r\nX: y")), FALLBACK_TYPE);
    assert_eq!(content_type(Some("nonsense")), FALLBACK_TYPE);
    for t in [
        "text/html",
        "image/svg+xml",
        "application/xml",
        "text/xml",
        "application/javascript",
        "text/javascript",
        "application/xhtml+xml",
        "application/rss+xml",
        "TEXT/HTML",
    ] {
        assert!(is_active_content(t), "{t}");
    }
    for t in [
        "text/plain",
        "image/png",
        "application/pdf",
        "application/octet-stream",
        "application/json",
    ] {
        assert!(!is_active_content(t), "{t}");
    }
}

#[test]
fn active_content_is_attachment_with_sandbox() {
    for mime in [
        "text/html",
        "image/svg+xml",
        "text/xml",
        "application/javascript",
    ] {
        let a = answer(
            &rep(Some(mime), "x", 10),
            Disposition::Inline,
            &Conditions::default(),
        );
        assert_eq!(a.status, 200);
        assert!(
            header(&a, "content-disposition")
                .unwrap()
                .starts_with("attachment;")
        );
        assert_eq!(header(&a, "content-security-policy"), Some("sandbox"));
        assert_eq!(header(&a, "x-content-type-options"), Some("nosniff"));
    }
    let a = answer(
        &rep(Some("image/png"), "x.png", 10),
        Disposition::Inline,
        &Conditions::default(),
    );
    assert!(
        header(&a, "content-disposition")
            .unwrap()
            .starts_with("inline;")
    );
    assert_eq!(header(&a, "content-security-policy"), None);
}

#[test]
fn full_answer_headers() {
    let a = answer(
        &rep(Some("application/pdf"), "r.pdf", 1234),
        Disposition::Attachment,
        &Conditions::default(),
    );
    assert_eq!(a.status, 200);
    assert_eq!(a.outcome, RangeOutcome::Full);
    assert_eq!(header(&a, "etag"), Some(format!("\"{HASH}\"").as_str()));
    assert_eq!(header(&a, "content-length"), Some("1234"));
    assert_eq!(header(&a, "content-type"), Some("application/pdf"));
    assert_eq!(header(&a, "cache-control"), Some("private"));
    assert_eq!(header(&a, "accept-ranges"), Some("bytes"));
    assert_eq!(header(&a, "content-range"), None);
}

#[test]
fn ranges() {
    use RangeOutcome::*;
    let size = 100;
    let cases: &[(&str, RangeOutcome)] = &[
        ("bytes=0-9", Partial { first: 0, last: 9 }),
        (
            "bytes=90-",
            Partial {
                first: 90,
                last: 99,
            },
        ),
        (
            "bytes=-10",
            Partial {
                first: 90,
                last: 99,
            },
        ),
        (
            "bytes=99-99",
            Partial {
                first: 99,
                last: 99,
            },
        ),
        (
            "bytes=-1",
            Partial {
                first: 99,
                last: 99,
            },
        ),
        (
            "bytes=50-1000",
            Partial {
                first: 50,
                last: 99,
            },
        ),
        ("bytes=-1000", Partial { first: 0, last: 99 }),
        ("Bytes=0-0", Partial { first: 0, last: 0 }),
        ("bytes=100-", Unsatisfiable),
        ("bytes=100-200", Unsatisfiable),
        ("bytes=5-2", Unsatisfiable),
        ("bytes=-0", Unsatisfiable),
        ("bytes=abc", Unsatisfiable),
        ("bytes=", Unsatisfiable),
        ("garbage", Unsatisfiable),
        ("bytes=0-1,5-6", Full),
        ("items=0-1", Full),
    ];
    for (h, want) in cases {
        assert_eq!(range::resolve(Some(h), size), *want, "{h}");
    }
    assert_eq!(range::resolve(None, size), Full);
    assert_eq!(range::resolve(Some("bytes=0-"), 0), Unsatisfiable);
    let a = answer(
        &rep(None, "f", size),
        Disposition::Attachment,
        &Conditions {
            range: Some("bytes=90-"),
            ..Default::default()
        },
    );
    assert_eq!(a.status, 206);
    assert_eq!(header(&a, "content-range"), Some("bytes 90-99/100"));
    assert_eq!(header(&a, "content-length"), Some("10"));
    let a = answer(
        &rep(None, "f", size),
        Disposition::Attachment,
        &Conditions {
            range: Some("bytes=100-"),
            ..Default::default()
        },
    );
    assert_eq!(a.status, 416);
    assert_eq!(header(&a, "content-range"), Some("bytes */100"));
    assert_eq!(
        Partial { first: 3, last: 9 }.storage_range().as_deref(),
        Some("bytes=3-9")
    );
}

#[test]
fn conditionals() {
    let tag = format!("\"{HASH}\"");
    for inm in [
        tag.clone(),
        format!("W/{tag}"),
        format!("\"other\", {tag}"),
        "*".to_owned(),
    ] {
        let a = answer(
            &rep(None, "f", 10),
            Disposition::Attachment,
            &Conditions {
                if_none_match: Some(&inm),
                range: Some("bytes=0-1"),
                ..Default::default()
            },
        );
        assert_eq!(a.status, 304, "{inm}");
        assert_eq!(header(&a, "etag"), Some(tag.as_str()));
        assert_eq!(header(&a, "content-length"), None);
    }
    for inm in ["\"other\"", "W/\"x\"", HASH, ""] {
        let a = answer(
            &rep(None, "f", 10),
            Disposition::Attachment,
            &Conditions {
                if_none_match: Some(inm),
                ..Default::default()
            },
        );
        assert_eq!(a.status, 200, "{inm}");
    }
    // If-Range: strong match applies the range, anything else sends everything.
    let with = |ir: &str| {
        answer(
            &rep(None, "f", 10),
            Disposition::Attachment,
            &Conditions {
                range: Some("bytes=0-1"),
                if_range: Some(ir),
                ..Default::default()
            },
        )
        .status
    };
    assert_eq!(with(&tag), 206);
    assert_eq!(with(&format!("W/{tag}")), 200);
    assert_eq!(with("\"other\""), 200);
    assert_eq!(with("Sat, 01 Jan 2000 00:00:00 GMT"), 200);
}

#[test]
fn scan_policy() {
    use ScanStatus::*;
    for (s, strict, lax) in [
        (Clean, true, true),
        (Skipped, true, true),
        (Pending, false, true),
        (Error, false, true),
        (Infected, false, false),
        (Suspicious, false, false),
    ] {
        assert_eq!(may_serve(s, false), strict, "{s:?}");
        assert_eq!(may_serve(s, true), lax, "{s:?}");
    }
    assert_eq!(ScanStatus::parse("clean"), Some(Clean));
    assert_eq!(ScanStatus::parse("CLEAN"), None);
}

proptest! {
    #[test]
    fn no_header_value_ever_contains_cr_lf_nul(
        name in any::<String>(),
        mime in proptest::option::of(any::<String>()),
        range in proptest::option::of(any::<String>()),
        inm in proptest::option::of(any::<String>()),
        hash in any::<String>(),
        size in any::<u64>(),
        inline in any::<bool>(),
    ) {
        let r = Representation { content_hash: &hash, size, mime: mime.as_deref(), filename: &name };
        let c = Conditions { range: range.as_deref(), if_none_match: inm.as_deref(), if_range: None };
        let a = answer(&r, if inline { Disposition::Inline } else { Disposition::Attachment }, &c);
        for (n, v) in &a.headers {
            prop_assert!(no_ctl(v), "{n}: {v:?}");
            prop_assert!(v.bytes().all(|b| (0x20..0x7f).contains(&b)), "{n}: {v:?}");
        }
        if let RangeOutcome::Partial { first, last } = a.outcome {
            prop_assert!(first <= last && last < size);
        }
    }

    #[test]
    fn disposition_is_one_well_formed_header(name in any::<String>()) {
        let v = disposition::header_value(Disposition::Attachment, &name);
        let rest = v.strip_prefix("attachment; filename=\"").unwrap();
        let (fallback, star) = rest.split_once("\"; filename*=UTF-8''").unwrap();
        prop_assert!(!fallback.contains(['"', '\\', ';', '%']));
        prop_assert!(star.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~%".contains(&b)));
    }

    #[test]
    fn satisfiable_ranges(size in 1u64..10_000, a in 0u64..20_000, b in 0u64..20_000) {
        let (first, last) = (a.min(b), a.max(b));
        let got = range::resolve(Some(&format!("bytes={first}-{last}")), size);
        if first < size {
            prop_assert_eq!(got, RangeOutcome::Partial { first, last: last.min(size - 1) });
        } else {
            prop_assert_eq!(got, RangeOutcome::Unsatisfiable);
        }
    }
}
