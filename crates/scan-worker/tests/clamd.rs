//! The clamd client against the real clamd that the scripts start (`CLAMD_ADDR`, exported by
//! `scripts/test`), with the project's test signatures. Skipped (passes with a note) without it.

use std::collections::VecDeque;
use std::time::Duration;

use bytes::Bytes;
use scan_worker::clamd::{Answer, Chunks, Clamd};
use scan_worker::verdict::{self, Status};

const EICAR: &[u8] = br"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*";
const MARKER: &[u8] = b"ATTACHMENTS-SCAN-TEST-MARKER";

fn clamd() -> Option<Clamd> {
    match std::env::var("CLAMD_ADDR") {
        Ok(a) if !a.is_empty() => Some(Clamd::new(a, Duration::from_secs(30))),
        _ => {
            eprintln!("CLAMD_ADDR is not set: skipped (scripts/test starts a clamd and sets it)");
            None
        }
    }
}

fn chunks(data: &[u8], size: usize) -> Chunks {
    Chunks(
        data.chunks(size)
            .map(Bytes::copy_from_slice)
            .collect::<VecDeque<_>>(),
    )
}

#[tokio::test]
async fn real_clamd_verdicts() {
    let Some(c) = clamd() else { return };
    assert!(c.ping().await.unwrap(), "PING");
    assert!(c.version().await.unwrap().starts_with("ClamAV "));

    let answer = c.instream(&mut chunks(EICAR, 7), 1 << 20).await.unwrap();
    let Answer::Found(name) = &answer else {
        panic!("EICAR: {answer:?}")
    };
    assert!(name.contains("EICAR"), "{name}");
    assert_eq!(
        verdict::from_answer(&answer).unwrap().status,
        Status::Infected
    );

    let clean = b"hello attachments\n".repeat(1000);
    assert_eq!(
        c.instream(&mut chunks(&clean, 4096), 1 << 20)
            .await
            .unwrap(),
        Answer::Clean
    );

    // The marker at the very end of 3 MiB, sent in odd-sized chunks: the whole stream is scanned.
    let mut big: Vec<u8> = (0..3 * 1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    big.extend_from_slice(MARKER);
    let answer = c
        .instream(&mut chunks(&big, 100_003), 8 << 20)
        .await
        .unwrap();
    assert_eq!(
        answer,
        Answer::Found("Attachments.Test.Marker.UNOFFICIAL".into())
    );
}
