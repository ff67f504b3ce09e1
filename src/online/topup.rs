//! Top-up through the bank gateway: start (the intent and its payment URL), complete (the
//! backend verifies the payment), and the intents still open after a restart.

use super::flows::Inner;
use super::http::{CallError, NO_BODY};
use super::{OnlineError, TopUpIntent, TopUpStatus};
use crate::store::TopUpRow;
use crate::util::now_utc;
use mancard_api::endpoints;
use mancard_api::{TopupIntentResponse, TopupRequest};

fn intent_of(r: TopupIntentResponse, key: String) -> TopUpIntent {
    TopUpIntent {
        intent_id: r.intent_id,
        amount: r.amount,
        status: r.status.into(),
        payment_url: r.payment_url,
        expires_at: r.expires_at,
        ledger_entry_id: r.ledger_entry_id,
        gateway_ref: r.gateway_ref,
        idempotency_key: key,
    }
}

fn row_of(i: &TopUpIntent) -> TopUpRow {
    TopUpRow {
        key: i.idempotency_key.clone(),
        amount: i.amount,
        intent_id: Some(i.intent_id.clone()),
        status: i.status.name().to_string(),
        payment_url: Some(i.payment_url.clone()),
        expires_at: Some(i.expires_at),
        ledger_entry_id: i.ledger_entry_id,
        gateway_ref: i.gateway_ref.clone(),
    }
}

impl Inner {
    pub(crate) async fn start_top_up(&self, amount: i64) -> Result<TopUpIntent, OnlineError> {
        if amount <= 0 {
            return Err(OnlineError::Validation {
                code: "invalid_amount".into(),
                message: "a top-up amount must be positive".into(),
            });
        }
        // Stored before sending; reused by every retry of this call and of later calls.
        let key = self.wallet.topup_key_for(amount, now_utc())?;
        let body = TopupRequest {
            amount,
            idempotency_key: key.clone(),
        };
        let ep = endpoints::CREATE_TOPUP;
        let r: TopupIntentResponse = match self.proven(ep, ep.path, Some(&body)).await {
            Ok(r) => r,
            Err(e) => {
                if let CallError::Problem { .. } = e {
                    // Refused (not applied): this key is done with.
                    self.wallet.topup_update(
                        &TopUpRow {
                            key: key.clone(),
                            amount,
                            intent_id: None,
                            status: "abandoned".into(),
                            payment_url: None,
                            expires_at: None,
                            ledger_entry_id: None,
                            gateway_ref: None,
                        },
                        now_utc(),
                    )?;
                }
                return Err(e.into());
            }
        };
        let intent = intent_of(r, key);
        self.wallet.topup_update(&row_of(&intent), now_utc())?;
        self.after_top_up(&intent).await?;
        Ok(intent)
    }

    pub(crate) async fn complete_top_up(
        &self,
        intent_id: String,
    ) -> Result<TopUpIntent, OnlineError> {
        let id = intent_id.trim();
        if id.is_empty()
            || id.len() > 128
            || !id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(OnlineError::Validation {
                code: "invalid_intent".into(),
                message: format!("{intent_id:?} is not a top-up id"),
            });
        }
        let ep = endpoints::TOPUP_STATUS;
        let r: TopupIntentResponse = self.authed(ep, &ep.path_with(id), NO_BODY).await?;
        let key = self
            .wallet
            .topup_by_intent(id)?
            .map(|row| row.key)
            .unwrap_or_default();
        let intent = intent_of(r, key);
        if !intent.idempotency_key.is_empty() {
            self.wallet.topup_update(&row_of(&intent), now_utc())?;
        }
        self.after_top_up(&intent).await?;
        Ok(intent)
    }

    /// A credited top-up goes to the history once, then the balance is refreshed.
    async fn after_top_up(&self, intent: &TopUpIntent) -> Result<(), OnlineError> {
        if intent.status != TopUpStatus::Credited {
            return Ok(());
        }
        if let Some(le) = intent.ledger_entry_id {
            self.wallet
                .topup_credited(le, intent.amount, &intent.intent_id, now_utc())?;
        }
        if let Err(e) = self.refresh_balance().await {
            tracing::info!("balance not refreshed after the top-up: {e}");
        }
        Ok(())
    }

    async fn refresh_balance(&self) -> Result<(), OnlineError> {
        match self.wallet.current_pseudonym() {
            Some(_) => self.sync().await.map(|_| ()),
            None => {
                let a = self.account().await?;
                self.wallet.set_balance_only(a.balance, a.server_time)?;
                Ok(())
            }
        }
    }

    pub(crate) fn open_top_ups(&self) -> Result<Vec<TopUpIntent>, OnlineError> {
        Ok(self
            .wallet
            .topups_open()?
            .into_iter()
            .filter_map(|r| {
                Some(TopUpIntent {
                    intent_id: r.intent_id?,
                    amount: r.amount,
                    status: TopUpStatus::parse(&r.status)?,
                    payment_url: r.payment_url.unwrap_or_default(),
                    expires_at: r.expires_at.unwrap_or(0),
                    ledger_entry_id: r.ledger_entry_id,
                    gateway_ref: r.gateway_ref,
                    idempotency_key: r.key,
                })
            })
            .collect())
    }
}
