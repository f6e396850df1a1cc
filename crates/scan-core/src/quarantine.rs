//! Quarantine of stored objects: which content is quarantined, how the quarantine key is named, and
//! the next step to take from what the database records (a pure plan the callback executes).
//!
//! Downloads refuse `infected`/`suspicious` content by its status alone, from the moment the verdict
//! commits. In addition the object itself leaves its normal key, so that nothing holding the old key
//! (a presigned storage URL of `download_mode = redirect`, a backup job, a bucket browser) still reaches
//! it. The variable `quarantine_mode` decides how:
//!
//! * `move` (default): copy to [`quarantine_key`] (`quarantine/` + the original key, one prefix an
//!   operator can lock down with a bucket policy or give a lifecycle rule), record the new key, then
//!   delete the original;
//! * `delete`: record that the object is deleted, then delete it.
//!
//! Order, so that a row never points at a missing object and every step is safe to repeat when the
//! callback is retried (any step may fail; the scanner retries and the plan resumes from the record):
//!
//! 1. the verdict commits (downloads refuse the content from here on);
//! 2. `move`: CopyObject original → quarantine key (repeatable: same bytes, same key);
//! 3. one transaction records it (`move`: `storage_key` = the quarantine key; `delete`: the object is
//!    marked deleted), with the `attachment.quarantine` audit row;
//! 4. DeleteObject of the original (absent counts as deleted, so repeating is harmless).
//!
//! A failure after 2 leaves at most an unreferenced copy under `quarantine/` (overwritten by the retry);
//! a failure after 3 leaves the original object, which every later callback for that content deletes
//! again ([`plan`] answers [`Step::DeleteOriginal`] for recorded quarantine).

use crate::verdict::ScanStatus;

/// The prefix of quarantined objects.
pub const PREFIX: &str = "quarantine/";

/// What `quarantine_mode` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Move the object under [`PREFIX`] (default).
    Move,
    /// Delete the object.
    Delete,
}

/// `quarantine_mode` is neither `move` nor `delete`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("quarantine_mode must be move or delete")]
pub struct ModeError;

impl Mode {
    /// Parses the variable (`move` when empty).
    pub fn parse(s: &str) -> Result<Self, ModeError> {
        match s.trim() {
            "move" | "" => Ok(Self::Move),
            "delete" => Ok(Self::Delete),
            _ => Err(ModeError),
        }
    }
}

/// What the database records about an object's quarantine (`attachment_blobs.quarantine_action`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// `storage_key` is the quarantine key; the original may still need deleting.
    Moved,
    /// The object was deleted; `storage_key` names where it was.
    Deleted,
}

impl Recorded {
    /// Parses the database string.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "moved" => Some(Self::Moved),
            "deleted" => Some(Self::Deleted),
            _ => None,
        }
    }

    /// The database string.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Moved => "moved",
            Self::Deleted => "deleted",
        }
    }
}

/// The quarantine key of an object key (idempotent: a quarantine key maps to itself).
pub fn quarantine_key(original: &str) -> String {
    if original.starts_with(PREFIX) {
        original.to_owned()
    } else {
        format!("{PREFIX}{original}")
    }
}

/// The original key of a quarantine key (`None` for a key that is not one).
pub fn original_key(quarantined: &str) -> Option<&str> {
    quarantined.strip_prefix(PREFIX).filter(|k| !k.is_empty())
}

/// The next storage step for content, from its status, its `storage_key` and what is recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Not quarantine content, or nothing left to do.
    Nothing,
    /// Copy `from` to `to`, record the move, delete `from`.
    Move { from: String, to: String },
    /// Record the deletion of `key`, then delete it.
    Delete { key: String },
    /// Quarantine is recorded: (re)delete the object at `key` (the original after a move, the object
    /// itself after a delete), in case an earlier attempt stopped before doing so.
    DeleteOriginal { key: String },
}

/// See [`Step`].
pub fn plan(status: ScanStatus, storage_key: &str, recorded: Option<Recorded>, mode: Mode) -> Step {
    if !status.is_quarantine() {
        return Step::Nothing;
    }
    match recorded {
        None => match mode {
            // A key already under the prefix (never minted by uploads) is left where it is.
            Mode::Move if storage_key.starts_with(PREFIX) => Step::Nothing,
            Mode::Move => Step::Move {
                from: storage_key.to_owned(),
                to: quarantine_key(storage_key),
            },
            Mode::Delete => Step::Delete {
                key: storage_key.to_owned(),
            },
        },
        Some(Recorded::Moved) => match original_key(storage_key) {
            Some(k) => Step::DeleteOriginal { key: k.to_owned() },
            None => Step::Nothing,
        },
        Some(Recorded::Deleted) => Step::DeleteOriginal {
            key: storage_key.to_owned(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const K: &str =
        "tenants/0a1b2c3d-4e5f-4a6b-8c7d-8e9f0a1b2c3d/blobs/6f1c2a8e-3b4d-4e5f-8a9b-0c1d2e3f4a5b";

    #[test]
    fn keys() {
        let q = quarantine_key(K);
        assert_eq!(q, format!("quarantine/{K}"));
        assert_eq!(quarantine_key(&q), q);
        assert_eq!(original_key(&q), Some(K));
        assert_eq!(original_key(K), None);
        assert_eq!(original_key(PREFIX), None);
    }

    #[test]
    fn modes() {
        assert_eq!(Mode::parse("move"), Ok(Mode::Move));
        assert_eq!(Mode::parse(" "), Ok(Mode::Move));
        assert_eq!(Mode::parse("delete"), Ok(Mode::Delete));
        assert_eq!(Mode::parse("Delete"), Err(ModeError));
        assert_eq!(Recorded::parse("moved"), Some(Recorded::Moved));
        assert_eq!(
            Recorded::parse(Recorded::Deleted.as_str()),
            Some(Recorded::Deleted)
        );
        assert_eq!(Recorded::parse("x"), None);
    }

    #[test]
    fn plans() {
        let q = quarantine_key(K);
        for s in [
            ScanStatus::Pending,
            ScanStatus::Clean,
            ScanStatus::Error,
            ScanStatus::Skipped,
        ] {
            assert_eq!(plan(s, K, None, Mode::Move), Step::Nothing);
        }
        assert_eq!(
            plan(ScanStatus::Infected, K, None, Mode::Move),
            Step::Move {
                from: K.into(),
                to: q.clone()
            }
        );
        assert_eq!(
            plan(ScanStatus::Suspicious, K, None, Mode::Delete),
            Step::Delete { key: K.into() }
        );
        // Recorded: resume, whatever the mode says now.
        for mode in [Mode::Move, Mode::Delete] {
            assert_eq!(
                plan(ScanStatus::Infected, &q, Some(Recorded::Moved), mode),
                Step::DeleteOriginal { key: K.into() }
            );
            assert_eq!(
                plan(ScanStatus::Infected, K, Some(Recorded::Deleted), mode),
                Step::DeleteOriginal { key: K.into() }
            );
        }
        assert_eq!(
            plan(ScanStatus::Infected, &q, None, Mode::Move),
            Step::Nothing
        );
    }

    proptest! {
        /// Executing the plan until it says DeleteOriginal/Nothing reaches a state where the row's
        /// key is never the original's in move mode, and the plan is stable from then on.
        #[test]
        fn plan_converges(seg in "[a-z0-9-]{1,20}(/[a-z0-9-]{1,20}){0,4}", delete in any::<bool>()) {
            prop_assume!(!seg.starts_with(PREFIX));
            let mode = if delete { Mode::Delete } else { Mode::Move };
            let (mut key, mut recorded) = (seg.clone(), None);
            for _ in 0..3 {
                match plan(ScanStatus::Infected, &key, recorded, mode) {
                    Step::Move { from, to } => {
                        prop_assert_eq!(&from, &seg);
                        prop_assert_eq!(original_key(&to), Some(seg.as_str()));
                        key = to;
                        recorded = Some(Recorded::Moved);
                    }
                    Step::Delete { key: k } => {
                        prop_assert_eq!(&k, &seg);
                        recorded = Some(Recorded::Deleted);
                    }
                    Step::DeleteOriginal { key: k } => prop_assert_eq!(&k, &seg),
                    Step::Nothing => {}
                }
            }
            prop_assert!(recorded.is_some());
            prop_assert_eq!(plan(ScanStatus::Infected, &key, recorded, mode), Step::DeleteOriginal { key: seg.clone() });
        }
    }
}
