//! The whole tap through pcscd + vpcd on loopback: the phone (a thread serving the real
//! wallet core on vsmartcard's vpcd, with the config bundle installed) in the field of a PC/SC
//! reader, the validator (journal on disk, `synchronous=FULL`, 1,000-card deny list, its
//! validator certificate, the system clock) connecting, SELECT, AUTHORIZE TAP (the validator's
//! signed challenge and certificate), journal, reset. The peer is the same tap in process (no
//! PC/SC, no TCP).

use super::validator::deny_list;
use super::wallet::provisioned_wallet;
use super::Res;
use crate::issuer::Issuer;
use crate::validator::certify;
use mancard::Wallet;
use mancard_validator::pcsc_reader::{pcscd_available, PcscReader};
use mancard_validator::vpcd::{run_card, FnCard};
use mancard_validator::{FnChannel, Validator};
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The PC/SC whole-tap scenario.
pub struct PcscTap {
    wallet: Arc<Wallet>,
    validator: Validator,
    reader: PcscReader,
    stop: Arc<AtomicBool>,
    phone: Option<JoinHandle<io::Result<u64>>>,
}

impl PcscTap {
    /// The phone on vpcd at `vpcd`, the validator on `reader_name`; `None` when pcscd is
    /// not running (an environment without a reader, not a failure).
    pub fn start(dir: &Path, issuer: &Issuer, reader_name: &str, vpcd: &str) -> Res<Option<Self>> {
        if !pcscd_available() {
            return Ok(None);
        }
        let now = chrono::Utc::now().timestamp();
        let wallet = provisioned_wallet(dir, issuer)?;
        let mut validator = Validator::init(&dir.join("validator"), &issuer.anchor(), 9, 1)?;
        let bundle = issuer.bundle(2, now, deny_list(1_000)).encode();
        validator.install_config(&bundle)?;
        certify(issuer, &mut validator, now);
        wallet.install_config(bundle)?;
        let reader = PcscReader::open(reader_name)
            .map_err(|e| format!("PC/SC reader {reader_name}: {e}"))?;
        let _ = reader.wait_for_removal(Some(Duration::from_secs(3)));
        let stop = Arc::new(AtomicBool::new(false));
        let (w1, w2, s) = (Arc::clone(&wallet), Arc::clone(&wallet), Arc::clone(&stop));
        let addr = vpcd.to_string();
        let phone = std::thread::spawn(move || {
            let mut card = FnCard {
                on_apdu: move |a: &[u8]| w1.process_apdu(a.to_vec()),
                on_deactivated: move || w2.deactivated(),
            };
            run_card(&addr, &mut card, &s, None, |_| {}).map(|st| st.apdus)
        });
        let mut tap = Self {
            wallet,
            validator,
            reader,
            stop,
            phone: Some(phone),
        };
        if !tap.reader.wait_for_card(Some(Duration::from_secs(10)))? {
            tap.finish();
            return Err(format!("no card appeared on {reader_name} (vpcd {vpcd})").into());
        }
        Ok(Some(tap))
    }

    /// One whole tap through pcscd: connect, the validator's exchange, reset.
    pub fn run_once(&mut self) -> Res<Duration> {
        let t = Instant::now();
        let mut ch = self.reader.connect(Duration::from_secs(2))?;
        let o = self.validator.tap_nfc(&mut ch);
        ch.finish();
        let took = t.elapsed();
        if !o.decision.is_accepted() {
            return Err(format!("PC/SC tap refused: {}", o.decision.display_text()).into());
        }
        Ok(took)
    }

    /// The peer: the same validator and wallet, in process.
    pub fn peer_once(&mut self) -> Res<Duration> {
        let w = Arc::clone(&self.wallet);
        let mut fc = FnChannel::new(move |a| w.process_apdu(a));
        let t = Instant::now();
        let o = self.validator.tap_nfc(&mut fc);
        let took = t.elapsed();
        self.wallet.deactivated();
        if !o.decision.is_accepted() {
            return Err(format!("in-process tap refused: {}", o.decision.display_text()).into());
        }
        Ok(took)
    }

    /// Lifts the phone and stops its thread.
    pub fn finish(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(p) = self.phone.take() {
            let _ = p.join();
        }
    }
}

impl Drop for PcscTap {
    fn drop(&mut self) {
        self.finish();
    }
}
