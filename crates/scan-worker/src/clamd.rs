//! The clamd protocol, as far as the worker speaks it: `zPING`, `zVERSION` and `zINSTREAM`.
//!
//! Commands use the `z` prefix: the command and clamd's answer both end with a NUL byte. INSTREAM
//! sends the content as chunks, each a 4-byte big-endian length followed by that many bytes, and a
//! zero length to finish; clamd answers once with `stream: OK`, `stream: <name> FOUND`, or a line
//! ending in `ERROR` (`INSTREAM size limit exceeded. ERROR` when the stream passes its
//! `StreamMaxLength`, after which it closes the connection).
//!
//! Framing and answer parsing are pure ([`frame_header`], [`parse_answer`]); [`Clamd`] does the I/O
//! with bounded memory: one chunk of the source at a time, split into frames of at most
//! [`MAX_FRAME`] bytes.

use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufWriter};
use tokio::net::TcpStream;

/// Largest INSTREAM frame we send (clamd accepts frames up to its StreamMaxLength).
pub const MAX_FRAME: usize = 256 * 1024;
/// The zero-length frame that ends a stream.
pub const TERMINATOR: [u8; 4] = [0, 0, 0, 0];
/// Longest answer we read: a threat name and a few words.
const MAX_ANSWER: usize = 4096;

/// The 4-byte big-endian length that precedes a chunk of `len` bytes.
pub fn frame_header(len: usize) -> [u8; 4] {
    u32::try_from(len)
        .expect("frames are at most MAX_FRAME bytes")
        .to_be_bytes()
}

/// `data` as INSTREAM frames of at most `max_frame` bytes (empty input: no frame). For tests and
/// small buffers; [`Clamd::instream`] writes the same frames without collecting them.
pub fn frames(data: &[u8], max_frame: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 4 * (data.len() / max_frame.max(1) + 1));
    for chunk in data.chunks(max_frame.max(1)) {
        out.extend_from_slice(&frame_header(chunk.len()));
        out.extend_from_slice(chunk);
    }
    out
}

/// What clamd said about a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// `stream: OK`: no signature matched.
    Clean,
    /// `stream: <name> FOUND`: the signature's name, as clamd reports it (ours end in `.UNOFFICIAL`).
    Found(String),
    /// The stream exceeded clamd's `StreamMaxLength`.
    SizeLimit,
    /// Any other `... ERROR` answer (clamd could not scan: out of memory, a temporary file, ...).
    Error(String),
}

/// An answer we do not understand.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unexpected clamd answer {0:?}")]
pub struct Unparseable(pub String);

/// Parses one answer (without or with its trailing NUL / newline).
pub fn parse_answer(raw: &[u8]) -> Result<Answer, Unparseable> {
    let text = String::from_utf8_lossy(raw);
    let line = text.trim_end_matches(['\0', '\n', '\r']).trim();
    let unparseable = || Unparseable(line.chars().take(200).collect());
    if let Some(msg) = line.strip_suffix(" ERROR") {
        let msg = msg.trim().trim_end_matches(':').trim();
        let msg = msg.strip_prefix("stream:").map(str::trim).unwrap_or(msg);
        if msg.to_ascii_lowercase().contains("size limit") {
            return Ok(Answer::SizeLimit);
        }
        return Ok(Answer::Error(msg.to_owned()));
    }
    // With IDSESSION clamd prefixes answers with "<n>: "; we do not use sessions, but the stream
    // part is the same, so look for it rather than requiring it at the start.
    let body = match line.find("stream: ") {
        Some(i) => &line[i + "stream: ".len()..],
        None => return Err(unparseable()),
    };
    if body == "OK" {
        return Ok(Answer::Clean);
    }
    if let Some(name) = body.strip_suffix(" FOUND") {
        let name = name.trim();
        if !name.is_empty() && !name.contains(char::is_whitespace) {
            return Ok(Answer::Found(name.to_owned()));
        }
    }
    Err(unparseable())
}

/// Why a scan did not produce an [`Answer`].
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    #[error("clamd at {addr}: {what}: {source}")]
    Io {
        addr: String,
        what: &'static str,
        source: std::io::Error,
    },
    #[error("clamd at {addr}: no answer within {secs} s")]
    Timeout { addr: String, secs: u64 },
    #[error("clamd at {0}: closed the connection without an answer")]
    NoAnswer(String),
    #[error("clamd at {addr}: {source}")]
    Unparseable { addr: String, source: Unparseable },
    /// The source delivered more than the cap: nothing was decided, the caller reports it.
    #[error("content larger than {cap} bytes")]
    TooLarge { cap: u64 },
    /// Reading the content failed (storage).
    #[error("reading the content: {0}")]
    Source(String),
}

/// Where the content comes from, one chunk at a time (an HTTP body, or bytes in tests).
pub trait ChunkSource {
    /// The next chunk, `None` at the end.
    fn next_chunk(
        &mut self,
    ) -> impl std::future::Future<Output = Result<Option<Bytes>, String>> + Send;
}

impl ChunkSource for reqwest::Response {
    async fn next_chunk(&mut self) -> Result<Option<Bytes>, String> {
        self.chunk().await.map_err(|e| format!("{e}"))
    }
}

/// In-memory chunks (tests).
pub struct Chunks(pub std::collections::VecDeque<Bytes>);

impl ChunkSource for Chunks {
    async fn next_chunk(&mut self) -> Result<Option<Bytes>, String> {
        Ok(self.0.pop_front())
    }
}

/// A clamd reachable over TCP.
#[derive(Debug, Clone)]
pub struct Clamd {
    addr: String,
    /// Bounds connecting and waiting for an answer.
    timeout: Duration,
}

impl Clamd {
    pub fn new(addr: impl Into<String>, timeout: Duration) -> Self {
        Self {
            addr: addr.into(),
            timeout,
        }
    }

    pub fn addr(&self) -> &str {
        &self.addr
    }

    fn io(&self, what: &'static str) -> impl FnOnce(std::io::Error) -> ScanError + '_ {
        move |source| ScanError::Io {
            addr: self.addr.clone(),
            what,
            source,
        }
    }

    async fn connect(&self) -> Result<TcpStream, ScanError> {
        let stream = tokio::time::timeout(self.timeout, TcpStream::connect(&self.addr))
            .await
            .map_err(|_| ScanError::Timeout {
                addr: self.addr.clone(),
                secs: self.timeout.as_secs(),
            })?
            .map_err(self.io("connect"))?;
        stream.set_nodelay(true).map_err(self.io("connect"))?;
        Ok(stream)
    }

    /// Reads one NUL-terminated answer (or up to EOF).
    async fn read_answer(
        &self,
        stream: &mut TcpStream,
        limit: Duration,
    ) -> Result<Vec<u8>, ScanError> {
        let read = async {
            let mut answer = Vec::with_capacity(64);
            let mut buf = [0u8; 512];
            loop {
                let n = stream.read(&mut buf).await?;
                if n == 0 {
                    break;
                }
                answer.extend_from_slice(&buf[..n]);
                if answer.contains(&0) || answer.len() >= MAX_ANSWER {
                    break;
                }
            }
            Ok::<_, std::io::Error>(answer)
        };
        let answer = tokio::time::timeout(limit, read)
            .await
            .map_err(|_| ScanError::Timeout {
                addr: self.addr.clone(),
                secs: limit.as_secs(),
            })?
            .map_err(self.io("reading the answer"))?;
        if answer.is_empty() {
            return Err(ScanError::NoAnswer(self.addr.clone()));
        }
        let end = answer.iter().position(|&b| b == 0).unwrap_or(answer.len());
        Ok(answer[..end].to_vec())
    }

    async fn simple(&self, command: &[u8]) -> Result<String, ScanError> {
        let mut stream = self.connect().await?;
        stream
            .write_all(command)
            .await
            .map_err(self.io("sending a command"))?;
        let answer = self.read_answer(&mut stream, self.timeout).await?;
        Ok(String::from_utf8_lossy(&answer).trim().to_owned())
    }

    /// `PING` → `PONG`.
    pub async fn ping(&self) -> Result<bool, ScanError> {
        Ok(self.simple(b"zPING\0").await? == "PONG")
    }

    /// `VERSION`: e.g. `ClamAV 1.4.6` or `ClamAV 1.4.6/27484/Sun Nov 22 08:24:01 2026` (engine/database).
    pub async fn version(&self) -> Result<String, ScanError> {
        self.simple(b"zVERSION\0").await
    }

    /// Streams `source` to clamd with INSTREAM and returns its answer. Stops with
    /// [`ScanError::TooLarge`] (nothing sent past the cap, no answer awaited) when the source delivers
    /// more than `cap` bytes. Memory: one source chunk plus a 64 KiB write buffer.
    pub async fn instream(
        &self,
        source: &mut impl ChunkSource,
        cap: u64,
    ) -> Result<Answer, ScanError> {
        let mut stream = self.connect().await?;
        let written = {
            let mut w = BufWriter::with_capacity(64 * 1024, &mut stream);
            async {
                w.write_all(b"zINSTREAM\0").await?;
                let mut total: u64 = 0;
                while let Some(chunk) = source.next_chunk().await.map_err(SendError::Source)? {
                    total += chunk.len() as u64;
                    if total > cap {
                        return Err(SendError::TooLarge);
                    }
                    for frame in chunk.chunks(MAX_FRAME) {
                        w.write_all(&frame_header(frame.len())).await?;
                        w.write_all(frame).await?;
                    }
                }
                w.write_all(&TERMINATOR).await?;
                w.flush().await?;
                Ok(())
            }
            .await
        };
        match written {
            Ok(()) => {}
            Err(SendError::TooLarge) => return Err(ScanError::TooLarge { cap }),
            Err(SendError::Source(e)) => return Err(ScanError::Source(e)),
            // clamd closes the connection as soon as a stream passes StreamMaxLength; its answer
            // may still be waiting to be read.
            Err(SendError::Io(e)) => {
                return match self.read_answer(&mut stream, Duration::from_secs(2)).await {
                    Ok(raw) => match parse_answer(&raw) {
                        Ok(answer @ (Answer::SizeLimit | Answer::Error(_))) => Ok(answer),
                        _ => Err(ScanError::Io {
                            addr: self.addr.clone(),
                            what: "streaming",
                            source: e,
                        }),
                    },
                    Err(_) => Err(ScanError::Io {
                        addr: self.addr.clone(),
                        what: "streaming",
                        source: e,
                    }),
                };
            }
        }
        let raw = self.read_answer(&mut stream, self.timeout).await?;
        parse_answer(&raw).map_err(|source| ScanError::Unparseable {
            addr: self.addr.clone(),
            source,
        })
    }
}

enum SendError {
    Io(std::io::Error),
    Source(String),
    TooLarge,
}

impl From<std::io::Error> for SendError {
    fn from(e: std::io::Error) -> Self {
        SendError::Io(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;
    use tokio::net::TcpListener;

    #[test]
    fn frame_headers_are_big_endian_lengths() {
        assert_eq!(frame_header(0), TERMINATOR);
        assert_eq!(frame_header(1), [0, 0, 0, 1]);
        assert_eq!(frame_header(0x0102_0304), [1, 2, 3, 4]);
        assert_eq!(
            frames(b"abcde", 2),
            b"\0\0\0\x02ab\0\0\0\x02cd\0\0\0\x01e".to_vec()
        );
        assert!(frames(b"", 2).is_empty());
    }

    #[test]
    fn parses_answers() {
        assert_eq!(parse_answer(b"stream: OK\0"), Ok(Answer::Clean));
        assert_eq!(parse_answer(b"stream: OK\n"), Ok(Answer::Clean));
        assert_eq!(
            parse_answer(b"stream: Attachments.Test.EICAR.UNOFFICIAL FOUND\0"),
            Ok(Answer::Found("Attachments.Test.EICAR.UNOFFICIAL".into()))
        );
        assert_eq!(
            parse_answer(b"1: stream: Win.Test.EICAR_HDB-1 FOUND"),
            Ok(Answer::Found("Win.Test.EICAR_HDB-1".into()))
        );
        assert_eq!(
            parse_answer(b"INSTREAM size limit exceeded. ERROR\0"),
            Ok(Answer::SizeLimit)
        );
        assert_eq!(
            parse_answer(b"stream: Can't allocate memory ERROR"),
            Ok(Answer::Error("Can't allocate memory".into()))
        );
        for bad in [
            &b""[..],
            b"\0",
            b"PONG",
            b"stream: ",
            b"stream: FOUND",
            b"stream: two words FOUND",
            b"stream: MAYBE",
        ] {
            assert!(
                parse_answer(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    /// A fake clamd that records what it received and answers `answer`.
    async fn fake(answer: &'static [u8]) -> (String, tokio::task::JoinHandle<Vec<u8>>) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap().to_string();
        let h = tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut got = Vec::new();
            let mut buf = [0u8; 4096];
            // Read the command, then frames until the terminator.
            loop {
                let n = s.read(&mut buf).await.unwrap();
                if n == 0 {
                    break;
                }
                got.extend_from_slice(&buf[..n]);
                if got.len() >= 14 && got.ends_with(&TERMINATOR) && frames_complete(&got[10..]) {
                    break;
                }
            }
            s.write_all(answer).await.unwrap();
            got
        });
        (addr, h)
    }

    fn frames_complete(mut b: &[u8]) -> bool {
        loop {
            if b.len() < 4 {
                return false;
            }
            let n = u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize;
            if n == 0 {
                return b.len() == 4;
            }
            if b.len() < 4 + n {
                return false;
            }
            b = &b[4 + n..];
        }
    }

    fn chunks(parts: &[&[u8]]) -> Chunks {
        Chunks(
            parts
                .iter()
                .map(|p| Bytes::copy_from_slice(p))
                .collect::<VecDeque<_>>(),
        )
    }

    #[tokio::test]
    async fn instream_frames_the_content_and_reads_the_verdict() {
        let (addr, h) = fake(b"stream: Some.Thing FOUND\0").await;
        let big = vec![7u8; MAX_FRAME + 10];
        let c = Clamd::new(addr, Duration::from_secs(5));
        let answer = c
            .instream(&mut chunks(&[b"abc", &big, b""]), 1 << 20)
            .await
            .unwrap();
        assert_eq!(answer, Answer::Found("Some.Thing".into()));
        let got = h.await.unwrap();
        let mut want = b"zINSTREAM\0".to_vec();
        want.extend(frames(b"abc", MAX_FRAME));
        want.extend(frames(&big, MAX_FRAME));
        want.extend(TERMINATOR);
        assert_eq!(got, want);
    }

    #[tokio::test]
    async fn instream_stops_at_the_cap_without_a_verdict() {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap().to_string();
        let c = Clamd::new(addr, Duration::from_secs(5));
        let r = c.instream(&mut chunks(&[b"12345", b"67890"]), 9).await;
        assert!(matches!(r, Err(ScanError::TooLarge { cap: 9 })), "{r:?}");
        drop(l);
    }

    #[tokio::test]
    async fn silent_clamd_times_out_and_closed_port_fails() {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap().to_string();
        let c = Clamd::new(addr.clone(), Duration::from_millis(300));
        let r = c.instream(&mut chunks(&[b"x"]), 10).await;
        assert!(matches!(r, Err(ScanError::Timeout { .. })), "{r:?}");
        drop(l);
        let r = Clamd::new(addr, Duration::from_secs(1)).ping().await;
        assert!(matches!(r, Err(ScanError::Io { .. })), "{r:?}");
    }
}
