//! Verifying a directly uploaded object in one read: the bytes stream once from storage and, as each
//! chunk passes, are counted, hashed (SHA-256), inspected by the content policy (the same
//! `attachment_policy::ContentInspector` and filename rules as the in-function upload in
//! `components/ingest`, so both paths refuse the same content and store the same type) and sent to
//! clamd (INSTREAM). Memory is one chunk plus the inspector's head (4 KiB) and clamd's write buffer,
//! whatever the object's size.
//!
//! [`decide`] turns what the pass saw into the outcome (pure): the size first, then the claimed
//! digest, then the policy: the claims again (the filename's extensions, inner ones too, against
//! the worker's `BLOCKED_EXTENSIONS`, the app's `blocked_extensions`; the declared type), then the
//! content. The whole object is read whatever its size, so the report always carries its real size
//! and SHA-256. The virus verdict is not part of the outcome: an accepted upload's content gets
//! its verdict through the normal callback, from this same pass when clamd answered.

use attachment_policy::sniff::Detected;
use attachment_policy::{
    ContentHash, ContentInspector, ExtensionPolicy, PolicyError, SafeFilename, check_declared,
};
use bytes::Bytes;
use scan_core::verification::{self as wire, Decision, RejectCode};
use sha2::{Digest, Sha256};
use store::upload_queue::ClaimedVerification;

use crate::clamd::{ChunkSource, Clamd, ScanError};
use crate::verdict::{self, Verdict};

/// What the virus scan of the pass came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scan {
    /// clamd's verdict (or `error` "too large to scan" for an object above the worker's cap).
    Verdict(Verdict),
    /// clamd could not decide this time; the content's scan job (if the upload is accepted)
    /// scans it later.
    Failed(String),
}

/// What one read of the object saw.
#[derive(Debug, Clone)]
pub struct Pass {
    /// Bytes read (equal to storage's `Content-Length`, or the read is an error).
    pub size: u64,
    /// Their SHA-256.
    pub sha256: ContentHash,
    /// The content policy's conclusion: the type to store, or the refusal.
    pub content: Result<Detected, PolicyError>,
    /// The virus scan.
    pub scan: Scan,
}

/// The chunks of the object as they pass on to clamd, counted, hashed and inspected on the way.
struct Tee<'s, S> {
    inner: &'s mut S,
    expected: u64,
    size: u64,
    hasher: Sha256,
    inspector: ContentInspector,
    /// The policy's first refusal; the inspector is not fed after it.
    refused: Option<PolicyError>,
}

impl<S: ChunkSource + Send> ChunkSource for Tee<'_, S> {
    async fn next_chunk(&mut self) -> Result<Option<Bytes>, String> {
        let chunk = self.inner.next_chunk().await?;
        match &chunk {
            Some(c) => {
                self.size += c.len() as u64;
                if self.size > self.expected {
                    return Err(format!(
                        "storage sent more than the {} bytes it announced",
                        self.expected
                    ));
                }
                self.hasher.update(c);
                if self.refused.is_none()
                    && let Err(e) = self.inspector.feed(c)
                {
                    self.refused = Some(e);
                }
            }
            None if self.size < self.expected => {
                return Err(format!(
                    "storage ended the object after {} of {} bytes",
                    self.size, self.expected
                ));
            }
            None => {}
        }
        Ok(chunk)
    }
}

/// Reads `src` (an object of `length` bytes, as storage announced) once: size, SHA-256 and the
/// content policy over every byte, and clamd over the first `max_scan_bytes` (an object above that
/// gets the verdict `error` "too large to scan" without being sent, as a scan job would). `Err` when
/// the object could not be read whole (retry later); a clamd failure is not an error here
/// ([`Scan::Failed`]): the size, digest and policy are decided all the same.
pub async fn one_pass(
    src: &mut (impl ChunkSource + Send),
    length: u64,
    declared: Option<&str>,
    extension: Option<&str>,
    clamd: &Clamd,
    max_scan_bytes: u64,
) -> Result<Pass, String> {
    let mut tee = Tee {
        inner: src,
        expected: length,
        size: 0,
        hasher: Sha256::new(),
        inspector: ContentInspector::new(declared, extension),
        refused: None,
    };
    let scan = if length > max_scan_bytes {
        Scan::Verdict(verdict::too_large(length, max_scan_bytes))
    } else {
        match clamd.instream(&mut tee, max_scan_bytes).await {
            Ok(answer) => match verdict::from_answer(&answer) {
                Ok(v) => Scan::Verdict(v),
                Err(reason) => Scan::Failed(reason),
            },
            // The object itself could not be read: nothing is decided.
            Err(ScanError::Source(e)) => return Err(e),
            Err(ScanError::TooLarge { cap }) => {
                Scan::Verdict(verdict::too_large(length.max(cap + 1), cap))
            }
            Err(e) => Scan::Failed(e.to_string()),
        }
    };
    // Whatever clamd did (finished, failed part way, never connected), the rest of the object is
    // read here: size, digest and policy are about every byte.
    while tee.next_chunk().await?.is_some() {}
    let content = match tee.refused.take() {
        Some(e) => Err(e),
        None => tee.inspector.finish(),
    };
    Ok(Pass {
        size: tee.size,
        sha256: ContentHash::finish(tee.hasher),
        content,
        scan,
    })
}

/// The claims judged again, as the app judged them when it created the session: the filename (a
/// blocked extension, inner ones too) and the declared type (executable or script types). The
/// filename's extension as the in-function upload takes it, or the policy's refusal. A refusal
/// here means the rules changed since the session began (or the worker's `BLOCKED_EXTENSIONS` is
/// stricter than the app's): the content is refused all the same.
pub fn claims_policy(
    filename: &str,
    declared: Option<&str>,
    extensions: &ExtensionPolicy,
) -> Result<Option<String>, PolicyError> {
    let ext = SafeFilename::parse(filename, extensions)?.extension();
    check_declared(declared)?;
    Ok(ext)
}

fn mismatch_detail(size: u64, claimed: u64) -> String {
    format!("The uploaded object has {size} bytes; the upload was created for {claimed} bytes.")
}

/// The outcome of a pass over the claimed upload: size, then digest, then the filename, then the
/// content. `Err` only if a type the policy produced is not a media type the report can carry (a
/// bug: the report would be refused).
pub fn decide(
    claim: &ClaimedVerification,
    name: &Result<Option<String>, PolicyError>,
    pass: &Pass,
) -> Result<wire::Report, String> {
    let reject = |code: RejectCode, detail: String| Decision::Rejected { code, detail };
    let decision = if pass.size != claim.claimed_size {
        reject(
            RejectCode::SizeMismatch,
            mismatch_detail(pass.size, claim.claimed_size),
        )
    } else if claim
        .claimed_sha256
        .as_deref()
        .is_some_and(|c| c != pass.sha256.hex())
    {
        reject(
            RejectCode::DigestMismatch,
            "The content does not match the SHA-256 the upload was created with.".into(),
        )
    } else if let Err(e) = name {
        reject(RejectCode::BlockedFileType, e.detail().to_owned())
    } else if let Err(e) = &pass.content {
        reject(RejectCode::BlockedFileType, e.detail().to_owned())
    } else if pass.size == 0 {
        // The in-function upload refuses an empty file ("The file is empty."); so does this path.
        reject(RejectCode::BlockedFileType, "The file is empty.".into())
    } else {
        Decision::Accepted
    };
    // The type is what the content policy concluded; content it refused has none of its own
    // (nothing is ever served from a rejected upload).
    let detected = match &pass.content {
        Ok(d) => d.clone(),
        Err(_) => Detected {
            mime: "application/octet-stream".into(),
            sniffed: None,
        },
    };
    let media = |m: &str| wire::MediaType::parse(m).map_err(|e| format!("media type {m:?}: {e}"));
    let content = wire::Content {
        sha256: scan_core::ContentHash::parse(&pass.sha256.hex())
            .map_err(|e| format!("sha256: {e}"))?,
        sniffed_mime: detected.sniffed.as_deref().map(media).transpose()?,
        detected_mime: media(&detected.mime)?,
    };
    let decision = match decision {
        Decision::Rejected { code, detail } => Decision::Rejected {
            code,
            detail: wire::clamp_detail(&detail),
        },
        d => d,
    };
    wire::Report::new(claim.upload_id, pass.size, content, decision)
        .map_err(|e| format!("report: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clamd::Chunks;
    use std::time::Duration;
    use uuid::Uuid;

    fn claim(
        size: u64,
        sha: Option<&str>,
        filename: &str,
        declared: Option<&str>,
    ) -> ClaimedVerification {
        ClaimedVerification {
            upload_id: Uuid::from_u128(1),
            tenant_id: Uuid::from_u128(2),
            storage_key: "tenants/x/blobs/y".into(),
            claimed_size: size,
            claimed_sha256: sha.map(str::to_owned),
            filename: filename.into(),
            declared_mime: declared.map(str::to_owned),
            attempts: 1,
        }
    }

    fn pass(body: &[u8], declared: Option<&str>, ext: Option<&str>) -> Pass {
        let mut inspector = ContentInspector::new(declared, ext);
        let content = inspector.feed(body).and_then(|()| inspector.finish());
        Pass {
            size: body.len() as u64,
            sha256: ContentHash::of(body),
            content,
            scan: Scan::Failed("not scanned".into()),
        }
    }

    fn outcome(r: &wire::Report) -> (&'static str, Option<&'static str>) {
        (r.outcome(), r.reject_code().map(RejectCode::as_str))
    }

    const PDF: &[u8] = b"%PDF-1.7\n1 0 obj\n<< /Type /Catalog >>\nendobj\n";

    #[test]
    fn decisions_in_order() {
        let policy = ExtensionPolicy::default();
        let sha = ContentHash::of(PDF).hex();
        let ok = claim(
            PDF.len() as u64,
            Some(&sha),
            "report.pdf",
            Some("application/pdf"),
        );
        let name = claims_policy(&ok.filename, None, &policy);
        let p = pass(PDF, Some("application/pdf"), Some("pdf"));
        let r = decide(&ok, &name, &p).unwrap();
        assert_eq!(outcome(&r), ("accepted", None));
        let c = &r.content;
        assert_eq!(c.sha256.as_str(), sha);
        assert_eq!(c.detected_mime.as_str(), "application/pdf");
        assert_eq!(
            c.sniffed_mime.as_ref().map(|m| m.as_str()),
            Some("application/pdf")
        );

        // No claimed digest: nothing to compare.
        let r = decide(
            &claim(PDF.len() as u64, None, "report.pdf", None),
            &name,
            &p,
        )
        .unwrap();
        assert_eq!(outcome(&r), ("accepted", None));

        // Size beats digest beats policy.
        let elf = b"\x7fELF\x02\x01\x01\0rest";
        let bad = pass(elf, Some("application/pdf"), Some("pdf"));
        let wrong_sha = "0".repeat(64);
        let r = decide(&claim(1, Some(&wrong_sha), "a.pdf", None), &name, &bad).unwrap();
        assert_eq!(outcome(&r), ("rejected", Some("size_mismatch")));
        let r = decide(
            &claim(elf.len() as u64, Some(&wrong_sha), "a.pdf", None),
            &name,
            &bad,
        )
        .unwrap();
        assert_eq!(outcome(&r), ("rejected", Some("digest_mismatch")));
        let r = decide(
            &claim(elf.len() as u64, None, "a.pdf", Some("application/pdf")),
            &name,
            &bad,
        )
        .unwrap();
        assert_eq!(outcome(&r), ("rejected", Some("blocked_file_type")));
        let Decision::Rejected { detail, .. } = &r.decision else {
            unreachable!()
        };
        // The in-function path's words.
        assert_eq!(detail, "Executable content (ELF) is not allowed.");
        // A refused upload still says what it read.
        assert_eq!(r.content.sha256.as_str(), ContentHash::of(elf).hex());
    }

    #[test]
    fn names_are_judged_again_inner_extensions_too() {
        let policy = ExtensionPolicy::default();
        for name in ["invoice.exe.pdf", "invoice.pdf.exe", "run.JS"] {
            let ext = claims_policy(name, None, &policy);
            assert!(ext.is_err(), "{name}");
            let r = decide(
                &claim(PDF.len() as u64, None, name, None),
                &ext,
                &pass(PDF, None, Some("pdf")),
            )
            .unwrap();
            assert_eq!(
                outcome(&r),
                ("rejected", Some("blocked_file_type")),
                "{name}"
            );
            let Decision::Rejected { detail, .. } = &r.decision else {
                unreachable!()
            };
            assert_eq!(detail, "This file extension is not allowed.");
        }
        // A declared executable or script type, as the app refuses it when the session is created.
        let declared = claims_policy("notes.txt", Some("application/x-sh"), &policy);
        let r = decide(
            &claim(
                PDF.len() as u64,
                None,
                "notes.txt",
                Some("application/x-sh"),
            ),
            &declared,
            &pass(PDF, Some("application/x-sh"), Some("txt")),
        )
        .unwrap();
        assert_eq!(outcome(&r), ("rejected", Some("blocked_file_type")));
        let Decision::Rejected { detail, .. } = &r.decision else {
            unreachable!()
        };
        assert_eq!(detail, "Executable or script content is not allowed.");
        // A configured list that allows `js` lets it through, as the app with the same setting does.
        let custom = ExtensionPolicy::from_config("exe").unwrap();
        assert_eq!(
            claims_policy("run.js", None, &custom).unwrap().as_deref(),
            Some("js")
        );
    }

    #[test]
    fn spoofed_types_are_corrected_like_the_in_function_path() {
        let policy = ExtensionPolicy::default();
        let name = claims_policy("photo.png", Some("image/png"), &policy);
        let r = decide(
            &claim(PDF.len() as u64, None, "photo.png", Some("image/png")),
            &name,
            &pass(PDF, Some("image/png"), Some("png")),
        )
        .unwrap();
        assert_eq!(outcome(&r), ("accepted", None));
        assert_eq!(r.content.detected_mime.as_str(), "application/pdf");
    }

    #[test]
    fn empty_content_is_refused_as_in_function() {
        let policy = ExtensionPolicy::default();
        let name = claims_policy("a.txt", None, &policy);
        let r = decide(
            &claim(0, None, "a.txt", None),
            &name,
            &pass(b"", None, Some("txt")),
        )
        .unwrap();
        assert_eq!(outcome(&r), ("rejected", Some("blocked_file_type")));
    }

    fn chunks(parts: &[&[u8]]) -> Chunks {
        Chunks(parts.iter().map(|p| Bytes::copy_from_slice(p)).collect())
    }

    /// A clamd address nothing listens on.
    async fn dead_clamd() -> Clamd {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap().to_string();
        drop(l);
        Clamd::new(addr, Duration::from_secs(1))
    }

    #[tokio::test]
    async fn clamd_down_still_decides_size_digest_and_policy() {
        let c = dead_clamd().await;
        let p = one_pass(
            &mut chunks(&[b"hello ", b"world"]),
            11,
            Some("text/plain"),
            Some("txt"),
            &c,
            1 << 20,
        )
        .await
        .unwrap();
        assert_eq!(p.size, 11);
        assert_eq!(p.sha256, ContentHash::of(b"hello world"));
        assert_eq!(p.content.unwrap().mime, "text/plain");
        assert!(matches!(p.scan, Scan::Failed(_)), "{:?}", p.scan);
    }

    #[tokio::test]
    async fn a_short_or_long_read_is_an_error() {
        let c = dead_clamd().await;
        let e = one_pass(&mut chunks(&[b"abc"]), 4, None, None, &c, 1 << 20)
            .await
            .unwrap_err();
        assert!(e.contains("after 3 of 4"), "{e}");
        let e = one_pass(&mut chunks(&[b"abcde"]), 4, None, None, &c, 1 << 20)
            .await
            .unwrap_err();
        assert!(e.contains("more than"), "{e}");
    }

    #[tokio::test]
    async fn above_the_cap_is_too_large_to_scan_but_still_verified() {
        let c = dead_clamd().await;
        let p = one_pass(
            &mut chunks(&[b"12345", b"6789"]),
            9,
            None,
            Some("txt"),
            &c,
            4,
        )
        .await
        .unwrap();
        let Scan::Verdict(v) = &p.scan else {
            panic!("{:?}", p.scan)
        };
        assert_eq!(v.status, crate::verdict::Status::Error);
        assert!(v.details.starts_with("too large to scan"));
        assert_eq!(p.sha256, ContentHash::of(b"123456789"));
    }
}
