//! Sending one-time codes by SMS: an [`SmsSender`] trait, the sandbox inbox and an HTTP sender
//! for an Iranian SMS web service's template ("verify/lookup") API, Kavenegar style:
//! `GET {url}/{api_key}/verify/lookup.json?receptor=…&token=…&template=…`, answering
//! `{"return": {"status": 200, "message": …}}` on success.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

/// Why a code could not be sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SmsError {
    #[error("the SMS service did not answer: {0}")]
    Unavailable(String),
    #[error("the SMS service refused the message ({0})")]
    Refused(i64),
}

/// Sends a one-time code to a phone number (E.164). Blocks (the engine calls it on a blocking
/// thread).
pub trait SmsSender: Send + Sync + std::fmt::Debug {
    fn send_code(&self, phone: &str, code: &str) -> Result<(), SmsError>;
}

/// A message the sandbox sender "sent".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxSms {
    pub phone: String,
    pub code: String,
}

/// The sandbox sender: keeps the last messages in memory (the codes are also readable at
/// `/sandbox/otp` in sandbox mode).
#[derive(Debug, Default)]
pub struct SandboxInbox {
    inbox: Mutex<VecDeque<SandboxSms>>,
}

const INBOX_SIZE: usize = 1_000;

impl SandboxInbox {
    /// The messages sent to `phone`, oldest first.
    pub fn messages(&self, phone: &str) -> Vec<SandboxSms> {
        let g = self.inbox.lock().unwrap_or_else(|p| p.into_inner());
        g.iter().filter(|m| m.phone == phone).cloned().collect()
    }
}

impl SmsSender for SandboxInbox {
    fn send_code(&self, phone: &str, code: &str) -> Result<(), SmsError> {
        let mut g = self.inbox.lock().unwrap_or_else(|p| p.into_inner());
        if g.len() >= INBOX_SIZE {
            g.pop_front();
        }
        g.push_back(SandboxSms {
            phone: phone.to_string(),
            code: code.to_string(),
        });
        Ok(())
    }
}

/// The template ("lookup") API of a Kavenegar-style SMS web service.
pub struct HttpSms {
    url: String,
    api_key: String,
    template: String,
    http: reqwest::blocking::Client,
}

impl std::fmt::Debug for HttpSms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // the API key is part of the request path: never printed
        f.debug_struct("HttpSms")
            .field("url", &self.url)
            .field("template", &self.template)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, serde::Deserialize)]
struct LookupAnswer {
    #[serde(rename = "return")]
    ret: LookupReturn,
}

#[derive(Debug, serde::Deserialize)]
struct LookupReturn {
    status: i64,
}

impl HttpSms {
    pub fn new(
        url: &str,
        api_key: &str,
        template: &str,
        timeout: Duration,
    ) -> Result<Self, SmsError> {
        let http = reqwest::blocking::Client::builder()
            .timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .build()
            .map_err(|e| SmsError::Unavailable(format!("HTTP client: {e}")))?;
        Ok(Self {
            url: url.trim_end_matches('/').to_string(),
            api_key: api_key.to_string(),
            template: template.to_string(),
            http,
        })
    }
}

impl SmsSender for HttpSms {
    fn send_code(&self, phone: &str, code: &str) -> Result<(), SmsError> {
        let url = format!("{}/{}/verify/lookup.json", self.url, self.api_key);
        let resp = self
            .http
            .get(&url)
            .query(&[
                ("receptor", phone),
                ("token", code),
                ("template", self.template.as_str()),
            ])
            // without_url: the URL holds the API key and the code
            .send()
            .map_err(|e| SmsError::Unavailable(e.without_url().to_string()))?;
        let http_status = i64::from(resp.status().as_u16());
        let answer: Option<LookupAnswer> = resp.json().ok();
        match answer {
            Some(a) if a.ret.status == 200 => Ok(()),
            Some(a) => Err(SmsError::Refused(a.ret.status)),
            None if http_status >= 500 => Err(SmsError::Unavailable(format!("HTTP {http_status}"))),
            None => Err(SmsError::Refused(http_status)),
        }
    }
}

impl crate::Engine {
    /// Sends a one-time code through the configured sender (the sandbox inbox in sandbox
    /// mode). The code is never logged outside sandbox mode.
    pub(crate) fn send_code(&self, phone: &str, code: &str) -> crate::Result<()> {
        if self.config().sandbox {
            tracing::info!(%phone, %code, "sandbox one-time code");
        }
        self.providers().sms.send_code(phone, code).map_err(|e| {
            tracing::warn!(%phone, error = %e, "the one-time code was not sent");
            crate::Error::SmsFailed
        })
    }
}
