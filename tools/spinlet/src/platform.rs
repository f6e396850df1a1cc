//! The limits of the production platforms, so that a path that cannot work there fails here too.
//!
//! Fermyon Wasm Functions / Akamai Functions publish these quotas: a request body and a response body of
//! 10 MiB, 30 s per request, 128 MiB of memory per instance. With `--platform fermyon-wasm-functions` the
//! runner enforces them the way a platform in front of the app does, before or around the component:
//!
//! - a request whose `Content-Length` is over the cap is answered `413` before the component runs; a
//!   body without a length (chunked) that grows past it ends for the component with an error, and the
//!   client gets `413` instead of whatever the component answered;
//! - a response that declares a length over the cap is replaced by a `500`; one without a length is cut
//!   when it passes the cap (the connection is closed mid-body);
//! - the request time and instance memory are the runner's `--request-timeout` and memory limit.
//!
//! The answers are plain text and name the limit: the platforms' own pages are not documented, so a
//! client (and our tests) can rely on the status only.

use std::time::Duration;

/// A named set of limits (`--platform`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Platform {
    /// No platform: the runner's own defaults, no body caps.
    None,
    /// Fermyon Wasm Functions, also sold as Akamai Functions.
    FermyonWasmFunctions,
}

/// What a platform caps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caps {
    pub max_request_body: u64,
    pub max_response_body: u64,
    pub request_timeout: Duration,
    pub max_memory: usize,
}

impl Platform {
    /// Its caps (`None` for no platform).
    pub fn caps(self) -> Option<Caps> {
        match self {
            Platform::None => None,
            Platform::FermyonWasmFunctions => Some(Caps {
                max_request_body: 10 << 20,
                max_response_body: 10 << 20,
                request_timeout: Duration::from_secs(30),
                max_memory: 128 << 20,
            }),
        }
    }
}

impl std::str::FromStr for Platform {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "none" | "" => Ok(Platform::None),
            "fermyon-wasm-functions" | "akamai-functions" => Ok(Platform::FermyonWasmFunctions),
            other => Err(format!(
                "unknown platform {other:?}: none, fermyon-wasm-functions (akamai-functions)"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_functions_platform_caps_bodies_time_and_memory() {
        let caps = "akamai-functions"
            .parse::<Platform>()
            .unwrap()
            .caps()
            .unwrap();
        assert_eq!(caps.max_request_body, 10 * 1024 * 1024);
        assert_eq!(caps.max_response_body, 10 * 1024 * 1024);
        assert_eq!(caps.request_timeout, Duration::from_secs(30));
        assert_eq!(caps.max_memory, 128 * 1024 * 1024);
        assert_eq!("none".parse::<Platform>().unwrap().caps(), None);
        assert!("fermyon-cloud".parse::<Platform>().is_err());
    }
}
