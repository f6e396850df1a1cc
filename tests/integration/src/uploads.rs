//! Uploads as a client makes them, for tests that move whole files: a fresh tenant's user with a
//! token, the direct-to-storage path (create the session, `PUT` each part to its URL, complete),
//! the tus path (`POST`, then `PATCH` chunks), the attachment as its owner sees it, and downloads
//! hashed as they arrive. Content is [`Noise`], generated in order as it is sent: a test of a
//! large file holds one part in memory, never the file.

use std::io::Read;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use reqwest::blocking::Client;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::{Reply, Stack, Tenant, User, client, login, send};

/// Pseudo-random bytes (xorshift64), generated in order: the same seed gives the same content.
pub struct Noise {
    state: u64,
    left: u64,
    hash: Sha256,
}

impl Noise {
    /// `len` bytes from `seed`.
    pub fn new(seed: u64, len: u64) -> Self {
        Self {
            state: seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1,
            left: len,
            hash: Sha256::new(),
        }
    }

    /// The next `n` bytes (fewer at the end).
    pub fn take(&mut self, n: usize) -> Vec<u8> {
        let n = n.min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let mut out = Vec::with_capacity(n + 8);
        while out.len() < n {
            self.state ^= self.state << 13;
            self.state ^= self.state >> 7;
            self.state ^= self.state << 17;
            out.extend_from_slice(&self.state.to_le_bytes());
        }
        out.truncate(n);
        self.left -= n as u64;
        self.hash.update(&out);
        out
    }

    /// The SHA-256 (hex) of everything taken so far.
    pub fn sha256_hex(&self) -> String {
        hex(&self.hash.clone().finalize())
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A seeded tenant's first user, logged in.
pub struct Uploader {
    pub tenant: Tenant,
    pub user: User,
    pub token: String,
}

impl Default for Uploader {
    fn default() -> Self {
        Self::new()
    }
}

impl Uploader {
    /// A fresh tenant's first user.
    pub fn new() -> Self {
        let mut seed = Stack::get().seed();
        let tenant = seed.tenants.remove(0);
        let user = tenant.user(0).clone();
        let token = login(&client(), &Stack::get().base_url, &user).access;
        Self {
            tenant,
            user,
            token,
        }
    }

    /// The user's first message.
    pub fn message(&self) -> String {
        self.tenant.message_of(&self.user, 0).id.clone()
    }

    /// `GET path` with the user's token.
    pub fn get(&self, path: &str) -> Reply {
        send(
            client()
                .get(Stack::get().url(path))
                .bearer_auth(&self.token),
        )
    }

    /// A direct upload of `len` bytes of `content` named `name`: the session (`201`), every part
    /// `PUT` straight to storage, then `complete` (`202`); the session as created.
    pub fn direct(&self, name: &str, content: &mut Noise, len: u64) -> Value {
        self.direct_with(name, len, None, |size| content.take(size))
    }

    /// A direct upload of `len` bytes named `name`, claiming `claimed_sha` when given, each part's
    /// bytes from `next_part(its size)` in order; the session as created (after `202 verifying`).
    pub fn direct_with(
        &self,
        name: &str,
        len: u64,
        claimed_sha: Option<&str>,
        mut next_part: impl FnMut(usize) -> Vec<u8>,
    ) -> Value {
        let mut claims = json!({"filename": name, "size": len});
        if let Some(h) = claimed_sha {
            claims["sha256"] = json!(h);
        }
        let r = send(
            client()
                .post(Stack::get().url(&format!("/api/v1/emails/{}/uploads", self.message())))
                .bearer_auth(&self.token)
                .json(&claims),
        );
        assert_eq!(r.status, 201, "create {name}: {r:?}");
        let session = r.json();
        let storage = client();
        let mut parts = Vec::new();
        for p in session["parts"].as_array().expect("parts") {
            let size = p["size"].as_u64().expect("part size") as usize;
            let res = storage
                .put(p["url"].as_str().expect("part url"))
                .body(next_part(size))
                .send()
                .expect("PUT part");
            assert_eq!(
                res.status().as_u16(),
                200,
                "part {} of {name}",
                p["partNumber"]
            );
            let etag = res.headers()["etag"].to_str().expect("etag").to_owned();
            parts.push(json!({"partNumber": p["partNumber"], "etag": etag}));
        }
        let upload = session["uploadId"].as_str().expect("uploadId");
        let done = send(
            client()
                .post(Stack::get().url(&format!("/api/v1/uploads/{upload}/complete")))
                .bearer_auth(&self.token)
                .json(&json!({ "parts": parts })),
        );
        assert_eq!(done.status, 202, "complete {name}: {done:?}");
        session
    }

    /// Creates a tus upload of `len` bytes named `name`; its URL.
    pub fn tus_create(&self, name: &str, len: u64) -> String {
        let r = send(
            client()
                .post(Stack::get().url(&format!("/api/v1/emails/{}/tus", self.message())))
                .bearer_auth(&self.token)
                .header("tus-resumable", "1.0.0")
                .header("upload-length", len.to_string())
                .header(
                    "upload-metadata",
                    format!("filename {}", STANDARD.encode(name)),
                ),
        );
        assert_eq!(r.status, 201, "tus create {name}: {r:?}");
        Stack::get().url(r.header("location").expect("Location"))
    }

    /// `PATCH`es `chunk` at `offset` of the tus upload at `url` (with its `Upload-Checksum` when
    /// `checksum`), on `c`.
    pub fn tus_patch(
        &self,
        c: &Client,
        url: &str,
        offset: u64,
        chunk: Vec<u8>,
        checksum: bool,
    ) -> Reply {
        let mut rb = c
            .patch(url)
            .bearer_auth(&self.token)
            .header("tus-resumable", "1.0.0")
            .header("upload-offset", offset.to_string())
            .header("content-type", "application/offset+octet-stream");
        if checksum {
            rb = rb.header(
                "upload-checksum",
                format!("sha256 {}", STANDARD.encode(Sha256::digest(&chunk))),
            );
        }
        send(rb.body(chunk))
    }

    /// The attachment `id` as its owner sees it.
    pub fn attachment(&self, id: &str) -> Value {
        let r = self.get(&format!("/api/v1/attachments/{id}"));
        assert_eq!(r.status, 200, "attachment {id}: {r:?}");
        r.json()
    }

    /// Downloads attachment `id` through a freshly issued signed URL, following the redirect to
    /// storage when there is one: the status, the length and SHA-256 (hex) of what arrived.
    pub fn download_digest(&self, id: &str) -> (u16, u64, String) {
        let r = send(
            client()
                .post(Stack::get().url(&format!("/api/v1/attachments/{id}/download-url")))
                .bearer_auth(&self.token)
                .json(&json!({})),
        );
        assert_eq!(r.status, 200, "download-url: {r:?}");
        let mut res = client()
            .get(r.json()["url"].as_str().expect("url"))
            .send()
            .expect("download");
        if res.status().is_redirection() {
            let to = res.headers()["location"]
                .to_str()
                .expect("Location")
                .to_owned();
            res = client().get(to).send().expect("download from storage");
        }
        let status = res.status().as_u16();
        let mut hash = Sha256::new();
        let mut len = 0u64;
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = res.read(&mut buf).expect("reading the download");
            if n == 0 {
                break;
            }
            hash.update(&buf[..n]);
            len += n as u64;
        }
        (status, len, hex(&hash.finalize()))
    }
}
