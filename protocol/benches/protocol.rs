//! Encode, decode, sign and verify per message type, each beside a raw ring P-256 sign and
//! verify measured in the same run (DESIGN.md §8: the wallet's tap ≤ 2× a raw signature, the
//! validator's cached decision ≤ 1.3× a raw verify, a QR pass ≤ 3 ms including render).
//!
//! `cargo bench -p mancard-protocol -- --warm-up-time 1 --measurement-time 2`
//! Medians: target/criterion/protocol.<group>/<bench>/new/estimates.json.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use mancard_protocol::*;
use mancard_testkit::protocol::*;
use mancard_testkit::scenarios::peers::{RawSigner, RawVerifier};

/// The yardstick: the testkit's raw ring P-256 sign and verify peers (a tap-sized message).
fn raw_ring(c: &mut Criterion) {
    raw_peers(c, "protocol.raw");
}

/// The peers measured in the group `name`.
fn raw_peers(c: &mut Criterion, name: &str) {
    let signer = RawSigner::new().unwrap();
    let verifier = RawVerifier::new().unwrap();
    let mut g = c.benchmark_group(name);
    g.bench_function("ring_p256_sign", |b| b.iter(|| signer.run_once().unwrap()));
    g.bench_function("ring_p256_verify", |b| {
        b.iter(|| verifier.run_once().unwrap())
    });
    g.finish();
}

fn certificate(c: &mut Criterion) {
    let k = Keys::new();
    let issuer = k.issuer1.ring();
    let cert = std_cert(&k);
    let bytes = cert.encode();
    let keys = issuer_keys(&k);
    let mut g = c.benchmark_group("protocol.certificate");
    g.bench_function("encode", |b| b.iter(|| black_box(&cert).encode()));
    g.bench_function("decode", |b| {
        b.iter(|| CredentialCertificate::decode(black_box(&bytes)).unwrap())
    });
    g.bench_function("hash", |b| b.iter(|| black_box(&cert).hash()));
    g.bench_function("sign", |b| {
        b.iter(|| black_box(cert.body.clone()).sign(&issuer).unwrap())
    });
    g.bench_function("verify", |b| {
        b.iter(|| verify_certificate_signature(black_box(&cert), &keys).unwrap())
    });
    g.finish();
}

fn challenge(c: &mut Criterion) {
    let k = Keys::new();
    let ch = std_challenge();
    let bytes = ch.encode();
    let h = std_cert(&k).hash();
    let mut g = c.benchmark_group("protocol.challenge");
    g.bench_function("encode", |b| b.iter(|| black_box(&ch).encode()));
    g.bench_function("decode", |b| {
        b.iter(|| TapChallenge::decode(black_box(&bytes)).unwrap())
    });
    g.bench_function("digest", |b| b.iter(|| black_box(&ch).digest(&h)));
    g.finish();
}

fn authorization(c: &mut Criterion) {
    let k = Keys::new();
    let tap = k.tap.ring();
    let cert = std_cert(&k);
    let h = cert.hash();
    let ch = std_challenge();
    let auth = authorize(&k.tap, &ch, &h, 1000, 20_000);
    let bytes = auth.encode();
    let cfg = std_config(&k);
    let vc = VerifiedCertificate::new(cert.clone(), &cfg.body.issuer_keys).unwrap();
    let ch_bytes = ch.encode();
    let mut g = c.benchmark_group("protocol.authorization");
    g.bench_function("encode", |b| b.iter(|| black_box(&auth).encode()));
    g.bench_function("decode", |b| {
        b.iter(|| TapAuthorization::decode(black_box(&bytes)).unwrap())
    });
    g.bench_function("sign", |b| {
        b.iter(|| TapAuthorization::sign(&tap, black_box(&ch), &h, 1000, 20_000).unwrap())
    });
    g.bench_function("verify_cached_cert", |b| {
        b.iter(|| vc.verify_tap(black_box(&ch), black_box(&auth)).unwrap())
    });
    g.bench_function("verify_uncached", |b| {
        b.iter(|| verify_nfc_tap(&cfg, black_box(&cert), &ch, black_box(&auth)).unwrap())
    });
    // The wallet's whole answer to AUTHORIZE TAP (without storage): parse, sign, encode.
    let cmd = CommandApdu::authorize_tap(&ch).encode().unwrap();
    g.bench_function("wallet_answer_apdu", |b| {
        b.iter(|| {
            let c = CommandApdu::parse(black_box(&cmd)).unwrap();
            let ch = TapChallenge::decode(&c.data).unwrap();
            let a = TapAuthorization::sign(&tap, &ch, &h, 1000, ch.fare).unwrap();
            ResponseApdu::ok(a.encode()).encode()
        })
    });
    // The validator's decision with the certificate cached: decode the answer, verify.
    let resp = ResponseApdu::ok(bytes.clone()).encode();
    g.bench_function("validator_decision_cached", |b| {
        b.iter(|| {
            let r = ResponseApdu::parse(black_box(&resp)).unwrap();
            let a = TapAuthorization::decode(&r.data).unwrap();
            let ch = TapChallenge::decode(&ch_bytes).unwrap();
            vc.verify_tap(&ch, &a).unwrap()
        })
    });
    g.finish();
}

fn pass(c: &mut Criterion) {
    let k = Keys::new();
    let tap = k.tap.ring();
    let pass = std_pass(&k);
    let bytes = pass.encode();
    let text = pass.to_text();
    let cfg = std_config(&k);
    let vc =
        VerifiedCertificate::new(pass.body.certificate.clone(), &cfg.body.issuer_keys).unwrap();
    let mut g = c.benchmark_group("protocol.pass");
    g.bench_function("encode", |b| b.iter(|| black_box(&pass).encode()));
    g.bench_function("decode", |b| {
        b.iter(|| BoardingPass::decode(black_box(&bytes)).unwrap())
    });
    g.bench_function("to_text", |b| b.iter(|| black_box(&pass).to_text()));
    g.bench_function("from_text", |b| {
        b.iter(|| BoardingPass::from_text(black_box(&text)).unwrap())
    });
    g.bench_function("sign", |b| {
        b.iter(|| black_box(pass.body.clone()).sign(&tap).unwrap())
    });
    g.bench_function("verify_cached_cert", |b| {
        b.iter(|| vc.verify_pass(black_box(&pass), T0 + 10, 30).unwrap())
    });
    g.bench_function("verify_uncached", |b| {
        b.iter(|| verify_boarding_pass(&cfg, black_box(&pass), T0 + 10, 30).unwrap())
    });
    // The wallet's whole QR: sign, text form, QR matrix at ECC M (before pixels).
    g.bench_function("sign_text_qr", |b| {
        b.iter(|| {
            let p = black_box(pass.body.clone()).sign(&tap).unwrap();
            let t = p.to_text();
            qrcode::QrCode::with_error_correction_level(t.as_bytes(), qrcode::EcLevel::M).unwrap()
        })
    });
    g.finish();
}

fn config(c: &mut Criterion) {
    let k = Keys::new();
    let issuer = k.issuer1.ring();
    let cfg = std_config(&k);
    let bytes = cfg.encode();
    let keys = issuer_keys(&k);
    let mut g = c.benchmark_group("protocol.config");
    g.throughput(Throughput::Bytes(bytes.len() as u64));
    g.bench_function("encode", |b| b.iter(|| black_box(&cfg).encode()));
    g.bench_function("decode", |b| {
        b.iter(|| ValidatorConfig::decode(black_box(&bytes)).unwrap())
    });
    g.bench_function("sign", |b| {
        b.iter(|| black_box(cfg.body.clone()).sign(&issuer).unwrap())
    });
    g.bench_function("verify", |b| {
        b.iter(|| verify_config(black_box(&cfg), &keys, Some(41)).unwrap())
    });
    g.finish();
}

fn batch(c: &mut Criterion) {
    let k = Keys::new();
    let validator = k.validator.ring();
    let batch = batch_of(&k, 1000);
    let bytes = batch.encode();
    let mut g = c.benchmark_group("protocol.batch_1000");
    g.sample_size(20);
    g.throughput(Throughput::Elements(1000));
    g.bench_function("encode", |b| b.iter(|| black_box(&batch).encode()));
    g.bench_function("decode", |b| {
        b.iter(|| TapBatch::decode(black_box(&bytes)).unwrap())
    });
    g.bench_function("sign", |b| {
        b.iter_batched(
            || batch.body.clone(),
            |body| body.sign(&validator).unwrap(),
            BatchSize::LargeInput,
        )
    });
    g.bench_function("verify", |b| {
        b.iter(|| assert!(black_box(&batch).verify_signature(&k.validator.public)))
    });
    g.finish();
}

fn other(c: &mut Criterion) {
    let k = Keys::new();
    let rec = nfc_record(&k, 1000, "x", T0);
    let rec_bytes = rec.encode();
    let t = Tariff::urmia_default();
    let state = RideState::default();
    let mut g = c.benchmark_group("protocol.other");
    g.bench_function("record_decode", |b| {
        b.iter(|| TapRecord::decode(black_box(&rec_bytes)).unwrap())
    });
    g.bench_function("tariff_fare", |b| {
        b.iter(|| t.fare(FareClass::Adult, 2, black_box(T0), &state).unwrap())
    });
    g.bench_function("select_apdu_parse", |b| {
        let sel = CommandApdu::select_mancard().encode().unwrap();
        b.iter(|| CommandApdu::parse(black_box(&sel)).unwrap())
    });
    g.finish();
}

criterion_group!(
    benches,
    raw_ring,
    certificate,
    challenge,
    authorization,
    pass,
    config,
    batch,
    other,
    raw_ring_again
);
criterion_main!(benches);

/// The yardstick once more at the end of the run, to see drift on a shared machine.
fn raw_ring_again(c: &mut Criterion) {
    raw_peers(c, "protocol.raw_end");
}
