//! The provider flags of `mancard backend serve`: the SMS web service and the payment
//! gateway of production mode (secrets are read from environment variables named by flags,
//! never from the command line), and the sandbox gateway's URL in sandbox mode.

use clap::Args;
use mancard_backend::providers::{GatewayConfig, ProvidersConfig, SmsConfig};
use std::time::Duration;

#[derive(Args, Debug, Clone)]
pub struct ProviderArgs {
    /// SMS web service base URL (Kavenegar-style template API, e.g.
    /// https://api.kavenegar.com/v1); production mode needs it.
    #[arg(long)]
    sms_url: Option<String>,
    /// The SMS template holding the one-time code.
    #[arg(long)]
    sms_template: Option<String>,
    /// Environment variable holding the SMS service's API key.
    #[arg(long, default_value = "MANCARD_SMS_API_KEY")]
    sms_api_key_env: String,
    /// Shaparak-style payment gateway base URL; production mode needs it.
    #[arg(long)]
    gateway_url: Option<String>,
    /// The merchant's terminal id at the gateway.
    #[arg(long)]
    gateway_terminal: Option<String>,
    /// Environment variable holding the gateway's API key.
    #[arg(long, default_value = "MANCARD_GATEWAY_API_KEY")]
    gateway_api_key_env: String,
    /// Sandbox mode: the sandbox gateway at this URL (`mancard gateway-sandbox serve`); without
    /// it a sandbox backend starts one in-process on a loopback port.
    #[arg(long)]
    sandbox_gateway_url: Option<String>,
    /// Seconds after which a gateway or SMS call counts as unanswered (retried later).
    #[arg(long, default_value_t = 5)]
    provider_timeout_secs: u64,
}

fn secret(var: &str, what: &str) -> Result<String, String> {
    match std::env::var(var) {
        Ok(v) if v.len() >= 8 => Ok(v),
        _ => Err(format!(
            "{what}: set the environment variable {var} (at least 8 characters)"
        )),
    }
}

/// A production provider's URL: https, or http on loopback (a local relay).
fn checked_url(url: &str, what: &str) -> Result<String, String> {
    let loopback = ["http://127.0.0.1", "http://localhost", "http://[::1]"]
        .iter()
        .any(|p| url.starts_with(p));
    if url.starts_with("https://") || loopback {
        Ok(url.trim_end_matches('/').to_string())
    } else {
        Err(format!(
            "{what} must be an https:// URL (or http:// on loopback), not {url:?}"
        ))
    }
}

impl ProviderArgs {
    /// The providers' configuration these flags ask for.
    pub fn config(&self) -> Result<ProvidersConfig, String> {
        let sms = match (&self.sms_url, &self.sms_template) {
            (None, None) => SmsConfig::Sandbox,
            (Some(url), Some(template)) => SmsConfig::Http {
                url: checked_url(url, "--sms-url")?,
                api_key: secret(&self.sms_api_key_env, "the SMS service's API key")?,
                template: template.clone(),
            },
            _ => return Err("--sms-url and --sms-template go together".into()),
        };
        let gateway = match (
            &self.gateway_url,
            &self.gateway_terminal,
            &self.sandbox_gateway_url,
        ) {
            (Some(_), _, Some(_)) => {
                return Err("--gateway-url and --sandbox-gateway-url exclude each other".into())
            }
            (Some(url), Some(terminal), None) => GatewayConfig::Shaparak {
                url: checked_url(url, "--gateway-url")?,
                terminal_id: terminal.clone(),
                api_key: secret(&self.gateway_api_key_env, "the payment gateway's API key")?,
            },
            (Some(_), None, None) => return Err("--gateway-url needs --gateway-terminal".into()),
            (None, _, Some(url)) => GatewayConfig::SandboxAt(url.trim_end_matches('/').into()),
            (None, _, None) => GatewayConfig::Sandbox,
        };
        if self.provider_timeout_secs == 0 {
            return Err("--provider-timeout-secs must be positive".into());
        }
        Ok(ProvidersConfig {
            sms,
            gateway,
            call_timeout: Duration::from_secs(self.provider_timeout_secs),
        })
    }
}
