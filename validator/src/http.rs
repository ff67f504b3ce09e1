//! A minimal blocking HTTP/1.1 client for the validator's two calls: GET the config bundle and
//! POST a batch. `http://` (loopback, tests, a local TLS terminator) and `https://` (rustls with
//! the `ring` provider; the Mozilla roots from `webpki-roots`, plus optional extra root CAs given
//! as PEM, for pilots and tests). One request per connection (`Connection: close`),
//! Content-Length or chunked responses, bounded size. The connect, the TLS handshake (as a
//! whole) and each read or write are bounded by the client's timeout. The payloads are signed
//! end to end either way; TLS adds confidentiality and server authentication.

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{CertificateError, ClientConfig, ClientConnection, RootCertStore, StreamOwned};
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use thiserror::Error;

mod response;

use response::parse_response_framed;
pub use response::{parse_response, Response};

/// Largest response body accepted (a config bundle with a big deny list fits).
pub const MAX_BODY: usize = 256 * 1024 * 1024;

#[derive(Debug, Error)]
pub enum HttpError {
    #[error("unsupported URL {0:?} (only http:// or https://host[:port]/path)")]
    Url(String),
    #[error("network: {0}")]
    Io(#[from] std::io::Error),
    #[error("malformed HTTP response: {0}")]
    Protocol(String),
    #[error("HTTP {status}: {body}")]
    Status { status: u16, body: String },
    /// The server's certificate chain does not lead to a trusted root: issued by an unknown CA
    /// (e.g. a pilot CA that was not given as an extra root), or its signature does not verify
    /// against a trusted CA of the same name (an impostor CA).
    #[error(
        "TLS: the certificate of {host} is not trusted ({reason}); \
         if it is a pilot CA, give it as an extra root (e.g. --ca-pem FILE)"
    )]
    UntrustedCertificate { host: String, reason: &'static str },
    /// The certificate is trusted but not issued for the host name (or IP) in the URL.
    #[error("TLS: the certificate of {host} is not valid for that name: {detail}")]
    WrongHostName { host: String, detail: String },
    /// Any other TLS failure (expired certificate, alert from the server, protocol error...).
    #[error("TLS with {host}: {source}")]
    Tls {
        host: String,
        #[source]
        source: rustls::Error,
    },
    /// A phase (the TLS handshake) did not complete within the timeout.
    #[error("{phase} with {host} timed out after {timeout:?}")]
    Timeout {
        host: String,
        phase: &'static str,
        timeout: Duration,
    },
    /// The extra root CA could not be read or used.
    #[error("extra root CA: {0}")]
    CaPem(String),
    /// The TLS client could not be configured.
    #[error("TLS configuration: {0}")]
    TlsConfig(rustls::Error),
}

/// A request body and its media type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Body<'a> {
    /// The `Content-Type` header's value.
    pub content_type: &'a str,
    pub bytes: &'a [u8],
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scheme {
    Http,
    Https,
}

struct Url {
    scheme: Scheme,
    host: String,
    port: u16,
    path: String,
}

impl Url {
    /// The host without IPv6 brackets.
    fn bare_host(&self) -> &str {
        self.host.trim_start_matches('[').trim_end_matches(']')
    }
}

fn parse_url(url: &str) -> Result<Url, HttpError> {
    let (scheme, rest, default_port) = if let Some(r) = url.strip_prefix("http://") {
        (Scheme::Http, r, 80)
    } else if let Some(r) = url.strip_prefix("https://") {
        (Scheme::Https, r, 443)
    } else {
        return Err(HttpError::Url(url.into()));
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, "/"),
    };
    if authority.contains('@') {
        return Err(HttpError::Url(url.into()));
    }
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => (
            h.to_string(),
            p.parse::<u16>().map_err(|_| HttpError::Url(url.into()))?,
        ),
        _ => (authority.to_string(), default_port),
    };
    if host.is_empty() {
        return Err(HttpError::Url(url.into()));
    }
    Ok(Url {
        scheme,
        host,
        port,
        path: path.to_string(),
    })
}

/// Parses every `CERTIFICATE` block of a PEM text (at least one is required).
pub fn parse_ca_pem(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, HttpError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| HttpError::CaPem(format!("bad PEM: {e}")))?;
    if certs.is_empty() {
        return Err(HttpError::CaPem(
            "no CERTIFICATE block in the PEM text".into(),
        ));
    }
    Ok(certs)
}

/// A blocking HTTP/1.1 client: a timeout and the TLS trust store used for `https://`.
/// Cheap to clone.
#[derive(Debug, Clone)]
pub struct Client {
    timeout: Duration,
    tls: Arc<ClientConfig>,
}

impl Client {
    /// `https://` trusts the Mozilla roots (`webpki-roots`) only.
    pub fn new(timeout: Duration) -> Result<Self, HttpError> {
        Self::with_extra_roots(timeout, Vec::new())
    }

    /// Also trusts the root CA certificate(s) in `pem` (PEM text, one or more `CERTIFICATE`
    /// blocks), besides the Mozilla roots.
    pub fn with_extra_ca_pem(timeout: Duration, pem: &[u8]) -> Result<Self, HttpError> {
        Self::with_extra_roots(timeout, parse_ca_pem(pem)?)
    }

    /// [`Client::with_extra_ca_pem`] with the PEM read from a file.
    pub fn with_extra_ca_pem_file(timeout: Duration, path: &Path) -> Result<Self, HttpError> {
        let pem = std::fs::read(path)
            .map_err(|e| HttpError::CaPem(format!("cannot read {}: {e}", path.display())))?;
        Self::with_extra_ca_pem(timeout, &pem).map_err(|e| match e {
            HttpError::CaPem(m) => HttpError::CaPem(format!("{}: {m}", path.display())),
            other => other,
        })
    }

    /// Trusts the Mozilla roots plus `extra` (DER root CA certificates).
    pub fn with_extra_roots(
        timeout: Duration,
        extra: Vec<CertificateDer<'static>>,
    ) -> Result<Self, HttpError> {
        let mut roots = RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        for cert in extra {
            roots
                .add(cert)
                .map_err(|e| HttpError::CaPem(format!("not a usable root CA certificate: {e}")))?;
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(HttpError::TlsConfig)?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Self {
            timeout,
            tls: Arc::new(tls),
        })
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Sends one request and reads the whole response.
    pub fn request(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: Option<Body<'_>>,
    ) -> Result<Response, HttpError> {
        let u = parse_url(url)?;
        let head = request_head(method, &u, headers, body)?;
        let timeout = self.timeout;
        let mut tcp = connect(&u, timeout)?;
        tcp.set_nodelay(true)?;
        let payload = body.map(|b| b.bytes);
        let (raw, clean_eof) = match u.scheme {
            Scheme::Http => {
                tcp.set_read_timeout(Some(timeout))?;
                tcp.set_write_timeout(Some(timeout))?;
                (exchange(&mut tcp, &head, payload)?, true)
            }
            Scheme::Https => {
                let host = u.bare_host();
                let name = ServerName::try_from(host.to_string())
                    .map_err(|_| HttpError::Url(url.into()))?;
                let mut conn = ClientConnection::new(Arc::clone(&self.tls), name)
                    .map_err(|e| tls_error(host, e))?;
                handshake(&mut conn, &mut tcp, host, timeout)?;
                tcp.set_read_timeout(Some(timeout))?;
                tcp.set_write_timeout(Some(timeout))?;
                let mut s = StreamOwned::new(conn, tcp);
                match exchange(&mut s, &head, payload) {
                    Ok(raw) => (raw, true),
                    // The server closed without close_notify: acceptable only if the response
                    // carries its own framing (checked below), as most HTTPS servers do this.
                    Err(Exchange::UncleanEof(raw)) => (raw, false),
                    Err(Exchange::Io(e)) => return Err(tls_io_error(host, e)),
                }
            }
        };
        let (response, framed) = parse_response_framed(&raw)?;
        if !clean_eof && !framed {
            return Err(HttpError::Protocol(
                "TLS connection closed without close_notify and the response has no length".into(),
            ));
        }
        Ok(response)
    }

    pub fn get(&self, url: &str) -> Result<Response, HttpError> {
        self.request("GET", url, &[], None)
    }

    pub fn post(&self, url: &str, content_type: &str, body: &[u8]) -> Result<Response, HttpError> {
        let body = Body {
            content_type,
            bytes: body,
        };
        self.request("POST", url, &[], Some(body))
    }

    /// GETs the signed config bundle from `backend` (base URL). With `installed_version`, asks
    /// `If-None-Match: "<version>"`; None when the backend answers 304 Not Modified.
    pub fn fetch_config(
        &self,
        backend: &str,
        installed_version: Option<u64>,
    ) -> Result<Option<Vec<u8>>, HttpError> {
        let url = join(backend, CONFIG_PATH);
        let etag = installed_version.map(|v| format!("\"{v}\""));
        let headers: Vec<(&str, &str)> = etag
            .as_deref()
            .map(|e| vec![("If-None-Match", e)])
            .unwrap_or_default();
        let r = self.request("GET", &url, &headers, None)?;
        if r.status == 304 {
            return Ok(None);
        }
        r.ok().map(Some)
    }

    /// POSTs one sealed batch; Ok only when the backend acknowledged it (2xx). For
    /// [`crate::Validator::upload`], map the error to a string (`.map_err(|e| e.to_string())`).
    pub fn send_batch(
        &self,
        backend: &str,
        batch: &crate::journal::SealedBatch,
    ) -> Result<(), HttpError> {
        self.post(
            &join(backend, BATCHES_PATH),
            "application/octet-stream",
            &batch.bytes,
        )
        .and_then(Response::ok)
        .map(|_| ())
    }
}

fn connect(u: &Url, timeout: Duration) -> Result<TcpStream, HttpError> {
    let addrs: Vec<_> = (u.bare_host(), u.port).to_socket_addrs()?.collect();
    let mut last = None;
    for a in addrs {
        match TcpStream::connect_timeout(&a, timeout) {
            Ok(s) => return Ok(s),
            Err(e) => last = Some(e),
        }
    }
    Err(HttpError::Io(last.unwrap_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::NotFound, "no address")
    })))
}

fn request_head(
    method: &str,
    u: &Url,
    headers: &[(&str, &str)],
    body: Option<Body<'_>>,
) -> Result<String, HttpError> {
    let default_port = match u.scheme {
        Scheme::Http => 80,
        Scheme::Https => 443,
    };
    let host_header = if u.port == default_port {
        u.host.clone()
    } else {
        format!("{}:{}", u.host, u.port)
    };
    let mut head = format!(
        "{method} {} HTTP/1.1\r\nHost: {host_header}\r\nConnection: close\r\nUser-Agent: mancard-validator\r\nAccept: */*\r\n",
        u.path
    );
    for (k, v) in headers {
        if k.contains(['\r', '\n']) || v.contains(['\r', '\n']) {
            return Err(HttpError::Protocol("header with a line break".into()));
        }
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    match body {
        Some(b) => head.push_str(&format!(
            "Content-Type: {}\r\nContent-Length: {}\r\n\r\n",
            b.content_type,
            b.bytes.len()
        )),
        None => head.push_str("\r\n"),
    }
    Ok(head)
}

enum Exchange {
    /// TLS: the peer closed the TCP connection without close_notify; what was read so far.
    UncleanEof(Vec<u8>),
    Io(std::io::Error),
}

impl From<std::io::Error> for Exchange {
    fn from(e: std::io::Error) -> Self {
        Exchange::Io(e)
    }
}

impl From<Exchange> for HttpError {
    fn from(e: Exchange) -> Self {
        match e {
            Exchange::UncleanEof(_) => HttpError::Io(std::io::ErrorKind::UnexpectedEof.into()),
            Exchange::Io(e) => HttpError::Io(e),
        }
    }
}

/// Writes the request and reads the response until the server closes (bounded).
fn exchange<S: Read + Write>(
    s: &mut S,
    head: &str,
    body: Option<&[u8]>,
) -> Result<Vec<u8>, Exchange> {
    s.write_all(head.as_bytes())?;
    if let Some(b) = body {
        s.write_all(b)?;
    }
    s.flush()?;
    let mut raw = Vec::new();
    // On an error, read_to_end keeps what it read in `raw`.
    match s.take(MAX_BODY as u64 + 65_536).read_to_end(&mut raw) {
        Ok(_) => Ok(raw),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Err(Exchange::UncleanEof(raw)),
        Err(e) => Err(Exchange::Io(e)),
    }
}

fn is_timeout(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
    )
}

/// Drives the TLS handshake to completion within `timeout` overall (each socket read/write gets
/// only the time left), then flushes the client's last handshake flight.
fn handshake(
    conn: &mut ClientConnection,
    tcp: &mut TcpStream,
    host: &str,
    timeout: Duration,
) -> Result<(), HttpError> {
    let deadline = Instant::now().checked_add(timeout);
    let timed_out = || HttpError::Timeout {
        host: host.to_string(),
        phase: "TLS handshake",
        timeout,
    };
    while conn.is_handshaking() || conn.wants_write() {
        let left = match deadline {
            Some(d) => d
                .checked_duration_since(Instant::now())
                .filter(|l| !l.is_zero())
                .ok_or_else(timed_out)?,
            None => timeout,
        };
        tcp.set_read_timeout(Some(left))?;
        tcp.set_write_timeout(Some(left))?;
        if conn.wants_write() {
            match conn.write_tls(tcp) {
                Ok(_) => continue,
                Err(e) if is_timeout(&e) => return Err(timed_out()),
                Err(e) => return Err(HttpError::Io(e)),
            }
        }
        match conn.read_tls(tcp) {
            Ok(0) => {
                return Err(HttpError::Io(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    format!("{host} closed the connection during the TLS handshake"),
                )))
            }
            Ok(_) => {
                if let Err(e) = conn.process_new_packets() {
                    // Best effort: tell the server why (the alert rustls queued).
                    let _ = conn.write_tls(tcp);
                    return Err(tls_error(host, e));
                }
            }
            Err(e) if is_timeout(&e) => return Err(timed_out()),
            Err(e) => return Err(HttpError::Io(e)),
        }
    }
    Ok(())
}

/// Classifies a rustls error: untrusted issuer and wrong name get their own variants.
fn tls_error(host: &str, e: rustls::Error) -> HttpError {
    match &e {
        rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer) => {
            HttpError::UntrustedCertificate {
                host: host.to_string(),
                reason: "issued by an unknown CA",
            }
        }
        rustls::Error::InvalidCertificate(CertificateError::BadSignature) => {
            HttpError::UntrustedCertificate {
                host: host.to_string(),
                reason: "bad signature: not issued by the trusted CA of that name",
            }
        }
        rustls::Error::InvalidCertificate(
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
        ) => HttpError::WrongHostName {
            host: host.to_string(),
            detail: e.to_string(),
        },
        _ => HttpError::Tls {
            host: host.to_string(),
            source: e,
        },
    }
}

/// An I/O error from the TLS stream: a wrapped rustls error is classified.
fn tls_io_error(host: &str, e: std::io::Error) -> HttpError {
    match e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        Some(t) => tls_error(host, t.clone()),
        None => HttpError::Io(e),
    }
}

/// Joins a base URL and a path (`http://h:1/` + `/v1/x`).
pub fn join(base: &str, path: &str) -> String {
    format!(
        "{}/{}",
        base.trim_end_matches('/'),
        path.trim_start_matches('/')
    )
}

/// Sends one request with a [`Client`] trusting the Mozilla roots only.
pub fn request(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<Body<'_>>,
    timeout: Duration,
) -> Result<Response, HttpError> {
    Client::new(timeout)?.request(method, url, headers, body)
}

pub fn get(url: &str, timeout: Duration) -> Result<Response, HttpError> {
    request("GET", url, &[], None, timeout)
}

pub fn post(
    url: &str,
    content_type: &str,
    body: &[u8],
    timeout: Duration,
) -> Result<Response, HttpError> {
    let body = Body {
        content_type,
        bytes: body,
    };
    request("POST", url, &[], Some(body), timeout)
}

/// Path of the signed config bundle on the backend (raw `ValidatorConfig` bytes; the ETag is
/// the bundle version, `If-None-Match` gives 304).
pub const CONFIG_PATH: &str = "/v1/validator/config";
/// Path where batches are POSTed (raw `TapBatch` bytes, `application/octet-stream`);
/// idempotent by batch id (a resend gets the stored answer, 200).
pub const BATCHES_PATH: &str = "/v1/validator/batches";

/// GETs the signed config bundle from `backend` (base URL) with a [`Client`] trusting the
/// Mozilla roots only. With `installed_version`, asks `If-None-Match: "<version>"`; None when
/// the backend answers 304 Not Modified.
pub fn fetch_config(
    backend: &str,
    installed_version: Option<u64>,
    timeout: Duration,
) -> Result<Option<Vec<u8>>, HttpError> {
    Client::new(timeout)?.fetch_config(backend, installed_version)
}

/// POSTs one sealed batch (a [`Client`] trusting the Mozilla roots only); Ok only when the
/// backend acknowledged it (2xx). The error as text, for [`crate::Validator::upload`].
pub fn send_batch(
    backend: &str,
    batch: &crate::journal::SealedBatch,
    timeout: Duration,
) -> Result<(), String> {
    Client::new(timeout)
        .and_then(|c| c.send_batch(backend, batch))
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::{
        join, parse_response, parse_response_framed, parse_url, Client, HttpError, Scheme,
    };
    use std::path::Path;
    use std::time::Duration;

    #[test]
    fn parses_length_and_chunked() {
        let r = parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabcdef").unwrap();
        assert_eq!((r.status, r.body), (200, b"abc".to_vec()));
        let r = parse_response(
            b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
        )
        .unwrap();
        assert_eq!((r.status, r.body), (201, b"abcde".to_vec()));
        assert!(parse_response(b"garbage").is_err());
        assert_eq!(join("http://a:1/", "/v1/x"), "http://a:1/v1/x");
        assert!(parse_url("ftp://x/").is_err());
        assert!(parse_url("https://user@x/").is_err());
        let u = parse_url("https://issuer.example/").unwrap();
        assert_eq!((u.scheme, u.port), (Scheme::Https, 443));
        let u = parse_url("https://[::1]:8443").unwrap();
        assert_eq!((u.bare_host(), u.port, u.path.as_str()), ("::1", 8443, "/"));
        let u = parse_url("http://127.0.0.1:8080/v1").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.path.as_str()),
            ("127.0.0.1", 8080, "/v1")
        );
    }

    #[test]
    fn framing_and_ca_pem() {
        let (_, framed) = parse_response_framed(b"HTTP/1.1 200 OK\r\n\r\nabc").unwrap();
        assert!(!framed);
        let (_, framed) =
            parse_response_framed(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc").unwrap();
        assert!(framed);
        assert!(matches!(
            Client::with_extra_ca_pem(Duration::from_secs(1), b"not a pem"),
            Err(HttpError::CaPem(_))
        ));
        assert!(matches!(
            Client::with_extra_ca_pem(
                Duration::from_secs(1),
                b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
            ),
            Err(HttpError::CaPem(_))
        ));
        assert!(matches!(
            Client::with_extra_ca_pem_file(Duration::from_secs(1), Path::new("/nonexistent.pem")),
            Err(HttpError::CaPem(m)) if m.contains("/nonexistent.pem")
        ));
    }
}
