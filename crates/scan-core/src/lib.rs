//! The virus-scan domain shared by the `scan-callback` component and the native scan worker.
//!
//! - [`signature`]: the `X-Scan-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>`
//!   scheme, signing (worker, external scanners) and verification against a ring of named scanners'
//!   secrets (callback).
//! - [`callback`]: the callback body, parsed into newtypes by the receiver and built (and signed) by
//!   scanners from the same types ([`callback::Callback::signed`]).
//! - [`verdict`]: the per-content verdict state machine ([`verdict::decide`]): findings always win,
//!   other verdicts in order of arrival.
//! - [`engines`]: each engine's verdict on a content and the rule that combines them (the worst
//!   opinion wins; an engine's error never hides another's finding).
//! - [`quarantine`]: quarantine keys and the storage steps of quarantining content.
//! - [`audit`]: the audit rows of verdicts and quarantine.
//! - [`verification`]: the upload-verification report the worker posts about a directly uploaded
//!   object (size, SHA-256, content policy) and the callback's answer.
//!
//! [`ScanStatus`] is the one type of a stored verdict; the delivery policy and the store use it.

pub mod audit;
pub mod callback;
pub mod engines;
pub mod quarantine;
pub mod signature;
pub mod verdict;
pub mod verification;

pub use callback::{BodyError, Callback, ContentHash, Target, Verdict, VerdictStatus};
pub use engines::{EngineKey, EngineVerdict};
pub use signature::Signed;
pub use verdict::{Decision, Ignored, InForce, ScanStatus};
