//! Checks of deployment settings whose mistakes the host would only report as a failure of every
//! outbound call: caught once, when a component loads its configuration, and answered as `500
//! misconfigured` naming the setting in the log.

/// The `sslmode` values Spin's Postgres client (tokio-postgres) accepts. With `prefer` and `require`
/// it verifies the server's certificate against the system roots (or `db_ca_root`); libpq's
/// `verify-ca` and `verify-full` are not understood and would fail every connection.
pub const SSLMODES: &[&str] = &["disable", "prefer", "require"];

/// A `postgres://` URL's `sslmode`, if any, is one [`SSLMODES`] names.
pub fn check_database_url(url: &str) -> Result<(), String> {
    let query = url.split_once('?').map_or("", |(_, q)| q);
    for pair in query.split('&') {
        if let Some(mode) = pair.strip_prefix("sslmode=")
            && !SSLMODES.contains(&mode)
        {
            return Err(format!(
                "sslmode {mode:?} is not one of {}",
                SSLMODES.join(", ")
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sslmodes_spin_understands_pass() {
        for mode in SSLMODES {
            assert_eq!(
                check_database_url(&format!("postgres://u:p@db:5432/a?sslmode={mode}")),
                Ok(())
            );
        }
        assert_eq!(check_database_url("postgres://u:p@db:5432/a"), Ok(()));
    }

    #[test]
    fn libpq_only_modes_and_typos_are_refused() {
        for mode in ["verify-full", "verify-ca", "allow", "", "Require"] {
            let e =
                check_database_url(&format!("postgres://u:p@db/a?x=1&sslmode={mode}")).unwrap_err();
            assert!(e.contains("disable, prefer, require"), "{e}");
        }
    }
}
