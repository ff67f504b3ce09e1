//! The wallet tap: SELECT + AUTHORIZE TAP through `Wallet::process_apdu`, as the phone's HCE
//! service calls it, on a wallet with a long-lived certificate (counters and allowance that
//! never run out during a run), optionally with a long history of real taps.

use super::Res;
use crate::issuer::{CertSpec, Issuer};
use crate::time::{DAY, T0};
use mancard::{SoftwareKeystore, Wallet, WalletConfig};
use mancard_protocol::{CommandApdu, TapChallenge};
use std::hint::black_box;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

static NONCE: AtomicU64 = AtomicU64::new(1);

/// A wallet in `dir` (`keystore/`, `wallet/`), empty or as left there.
pub fn open_wallet(dir: &Path) -> Res<Arc<Wallet>> {
    let ks = SoftwareKeystore::open_or_create(dir.join("keystore"))?;
    Ok(Arc::new(Wallet::open(
        dir.join("wallet"),
        Arc::new(ks),
        WalletConfig::default(),
    )?))
}

/// A fresh wallet in `dir` with a certificate from `issuer` valid from a day before [`T0`]
/// for twenty years, every counter and an allowance no run exhausts, installed at [`T0`].
pub fn provisioned_wallet(dir: &Path, issuer: &Issuer) -> Res<Arc<Wallet>> {
    let w = open_wallet(dir)?;
    let req = w.prepare_credential_request()?;
    let cert = issuer.issue(
        &req.tap_public_key,
        CertSpec {
            valid_from: T0 - DAY,
            valid_until: T0 + 20 * 365 * DAY,
            first: 0,
            last: u32::MAX - 1,
            max_amount: i64::MAX / 2,
            ..CertSpec::default()
        },
    );
    w.install_certificate(cert.encode(), vec![issuer.info()], T0)?;
    Ok(w)
}

/// A validator's challenge at [`T0`] for a fare of 1 rial, with a nonce never used before.
fn challenge() -> TapChallenge {
    let n = NONCE.fetch_add(1, Ordering::Relaxed);
    let mut nonce = [0u8; 16];
    if let Some(head) = nonce.get_mut(..8) {
        head.copy_from_slice(&n.to_be_bytes());
    }
    TapChallenge {
        validator_id: 7,
        nonce,
        validator_time: T0,
        line_id: 1,
        fare: 1,
    }
}

/// The wallet-tap scenario.
pub struct WalletTap {
    wallet: Arc<Wallet>,
    select: Vec<u8>,
}

impl WalletTap {
    /// A fresh provisioned wallet in `dir`, no tap yet.
    pub fn new(dir: &Path, issuer: &Issuer) -> Res<Self> {
        Ok(Self {
            wallet: provisioned_wallet(dir, issuer)?,
            select: CommandApdu::select_mancard().encode()?,
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
        let cmd = CommandApdu::authorize_tap(&challenge()).encode()?;
        let r1 = self.wallet.process_apdu(self.select.clone());
        let r2 = self.wallet.process_apdu(cmd);
        self.wallet.deactivated();
        if r2.get(r2.len().saturating_sub(2)..) != Some(&[0x90, 0x00][..]) {
            return Err(format!("the wallet refused a tap: {}", hex::encode(&r2)).into());
        }
        black_box((r1, r2));
        Ok(())
    }

    pub fn wallet(&self) -> &Arc<Wallet> {
        &self.wallet
    }
}
