//! The HTTP client: rustls with webpki roots (+ an optional extra root CA), timeouts, retries
//! with capped exponential backoff and jitter, and RFC 9457 problem documents mapped to
//! [`OnlineError`]. Methods and paths come from `mancard_api::endpoints`. The bearer token is
//! marked sensitive and never logged.

use super::{OnlineError, OnlineOptions};
use crate::error::WalletError;
use mancard_api::endpoints::{Endpoint, Method, PROOF_HEADER};
use mancard_api::{Problem, ProblemCode};
use reqwest::StatusCode;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// A problem document as the client received it: the contract's [`Problem`] and its code's
/// text as sent, so that a code this build does not know (`ProblemCode::Unknown`) reaches the
/// app unchanged in `OnlineError::Validation`.
#[derive(Debug, Clone)]
pub(crate) struct ProblemAnswer {
    pub(crate) doc: Problem,
    /// `doc.code` as sent.
    pub(crate) code: String,
}

/// The `code` of a problem document, as sent.
#[derive(Deserialize)]
struct CodeText {
    code: String,
}

impl ProblemAnswer {
    /// The problem document in an error answer's body, if it is one.
    pub(crate) fn parse(body: &[u8]) -> Option<Self> {
        let doc: Problem = serde_json::from_slice(body).ok()?;
        let CodeText { code } = serde_json::from_slice(body).ok()?;
        Some(Self { doc, code })
    }

    /// What an error answer without a problem document means, from its HTTP status.
    fn of_status(status: StatusCode) -> Self {
        let known = match status {
            StatusCode::UNAUTHORIZED => Some(ProblemCode::Unauthorized),
            StatusCode::TOO_MANY_REQUESTS => Some(ProblemCode::RateLimited),
            _ => None,
        };
        Self {
            doc: Problem {
                type_: "about:blank".into(),
                title: String::new(),
                status: status.as_u16(),
                detail: format!("{status}"),
                code: known.unwrap_or(ProblemCode::Unknown),
            },
            code: known.map_or("http_error", ProblemCode::as_str).into(),
        }
    }
}

/// No request body.
pub(crate) const NO_BODY: Option<&()> = None;

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
    Problem { status: u16, problem: ProblemAnswer },
    /// Failed before sending (no session, local storage).
    Local(Box<OnlineError>),
}

impl CallError {
    pub(crate) fn code(&self) -> Option<ProblemCode> {
        match self {
            Self::Problem { problem, .. } => Some(problem.doc.code),
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
                let message = if problem.doc.detail.is_empty() {
                    format!("{status} {}", problem.doc.title)
                } else {
                    problem.doc.detail.clone()
                };
                // "account_blocked" and "device_blocked" are not (yet) codes of the contract;
                // a server that sends them is understood all the same.
                let blocked = matches!(problem.code.as_str(), "account_blocked" | "device_blocked");
                match (status, problem.doc.code) {
                    // This session is bound to a binding key the keystore no longer proves
                    // (keys reset, data restored elsewhere): a new login gets a fresh session.
                    (
                        _,
                        ProblemCode::WrongDevice
                        | ProblemCode::ProofRequired
                        | ProblemCode::BadRequestProof,
                    ) => OnlineError::SessionExpired,
                    (_, ProblemCode::CredentialRevoked) => {
                        OnlineError::CredentialRevoked { reason: message }
                    }
                    (_, ProblemCode::BindingKeyInUse) => OnlineError::AccountBlocked { message },
                    _ if blocked => OnlineError::AccountBlocked { message },
                    (429, _) | (_, ProblemCode::RateLimited) => {
                        OnlineError::RateLimited { message }
                    }
                    (401, _) | (_, ProblemCode::Unauthorized) => OnlineError::SessionExpired,
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

    /// One request to `endpoint` at `path` (its path, filled in) with retries. `body` is sent
    /// as JSON; the answer's JSON is parsed as `T`.
    pub(crate) async fn call<T: DeserializeOwned, B: Serialize + ?Sized>(
        &self,
        endpoint: Endpoint,
        path: &str,
        bearer: Option<&str>,
        body: Option<&B>,
    ) -> Result<T, CallError> {
        let body = body_bytes(body)?;
        self.call_bytes(endpoint, path, bearer, body.as_deref(), None)
            .await
    }

    /// [`Http::call`] with the body already encoded (its exact bytes are what a request proof
    /// signs) and an optional `ManCard-Proof` header, sent on every attempt.
    pub(crate) async fn call_bytes<T: DeserializeOwned>(
        &self,
        endpoint: Endpoint,
        path: &str,
        bearer: Option<&str>,
        body: Option<&[u8]>,
        proof: Option<&str>,
    ) -> Result<T, CallError> {
        let method = method_of(endpoint);
        let attempts = self.opts.max_attempts.max(1);
        let mut last = CallError::Transport {
            message: "no attempt made".into(),
            source: None,
        };
        for attempt in 0..attempts {
            if attempt > 0 {
                tokio::time::sleep(self.backoff(attempt - 1)).await;
            }
            match self.once(method.clone(), path, (bearer, proof), body).await {
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
        method: reqwest::Method,
        path: &str,
        (bearer, proof): (Option<&str>, Option<&str>),
        body: Option<&[u8]>,
    ) -> Result<T, CallError> {
        let url = format!("{}{path}", self.base);
        let mut rb = self.client.request(method, &url);
        if let Some(t) = bearer {
            rb = rb.bearer_auth(t);
        }
        if let Some(p) = proof {
            rb = rb.header(PROOF_HEADER, p);
        }
        if let Some(b) = body {
            rb = rb
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(b.to_vec());
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
            // 204 No Content (logout, ending a session): read as JSON `null`, i.e. `()`.
            let bytes: &[u8] = if status == StatusCode::NO_CONTENT {
                b"null"
            } else {
                &bytes
            };
            return serde_json::from_slice(bytes).map_err(|e| {
                CallError::Server(format!("unreadable answer from {path} ({status}): {e}"))
            });
        }
        if status.is_server_error() {
            let said = ProblemAnswer::parse(&bytes).map_or_else(String::new, |p| {
                if p.doc.detail.is_empty() {
                    p.code
                } else {
                    p.doc.detail
                }
            });
            return Err(CallError::Server(format!("{status} {said}")));
        }
        if status.is_client_error() {
            let problem =
                ProblemAnswer::parse(&bytes).unwrap_or_else(|| ProblemAnswer::of_status(status));
            return Err(CallError::Problem {
                status: status.as_u16(),
                problem,
            });
        }
        Err(CallError::Server(format!("unexpected answer {status}")))
    }
}

/// The HTTP method of an endpoint.
pub(crate) fn method_of(endpoint: Endpoint) -> reqwest::Method {
    match endpoint.method {
        Method::Get => reqwest::Method::GET,
        Method::Post => reqwest::Method::POST,
    }
}

/// A request body's bytes. Encoded through a JSON value: its keys go out sorted, byte for byte
/// what the backend has always received from this client.
pub(crate) fn body_bytes<B: Serialize + ?Sized>(
    body: Option<&B>,
) -> Result<Option<Vec<u8>>, CallError> {
    body.map(|b| serde_json::to_value(b).and_then(|v| serde_json::to_vec(&v)))
        .transpose()
        .map_err(|e| {
            CallError::Local(Box::new(
                WalletError::internal(format!("request body: {e}")).into(),
            ))
        })
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

#[cfg(test)]
mod tests {
    use super::*;

    fn problem(status: u16, code: &str) -> OnlineError {
        let body = serde_json::json!({
            "type": "about:blank",
            "title": "",
            "status": status,
            "detail": format!("detail of {code}"),
            "code": code,
        });
        let problem = ProblemAnswer::parse(body.to_string().as_bytes()).unwrap();
        CallError::Problem { status, problem }.into()
    }

    #[test]
    fn problem_codes_map_to_what_the_app_can_do() {
        assert!(matches!(
            problem(401, "unauthorized"),
            OnlineError::SessionExpired
        ));
        assert!(matches!(
            problem(409, "credential_revoked"),
            OnlineError::CredentialRevoked { .. }
        ));
        assert!(matches!(
            problem(409, "binding_key_in_use"),
            OnlineError::AccountBlocked { .. }
        ));
        assert!(matches!(
            problem(403, "forbidden"),
            OnlineError::AccountBlocked { .. }
        ));
        assert!(matches!(
            problem(429, "rate_limited"),
            OnlineError::RateLimited { .. }
        ));
        assert!(matches!(
            problem(400, "invalid_amount"),
            OnlineError::Validation { code, message }
                if code == "invalid_amount" && message == "detail of invalid_amount"
        ));
        // A code this build does not know reaches the app as sent.
        assert!(matches!(
            problem(400, "injected_bad_request"),
            OnlineError::Validation { code, .. } if code == "injected_bad_request"
        ));
        // Blocked codes outside the contract are understood all the same.
        assert!(matches!(
            problem(400, "account_blocked"),
            OnlineError::AccountBlocked { .. }
        ));
        assert!(matches!(
            problem(400, "device_blocked"),
            OnlineError::AccountBlocked { .. }
        ));
        // An error answer that is no problem document maps by its status.
        let p = ProblemAnswer::of_status(StatusCode::UNAUTHORIZED);
        assert!(matches!(
            OnlineError::from(CallError::Problem {
                status: 401,
                problem: p
            }),
            OnlineError::SessionExpired
        ));
        let p = ProblemAnswer::of_status(StatusCode::BAD_REQUEST);
        assert!(matches!(
            OnlineError::from(CallError::Problem { status: 400, problem: p }),
            OnlineError::Validation { code, message } if code == "http_error" && message == "400 Bad Request"
        ));
        let offline: OnlineError = CallError::Transport {
            message: "x".into(),
            source: None,
        }
        .into();
        assert!(offline.is_retryable());
        let server: OnlineError = CallError::Server("x".into()).into();
        assert!(server.is_retryable());
        assert!(!OnlineError::SessionExpired.is_retryable());
    }

    fn sent(body: &impl Serialize) -> Vec<u8> {
        serde_json::to_vec(&serde_json::to_value(body).unwrap()).unwrap()
    }

    /// The request bodies built from `mancard_api` types go out byte for byte as the
    /// hand-written `json!` bodies they replaced.
    #[test]
    fn request_bodies_keep_their_bytes() {
        use serde_json::json;
        let otp = mancard_api::OtpRequest {
            phone: "+989121234567".into(),
        };
        assert_eq!(sent(&otp), sent(&json!({ "phone": "+989121234567" })));
        let session = mancard_api::SessionRequest {
            phone: "+989121234567".into(),
            code: "12345678".into(),
            request_id: "00112233445566778899aabbccddeeff".into(),
        };
        let old = json!({
            "phone": "+989121234567",
            "code": "12345678",
            "request_id": "00112233445566778899aabbccddeeff",
        });
        assert_eq!(sent(&session), sent(&old));
        let cred = mancard_api::CredentialRequest {
            nonce: "aa".into(),
            binding_public_key: "bb".into(),
            tap_public_key: "cc".into(),
            signature: "dd".into(),
            next_counter: Some(7),
        };
        let old = json!({
            "nonce": "aa",
            "binding_public_key": "bb",
            "tap_public_key": "cc",
            "signature": "dd",
            "next_counter": 7u32,
        });
        assert_eq!(sent(&cred), sent(&old));
        let topup = mancard_api::TopupRequest {
            amount: 50_000,
            idempotency_key: "k".into(),
        };
        let old = json!({ "amount": 50_000i64, "idempotency_key": "k" });
        assert_eq!(sent(&topup), sent(&old));
        let sync = mancard_api::SyncRequest {
            pseudonym: "ff".into(),
            cursor: 3,
            entries: vec!["01".into()],
            verdict_cursor: 0,
        };
        let old =
            json!({ "pseudonym": "ff", "cursor": 3i64, "entries": ["01"], "verdict_cursor": 0i64 });
        assert_eq!(sent(&sync), sent(&old));
    }
}
