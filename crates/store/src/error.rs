//! [`StoreError`]: what can go wrong between the service and Postgres, in terms a caller can act on
//! (retry later, a constraint said no, a row did not have the shape a statement promised). The SQL
//! text and the server's message are kept for the log; callers never show them to a client.

use std::fmt;

/// SQLSTATE `check_violation` (a `CHECK` constraint or a trigger that raises it).
pub const CHECK_VIOLATION: &str = "23514";
/// SQLSTATE `unique_violation`.
pub const UNIQUE_VIOLATION: &str = "23505";

/// A failed database call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreError {
    /// The database could not be reached (connection refused, dropped, pool exhausted): worth a
    /// retry later, a `503` at the edge.
    Unavailable {
        context: &'static str,
        message: String,
    },
    /// The host refused to open the connection: the database is not in the component's
    /// `allowed_outbound_hosts` (or that list is invalid). A deployment error, `500 misconfigured`.
    Denied {
        context: &'static str,
        message: String,
    },
    /// No answer within the outbound deadline (`outbound_timeout_secs`): the statement was abandoned
    /// and may or may not have run; its transaction, if any, is rolled back. A retry later, like
    /// `Unavailable`, but the edge names it `upstream_timeout`.
    Timeout {
        context: &'static str,
        message: String,
    },
    /// The server ran the statement and refused it; `sqlstate` when the server gave one.
    Refused {
        context: &'static str,
        sqlstate: Option<String>,
        message: String,
    },
    /// A row did not have the shape the statement promises (a bug, or a schema out of step).
    Decode {
        context: &'static str,
        message: String,
    },
}

impl StoreError {
    /// The server's SQLSTATE, when it refused a statement.
    pub fn sqlstate(&self) -> Option<&str> {
        match self {
            Self::Refused { sqlstate, .. } => sqlstate.as_deref(),
            _ => None,
        }
    }

    /// Whether the server refused with `check_violation`.
    pub fn is_check_violation(&self) -> bool {
        self.sqlstate() == Some(CHECK_VIOLATION)
    }

    /// Whether the server refused with `unique_violation`.
    pub fn is_unique_violation(&self) -> bool {
        self.sqlstate() == Some(UNIQUE_VIOLATION)
    }

    /// Whether the database was unreachable or did not answer in time.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::Unavailable { .. } | Self::Timeout { .. })
    }

    /// Whether the host refused the connection (see [`StoreError::Denied`]).
    pub fn is_misconfigured(&self) -> bool {
        matches!(self, Self::Denied { .. })
    }

    /// Whether the database did not answer within the outbound deadline.
    pub fn is_timeout(&self) -> bool {
        matches!(self, Self::Timeout { .. })
    }

    pub(crate) fn decode(context: &'static str, message: impl Into<String>) -> Self {
        Self::Decode {
            context,
            message: message.into(),
        }
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unavailable { context, message } => {
                write!(f, "postgres {context}: unavailable: {message}")
            }
            Self::Timeout { context, message } => {
                write!(f, "postgres {context}: timeout: {message}")
            }
            Self::Denied { context, message } => {
                write!(f, "postgres {context}: refused by the host: {message}")
            }
            Self::Refused {
                context,
                sqlstate,
                message,
            } => match sqlstate {
                Some(s) => write!(f, "postgres {context}: refused ({s}): {message}"),
                None => write!(f, "postgres {context}: refused: {message}"),
            },
            Self::Decode { context, message } => {
                write!(f, "postgres {context}: bad row: {message}")
            }
        }
    }
}

impl std::error::Error for StoreError {}

/// A store call's result.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_timeout_is_unavailable_and_says_so() {
        let t = StoreError::Timeout {
            context: "BEGIN",
            message: "no answer within 2000 ms".into(),
        };
        assert!(t.is_timeout() && t.is_unavailable());
        assert_eq!(t.sqlstate(), None);
        assert_eq!(
            t.to_string(),
            "postgres BEGIN: timeout: no answer within 2000 ms"
        );
        let down = StoreError::Unavailable {
            context: "open",
            message: "refused".into(),
        };
        assert!(down.is_unavailable() && !down.is_timeout());
    }
}
