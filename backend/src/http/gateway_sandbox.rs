//! The sandbox payment gateway's HTTP face (a server of its own, not the backend's API; its
//! logic is in [`crate::gateway_sandbox`]): the merchant API (`/ipg/v1/*`), the rider's payment page
//! (`/pay/{token}`) and the admin endpoints that flip failure switches (`/admin/*`).

use crate::gateway_sandbox::{Faults, PageError, PageOutcome, SandboxGateway, VerifyCall};
use crate::providers::payment::{GatewayState, PaymentRequest, TokenRequest};
use axum::extract::rejection::FormRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use serde::Deserialize;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;

type St = Arc<Sandbox>;

/// The shared state of the HTTP face.
#[derive(Debug)]
pub struct Sandbox {
    pub gateway: Arc<SandboxGateway>,
    /// How long a call that "never answers" hangs before the connection is dropped.
    pub hang: Duration,
}

/// How to run the sandbox gateway.
#[derive(Debug, Clone)]
pub struct SandboxGatewayConfig {
    /// Listen address (port 0: an ephemeral port).
    pub listen: SocketAddr,
    /// Base URL put in payment links; default `http://<bound address>`.
    pub public_url: Option<String>,
    /// Switches on from the start, for every payment.
    pub faults: Faults,
    /// How long a hanging call hangs (default 120 s: longer than any merchant waits).
    pub hang: Duration,
}

impl SandboxGatewayConfig {
    /// On an ephemeral loopback port, no failures.
    pub fn loopback() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            public_url: None,
            faults: Faults::default(),
            hang: Duration::from_secs(120),
        }
    }
}

/// A running sandbox gateway. Dropping it stops the server.
#[derive(Debug)]
pub struct SandboxGatewayHandle {
    addr: SocketAddr,
    url: String,
    gateway: Arc<SandboxGateway>,
    stop: tokio::sync::watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl SandboxGatewayHandle {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The gateway's base URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The gateway's state (tests flip switches and read records through it or over HTTP).
    pub fn gateway(&self) -> &Arc<SandboxGateway> {
        &self.gateway
    }

    /// Stops the server: no new connection is accepted and idle ones are closed (a hanging
    /// call ends when its hang does).
    pub fn stop(&self) {
        let _ = self.stop.send(true);
    }
}

impl Drop for SandboxGatewayHandle {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        self.task.abort();
    }
}

/// Binds and serves the sandbox gateway. Must be called inside a tokio runtime.
pub async fn start(cfg: SandboxGatewayConfig) -> std::io::Result<SandboxGatewayHandle> {
    let listener = tokio::net::TcpListener::bind(cfg.listen).await?;
    let addr = listener.local_addr()?;
    let url = cfg
        .public_url
        .map(|u| u.trim_end_matches('/').to_string())
        .unwrap_or_else(|| format!("http://{addr}"));
    let gateway = Arc::new(SandboxGateway::new(cfg.faults));
    let app = router(Arc::new(Sandbox {
        gateway: Arc::clone(&gateway),
        hang: cfg.hang,
    }));
    let (stop, mut stopped) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(async move {
        let signal = async move {
            let _ = stopped.wait_for(|s| *s).await;
        };
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(signal)
            .await
        {
            tracing::warn!(error = %e, "sandbox gateway stopped");
        }
    });
    tracing::info!(%addr, "sandbox payment gateway listening");
    Ok(SandboxGatewayHandle {
        addr,
        url,
        gateway,
        stop,
        task,
    })
}

/// The sandbox gateway's routes.
pub fn router(state: St) -> Router {
    Router::new()
        .route("/ipg/v1/token", post(token))
        .route("/ipg/v1/verify", post(verify))
        .route("/ipg/v1/settle", post(settle))
        .route("/ipg/v1/reverse", post(reverse))
        .route("/pay/{token}", get(page).post(pay))
        .route("/pay/{token}/cancel", post(cancel))
        .route("/admin/faults", post(set_faults))
        .route("/admin/payments/{token}", get(payment))
        .route("/admin/clock", post(advance_clock))
        .route("/healthz", get(|| async { "ok" }))
        .with_state(state)
}

async fn token(State(s): State<St>, Json(req): Json<TokenRequest>) -> Response {
    Json(s.gateway.token(&req)).into_response()
}

async fn verify(State(s): State<St>, Json(req): Json<PaymentRequest>) -> Response {
    match s.gateway.verify_call(&req.terminal_id, &req.token) {
        VerifyCall::Answer(a) => Json(a).into_response(),
        VerifyCall::Hang => {
            tokio::time::sleep(s.hang).await;
            StatusCode::GATEWAY_TIMEOUT.into_response()
        }
    }
}

async fn settle(State(s): State<St>, Json(req): Json<PaymentRequest>) -> Response {
    Json(s.gateway.settle_call(&req.terminal_id, &req.token)).into_response()
}

async fn reverse(State(s): State<St>, Json(req): Json<PaymentRequest>) -> Response {
    Json(s.gateway.reverse_call(&req.terminal_id, &req.token)).into_response()
}

fn esc(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '<' => "&lt;".to_string(),
            '>' => "&gt;".to_string(),
            '&' => "&amp;".to_string(),
            '"' => "&quot;".to_string(),
            '\'' => "&#39;".to_string(),
            c => c.to_string(),
        })
        .collect()
}

fn html_page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{title}</title></head>\
         <body><h1>Sandbox payment gateway (Shaparak IPG simulation)</h1>{body}</body></html>"
    );
    (status, Html(html)).into_response()
}

fn page_error(e: PageError) -> Response {
    let status = match e {
        PageError::UnknownPayment => StatusCode::NOT_FOUND,
        PageError::Expired => StatusCode::CONFLICT,
    };
    html_page(
        status,
        "Payment refused",
        &format!("<p id=\"error\">{}</p>", esc(&e.to_string())),
    )
}

async fn page(State(s): State<St>, Path(token): Path<String>) -> Response {
    let Some(p) = s.gateway.payment(&token) else {
        return page_error(PageError::UnknownPayment);
    };
    let t = esc(&p.token);
    let state = p.state.as_str();
    let form = if p.state == GatewayState::Pending {
        format!(
            "<form method=\"post\" action=\"/pay/{t}\"><label>Card number \
             <input id=\"pan\" name=\"pan\" value=\"6037991234561234\"></label> \
             <button id=\"pay\" type=\"submit\">Pay</button></form>\
             <form method=\"post\" action=\"/pay/{t}/cancel\">\
             <button id=\"cancel\" type=\"submit\">Cancel</button></form>"
        )
    } else {
        String::new()
    };
    let body = format!(
        "<p>Merchant terminal: {}. Order: {}. Amount: <b id=\"amount\">{}</b> rials ({} toman).</p>\
         <p>Status: <span id=\"status\">{state}</span>; the page expires at {} (UTC seconds).</p>{form}",
        esc(&p.terminal_id),
        esc(&p.order_id),
        p.amount,
        p.amount / 10,
        p.expires_at
    );
    html_page(StatusCode::OK, "Sandbox payment gateway", &body)
}

#[derive(Debug, Default, Deserialize)]
struct PayForm {
    #[serde(default)]
    pan: String,
}

fn outcome(r: Result<PageOutcome, PageError>) -> Response {
    match r {
        Ok(PageOutcome::Redirect(url)) => Redirect::to(&url).into_response(),
        Ok(PageOutcome::Stay(state)) => html_page(
            StatusCode::OK,
            "Payment done",
            &format!(
                "<p>Payment <span id=\"status\">{}</span>. You may close this page.</p>",
                state.as_str()
            ),
        ),
        Err(e) => page_error(e),
    }
}

async fn pay(
    State(s): State<St>,
    Path(token): Path<String>,
    form: Result<Form<PayForm>, FormRejection>,
) -> Response {
    let pan = form.map(|Form(f)| f.pan).unwrap_or_default();
    outcome(s.gateway.submit(&token, true, &pan))
}

async fn cancel(State(s): State<St>, Path(token): Path<String>) -> Response {
    outcome(s.gateway.submit(&token, false, ""))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FaultsRequest {
    /// One payment's switches; absent: the global ones.
    #[serde(default)]
    token: Option<String>,
    faults: Faults,
}

async fn set_faults(State(s): State<St>, Json(req): Json<FaultsRequest>) -> Response {
    if s.gateway.set_faults(req.token.as_deref(), req.faults) {
        StatusCode::NO_CONTENT.into_response()
    } else {
        (StatusCode::NOT_FOUND, "no such payment").into_response()
    }
}

async fn payment(State(s): State<St>, Path(token): Path<String>) -> Response {
    match s.gateway.payment(&token) {
        Some(p) => Json(p).into_response(),
        None => (StatusCode::NOT_FOUND, "no such payment").into_response(),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ClockRequest {
    advance_secs: i64,
}

async fn advance_clock(State(s): State<St>, Json(req): Json<ClockRequest>) -> Response {
    s.gateway.advance_clock(req.advance_secs);
    StatusCode::NO_CONTENT.into_response()
}
