//! Settlement ingest of validator batches (1,000 NFC taps each, every tap signature verified),
//! beside the raw ring verify rate on all cores and a raw SQLite insert of the same rows, in the
//! same run. `cargo bench -p mancard-backend --bench settlement` (BATCHES=n to change the count).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use mancard_backend::model::{CredentialRequest, OtpRequest, SessionRequest, TopupRequest};
use mancard_backend::{BackendConfig, Engine};
use mancard_protocol::crypto::tags;
use mancard_protocol::provision::{sign_provision, ProvisionPurpose};
use mancard_protocol::{
    BatchBody, CredentialCertificate, FareKind, SigningKey, TapAuthorization, TapChallenge,
    TapProof, TapRecord, Tariff,
};
use rayon::prelude::*;
use std::time::Instant;

const RIDERS: usize = 100;
const TAPS_PER_BATCH: usize = 1_000;

struct Rider {
    tap: SigningKey,
    cert: CredentialCertificate,
    hash: [u8; 32],
    counter: u32,
}

fn setup_rider(e: &Engine, i: usize) -> Rider {
    let phone = format!("+98912{i:07}");
    e.request_otp(&OtpRequest {
        phone: phone.clone(),
    })
    .unwrap();
    let code = e.sandbox_otp(&phone).unwrap().code;
    let s = e.create_session(&SessionRequest { phone, code }).unwrap();
    let intent = e
        .create_topup(
            s.account_id,
            &TopupRequest {
                amount: 100_000_000,
                idempotency_key: "b".into(),
            },
        )
        .unwrap();
    let token = intent.payment_url.rsplit('/').next().unwrap().to_string();
    e.gateway_pay(&token, true).unwrap();
    e.topup_status(s.account_id, &intent.intent_id).unwrap();
    let (binding, _) = SigningKey::generate().unwrap();
    let (tap, _) = SigningKey::generate().unwrap();
    let n = e.new_nonce(s.account_id).unwrap();
    let nonce: [u8; 32] = hex::decode(&n.nonce).unwrap().try_into().unwrap();
    let sig = sign_provision(
        &binding,
        ProvisionPurpose::Provision,
        &nonce,
        &tap.public_key(),
    )
    .unwrap();
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
        .unwrap();
    let cert = CredentialCertificate::decode(&hex::decode(c.certificate).unwrap()).unwrap();
    Rider {
        tap,
        hash: cert.hash(),
        counter: cert.body.allowance.counter_first,
        cert,
    }
}

fn make_batch(
    riders: &mut [Rider],
    validator: &SigningKey,
    base: i64,
    b: usize,
) -> (Vec<u8>, Vec<TapRecord>) {
    let per = TAPS_PER_BATCH / riders.len();
    let mut records = Vec::with_capacity(TAPS_PER_BATCH);
    for k in 0..per {
        for r in riders.iter_mut() {
            let line = [1u32, 2, 10][k % 3];
            let time = base + (b * per + k) as i64 * 120;
            let fare = 20_000;
            let mut nonce = [0u8; 16];
            nonce[..4].copy_from_slice(&r.counter.to_be_bytes());
            let challenge = TapChallenge {
                validator_id: 1,
                nonce,
                validator_time: time,
                line_id: line,
                fare,
            };
            let authorization =
                TapAuthorization::sign(&r.tap, &challenge, &r.hash, r.counter, fare).unwrap();
            records.push(TapRecord {
                validator_id: 1,
                line_id: line,
                time,
                pseudonym: r.cert.body.pseudonym,
                counter: r.counter,
                fare,
                fare_kind: FareKind::Full,
                proof: TapProof::Nfc {
                    challenge,
                    authorization,
                    cert_hash: r.hash,
                },
            });
            r.counter += 1;
        }
    }
    let mut batch_id = [0u8; 16];
    batch_id[..8].copy_from_slice(&(b as u64).to_be_bytes());
    let batch = BatchBody {
        validator_id: 1,
        batch_id,
        created_at: base,
        records: records.clone(),
    }
    .sign(validator)
    .unwrap();
    (batch.encode(), records)
}

/// ring P-256 verify of every tap signature, on all cores (rayon) or one.
fn raw_verify(riders: &[Rider], records: &[TapRecord], parallel: bool) -> f64 {
    let key_of = |r: &TapRecord| {
        riders
            .iter()
            .find(|x| x.cert.body.pseudonym == r.pseudonym)
            .unwrap()
            .cert
            .body
            .tap_public_key
    };
    let keys: Vec<_> = records.iter().map(key_of).collect();
    let verify = |(r, k): (&TapRecord, &mancard_protocol::PublicKey)| {
        if let TapProof::Nfc { authorization, .. } = &r.proof {
            assert!(k
                .verify(
                    tags::TAP,
                    &authorization.signed_bytes(),
                    &authorization.signature
                )
                .is_ok());
        }
    };
    let start = Instant::now();
    if parallel {
        records.par_iter().zip(keys.par_iter()).for_each(verify);
    } else {
        records.iter().zip(keys.iter()).for_each(verify);
    }
    records.len() as f64 / start.elapsed().as_secs_f64()
}

/// A raw SQLite insert of the same rows (one transaction, WAL, synchronous=FULL).
fn raw_insert(dir: &std::path::Path, records: &[TapRecord], round: usize) -> f64 {
    let conn = rusqlite::Connection::open(dir.join("raw.sqlite")).unwrap();
    conn.pragma_update(None, "journal_mode", "WAL").unwrap();
    conn.pragma_update(None, "synchronous", "FULL").unwrap();
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS taps (pseudonym BLOB NOT NULL, counter INTEGER NOT NULL,
            line_id INTEGER, time INTEGER NOT NULL, fare INTEGER NOT NULL, proof BLOB NOT NULL,
            PRIMARY KEY (pseudonym, counter)) WITHOUT ROWID;",
    )
    .unwrap();
    let rows: Vec<_> = records
        .iter()
        .map(|r| {
            (
                r.pseudonym.0,
                r.counter,
                r.line_id,
                r.time,
                r.fare,
                r.encode(),
            )
        })
        .collect();
    let start = Instant::now();
    let mut conn = conn;
    let tx = conn.transaction().unwrap();
    {
        let mut st = tx
            .prepare("INSERT INTO taps (pseudonym, counter, line_id, time, fare, proof) VALUES (?1, ?2, ?3, ?4, ?5, ?6)")
            .unwrap();
        for (p, c, l, t, f, proof) in &rows {
            st.execute(rusqlite::params![
                &p[..],
                c + (round as u32) * 1_000_000,
                l,
                t,
                f,
                proof
            ])
            .unwrap();
        }
    }
    tx.commit().unwrap();
    rows.len() as f64 / start.elapsed().as_secs_f64()
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        println!("settlement: bench");
        return;
    }
    let batches: usize = std::env::var("BATCHES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4);
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = BackendConfig::sandbox(dir.path().join("bench.sqlite"));
    cfg.policy.counters_per_cert = 100_000;
    // every rider authorizes 200 000 rials per batch under one certificate: the allowance
    // (= the balance below this cap) must cover the whole run, or the cumulative check flags it
    cfg.policy.max_offline_amount = 100_000_000;
    let engine = Engine::open(cfg, "http://127.0.0.1:0".into()).unwrap();
    let (vkey, _) = SigningKey::generate().unwrap();
    engine
        .register_validator(&mancard_backend::model::RegisterValidatorRequest {
            validator_id: 1,
            public_key: hex::encode(vkey.public_key().as_bytes()),
        })
        .unwrap();
    let mut riders: Vec<Rider> = (0..RIDERS).map(|i| setup_rider(&engine, i)).collect();
    let t = Tariff::urmia_default();
    let now = engine.now();
    let base = (t.fare_day(now) + 1) * 86_400 - i64::from(t.utc_offset_secs)
        + i64::from(t.day_start_secs)
        + 3600;
    let prepared: Vec<_> = (0..batches)
        .map(|b| make_batch(&mut riders, &vkey, base, b))
        .collect();
    println!(
        "threads: {} (rayon), batches: {batches} x {TAPS_PER_BATCH} NFC taps, {RIDERS} riders",
        rayon::current_num_threads()
    );

    let (mut ingest, mut verify_all, mut verify_one, mut insert) = (vec![], vec![], vec![], vec![]);
    for (b, (bytes, records)) in prepared.iter().enumerate() {
        verify_all.push(raw_verify(&riders, records, true));
        verify_one.push(raw_verify(&riders, records, false));
        insert.push(raw_insert(dir.path(), records, b));
        let start = Instant::now();
        let r = engine.ingest_batch(bytes).unwrap();
        ingest.push(records.len() as f64 / start.elapsed().as_secs_f64());
        assert_eq!(
            r.settled,
            TAPS_PER_BATCH,
            "{:?}",
            r.records.iter().find(|x| x.status != "settled")
        );
    }
    let audit = engine.audit().unwrap();
    assert!(audit.ok);
    let med = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.total_cmp(b));
        v[v.len() / 2]
    };
    let (i, va, v1, ins) = (
        med(&mut ingest),
        med(&mut verify_all),
        med(&mut verify_one),
        med(&mut insert),
    );
    println!("raw ring P-256 verify, 1 core        {v1:>10.0} /s");
    println!("raw ring P-256 verify, all cores     {va:>10.0} /s");
    println!("raw SQLite insert of the same rows   {ins:>10.0} rows/s (1 transaction, WAL, synchronous=FULL)");
    println!(
        "settlement ingest (verify + settle)  {i:>10.0} taps/s  = {:.0}% of all-core raw verify",
        100.0 * i / va
    );
}
