//! The online flows' shared state ([`Inner`]: the wallet, the HTTP client, the locks), the
//! session and the account, on top of [`super::http::Http`] and the wallet's storage. The
//! credential, top-up and sync flows are in `credential.rs`, `topup.rs` and `sync.rs`. Every
//! request and answer is a `mancard_api` type; every path an `mancard_api::endpoints` constant.

use super::http::{CallError, Http, NO_BODY};
use super::{AccountInfo, CodeSent, OnlineError, OnlineOptions, OnlineState, SessionInfo};
use crate::error::WalletError;
use crate::util::now_utc;
use crate::wallet::Wallet;
use mancard_api::endpoints::{self, Endpoint};
use mancard_api::{AccountResponse, OtpRequest, OtpResponse, SessionRequest, SessionResponse};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::sync::Arc;
use zeroize::Zeroizing;

pub(super) fn server_err(message: impl Into<String>) -> OnlineError {
    OnlineError::Server {
        message: message.into(),
    }
}

pub(super) fn unhex(s: &str, what: &str) -> Result<Vec<u8>, OnlineError> {
    hex::decode(s.trim())
        .map_err(|_| server_err(format!("the backend sent a {what} that is not hex")))
}

pub(crate) struct Inner {
    pub(super) wallet: Arc<Wallet>,
    pub(super) http: Http,
    pub(super) opts: OnlineOptions,
    /// One sync at a time per client (a second one waits, then finds little to do).
    pub(super) sync_lock: tokio::sync::Mutex<()>,
    /// One credential request at a time.
    pub(super) credential_lock: tokio::sync::Mutex<()>,
}

/// The wallet's record of the last code request: its `request_id` (the login names it, and a
/// wrong guess counts only against that request's code, so a stranger guessing at the rider's
/// number cannot burn the code the rider is typing). Stored, so that the app may be killed
/// while the rider reads the SMS.
const CODE_REQUEST: &str = "code_request";

impl Inner {
    pub(crate) fn new(
        wallet: Arc<Wallet>,
        backend_url: &str,
        opts: OnlineOptions,
    ) -> Result<Self, OnlineError> {
        Ok(Self {
            wallet,
            http: Http::new(backend_url, opts.clone())?,
            opts,
            sync_lock: tokio::sync::Mutex::new(()),
            credential_lock: tokio::sync::Mutex::new(()),
        })
    }

    pub(crate) fn wallet(&self) -> Arc<Wallet> {
        Arc::clone(&self.wallet)
    }

    /// Installs the backend's config bundle (hex), if it sent one (provisioning and sync). A
    /// refused bundle changes nothing and is logged: the phone keeps the one it has.
    pub(super) fn install_bundle(&self, bundle_hex: &str) {
        if bundle_hex.is_empty() {
            return;
        }
        match unhex(bundle_hex, "config bundle").map(|b| self.wallet.install_config(b)) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!("the backend's config bundle was not installed: {e}"),
            Err(e) => tracing::warn!("{e}"),
        }
    }

    pub(crate) fn base_url(&self) -> &str {
        self.http.base()
    }

    // ----- session ---------------------------------------------------------------------------

    /// The unsealed session token (zeroized on drop). Never logged.
    pub(super) fn token(&self) -> Result<Zeroizing<String>, OnlineError> {
        let s = self
            .wallet
            .stored_session()?
            .ok_or(OnlineError::SessionExpired)?;
        if s.expires_at.is_some_and(|e| e <= now_utc()) {
            return Err(OnlineError::SessionExpired);
        }
        let plain = Zeroizing::new(self.wallet.keystore().unseal(s.sealed).map_err(|e| {
            tracing::warn!("the stored session cannot be unsealed: {e}");
            OnlineError::SessionExpired
        })?);
        let t = String::from_utf8(plain.to_vec()).map_err(|_| OnlineError::SessionExpired)?;
        Ok(Zeroizing::new(t))
    }

    /// A request with the session's bearer token to `endpoint` at `path`.
    pub(super) async fn authed<T: DeserializeOwned, B: Serialize + ?Sized>(
        &self,
        endpoint: Endpoint,
        path: &str,
        body: Option<&B>,
    ) -> Result<T, CallError> {
        let token = self.token().map_err(|e| CallError::Local(Box::new(e)))?;
        self.http
            .call(endpoint, path, Some(token.as_str()), body)
            .await
    }

    pub(crate) async fn register(&self, phone: String) -> Result<CodeSent, OnlineError> {
        let ep = endpoints::REQUEST_OTP;
        let r: OtpResponse = self
            .http
            .call(ep, ep.path, None, Some(&OtpRequest { phone }))
            .await?;
        self.wallet
            .idempotency_put(CODE_REQUEST, &r.request_id, r.phone.as_bytes(), now_utc())?;
        Ok(CodeSent {
            phone: r.phone,
            expires_at: r.expires_at,
        })
    }

    pub(crate) async fn verify(
        &self,
        phone: String,
        code: String,
    ) -> Result<SessionInfo, OnlineError> {
        let ep = endpoints::CREATE_SESSION;
        let (request_id, _) =
            self.wallet
                .idempotency_get(CODE_REQUEST)?
                .ok_or_else(|| OnlineError::Validation {
                    code: "no_code_requested".into(),
                    message: "ask for a code first (a code works only in the app that asked \
                              for it)"
                        .into(),
                })?;
        let body = SessionRequest {
            phone: phone.clone(),
            code,
            request_id,
        };
        let r: SessionResponse = self
            .http
            .call(ep, ep.path, None, Some(&body))
            .await
            .map_err(|e| match e {
                // On this endpoint a 401 means a wrong, expired or used code.
                CallError::Problem {
                    status: 401,
                    problem,
                } if problem.code == "code_of_another_request" => OnlineError::Validation {
                    code: problem.code,
                    message: "this code was sent for another request: type the code from the \
                              last SMS you asked for, or ask for a new one"
                        .into(),
                },
                CallError::Problem {
                    status: 401,
                    problem,
                } => OnlineError::Validation {
                    code: problem.code,
                    message: "the code is wrong, expired or already used; ask for a new one".into(),
                },
                e => e.into(),
            })?;
        drop(body);
        let token = Zeroizing::new(r.token);
        let sealed = self
            .wallet
            .keystore()
            .seal(token.as_bytes().to_vec())
            .map_err(WalletError::from)?;
        drop(token);
        // The backend normalises the number; ask it back for the account record.
        self.wallet
            .store_session(sealed, r.account_id, &phone, r.expires_at)?;
        self.wallet.idempotency_clear(CODE_REQUEST)?;
        let phone = match self.account().await {
            Ok(a) => {
                self.wallet
                    .store_session_phone(&a.phone)
                    .map_err(OnlineError::from)?;
                a.phone
            }
            Err(_) => phone,
        };
        Ok(SessionInfo {
            account_id: r.account_id,
            phone,
            expires_at: r.expires_at,
        })
    }

    pub(crate) fn state(&self) -> Result<OnlineState, OnlineError> {
        let s = self.wallet.stored_session()?;
        let (up, cursor) = self.wallet.sync_cursors()?;
        let open = self.wallet.topups_open()?.len();
        Ok(OnlineState {
            logged_in: s
                .as_ref()
                .is_some_and(|s| s.expires_at.is_none_or(|e| e > now_utc())),
            account_id: s.as_ref().and_then(|s| s.account_id),
            phone: s.as_ref().and_then(|s| s.phone.clone()),
            session_expires_at: s.as_ref().and_then(|s| s.expires_at),
            upload_from_seq: up,
            ledger_cursor: cursor,
            open_top_ups: u64::try_from(open).unwrap_or(0),
        })
    }

    pub(crate) async fn account(&self) -> Result<AccountInfo, OnlineError> {
        let ep = endpoints::ACCOUNT;
        let a: AccountResponse = self.authed(ep, ep.path, NO_BODY).await?;
        Ok(AccountInfo {
            account_id: a.account_id,
            phone: a.phone,
            fare_class: a.fare_class,
            balance: a.balance,
            server_time: a.server_time,
        })
    }
}
