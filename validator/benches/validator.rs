//! Validator benchmarks (criterion 0.5), all in one run so the ratios are fair:
//! - one raw ring P-256 verify (the anchor),
//! - the decision with a cached certificate (lookup, deny list, validity, fare, tap signature,
//!   replay check) — goal ≤ 1.3× the raw verify,
//! - the journal write of an accepted tap (`synchronous=FULL`) and of a refusal (`NORMAL`),
//! - then, outside criterion, a whole tap through pcscd + vpcd on loopback (connect, SELECT,
//!   AUTHORIZE TAP, journal, reset) with the real wallet core as the card: median and p99
//!   (goal ≤ 10 ms). Skipped with a notice when pcscd is not running.
//!
//! `cargo bench -p mancard-validator --bench validator -- --warm-up-time 1 --measurement-time 3`
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use criterion::{black_box, Criterion};
use mancard::{IssuerKeyInfo, SoftwareKeystore, Wallet, WalletConfig};
use mancard_protocol::crypto::tags;
use mancard_protocol::{
    CertificateBody, ConfigBody, FareClass, FareKind, IssuerKey, OfflineAllowance, Pseudonym,
    PublicKey, RideState, SigningKey, TapAuthorization, TapChallenge, TapProof, TapRecord, Tariff,
};
use mancard_validator::pcsc_reader::{pcscd_available, PcscReader};
use mancard_validator::vpcd::{run_card, FnCard};
use mancard_validator::{Journal, Medium, Refusal, TrustAnchor, Validator};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const T0: i64 = 1_795_840_200;

struct Fixture {
    issuer: SigningKey,
    v: Validator,
    hash: [u8; 32],
    challenge: TapChallenge,
    auth: TapAuthorization,
    tap_pub: PublicKey,
    pass_text: String,
}

fn bundle(issuer: &SigningKey, now: i64) -> Vec<u8> {
    ConfigBody {
        bundle_version: 1,
        issued_at: now,
        signer_key_id: 1,
        issuer_keys: vec![IssuerKey {
            key_id: 1,
            public_key: issuer.public_key(),
            valid_from: 0,
            valid_until: i64::MAX / 2,
        }],
        // A realistic deny list: 100,000 revoked cards.
        deny_list: (0..100_000u32)
            .map(|i| {
                let mut p = [0u8; 16];
                p[..4].copy_from_slice(&i.to_be_bytes());
                p[15] = 0xAA;
                Pseudonym(p)
            })
            .collect(),
        tariff: Tariff::urmia_default(),
    }
    .sign(issuer)
    .unwrap()
    .encode()
}

fn fixture() -> Fixture {
    let (issuer, _) = SigningKey::generate().unwrap();
    let mut j = Journal::in_memory().unwrap();
    let anchor = TrustAnchor {
        key_id: Some(1),
        public_key: issuer.public_key(),
    };
    Validator::provision_journal(&mut j, &anchor, 9, 1).unwrap();
    let mut v =
        Validator::from_parts(j, SigningKey::generate().unwrap().0, Arc::new(|| T0)).unwrap();
    v.install_config(&bundle(&issuer, T0)).unwrap();
    let (tap, _) = SigningKey::generate().unwrap();
    let cert = CertificateBody {
        issuer_key_id: 1,
        pseudonym: Pseudonym::random().unwrap(),
        tap_public_key: tap.public_key(),
        valid_from: T0 - 10,
        valid_until: T0 + 86_400,
        fare_class: FareClass::Adult,
        allowance: OfflineAllowance {
            counter_first: 0,
            counter_last: 1000,
            max_amount: 1_000_000,
        },
    }
    .sign(&issuer)
    .unwrap();
    let vc = v.engine().admit_cert(cert.clone()).unwrap();
    let pass_text = mancard_protocol::PassBody {
        certificate: cert,
        counter: 7,
        issued_at: T0,
        lifetime_secs: 60,
        max_amount: 30_000,
    }
    .sign(&tap)
    .unwrap()
    .to_text();
    let challenge = TapChallenge {
        validator_id: 9,
        nonce: [7; 16],
        validator_time: T0,
        line_id: 1,
        fare: 20_000,
    };
    let auth = TapAuthorization::sign(&tap, &challenge, &vc.hash, 5, 20_000).unwrap();
    Fixture {
        issuer,
        v,
        hash: vc.hash,
        challenge,
        auth,
        tap_pub: tap.public_key(),
        pass_text,
    }
}

fn record(f: &Fixture, counter: u32) -> TapRecord {
    TapRecord {
        validator_id: 9,
        line_id: 1,
        time: T0,
        pseudonym: Pseudonym([1; 16]),
        counter,
        fare: 20_000,
        fare_kind: FareKind::Full,
        proof: TapProof::Nfc {
            challenge: f.challenge.clone(),
            authorization: f.auth.clone(),
            cert_hash: f.hash,
        },
    }
}

fn median_ns(mut v: Vec<u128>) -> u128 {
    v.sort_unstable();
    v.get(v.len() / 2).copied().unwrap_or(0)
}

fn benches(c: &mut Criterion, f: &mut Fixture) {
    let signed = f.auth.signed_bytes();
    let mut g = c.benchmark_group("validator");
    g.bench_function("raw_ring_p256_verify", |b| {
        b.iter(|| {
            f.tap_pub
                .verify(tags::TAP, black_box(&signed), &f.auth.signature)
                .unwrap()
        })
    });
    let (hash, ch, auth) = (f.hash, f.challenge.clone(), f.auth.clone());
    g.bench_function("decision_cached_cert", |b| {
        b.iter(|| {
            f.v.engine()
                .decide_cached_nfc(black_box(&hash), 1, &ch, &auth)
                .unwrap()
        })
    });
    // QR: pass text → Base45 decode → cached certificate → window, deny list, fare, tap signature.
    let pass_text = f.pass_text.clone();
    g.bench_function("qr_text_to_decision_cached_cert", |b| {
        b.iter(|| {
            let p = mancard_protocol::BoardingPass::from_text(black_box(&pass_text)).unwrap();
            f.v.engine().check_pass(&p, 1, T0, 30).unwrap()
        })
    });
    g.finish();

    let tmp = tempfile::tempdir().unwrap();
    let mut j = Journal::open(&tmp.path().join("j.db")).unwrap();
    let rec = record(f, 1);
    let mut g = c.benchmark_group("journal");
    g.sample_size(30);
    g.bench_function("accepted_tap_sync_full", |b| {
        b.iter(|| j.record_accepted(Medium::Nfc, black_box(&rec)).unwrap())
    });
    let refusal = Refusal::Expired { valid_until: 0 };
    g.bench_function("refusal_sync_normal", |b| {
        b.iter(|| {
            j.record_refusal(Medium::Nfc, T0, black_box(&refusal))
                .unwrap()
        })
    });
    g.finish();
}

/// Interleaved raw verify vs cached decision, so both see the same machine state.
fn ratio(f: &mut Fixture) {
    let signed = f.auth.signed_bytes();
    let (hash, ch, auth) = (f.hash, f.challenge.clone(), f.auth.clone());
    let (mut raw, mut dec) = (Vec::new(), Vec::new());
    for _ in 0..2_000 {
        let t = Instant::now();
        f.tap_pub
            .verify(tags::TAP, black_box(&signed), &f.auth.signature)
            .unwrap();
        raw.push(t.elapsed().as_nanos());
        let t = Instant::now();
        f.v.engine()
            .decide_cached_nfc(black_box(&hash), 1, &ch, &auth)
            .unwrap();
        dec.push(t.elapsed().as_nanos());
    }
    let (r, d) = (median_ns(raw), median_ns(dec));
    println!(
        "RATIO decision_cached / raw_verify (interleaved medians): {:.1} µs / {:.1} µs = {:.3} (goal ≤ 1.3)",
        d as f64 / 1000.0,
        r as f64 / 1000.0,
        d as f64 / r.max(1) as f64
    );
    let _ = RideState::default();
}

/// A whole tap through pcscd + vpcd with the real wallet core as the card.
fn pcsc_whole_tap(issuer: &SigningKey) {
    if !pcscd_available() {
        println!("NOTICE: pcscd not running: whole-tap benchmark skipped (scripts/pcsc-up.sh)");
        return;
    }
    let now = chrono::Utc::now().timestamp();
    let tmp = tempfile::tempdir().unwrap();
    let ks = Arc::new(SoftwareKeystore::open_or_create(tmp.path().join("ks")).unwrap());
    let w = Arc::new(Wallet::open(tmp.path().join("w"), ks, WalletConfig::default()).unwrap());
    let req = w.prepare_credential_request().unwrap();
    let cert = CertificateBody {
        issuer_key_id: 1,
        pseudonym: Pseudonym::random().unwrap(),
        tap_public_key: PublicKey::from_bytes(&req.tap_public_key, "tap").unwrap(),
        valid_from: now - 3600,
        valid_until: now + 86_400,
        fare_class: FareClass::Adult,
        allowance: OfflineAllowance {
            counter_first: req.next_counter,
            counter_last: req.next_counter + 100_000,
            max_amount: 10_000_000,
        },
    }
    .sign(issuer)
    .unwrap();
    w.install_certificate(
        cert.encode(),
        vec![IssuerKeyInfo {
            key_id: 1,
            public_key: issuer.public_key().as_bytes().to_vec(),
            valid_from: 0,
            valid_until: i64::MAX / 2,
        }],
        now,
    )
    .unwrap();
    let anchor = TrustAnchor {
        key_id: Some(1),
        public_key: issuer.public_key(),
    };
    let mut v = Validator::init(&tmp.path().join("v"), &anchor, 9, 1).unwrap();
    v.install_config(&bundle(issuer, now)).unwrap();

    let reader = PcscReader::open("Virtual PCD 00 01").unwrap();
    reader
        .wait_for_removal(Some(Duration::from_secs(5)))
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let (w1, w2, s) = (w.clone(), w.clone(), stop.clone());
    let h = std::thread::spawn(move || {
        let mut card = FnCard {
            on_apdu: move |a: &[u8]| w1.process_apdu(a.to_vec()),
            on_deactivated: move || w2.deactivated(),
        };
        run_card("127.0.0.1:35964", &mut card, &s, None, |_| {}).unwrap();
    });
    assert!(reader.wait_for_card(Some(Duration::from_secs(10))).unwrap());
    let n = 300;
    let (mut whole, mut inner) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for i in 0..n + 10 {
        let t = Instant::now();
        let mut ch = reader.connect(Duration::from_secs(2)).unwrap();
        let o = v.tap_nfc(&mut ch);
        ch.finish();
        let e = t.elapsed();
        assert!(o.decision.is_accepted(), "{:?}", o.decision);
        if i >= 10 {
            whole.push(e.as_micros());
            inner.push(o.elapsed.as_micros());
        }
    }
    stop.store(true, Ordering::Relaxed);
    h.join().unwrap();
    let pct = |v: &mut Vec<u128>, p: f64| {
        v.sort_unstable();
        let i = ((v.len() as f64 - 1.0) * p).round() as usize;
        v.get(i).copied().unwrap_or(0) as f64 / 1000.0
    };
    println!(
        "WHOLE TAP via pcscd+vpcd (connect, SELECT, AUTHORIZE, journal FULL, reset; {n} taps, cached cert, real wallet): median {:.2} ms, p99 {:.2} ms, max {:.2} ms (goal ≤ 10 ms)",
        pct(&mut whole, 0.5),
        pct(&mut whole, 0.99),
        pct(&mut whole, 1.0)
    );
    println!(
        "  of which Validator::tap_nfc (APDUs + decision + journal): median {:.2} ms, p99 {:.2} ms",
        pct(&mut inner, 0.5),
        pct(&mut inner, 0.99)
    );
}

fn main() {
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .configure_from_args();
    let mut f = fixture();
    benches(&mut c, &mut f);
    ratio(&mut f);
    pcsc_whole_tap(&f.issuer);
    c.final_summary();
}
