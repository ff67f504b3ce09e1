//! Encode, decode, sign and verify per message type, each beside a raw ring P-256 sign and
//! verify measured in the same run. The `protocol.tap` group is the tap's two sides without
//! storage or radio (issue 12's budgets: the phone's side, verify the challenge + sign, ≤ 2×
//! (raw verify + raw sign); the validator's decision ≤ 1.3× (raw verify + raw sign)); a QR pass
//! ≤ 3 ms including render.
//!
//! `cargo bench -p mancard-protocol --bench protocol -- --warm-up-time 1 --measurement-time 2`
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
    g.bench_function("id", |b| b.iter(|| black_box(&cert).id()));
    g.bench_function("sign", |b| {
        b.iter(|| black_box(cert.body.clone()).sign(&issuer).unwrap())
    });
    g.bench_function("verify", |b| {
        b.iter(|| verify_certificate_signature(black_box(&cert), &keys).unwrap())
    });
    g.finish();
}

fn validator_certificate(c: &mut Criterion) {
    let k = Keys::new();
    let vcert = std_validator_cert(&k);
    let bytes = vcert.encode();
    let keys = issuer_keys(&k);
    let mut g = c.benchmark_group("protocol.validator_certificate");
    g.bench_function("decode", |b| {
        b.iter(|| ValidatorCertificate::decode(black_box(&bytes)).unwrap())
    });
    g.bench_function("verify", |b| {
        b.iter(|| verify_validator_certificate(black_box(&vcert), &keys, |_| false, T0).unwrap())
    });
    g.finish();
}

fn challenge(c: &mut Criterion) {
    let k = Keys::new();
    let validator = k.validator.ring();
    let vcert = std_validator_cert(&k);
    let ch = std_challenge(&k);
    let bytes = ch.encode();
    let mut g = c.benchmark_group("protocol.challenge");
    g.bench_function("encode", |b| b.iter(|| black_box(&ch).encode()));
    g.bench_function("decode", |b| {
        b.iter(|| TapChallenge::decode(black_box(&bytes)).unwrap())
    });
    g.bench_function("digest", |b| b.iter(|| black_box(&ch.body).digest()));
    g.bench_function("sign", |b| {
        b.iter(|| black_box(ch.body.clone()).sign(&validator).unwrap())
    });
    g.bench_function("verify", |b| {
        b.iter(|| verify_challenge(black_box(&ch), &vcert).unwrap())
    });
    g.finish();
}

fn authorization(c: &mut Criterion) {
    let k = Keys::new();
    let tap = k.tap.ring();
    let cert = std_cert(&k);
    let id = cert.id();
    let prev = chain_start(&id);
    let ch = std_challenge(&k);
    let auth = std_authorization(&k);
    let bytes = auth.encode();
    let cfg = std_config(&k);
    let vc = VerifiedCertificate::new(cert.clone(), &cfg.body.issuer_keys).unwrap();
    let mut g = c.benchmark_group("protocol.authorization");
    g.bench_function("encode", |b| b.iter(|| black_box(&auth).encode()));
    g.bench_function("decode", |b| {
        b.iter(|| TapAuthorization::decode(black_box(&bytes)).unwrap())
    });
    g.bench_function("sign", |b| {
        b.iter(|| {
            TapAuthorization::sign(&tap, black_box(&ch.body), &id, 1000, 20_000, &prev).unwrap()
        })
    });
    g.bench_function("verify_cached_cert", |b| {
        b.iter(|| vc.verify_tap(black_box(&ch), black_box(&auth)).unwrap())
    });
    g.bench_function("verify_uncached", |b| {
        b.iter(|| verify_nfc_tap(&cfg, black_box(&cert), &ch, black_box(&auth)).unwrap())
    });
    g.finish();
}

/// The two sides of an NFC tap, without storage or radio: the budgets compare the
/// phone's side with 2× and the validator's decision with 1.3× (raw verify + raw sign).
fn tap(c: &mut Criterion) {
    let k = Keys::new();
    let tap = k.tap.ring();
    let validator = k.validator.ring();
    let cert = std_cert(&k);
    let id = cert.id();
    let prev = chain_start(&id);
    let vcert = std_validator_cert(&k);
    let keys = issuer_keys(&k);
    let ch = std_challenge(&k);
    let cfg = std_config(&k);
    let vc = VerifiedCertificate::new(cert.clone(), &cfg.body.issuer_keys).unwrap();
    let mut g = c.benchmark_group("protocol.tap");
    // The phone, reader certificate cached: parse AUTHORIZE TAP, verify the challenge, sign.
    let cached_cmd = CommandApdu::authorize_tap(&ch, None).encode().unwrap();
    g.bench_function("phone_side_cached_reader", |b| {
        b.iter(|| {
            let c = CommandApdu::parse(black_box(&cached_cmd)).unwrap();
            let cmd = AuthorizeCommand::parse(c.p1, &c.data).unwrap();
            verify_challenge(&cmd.challenge, &vcert).unwrap();
            let body = &cmd.challenge.body;
            let a = TapAuthorization::sign(&tap, body, &id, 1000, body.fare, &prev).unwrap();
            ResponseApdu::ok(AuthorizeResponse::Authorized(a).encode()).encode()
        })
    });
    // The phone at first sight of the reader: its certificate too (one more verify).
    let inline_cmd = CommandApdu::authorize_tap(&ch, Some(&vcert))
        .encode()
        .unwrap();
    g.bench_function("phone_side_first_sight", |b| {
        b.iter(|| {
            let c = CommandApdu::parse(black_box(&inline_cmd)).unwrap();
            let cmd = AuthorizeCommand::parse(c.p1, &c.data).unwrap();
            let reader = cmd.validator_cert.unwrap();
            verify_validator_certificate(&reader, &keys, |_| false, T0).unwrap();
            verify_challenge(&cmd.challenge, &reader).unwrap();
            let body = &cmd.challenge.body;
            let a = TapAuthorization::sign(&tap, body, &id, 1000, body.fare, &prev).unwrap();
            ResponseApdu::ok(AuthorizeResponse::Authorized(a).encode()).encode()
        })
    });
    // The validator, phone certificate cached: sign the challenge, then decide on the answer.
    let resp = ResponseApdu::ok(std_authorization(&k).encode()).encode();
    g.bench_function("validator_sign_and_decide", |b| {
        b.iter(|| {
            let signed = black_box(ch.body.clone()).sign(&validator).unwrap();
            let r = ResponseApdu::parse(black_box(&resp)).unwrap();
            let AuthorizeResponse::Authorized(a) = AuthorizeResponse::decode(&r.data).unwrap()
            else {
                panic!("an authorization")
            };
            vc.verify_tap(&ch, &a).unwrap();
            signed
        })
    });
    // The decision alone (the challenge was signed before the phone came near).
    g.bench_function("validator_decision_cached", |b| {
        b.iter(|| {
            let r = ResponseApdu::parse(black_box(&resp)).unwrap();
            let AuthorizeResponse::Authorized(a) = AuthorizeResponse::decode(&r.data).unwrap()
            else {
                panic!("an authorization")
            };
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
    let rules = cfg.body.time_rules;
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
        b.iter(|| vc.verify_pass(black_box(&pass), T0 + 10, &rules).unwrap())
    });
    g.bench_function("verify_uncached", |b| {
        b.iter(|| verify_boarding_pass(&cfg, black_box(&pass), T0 + 10).unwrap())
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
    let rec = chained_records(&k, 1).remove(0);
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
    validator_certificate,
    challenge,
    authorization,
    tap,
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
