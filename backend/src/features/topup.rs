//! Top-up: intents (idempotent by key), each with a payment at the gateway (a token asked
//! for when the intent is created), its status as the wallet and the callback see it, and
//! reconciliation of payments whose callback never came. Verification, settlement and
//! reversal at the gateway: [`super::gateway`].

use crate::engine::{random, Engine};
use crate::error::{Error, Result, StoreError};
use crate::ids::AccountId;
use crate::providers::payment::valid_token;
use crate::store::{GatewayStatus, Intent, Reader};
use mancard_api::endpoints;
use mancard_api::{TopupIntentResponse, TopupRequest, TopupStatus};

/// What the gateway's redirect back claims (never trusted: only the token picks the intent,
/// the rest is compared with what the gateway says server to server).
#[derive(Debug, Clone, Default)]
pub struct CallbackClaims {
    pub token: String,
    pub ref_num: Option<String>,
}

/// Payments one reconciliation run asks the gateway about, at most.
const RECONCILE_BATCH: i64 = 500;

impl Engine {
    fn check_topup_request(&self, req: &TopupRequest) -> Result<()> {
        let p = &self.config().policy;
        if !(p.topup_min..=p.topup_max).contains(&req.amount) {
            return Err(Error::InvalidAmount {
                min: p.topup_min,
                max: p.topup_max,
            });
        }
        let key = req.idempotency_key.as_str();
        if key.is_empty() || key.len() > 128 || !key.chars().all(|c| c.is_ascii_graphic()) {
            return Err(Error::InvalidIdempotencyKey(
                "the idempotency key is 1 to 128 printable ASCII characters",
            ));
        }
        Ok(())
    }

    fn existing_intent(&self, account_id: AccountId, req: &TopupRequest) -> Result<Option<Intent>> {
        let found = self
            .store
            .read(|tx| tx.intent_by_key(account_id, &req.idempotency_key))?;
        match found {
            Some(i) if i.amount != req.amount => Err(Error::IdempotencyConflict),
            other => Ok(other),
        }
    }

    /// Creates (or, for a repeated idempotency key, returns) a top-up intent: asks the
    /// gateway for a payment token first (503 if it does not answer; nothing is stored then).
    pub fn create_topup(
        &self,
        account_id: impl Into<AccountId>,
        req: &TopupRequest,
    ) -> Result<TopupIntentResponse> {
        let account_id = account_id.into();
        self.check_topup_request(req)?;
        if let Some(existing) = self.existing_intent(account_id, req)? {
            return self.advance(&existing);
        }
        let id = hex::encode(random::<16>()?);
        let callback = format!("{}{}", self.base_url(), endpoints::TOPUP_CALLBACK.path);
        let pt = match self
            .providers()
            .gateway
            .request_token(req.amount, &id, &callback)
        {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(error = %e, "the gateway gave no payment token");
                return Err(Error::GatewayDown);
            }
        };
        let now = self.now();
        let intent = Intent {
            id: id.clone(),
            account_id,
            amount: req.amount,
            idempotency_key: req.idempotency_key.clone(),
            gateway_token: pt.token.clone(),
            created_at: now,
            expires_at: now.saturating_add(self.config().policy.topup_ttl_secs),
        };
        let stored = self.store.write(|tx| {
            // a concurrent request with the same key won: its intent is the one
            // (this token expires unpaid at the gateway)
            if let Some(existing) = tx.intent_by_key(account_id, &req.idempotency_key)? {
                return Ok::<_, Error>(existing);
            }
            tx.insert_gateway_payment(&pt.token, req.amount, &pt.payment_url, now, intent.expires_at)?;
            tx.insert_intent(&intent)?;
            let (account, id, amount) = (account_id.0, id.clone(), req.amount);
            tx.after_commit(move || tracing::info!(account_id = account, intent = %id, amount, "top-up intent created"));
            Ok(intent.clone())
        })?;
        if stored.amount != req.amount {
            return Err(Error::IdempotencyConflict);
        }
        self.store.read(|tx| self.intent_view(tx, &stored))
    }

    /// Drives an open payment at the gateway, then shows the intent.
    fn advance(&self, intent: &Intent) -> Result<TopupIntentResponse> {
        self.drive_payment(intent)?;
        self.store.read(|tx| self.intent_view(tx, intent))
    }

    /// The intent as the wallet sees it.
    fn intent_view(&self, tx: &Reader<'_>, intent: &Intent) -> Result<TopupIntentResponse> {
        let key = format!("topup:{}", intent.id);
        let gp = tx
            .gateway_payment(&intent.gateway_token)?
            .ok_or(StoreError::Corrupt("intent without gateway payment"))?;
        let entry = tx.ledger_by_key(&key)?;
        let status = match (&entry, gp.status) {
            (Some(_), _) => TopupStatus::Credited,
            (None, GatewayStatus::Expired) => TopupStatus::Expired,
            (None, GatewayStatus::Pending | GatewayStatus::Verified | GatewayStatus::Settled) => {
                TopupStatus::Pending
            }
            (None, _) => TopupStatus::Cancelled,
        };
        let reason = match gp.status {
            GatewayStatus::Reversing | GatewayStatus::Reversed | GatewayStatus::ReverseFailed => {
                Some(format!(
                    "the payment was reversed (your money is returned by the bank): {}",
                    gp.reason.as_deref().unwrap_or("reversed")
                ))
            }
            _ => None,
        };
        Ok(TopupIntentResponse {
            intent_id: intent.id.clone(),
            amount: intent.amount,
            status,
            payment_url: gp.payment_url.unwrap_or_default(),
            expires_at: intent.expires_at,
            ledger_entry_id: entry.map(|e| e.id),
            gateway_ref: gp.ref_id.filter(|_| gp.status == GatewayStatus::Settled),
            reason,
        })
    }

    /// The status of one of the account's intents (verifies, settles and credits if paid).
    pub fn topup_status(
        &self,
        account_id: impl Into<AccountId>,
        intent_id: &str,
    ) -> Result<TopupIntentResponse> {
        let account_id = account_id.into();
        let intent = self
            .store
            .read(|tx| tx.intent(intent_id))?
            .filter(|i| i.account_id == account_id)
            .ok_or(Error::UnknownIntent)?;
        self.advance(&intent)
    }

    /// The gateway's redirect back to the merchant. Nothing in it is trusted but the token,
    /// which picks the intent: the payment is verified with the gateway server to server.
    pub fn topup_callback(&self, claims: &CallbackClaims) -> Result<TopupIntentResponse> {
        if !valid_token(&claims.token) {
            return Err(Error::UnknownPayment);
        }
        let intent = self
            .store
            .read(|tx| tx.intent_by_token(&claims.token))?
            .ok_or(Error::UnknownPayment)?;
        let view = self.advance(&intent)?;
        let recorded = self
            .store
            .read(|tx| tx.gateway_payment(&intent.gateway_token))?;
        let recorded_ref = recorded.and_then(|r| r.ref_id);
        if let (Some(claimed), Some(real)) = (&claims.ref_num, &recorded_ref) {
            if claimed != real {
                tracing::warn!(intent = %intent.id, "a callback claimed another reference number than the gateway's");
            }
        }
        Ok(view)
    }

    /// Reconciliation: asks the gateway about every open payment (the callback never came and
    /// the wallet never polled; a verify or settle went unanswered; a reversal is due).
    /// Returns how many were credited. The server runs it every minute.
    pub fn reconcile_topups(&self) -> Result<usize> {
        self.reconcile_topups_while(|| true)
    }

    /// [`Engine::reconcile_topups`], asking `keep_going` before each payment (the background
    /// jobs renew their lease there, and stop when they lost it).
    pub fn reconcile_topups_while(&self, mut keep_going: impl FnMut() -> bool) -> Result<usize> {
        let tokens = self.store.read(|tx| tx.open_payments(RECONCILE_BATCH))?;
        let mut credited = 0;
        for token in tokens {
            if !keep_going() {
                break;
            }
            let Some(intent) = self.store.read(|tx| tx.intent_by_token(&token))? else {
                continue;
            };
            // one payment whose account is busy (its locks held, its writes out of retries)
            // does not hold up the reconciliation of everyone else's: it is taken again on
            // the next run
            match self.advance(&intent) {
                Ok(v) if v.status == TopupStatus::Credited => credited += 1,
                Ok(_) => {}
                Err(crate::error::Error::Store(e)) if e.is_busy() => {
                    tracing::warn!(intent = %intent.id, error = %e, "reconciliation: busy; next run");
                }
                Err(e) => return Err(e),
            }
        }
        if credited > 0 {
            tracing::info!(credited, "reconciliation credited paid top-ups");
        }
        Ok(credited)
    }
}

impl Engine {
    /// Sandbox only: the gateway page of a payment this backend knows (old links redirect).
    pub fn sandbox_payment_url(&self, token: &str) -> Result<String> {
        if !self.config().sandbox {
            return Err(Error::NoSuchEndpoint);
        }
        self.store
            .read(|tx| tx.gateway_payment(token))?
            .and_then(|p| p.payment_url)
            .filter(|u| u.starts_with("http"))
            .ok_or(Error::UnknownPayment)
    }
}
