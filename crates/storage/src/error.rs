//! One error type for everything storage can do wrong.

/// A storage failure. `Display` never contains credentials or signatures; it may contain the
/// object key, so it is for logs only (never for a client response).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StorageError {
    /// Bad configuration (endpoint, region, bucket, keys).
    #[error("storage configuration: {0}")]
    Config(String),
    /// The object (or upload) does not exist (`404`, `NoSuchKey`, `NoSuchUpload`).
    #[error("storage: not found ({code})")]
    NotFound {
        /// The S3 error code, or `404` when the answer had no body (HEAD).
        code: String,
    },
    /// The service refused our credentials or signature (`403`).
    #[error("storage: access denied ({code}): {message}")]
    AccessDenied {
        /// S3 error code.
        code: String,
        /// S3 message.
        message: String,
    },
    /// A `Range` the object cannot satisfy (`416`).
    #[error("storage: range not satisfiable")]
    InvalidRange,
    /// A precondition (`If-Match`, ...) failed (`412`).
    #[error("storage: precondition failed")]
    PreconditionFailed,
    /// Any other error answer.
    #[error("storage: HTTP {status} {code}: {message}")]
    Service {
        /// HTTP status.
        status: u16,
        /// S3 error code (empty when the body was not an S3 error document).
        code: String,
        /// S3 message.
        message: String,
    },
    /// The host refused to open the connection: the endpoint is not in the component's
    /// `allowed_outbound_hosts` (or that list is invalid). A deployment error, not an outage.
    #[error("storage: the host refused the connection (allowed_outbound_hosts): {0}")]
    Denied(String),
    /// The request could not be sent or the answer not read (network, host refused the URL, ...).
    #[error("storage transport: {0}")]
    Transport(String),
    /// An answer we could not understand (missing UploadId, bad XML, ...).
    #[error("storage protocol: {0}")]
    Protocol(String),
    /// Storage did not answer within the outbound deadline (`outbound_timeout_secs`); what the request
    /// started there is in an unknown state.
    #[error("storage timeout: {0}")]
    Timeout(String),
    /// This instance's part buffers stayed taken by other uploads for the whole wait.
    #[error("storage busy: {0}")]
    Busy(String),
}

impl StorageError {
    /// Whether this is a server-side/transport condition worth a `503` rather than a `500`.
    pub fn is_unavailable(&self) -> bool {
        match self {
            StorageError::Transport(_) | StorageError::Busy(_) | StorageError::Timeout(_) => true,
            StorageError::Service { status, .. } => *status >= 500,
            _ => false,
        }
    }

    /// Whether the deployment's settings are wrong (bad configuration, an endpoint the manifest does
    /// not allow): retrying cannot help.
    pub fn is_misconfigured(&self) -> bool {
        matches!(self, StorageError::Config(_) | StorageError::Denied(_))
    }

    /// Whether storage did not answer within the outbound deadline.
    pub fn is_timeout(&self) -> bool {
        matches!(self, StorageError::Timeout(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_timeout_is_unavailable_and_only_it_is_a_timeout() {
        let t = StorageError::Timeout("PUT ?partNumber=2: no answer within 2000 ms".into());
        assert!(t.is_timeout() && t.is_unavailable());
        for other in [
            StorageError::Transport("reset".into()),
            StorageError::Busy("budget".into()),
            StorageError::NotFound {
                code: "NoSuchKey".into(),
            },
        ] {
            assert!(!other.is_timeout(), "{other}");
        }
    }
}
