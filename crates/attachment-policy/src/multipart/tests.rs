use proptest::prelude::*;

use super::*;

const B: &str = "XyZ-b0undary";

fn limits(max_parts: u32, max_header_bytes: usize) -> MultipartLimits {
    MultipartLimits {
        max_parts,
        max_header_bytes,
    }
}

/// A well-formed body of `files` file parts of `content`, with `pad` extra header bytes each.
fn body(files: usize, content: &[u8], pad: usize) -> Vec<u8> {
    let mut b = Vec::new();
    for i in 0..files {
        b.extend_from_slice(format!("--{B}\r\n").as_bytes());
        b.extend_from_slice(
            format!(
                "Content-Disposition: form-data; name=\"f{i}\"; filename=\"f{i}.txt\"\r\n\
                 Content-Type: text/plain\r\n"
            )
            .as_bytes(),
        );
        if pad > 0 {
            b.extend_from_slice(format!("X-Pad: {}\r\n", "a".repeat(pad)).as_bytes());
        }
        b.extend_from_slice(b"\r\n");
        b.extend_from_slice(content);
        b.extend_from_slice(b"\r\n");
    }
    b.extend_from_slice(format!("--{B}--\r\n").as_bytes());
    b
}

fn run(bytes: &[u8], l: MultipartLimits, chunk: usize) -> (Result<(), GuardError>, u32) {
    let mut g = MultipartGuard::new(B, l);
    let mut r = Ok(());
    for c in bytes.chunks(chunk.max(1)) {
        r = g.feed(c);
        if r.is_err() {
            break;
        }
    }
    (r, g.parts())
}

#[test]
fn counts_parts_and_accepts_what_fits() {
    let b = body(3, b"hello", 0);
    let mut g = MultipartGuard::new(B, MultipartLimits::default());
    assert_eq!(g.feed(&b), Ok(()));
    assert_eq!(g.parts(), 3);
    assert!(g.closed());
    assert_eq!(run(&b, limits(3, 512), 1), (Ok(()), 3));
}

#[test]
fn one_part_too_many_is_refused_and_the_refusal_sticks() {
    let b = body(4, b"x", 0);
    let (r, parts) = run(&b, limits(3, 512), 7);
    assert_eq!(r, Err(GuardError::TooManyParts));
    assert_eq!(parts, 4);
    let mut g = MultipartGuard::new(B, limits(3, 512));
    assert!(g.feed(&b).is_err());
    assert_eq!(g.feed(b"anything"), Err(GuardError::TooManyParts));
}

#[test]
fn thousands_of_tiny_parts_are_refused_at_the_limit() {
    let b = body(3000, b"x", 0);
    let mut g = MultipartGuard::new(B, MultipartLimits::default());
    assert_eq!(g.feed(&b), Err(GuardError::TooManyParts));
    assert_eq!(g.parts(), DEFAULT_MAX_UPLOAD_PARTS + 1);
}

#[test]
fn header_blocks_are_bounded() {
    // The fixed headers of `body` are well under 512 bytes; padding pushes them over.
    let ok = body(2, b"data", 300);
    assert_eq!(run(&ok, limits(10, 512), 5).0, Ok(()));
    let long = body(2, b"data", 600);
    assert_eq!(
        run(&long, limits(10, 512), 5).0,
        Err(GuardError::PartHeaderTooLarge)
    );
    // A header block that never ends.
    let mut endless =
        format!("--{B}\r\nContent-Disposition: form-data; name=\"f\"\r\nX: ").into_bytes();
    endless.extend(std::iter::repeat_n(b'a', 100_000));
    assert_eq!(
        run(&endless, MultipartLimits::default(), 4096).0,
        Err(GuardError::PartHeaderTooLarge)
    );
    // An endless delimiter line (transport padding) counts as header bytes too.
    let mut padding = format!("--{B}").into_bytes();
    padding.extend(std::iter::repeat_n(b' ', 10_000));
    assert_eq!(
        run(&padding, MultipartLimits::default(), 100).0,
        Err(GuardError::PartHeaderTooLarge)
    );
}

#[test]
fn the_preamble_is_bounded_and_the_epilogue_ignored() {
    let mut b = vec![b'p'; 400];
    b.extend(body(1, b"x", 0));
    assert_eq!(run(&b, limits(5, 512), 3), (Ok(()), 1));
    let mut b = vec![b'p'; 10_000];
    b.extend(body(1, b"x", 0));
    assert_eq!(
        run(&b, limits(5, 512), 3).0,
        Err(GuardError::PartHeaderTooLarge)
    );
    // Whatever follows the closing delimiter is not looked at.
    let mut b = body(1, b"x", 0);
    b.extend(body(50, b"y", 0));
    assert_eq!(run(&b, limits(1, 512), 64), (Ok(()), 1));
}

#[test]
fn content_that_resembles_a_boundary_is_content() {
    // `--boundary` without the CRLF before it, or a CR-LF-dash run cut short, opens no part.
    let content = format!("a--{B}b\r\n-{B}\r\n--XyZ\r\r\n--XyZ-b0undar");
    let b = body(2, content.as_bytes(), 0);
    assert_eq!(run(&b, limits(2, 512), 1), (Ok(()), 2));
}

#[test]
fn header_blocks_end_as_the_parser_ends_them() {
    // The parser looks for the blank line after the delimiter line: with no header at all the part's
    // content starts after a second CRLF CRLF...
    let b = format!("--{B}\r\n\r\n\r\nbody\r\n--{B}\r\nX: y\r\n\r\n\r\n--{B}--");
    assert_eq!(run(b.as_bytes(), limits(2, 512), 2), (Ok(()), 2));
    // ...so here the first header block runs into the second delimiter, which is no part of its own.
    let b = format!("--{B}\r\n\r\nbody\r\n--{B}\r\n\r\n\r\n--{B}--");
    assert_eq!(run(b.as_bytes(), limits(1, 512), 2), (Ok(()), 1));
}

#[test]
fn configuration() {
    assert_eq!(
        MultipartLimits::from_config(" 100 ", "8192"),
        Ok(MultipartLimits::default())
    );
    assert_eq!(MultipartLimits::from_config("1", "512"), Ok(limits(1, 512)));
    for (p, h) in [
        ("0", "8192"),
        ("10001", "8192"),
        ("x", "8192"),
        ("100", "511"),
        ("100", "1048577"),
        ("100", ""),
        ("-1", "8192"),
    ] {
        assert!(MultipartLimits::from_config(p, h).is_err(), "{p:?} {h:?}");
    }
    assert_eq!(
        PolicyError::from(GuardError::TooManyParts).code(),
        problem::Code::TooManyParts
    );
    assert_eq!(
        PolicyError::from(GuardError::PartHeaderTooLarge).code(),
        problem::Code::PartHeaderTooLarge
    );
}

/// How many fields multer, the parser ingest uses, yields from `bytes` (until the end or its first
/// error).
fn multer_fields(bytes: &[u8], chunk: usize) -> u32 {
    let chunks: Vec<Result<bytes::Bytes, std::io::Error>> = bytes
        .chunks(chunk.max(1))
        .map(|c| Ok(bytes::Bytes::copy_from_slice(c)))
        .collect();
    let mut mp = multer::Multipart::new(futures::stream::iter(chunks), B);
    futures::executor::block_on(async {
        let mut fields = 0;
        while let Ok(Some(mut f)) = mp.next_field().await {
            fields += 1;
            while let Ok(Some(_)) = f.chunk().await {}
        }
        fields
    })
}

fn fragment() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(format!("--{B}").into_bytes()),
        Just(format!("\r\n--{B}").into_bytes()),
        Just(format!("\r\n--{B}--").into_bytes()),
        Just(b"\r\n".to_vec()),
        Just(b"\r\n\r\n".to_vec()),
        Just(b"--".to_vec()),
        Just(b" \t".to_vec()),
        Just(b"Content-Disposition: form-data; name=\"a\"; filename=\"a.txt\"".to_vec()),
        Just(b"X: y".to_vec()),
        proptest::collection::vec(any::<u8>(), 0..40),
    ]
}

/// The header block the guard counts for part `i` of `body(_, _, pad)`.
fn header_len(i: usize, pad: usize) -> usize {
    let cd = format!("Content-Disposition: form-data; name=\"f{i}\"; filename=\"f{i}.txt\"\r\n");
    let ct = "Content-Type: text/plain\r\n";
    let padding = if pad > 0 {
        "X-Pad: ".len() + pad + 2
    } else {
        0
    };
    2 + cd.len() + ct.len() + padding + 2
}

proptest! {
    /// Chunking never changes the verdict nor the count.
    #[test]
    fn chunking_does_not_matter(
        frags in proptest::collection::vec(fragment(), 0..40),
        chunk in 1usize..50,
        max_parts in 1u32..6,
    ) {
        let bytes = frags.concat();
        let l = limits(max_parts, 512);
        prop_assert_eq!(run(&bytes, l, bytes.len().max(1)), run(&bytes, l, chunk));
    }

    /// Well-formed bodies: exactly their parts; refused at the first part over a limit.
    #[test]
    fn well_formed_bodies(
        files in 1usize..30,
        content in proptest::collection::vec(any::<u8>(), 0..200),
        pad in 0usize..600,
        chunk in 1usize..300,
        max_parts in 1u32..40,
    ) {
        prop_assume!(!content.windows(B.len()).any(|w| w == B.as_bytes()));
        let b = body(files, &content, pad);
        let (r, parts) = run(&b, limits(max_parts, 512), chunk);
        let mut want = (Ok(()), files as u32);
        for i in 0..files {
            if i as u32 + 1 > max_parts {
                want = (Err(GuardError::TooManyParts), i as u32 + 1);
                break;
            }
            if header_len(i, pad) > 512 {
                want = (Err(GuardError::PartHeaderTooLarge), i as u32 + 1);
                break;
            }
        }
        prop_assert_eq!((r, parts), want);
    }

    /// Never fewer parts than the parser sees, whatever the bytes.
    #[test]
    fn never_fewer_than_the_parser_sees(
        frags in proptest::collection::vec(fragment(), 0..40),
        chunk in 1usize..50,
    ) {
        let bytes = frags.concat();
        let fields = multer_fields(&bytes, chunk);
        let (r, parts) = run(&bytes, limits(10_000, 1024 * 1024), chunk);
        prop_assert_eq!(r, Ok(()));
        prop_assert!(parts >= fields, "guard {} < multer {}", parts, fields);
    }
}
