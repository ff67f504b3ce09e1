//! TLS to PostgreSQL: what the database URL asks for (`sslmode`, `sslrootcert`, as libpq
//! spells them), and the rustls connector that does it. Encryption is always verified: the
//! server's certificate must chain to `sslrootcert` (or, without it, to the web PKI roots) and
//! name the host connected to. libpq's `prefer` and `allow`, which fall back to plain text
//! without saying so, are refused.

use crate::error::StoreError;
use postgres::config::SslMode;
use tokio_postgres_rustls::MakeRustlsConnect;

/// The TLS a database URL asks for: the parsed configuration (its `sslmode` set) and the
/// connector.
pub(super) struct Tls {
    pub(super) config: postgres::Config,
    pub(super) connector: MakeRustlsConnect,
}

fn bad(msg: impl std::fmt::Display) -> StoreError {
    StoreError::Postgres(format!("the database URL: {msg}"))
}

/// `sslmode` and `sslrootcert` as the URL gives them, each at most once.
#[derive(Debug, Default, PartialEq, Eq)]
struct Params {
    mode: Option<String>,
    root: Option<String>,
}

impl Params {
    /// Takes `key=value` if it is one of ours (`true`); a second one is refused (a tool that
    /// appends parameters must not be able to override the first).
    fn take(&mut self, key: &str, value: &str) -> Result<bool, StoreError> {
        let slot = match key {
            "sslmode" => &mut self.mode,
            "sslrootcert" => &mut self.root,
            _ => return Ok(false),
        };
        if slot.is_some() {
            return Err(bad(format!("{key} is given twice")));
        }
        *slot = Some(value.to_owned());
        Ok(true)
    }
}

/// Splits `sslmode` and `sslrootcert` out of a `postgres://…?…` URL or a `key=value`
/// conninfo; everything else is kept as written (no re-encoding).
fn take_params(url: &str) -> Result<(String, Params), StoreError> {
    let mut p = Params::default();
    if url.contains("://") {
        let Some((base, query)) = url.split_once('?') else {
            return Ok((url.to_owned(), p));
        };
        let mut kept = Vec::new();
        for seg in query.split('&') {
            let pairs: Vec<(String, String)> = serde_urlencoded::from_str(seg).map_err(bad)?;
            let ours = match pairs.first() {
                Some((k, v)) => p.take(k, v)?,
                None => false,
            };
            if !ours {
                kept.push(seg);
            }
        }
        let url = if kept.is_empty() {
            base.to_owned()
        } else {
            format!("{base}?{}", kept.join("&"))
        };
        return Ok((url, p));
    }
    let mut kept = Vec::new();
    for kv in url.split_whitespace() {
        let ours = match kv.split_once('=') {
            Some((k, v)) => p.take(k, v)?,
            None => false,
        };
        if !ours {
            kept.push(kv);
        }
    }
    Ok((kept.join(" "), p))
}

/// Whether every host the configuration names is this machine (loopback or a Unix socket).
fn local_only(config: &postgres::Config) -> bool {
    use postgres::config::Host;
    let loopback = |h: &str| {
        h.eq_ignore_ascii_case("localhost")
            || h.parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    };
    config.get_hosts().iter().all(|h| match h {
        Host::Tcp(name) => loopback(name),
        Host::Unix(_) => true,
    }) && config
        .get_hostaddrs()
        .iter()
        .all(std::net::IpAddr::is_loopback)
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

/// What `url` asks for: `require`, `verify-ca` and `verify-full` are TLS verified as above,
/// and `sslrootcert` alone means `verify-full`; `disable` is a plain connection; no `sslmode`
/// is a plain connection only to this machine (loopback, a Unix socket): a database on
/// another host needs TLS or an explicit `sslmode=disable` (a private network). `pgsslmode`
/// is the environment's `PGSSLMODE`/`PGSSLROOTCERT` (libpq's; not read here, so refused
/// rather than silently ignored).
pub(super) fn from_url(url: &str, pgsslmode: Option<&str>) -> Result<Tls, StoreError> {
    let (url, p) = take_params(url)?;
    let mut config: postgres::Config = url.parse().map_err(bad)?;
    // an sslmode this parser did not see (spaces around '=', quotes) must not be overridden
    if !matches!(config.get_ssl_mode(), SslMode::Prefer) {
        return Err(bad(
            "write sslmode=VALUE and sslrootcert=FILE without spaces or quotes",
        ));
    }
    if let (Some(var), None) = (pgsslmode, &p.mode) {
        return Err(bad(format!(
            "{var} is set, but TLS settings are read from the URL only: put sslmode= in it"
        )));
    }
    let mode = match (p.mode.as_deref(), &p.root) {
        (Some("disable"), Some(_)) => {
            return Err(bad(
                "sslmode=disable with an sslrootcert: say which one is meant",
            ))
        }
        (Some("disable"), None) => SslMode::Disable,
        (None, None) if local_only(&config) => SslMode::Disable,
        (None, None) => {
            return Err(bad(
                "the database is on another host: ask for TLS (sslmode=verify-full with \
                 sslrootcert=FILE), or say sslmode=disable for a private network",
            ))
        }
        (None, Some(_)) | (Some("require" | "verify-ca" | "verify-full"), _) => SslMode::Require,
        (Some(m @ ("prefer" | "allow")), _) => {
            return Err(bad(format!(
                "sslmode={m} would fall back to an unencrypted connection without saying so: \
                 use sslmode=verify-full (with sslrootcert=FILE) or sslmode=disable"
            )))
        }
        (Some(m), _) => return Err(bad(format!("unknown sslmode {m}"))),
    };
    if matches!(mode, SslMode::Disable)
        && matches!(
            config.get_ssl_negotiation(),
            postgres::config::SslNegotiation::Direct
        )
    {
        return Err(bad("sslnegotiation=direct needs sslmode=verify-full"));
    }
    config.ssl_mode(mode);
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| bad(format!("TLS: {e}")))?
        .with_root_certificates(roots(p.root.as_deref())?)
        .with_no_client_auth();
    Ok(Tls {
        config,
        connector: MakeRustlsConnect::new(tls),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(url: &str) -> Result<SslMode, String> {
        from_url(url, None)
            .map(|t| t.config.get_ssl_mode())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn the_tls_parameters_are_taken_out_of_urls_and_conninfos() {
        let (u, p) = take_params(
            "postgres://a@h:5/db?sslmode=verify-full&options=-c%20x%3D1&sslrootcert=%2Ftmp%2Fca.pem",
        )
        .unwrap();
        assert_eq!(
            u, "postgres://a@h:5/db?options=-c%20x%3D1",
            "kept as written"
        );
        assert_eq!(p.mode.as_deref(), Some("verify-full"));
        assert_eq!(p.root.as_deref(), Some("/tmp/ca.pem"));
        let (u, p) = take_params("host=h dbname=d sslmode=require sslrootcert=/ca.pem").unwrap();
        assert_eq!(u, "host=h dbname=d");
        assert_eq!(
            (p.mode.as_deref(), p.root.as_deref()),
            (Some("require"), Some("/ca.pem"))
        );
        let (u, p) = take_params("postgres://a@h/db").unwrap();
        assert_eq!((u.as_str(), p), ("postgres://a@h/db", Params::default()));
    }

    #[test]
    fn nothing_the_operator_wrote_becomes_a_plain_connection_by_accident() {
        let refused = [
            // libpq's silent fallbacks, and a mode nobody knows
            "postgres://a@127.0.0.1/db?sslmode=prefer",
            "postgres://a@127.0.0.1/db?sslmode=allow",
            "postgres://a@127.0.0.1/db?sslmode=bogus",
            // an appended parameter must not override the first
            "postgres://a@127.0.0.1/db?sslmode=verify-full&sslmode=disable",
            "postgres://a@127.0.0.1/db?sslrootcert=/x&sslrootcert=/y",
            "postgres://a@127.0.0.1/db?sslmode=disable&sslrootcert=/x",
            // forms this parser does not read, but the driver's would
            "host=db.example dbname=d sslmode = require",
            "host=db.example dbname=d sslmode =require",
            // another host, no word about TLS
            "postgres://a:pw@db.example/db",
            "host=db.example dbname=d",
            "host=127.0.0.1,db.example dbname=d",
            "postgres://a@127.0.0.1/db?sslnegotiation=direct&sslmode=disable",
            "postgres://a@127.0.0.1/db?sslrootcert=/no/such/file",
        ];
        for url in refused {
            let e = mode(url)
                .err()
                .unwrap_or_else(|| panic!("{url} was accepted"));
            assert!(!e.contains("pw"), "{e}");
        }
        assert!(matches!(
            mode("postgres://a@127.0.0.1/db"),
            Ok(SslMode::Disable)
        ));
        assert!(matches!(
            mode("postgres://a@localhost/db"),
            Ok(SslMode::Disable)
        ));
        assert!(matches!(
            mode("host=/var/run/postgresql dbname=d"),
            Ok(SslMode::Disable)
        ));
        assert!(matches!(
            mode("postgres://a@db.example/db?sslmode=disable"),
            Ok(SslMode::Disable)
        ));
        assert!(matches!(
            mode("postgres://a@db.example/db?sslmode=require"),
            Ok(SslMode::Require)
        ));
        let e = from_url("postgres://a@127.0.0.1/db", Some("PGSSLMODE"))
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("PGSSLMODE"), "{e}");
    }
}
