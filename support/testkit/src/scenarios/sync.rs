//! The wallet's sync of N pending taps end to end on loopback: the real backend in process,
//! a fresh wallet and account per round (signed in with the sandbox code, provisioned, topped
//! up, replenished), N taps through `process_apdu` with validator-like challenges (the
//! tariff's fares, 20 s apart, lines 1, 2 and 10, from a validator registered at the backend).
//! The step is one `OnlineWallet::sync()`:
//! upload in pages, verification and settlement, verdicts and ledger applied to the wallet.

use super::wallet::open_wallet;
use super::Res;
use crate::online::{try_login, try_taps, try_top_up, Env, Validator};
use mancard::online::{OnlineOptions, OnlineWallet, SyncReport};
use mancard::{now_utc, Wallet};
use std::path::Path;
use std::sync::Arc;

/// Seconds between two taps of a round.
const SPACING: i64 = 20;
/// Each round's top-up, rials.
const TOP_UP: i64 = 5_000_000;

/// The backend every round syncs with, on its own runtime.
pub struct SyncBackend {
    env: Env,
}

impl SyncBackend {
    /// A sandbox backend in `dir` whose certificates cover `taps` counters.
    pub fn start(dir: &Path, taps: usize) -> Res<Self> {
        let counters = u32::try_from(taps)?.saturating_mul(2).max(64);
        let env = Env::start_in(dir, |p| {
            p.counters_per_cert = counters;
            p.max_offline_amount = 100_000_000;
        })?;
        Ok(Self { env })
    }

    /// Round `round`: a fresh wallet and account with `taps` taps pending.
    pub fn round(&self, round: usize, taps: usize) -> Res<SyncRound> {
        let dir = self.env.path().join(format!("phone-{round}"));
        std::fs::create_dir_all(&dir)?;
        let wallet = open_wallet(&dir)?;
        let options = OnlineOptions {
            max_attempts: 2,
            ..OnlineOptions::default()
        };
        let online = OnlineWallet::new(Arc::clone(&wallet), self.env.url.clone(), options)?;
        let account_id = try_login(&self.env, &online, &format!("+98912000{round:04}"))?;
        online.block_on(online.provision())??;
        try_top_up(&self.env, &online, TOP_UP)?;
        online.block_on(online.replenish())??;
        let mut validator = Validator::try_new(&self.env, 100 + u32::try_from(round)?)?;
        // The rides start at the backend's clock (earlier rounds moved it forward: the
        // validator's taps do, as time passes for it).
        let start = self.env.engine().now().max(now_utc());
        try_taps(&wallet, &mut validator, taps, start, SPACING)?;
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
        let engine = self.env.engine();
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
    pub fn shutdown(self) -> Res<()> {
        self.env.shutdown()
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
