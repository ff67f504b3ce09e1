//! The wallet tap: SELECT + AUTHORIZE TAP through `Wallet::process_apdu`, as the phone's HCE
//! service calls it, on a wallet with a long-lived certificate (counters and allowance that
//! never run out during a run), optionally with a long history of real taps.

use super::Res;
use crate::issuer::{CertSpec, Issuer};
use crate::time::{DAY, T0};
use crate::wallet;
use mancard::{Wallet, WalletConfig};
use mancard_protocol::TapChallenge;
use std::hint::black_box;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

static NONCE: AtomicU64 = AtomicU64::new(1);

/// A wallet in `dir` (`keystore/`, `wallet/`), empty or as left there.
pub fn open_wallet(dir: &Path) -> Res<Arc<Wallet>> {
    Ok(Arc::new(wallet::try_open_with(
        dir,
        WalletConfig::default(),
    )?))
}

/// A fresh wallet in `dir` with a certificate from `issuer` valid from a day before [`T0`]
/// for twenty years, every counter and an allowance no run exhausts, installed at [`T0`].
pub fn provisioned_wallet(dir: &Path, issuer: &Issuer) -> Res<Arc<Wallet>> {
    let w = open_wallet(dir)?;
    let spec = CertSpec {
        valid_from: T0 - DAY,
        valid_until: T0 + 20 * 365 * DAY,
        first: 0,
        last: u32::MAX - 1,
        max_amount: i64::MAX / 2,
        ..CertSpec::default()
    };
    wallet::try_provision_at(&w, issuer, spec, T0)?;
    Ok(w)
}

/// A validator's challenge at [`T0`] for a fare of 1 rial, with a nonce never used before.
fn challenge() -> TapChallenge {
    wallet::challenge(NONCE.fetch_add(1, Ordering::Relaxed), 1, T0)
}

/// The wallet-tap scenario.
pub struct WalletTap {
    wallet: Arc<Wallet>,
}

impl WalletTap {
    /// A fresh provisioned wallet in `dir`, no tap yet.
    pub fn new(dir: &Path, issuer: &Issuer) -> Res<Self> {
        Ok(Self {
            wallet: provisioned_wallet(dir, issuer)?,
        })
    }

    /// A provisioned wallet in `dir` with `history` real taps already in its log, made
    /// through the wallet's own tap path (so the history is what a rider's would be).
    pub fn with_history(dir: &Path, issuer: &Issuer, history: u64) -> Res<Self> {
        let s = Self::new(dir, issuer)?;
        for _ in 0..history {
            s.run_once()?;
        }
        Ok(s)
    }

    /// One tap: SELECT, AUTHORIZE TAP (answer 90 00 or an error), field off.
    pub fn run_once(&self) -> Res<()> {
        match wallet::try_exchange(&self.wallet, &challenge(), false)? {
            Ok(x) => {
                black_box(x);
                Ok(())
            }
            Err(sw) => Err(format!("the wallet refused a tap: {sw:?}").into()),
        }
    }

    pub fn wallet(&self) -> &Arc<Wallet> {
        &self.wallet
    }
}
