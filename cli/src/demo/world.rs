//! The demo's world: the backend (in process, loopback HTTP), the wallet with its online
//! client, the validator on the bus, the validator's clock the demo drives, and how the
//! phone meets the validator (in process or through pcscd + vpcd).

use super::client::Client;
use super::http_rider::HttpRider;
use super::output::Out;
use super::{ClientChoice, DemoArgs, ReaderChoice, Res, LINE_A, VALIDATOR_ID};
use mancard::online::{OnlineOptions, OnlineWallet};
use mancard::{SoftwareKeystore, Wallet, WalletConfig};
use mancard_api::{BatchResponse, RegisterValidatorRequest};
use mancard_backend::{Backend, BackendConfig, BackendHandle, Engine};
use mancard_protocol::{PublicKey, Tariff};
use mancard_validator::pcsc_reader::PcscReader;
use mancard_validator::vpcd::{FnCard, VpcdCard};
use mancard_validator::{http, FnChannel, TapOutcome, TrustAnchor, Validator};
use serde_json::json;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One ride as the demo saw it at the gate.
pub(super) struct Ride {
    pub(super) time: i64,
    pub(super) line: u32,
    pub(super) medium: &'static str,
    pub(super) counter: u32,
    pub(super) fare: i64,
    pub(super) kind: String,
}

/// The in-process parties of the demo, and what they answered.
pub(super) struct World {
    pub(super) rt: tokio::runtime::Runtime,
    backend: Option<BackendHandle>,
    pub(super) wallet: Arc<Wallet>,
    pub(super) client: Client,
    validator: Option<Validator>,
    clock: Arc<AtomicI64>,
    /// 07:30 of the demo's fare day (validator clock); every ride is an offset from it.
    pub(super) day: i64,
    pub(super) reader: ReaderChoice,
    reader_name: String,
    vpcd: String,
    pub(super) rides: Vec<Ride>,
    /// The backend's answers to the validator's batches, in upload order.
    pub(super) batch_answers: Vec<BatchResponse>,
    /// The backend's verdicts on the wallet's tap-log entries, from the sync: (log seq, status).
    pub(super) wallet_verdicts: Vec<(u64, mancard_api::TapStatus)>,
}

impl World {
    pub(super) fn engine(&self) -> Res<&Arc<Engine>> {
        Ok(self
            .backend
            .as_ref()
            .ok_or("the backend is not running")?
            .engine())
    }

    pub(super) fn url(&self) -> Res<String> {
        Ok(self
            .backend
            .as_ref()
            .ok_or("the backend is not running")?
            .url())
    }

    pub(super) fn validator(&mut self) -> Res<&mut Validator> {
        Ok(self
            .validator
            .as_mut()
            .ok_or("the validator is not set up")?)
    }

    /// Stops the backend cleanly (WAL checkpointed); a second call does nothing.
    pub(super) fn stop_backend(&mut self) -> Result<(), String> {
        match self.backend.take() {
            Some(h) => self.rt.block_on(h.shutdown()).map_err(|e| e.to_string()),
            None => Ok(()),
        }
    }

    /// Sets the validator's clock to `at` seconds into the demo's day, and moves the phone's
    /// clock with it (through the wallet's clock offset, as a sync would): the day runs fast,
    /// and a phone refuses a reader whose clock is minutes away from its own.
    pub(super) fn set_time(&self, at: i64) -> Res<i64> {
        let t = self.day + at;
        self.clock.store(t, Ordering::SeqCst);
        self.wallet
            .set_server_time_offset(t - chrono::Utc::now().timestamp())
            .map_err(|e| format!("phone clock: {e}"))?;
        Ok(t)
    }

    /// One NFC tap of the wallet on the validator (in process or through PC/SC).
    pub(super) fn tap_nfc(&mut self) -> Res<TapOutcome> {
        match self.reader {
            ReaderChoice::Sim => {
                let wallet = Arc::clone(&self.wallet);
                let mut ch = FnChannel::new(move |apdu| wallet.process_apdu(apdu));
                let o = self.validator()?.tap_nfc(&mut ch);
                self.wallet.deactivated();
                Ok(o)
            }
            ReaderChoice::Pcsc => self.tap_pcsc(),
        }
    }

    /// One tap through pcscd: the phone (a thread) presents the wallet on vpcd, the validator
    /// waits for it on the PC/SC reader, taps, resets the field, and the phone is lifted.
    fn tap_pcsc(&mut self) -> Res<TapOutcome> {
        let reader = PcscReader::open(&self.reader_name)
            .map_err(|e| format!("PC/SC reader {}: {e}", self.reader_name))?;
        // A phone still in the field from an earlier run would be tapped instead.
        let _ = reader.wait_for_removal(Some(Duration::from_secs(2)));
        let stop = Arc::new(AtomicBool::new(false));
        let (w1, w2, s) = (
            Arc::clone(&self.wallet),
            Arc::clone(&self.wallet),
            Arc::clone(&stop),
        );
        let addr = self.vpcd.clone();
        let phone = std::thread::spawn(move || -> Result<u64, String> {
            let mut conn = VpcdCard::connect_retry(&addr, Duration::from_secs(5))
                .map_err(|e| format!("cannot reach vpcd at {addr}: {e}"))?;
            let mut card = FnCard {
                on_apdu: move |a: &[u8]| w1.process_apdu(a.to_vec()),
                on_deactivated: move || w2.deactivated(),
            };
            conn.serve(&mut card, &s, Some(Duration::from_millis(30)))
                .map_err(|e| format!("vpcd: {e}"))?;
            Ok(conn.stats.apdus)
        });
        let result = match reader.wait_for_card(Some(Duration::from_secs(10))) {
            Ok(true) => match reader.connect(Duration::from_secs(2)) {
                Ok(mut card) => {
                    let o = self.validator()?.tap_nfc(&mut card);
                    card.finish();
                    Ok(o)
                }
                Err(e) => Err(format!("PC/SC connect: {e}")),
            },
            Ok(false) => Err("no phone appeared on the PC/SC reader within 10 s".to_string()),
            Err(e) => Err(format!("PC/SC: {e}")),
        };
        let _ = reader.wait_for_removal(Some(Duration::from_secs(3)));
        stop.store(true, Ordering::SeqCst);
        let phone_end = phone
            .join()
            .map_err(|_| "the phone thread failed".to_string())?;
        let o = result?;
        phone_end?;
        Ok(o)
    }
}

/// Steps 1 and 2: the backend, the wallet and its online client.
pub(super) fn start(
    out: &mut Out,
    dir: &Path,
    args: &DemoArgs,
    reader: ReaderChoice,
) -> Res<World> {
    let t = Instant::now();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("tokio runtime: {e}"))?;
    let db = dir.join("backend.sqlite");
    let handle = rt
        .block_on(Backend::start(BackendConfig::sandbox(&db)))
        .map_err(|e| format!("cannot start the backend: {e}"))?;
    let url = handle.url();
    let keys = handle.engine().key_info();
    out.step(
        "backend",
        "The issuer's backend starts (in process, loopback only)",
        t.elapsed(),
        &[
            format!("listening on {url} (sandbox SMS and payment gateway)"),
            format!("fresh SQLite database {}", db.display()),
            format!(
                "issuer key{} {} (P-256)",
                if keys.len() == 1 { "" } else { "s" },
                keys.iter()
                    .map(|k| k.key_id.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ],
        json!({"url": url, "db": db.display().to_string()}),
    );

    let t = Instant::now();
    let (wallet, client) = open_wallet(dir, args, &url)?;
    out.step(
        "wallet",
        "The rider installs the app: an empty wallet",
        t.elapsed(),
        &[format!(
            "wallet in {} (binding key in the software keystore; a phone uses StrongBox / Secure Enclave)",
            dir.join("wallet").display()
        )],
        json!({"wallet_dir": dir.join("wallet").display().to_string()}),
    );
    Ok(World {
        rt,
        backend: Some(handle),
        wallet,
        client,
        validator: None,
        clock: Arc::new(AtomicI64::new(0)),
        day: 0,
        reader,
        reader_name: args.reader_name.clone(),
        vpcd: args.vpcd.clone(),
        rides: Vec::new(),
        batch_answers: Vec::new(),
        wallet_verdicts: Vec::new(),
    })
}

/// The empty wallet and the client `--client` chose.
fn open_wallet(dir: &Path, args: &DemoArgs, url: &str) -> Res<(Arc<Wallet>, Client)> {
    let ks = Arc::new(
        SoftwareKeystore::open_or_create(dir.join("keystore"))
            .map_err(|e| format!("keystore: {e}"))?,
    );
    let wallet = Arc::new(
        Wallet::open(dir.join("wallet"), ks.clone(), WalletConfig::default())
            .map_err(|e| format!("cannot open the wallet: {e}"))?,
    );
    let client = match args.client {
        ClientChoice::Online => {
            let opts = OnlineOptions {
                max_attempts: 2,
                ..OnlineOptions::default()
            };
            Client::Online(
                OnlineWallet::new(Arc::clone(&wallet), url.to_string(), opts)
                    .map_err(|e| format!("online client: {e}"))?,
            )
        }
        ClientChoice::Http => {
            Client::Http(HttpRider::new(url.to_string(), Arc::clone(&wallet), ks)?)
        }
    };
    Ok((wallet, client))
}

/// What the validator knows once set up, for the story to tell.
pub(super) struct ValidatorSetup {
    pub(super) issuer_key_id: u32,
    pub(super) bundle_bytes: usize,
}

/// The validator: trusts the backend's current issuer key, registers its own key, fetches
/// its signed config bundle over HTTP, and gets the demo's clock set to the day's start.
pub(super) fn start_validator(w: &mut World, dir: &Path) -> Res<ValidatorSetup> {
    let keys = w.engine()?.key_info();
    let current = keys
        .iter()
        .find(|k| k.current)
        .or_else(|| keys.first())
        .ok_or("the backend has no issuer key")?;
    let anchor = TrustAnchor {
        key_id: Some(current.key_id),
        public_key: PublicKey::from_bytes(
            &hex::decode(&current.public_key).map_err(|e| format!("issuer key: {e}"))?,
            "issuer key",
        )?,
    };
    let mut v = Validator::init(&dir.join("validator"), &anchor, VALIDATOR_ID, LINE_A)?;
    let registered = w
        .engine()?
        .register_validator(&RegisterValidatorRequest::new(
            VALIDATOR_ID,
            hex::encode(v.public_key().as_bytes()),
        ))
        .map_err(|e| format!("register validator: {e}"))?;
    let bundle = http::fetch_config(&w.url()?, None, super::HTTP_TIMEOUT)
        .map_err(|e| format!("fetch config: {e}"))?
        .ok_or("the backend answered 304 to a validator without a bundle")?;
    v.install_config(&bundle)?;
    let certificate =
        hex::decode(&registered.certificate).map_err(|e| format!("validator certificate: {e}"))?;
    v.install_certificate(&certificate)?;
    let day = pick_day(w.engine()?.now());
    w.clock.store(day, Ordering::SeqCst);
    w.day = day;
    let c = Arc::clone(&w.clock);
    v.set_clock(Arc::new(move || c.load(Ordering::SeqCst)));
    w.validator = Some(v);
    Ok(ValidatorSetup {
        issuer_key_id: current.key_id,
        bundle_bytes: bundle.len(),
    })
}

/// The validator's day: 07:30 Iran time on the current fare day, or the next one if that is
/// already past (all rides fit in one fare day and inside the certificate's 72 h).
fn pick_day(now: i64) -> i64 {
    let t = Tariff::urmia_default();
    let start = |d: i64| d * 86_400 - i64::from(t.utc_offset_secs) + i64::from(t.day_start_secs);
    let today = start(t.fare_day(now)) + 3 * 3600 + 1800;
    if today > now + 60 {
        today
    } else {
        start(t.fare_day(now) + 1) + 3 * 3600 + 1800
    }
}
