//! Reading S3 answers: status + body → a value or a [`StorageError`].

use quick_xml::Reader;
use quick_xml::events::Event;

use crate::StorageError;

/// The text of the first element named `name` (local name) anywhere in `xml`.
fn first_text(xml: &str, name: &str) -> Result<Option<String>, StorageError> {
    Ok(all_texts(xml, name)?.into_iter().next())
}

/// The texts of every element named `name` (local name), in document order.
fn all_texts(xml: &str, name: &str) -> Result<Vec<String>, StorageError> {
    let mut reader = Reader::from_str(xml);
    let mut out = Vec::new();
    let mut current: Option<String> = None;
    loop {
        match reader.read_event() {
            Ok(Event::Start(e)) if e.local_name().as_ref() == name.as_bytes() => {
                current = Some(String::new());
            }
            Ok(Event::Text(t)) => {
                if let Some(c) = current.as_mut() {
                    let s = t
                        .decode()
                        .map_err(|e| StorageError::Protocol(format!("XML text: {e}")))?;
                    c.push_str(
                        &quick_xml::escape::unescape(&s)
                            .map_err(|e| StorageError::Protocol(format!("XML text: {e}")))?,
                    );
                }
            }
            Ok(Event::GeneralRef(r)) => {
                if let Some(c) = current.as_mut() {
                    let name = r
                        .decode()
                        .map_err(|e| StorageError::Protocol(format!("XML ref: {e}")))?;
                    let entity = format!("&{name};");
                    let resolved = quick_xml::escape::unescape(&entity)
                        .map_err(|e| StorageError::Protocol(format!("XML ref: {e}")))?;
                    c.push_str(&resolved);
                }
            }
            Ok(Event::End(e)) if e.local_name().as_ref() == name.as_bytes() => {
                if let Some(c) = current.take() {
                    out.push(c);
                }
            }
            Ok(Event::Empty(e)) if e.local_name().as_ref() == name.as_bytes() => {
                out.push(String::new());
            }
            Ok(Event::Eof) => break,
            Ok(_) => {}
            Err(e) => return Err(StorageError::Protocol(format!("XML: {e}"))),
        }
    }
    Ok(out)
}

/// Turns a non-2xx answer into the error it means (`body` may be empty, e.g. for HEAD).
pub fn error_from(status: u16, body: &[u8]) -> StorageError {
    let text = String::from_utf8_lossy(body);
    let code = first_text(&text, "Code").ok().flatten().unwrap_or_default();
    let message = first_text(&text, "Message")
        .ok()
        .flatten()
        .unwrap_or_default();
    match status {
        404 => StorageError::NotFound {
            code: if code.is_empty() { "404".into() } else { code },
        },
        403 => StorageError::AccessDenied { code, message },
        412 => StorageError::PreconditionFailed,
        416 => StorageError::InvalidRange,
        _ => StorageError::Service {
            status,
            code,
            message,
        },
    }
}

/// `Ok(())` for a 2xx status, else the error the body describes.
pub fn check(status: u16, body: &[u8]) -> Result<(), StorageError> {
    if (200..300).contains(&status) {
        Ok(())
    } else {
        Err(error_from(status, body))
    }
}

/// `UploadId` of a `CreateMultipartUpload` answer.
pub fn upload_id(status: u16, body: &[u8]) -> Result<String, StorageError> {
    check(status, body)?;
    let text = std::str::from_utf8(body)
        .map_err(|_| StorageError::Protocol("CreateMultipartUpload: not UTF-8".into()))?;
    match first_text(text, "UploadId")? {
        Some(id) if !id.trim().is_empty() => Ok(id.trim().to_owned()),
        _ => Err(StorageError::Protocol(
            "CreateMultipartUpload: no UploadId".into(),
        )),
    }
}

/// The `ETag` header of an `UploadPart`/`PutObject` answer (kept as sent, quotes included).
pub fn etag(etag_header: Option<&str>) -> Result<String, StorageError> {
    match etag_header.map(str::trim) {
        Some(e) if !e.is_empty() => Ok(e.to_owned()),
        _ => Err(StorageError::Protocol("answer without ETag".into())),
    }
}

/// A `CompleteMultipartUpload` or `CopyObject` answer: S3 may answer `200` with an `<Error>`
/// document when the operation failed after the headers were sent; that is an error too.
pub fn complete(status: u16, body: &[u8]) -> Result<(), StorageError> {
    check(status, body)?;
    let text = String::from_utf8_lossy(body);
    if text.contains("<Error>") || text.contains("<Error ") {
        let mut e = error_from(500, body);
        if let StorageError::Service { status, .. } = &mut e {
            *status = 200;
        }
        return Err(e);
    }
    Ok(())
}

/// One page of `ListObjectsV2`: the keys and the continuation token of the next page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListPage {
    /// Keys in this page.
    pub keys: Vec<String>,
    /// `NextContinuationToken` when truncated.
    pub next: Option<String>,
}

/// Parses a `ListObjectsV2` answer.
pub fn list_page(status: u16, body: &[u8]) -> Result<ListPage, StorageError> {
    check(status, body)?;
    let text = std::str::from_utf8(body)
        .map_err(|_| StorageError::Protocol("ListObjectsV2: not UTF-8".into()))?;
    let truncated = first_text(text, "IsTruncated")?.is_some_and(|t| t.trim() == "true");
    Ok(ListPage {
        keys: all_texts(text, "Key")?,
        next: if truncated {
            first_text(text, "NextContinuationToken")?
        } else {
            None
        },
    })
}

/// The keys of the uploads in a `ListMultipartUploads` answer (one page).
pub fn multipart_upload_keys(status: u16, body: &[u8]) -> Result<Vec<String>, StorageError> {
    check(status, body)?;
    let text = std::str::from_utf8(body)
        .map_err(|_| StorageError::Protocol("ListMultipartUploads: not UTF-8".into()))?;
    all_texts(text, "Key")
}

/// The texts of `fields` (local names) inside each `container` element, in document order; a field
/// an element lacks is `None`.
fn records(
    xml: &str,
    container: &str,
    fields: &[&str],
) -> Result<Vec<Vec<Option<String>>>, StorageError> {
    let mut reader = Reader::from_str(xml);
    let mut out = Vec::new();
    let mut record: Option<Vec<Option<String>>> = None;
    let mut field: Option<usize> = None;
    loop {
        match reader.read_event() {
            Ok(Event::Start(e)) => {
                let name = e.local_name();
                if name.as_ref() == container.as_bytes() {
                    record = Some(vec![None; fields.len()]);
                } else if record.is_some() {
                    field = fields.iter().position(|f| f.as_bytes() == name.as_ref());
                    if let (Some(r), Some(i)) = (record.as_mut(), field) {
                        r[i] = Some(String::new());
                    }
                }
            }
            Ok(Event::Text(t)) => {
                if let (Some(r), Some(i)) = (record.as_mut(), field) {
                    let s = t
                        .decode()
                        .map_err(|e| StorageError::Protocol(format!("XML text: {e}")))?;
                    let s = quick_xml::escape::unescape(&s)
                        .map_err(|e| StorageError::Protocol(format!("XML text: {e}")))?;
                    r[i].get_or_insert_with(String::new).push_str(&s);
                }
            }
            Ok(Event::GeneralRef(g)) => {
                if let (Some(r), Some(i)) = (record.as_mut(), field) {
                    let name = g
                        .decode()
                        .map_err(|e| StorageError::Protocol(format!("XML ref: {e}")))?;
                    let resolved = quick_xml::escape::unescape(&format!("&{name};"))
                        .map_err(|e| StorageError::Protocol(format!("XML ref: {e}")))?
                        .into_owned();
                    r[i].get_or_insert_with(String::new).push_str(&resolved);
                }
            }
            Ok(Event::End(e)) => {
                if e.local_name().as_ref() == container.as_bytes()
                    && let Some(r) = record.take()
                {
                    out.push(r);
                }
                field = None;
            }
            Ok(Event::Eof) => break,
            Ok(_) => {}
            Err(e) => return Err(StorageError::Protocol(format!("XML: {e}"))),
        }
    }
    Ok(out)
}

/// One object of a `ListObjectsV2` page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedObject {
    pub key: String,
    /// `Size`, bytes.
    pub size: u64,
    /// `LastModified` as storage wrote it (ISO 8601, e.g. `2026-12-06T19:28:13.000Z`).
    pub last_modified: String,
}

/// A `ListObjectsV2` page with each object's size and time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectsPage {
    /// In key order (byte order), as storage lists them.
    pub objects: Vec<ListedObject>,
    /// `NextContinuationToken` when truncated.
    pub next: Option<String>,
}

/// Parses a `ListObjectsV2` answer, objects with their size and time.
pub fn objects_page(status: u16, body: &[u8]) -> Result<ObjectsPage, StorageError> {
    check(status, body)?;
    let text = std::str::from_utf8(body)
        .map_err(|_| StorageError::Protocol("ListObjectsV2: not UTF-8".into()))?;
    let truncated = first_text(text, "IsTruncated")?.is_some_and(|t| t.trim() == "true");
    let objects = records(text, "Contents", &["Key", "Size", "LastModified"])?
        .into_iter()
        .map(|r| match <[Option<String>; 3]>::try_from(r) {
            Ok([Some(key), Some(size), Some(last_modified)]) => Ok(ListedObject {
                key,
                size: size
                    .trim()
                    .parse()
                    .map_err(|_| StorageError::Protocol(format!("ListObjectsV2: Size `{size}`")))?,
                last_modified: last_modified.trim().to_owned(),
            }),
            _ => Err(StorageError::Protocol(
                "ListObjectsV2: an object without Key, Size or LastModified".into(),
            )),
        })
        .collect::<Result<Vec<_>, _>>()?;
    let next = if truncated {
        Some(first_text(text, "NextContinuationToken")?.ok_or_else(|| {
            StorageError::Protocol("ListObjectsV2: truncated without a continuation token".into())
        })?)
    } else {
        None
    };
    Ok(ObjectsPage { objects, next })
}

/// One multipart upload of a `ListMultipartUploads` page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedUpload {
    pub key: String,
    pub upload_id: String,
    /// `Initiated` as storage wrote it (ISO 8601).
    pub initiated: String,
}

/// A `ListMultipartUploads` page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadsPage {
    pub uploads: Vec<ListedUpload>,
    /// `(NextKeyMarker, NextUploadIdMarker)` when truncated.
    pub next: Option<(String, String)>,
}

/// Parses a `ListMultipartUploads` answer.
pub fn uploads_page(status: u16, body: &[u8]) -> Result<UploadsPage, StorageError> {
    check(status, body)?;
    let text = std::str::from_utf8(body)
        .map_err(|_| StorageError::Protocol("ListMultipartUploads: not UTF-8".into()))?;
    let truncated = first_text(text, "IsTruncated")?.is_some_and(|t| t.trim() == "true");
    let uploads = records(text, "Upload", &["Key", "UploadId", "Initiated"])?
        .into_iter()
        .map(|r| match <[Option<String>; 3]>::try_from(r) {
            Ok([Some(key), Some(upload_id), Some(initiated)]) => Ok(ListedUpload {
                key,
                upload_id,
                initiated: initiated.trim().to_owned(),
            }),
            _ => Err(StorageError::Protocol(
                "ListMultipartUploads: an upload without Key, UploadId or Initiated".into(),
            )),
        })
        .collect::<Result<Vec<_>, _>>()?;
    let next = if truncated {
        match (
            first_text(text, "NextKeyMarker")?,
            first_text(text, "NextUploadIdMarker")?,
        ) {
            (Some(k), Some(u)) if !k.is_empty() => Some((k, u)),
            _ => {
                return Err(StorageError::Protocol(
                    "ListMultipartUploads: truncated without next markers".into(),
                ));
            }
        }
    } else {
        None
    };
    Ok(UploadsPage { uploads, next })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_by_status_and_code() {
        let body = br#"<?xml version="1.0" encoding="UTF-8"?>
<Error><Code>NoSuchKey</Code><Message>The specified key does not exist.</Message><Resource>/b/k</Resource></Error>"#;
        assert_eq!(
            error_from(404, body),
            StorageError::NotFound {
                code: "NoSuchKey".into()
            }
        );
        assert_eq!(
            error_from(404, b""),
            StorageError::NotFound { code: "404".into() }
        );
        let denied = br#"<Error><Code>SignatureDoesNotMatch</Code><Message>bad &amp; wrong</Message></Error>"#;
        assert_eq!(
            error_from(403, denied),
            StorageError::AccessDenied {
                code: "SignatureDoesNotMatch".into(),
                message: "bad & wrong".into()
            }
        );
        assert_eq!(error_from(416, b""), StorageError::InvalidRange);
        assert_eq!(error_from(412, b""), StorageError::PreconditionFailed);
        let e = error_from(503, b"<Error><Code>SlowDown</Code></Error>");
        assert!(e.is_unavailable());
        assert!(matches!(e, StorageError::Service { status: 503, .. }));
        assert!(!error_from(400, b"not xml <<").is_unavailable());
        assert!(check(204, b"").is_ok());
    }

    #[test]
    fn upload_id_and_etag() {
        let body = br#"<?xml version="1.0" encoding="UTF-8"?>
<InitiateMultipartUploadResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Bucket>attachments</Bucket><Key>k</Key><UploadId>VXBsb2FkIElE+/=</UploadId></InitiateMultipartUploadResult>"#;
        assert_eq!(upload_id(200, body).unwrap(), "VXBsb2FkIElE+/=");
        assert!(matches!(
            upload_id(200, b"<x/>"),
            Err(StorageError::Protocol(_))
        ));
        assert!(matches!(
            upload_id(403, b"<Error><Code>AccessDenied</Code></Error>"),
            Err(StorageError::AccessDenied { .. })
        ));
        assert_eq!(etag(Some("\"abc\"")).unwrap(), "\"abc\"");
        assert!(etag(None).is_err());
        assert!(etag(Some(" ")).is_err());
    }

    #[test]
    fn complete_with_embedded_error() {
        assert!(complete(200, b"<CompleteMultipartUploadResult><ETag>\"x-2\"</ETag></CompleteMultipartUploadResult>").is_ok());
        let e = complete(
            200,
            b"<Error><Code>InternalError</Code><Message>m</Message></Error>",
        )
        .unwrap_err();
        assert!(
            matches!(e, StorageError::Service { status: 200, ref code, .. } if code == "InternalError")
        );
        assert!(matches!(
            complete(400, b"<Error><Code>EntityTooSmall</Code></Error>"),
            Err(StorageError::Service { status: 400, .. })
        ));
    }

    #[test]
    fn list_pages() {
        let body = br#"<ListBucketResult><IsTruncated>true</IsTruncated><Contents><Key>a/1</Key><Size>3</Size></Contents><Contents><Key>a/2</Key></Contents><NextContinuationToken>t1</NextContinuationToken></ListBucketResult>"#;
        let p = list_page(200, body).unwrap();
        assert_eq!(p.keys, vec!["a/1", "a/2"]);
        assert_eq!(p.next.as_deref(), Some("t1"));
        let p = list_page(200, b"<ListBucketResult><IsTruncated>false</IsTruncated><KeyCount>0</KeyCount></ListBucketResult>").unwrap();
        assert!(p.keys.is_empty());
        assert!(p.next.is_none());
        let u = br#"<ListMultipartUploadsResult><Bucket>b</Bucket><Upload><Key>a/1</Key><UploadId>u</UploadId></Upload></ListMultipartUploadsResult>"#;
        assert_eq!(multipart_upload_keys(200, u).unwrap(), vec!["a/1"]);
    }
    #[test]
    fn object_and_upload_pages_with_times() {
        let body = br#"<ListBucketResult><IsTruncated>true</IsTruncated><Contents><Key>a/1</Key><LastModified>2026-12-06T19:28:13.000Z</LastModified><ETag>"e"</ETag><Size>3</Size></Contents><Contents><Key>a/&amp;2</Key><Size>0</Size><LastModified>2026-01-01T00:00:00Z</LastModified></Contents><NextContinuationToken>t1</NextContinuationToken></ListBucketResult>"#;
        let p = objects_page(200, body).unwrap();
        assert_eq!(
            p.objects,
            vec![
                ListedObject {
                    key: "a/1".into(),
                    size: 3,
                    last_modified: "2026-12-06T19:28:13.000Z".into()
                },
                ListedObject {
                    key: "a/&2".into(),
                    size: 0,
                    last_modified: "2026-01-01T00:00:00Z".into()
                },
            ]
        );
        assert_eq!(p.next.as_deref(), Some("t1"));
        // A truncated page without its token, or an object without its size, is not understood.
        assert!(
            objects_page(
                200,
                b"<ListBucketResult><IsTruncated>true</IsTruncated></ListBucketResult>"
            )
            .is_err()
        );
        assert!(
            objects_page(
                200,
                b"<ListBucketResult><Contents><Key>k</Key></Contents></ListBucketResult>"
            )
            .is_err()
        );
        assert!(objects_page(403, b"<Error><Code>AccessDenied</Code></Error>").is_err());

        let u = br#"<ListMultipartUploadsResult><Bucket>b</Bucket><IsTruncated>true</IsTruncated><NextKeyMarker>a/2</NextKeyMarker><NextUploadIdMarker>u2</NextUploadIdMarker><Upload><Key>a/1</Key><UploadId>u1</UploadId><Initiated>2026-12-06T19:28:13.000Z</Initiated></Upload><Upload><Key>a/2</Key><UploadId>u2</UploadId><Initiated>2026-12-06T19:28:14Z</Initiated></Upload></ListMultipartUploadsResult>"#;
        let p = uploads_page(200, u).unwrap();
        assert_eq!(p.uploads.len(), 2);
        assert_eq!(
            (p.uploads[1].key.as_str(), p.uploads[1].upload_id.as_str()),
            ("a/2", "u2")
        );
        assert_eq!(p.next, Some(("a/2".into(), "u2".into())));
        let last = uploads_page(200, b"<ListMultipartUploadsResult><IsTruncated>false</IsTruncated></ListMultipartUploadsResult>").unwrap();
        assert!(last.uploads.is_empty() && last.next.is_none());
    }
}
