//! The running SHA-256 of an upload's bytes, kept between its PATCH requests so that the last one
//! knows the whole file's digest without reading the object back. The state is SHA-2's own
//! serialization (`SerializableState`: the chaining value, the block count and the unprocessed
//! tail of the last block), stored as bytes with the session.

use sha2::digest::common::hazmat::SerializableState;
use sha2::{Digest, Sha256};

/// A SHA-256 in progress.
#[derive(Clone, Default)]
pub struct RunningHash(Sha256);

/// A stored state that is not one ([`RunningHash::restore`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadState;

impl std::fmt::Display for BadState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("stored SHA-256 state is malformed")
    }
}

impl std::error::Error for BadState {}

impl RunningHash {
    /// The hash of nothing yet.
    pub fn new() -> Self {
        Self(Sha256::new())
    }

    /// The hash from a state [`RunningHash::save`] wrote; `None` starts afresh.
    pub fn restore(state: Option<&[u8]>) -> Result<Self, BadState> {
        let Some(state) = state else {
            return Ok(Self::new());
        };
        let array = state.try_into().map_err(|_| BadState)?;
        Sha256::deserialize(array).map(Self).map_err(|_| BadState)
    }

    /// Adds bytes.
    pub fn update(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    /// The state to store.
    pub fn save(&self) -> Vec<u8> {
        self.0.serialize().to_vec()
    }

    /// The digest of everything added, as lowercase hex.
    pub fn finish_hex(self) -> String {
        self.0
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

/// The SHA-256 of one chunk (its `Upload-Checksum`, the signature of its part).
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn hex(bytes: &[u8]) -> String {
        sha256(bytes).iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn a_saved_state_resumes_where_it_stopped() {
        let mut h = RunningHash::restore(None).unwrap();
        h.update(b"hello ");
        let saved = h.save();
        let mut resumed = RunningHash::restore(Some(&saved)).unwrap();
        resumed.update(b"world");
        assert_eq!(resumed.finish_hex(), hex(b"hello world"));
    }

    #[test]
    fn garbage_is_no_state() {
        assert_eq!(RunningHash::restore(Some(b"nope")).err(), Some(BadState));
        assert_eq!(RunningHash::restore(Some(&[])).err(), Some(BadState));
    }

    proptest! {
        #[test]
        fn any_split_hashes_like_the_whole(data in proptest::collection::vec(any::<u8>(), 0..400), cuts in proptest::collection::vec(any::<usize>(), 0..5)) {
            let mut points: Vec<usize> = cuts.iter().map(|c| c % (data.len() + 1)).collect();
            points.sort_unstable();
            let mut state: Option<Vec<u8>> = None;
            let mut from = 0;
            for p in points.into_iter().chain([data.len()]) {
                let mut h = RunningHash::restore(state.as_deref()).unwrap();
                h.update(&data[from..p]);
                state = Some(h.save());
                from = p;
            }
            let h = RunningHash::restore(state.as_deref()).unwrap();
            prop_assert_eq!(h.finish_hex(), hex(&data));
        }
    }
}
