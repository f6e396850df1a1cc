//! Connecting the native tools (`migrate`, `seed`, `users`, the scan worker) to Postgres the way Spin
//! connects the components (feature `native`): the URL's `sslmode` decides. `disable` is plain TCP;
//! `prefer` and `require` use TLS whenever the server offers it (`require` refuses a server that does
//! not) and always verify the server's certificate and name, against the system's roots plus, when
//! `PGSSLROOTCERT` names a PEM file (libpq's variable), the CAs in it. A managed Postgres with a
//! private CA needs only that variable.
//!
//! TLS is rustls (ring) through `tokio-postgres-rustls`, the stack the scan worker's HTTP client
//! already uses; the system roots come from `rustls-native-certs`.

use std::fmt;
use std::sync::Arc;

use tokio_postgres::config::SslMode;
use tokio_postgres::{Client, Config, NoTls};
use tokio_postgres_rustls::MakeRustlsConnect;

/// Why a connection could not be opened.
#[derive(Debug)]
pub enum ConnectError {
    /// The TLS settings are unusable (no roots, an unreadable `PGSSLROOTCERT`).
    Tls(String),
    /// Postgres (or the network, or the TLS handshake) said no.
    Postgres(tokio_postgres::Error),
}

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Tls(m) => write!(f, "TLS settings: {m}"),
            Self::Postgres(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for ConnectError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Tls(_) => None,
            Self::Postgres(e) => Some(e),
        }
    }
}

impl From<tokio_postgres::Error> for ConnectError {
    fn from(e: tokio_postgres::Error) -> Self {
        Self::Postgres(e)
    }
}

/// The TLS side of connections to one database: built once, used for every connection.
#[derive(Clone)]
pub enum PgTls {
    /// `sslmode=disable`.
    Plain,
    /// Verified TLS.
    Rustls(MakeRustlsConnect),
}

impl PgTls {
    /// What `config`'s `sslmode` asks for (`PGSSLROOTCERT` is read now).
    pub fn for_config(config: &Config) -> Result<Self, ConnectError> {
        if config.get_ssl_mode() == SslMode::Disable {
            return Ok(Self::Plain);
        }
        let extra = std::env::var_os("PGSSLROOTCERT").filter(|p| !p.is_empty());
        let roots = roots(extra.as_deref().map(std::path::Path::new))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| ConnectError::Tls(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Self::Rustls(MakeRustlsConnect::new(tls)))
    }

    /// Opens a connection and drives it on the current tokio runtime (a broken connection shows up
    /// as an error on the client's next call).
    pub async fn connect(&self, config: &Config) -> Result<Client, tokio_postgres::Error> {
        match self {
            Self::Plain => {
                let (client, connection) = config.connect(NoTls).await?;
                tokio::spawn(async move {
                    let _ = connection.await;
                });
                Ok(client)
            }
            Self::Rustls(tls) => {
                let (client, connection) = config.connect(tls.clone()).await?;
                tokio::spawn(async move {
                    let _ = connection.await;
                });
                Ok(client)
            }
        }
    }
}

/// [`PgTls::for_config`] then [`PgTls::connect`], for a one-off connection.
pub async fn connect(config: &Config) -> Result<Client, ConnectError> {
    Ok(PgTls::for_config(config)?.connect(config).await?)
}

/// The system's roots and the certificates of `extra` (PEM).
fn roots(extra: Option<&std::path::Path>) -> Result<rustls::RootCertStore, ConnectError> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut store = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    let (added, _ignored) = store.add_parsable_certificates(native.certs);
    if let Some(path) = extra {
        let certs = CertificateDer::pem_file_iter(path)
            .and_then(|it| it.collect::<Result<Vec<_>, _>>())
            .map_err(|e| ConnectError::Tls(format!("PGSSLROOTCERT {}: {e}", path.display())))?;
        if certs.is_empty() {
            return Err(ConnectError::Tls(format!(
                "PGSSLROOTCERT {}: no certificate in it",
                path.display()
            )));
        }
        for cert in certs {
            store
                .add(cert)
                .map_err(|e| ConnectError::Tls(format!("PGSSLROOTCERT {}: {e}", path.display())))?;
        }
    } else if added == 0 {
        return Err(ConnectError::Tls(
            "no system root certificates found; set PGSSLROOTCERT to the server's CA (PEM)".into(),
        ));
    }
    Ok(store)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sslmode_disable_is_plain_and_the_others_are_verified_tls() {
        let plain: Config = "postgres://u@127.0.0.1/db?sslmode=disable".parse().unwrap();
        assert!(matches!(PgTls::for_config(&plain), Ok(PgTls::Plain)));
        for url in ["postgres://u@db/x?sslmode=require", "postgres://u@db/x"] {
            let config: Config = url.parse().unwrap();
            // The machine's roots (ca-certificates) are enough.
            assert!(
                matches!(PgTls::for_config(&config), Ok(PgTls::Rustls(_))),
                "{url}"
            );
        }
    }

    #[test]
    fn a_bad_root_file_is_a_clear_error() {
        let dir = std::env::temp_dir().join(format!("store-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let e = roots(Some(&empty)).unwrap_err().to_string();
        assert!(e.contains("no certificate"), "{e}");
        let e = roots(Some(&dir.join("missing.pem")))
            .unwrap_err()
            .to_string();
        assert!(e.contains("PGSSLROOTCERT"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn require_against_a_server_without_a_matching_certificate_fails_verification() {
        // The local Postgres (scripts: 127.0.0.1) either offers no TLS or a certificate not made for
        // 127.0.0.1: with require, neither may connect.
        let url = std::env::var("PG_ADMIN_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
        let mut config: Config = url.parse().unwrap();
        config.ssl_mode(SslMode::Require);
        assert!(connect(&config).await.is_err());
        config.ssl_mode(SslMode::Disable);
        let client = connect(&config).await.expect("plain to the local Postgres");
        client.simple_query("SELECT 1").await.unwrap();
    }
}
