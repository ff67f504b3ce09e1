//! The HTTP client: rustls with webpki roots (+ an optional extra root CA), timeouts, retries
//! with capped exponential backoff and jitter, and RFC 9457 problem documents mapped to
//! [`OnlineError`]. The bearer token is marked sensitive and never logged.

use super::{OnlineError, OnlineOptions};
use crate::error::WalletError;
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use std::time::Duration;

/// An RFC 9457 problem document (the fields the client uses).
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct Problem {
    #[serde(default)]
    pub(crate) code: String,
    #[serde(default)]
    pub(crate) detail: String,
    #[serde(default)]
    pub(crate) title: String,
}

/// Why one call failed (before mapping to [`OnlineError`]).
#[derive(Debug)]
pub(crate) enum CallError {
    /// No answer: connection refused or reset, timeout, TLS failure, body cut off.
    Transport {
        message: String,
        source: Option<reqwest::Error>,
    },
    /// A 5xx, or a 2xx whose body does not parse.
    Server(String),
    /// A 4xx problem document (never retried).
    Problem { status: u16, problem: Problem },
    /// Failed before sending (no session, local storage).
    Local(Box<OnlineError>),
}

impl CallError {
    pub(crate) fn code(&self) -> Option<&str> {
        match self {
            Self::Problem { problem, .. } => Some(problem.code.as_str()),
            _ => None,
        }
    }
}

impl From<CallError> for OnlineError {
    fn from(e: CallError) -> Self {
        match e {
            CallError::Transport { message, source } => OnlineError::Offline { message, source },
            CallError::Server(message) => OnlineError::Server { message },
            CallError::Local(e) => *e,
            CallError::Problem { status, problem } => {
                let message = if problem.detail.is_empty() {
                    format!("{status} {}", problem.title)
                } else {
                    problem.detail.clone()
                };
                match (status, problem.code.as_str()) {
                    (_, "credential_revoked") => OnlineError::CredentialRevoked { reason: message },
                    (_, "account_blocked" | "binding_key_in_use" | "device_blocked") => {
                        OnlineError::AccountBlocked { message }
                    }
                    (429, _) | (_, "rate_limited") => OnlineError::RateLimited { message },
                    (401, _) | (_, "unauthorized") => OnlineError::SessionExpired,
                    (403, _) => OnlineError::AccountBlocked { message },
                    _ => OnlineError::Validation {
                        code: problem.code,
                        message,
                    },
                }
            }
        }
    }
}

/// The backend client.
pub(crate) struct Http {
    client: reqwest::Client,
    base: String,
    opts: OnlineOptions,
}

fn random_u64() -> u64 {
    use ring::rand::SecureRandom;
    let mut b = [0u8; 8];
    // On RNG failure the jitter is simply zero.
    let _ = ring::rand::SystemRandom::new().fill(&mut b);
    u64::from_le_bytes(b)
}

impl Http {
    pub(crate) fn new(base_url: &str, opts: OnlineOptions) -> Result<Self, OnlineError> {
        let base = base_url.trim().trim_end_matches('/').to_string();
        let parsed = reqwest::Url::parse(&base).map_err(|e| OnlineError::Validation {
            code: "invalid_url".into(),
            message: format!("the backend URL {base:?} is not a URL: {e}"),
        })?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(OnlineError::Validation {
                code: "invalid_url".into(),
                message: format!("the backend URL must be http(s), not {}", parsed.scheme()),
            });
        }
        let mut b = reqwest::Client::builder()
            .use_rustls_tls()
            .connect_timeout(Duration::from_millis(opts.connect_timeout_ms.max(1)))
            .timeout(Duration::from_millis(opts.request_timeout_ms.max(1)))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("mancard-wallet/", env!("CARGO_PKG_VERSION")));
        if let Some(pem) = &opts.extra_root_ca_pem {
            let certs = reqwest::Certificate::from_pem_bundle(pem.as_bytes()).map_err(|e| {
                OnlineError::Validation {
                    code: "invalid_ca".into(),
                    message: format!("the extra root CA is not a PEM certificate: {e}"),
                }
            })?;
            if certs.is_empty() {
                return Err(OnlineError::Validation {
                    code: "invalid_ca".into(),
                    message: "the extra root CA PEM holds no certificate".into(),
                });
            }
            for c in certs {
                b = b.add_root_certificate(c);
            }
        }
        let client = b
            .build()
            .map_err(|e| WalletError::internal(format!("HTTP client: {e}")))?;
        Ok(Self { client, base, opts })
    }

    pub(crate) fn base(&self) -> &str {
        &self.base
    }

    fn backoff(&self, attempt: u32) -> Duration {
        let exp = self
            .opts
            .initial_backoff_ms
            .saturating_mul(1u64 << attempt.min(20));
        let cap = exp.min(self.opts.max_backoff_ms).max(1);
        let half = cap / 2;
        Duration::from_millis(half.saturating_add(random_u64() % (cap - half).max(1)))
    }

    /// One request with retries. `body` is JSON; the answer's JSON is parsed as `T`.
    pub(crate) async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        bearer: Option<&str>,
        body: Option<&serde_json::Value>,
    ) -> Result<T, CallError> {
        let attempts = self.opts.max_attempts.max(1);
        let mut last = CallError::Transport {
            message: "no attempt made".into(),
            source: None,
        };
        for attempt in 0..attempts {
            if attempt > 0 {
                tokio::time::sleep(self.backoff(attempt - 1)).await;
            }
            match self.once(method.clone(), path, bearer, body).await {
                Ok(v) => return Ok(v),
                Err(e @ CallError::Problem { .. }) => return Err(e),
                Err(e) => {
                    tracing::debug!(
                        "{method} {path}: attempt {} of {attempts} failed: {e:?}",
                        attempt + 1
                    );
                    last = e;
                }
            }
        }
        Err(last)
    }

    async fn once<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        bearer: Option<&str>,
        body: Option<&serde_json::Value>,
    ) -> Result<T, CallError> {
        let url = format!("{}{path}", self.base);
        let mut rb = self.client.request(method, &url);
        if let Some(t) = bearer {
            rb = rb.bearer_auth(t);
        }
        if let Some(b) = body {
            rb = rb.json(b);
        }
        let resp = rb.send().await.map_err(|e| CallError::Transport {
            message: describe(&e),
            source: Some(e),
        })?;
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(|e| CallError::Transport {
            message: format!("reading the answer: {}", describe(&e)),
            source: Some(e),
        })?;
        if status.is_success() {
            return serde_json::from_slice(&bytes).map_err(|e| {
                CallError::Server(format!("unreadable answer from {path} ({status}): {e}"))
            });
        }
        if status.is_server_error() {
            let p: Problem = serde_json::from_slice(&bytes).unwrap_or_default();
            return Err(CallError::Server(format!(
                "{status} {}",
                if p.detail.is_empty() {
                    p.code
                } else {
                    p.detail
                }
            )));
        }
        if status.is_client_error() {
            let problem = serde_json::from_slice(&bytes).unwrap_or_else(|_| Problem {
                code: match status {
                    StatusCode::UNAUTHORIZED => "unauthorized".into(),
                    StatusCode::TOO_MANY_REQUESTS => "rate_limited".into(),
                    _ => "http_error".into(),
                },
                detail: format!("{status}"),
                title: String::new(),
            });
            return Err(CallError::Problem {
                status: status.as_u16(),
                problem,
            });
        }
        Err(CallError::Server(format!("unexpected answer {status}")))
    }
}

/// A transport error without the URL's query (never carries the token: it is a header).
fn describe(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else if e.is_body() || e.is_decode() {
        "the answer was cut off"
    } else {
        "request failed"
    };
    let mut msg = kind.to_string();
    let mut src: Option<&dyn std::error::Error> = std::error::Error::source(e);
    let mut depth = 0;
    while let Some(s) = src {
        if depth >= 3 {
            break;
        }
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        src = s.source();
        depth += 1;
    }
    msg
}
