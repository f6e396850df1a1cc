//! Key material for development and operations. Prints to stdout; secrets never go to stderr.
//!
//! ```text
//! keygen                       a new signing key ring (auth_signing_keys), one Ed25519 key, active
//! keygen rotate [--stage] [--keep N]
//!                              reads a ring on stdin, adds a new key (active unless --stage),
//!                              keeps the newest N keys (default 2), prints the new ring
//! keygen jwks                  reads a ring on stdin, prints its public JWKS
//!                              (usable as auth_verification_keys)
//! keygen context-key           a new internal context key (auth_context_key)
//! ```

use std::io::Read;
use std::process::ExitCode;

use auth_core::keys::{self, KeyRing};
use auth_core::{ContextKey, unix_now};

fn read_stdin_ring() -> Result<KeyRing, String> {
    let mut s = String::new();
    std::io::stdin()
        .read_to_string(&mut s)
        .map_err(|e| format!("reading stdin: {e}"))?;
    KeyRing::from_json(&s).map_err(|e| e.to_string())
}

fn run(args: &[String]) -> Result<String, String> {
    match args.first().map(String::as_str) {
        None | Some("ring") => keys::generate_keyring_json().map_err(|e| e.to_string()),
        Some("rotate") => {
            let mut activate = true;
            let mut keep = 2usize;
            let mut it = args[1..].iter();
            while let Some(a) = it.next() {
                match a.as_str() {
                    "--stage" => activate = false,
                    "--keep" => {
                        keep = it
                            .next()
                            .and_then(|n| n.parse().ok())
                            .filter(|n| *n >= 1)
                            .ok_or("--keep needs a number >= 1")?;
                    }
                    other => return Err(format!("unknown option {other}")),
                }
            }
            let mut ring = read_stdin_ring()?;
            let kid = keys::new_kid(unix_now()).map_err(|e| e.to_string())?;
            ring.rotate(&kid, activate, keep)
                .map_err(|e| e.to_string())?;
            Ok(ring.to_config_json())
        }
        Some("jwks") => Ok(read_stdin_ring()?.jwks_json()),
        Some("context-key") => ContextKey::generate()
            .map(|k| k.to_config_string())
            .map_err(|e| e.to_string()),
        Some("-h" | "--help" | "help") => Ok(USAGE.trim().to_owned()),
        Some(other) => Err(format!("unknown command {other}\n{}", USAGE.trim())),
    }
}

const USAGE: &str = "
usage: keygen [ring]                      new signing key ring (JSON)
       keygen rotate [--stage] [--keep N] ring on stdin -> ring with a new key
       keygen jwks                        ring on stdin -> public JWKS
       keygen context-key                 new internal context key
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(out) => {
            println!("{out}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("keygen: {e}");
            ExitCode::from(2)
        }
    }
}
