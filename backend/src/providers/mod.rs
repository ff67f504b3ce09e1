//! The backend's outside services: the SMS sender of one-time codes ([`sms`]) and the payment
//! gateway of top-ups ([`payment`]), configured by [`ProvidersConfig`]. Sandbox mode uses the
//! sandbox inbox and the sandbox gateway ([`crate::gateway_sandbox`]); production mode needs
//! real ones and refuses to start without them.

pub mod payment;
pub mod sms;

use crate::gateway_sandbox::{InProcessGateway, SandboxGateway};
use payment::{PaymentGateway, ShaparakGateway};
use sms::{HttpSms, SandboxInbox, SmsSender};
use std::sync::Arc;
use std::time::Duration;

/// Where one-time codes go.
#[derive(Clone, Default, PartialEq, Eq)]
pub enum SmsConfig {
    /// The sandbox inbox (codes also readable at `/sandbox/otp`): sandbox mode only.
    #[default]
    Sandbox,
    /// A Kavenegar-style template API: base URL (e.g. `https://api.kavenegar.com/v1`), API key,
    /// template name.
    Http {
        url: String,
        api_key: String,
        template: String,
    },
}

impl std::fmt::Debug for SmsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Sandbox => f.write_str("Sandbox"),
            Self::Http { url, template, .. } => f
                .debug_struct("Http")
                .field("url", url)
                .field("template", template)
                .finish_non_exhaustive(),
        }
    }
}

/// The payment gateway of top-ups.
#[derive(Clone, Default, PartialEq, Eq)]
pub enum GatewayConfig {
    /// The sandbox gateway: [`crate::Backend::start`] starts one in-process on a loopback
    /// port and talks HTTP to it; an engine opened alone calls one in-process. Sandbox only.
    #[default]
    Sandbox,
    /// The sandbox gateway running at this base URL (e.g. `mancard gateway-sandbox serve`).
    SandboxAt(String),
    /// A Shaparak-style gateway: base URL, the merchant's terminal id, its API key.
    Shaparak {
        url: String,
        terminal_id: String,
        api_key: String,
    },
}

impl std::fmt::Debug for GatewayConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Sandbox => f.write_str("Sandbox"),
            Self::SandboxAt(u) => f.debug_tuple("SandboxAt").field(u).finish(),
            Self::Shaparak {
                url, terminal_id, ..
            } => f
                .debug_struct("Shaparak")
                .field("url", url)
                .field("terminal_id", terminal_id)
                .finish_non_exhaustive(),
        }
    }
}

/// The providers' configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProvidersConfig {
    pub sms: SmsConfig,
    pub gateway: GatewayConfig,
    /// A gateway or SMS call not answered in this time has an unknown outcome (retried later).
    pub call_timeout: Duration,
}

impl Default for ProvidersConfig {
    fn default() -> Self {
        Self {
            sms: SmsConfig::Sandbox,
            gateway: GatewayConfig::Sandbox,
            call_timeout: Duration::from_secs(5),
        }
    }
}

/// The terminal id the backend uses at a sandbox gateway.
pub const SANDBOX_TERMINAL: &str = "mancard-sandbox";

impl ProvidersConfig {
    /// Why production mode cannot run with this configuration, if it cannot.
    pub fn production_gap(&self) -> Option<&'static str> {
        match (&self.sms, &self.gateway) {
            (SmsConfig::Sandbox, _) => Some(
                "no SMS provider configured: production mode needs an SMS web service \
                 (URL, API key and template), or run with --sandbox",
            ),
            (_, GatewayConfig::Sandbox | GatewayConfig::SandboxAt(_)) => Some(
                "no payment gateway configured: production mode needs a Shaparak gateway \
                 (URL, terminal id and API key), or run with --sandbox",
            ),
            _ => None,
        }
    }
}

/// The providers an engine calls.
#[derive(Debug, Clone)]
pub struct Providers {
    pub sms: Arc<dyn SmsSender>,
    pub gateway: Arc<dyn PaymentGateway>,
    /// The sandbox inbox, when it is the sender.
    pub inbox: Option<Arc<SandboxInbox>>,
    /// The sandbox gateway, when the engine calls it in-process (no HTTP server).
    pub in_process_gateway: Option<Arc<SandboxGateway>>,
}

impl Providers {
    /// Builds the providers of a configuration (no network call is made).
    pub fn build(cfg: &ProvidersConfig) -> Result<Self, String> {
        let t = cfg.call_timeout;
        let (sms, inbox): (Arc<dyn SmsSender>, _) = match &cfg.sms {
            SmsConfig::Sandbox => {
                let i = Arc::new(SandboxInbox::default());
                (Arc::clone(&i) as Arc<dyn SmsSender>, Some(i))
            }
            SmsConfig::Http {
                url,
                api_key,
                template,
            } => (
                Arc::new(HttpSms::new(url, api_key, template, t).map_err(|e| e.to_string())?),
                None,
            ),
        };
        let (gateway, in_process): (Arc<dyn PaymentGateway>, _) = match &cfg.gateway {
            GatewayConfig::Sandbox => {
                let g = Arc::new(SandboxGateway::default());
                let ip = InProcessGateway {
                    sandbox: Arc::clone(&g),
                    terminal_id: SANDBOX_TERMINAL.into(),
                };
                (Arc::new(ip), Some(g))
            }
            GatewayConfig::SandboxAt(url) => (
                Arc::new(
                    ShaparakGateway::new(url, SANDBOX_TERMINAL, "sandbox", t)
                        .map_err(|e| e.to_string())?,
                ),
                None,
            ),
            GatewayConfig::Shaparak {
                url,
                terminal_id,
                api_key,
            } => (
                Arc::new(
                    ShaparakGateway::new(url, terminal_id, api_key, t)
                        .map_err(|e| e.to_string())?,
                ),
                None,
            ),
        };
        Ok(Self {
            sms,
            gateway,
            inbox,
            in_process_gateway: in_process,
        })
    }
}

/// Readies the providers of a backend about to start: production mode refuses a sandbox
/// provider; sandbox mode without a gateway URL starts the sandbox gateway on a loopback port
/// (its handle is returned: the gateway stops when it is dropped).
pub async fn prepare(
    config: &mut crate::BackendConfig,
) -> Result<Option<crate::gateway_sandbox::SandboxGatewayHandle>, String> {
    if !config.sandbox {
        return match config.providers.production_gap() {
            Some(gap) => Err(gap.to_string()),
            None => Ok(None),
        };
    }
    if config.providers.gateway != GatewayConfig::Sandbox {
        return Ok(None);
    }
    let h = crate::gateway_sandbox::start(crate::gateway_sandbox::SandboxGatewayConfig::loopback())
        .await
        .map_err(|e| format!("the sandbox payment gateway could not start: {e}"))?;
    config.providers.gateway = GatewayConfig::SandboxAt(h.url().to_string());
    Ok(Some(h))
}
