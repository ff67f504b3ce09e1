//! The HTTP layer: one router per resource, each file owning its routes and handlers, merged
//! here with the fallbacks and layers. Handlers only parse, call the [`Engine`] on a blocking
//! thread and render; errors become problem documents in [`problem`], the one place that
//! chooses status codes.

mod account;
mod admin;
mod admission;
mod auth;
mod credential;
pub mod extract;
pub mod gateway_sandbox;
mod limits;
pub(crate) use admission::{Held, PerAddress};
pub(crate) use limits::AddressKey;
pub mod openapi;
mod operator;
pub mod problem;
mod sandbox;
mod topup;
mod validator;
mod wallet;

/// The problem document type, for the OpenAPI annotations.
pub(crate) use mancard_api::Problem;
pub use openapi::ApiDoc;
pub use problem::{ApiProblem, HttpResult};

use crate::engine::Engine;
use axum::error_handling::HandleErrorLayer;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::Router;
use mancard_api::ProblemCode;
use std::sync::Arc;

/// Shared state of the handlers.
pub type AppState = Arc<Engine>;

/// Runs engine work on a blocking thread (SQLite never runs on the async runtime).
pub async fn blocking<T: Send + 'static>(
    engine: &AppState,
    f: impl FnOnce(&Engine) -> crate::Result<T> + Send + 'static,
) -> HttpResult<T> {
    let e = Arc::clone(engine);
    Ok(tokio::task::spawn_blocking(move || f(&e))
        .await
        .map_err(|e| ApiProblem::internal(&e))??)
}

async fn not_found() -> ApiProblem {
    ApiProblem::new(
        StatusCode::NOT_FOUND,
        ProblemCode::NotFound,
        "no such endpoint",
    )
}

async fn method_not_allowed() -> ApiProblem {
    ApiProblem::new(
        StatusCode::METHOD_NOT_ALLOWED,
        ProblemCode::MethodNotAllowed,
        "this endpoint does not take that method",
    )
}

/// Structured access log: method, path (no query, no headers), status, duration.
async fn access_log(req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let start = std::time::Instant::now();
    let resp = next.run(req).await;
    let status = resp.status().as_u16();
    let ms = start.elapsed().as_secs_f64() * 1e3;
    if status >= 500 {
        tracing::error!(%method, %path, status, ms, "request");
    } else {
        tracing::info!(%method, %path, status, ms, "request");
    }
    resp
}

/// No text with a NUL character (U+0000) gets in: PostgreSQL cannot store one in a text
/// column (it would answer a client's mistake with an error that is a 500), and no field of
/// the API has a use for it. Refused with 400, changing nothing: a `%00` in the path or query
/// (`invalid_query`), a `\u0000` escape in a JSON body (`invalid_json`), a `%00` in a form
/// body (`invalid_query`). Other bodies (batch uploads are binary) are not text and pass.
/// The bodies looked at were already read whole by admission, within the JSON limit.
async fn refuse_nul(
    axum::extract::State(limit): axum::extract::State<usize>,
    req: Request,
    next: Next,
) -> Response {
    use axum::response::IntoResponse;
    let refuse = |code, what: &str| {
        problem::ApiProblem::new(
            StatusCode::BAD_REQUEST,
            code,
            format!("{what} contains a NUL character (U+0000), which no field accepts"),
        )
        .into_response()
    };
    if req
        .uri()
        .path_and_query()
        .is_some_and(|pq| pq.as_str().contains("%00"))
    {
        return refuse(ProblemCode::InvalidQuery, "the URL");
    }
    let kind = req
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        });
    let json = kind
        .as_deref()
        .is_some_and(|k| k == "application/json" || k.ends_with("+json"));
    let form = kind.as_deref() == Some("application/x-www-form-urlencoded");
    if !json && !form {
        return next.run(req).await;
    }
    let (parts, body) = req.into_parts();
    let bytes = match axum::body::to_bytes(body, limit).await {
        Ok(b) => b,
        Err(_) => {
            return problem::ApiProblem::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                ProblemCode::PayloadTooLarge,
                "the body is larger than this endpoint takes",
            )
            .into_response()
        }
    };
    if json && json_has_nul(&bytes) {
        return refuse(ProblemCode::InvalidJson, "the JSON body");
    }
    if form && bytes.windows(3).any(|w| w == b"%00") {
        return refuse(ProblemCode::InvalidQuery, "the form");
    }
    next.run(Request::from_parts(parts, axum::body::Body::from(bytes)))
        .await
}

/// Whether JSON text holds a `\u0000` escape (a raw NUL is not valid JSON at all): a `u0000`
/// after an odd number of backslashes (an even number is escaped backslashes, then text).
fn json_has_nul(b: &[u8]) -> bool {
    let mut from = 0;
    while let Some(at) = b
        .get(from..)
        .and_then(|rest| rest.windows(5).position(|w| w == b"u0000"))
    {
        let at = from + at;
        let slashes = b.get(..at).map_or(0, |head| {
            head.iter().rev().take_while(|c| **c == b'\\').count()
        });
        if slashes % 2 == 1 {
            return true;
        }
        from = at + 1;
    }
    false
}

/// Every client error is a problem document: an answer axum itself made in plain text (a path
/// parameter that is not UTF-8, say) is rewritten as one, with a code chosen by its status.
async fn plain_errors_as_problems(req: Request, next: Next) -> Response {
    let resp = next.run(req).await;
    let status = resp.status();
    let plain = resp
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_none_or(|t| t.starts_with("text/plain"));
    if !status.is_client_error() || !plain {
        return resp;
    }
    let retry_after = resp.headers().get(axum::http::header::RETRY_AFTER).cloned();
    let text = axum::body::to_bytes(resp.into_body(), 4096)
        .await
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let code = match status {
        StatusCode::NOT_FOUND => ProblemCode::NotFound,
        StatusCode::METHOD_NOT_ALLOWED => ProblemCode::MethodNotAllowed,
        StatusCode::PAYLOAD_TOO_LARGE => ProblemCode::PayloadTooLarge,
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ProblemCode::UnsupportedMediaType,
        StatusCode::REQUEST_TIMEOUT => ProblemCode::RequestTimeout,
        StatusCode::TOO_MANY_REQUESTS => ProblemCode::RateLimited,
        _ => ProblemCode::InvalidQuery,
    };
    let detail = if text.trim().is_empty() {
        "the request could not be read".to_string()
    } else {
        text
    };
    let mut out =
        axum::response::IntoResponse::into_response(ApiProblem::new(status, code, detail));
    if let Some(v) = retry_after {
        out.headers_mut().insert(axum::http::header::RETRY_AFTER, v);
    }
    out
}

/// The router of the whole API with the edge's layers (outermost first): the access log;
/// admission (bodies read whole first, batch uploads in their own lane, requests at once
/// per address; see `admission`); the whole-request timeout (408) and load shedding (503 + `Retry-After`
/// once `max_in_flight` requests are running); the body-read timeout; the body limit; the
/// rate limits (429 + `Retry-After`, fresh buckets); then the routes. All configured by
/// `BackendConfig::edge`.
pub fn router(state: AppState) -> Router {
    let edge = state.config().edge.clone();
    let limiters = Arc::new(limits::EdgeLimiters::new(&edge));
    let admission = Arc::new(admission::Admission::new(
        &edge,
        state.config().policy.json_body_limit,
        Arc::clone(&limiters),
    ));
    let shed_after = edge.shed_retry_after_secs;
    let in_flight = Arc::new(tokio::sync::Semaphore::new(edge.max_in_flight.max(1)));
    let gate = tower::ServiceBuilder::new()
        .layer(HandleErrorLayer::new(move |e: tower::BoxError| async move {
            limits::overloaded_or_timed_out(&e, shed_after)
        }))
        .timeout(edge.request_timeout)
        .load_shed()
        .layer(tower::limit::GlobalConcurrencyLimitLayer::with_semaphore(
            in_flight,
        ));
    let policy = &state.config().policy;
    let (json_limit, batch_limit) = (policy.json_body_limit, policy.batch_body_limit);
    let mut r = Router::new()
        .merge(openapi::routes())
        .merge(auth::routes())
        .merge(account::routes())
        .merge(credential::routes())
        .merge(topup::routes())
        .merge(wallet::routes())
        .merge(validator::routes(batch_limit))
        .merge(admin::routes());
    if state.config().sandbox {
        r = r.merge(sandbox::routes());
    }
    r.fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(
            (limiters, Arc::clone(&state)),
            limits::enforce,
        ))
        .layer(middleware::from_fn_with_state(json_limit, refuse_nul))
        .layer(DefaultBodyLimit::max(json_limit))
        .layer(tower_http::timeout::RequestBodyTimeoutLayer::new(
            edge.body_read_timeout,
        ))
        .layer(gate)
        .layer(middleware::from_fn_with_state(admission, admission::admit))
        .layer(middleware::from_fn(plain_errors_as_problems))
        .layer(middleware::from_fn(access_log))
        .with_state(state)
}

#[cfg(test)]
mod nul_tests {
    use super::json_has_nul;

    #[test]
    fn a_nul_escape_is_told_from_escaped_backslashes() {
        assert!(json_has_nul(br#"{"note":"a\u0000b"}"#));
        assert!(json_has_nul(br#"{"a\u0000":1}"#));
        assert!(json_has_nul(br#"{"note":"\\\u0000"}"#));
        assert!(!json_has_nul(br#"{"note":"\\u0000"}"#));
        assert!(!json_has_nul(br#"{"note":"\u0001 u0000"}"#));
        assert!(!json_has_nul(b""));
    }
}
