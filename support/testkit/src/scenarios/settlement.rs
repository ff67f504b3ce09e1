//! Settlement ingest: the backend verifies and settles a signed validator batch of NFC taps
//! (every tap signature verified), from riders set up through the engine (sandbox OTP,
//! top-up, a software binding key, a certificate).

use super::Res;
use mancard_api::{
    CredentialRequest, OtpRequest, RegisterValidatorRequest, SessionRequest, TopupRequest,
};
use mancard_backend::{BackendConfig, Engine};
use mancard_protocol::crypto::tags;
use mancard_protocol::provision::{sign_provision, ProvisionPurpose};
use mancard_protocol::{
    BatchBody, CredentialCertificate, FareKind, SigningKey, TapAuthorization, TapChallenge,
    TapProof, TapRecord, Tariff,
};
use std::path::Path;

/// The validator every batch comes from.
const VALIDATOR_ID: u32 = 1;
/// Seconds between one rider's taps.
const SPACING: i64 = 60;
const FARE: i64 = 20_000;

/// A rider set up through the engine.
struct Rider {
    tap: SigningKey,
    cert: CredentialCertificate,
    hash: [u8; 32],
    counter: u32,
}

/// A signed batch ready to ingest, with its records.
pub struct PreparedBatch {
    pub bytes: Vec<u8>,
    pub records: Vec<TapRecord>,
}

/// The settlement-ingest scenario.
pub struct SettlementIngest {
    engine: Engine,
    validator: SigningKey,
    riders: Vec<Rider>,
    /// 08:30 tomorrow (fare day of the backend's clock + 1): the first tap.
    base: i64,
    per_batch: usize,
    batches: usize,
}

fn api(what: &'static str) -> impl Fn(mancard_backend::Error) -> String {
    move |e| format!("{what}: {e}")
}

impl SettlementIngest {
    /// A backend in `dir` with validator 1 registered and `riders` riders, batches of
    /// `per_batch` taps (a multiple of `riders`).
    pub fn new(dir: &Path, riders: usize, per_batch: usize) -> Res<Self> {
        std::fs::create_dir_all(dir)?;
        let mut cfg = BackendConfig::sandbox(dir.join("bench.sqlite"));
        cfg.policy.counters_per_cert = 100_000;
        // The allowance is a running total per certificate: it must cover the whole run.
        cfg.policy.max_offline_amount = 100_000_000;
        let engine = Engine::open(cfg, "http://127.0.0.1:0".into())?;
        let validator = SigningKey::generate()?.0;
        engine
            .register_validator(&RegisterValidatorRequest {
                validator_id: VALIDATOR_ID,
                public_key: hex::encode(validator.public_key().as_bytes()),
            })
            .map_err(api("register validator"))?;
        let riders = (0..riders)
            .map(|i| rider(&engine, i))
            .collect::<Res<Vec<_>>>()?;
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
                records.push(tap_record(r, line, time)?);
            }
        }
        let mut batch_id = [0u8; 16];
        for (d, s) in batch_id.iter_mut().zip(u64::try_from(b)?.to_be_bytes()) {
            *d = s;
        }
        let bytes = BatchBody {
            validator_id: VALIDATOR_ID,
            batch_id,
            created_at: self.base,
            records: records.clone(),
        }
        .sign(&self.validator)?
        .encode();
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

    /// The peer: a raw ring verify of one record's tap signature with its rider's key.
    pub fn verify_record(&self, record: &TapRecord) -> Res<()> {
        let key = self
            .riders
            .iter()
            .find(|x| x.cert.body.pseudonym == record.pseudonym)
            .ok_or("a record of no rider")?
            .cert
            .body
            .tap_public_key;
        if let TapProof::Nfc { authorization, .. } = &record.proof {
            key.verify(
                tags::TAP,
                &authorization.signed_bytes(),
                &authorization.signature,
            )
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

fn tap_record(r: &mut Rider, line: u32, time: i64) -> Res<TapRecord> {
    let mut nonce = [0u8; 16];
    for (d, s) in nonce.iter_mut().zip(r.counter.to_be_bytes()) {
        *d = s;
    }
    let challenge = TapChallenge {
        validator_id: VALIDATOR_ID,
        nonce,
        validator_time: time,
        line_id: line,
        fare: FARE,
    };
    let authorization = TapAuthorization::sign(&r.tap, &challenge, &r.hash, r.counter, FARE)?;
    let record = TapRecord {
        validator_id: VALIDATOR_ID,
        line_id: line,
        time,
        pseudonym: r.cert.body.pseudonym,
        counter: r.counter,
        fare: FARE,
        fare_kind: FareKind::Full,
        proof: TapProof::Nfc {
            challenge,
            authorization,
            cert_hash: r.hash,
        },
    };
    r.counter = r.counter.saturating_add(1);
    Ok(record)
}

/// Rider `i`: phone, sandbox OTP, session, a 10,000,000-rial top-up, a certificate.
fn rider(e: &Engine, i: usize) -> Res<Rider> {
    let phone = format!("+98914{i:07}");
    e.request_otp(&OtpRequest {
        phone: phone.clone(),
    })
    .map_err(api("otp"))?;
    let code = e.sandbox_otp(&phone).map_err(api("sandbox otp"))?.code;
    let s = e
        .create_session(&SessionRequest { phone, code })
        .map_err(api("session"))?;
    let intent = e
        .create_topup(
            s.account_id,
            &TopupRequest {
                amount: 10_000_000,
                idempotency_key: format!("bench-{i}"),
            },
        )
        .map_err(api("top-up"))?;
    let token = intent.payment_url.rsplit('/').next().unwrap_or_default();
    e.gateway_pay(token, true).map_err(api("gateway"))?;
    e.topup_status(s.account_id, &intent.intent_id)
        .map_err(api("top-up status"))?;
    let binding = SigningKey::generate()?.0;
    let tap = SigningKey::generate()?.0;
    let n = e.new_nonce(s.account_id).map_err(api("nonce"))?;
    let nonce: [u8; 32] = hex::decode(&n.nonce)?
        .try_into()
        .map_err(|_| "nonce is not 32 bytes")?;
    let sig = sign_provision(
        &binding,
        ProvisionPurpose::Provision,
        &nonce,
        &tap.public_key(),
    )?;
    let c = e
        .issue(
            s.account_id,
            &CredentialRequest {
                nonce: n.nonce,
                binding_public_key: hex::encode(binding.public_key().as_bytes()),
                tap_public_key: hex::encode(tap.public_key().as_bytes()),
                signature: hex::encode(sig.as_bytes()),
                next_counter: None,
            },
            ProvisionPurpose::Provision,
        )
        .map_err(api("issue"))?;
    let cert = CredentialCertificate::decode(&hex::decode(c.certificate)?)?;
    Ok(Rider {
        tap,
        hash: cert.hash(),
        counter: cert.body.allowance.counter_first,
        cert,
    })
}
