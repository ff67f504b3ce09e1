//! The sandbox payment gateway (a Shaparak IPG simulation): its payment page's data and the
//! rider's pay or cancel. Served only in sandbox mode.

use crate::engine::{random, Engine};
use crate::error::{Error, Result};
use crate::store::GatewayStatus;
use mancard_api::endpoints;

/// What the gateway's payment page shows.
#[derive(Debug, Clone)]
pub struct GatewayPage {
    pub amount: i64,
    pub status: GatewayStatus,
    pub expires_at: i64,
}

impl Engine {
    /// Sandbox gateway: the payment a page shows.
    pub fn gateway_payment(&self, token: &str) -> Result<GatewayPage> {
        if !self.config().sandbox {
            return Err(Error::NoSuchEndpoint);
        }
        let gp = self
            .store
            .read(|tx| tx.gateway_payment(token))?
            .ok_or(Error::UnknownPayment)?;
        Ok(GatewayPage {
            amount: gp.amount,
            status: gp.status,
            expires_at: gp.expires_at,
        })
    }

    /// Sandbox gateway: the rider pays (or cancels). Returns the callback URL to redirect to.
    /// Submitting twice is harmless: the payment keeps its first outcome.
    pub fn gateway_pay(&self, token: &str, pay: bool) -> Result<String> {
        if !self.config().sandbox {
            return Err(Error::NoSuchEndpoint);
        }
        let now = self.now();
        let ref_id = hex::encode(random::<8>()?);
        let status = self.store.write(|tx| {
            let gp = tx.gateway_payment(token)?.ok_or(Error::UnknownPayment)?;
            if gp.status == GatewayStatus::Pending {
                if now > gp.expires_at {
                    return Err(Error::PaymentExpired);
                }
                let to = if pay {
                    GatewayStatus::Paid
                } else {
                    GatewayStatus::Cancelled
                };
                tx.gateway_settle(token, to, pay.then_some(ref_id.as_str()), now)?;
                return Ok(to);
            }
            Ok(gp.status)
        })?;
        let ok = if status == GatewayStatus::Paid {
            "OK"
        } else {
            "NOK"
        };
        Ok(format!(
            "{}{}?token={token}&status={ok}",
            self.base_url(),
            endpoints::TOPUP_CALLBACK.path
        ))
    }
}
