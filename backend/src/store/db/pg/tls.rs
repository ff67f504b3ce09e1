//! TLS to PostgreSQL: what the database URL asks for (`sslmode`, `sslrootcert`, as libpq
//! spells them), and the rustls connector that does it. Encryption is always verified: the
//! server's certificate must chain to `sslrootcert` (or, without it, to the web PKI roots) and
//! name the host connected to. libpq's `prefer` and `allow`, which fall back to plain text
//! without saying so, are refused.

use crate::error::StoreError;
use postgres::config::SslMode;
use tokio_postgres_rustls::MakeRustlsConnect;

/// The TLS a database URL asks for, and the URL without the parameters handled here.
pub(super) struct Tls {
    /// The URL or conninfo, minus `sslmode` and `sslrootcert` (the driver rejects the latter).
    pub(super) url: String,
    pub(super) mode: SslMode,
    pub(super) connector: MakeRustlsConnect,
}

fn bad(msg: impl std::fmt::Display) -> StoreError {
    StoreError::Postgres(format!("the database URL: {msg}"))
}

/// Splits `sslmode` and `sslrootcert` out of a `postgres://…?…` URL or a `key=value` conninfo.
fn take_params(url: &str) -> Result<(String, Option<String>, Option<String>), StoreError> {
    let (mut mode, mut root) = (None, None);
    let mut take = |k: &str, v: &str| match k {
        "sslmode" => {
            mode = Some(v.to_owned());
            true
        }
        "sslrootcert" => {
            root = Some(v.to_owned());
            true
        }
        _ => false,
    };
    if url.contains("://") {
        let Some((base, query)) = url.split_once('?') else {
            return Ok((url.to_owned(), None, None));
        };
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query).map_err(bad)?;
        let rest: Vec<(String, String)> = pairs.into_iter().filter(|(k, v)| !take(k, v)).collect();
        let rest = serde_urlencoded::to_string(&rest).map_err(bad)?;
        let url = if rest.is_empty() {
            base.to_owned()
        } else {
            format!("{base}?{rest}")
        };
        return Ok((url, mode, root));
    }
    let rest: Vec<&str> = url
        .split_whitespace()
        .filter(|kv| {
            kv.split_once('=')
                .is_none_or(|(k, v)| !take(k.trim(), v.trim()))
        })
        .collect();
    Ok((rest.join(" "), mode, root))
}

/// The roots a server certificate must chain to: the PEM certificates of `sslrootcert`, or the
/// web PKI's.
fn roots(root: Option<&str>) -> Result<rustls::RootCertStore, StoreError> {
    let mut store = rustls::RootCertStore::empty();
    match root {
        None => store.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        Some(path) => {
            use rustls::pki_types::pem::PemObject;
            let certs = rustls::pki_types::CertificateDer::pem_file_iter(path)
                .map_err(|e| bad(format!("sslrootcert {path}: {e}")))?;
            for cert in certs {
                let cert = cert.map_err(|e| bad(format!("sslrootcert {path}: {e}")))?;
                store
                    .add(cert)
                    .map_err(|e| bad(format!("sslrootcert {path}: {e}")))?;
            }
            if store.is_empty() {
                return Err(bad(format!("sslrootcert {path} holds no certificate")));
            }
        }
    }
    Ok(store)
}

/// What `url` asks for: no `sslmode` (or `disable`) is a plain connection, for loopback or a
/// private network; `require`, `verify-ca` and `verify-full` are TLS verified as above;
/// `sslrootcert` alone means `verify-full`.
pub(super) fn from_url(url: &str) -> Result<Tls, StoreError> {
    let (url, mode, root) = take_params(url)?;
    let mode = match (mode.as_deref(), &root) {
        (None, None) | (Some("disable"), _) => SslMode::Disable,
        (None, Some(_)) | (Some("require" | "verify-ca" | "verify-full"), _) => SslMode::Require,
        (Some(m @ ("prefer" | "allow")), _) => {
            return Err(bad(format!(
                "sslmode={m} would fall back to an unencrypted connection without saying so: \
                 use sslmode=verify-full (with sslrootcert=FILE) or sslmode=disable"
            )))
        }
        (Some(m), _) => return Err(bad(format!("unknown sslmode {m}"))),
    };
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| bad(format!("TLS: {e}")))?
        .with_root_certificates(roots(root.as_deref())?)
        .with_no_client_auth();
    Ok(Tls {
        url,
        mode,
        connector: MakeRustlsConnect::new(config),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tls_parameters_are_taken_out_of_urls_and_conninfos() {
        let (u, m, r) =
            take_params("postgres://a@h:5/db?sslmode=verify-full&application_name=x&sslrootcert=%2Ftmp%2Fca.pem")
                .unwrap();
        assert_eq!(u, "postgres://a@h:5/db?application_name=x");
        assert_eq!(m.as_deref(), Some("verify-full"));
        assert_eq!(r.as_deref(), Some("/tmp/ca.pem"));
        let (u, m, r) = take_params("host=h dbname=d sslmode=require sslrootcert=/ca.pem").unwrap();
        assert_eq!(u, "host=h dbname=d");
        assert_eq!(
            (m.as_deref(), r.as_deref()),
            (Some("require"), Some("/ca.pem"))
        );
        let (u, m, r) = take_params("postgres://a@h/db").unwrap();
        assert_eq!((u.as_str(), m, r), ("postgres://a@h/db", None, None));
    }

    #[test]
    fn fallbacks_to_plain_text_and_unknown_modes_are_refused() {
        for m in ["prefer", "allow", "bogus"] {
            let e = from_url(&format!("postgres://a@h/db?sslmode={m}"))
                .err()
                .unwrap();
            assert!(e.to_string().contains("sslmode"), "{e}");
        }
        assert!(matches!(
            from_url("postgres://a@h/db").unwrap().mode,
            SslMode::Disable
        ));
        assert!(matches!(
            from_url("postgres://a@h/db?sslmode=require").unwrap().mode,
            SslMode::Require
        ));
        let e = from_url("postgres://a@h/db?sslrootcert=/no/such/file")
            .err()
            .unwrap();
        assert!(e.to_string().contains("sslrootcert"), "{e}");
    }
}
