//! The reel's world: the backend (in process, loopback HTTP, sandbox, one operator `reel` with every scope), the
//! validators of two buses (7 on line 1, 8 on line 2) on the backend's clock, and the riders.
//! The clock is the sandbox backend's, moved forward only: every report reaches the backend
//! after its ride.

use super::super::parties::{self, add_validator, clock_to, next_morning, Uploaded};
use super::super::Res;
use super::api::Api;
use super::rider::{Backend, Rider};
use mancard_api::{LedgerKind, Scope};
use mancard_backend::operators::{Operator, Operators};
use mancard_backend::{Backend as Server, BackendConfig, BackendHandle, Engine};
use mancard_validator::{FnChannel, TapOutcome, Validator};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Validator 7 (bus 1) and its line.
pub(super) const V7: (u32, u32) = (7, 1);
/// Validator 8 (bus 2) and its line.
pub(super) const V8: (u32, u32) = (8, 2);

pub(super) struct Reel {
    pub(super) rt: tokio::runtime::Runtime,
    handle: Option<BackendHandle>,
    pub(super) engine: Arc<Engine>,
    pub(super) url: String,
    pub(super) api: Api,
    /// The operator's bearer token (admin API).
    pub(super) admin: String,
    dir: PathBuf,
    validators: Vec<Validator>,
    /// Every rider's account, for the books.
    pub(super) accounts: Vec<(&'static str, i64)>,
    riders: u32,
}

impl Reel {
    /// The backend (its clock moved to the next 07:00), validators 7 and 8.
    pub(super) fn start(dir: &Path) -> Res<Self> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| format!("tokio runtime: {e}"))?;
        let admin = format!("mco_{}", hex::encode(ring_random::<32>()?));
        let mut cfg = BackendConfig::sandbox(dir.join("backend.sqlite"));
        let reel = Operator::with_token("reel", &Scope::ALL, &admin)
            .map_err(|e| format!("operator: {e}"))?;
        cfg.operators = Operators::new(vec![reel]).map_err(|e| format!("operators: {e}"))?;
        cfg.policy.reconcile_every_secs = 0;
        let handle = rt
            .block_on(Server::start(cfg))
            .map_err(|e| format!("cannot start the backend: {e}"))?;
        let engine = Arc::clone(handle.engine());
        let url = handle.url();
        clock_to(&engine, next_morning(engine.now()))?;
        let mut reel = Self {
            rt,
            handle: Some(handle),
            api: Api::new(url.clone())?,
            engine,
            url,
            admin,
            dir: dir.to_path_buf(),
            validators: Vec::new(),
            accounts: Vec::new(),
            riders: 0,
        };
        reel.add_validator(V7, 0)?;
        reel.add_validator(V8, 0)?;
        Ok(reel)
    }

    /// A validator whose clock reads the backend's plus `skew` seconds.
    pub(super) fn add_validator(&mut self, (id, line): (u32, u32), skew: i64) -> Res<()> {
        let e = Arc::clone(&self.engine);
        let nv = add_validator(
            &self.engine,
            &self.url,
            &self.dir.join(format!("validator-{id}")),
            (id, line),
            Arc::new(move || e.now() + skew),
        )?;
        self.validators.push(nv.validator);
        Ok(())
    }

    pub(super) fn validator(&mut self, id: u32) -> Res<&mut Validator> {
        Ok(self
            .validators
            .iter_mut()
            .find(|v| v.validator_id() == id)
            .ok_or_else(|| format!("validator {id} is not set up"))?)
    }

    pub(super) fn validators(&mut self) -> &mut [Validator] {
        &mut self.validators
    }

    pub(super) fn backend(&self) -> Backend<'_> {
        Backend {
            engine: &self.engine,
            url: &self.url,
            api: &self.api,
            rt: &self.rt,
        }
    }

    /// A new rider (a fresh account and phone).
    pub(super) fn rider(&mut self, name: &'static str, top_up: i64, rooted: bool) -> Res<Rider> {
        let phone = format!("0914555{:04}", self.riders + 1);
        self.phone_of(name, &phone, top_up, rooted)
    }

    /// A phone of the account of `phone` (a new one: a new account; another: a second device).
    pub(super) fn phone_of(
        &mut self,
        name: &'static str,
        phone: &str,
        top_up: i64,
        rooted: bool,
    ) -> Res<Rider> {
        self.riders += 1;
        let dir = self.dir.join(format!("phone-{}-{name}", self.riders));
        let r = Rider::join(&self.backend(), &dir, (name, phone), top_up, rooted)?;
        if !self.accounts.iter().any(|(_, a)| *a == r.account_id) {
            self.accounts.push((name, r.account_id));
        }
        Ok(r)
    }

    /// A fresh directory of the reel's for `name`.
    pub(super) fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Moves the story's clock `secs` forward; the riders' phones follow at their next sync
    /// (or at once with [`Rider::follow`]).
    pub(super) fn wait(&self, secs: i64) -> Res<()> {
        clock_to(&self.engine, self.engine.now() + secs)
    }

    /// One NFC tap of `rider`'s phone at validator `id`, on `line`.
    pub(super) fn tap(&mut self, rider: &Rider, (id, line): (u32, u32)) -> Res<TapOutcome> {
        rider.follow(&self.engine)?;
        let w = Arc::clone(&rider.wallet);
        let mut ch = FnChannel::new(move |apdu| w.process_apdu(apdu));
        let v = self.validator(id)?;
        v.set_line(line)?;
        let o = v.tap_nfc(&mut ch);
        rider.wallet.deactivated();
        Ok(o)
    }

    /// Validator `id` scans a QR pass text on `line`.
    pub(super) fn scan(&mut self, text: &str, (id, line): (u32, u32)) -> Res<TapOutcome> {
        let v = self.validator(id)?;
        v.set_line(line)?;
        Ok(v.verify_qr(text))
    }

    /// Validator `id` uploads its journal (in coverage).
    pub(super) fn upload(&mut self, id: u32) -> Res<Uploaded> {
        let (engine, url) = (Arc::clone(&self.engine), self.url.clone());
        let (up, failed) = parties::upload(self.validator(id)?, &engine, &url, true)?;
        match failed {
            Some(e) => Err(format!("validator {id} upload: {e}").into()),
            None => Ok(up),
        }
    }

    /// Every validator fetches the backend's newest config bundle (deny lists).
    pub(super) fn refresh_bundles(&mut self) -> Res<()> {
        let bundle = parties::fetch_bundle(&self.url)?;
        for v in &mut self.validators {
            v.install_config(&bundle)?;
        }
        Ok(())
    }

    /// What the backend charges `account` for its rides now (fares and their corrections).
    pub(super) fn charged(&self, account: i64) -> Res<i64> {
        let ledger = self
            .engine
            .ledger(account)
            .map_err(|e| format!("backend ledger: {e}"))?;
        Ok(-ledger
            .iter()
            .filter(|e| matches!(e.kind, LedgerKind::Fare | LedgerKind::FareAdjustment))
            .map(|e| e.amount)
            .sum::<i64>())
    }

    pub(super) fn balance(&self, account: i64) -> Res<i64> {
        Ok(self
            .engine
            .account(account)
            .map_err(|e| format!("backend account: {e}"))?
            .balance)
    }

    /// Fraud cases ever opened.
    pub(super) fn cases(&self) -> Res<usize> {
        Ok(self
            .engine
            .fraud_cases()
            .map_err(|e| format!("fraud cases: {e}"))?
            .len())
    }

    /// Stops the backend cleanly (WAL checkpointed); a second call does nothing.
    pub(super) fn stop(&mut self) -> Result<(), String> {
        match self.handle.take() {
            Some(h) => self.rt.block_on(h.shutdown()).map_err(|e| e.to_string()),
            None => Ok(()),
        }
    }
}

/// `N` random bytes.
fn ring_random<const N: usize>() -> Res<[u8; N]> {
    use ring::rand::SecureRandom as _;
    let mut b = [0u8; N];
    ring::rand::SystemRandom::new()
        .fill(&mut b)
        .map_err(|_| "the system random number generator failed")?;
    Ok(b)
}
