//! The untimed setup of `mancard load`: validators registered over the admin API (an
//! operator token with the `keys` scope), each with its own journal and key in a temporary
//! directory; riders logged in by one-time code (sandbox inbox), provisioned with a real
//! wallet core (file keystore) and topped up on the sandbox gateway.

use super::{LoadError, Res};
use mancard::{FileKeystore, PlatformKeystore as _, Wallet, WalletConfig};
use mancard_api::endpoints::{
    ADMIN_ISSUER_KEYS, ADMIN_VALIDATORS, CREATE_SESSION, CREATE_TOPUP, CREDENTIAL_NONCE, PROVISION,
    REQUEST_OTP, SANDBOX_OTP, TOPUP_STATUS, VALIDATOR_CONFIG,
};
use mancard_api::{
    CredentialRequest, CredentialResponse, KeysResponse, NonceResponse, OtpRequest, OtpResponse,
    Problem, RegisterValidatorRequest, RegisterValidatorResponse, SessionRequest, SessionResponse,
    TopupIntentResponse, TopupRequest, TopupStatus,
};
use mancard_protocol::provision::{provision_transcript, ProvisionPurpose};
use mancard_protocol::PublicKey;
use mancard_validator::{TrustAnchor, Validator};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::path::Path;
use std::sync::Arc;

/// The HTTP side of the setup and of the books: JSON calls with problem documents read.
#[derive(Clone)]
pub(super) struct Api {
    pub(super) http: reqwest::Client,
    pub(super) base: String,
}

impl Api {
    pub(super) fn new(base: &str) -> Res<Self> {
        // a typo'd URL is named here, not as the HTTP client's "builder error" later
        match reqwest::Url::parse(base) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {}
            _ => {
                return Err(LoadError::Args(format!(
                    "--backend {base:?}: not an http:// or https:// URL with a host"
                )))
            }
        }
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(30))
            .no_proxy()
            .build()
            .map_err(|e| LoadError::Setup(format!("HTTP client: {e}")))?;
        Ok(Self {
            http,
            base: base.trim_end_matches('/').to_string(),
        })
    }

    /// `method path` with an optional bearer token, JSON body and extra header; the JSON
    /// answer, or the status and problem as an error.
    pub(super) async fn call<B: Serialize, R: DeserializeOwned>(
        &self,
        post: bool,
        path: &str,
        token: Option<&str>,
        body: Option<&B>,
    ) -> Res<R> {
        let url = format!("{}{path}", self.base);
        let mut rb = if post {
            self.http.post(&url)
        } else {
            self.http.get(&url)
        };
        if let Some(t) = token {
            rb = rb.bearer_auth(t);
        }
        if let Some(b) = body {
            rb = rb.json(b);
        }
        let resp = rb
            .send()
            .await
            .map_err(|e| LoadError::Http(format!("{path}: {e}")))?;
        read_json(path, resp).await
    }

    pub(super) async fn nonce(&self, token: &str) -> Res<[u8; 32]> {
        let n: NonceResponse = self
            .call(true, CREDENTIAL_NONCE.path, Some(token), None::<&()>)
            .await?;
        parse_nonce(&n.nonce)
    }
}

/// The JSON answer of `resp`, or its status and problem as an error.
pub(super) async fn read_json<R: DeserializeOwned>(path: &str, resp: reqwest::Response) -> Res<R> {
    let status = resp.status();
    let bytes = resp
        .bytes()
        .await
        .map_err(|e| LoadError::Http(format!("{path}: unreadable answer ({status}): {e}")))?;
    if !status.is_success() {
        let detail = serde_json::from_slice::<Problem>(&bytes)
            .map(|p| format!("{} ({})", p.code.as_str(), p.detail))
            .unwrap_or_default();
        let hint = if status.as_u16() == 429 {
            "; start the backend with the load test's flags (docs/perf.md): \
             --rate-limit NAME=off for the limits a single client address hits"
        } else {
            ""
        };
        return Err(LoadError::Http(format!("{path}: {status} {detail}{hint}")));
    }
    serde_json::from_slice(&bytes)
        .map_err(|e| LoadError::Http(format!("{path}: unreadable answer ({status}): {e}")))
}

pub(super) fn parse_nonce(hex_nonce: &str) -> Res<[u8; 32]> {
    hex::decode(hex_nonce)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| LoadError::Http("the nonce is not 32 bytes of hex".into()))
}

/// One rider: a real wallet core with its keystore, logged in and provisioned.
pub(super) struct Rider {
    pub(super) phone: String,
    pub(super) wallet: Arc<Wallet>,
    pub(super) keystore: Arc<FileKeystore>,
    pub(super) token: String,
    /// The certificate's card pseudonym (hex), as fare entries name it.
    pub(super) pseudonym: String,
    /// The top-up intent of the setup.
    pub(super) setup_topup: String,
}

/// Registers validator `id` with the backend over the admin API and sets it up as an operator
/// does: trust anchor, certificate, signed config bundle.
pub(super) async fn validator(
    api: &Api,
    admin_token: &str,
    dir: &Path,
    (id, line): (u32, u32),
) -> Res<Validator> {
    let keys: KeysResponse = api
        .call(
            false,
            ADMIN_ISSUER_KEYS.path,
            Some(admin_token),
            None::<&()>,
        )
        .await?;
    let current = keys
        .keys
        .iter()
        .find(|k| k.key_id == keys.current_key_id)
        .ok_or_else(|| LoadError::Setup("the backend names no current issuer key".into()))?;
    let anchor = TrustAnchor {
        key_id: Some(current.key_id),
        public_key: PublicKey::from_bytes(
            &hex::decode(&current.public_key)
                .map_err(|e| LoadError::Setup(format!("issuer key: {e}")))?,
            "issuer key",
        )
        .map_err(|e| LoadError::Setup(format!("issuer key: {e}")))?,
    };
    let setup = |e: &dyn std::fmt::Display| LoadError::Setup(format!("validator {id}: {e}"));
    let mut v = Validator::init(dir, &anchor, id, line).map_err(|e| setup(&e))?;
    let body = RegisterValidatorRequest::new(id, hex::encode(v.public_key().as_bytes()));
    let r: RegisterValidatorResponse = api
        .call(true, ADMIN_VALIDATORS.path, Some(admin_token), Some(&body))
        .await?;
    let bundle = api
        .http
        .get(format!("{}{}", api.base, VALIDATOR_CONFIG.path))
        .send()
        .await
        .map_err(|e| setup(&e))?
        .bytes()
        .await
        .map_err(|e| setup(&e))?;
    v.install_config(&bundle).map_err(|e| setup(&e))?;
    let cert = hex::decode(&r.certificate).map_err(|e| setup(&e))?;
    v.install_certificate(&cert).map_err(|e| setup(&e))?;
    Ok(v)
}

/// A rider with phone `phone`: a fresh wallet in `dir`, logged in, topped up with `topup`
/// rials, provisioned.
pub(super) async fn rider(api: &Api, dir: &Path, phone: &str, topup: i64) -> Res<Rider> {
    let fail = |e: &dyn std::fmt::Display| LoadError::Setup(format!("rider {phone}: {e}"));
    let keystore =
        Arc::new(FileKeystore::open_or_create(dir.join("keystore")).map_err(|e| fail(&e))?);
    let config = WalletConfig {
        // One simulated rider taps far more often than a person could: the phone's own
        // guard against a rogue reader (6 a minute) would throttle the load, not the backend.
        max_authorizations_per_minute: 1_000_000,
        ..WalletConfig::default()
    };
    let wallet =
        Arc::new(Wallet::open(dir.join("wallet"), keystore.clone(), config).map_err(|e| fail(&e))?);
    let otp: OtpResponse = api
        .call(
            true,
            REQUEST_OTP.path,
            None,
            Some(&OtpRequest {
                phone: phone.to_string(),
            }),
        )
        .await?;
    let query = format!(
        "{}?phone={}&request_id={}",
        SANDBOX_OTP.path,
        otp.phone.replace('+', "%2B"),
        otp.request_id
    );
    let code: mancard_api::SandboxOtp = api.call(false, &query, None, None::<&()>).await?;
    let session: SessionResponse = api
        .call(
            true,
            CREATE_SESSION.path,
            None,
            Some(&SessionRequest {
                phone: otp.phone.clone(),
                code: code.code,
                request_id: otp.request_id,
            }),
        )
        .await?;
    let mut rider = Rider {
        phone: otp.phone,
        wallet,
        keystore,
        token: session.token,
        pseudonym: String::new(),
        setup_topup: String::new(),
    };
    // money first, so the certificate's offline allowance is not 0
    rider.setup_topup = top_up(api, &rider, topup, &format!("load-setup-{phone}")).await?;
    rider.pseudonym = provision(api, &rider).await?;
    Ok(rider)
}

/// Provisions the rider's wallet (binding-key proof over a fresh nonce) and installs what the
/// backend answered; the certificate's pseudonym.
async fn provision(api: &Api, rider: &Rider) -> Res<String> {
    let fail = |e: &dyn std::fmt::Display| LoadError::Setup(format!("provision: {e}"));
    let req = rider
        .wallet
        .prepare_credential_request()
        .map_err(|e| fail(&e))?;
    let nonce = api.nonce(&rider.token).await?;
    let transcript = provision_transcript(
        ProvisionPurpose::Provision,
        &nonce,
        &PublicKey::from_bytes(&req.binding_public_key, "binding key").map_err(|e| fail(&e))?,
        &PublicKey::from_bytes(&req.tap_public_key, "tap key").map_err(|e| fail(&e))?,
    );
    let sig = rider
        .keystore
        .sign_with_binding_key(transcript)
        .map_err(|e| fail(&e))?;
    let body = CredentialRequest {
        nonce: hex::encode(nonce),
        binding_public_key: hex::encode(&req.binding_public_key),
        tap_public_key: hex::encode(&req.tap_public_key),
        signature: hex::encode(sig),
        next_counter: Some(req.next_counter),
    };
    let c: CredentialResponse = api
        .call(true, PROVISION.path, Some(&rider.token), Some(&body))
        .await?;
    crate::demo::install_credential(&rider.wallet, &c).map_err(|e| fail(&e))?;
    Ok(c.pseudonym.to_lowercase())
}

/// One whole top-up outside the timed phase, before the rider's session is bound to its
/// binding key (so without a request proof): intent, payment on the sandbox gateway, status
/// until credited. The intent id.
pub(super) async fn top_up(api: &Api, rider: &Rider, amount: i64, key: &str) -> Res<String> {
    let body = serde_json::to_vec(&TopupRequest {
        amount,
        idempotency_key: key.to_string(),
    })
    .map_err(|e| LoadError::Setup(format!("top-up body: {e}")))?;
    let resp = api
        .http
        .post(format!("{}{}", api.base, CREATE_TOPUP.path))
        .bearer_auth(&rider.token)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body)
        .send()
        .await
        .map_err(|e| LoadError::Http(format!("top-up: {e}")))?;
    let intent: TopupIntentResponse = read_json(CREATE_TOPUP.path, resp).await?;
    api.http
        .post(&intent.payment_url)
        .header(
            reqwest::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded",
        )
        .send()
        .await
        .map_err(|e| LoadError::Http(format!("sandbox gateway: {e}")))?;
    let status = wait_credited(api, &rider.token, &intent.intent_id).await?;
    if status != TopupStatus::Credited {
        return Err(LoadError::Setup(format!(
            "top-up {} of {} ended {}",
            intent.intent_id,
            rider.phone,
            status.as_str()
        )));
    }
    Ok(intent.intent_id)
}

/// Polls a top-up until it is credited, cancelled or expired (at most ~10 s): its last status.
pub(super) async fn wait_credited(api: &Api, token: &str, intent: &str) -> Res<TopupStatus> {
    let mut last = TopupStatus::Pending;
    for _ in 0..50 {
        let v: TopupIntentResponse = api
            .call(
                false,
                &TOPUP_STATUS.path_with(intent),
                Some(token),
                None::<&()>,
            )
            .await?;
        last = v.status;
        if matches!(
            last,
            TopupStatus::Credited | TopupStatus::Cancelled | TopupStatus::Expired
        ) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    Ok(last)
}
