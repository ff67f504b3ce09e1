//! Settlement ingest: the backend verifies and settles a signed validator batch of NFC taps
//! (every challenge signature under the validator's registered key and every tap signature
//! verified), from riders set up through the engine ([`EngineRider`]: sandbox OTP, top-up, a
//! software binding key, a certificate) and a validator registered with its certificate.

use super::Res;
use crate::backend::{signed_batch, EngineRider, Validator};
use mancard_backend::{BackendConfig, Engine};
use mancard_protocol::{TapProof, TapRecord, Tariff};
use std::path::Path;

/// The validator every batch comes from.
const VALIDATOR_ID: u32 = 1;
/// Seconds between one rider's taps.
const SPACING: i64 = 60;
const FARE: i64 = 20_000;
/// Each rider's top-up, rials.
const TOP_UP: i64 = 10_000_000;

/// A signed batch ready to ingest, with its records.
pub struct PreparedBatch {
    pub bytes: Vec<u8>,
    pub records: Vec<TapRecord>,
}

/// The settlement-ingest scenario.
pub struct SettlementIngest {
    engine: Engine,
    validator: Validator,
    riders: Vec<EngineRider>,
    /// 08:30 tomorrow (fare day of the backend's clock + 1): the first tap.
    base: i64,
    per_batch: usize,
    batches: usize,
}

fn api(what: &'static str) -> impl Fn(mancard_backend::Error) -> String {
    move |e| format!("{what}: {e}")
}

impl SettlementIngest {
    /// A backend in `dir` with validator 1 registered (and certified) and `riders` riders,
    /// batches of
    /// `per_batch` taps (a multiple of `riders`).
    pub fn new(dir: &Path, riders: usize, per_batch: usize) -> Res<Self> {
        std::fs::create_dir_all(dir)?;
        let mut cfg = BackendConfig::sandbox(dir.join("bench.sqlite"));
        cfg.policy.counters_per_cert = 100_000;
        // The allowance is a running total per certificate: it must cover the whole run.
        cfg.policy.max_offline_amount = 100_000_000;
        let engine = Engine::open(cfg, "http://127.0.0.1:0".into())?;
        let validator = Validator::register_on(&engine, VALIDATOR_ID);
        let riders = (0..riders)
            .map(|i| EngineRider::setup(&engine, &format!("+98914{i:07}"), TOP_UP))
            .collect();
        let t = Tariff::urmia_default();
        let base = (t.fare_day(engine.now()) + 1) * 86_400 - i64::from(t.utc_offset_secs)
            + i64::from(t.day_start_secs)
            + 3600;
        Ok(Self {
            engine,
            validator,
            riders,
            base,
            per_batch,
            batches: 0,
        })
    }

    /// The next batch: every rider taps `per_batch / riders` times, a minute apart, on
    /// lines 1, 2 and 10 in turn.
    pub fn next_batch(&mut self) -> Res<PreparedBatch> {
        let b = self.batches;
        self.batches += 1;
        let per = self.per_batch / self.riders.len().max(1);
        let mut records = Vec::with_capacity(self.per_batch);
        for k in 0..per {
            let line = [1u32, 2, 10].get(k % 3).copied().unwrap_or(1);
            let time = self.base + i64::try_from(b * per + k)? * SPACING;
            for r in self.riders.iter_mut() {
                records.push(r.nfc_record(&self.validator, line, FARE, time));
            }
        }
        // The batch is uploaded after its rides: the sandbox backend's clock moves past them
        // (it refuses taps dated later than its clock allows).
        if let Some(last) = records.iter().map(|r| r.time).max() {
            self.engine
                .advance_clock_to(last.saturating_add(1))
                .map_err(api("clock"))?;
        }
        let mut batch_id = [0u8; 16];
        for (d, s) in batch_id.iter_mut().zip(u64::try_from(b)?.to_be_bytes()) {
            *d = s;
        }
        let bytes = signed_batch(
            &self.validator.key,
            VALIDATOR_ID,
            batch_id,
            self.base,
            records.clone(),
        );
        Ok(PreparedBatch { bytes, records })
    }

    /// Ingests `batch`; every record must come back settled. The number settled.
    pub fn run_once(&self, batch: &PreparedBatch) -> Res<usize> {
        let r = self
            .engine
            .ingest_batch(&batch.bytes)
            .map_err(api("ingest"))?;
        if r.settled != batch.records.len() || r.records.len() != batch.records.len() {
            return Err(format!(
                "settlement: {} of {} records settled ({} answered; first: {:?})",
                r.settled,
                batch.records.len(),
                r.records.len(),
                r.records.first()
            )
            .into());
        }
        Ok(r.settled)
    }

    /// The peer: a raw ring verify of one record's tap signature with its rider's key (the
    /// backend verifies the validator's challenge signature too: two verifies a tap).
    pub fn verify_record(&self, record: &TapRecord) -> Res<()> {
        let key = self
            .riders
            .iter()
            .find(|x| x.cert.body.pseudonym == record.pseudonym)
            .ok_or("a record of no rider")?
            .cert
            .body
            .tap_public_key;
        if let TapProof::Nfc {
            challenge,
            authorization,
        } = &record.proof
        {
            authorization
                .verify(&key, &challenge.body)
                .map_err(|_| "raw verify failed")?;
        }
        Ok(())
    }

    /// The backend's audit after the run: balances are sums, every tap charged once.
    pub fn audit(&self) -> Res<()> {
        let a = self.engine.audit().map_err(api("audit"))?;
        if !a.ok {
            return Err(format!("backend audit failed after ingest: {a:?}").into());
        }
        Ok(())
    }
}
