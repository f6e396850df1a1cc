//! How much structure one `multipart/form-data` body may carry, judged on the raw bytes as they
//! stream, before any parser buffers them: at most `max_upload_parts` parts (`413 too_many_parts`),
//! and at most `max_part_header_bytes` of headers per part (`400 part_header_too_large`; the
//! preamble before the first boundary is bounded the same way).
//!
//! [`MultipartGuard`] watches the bytes for the boundary delimiters the way a multipart parser finds
//! them (`--boundary` anywhere in the preamble, then `CRLF--boundary` anywhere in a part's content; a
//! delimiter followed by `--` closes the body, anything else opens a part whose header block runs from
//! the end of the delimiter line to the first `CRLF CRLF`). It never counts fewer parts, nor fewer
//! header bytes, than such a parser sees: its memory is the boundary and a few counters, whatever the
//! body holds, and chunking does not change its verdict.

use crate::PolicyError;

/// Default `max_upload_parts`: parts (files and form fields) in one multipart body.
pub const DEFAULT_MAX_UPLOAD_PARTS: u32 = 100;
/// Default `max_part_header_bytes`: bytes of one part's header block (and of the preamble).
pub const DEFAULT_MAX_PART_HEADER_BYTES: usize = 8192;

/// Bounds of `max_upload_parts`.
const PARTS_RANGE: std::ops::RangeInclusive<u32> = 1..=10_000;
/// Bounds of `max_part_header_bytes` (a `Content-Disposition` with a 255-byte filename must fit).
const HEADER_RANGE: std::ops::RangeInclusive<usize> = 512..=1024 * 1024;

/// The limits of one multipart body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MultipartLimits {
    /// Most parts (files and plain form fields).
    pub max_parts: u32,
    /// Most bytes of one part's header block (from the end of its boundary line to the blank line
    /// included); also the most bytes before the first boundary.
    pub max_header_bytes: usize,
}

impl Default for MultipartLimits {
    fn default() -> Self {
        Self {
            max_parts: DEFAULT_MAX_UPLOAD_PARTS,
            max_header_bytes: DEFAULT_MAX_PART_HEADER_BYTES,
        }
    }
}

impl MultipartLimits {
    /// Parses the configuration values `max_upload_parts` (1..=10000) and `max_part_header_bytes`
    /// (512..=1048576).
    pub fn from_config(max_parts: &str, max_header_bytes: &str) -> Result<Self, String> {
        let max_parts = max_parts
            .trim()
            .parse::<u32>()
            .ok()
            .filter(|n| PARTS_RANGE.contains(n))
            .ok_or_else(|| format!("max_upload_parts must be a number in {PARTS_RANGE:?}"))?;
        let max_header_bytes = max_header_bytes
            .trim()
            .parse::<usize>()
            .ok()
            .filter(|n| HEADER_RANGE.contains(n))
            .ok_or_else(|| format!("max_part_header_bytes must be bytes in {HEADER_RANGE:?}"))?;
        Ok(Self {
            max_parts,
            max_header_bytes,
        })
    }
}

/// A streaming substring matcher (Knuth–Morris–Pratt): memory is the pattern and its failure table.
#[derive(Debug, Clone)]
struct Matcher {
    pattern: Vec<u8>,
    failure: Vec<usize>,
    matched: usize,
}

impl Matcher {
    fn new(pattern: Vec<u8>) -> Self {
        let mut failure = vec![0; pattern.len()];
        let mut k = 0;
        for i in 1..pattern.len() {
            while k > 0 && pattern[i] != pattern[k] {
                k = failure[k - 1];
            }
            if pattern[i] == pattern[k] {
                k += 1;
            }
            failure[i] = k;
        }
        Self {
            pattern,
            failure,
            matched: 0,
        }
    }

    /// Feeds one byte; true when the pattern has just been seen whole (the matcher starts over).
    fn step(&mut self, b: u8) -> bool {
        while self.matched > 0 && self.pattern[self.matched] != b {
            self.matched = self.failure[self.matched - 1];
        }
        if self.pattern[self.matched] == b {
            self.matched += 1;
        }
        if self.matched == self.pattern.len() {
            self.matched = 0;
            return true;
        }
        false
    }

    fn reset(&mut self) {
        self.matched = 0;
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Before the first boundary.
    Preamble,
    /// Just after a delimiter: `--` closes the body; anything else opens a part.
    AfterDelimiter { dash: bool },
    /// The rest of a delimiter line (transport padding, CRLF).
    DelimiterLine { cr: bool },
    /// A part's header block, up to `CRLF CRLF`.
    Headers,
    /// A part's content, up to the next delimiter.
    Content,
    /// After the closing delimiter: the epilogue is ignored.
    Done,
}

/// Why a multipart body was refused by the guard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GuardError {
    /// More parts than `max_upload_parts`.
    TooManyParts,
    /// A header block (or the preamble) longer than `max_part_header_bytes`.
    PartHeaderTooLarge,
}

impl From<GuardError> for PolicyError {
    fn from(e: GuardError) -> Self {
        match e {
            GuardError::TooManyParts => PolicyError::TooManyParts,
            GuardError::PartHeaderTooLarge => PolicyError::PartHeaderTooLarge,
        }
    }
}

/// Watches one multipart body's raw bytes (see the module docs). Feed every chunk, in order, before
/// the parser sees it; the first refusal sticks.
#[derive(Debug, Clone)]
pub struct MultipartGuard {
    limits: MultipartLimits,
    /// `--boundary`: the first delimiter, anywhere in the preamble.
    first: Matcher,
    /// `CRLF--boundary`: every later delimiter.
    next: Matcher,
    state: State,
    parts: u32,
    /// Bytes of the preamble, or of the current part's delimiter line and header block.
    header_bytes: usize,
    /// The last four bytes of the header block (big-endian), to find `CRLF CRLF`.
    window: u32,
    failed: Option<GuardError>,
}

const CRLF_CRLF: u32 = u32::from_be_bytes(*b"\r\n\r\n");

impl MultipartGuard {
    /// A guard for a body delimited by `boundary` (the `boundary` parameter of its `Content-Type`).
    pub fn new(boundary: &str, limits: MultipartLimits) -> Self {
        let first = [b"--".as_slice(), boundary.as_bytes()].concat();
        let next = [b"\r\n".as_slice(), &first].concat();
        Self {
            limits,
            first: Matcher::new(first),
            next: Matcher::new(next),
            state: State::Preamble,
            parts: 0,
            header_bytes: 0,
            window: 0,
            failed: None,
        }
    }

    /// Parts opened so far.
    pub fn parts(&self) -> u32 {
        self.parts
    }

    /// Whether the closing delimiter has been seen.
    pub fn closed(&self) -> bool {
        self.state == State::Done
    }

    /// Watches `chunk`; the refusal once the body has too many parts or too long a header block
    /// (and from then on).
    pub fn feed(&mut self, chunk: &[u8]) -> Result<(), GuardError> {
        if let Some(e) = self.failed {
            return Err(e);
        }
        let mut i = 0;
        while i < chunk.len() {
            if self.state == State::Done {
                return Ok(());
            }
            if self.state == State::Content && self.next.matched == 0 {
                // Fast path: nothing can start a delimiter before the next CR.
                match chunk[i..].iter().position(|&b| b == b'\r') {
                    Some(p) => i += p,
                    None => return Ok(()),
                }
            }
            if let Err(e) = self.step(chunk[i]) {
                self.failed = Some(e);
                return Err(e);
            }
            i += 1;
        }
        Ok(())
    }

    fn step(&mut self, b: u8) -> Result<(), GuardError> {
        match self.state {
            State::Preamble => {
                self.header_bytes += 1;
                if self.first.step(b) {
                    self.state = State::AfterDelimiter { dash: false };
                } else if self.header_bytes
                    > self.limits.max_header_bytes + self.first.pattern.len()
                {
                    return Err(GuardError::PartHeaderTooLarge);
                }
            }
            State::AfterDelimiter { dash: false } if b == b'-' => {
                self.state = State::AfterDelimiter { dash: true };
            }
            State::AfterDelimiter { dash } => {
                if dash && b == b'-' {
                    self.state = State::Done;
                    return Ok(());
                }
                self.parts += 1;
                if self.parts > self.limits.max_parts {
                    return Err(GuardError::TooManyParts);
                }
                self.header_bytes = usize::from(dash);
                self.state = State::DelimiterLine { cr: false };
                return self.step(b);
            }
            State::DelimiterLine { cr } => {
                self.count_header_byte()?;
                self.state = if cr && b == b'\n' {
                    self.window = 0;
                    State::Headers
                } else {
                    State::DelimiterLine { cr: b == b'\r' }
                };
            }
            State::Headers => {
                self.count_header_byte()?;
                self.window = (self.window << 8) | u32::from(b);
                if self.window == CRLF_CRLF {
                    self.next.reset();
                    self.state = State::Content;
                }
            }
            State::Content => {
                if self.next.step(b) {
                    self.state = State::AfterDelimiter { dash: false };
                }
            }
            State::Done => {}
        }
        Ok(())
    }

    fn count_header_byte(&mut self) -> Result<(), GuardError> {
        self.header_bytes += 1;
        if self.header_bytes > self.limits.max_header_bytes {
            Err(GuardError::PartHeaderTooLarge)
        } else {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests;
