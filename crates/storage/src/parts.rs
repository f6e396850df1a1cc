//! The pure bookkeeping of a pipelined multipart upload, tested natively; `client` does the I/O.
//!
//! * [`PartBuffer`] cuts a byte stream into numbered parts of exactly `part_size` bytes (the last
//!   one may be shorter), with each part's CRC32 computed as it fills (the checksum storage
//!   verifies the part against). Each part's buffer is allocated once, at the part size or, when the
//!   caller knows an upper bound of the bytes still to come (a `Content-Length`), at no more than that
//!   (a 100 KiB upload holds 100 KiB, not a whole part), so filling it never reallocates; it is handed
//!   over by value (no copy) to the request that uploads it.
//! * [`Window`] keeps the parts being uploaded in part order and says when the oldest must be
//!   awaited before another may start: at most `depth` parts are in flight, so memory stays
//!   bounded by `depth + 1` part buffers (the ones uploading plus the one filling).
//! * [`CompletedParts`] collects what each stored part needs in `CompleteMultipartUpload` (its
//!   ETag and checksum), whatever order the answers come back in, and hands over the contiguous
//!   list `1..=n`.
//! * [`PartPlan`] cuts an object of a known size into the parts a client uploads itself (direct
//!   uploads through presigned part URLs): the part size and count, and each part's exact length.

use std::collections::VecDeque;

use crate::{MAX_PARTS, StorageError};

/// Cuts a byte stream into parts (see the module docs).
#[derive(Debug)]
pub struct PartBuffer {
    part_size: usize,
    buf: Vec<u8>,
    crc: crc32fast::Hasher,
    taken: u32,
    /// An upper bound of the bytes still to come, when known.
    remaining: Option<u64>,
}

/// One part, cut: its number (`1..=10000`), bytes and CRC32.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    /// The part number.
    pub number: u32,
    /// The bytes.
    pub bytes: Vec<u8>,
    /// Their CRC32.
    pub crc32: u32,
}

impl PartBuffer {
    /// Parts of `part_size` bytes (at least 1).
    pub fn new(part_size: usize) -> Self {
        Self {
            part_size: part_size.max(1),
            buf: Vec::new(),
            crc: crc32fast::Hasher::new(),
            taken: 0,
            remaining: None,
        }
    }

    /// At most `bytes` more will be filled in (e.g. from a `Content-Length`): later part buffers
    /// are allocated no larger than that. More bytes than announced still fit: the buffer then
    /// grows up to the part size.
    pub fn expect_at_most(&mut self, bytes: u64) {
        self.remaining = Some(bytes);
    }

    /// The capacity the current part's buffer has or will be given when `chunk_len` more bytes
    /// arrive: what the caller reserves before filling.
    pub fn capacity_for(&self, chunk_len: usize) -> usize {
        if self.buf.capacity() > 0 {
            return self.buf.capacity();
        }
        let expected = self
            .remaining
            .map_or(self.part_size, |r| usize::try_from(r).unwrap_or(usize::MAX));
        expected.max(chunk_len).min(self.part_size)
    }

    /// The part size.
    pub fn part_size(&self) -> usize {
        self.part_size
    }

    /// Copies the start of `chunk` into the current part, as much as fits; returns how many
    /// bytes it took (`0` only when `chunk` is empty or the part is already full).
    pub fn fill(&mut self, chunk: &[u8]) -> usize {
        let take = (self.part_size - self.buf.len()).min(chunk.len());
        if take > 0 && self.buf.capacity() == 0 {
            // One allocation for the part: filling it never moves it.
            self.buf = Vec::with_capacity(self.capacity_for(take));
        }
        self.buf.extend_from_slice(&chunk[..take]);
        self.crc.update(&chunk[..take]);
        if let Some(r) = self.remaining.as_mut() {
            *r = r.saturating_sub(take as u64);
        }
        take
    }

    /// Whether the current part holds `part_size` bytes.
    pub fn is_full(&self) -> bool {
        self.buf.len() == self.part_size
    }

    /// Bytes in the current part.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// Whether the current part is empty.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// How many parts were taken so far.
    pub fn parts_taken(&self) -> u32 {
        self.taken
    }

    /// The current part, numbered, leaving an empty, unallocated buffer.
    pub fn take_part(&mut self) -> Result<Part, StorageError> {
        let n = self.taken + 1;
        if n > MAX_PARTS {
            return Err(StorageError::Protocol(format!(
                "object needs more than {MAX_PARTS} parts"
            )));
        }
        self.taken = n;
        Ok(Part {
            number: n,
            bytes: std::mem::take(&mut self.buf),
            crc32: std::mem::take(&mut self.crc).finalize(),
        })
    }

    /// The bytes buffered so far (the whole object when no part was taken), leaving nothing.
    pub fn take_all(&mut self) -> Vec<u8> {
        self.crc = crc32fast::Hasher::new();
        std::mem::take(&mut self.buf)
    }

    /// Drops the buffered bytes and their memory.
    pub fn clear(&mut self) {
        self.crc = crc32fast::Hasher::new();
        self.buf = Vec::new();
    }
}

/// Uploads in flight, oldest first, at most `depth` of them (see the module docs).
#[derive(Debug)]
pub struct Window<H> {
    depth: usize,
    in_flight: VecDeque<(u32, H)>,
}

impl<H> Window<H> {
    /// A window of `depth` (at least 1) uploads.
    pub fn new(depth: usize) -> Self {
        Self {
            depth: depth.max(1),
            in_flight: VecDeque::new(),
        }
    }

    /// Whether another upload may start without awaiting the oldest first.
    pub fn has_room(&self) -> bool {
        self.in_flight.len() < self.depth
    }

    /// Records part `n`'s upload. The caller checks [`Window::has_room`] first; past `depth`
    /// this is a bug, reported as an error rather than unbounded memory.
    pub fn push(&mut self, n: u32, handle: H) -> Result<(), StorageError> {
        if !self.has_room() {
            return Err(StorageError::Protocol(
                "upload window full: await the oldest part first".into(),
            ));
        }
        self.in_flight.push_back((n, handle));
        Ok(())
    }

    /// The oldest upload in flight, to await.
    pub fn pop_oldest(&mut self) -> Option<(u32, H)> {
        self.in_flight.pop_front()
    }

    /// How many are in flight.
    pub fn len(&self) -> usize {
        self.in_flight.len()
    }

    /// Whether none is in flight.
    pub fn is_empty(&self) -> bool {
        self.in_flight.is_empty()
    }
}

/// What `CompleteMultipartUpload` needs of each stored part, e.g. its ETag (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompletedParts<T> {
    parts: Vec<(u32, T)>,
}

impl<T> Default for CompletedParts<T> {
    fn default() -> Self {
        Self { parts: Vec::new() }
    }
}

impl<T> CompletedParts<T> {
    /// None yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Part `n` is stored. A part number seen twice is an error (a bug upstream).
    pub fn insert(&mut self, n: u32, value: T) -> Result<(), StorageError> {
        match self.parts.binary_search_by_key(&n, |(p, _)| *p) {
            Ok(_) => Err(StorageError::Protocol(format!("part {n} completed twice"))),
            Err(i) => {
                self.parts.insert(i, (n, value));
                Ok(())
            }
        }
    }

    /// How many parts are stored.
    pub fn len(&self) -> usize {
        self.parts.len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.parts.is_empty()
    }

    /// Parts `1..=n` in order, for `CompleteMultipartUpload`; an error unless exactly those
    /// `n` parts (no gap, none missing) are stored.
    pub fn contiguous(&self, n: u32) -> Result<&[(u32, T)], StorageError> {
        let complete = self.parts.len() == n as usize
            && self
                .parts
                .iter()
                .enumerate()
                .all(|(i, (p, _))| *p as usize == i + 1);
        if complete {
            Ok(&self.parts)
        } else {
            Err(StorageError::Protocol(format!(
                "{} of {n} parts stored",
                self.parts.len()
            )))
        }
    }
}

/// How an object of `size` bytes is cut into parts that a client uploads itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartPlan {
    /// Every part's length but the last one's.
    pub part_size: u64,
    /// How many parts (`1..=MAX_PARTS`).
    pub count: u32,
    size: u64,
}

/// Granularity of a part size grown beyond the preferred one: whole MiB.
const MIB: u64 = 1024 * 1024;

impl PartPlan {
    /// Parts of `preferred` bytes (at least [`crate::MIN_PART_SIZE`]), larger when `size` would
    /// need more than [`MAX_PARTS`] of them (rounded up to whole MiB). `None` for an empty object
    /// or one that cannot fit (over 10,000 parts of 5 GiB, S3's largest part).
    pub fn new(size: u64, preferred: u64) -> Option<Self> {
        const MAX_PART: u64 = 5 * 1024 * MIB;
        if size == 0 {
            return None;
        }
        let min = preferred.max(crate::MIN_PART_SIZE as u64);
        let needed = size.div_ceil(u64::from(MAX_PARTS)).div_ceil(MIB) * MIB;
        let part_size = min.max(needed);
        if part_size > MAX_PART {
            return None;
        }
        let count = u32::try_from(size.div_ceil(part_size)).ok()?;
        Some(Self {
            part_size,
            count,
            size,
        })
    }

    /// The exact length of part `n` (`1..=count`); `None` outside.
    pub fn length(&self, n: u32) -> Option<u64> {
        if n == 0 || n > self.count {
            return None;
        }
        let start = u64::from(n - 1) * self.part_size;
        Some((self.size - start).min(self.part_size))
    }
}

/// Why a client's list of parts cannot complete an upload of `count` parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListedPartsError {
    /// Not exactly `count` entries.
    Count,
    /// Entry `n` is not part `n`.
    Order(u32),
    /// Part `n`'s ETag is empty, too long or not visible ASCII.
    Etag(u32),
}

/// Longest ETag taken from a client (S3's are 34 characters with their quotes).
pub const MAX_ETAG_LEN: usize = 200;

/// A client's `(part number, ETag)` list for `CompleteMultipartUpload` of an upload of `count`
/// parts: exactly `1..=count`, in order, each with a plausible ETag (trimmed). Storage still checks
/// each ETag against the part it holds.
pub fn listed_parts(
    parts: Vec<(u32, String)>,
    count: u32,
) -> Result<Vec<(u32, String)>, ListedPartsError> {
    if parts.len() != count as usize {
        return Err(ListedPartsError::Count);
    }
    parts
        .into_iter()
        .zip(1..=count)
        .map(|((number, etag), n)| {
            if number != n {
                return Err(ListedPartsError::Order(n));
            }
            let etag = etag.trim();
            if etag.is_empty()
                || etag.len() > MAX_ETAG_LEN
                || !etag.bytes().all(|b| b.is_ascii_graphic())
            {
                return Err(ListedPartsError::Etag(n));
            }
            Ok((n, etag.to_owned()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `chunks` through a buffer of `part_size` the way the writer does: returns the parts
    /// taken (number, bytes) and what remains buffered.
    fn split(part_size: usize, chunks: &[&[u8]]) -> (Vec<Part>, Vec<u8>) {
        let mut b = PartBuffer::new(part_size);
        let mut parts = Vec::new();
        for chunk in chunks {
            let mut rest = *chunk;
            while !rest.is_empty() {
                let took = b.fill(rest);
                assert!(took > 0 || b.is_full());
                rest = &rest[took..];
                if b.is_full() {
                    parts.push(b.take_part().unwrap());
                }
            }
        }
        (parts, b.take_all())
    }

    #[test]
    fn parts_have_exact_sizes_and_keep_every_byte_in_order() {
        let data: Vec<u8> = (0..10_000u32).map(|i| (i * 7 % 251) as u8).collect();
        for part_size in [1, 7, 64, 1000, 4096, 10_000, 20_000] {
            for chunk_size in [1, 3, 100, 999, 5000, 10_000] {
                let chunks: Vec<&[u8]> = data.chunks(chunk_size).collect();
                let (parts, rest) = split(part_size, &chunks);
                assert_eq!(
                    parts.len(),
                    data.len() / part_size,
                    "{part_size}/{chunk_size}"
                );
                for (i, p) in parts.iter().enumerate() {
                    assert_eq!(p.number as usize, i + 1);
                    assert_eq!(p.bytes.len(), part_size);
                    assert_eq!(
                        p.crc32,
                        crc32fast::hash(&p.bytes),
                        "the CRC of exactly the part"
                    );
                }
                let mut joined: Vec<u8> = parts.into_iter().flat_map(|p| p.bytes).collect();
                assert_eq!(rest.len(), data.len() % part_size);
                joined.extend(rest);
                assert_eq!(joined, data, "{part_size}/{chunk_size}");
            }
        }
    }

    #[test]
    fn a_part_is_allocated_once_at_full_size() {
        let mut b = PartBuffer::new(1 << 20);
        assert_eq!(b.fill(&[]), 0);
        let mut seen = None;
        for _ in 0..1024 {
            assert_eq!(b.fill(&[1u8; 1024]), 1024);
            let ptr = b.buf.as_ptr();
            assert_eq!(*seen.get_or_insert(ptr), ptr, "the part buffer moved");
            assert_eq!(b.buf.capacity(), 1 << 20);
        }
        assert!(b.is_full());
        assert_eq!(b.fill(&[1, 2, 3]), 0, "a full part takes nothing");
        let p = b.take_part().unwrap();
        assert_eq!((p.number, p.bytes.len()), (1, 1 << 20));
        assert_eq!(p.crc32, crc32fast::hash(&[1u8; 1 << 20]));
        // The next part's memory is only allocated when bytes arrive.
        assert_eq!(b.buf.capacity(), 0);
        assert!(b.is_empty());
        b.fill(b"abc");
        b.clear();
        assert_eq!(b.parts_taken(), 1);
        b.fill(b"123456789");
        assert_eq!(
            b.take_part().unwrap().crc32,
            0xcbf4_3926,
            "a cleared part starts afresh"
        );
    }

    #[test]
    fn a_known_size_bounds_each_part_buffer() {
        let mut b = PartBuffer::new(1000);
        b.expect_at_most(2500);
        assert_eq!(
            b.capacity_for(10),
            1000,
            "more than a part to come: a whole part"
        );
        b.fill(&[7u8; 1000]);
        let first = b.take_part().unwrap();
        assert_eq!(first.bytes.capacity(), 1000);
        b.fill(&[7u8; 1000]);
        b.take_part().unwrap();
        assert_eq!(b.capacity_for(100), 500, "the last part: what is left");
        b.fill(&[7u8; 300]);
        assert_eq!(b.capacity_for(10), 500, "allocated once");
        b.fill(&[7u8; 200]);
        assert_eq!(b.take_all().capacity(), 500);
        // A small upload holds its own size, not a part.
        let mut small = PartBuffer::new(1 << 20);
        small.expect_at_most(100);
        small.fill(&[1u8; 60]);
        small.fill(&[1u8; 40]);
        let all = small.take_all();
        assert_eq!((all.len(), all.capacity()), (100, 100));
        // A bound that was wrong: the buffer grows, every byte is kept.
        let mut wrong = PartBuffer::new(1000);
        wrong.expect_at_most(10);
        assert_eq!(wrong.capacity_for(4), 10);
        wrong.fill(&[2u8; 4]);
        wrong.fill(&[3u8; 30]);
        let kept = wrong.take_all();
        assert_eq!(kept.len(), 34);
        assert_eq!(&kept[..5], &[2, 2, 2, 2, 3]);
        // Unknown size: whole parts, at least the chunk.
        let unknown = PartBuffer::new(1000);
        assert_eq!(unknown.capacity_for(10), 1000);
        let mut hinted = PartBuffer::new(1000);
        hinted.expect_at_most(0);
        assert_eq!(
            hinted.capacity_for(64),
            64,
            "at least the chunk that arrived"
        );
    }

    #[test]
    fn no_part_beyond_the_s3_limit() {
        let mut b = PartBuffer::new(1);
        for _ in 0..MAX_PARTS {
            b.fill(&[0]);
            b.take_part().unwrap();
        }
        b.fill(&[0]);
        assert!(b.take_part().is_err());
    }

    #[test]
    fn the_window_bounds_parts_in_flight_and_keeps_their_order() {
        let mut w: Window<&str> = Window::new(2);
        assert!(w.is_empty() && w.has_room());
        w.push(1, "a").unwrap();
        assert!(w.has_room());
        w.push(2, "b").unwrap();
        assert!(!w.has_room());
        assert!(w.push(3, "c").is_err(), "never more than depth in flight");
        assert_eq!(w.len(), 2);
        assert_eq!(w.pop_oldest(), Some((1, "a")));
        w.push(3, "c").unwrap();
        assert_eq!(w.pop_oldest(), Some((2, "b")));
        assert_eq!(w.pop_oldest(), Some((3, "c")));
        assert_eq!(w.pop_oldest(), None);
        // Depth 0 means 1: an upload can always start once nothing is in flight.
        let mut one: Window<()> = Window::new(0);
        one.push(1, ()).unwrap();
        assert!(!one.has_room());
    }

    #[test]
    fn completed_parts_are_listed_in_order_and_must_be_contiguous() {
        let mut c = CompletedParts::<String>::new();
        assert!(c.is_empty());
        assert_eq!(c.contiguous(0).unwrap(), &[] as &[(u32, String)]);
        c.insert(2, "\"b\"".into()).unwrap();
        assert!(c.contiguous(2).is_err(), "part 1 missing");
        c.insert(1, "\"a\"".into()).unwrap();
        c.insert(3, "\"c\"".into()).unwrap();
        assert!(c.insert(2, "\"x\"".into()).is_err(), "part 2 twice");
        assert_eq!(c.len(), 3);
        assert_eq!(
            c.contiguous(3).unwrap(),
            &[
                (1, "\"a\"".to_owned()),
                (2, "\"b\"".to_owned()),
                (3, "\"c\"".to_owned())
            ]
        );
        assert!(c.contiguous(4).is_err());
        assert!(c.contiguous(2).is_err());
        let mut gap = CompletedParts::<&str>::new();
        gap.insert(1, "a").unwrap();
        gap.insert(3, "c").unwrap();
        assert!(gap.contiguous(2).is_err());
    }

    #[test]
    fn part_plan_cuts_exactly() {
        const MIB: u64 = 1024 * 1024;
        let p = PartPlan::new(20 * MIB + 5, 8 * MIB).unwrap();
        assert_eq!((p.part_size, p.count), (8 * MIB, 3));
        assert_eq!(p.length(1), Some(8 * MIB));
        assert_eq!(p.length(3), Some(4 * MIB + 5));
        assert_eq!(p.length(0), None);
        assert_eq!(p.length(4), None);
        // A small object is one short part; the preferred size never goes under S3's minimum.
        let p = PartPlan::new(100, 1).unwrap();
        assert_eq!((p.part_size, p.count, p.length(1)), (5 * MIB, 1, Some(100)));
        // Too many parts at the preferred size: the part grows, in whole MiB.
        let p = PartPlan::new(200 * 1024 * MIB, 8 * MIB).unwrap();
        assert!(p.count <= MAX_PARTS);
        assert_eq!(p.part_size % MIB, 0);
        assert_eq!(PartPlan::new(0, 8 * MIB), None);
        assert_eq!(PartPlan::new(u64::MAX, 8 * MIB), None);
    }

    proptest::proptest! {
        #[test]
        fn part_plan_lengths_add_up(size in 1u64..(1u64 << 44), preferred in 0u64..(64 << 20)) {
            let p = PartPlan::new(size, preferred).unwrap();
            proptest::prop_assert!((1..=MAX_PARTS).contains(&p.count));
            proptest::prop_assert!(p.part_size >= crate::MIN_PART_SIZE as u64);
            let last = p.length(p.count).unwrap();
            proptest::prop_assert!(last >= 1 && last <= p.part_size);
            proptest::prop_assert_eq!(u64::from(p.count - 1) * p.part_size + last, size);
        }
    }

    #[test]
    fn listed_parts_must_be_all_in_order() {
        let p = |n: u32, e: &str| (n, e.to_owned());
        assert_eq!(
            listed_parts(vec![p(1, " \"a\" "), p(2, "\"b\"")], 2),
            Ok(vec![p(1, "\"a\""), p(2, "\"b\"")])
        );
        let cases = [
            (vec![p(1, "a")], ListedPartsError::Count),
            (
                vec![p(1, "a"), p(2, "b"), p(3, "c")],
                ListedPartsError::Count,
            ),
            (vec![p(2, "b"), p(1, "a")], ListedPartsError::Order(1)),
            (vec![p(1, "a"), p(1, "a")], ListedPartsError::Order(2)),
            (vec![p(1, "a"), p(2, "")], ListedPartsError::Etag(2)),
            (vec![p(1, "a"), p(2, "b c")], ListedPartsError::Etag(2)),
            (
                vec![p(1, &"x".repeat(MAX_ETAG_LEN + 1)), p(2, "b")],
                ListedPartsError::Etag(1),
            ),
        ];
        for (parts, want) in cases {
            assert_eq!(listed_parts(parts, 2), Err(want));
        }
    }
}
