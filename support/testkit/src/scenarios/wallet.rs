//! The wallet tap: SELECT + AUTHORIZE TAP (a validator-signed challenge with the validator
//! certificate inline, as a reader sends it at first sight) through `Wallet::process_apdu`, as
//! the phone's HCE service calls it, on a wallet with a long-lived certificate and the issuer's
//! config bundle (counters and allowance that never run out during a run), optionally with a
//! long history of real taps. The phone's rate limit is lifted: a benchmark taps thousands of
//! times a minute.

use super::Res;
use crate::issuer::{CertSpec, Issuer};
use crate::time::{DAY, T0};
use crate::wallet::{self, Quote, Reader, READER_ID};
use mancard::Wallet;
use mancard_protocol::{CommandApdu, FareClass, ResponseApdu, SelectResponse, StatusWord};
use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A wallet in `dir` (`keystore/`, `wallet/`), empty or as left there: the production
/// configuration without the rate limit ([`wallet::test_config`]).
pub fn open_wallet(dir: &Path) -> Res<Arc<Wallet>> {
    Ok(Arc::new(wallet::try_open_with(dir, wallet::test_config())?))
}

/// A fresh wallet in `dir` with a certificate from `issuer` valid from a day before [`T0`]
/// for twenty years, every counter and an allowance no run exhausts, installed at [`T0`],
/// and `issuer`'s config bundle.
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

/// The wallet-tap scenario.
pub struct WalletTap {
    wallet: Arc<Wallet>,
    reader: Reader,
}

impl WalletTap {
    /// A fresh provisioned wallet in `dir`, no tap yet, and validator [`READER_ID`] certified
    /// by `issuer`.
    pub fn new(dir: &Path, issuer: &Issuer) -> Res<Self> {
        Ok(Self {
            wallet: provisioned_wallet(dir, issuer)?,
            reader: Reader::new(issuer, READER_ID),
        })
    }

    /// A provisioned wallet in `dir` with `history` real taps already in its log, made
    /// through the wallet's own tap path (so the history is what a rider's would be), then
    /// closed and opened again, as a phone's wallet is many times over such a history: the
    /// history is in the database file, not in a WAL that back-to-back taps (faster than any
    /// rider's, whose WAL a checkpoint empties between rides) never let start over.
    pub fn with_history(dir: &Path, issuer: &Issuer, history: u64) -> Res<Self> {
        let s = Self::new(dir, issuer)?;
        for _ in 0..history {
            s.run_once()?;
        }
        let Self { wallet, reader } = s;
        drop(Arc::into_inner(wallet).ok_or("the wallet is still shared")?);
        Ok(Self {
            wallet: open_wallet(dir)?,
            reader,
        })
    }

    /// One tap: SELECT, AUTHORIZE TAP for 1 rial at the phone's clock (answer 90 00 or an
    /// error), field off.
    pub fn run_once(&self) -> Res<()> {
        let q = Quote {
            fare: Some(1),
            ..Quote::default()
        };
        match self.reader.try_tap_with(&self.wallet, &q)? {
            Ok(x) => {
                black_box(x);
                Ok(())
            }
            Err(sw) => Err(format!("the wallet refused a tap: {sw:?}").into()),
        }
    }

    /// One tap timed on the phone's side only: the two `process_apdu` calls (SELECT, and
    /// AUTHORIZE TAP with the validator certificate inline), not the reader's signing of its
    /// challenge in between. What the phone's HCE service spends: the challenge's verify (the
    /// validator certificate is verified once, then cached), the signature, the log commit.
    ///
    /// Only the two calls are timed: the reader's APDUs are encoded before, and its answers
    /// parsed after, the clock runs.
    pub fn run_phone_side(&self) -> Res<Duration> {
        let select = CommandApdu::select_mancard().encode()?;
        let t = Instant::now();
        let sel = self.wallet.process_apdu(select);
        let mut phone = t.elapsed();
        let sel = ResponseApdu::parse(&sel)?;
        if sel.sw != StatusWord::Ok {
            self.wallet.deactivated();
            return Err(format!("the wallet refused SELECT: {:?}", sel.sw).into());
        }
        let session = SelectResponse::decode(&sel.data)?.session;
        let ch = self.reader.challenge(
            session,
            wallet::phone_time(&self.wallet),
            1,
            1,
            FareClass::Adult,
        );
        let authorize = CommandApdu::authorize_tap(&ch, Some(&self.reader.cert)).encode()?;
        let t = Instant::now();
        let r = self.wallet.process_apdu(authorize);
        phone += t.elapsed();
        self.wallet.deactivated();
        let r = ResponseApdu::parse(&r)?;
        if r.sw != StatusWord::Ok {
            return Err(format!("the wallet refused a tap: {:?}", r.sw).into());
        }
        black_box(r);
        Ok(phone)
    }

    pub fn wallet(&self) -> &Arc<Wallet> {
        &self.wallet
    }

    /// The reader the scenario taps with.
    pub fn reader(&self) -> &Reader {
        &self.reader
    }
}
