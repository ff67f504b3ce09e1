//! The wallet's sync of N pending taps end to end on loopback: the real backend in process,
//! a fresh wallet and account per round (signed in with the sandbox code, provisioned, topped
//! up, replenished), N taps through `process_apdu` with validator-like challenges (the
//! tariff's fares, 20 s apart, lines 1, 2 and 10). The step is one `OnlineWallet::sync()`:
//! upload in pages, verification and settlement, verdicts and ledger applied to the wallet.

use super::wallet::open_wallet;
use super::Res;
use mancard::online::{OnlineOptions, OnlineWallet, SyncReport, TopUpStatus};
use mancard::{now_utc, Wallet};
use mancard_backend::{Backend, BackendConfig, BackendHandle};
use mancard_protocol::{CommandApdu, FareClass, RideState, TapChallenge, Tariff};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Seconds between two taps of a round.
const SPACING: i64 = 20;
/// Each round's top-up, rials.
const TOP_UP: i64 = 5_000_000;

/// The backend every round syncs with, on its own runtime.
pub struct SyncBackend {
    rt: tokio::runtime::Runtime,
    handle: Option<BackendHandle>,
    dir: PathBuf,
}

impl SyncBackend {
    /// A sandbox backend in `dir` whose certificates cover `taps` counters.
    pub fn start(dir: &Path, taps: usize) -> Res<Self> {
        std::fs::create_dir_all(dir)?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        let mut cfg = BackendConfig::sandbox(dir.join("backend.sqlite"));
        cfg.policy.counters_per_cert = u32::try_from(taps)?.saturating_mul(2).max(64);
        cfg.policy.max_offline_amount = 100_000_000;
        let handle = rt.block_on(Backend::start(cfg))?;
        Ok(Self {
            rt,
            handle: Some(handle),
            dir: dir.to_path_buf(),
        })
    }

    fn handle(&self) -> Res<&BackendHandle> {
        Ok(self.handle.as_ref().ok_or("the backend is stopped")?)
    }

    /// Round `round`: a fresh wallet and account with `taps` taps pending.
    pub fn round(&self, round: usize, taps: usize) -> Res<SyncRound> {
        let h = self.handle()?;
        let dir = self.dir.join(format!("phone-{round}"));
        std::fs::create_dir_all(&dir)?;
        let wallet = open_wallet(&dir)?;
        let options = OnlineOptions {
            max_attempts: 2,
            ..OnlineOptions::default()
        };
        let online = OnlineWallet::new(Arc::clone(&wallet), h.url(), options)?;
        let sent = online.block_on(online.register(format!("+98912000{round:04}")))??;
        let code = h
            .engine()
            .sandbox_otp(&sent.phone)
            .map_err(|e| format!("sandbox otp: {e}"))?
            .code;
        let account_id = online
            .block_on(online.verify(sent.phone, code))??
            .account_id;
        online.block_on(online.provision())??;
        let intent = online.block_on(online.start_top_up(TOP_UP))??;
        let token = intent.payment_url.rsplit('/').next().unwrap_or_default();
        h.engine()
            .gateway_pay(token, true)
            .map_err(|e| format!("gateway: {e}"))?;
        let done = online.block_on(online.complete_top_up(intent.intent_id))??;
        if done.status != TopUpStatus::Credited {
            return Err(format!("the round's top-up ended {:?}", done.status).into());
        }
        online.block_on(online.replenish())??;
        seed_taps(&wallet, 100 + u32::try_from(round)?, taps)?;
        Ok(SyncRound {
            wallet,
            online,
            taps,
            account_id,
        })
    }

    /// After a round's sync, wallet and backend agree: the confirmed balance is the
    /// backend's, every tap-log entry has exactly one verdict (settled or duplicate), and the
    /// backend's audit passes.
    pub fn check_converged(&self, round: &SyncRound) -> Res<()> {
        let engine = self.handle()?.engine();
        let backend = engine
            .balances()
            .map_err(|e| format!("balances: {e}"))?
            .get(&round.account_id)
            .copied()
            .ok_or("the round's account has no balance")?;
        let l = round.wallet.ledger()?;
        if l.confirmed_balance != backend || l.pending_taps != 0 {
            return Err(format!(
                "wallet confirmed {} with {} pending, backend {backend}",
                l.confirmed_balance, l.pending_taps
            )
            .into());
        }
        let log = round.wallet.verify_tap_log()?;
        let verdicts = round.wallet.tap_settlements()?;
        let judged = verdicts
            .iter()
            .filter(|t| t.status == "settled" || t.status == "duplicate")
            .count();
        if u64::try_from(judged)? != log || verdicts.len() != judged {
            return Err(format!(
                "{log} tap-log entries, {} verdicts, {judged} settled or duplicate",
                verdicts.len()
            )
            .into());
        }
        let a = engine.audit().map_err(|e| format!("audit: {e}"))?;
        if !a.ok {
            return Err(format!("backend audit failed: {a:?}").into());
        }
        Ok(())
    }

    /// Stops the backend (WAL checkpointed).
    pub fn shutdown(mut self) -> Res<()> {
        if let Some(h) = self.handle.take() {
            self.rt.block_on(h.shutdown())?;
        }
        Ok(())
    }
}

impl Drop for SyncBackend {
    fn drop(&mut self) {
        if let Some(h) = self.handle.take() {
            let _ = self.rt.block_on(h.shutdown());
        }
    }
}

/// One round: a wallet with its taps pending, synced once.
pub struct SyncRound {
    wallet: Arc<Wallet>,
    online: OnlineWallet,
    taps: usize,
    account_id: i64,
}

impl SyncRound {
    /// The sync; every tap uploaded and settled, nothing left pending.
    pub fn run_once(&self) -> Res<SyncReport> {
        let r = self.online.block_on(self.online.sync())??;
        let n = u64::try_from(self.taps)?;
        if r.uploaded != n || r.settled != n || r.pending_taps != 0 {
            return Err(format!(
                "sync of {n} taps: uploaded {}, settled {}, {} still pending",
                r.uploaded, r.settled, r.pending_taps
            )
            .into());
        }
        Ok(r)
    }

    pub fn wallet(&self) -> &Arc<Wallet> {
        &self.wallet
    }
}

/// `n` taps from validator `id` from now on, `SPACING` s apart, on lines 1, 2 and 10, each
/// charged what the tariff says from the validator's point of view.
fn seed_taps(w: &Wallet, id: u32, n: usize) -> Res<()> {
    let tariff = Tariff::urmia_default();
    let mut state = RideState::default();
    let select = CommandApdu::select_mancard().encode()?;
    let start = now_utc();
    for i in 0..n {
        let line = [1u32, 2, 10].get(i % 3).copied().unwrap_or(1);
        let time = start + i64::try_from(i)? * SPACING;
        let q = tariff
            .fare(FareClass::Adult, line, time, &state)
            .map_err(|e| format!("tariff: {e}"))?;
        state = q.next;
        let mut nonce = [0u8; 16];
        let seq = u64::try_from(i)?.to_be_bytes();
        for (d, s) in nonce
            .iter_mut()
            .zip(id.to_be_bytes().into_iter().chain(seq))
        {
            *d = s;
        }
        let ch = TapChallenge {
            validator_id: id,
            nonce,
            validator_time: time,
            line_id: line,
            fare: q.amount,
        };
        w.process_apdu(select.clone());
        let r = w.process_apdu(CommandApdu::authorize_tap(&ch).encode()?);
        w.deactivated();
        if r.get(r.len().saturating_sub(2)..) != Some(&[0x90, 0x00][..]) {
            return Err(format!("tap {i} refused: {}", hex::encode(&r)).into());
        }
    }
    Ok(())
}
