//! The demo's world: the backend (in process, loopback HTTP), the wallet with its online
//! client, the validators of two buses, the story's clock, and how the phone meets a
//! validator (in process or through pcscd + vpcd).
//!
//! One clock: the sandbox backend's, moved forward only. The validators' clocks and the
//! phone's (through its server-time offset, as a sync sets it) read the story's time, and the
//! backend's clock is moved past each ride before anyone reports it.

use super::client::Client;
use super::http_rider::HttpRider;
use super::output::{local, Out};
use super::parties::{add_validator, clock_to, next_morning, NewValidator};
use super::{ClientChoice, DemoArgs, ReaderChoice, Res, BUS_1, BUS_2};
use mancard::online::{OnlineOptions, OnlineWallet};
use mancard::{FileKeystore, Wallet, WalletConfig};
use mancard_api::BatchResponse;
use mancard_backend::providers::GatewayConfig;
use mancard_backend::{Backend, BackendConfig, BackendHandle, Engine};
use mancard_validator::pcsc_reader::PcscReader;
use mancard_validator::vpcd::{FnCard, VpcdCard};
use mancard_validator::{FnChannel, TapOutcome, Validator};
use serde_json::json;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One ride as the demo saw it at the gate.
pub(super) struct Ride {
    pub(super) time: i64,
    pub(super) line: u32,
    pub(super) validator_id: u32,
    pub(super) medium: &'static str,
    pub(super) counter: u32,
    /// What the gate charged (its quote, from the rides it knows).
    pub(super) fare: i64,
    pub(super) kind: String,
}

/// The backend's final word on one tap, as the rider's wallet learned it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Verdict {
    pub(super) counter: u32,
    pub(super) status: String,
    pub(super) charged: i64,
    pub(super) reason: Option<String>,
}

/// The in-process parties of the demo, and what they answered.
pub(super) struct World {
    pub(super) rt: tokio::runtime::Runtime,
    backend: Option<BackendHandle>,
    pub(super) wallet: Arc<Wallet>,
    pub(super) client: Client,
    validators: Vec<Validator>,
    clock: Arc<AtomicI64>,
    /// 07:30 of the demo's fare day; every ride is an offset from it.
    pub(super) day: i64,
    pub(super) reader: ReaderChoice,
    reader_name: String,
    vpcd: String,
    pub(super) rides: Vec<Ride>,
    /// The backend's answers to the validators' batches, in upload order.
    pub(super) batch_answers: Vec<BatchResponse>,
    /// The backend's verdicts on the wallet's tap-log entries, from the sync: (log seq, status).
    pub(super) wallet_verdicts: Vec<(u64, mancard_api::TapStatus)>,
    /// What the wallet says the backend charged for each tap, after the sync.
    pub(super) charged: Vec<Verdict>,
    /// The sandbox payment gateway, a child process (killed when the world is dropped).
    _gateway: super::gateway::GatewayChild,
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

    /// The validator with this id.
    pub(super) fn validator(&mut self, id: u32) -> Res<&mut Validator> {
        Ok(self
            .validators
            .iter_mut()
            .find(|v| v.validator_id() == id)
            .ok_or_else(|| format!("validator {id} is not set up"))?)
    }

    /// Every validator, in the order they were set up.
    pub(super) fn validators(&mut self) -> &mut [Validator] {
        &mut self.validators
    }

    /// Stops the backend cleanly (WAL checkpointed); a second call does nothing.
    pub(super) fn stop_backend(&mut self) -> Result<(), String> {
        match self.backend.take() {
            Some(h) => self.rt.block_on(h.shutdown()).map_err(|e| e.to_string()),
            None => Ok(()),
        }
    }

    /// The story's clock to `at` seconds into the demo's day: the backend's clock is moved
    /// forward to it (never back), the validators' clocks read it, and the phone's clock moves
    /// with it (through the wallet's clock offset, as a sync would): the day runs fast.
    pub(super) fn set_time(&self, at: i64) -> Res<i64> {
        let t = self.day + at;
        clock_to(self.engine()?, t)?;
        self.clock.store(t, Ordering::SeqCst);
        self.wallet
            .set_server_time_offset(t - chrono::Utc::now().timestamp())
            .map_err(|e| format!("phone clock: {e}"))?;
        Ok(t)
    }

    /// One NFC tap of the wallet on validator `id` (in process or through PC/SC).
    pub(super) fn tap_nfc(&mut self, id: u32) -> Res<TapOutcome> {
        match self.reader {
            ReaderChoice::Sim => {
                let wallet = Arc::clone(&self.wallet);
                let mut ch = FnChannel::new(move |apdu| wallet.process_apdu(apdu));
                let o = self.validator(id)?.tap_nfc(&mut ch);
                self.wallet.deactivated();
                Ok(o)
            }
            ReaderChoice::Pcsc => self.tap_pcsc(id),
        }
    }

    /// One tap through pcscd: the phone (a thread) presents the wallet on vpcd, the validator
    /// waits for it on the PC/SC reader, taps, resets the field, and the phone is lifted.
    fn tap_pcsc(&mut self, id: u32) -> Res<TapOutcome> {
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
                    let o = self.validator(id)?.tap_nfc(&mut card);
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

/// Steps 1 and 2: the backend (its sandbox clock moved to the story's morning), the wallet
/// and its online client.
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
    let gateway = super::gateway::GatewayChild::spawn()?;
    let mut cfg = BackendConfig::sandbox(&db);
    cfg.providers.gateway = GatewayConfig::SandboxAt(gateway.url.clone());
    let handle = rt
        .block_on(Backend::start(cfg))
        .map_err(|e| format!("cannot start the backend: {e}"))?;
    let url = handle.url();
    let keys = handle.engine().key_info();
    let day = next_morning(handle.engine().now()) + 1800;
    out.step(
        "backend",
        "The issuer's backend starts (in process, loopback only)",
        t.elapsed(),
        &[
            format!("listening on {url} (sandbox SMS inbox)"),
            format!(
                "sandbox payment gateway: a process of its own (mancard gateway-sandbox serve) on {}",
                gateway.url
            ),
            format!("fresh SQLite database {}", db.display()),
            format!(
                "issuer key{} {} (P-256)",
                if keys.len() == 1 { "" } else { "s" },
                keys.iter()
                    .map(|k| k.key_id.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            format!(
                "the rides start {}: the sandbox clock is moved forward with the story, never \
                 back, so every report reaches the backend after its ride",
                local(day)
            ),
        ],
        json!({"url": url, "gateway_url": gateway.url, "db": db.display().to_string(), "day_start": day}),
    );

    let t = Instant::now();
    let (wallet, client) = open_wallet(dir, args, &url)?;
    out.step(
        "wallet",
        "The rider installs the app: an empty wallet",
        t.elapsed(),
        &[format!(
            "wallet in {} (binding key in the file keystore, integrity only; a phone uses StrongBox / Secure Enclave)",
            dir.join("wallet").display()
        )],
        json!({"wallet_dir": dir.join("wallet").display().to_string()}),
    );
    Ok(World {
        rt,
        backend: Some(handle),
        wallet,
        client,
        validators: Vec::new(),
        clock: Arc::new(AtomicI64::new(day)),
        day,
        reader,
        reader_name: args.reader_name.clone(),
        vpcd: args.vpcd.clone(),
        rides: Vec::new(),
        batch_answers: Vec::new(),
        wallet_verdicts: Vec::new(),
        charged: Vec::new(),
        _gateway: gateway,
    })
}

/// A validator as set up, for the story to tell.
pub(super) struct SetUp {
    pub(super) id: u32,
    pub(super) line: u32,
    pub(super) issuer_key_id: u32,
    pub(super) bundle_bytes: usize,
}

/// The validators of the two buses: each registers its key with the backend, fetches its
/// signed config bundle over HTTP and runs on the story's clock.
pub(super) fn start_validators(w: &mut World, dir: &Path) -> Res<Vec<SetUp>> {
    let mut set_up = Vec::new();
    for (id, line) in [BUS_1, BUS_2] {
        let c = Arc::clone(&w.clock);
        let NewValidator {
            validator,
            issuer_key_id,
            bundle_bytes,
        } = add_validator(
            w.engine()?,
            &w.url()?,
            &dir.join(format!("validator-{id}")),
            (id, line),
            Arc::new(move || c.load(Ordering::SeqCst)),
        )?;
        w.validators.push(validator);
        set_up.push(SetUp {
            id,
            line,
            issuer_key_id,
            bundle_bytes,
        });
    }
    Ok(set_up)
}

/// The empty wallet and the client `--client` chose.
fn open_wallet(dir: &Path, args: &DemoArgs, url: &str) -> Res<(Arc<Wallet>, Client)> {
    let ks = Arc::new(
        FileKeystore::open_or_create(dir.join("keystore")).map_err(|e| format!("keystore: {e}"))?,
    );
    let wallet = Arc::new(
        Wallet::open(dir.join("wallet"), ks.clone(), WalletConfig::default())
            .map_err(|e| format!("cannot open the wallet: {e}"))?,
    );
    let client = match args.client {
        ClientChoice::Online => {
            // No replenishment behind the story's back: the certificate the story tells (and
            // a kept `--data-dir` uses at real time) stays the one issued at the top-up.
            let opts = OnlineOptions {
                max_attempts: 2,
                replenish_on_sync: false,
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
