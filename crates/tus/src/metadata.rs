//! `Upload-Metadata`: comma-separated pairs of a key and an optional base64 value
//! (`filename d29ybGRfZG9taW5hdGlvbl9wbGFuLnBkZg==,is_confidential`). Keys are non-empty, without
//! spaces or commas, and unique. Values are bytes; [`Metadata::text`] reads one as UTF-8.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

/// The parsed pairs, in the order sent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Metadata {
    pairs: Vec<(String, Option<Vec<u8>>)>,
}

/// Why `Upload-Metadata` is refused (the text is client-safe).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetadataError(pub &'static str);

impl std::fmt::Display for MetadataError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for MetadataError {}

impl Metadata {
    /// Parses the header's value; an absent header is empty metadata.
    pub fn parse(value: Option<&str>) -> Result<Self, MetadataError> {
        let mut pairs: Vec<(String, Option<Vec<u8>>)> = Vec::new();
        let Some(value) = value else {
            return Ok(Self { pairs });
        };
        for item in value.split(',') {
            let item = item.trim();
            if item.is_empty() {
                continue;
            }
            let (key, encoded) = match item.split_once(' ') {
                Some((k, v)) => (k, Some(v.trim())),
                None => (item, None),
            };
            if key.is_empty() || !key.bytes().all(|b| b.is_ascii_graphic() && b != b',') {
                return Err(MetadataError("Upload-Metadata has a malformed key."));
            }
            if pairs.iter().any(|(k, _)| k == key) {
                return Err(MetadataError("Upload-Metadata names a key twice."));
            }
            let decoded = match encoded {
                None | Some("") => None,
                Some(e) => Some(
                    STANDARD
                        .decode(e)
                        .map_err(|_| MetadataError("An Upload-Metadata value is not base64."))?,
                ),
            };
            pairs.push((key.to_owned(), decoded));
        }
        Ok(Self { pairs })
    }

    /// The value of `key` as UTF-8 text (`None` when absent or without a value).
    pub fn text(&self, key: &str) -> Result<Option<&str>, MetadataError> {
        match self.pairs.iter().find(|(k, _)| k == key) {
            None | Some((_, None)) => Ok(None),
            Some((_, Some(v))) => std::str::from_utf8(v)
                .map(Some)
                .map_err(|_| MetadataError("An Upload-Metadata value is not UTF-8 text.")),
        }
    }

    /// The keys, in the order sent.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.pairs.iter().map(|(k, _)| k.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uppy_s_filename_and_filetype_decode() {
        // What Uppy sends: name, type, and its own keys.
        let m = Metadata::parse(Some(
            "relativePath bnVsbA==,name cmVwb3J0LnBkZg==,type YXBwbGljYXRpb24vcGRm,\
             filetype YXBwbGljYXRpb24vcGRm,filename cmVwb3J0LnBkZg==",
        ))
        .unwrap();
        assert_eq!(m.text("filename"), Ok(Some("report.pdf")));
        assert_eq!(m.text("filetype"), Ok(Some("application/pdf")));
        assert_eq!(m.text("missing"), Ok(None));
        assert_eq!(m.keys().count(), 5);
    }

    #[test]
    fn a_key_without_value_and_utf8_names() {
        let m = Metadata::parse(Some("is_confidential, filename aMOpbGxvLnR4dA==")).unwrap();
        assert_eq!(m.text("is_confidential"), Ok(None));
        assert_eq!(m.text("filename"), Ok(Some("héllo.txt")));
        assert_eq!(Metadata::parse(None).unwrap().keys().count(), 0);
    }

    #[test]
    fn malformed_metadata_is_refused() {
        assert!(Metadata::parse(Some("filename ***")).is_err(), "not base64");
        assert!(
            Metadata::parse(Some("a YQ==,a Yg==")).is_err(),
            "duplicate key"
        );
        let latin1 = Metadata::parse(Some("filename 6Q==")).unwrap();
        assert!(latin1.text("filename").is_err(), "0xE9 alone is not UTF-8");
        assert!(
            Metadata::parse(Some("k\u{e9}y YQ==")).is_err(),
            "non-ASCII key"
        );
    }
}
