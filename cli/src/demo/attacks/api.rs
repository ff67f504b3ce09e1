//! The reel's raw HTTP client: any request a tampered app, an attacker or an operator sends
//! to the backend's `/v1` API, answered with the status and the JSON body as they came
//! (a refusal is a problem document: its `code` is what the reel checks).

use super::super::{Res, HTTP_TIMEOUT};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

/// One answer: the HTTP status and the body (JSON, or a JSON string of the text).
#[derive(Debug, Clone)]
pub(super) struct Answer {
    pub(super) status: u16,
    pub(super) body: Value,
}

impl Answer {
    /// The problem code of a refusal (`code` of the problem document), if any.
    pub(super) fn code(&self) -> &str {
        self.body.get("code").and_then(Value::as_str).unwrap_or("")
    }

    /// "409 chain_conflict", "200 OK".
    pub(super) fn said(&self) -> String {
        if self.status < 300 {
            format!("{} OK", self.status)
        } else {
            format!("{} {}", self.status, self.code())
        }
    }

    /// The body as `T` (a 2xx answer).
    pub(super) fn parse<T: DeserializeOwned>(&self) -> Res<T> {
        if self.status >= 300 {
            return Err(format!("the backend answered {}: {}", self.said(), self.body).into());
        }
        Ok(serde_json::from_value(self.body.clone())
            .map_err(|e| format!("unreadable answer ({}): {e}", self.status))?)
    }
}

/// A raw HTTP client of the reel's backend.
pub(super) struct Api {
    http: reqwest::Client,
    base: String,
}

impl Api {
    pub(super) fn new(base: String) -> Res<Self> {
        Ok(Self {
            http: reqwest::Client::builder()
                .timeout(HTTP_TIMEOUT)
                .no_proxy()
                .build()
                .map_err(|e| format!("HTTP client: {e}"))?,
            base,
        })
    }

    /// `POST path` with a JSON body (or none) and a bearer token (or none).
    pub(super) fn post<B: Serialize>(
        &self,
        rt: &tokio::runtime::Runtime,
        path: &str,
        token: Option<&str>,
        body: Option<&B>,
    ) -> Res<Answer> {
        let mut rb = self.http.post(format!("{}{path}", self.base));
        if let Some(t) = token {
            rb = rb.bearer_auth(t);
        }
        if let Some(b) = body {
            rb = rb.json(b);
        }
        rt.block_on(send(rb, path))
    }

    /// `GET path` with a bearer token (or none).
    pub(super) fn get(
        &self,
        rt: &tokio::runtime::Runtime,
        path: &str,
        token: Option<&str>,
    ) -> Res<Answer> {
        let mut rb = self.http.get(format!("{}{path}", self.base));
        if let Some(t) = token {
            rb = rb.bearer_auth(t);
        }
        rt.block_on(send(rb, path))
    }

    /// `POST path` with raw bytes (a validator's signed batch).
    pub(super) fn post_bytes(
        &self,
        rt: &tokio::runtime::Runtime,
        path: &str,
        bytes: Vec<u8>,
    ) -> Res<Answer> {
        let rb = self
            .http
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/octet-stream")
            .body(bytes);
        rt.block_on(send(rb, path))
    }
}

async fn send(rb: reqwest::RequestBuilder, path: &str) -> Res<Answer> {
    let resp = rb.send().await.map_err(|e| format!("{path}: {e}"))?;
    let status = resp.status().as_u16();
    let text = resp
        .text()
        .await
        .map_err(|e| format!("{path}: unreadable answer ({status}): {e}"))?;
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Ok(Answer { status, body })
}
