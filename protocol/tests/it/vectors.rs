//! Test vectors: language-neutral JSON (hex) in `tests/vectors/`, made from fixed keys with
//! deterministic RFC 6979 signatures.
//!
//! * `vectors_are_up_to_date` regenerates every file and fails on any difference from the
//!   committed files. `MANCARD_BLESS=1 cargo test -p mancard-protocol --test it vectors::` rewrites them.
//! * `committed_vectors_hold` reads only the committed JSON and checks every stated outcome with
//!   the library's decoders and (ring) verifiers.
//!
//! Expected outcomes are written by hand below; they are never computed by running the code
//! under test.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use mancard_protocol::apdu::ApduError;
use mancard_protocol::crypto::tags;
use mancard_protocol::*;
use mancard_testkit::protocol::*;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::path::PathBuf;

// ───────────────────────────── JSON views of messages ─────────────────────────────

fn hx(b: &[u8]) -> String {
    hex::encode(b)
}

fn fare_kind_name(k: FareKind) -> &'static str {
    match k {
        FareKind::Full => "full",
        FareKind::Transfer => "transfer",
        FareKind::Capped => "capped",
    }
}

fn cert_json(c: &CredentialCertificate) -> Value {
    let b = &c.body;
    json!({
        "issuer_key_id": b.issuer_key_id,
        "pseudonym": hx(&b.pseudonym.0),
        "tap_public_key": hx(b.tap_public_key.as_bytes()),
        "valid_from": b.valid_from,
        "valid_until": b.valid_until,
        "fare_class": b.fare_class as u8,
        "fare_class_name": b.fare_class.name(),
        "counter_first": b.allowance.counter_first,
        "counter_last": b.allowance.counter_last,
        "max_amount": b.allowance.max_amount,
        "signature": hx(c.signature.as_bytes()),
    })
}

fn challenge_json(c: &TapChallenge) -> Value {
    json!({
        "validator_id": c.validator_id,
        "nonce": hx(&c.nonce),
        "validator_time": c.validator_time,
        "line_id": c.line_id,
        "fare": c.fare,
    })
}

fn auth_json(a: &TapAuthorization) -> Value {
    json!({
        "counter": a.counter,
        "amount": a.amount,
        "digest": hx(&a.digest),
        "signature": hx(a.signature.as_bytes()),
    })
}

fn pass_json(p: &BoardingPass) -> Value {
    json!({
        "certificate": cert_json(&p.body.certificate),
        "counter": p.body.counter,
        "issued_at": p.body.issued_at,
        "lifetime_secs": p.body.lifetime_secs,
        "max_amount": p.body.max_amount,
        "signature": hx(p.signature.as_bytes()),
    })
}

fn issuer_key_json(k: &IssuerKey) -> Value {
    json!({
        "key_id": k.key_id,
        "public_key": hx(k.public_key.as_bytes()),
        "valid_from": k.valid_from,
        "valid_until": k.valid_until,
    })
}

fn tariff_json(t: &Tariff) -> Value {
    json!({
        "utc_offset_secs": t.utc_offset_secs,
        "day_start_secs": t.day_start_secs,
        "transfer_window_secs": t.transfer_window_secs,
        "transfer_fares": t.transfer_fares,
        "daily_caps": t.daily_caps,
        "lines": t.lines.iter().map(|l| json!({"line_id": l.line_id, "fares": l.fares})).collect::<Vec<_>>(),
    })
}

fn config_json(c: &ValidatorConfig) -> Value {
    let b = &c.body;
    json!({
        "bundle_version": b.bundle_version,
        "issued_at": b.issued_at,
        "signer_key_id": b.signer_key_id,
        "issuer_keys": b.issuer_keys.iter().map(issuer_key_json).collect::<Vec<_>>(),
        "deny_list": b.deny_list.iter().map(|p| hx(&p.0)).collect::<Vec<_>>(),
        "tariff": tariff_json(&b.tariff),
        "signature": hx(c.signature.as_bytes()),
    })
}

fn proof_json(p: &TapProof) -> Value {
    match p {
        TapProof::Nfc {
            challenge,
            authorization,
            cert_hash,
        } => json!({
            "kind": "nfc",
            "challenge": challenge_json(challenge),
            "authorization": auth_json(authorization),
            "cert_hash": hx(cert_hash),
        }),
        TapProof::Qr { pass } => json!({"kind": "qr", "pass": pass_json(pass)}),
    }
}

fn record_json(r: &TapRecord) -> Value {
    json!({
        "validator_id": r.validator_id,
        "line_id": r.line_id,
        "time": r.time,
        "pseudonym": hx(&r.pseudonym.0),
        "counter": r.counter,
        "fare": r.fare,
        "fare_kind": r.fare_kind as u8,
        "fare_kind_name": fare_kind_name(r.fare_kind),
        "proof": proof_json(&r.proof),
    })
}

fn batch_json(b: &TapBatch) -> Value {
    json!({
        "validator_id": b.body.validator_id,
        "batch_id": hx(&b.body.batch_id),
        "created_at": b.body.created_at,
        "records": b.body.records.iter().map(record_json).collect::<Vec<_>>(),
        "signature": hx(b.signature.as_bytes()),
    })
}

fn log_json(e: &WalletLogEntry) -> Value {
    json!({
        "seq": e.seq,
        "prev_hash": hx(&e.prev_hash),
        "time": e.time,
        "amount": e.amount,
        "proof": proof_json(&e.proof),
    })
}

fn select_json(s: &SelectResponse) -> Value {
    json!({"cert_hash": s.cert_hash.map(|h| hx(&h))})
}

fn command_json(c: &CommandApdu) -> Value {
    json!({"cla": c.cla, "ins": c.ins, "p1": c.p1, "p2": c.p2, "data": hx(&c.data), "le": c.le})
}

fn response_json(r: &ResponseApdu) -> Value {
    json!({"data": hx(&r.data), "sw": format!("{:04X}", r.sw.code()), "sw_name": r.sw.describe()})
}

// ───────────────────────────── error names ─────────────────────────────

fn decode_err(e: &DecodeError) -> &'static str {
    match e {
        DecodeError::Truncated { .. } => "Truncated",
        DecodeError::TrailingBytes { .. } => "TrailingBytes",
        DecodeError::WrongType { .. } => "WrongType",
        DecodeError::UnknownVersion { .. } => "UnknownVersion",
        DecodeError::InvalidValue { .. } => "InvalidValue",
        DecodeError::InvalidPoint { .. } => "InvalidPoint",
        DecodeError::LengthOutOfRange { .. } => "LengthOutOfRange",
        DecodeError::InvalidText { .. } => "InvalidText",
    }
}

fn verify_err(e: &VerifyError) -> &'static str {
    match e {
        VerifyError::BadSignature => "BadSignature",
        VerifyError::UnknownIssuerKey(_) => "UnknownIssuerKey",
        VerifyError::IssuerKeyNotValid(_) => "IssuerKeyNotValid",
        VerifyError::Expired { .. } => "Expired",
        VerifyError::NotYetValid { .. } => "NotYetValid",
        VerifyError::CounterOutOfRange { .. } => "CounterOutOfRange",
        VerifyError::AmountOverAllowance { .. } => "AmountOverAllowance",
        VerifyError::ChallengeMismatch => "ChallengeMismatch",
        VerifyError::DenyListed(_) => "DenyListed",
        VerifyError::PassOutsideWindow { .. } => "PassOutsideWindow",
        VerifyError::StaleBundle { .. } => "StaleBundle",
    }
}

fn apdu_err(e: &ApduError) -> &'static str {
    match e {
        ApduError::TooShort => "TooShort",
        ApduError::ExtendedLength => "ExtendedLength",
        ApduError::LengthMismatch { .. } => "LengthMismatch",
        ApduError::DataTooLong => "DataTooLong",
        ApduError::LeOutOfRange => "LeOutOfRange",
        ApduError::ResponseTooShort => "ResponseTooShort",
    }
}

fn chain_err(e: &ChainError) -> &'static str {
    match e {
        ChainError::SequenceGap { .. } => "SequenceGap",
        ChainError::BrokenLink { .. } => "BrokenLink",
        ChainError::CounterNotIncreasing { .. } => "CounterNotIncreasing",
    }
}

// ───────────────────────────── generator ─────────────────────────────

/// One vector under construction.
struct Vector(Map<String, Value>);

impl Vector {
    fn new(name: &str, ty: &str, description: &str) -> Self {
        let mut m = Map::new();
        m.insert("name".into(), json!(name));
        m.insert("type".into(), json!(ty));
        m.insert("description".into(), json!(description));
        Self(m)
    }
    fn set(mut self, k: &str, v: Value) -> Self {
        self.0.insert(k.into(), v);
        self
    }
    fn hex(self, b: &[u8]) -> Self {
        self.set("hex", json!(hx(b)))
    }
    /// Decodes successfully to `fields`.
    fn ok(self, fields: Value) -> Self {
        self.set("decode", json!("ok")).set("fields", fields)
    }
    /// Decoding fails with the named error.
    fn fails(self, err: &str) -> Self {
        self.set("decode", json!(err))
    }
    fn verify(self, ctx: Value, expect: &str) -> Self {
        let mut ctx = ctx;
        if let Some(m) = ctx.as_object_mut() {
            m.insert("expect".into(), json!(expect));
        }
        self.set("verify", ctx)
    }
}

struct File {
    description: &'static str,
    vectors: Vec<Vector>,
}

impl File {
    fn new(description: &'static str) -> Self {
        Self {
            description,
            vectors: Vec::new(),
        }
    }
    fn push(&mut self, v: Vector) {
        self.vectors.push(v);
    }
    fn into_json(self) -> Value {
        json!({
            "description": self.description,
            "vectors": self.vectors.into_iter().map(|v| Value::Object(v.0)).collect::<Vec<_>>(),
        })
    }
}

fn patched(b: &[u8], offset: usize, new: &[u8]) -> Vec<u8> {
    let mut v = b.to_vec();
    v[offset..offset + new.len()].copy_from_slice(new);
    v
}

fn with_trailing(b: &[u8]) -> Vec<u8> {
    let mut v = b.to_vec();
    v.push(0);
    v
}

/// The framing errors every top-level message must reject: empty, truncated (by one byte and
/// to the header), trailing byte, unknown version, wrong type tag.
fn framing(f: &mut File, ty: &str, valid: &[u8]) {
    f.push(
        Vector::new("empty", ty, "zero bytes")
            .hex(&[])
            .fails("Truncated"),
    );
    f.push(
        Vector::new("header-only", ty, "only the type tag and version")
            .hex(&valid[..2])
            .fails("Truncated"),
    );
    f.push(
        Vector::new("truncated", ty, "the valid message without its last byte")
            .hex(&valid[..valid.len() - 1])
            .fails("Truncated"),
    );
    f.push(
        Vector::new(
            "trailing-byte",
            ty,
            "the valid message followed by one 00 byte",
        )
        .hex(&with_trailing(valid))
        .fails("TrailingBytes"),
    );
    f.push(
        Vector::new("unknown-version", ty, "version byte 2")
            .hex(&patched(valid, 1, &[2]))
            .fails("UnknownVersion"),
    );
    f.push(
        Vector::new("wrong-type", ty, "type tag 'X'")
            .hex(&patched(valid, 0, b"X"))
            .fails("WrongType"),
    );
}

/// A copy of a valid uncompressed point with one bit of Y flipped: not on the curve.
fn off_curve(p: &PublicKey) -> Vec<u8> {
    let mut b = p.as_bytes().to_vec();
    b[64] ^= 1;
    assert!(PublicKey::from_bytes(&b, "x").is_err());
    b
}

fn config_ctx(config: &ValidatorConfig, now: i64) -> Value {
    json!({"config": hx(&config.encode()), "now": now})
}

fn keys_file(k: &Keys) -> Value {
    let role = |name: &str| match name {
        "issuer-1" => "issuer key id 1 (signs certificates and the config bundle)",
        "issuer-2" => "issuer key id 2 (rotation; valid from T0 - 2 days)",
        "issuer-3" => "issuer key id 3 (in no config: unknown issuer)",
        "rogue-issuer" => "attacker key that claims issuer key id 1",
        "tap" => "the wallet's tap key (in the certificates)",
        "tap-other" => "another wallet's tap key",
        "validator-7001" => "validator 7001's batch-signing key",
        _ => "",
    };
    json!({
        "description": "Fixed P-256 keys of the vectors. TEST ONLY: the private keys are public. \
            private_scalar = SHA-256(\"ManCard test vector key: \" || name); pkcs8 is the same key \
            as a PKCS#8 v1 document that ring loads. Signatures are ECDSA P-256 / SHA-256, \
            deterministic per RFC 6979, fixed 64-byte r || s, over TAG || body.",
        "t0": T0,
        "keys": k.all().iter().map(|key| json!({
            "name": key.name,
            "role": role(key.name),
            "private_scalar": hx(&key.scalar),
            "pkcs8": hx(&key.pkcs8()),
            "public_key": hx(key.public.as_bytes()),
        })).collect::<Vec<_>>(),
        "domain_tags": {
            "certificate": hx(tags::CERTIFICATE),
            "tap_digest": hx(tags::TAP_DIGEST),
            "tap": hx(tags::TAP),
            "pass": hx(tags::PASS),
            "config": hx(tags::CONFIG),
            "batch": hx(tags::BATCH),
            "log": hx(tags::LOG),
            "cert_hash": hx(tags::CERT_HASH),
        },
    })
}

fn certificate_file(k: &Keys) -> File {
    let mut f = File::new(
        "Credential certificates (type 'C'). decode: expected outcome of CredentialCertificate::decode; \
         hash: SHA-256(CERT-HASH tag || encoding). verify: issuer key lookup in the config, issuer \
         key window, issuer signature, deny list, then validity at `now`.",
    );
    let cfg = std_config(k);
    let cert = std_cert(k);
    let b = cert.encode();
    f.push(
        Vector::new(
            "valid",
            "certificate",
            "issuer 1, adult, counters 1000..=1099, 500000 rials",
        )
        .hex(&b)
        .ok(cert_json(&cert))
        .set("hash", json!(hx(&cert.hash())))
        .verify(config_ctx(&cfg, T0), "ok"),
    );
    let mut sb = cert_body(2, "rider-student", &k.tap);
    sb.fare_class = FareClass::Student;
    sb.valid_from = T0 - 3600;
    let student = sign_cert(sb, &k.issuer2);
    f.push(
        Vector::new(
            "valid-student-issuer-2",
            "certificate",
            "student certificate signed by issuer key 2",
        )
        .hex(&student.encode())
        .ok(cert_json(&student))
        .set("hash", json!(hx(&student.hash())))
        .verify(config_ctx(&cfg, T0), "ok"),
    );
    f.push(
        Vector::new(
            "expired",
            "certificate",
            "the valid certificate checked one second after valid_until",
        )
        .hex(&b)
        .ok(cert_json(&cert))
        .verify(config_ctx(&cfg, cert.body.valid_until + 1), "Expired"),
    );
    f.push(
        Vector::new(
            "last-valid-second",
            "certificate",
            "checked at exactly valid_until (inclusive)",
        )
        .hex(&b)
        .ok(cert_json(&cert))
        .verify(config_ctx(&cfg, cert.body.valid_until), "ok"),
    );
    f.push(
        Vector::new(
            "not-yet-valid",
            "certificate",
            "checked one second before valid_from",
        )
        .hex(&b)
        .ok(cert_json(&cert))
        .verify(config_ctx(&cfg, cert.body.valid_from - 1), "NotYetValid"),
    );
    let mut tampered = cert.clone();
    tampered.body.allowance.max_amount = 5_000_000;
    f.push(
        Vector::new(
            "bad-signature-tampered-allowance",
            "certificate",
            "max_amount raised after signing",
        )
        .hex(&tampered.encode())
        .ok(cert_json(&tampered))
        .verify(config_ctx(&cfg, T0), "BadSignature"),
    );
    let forged = sign_cert(cert_body(1, "rider-1", &k.tap), &k.rogue);
    f.push(
        Vector::new(
            "bad-signature-rogue-key",
            "certificate",
            "signed by a key that is not issuer key 1 but claims id 1",
        )
        .hex(&forged.encode())
        .ok(cert_json(&forged))
        .verify(config_ctx(&cfg, T0), "BadSignature"),
    );
    let unknown = sign_cert(cert_body(3, "rider-1", &k.tap), &k.issuer3);
    f.push(
        Vector::new(
            "unknown-issuer-key",
            "certificate",
            "signed by issuer key 3, which the config does not list",
        )
        .hex(&unknown.encode())
        .ok(cert_json(&unknown))
        .verify(config_ctx(&cfg, T0), "UnknownIssuerKey"),
    );
    let early = sign_cert(cert_body(2, "rider-1", &k.tap), &k.issuer2);
    f.push(
        Vector::new(
            "issuer-key-not-valid",
            "certificate",
            "issuer key 2 signed a certificate starting before key 2's window (T0 - 2 days)",
        )
        .hex(&{
            let mut e = early.clone();
            e.body.valid_from = T0 - 3 * DAY;
            sign_cert(e.body, &k.issuer2).encode()
        })
        .ok({
            let mut e = early.clone();
            e.body.valid_from = T0 - 3 * DAY;
            cert_json(&sign_cert(e.body, &k.issuer2))
        })
        .verify(config_ctx(&cfg, T0), "IssuerKeyNotValid"),
    );
    let denied = sign_cert(cert_body(1, "stolen-phone", &k.tap), &k.issuer1);
    f.push(
        Vector::new(
            "deny-listed",
            "certificate",
            "validly signed, but its pseudonym is on the config's deny list",
        )
        .hex(&denied.encode())
        .ok(cert_json(&denied))
        .verify(config_ctx(&cfg, T0), "DenyListed"),
    );
    framing(&mut f, "certificate", &b);
    f.push(
        Vector::new(
            "invalid-point-off-curve",
            "certificate",
            "tap public key (offset 22) with one bit of Y flipped",
        )
        .hex(&patched(&b, 22, &off_curve(&k.tap.public)))
        .fails("InvalidPoint"),
    );
    f.push(
        Vector::new(
            "invalid-point-compressed",
            "certificate",
            "tap public key prefix 02 instead of 04",
        )
        .hex(&patched(&b, 22, &[2]))
        .fails("InvalidPoint"),
    );
    f.push(
        Vector::new(
            "invalid-point-zero",
            "certificate",
            "tap public key 04 || 64 zero bytes",
        )
        .hex(&patched(&b, 22, &[&[4u8][..], &[0u8; 64]].concat()))
        .fails("InvalidPoint"),
    );
    f.push(
        Vector::new(
            "empty-validity-window",
            "certificate",
            "valid_from (offset 87) == valid_until",
        )
        .hex(&patched(&b, 87, &cert.body.valid_until.to_be_bytes()))
        .fails("InvalidValue"),
    );
    f.push(
        Vector::new(
            "unknown-fare-class",
            "certificate",
            "fare class (offset 103) = 4",
        )
        .hex(&patched(&b, 103, &[4]))
        .fails("InvalidValue"),
    );
    f.push(
        Vector::new(
            "inverted-counter-range",
            "certificate",
            "counter_first (offset 104) = 2000 > counter_last",
        )
        .hex(&patched(&b, 104, &2000u32.to_be_bytes()))
        .fails("InvalidValue"),
    );
    f.push(
        Vector::new(
            "negative-allowance",
            "certificate",
            "max_amount (offset 112) = -1",
        )
        .hex(&patched(&b, 112, &(-1i64).to_be_bytes()))
        .fails("InvalidValue"),
    );
    f
}

fn challenge_file(k: &Keys) -> File {
    let mut f = File::new(
        "Tap challenges (type 'H'), validator -> phone. digest: SHA-256(TAP-DIGEST tag || challenge || cert_hash) \
         for the cert_hash given (the standard certificate's hash).",
    );
    let ch = std_challenge();
    let b = ch.encode();
    let cert_hash = std_cert(k).hash();
    f.push(
        Vector::new(
            "valid",
            "tap_challenge",
            "validator 7001, line 1, fare 20000 rials at T0",
        )
        .hex(&b)
        .ok(challenge_json(&ch))
        .set(
            "digest",
            json!({"cert_hash": hx(&cert_hash), "digest": hx(&ch.digest(&cert_hash))}),
        ),
    );
    let free = challenge("free", T0, 10, 0);
    f.push(
        Vector::new(
            "valid-zero-fare",
            "tap_challenge",
            "a free ride (fare 0) on line 10",
        )
        .hex(&free.encode())
        .ok(challenge_json(&free)),
    );
    framing(&mut f, "tap_challenge", &b);
    f.push(
        Vector::new(
            "negative-fare",
            "tap_challenge",
            "fare (offset 34) = -20000",
        )
        .hex(&patched(&b, 34, &(-20_000i64).to_be_bytes()))
        .fails("InvalidValue"),
    );
    f
}

fn authorization_file(k: &Keys) -> File {
    let mut f = File::new(
        "Tap authorizations (type 'A'), phone -> validator, signed by the tap key over TAP tag || \
         body. verify: verify_nfc_tap(config, certificate, challenge, authorization): issuer \
         signature, deny list, validity at the challenge's time, challenge binding (digest and \
         amount == fare), counter range, allowance, tap signature.",
    );
    let cfg = std_config(k);
    let cert = std_cert(k);
    let h = cert.hash();
    let ch = std_challenge();
    let ctx = |cert: &CredentialCertificate, ch: &TapChallenge| json!({"config": hx(&cfg.encode()), "certificate": hx(&cert.encode()), "challenge": hx(&ch.encode())});
    let auth = authorize(&k.tap, &ch, &h, 1000, 20_000);
    let b = auth.encode();
    f.push(
        Vector::new(
            "valid",
            "tap_authorization",
            "counter 1000, 20000 rials, answers the standard challenge",
        )
        .hex(&b)
        .ok(auth_json(&auth))
        .verify(ctx(&cert, &ch), "ok"),
    );
    let last = authorize(&k.tap, &ch, &h, COUNTER_LAST, 20_000);
    f.push(
        Vector::new(
            "valid-last-counter",
            "tap_authorization",
            "counter 1099, the last of the range",
        )
        .hex(&last.encode())
        .ok(auth_json(&last))
        .verify(ctx(&cert, &ch), "ok"),
    );
    let other = authorize(&k.tap_other, &ch, &h, 1000, 20_000);
    f.push(
        Vector::new(
            "bad-signature-other-key",
            "tap_authorization",
            "signed by a tap key that is not the certificate's",
        )
        .hex(&other.encode())
        .ok(auth_json(&other))
        .verify(ctx(&cert, &ch), "BadSignature"),
    );
    let mut tampered = auth.clone();
    tampered.counter = 1001;
    f.push(
        Vector::new(
            "bad-signature-tampered-counter",
            "tap_authorization",
            "counter changed to 1001 after signing",
        )
        .hex(&tampered.encode())
        .ok(auth_json(&tampered))
        .verify(ctx(&cert, &ch), "BadSignature"),
    );
    let replay_ch = challenge("tap-2", T0 + 30, 1, 20_000);
    f.push(
        Vector::new(
            "challenge-mismatch-replay",
            "tap_authorization",
            "the valid answer replayed to a new challenge (other nonce)",
        )
        .hex(&b)
        .ok(auth_json(&auth))
        .verify(ctx(&cert, &replay_ch), "ChallengeMismatch"),
    );
    let cheap = authorize(&k.tap, &ch, &h, 1000, 5_000);
    f.push(
        Vector::new(
            "challenge-mismatch-amount",
            "tap_authorization",
            "authorizes 5000 rials where the challenge asks 20000",
        )
        .hex(&cheap.encode())
        .ok(auth_json(&cheap))
        .verify(ctx(&cert, &ch), "ChallengeMismatch"),
    );
    let other_cert = sign_cert(cert_body(1, "rider-2", &k.tap), &k.issuer1);
    f.push(
        Vector::new(
            "challenge-mismatch-certificate",
            "tap_authorization",
            "bound to the standard certificate, presented with another one (same tap key)",
        )
        .hex(&b)
        .ok(auth_json(&auth))
        .verify(ctx(&other_cert, &ch), "ChallengeMismatch"),
    );
    let out = authorize(&k.tap, &ch, &h, 1100, 20_000);
    f.push(
        Vector::new(
            "counter-out-of-range",
            "tap_authorization",
            "counter 1100, one past the range, validly signed",
        )
        .hex(&out.encode())
        .ok(auth_json(&out))
        .verify(ctx(&cert, &ch), "CounterOutOfRange"),
    );
    let below = authorize(&k.tap, &ch, &h, 999, 20_000);
    f.push(
        Vector::new(
            "counter-below-range",
            "tap_authorization",
            "counter 999, one before the range, validly signed",
        )
        .hex(&below.encode())
        .ok(auth_json(&below))
        .verify(ctx(&cert, &ch), "CounterOutOfRange"),
    );
    let dear_ch = challenge("tap-dear", T0, 1, ALLOWANCE + 1);
    let dear = authorize(&k.tap, &dear_ch, &h, 1000, ALLOWANCE + 1);
    f.push(
        Vector::new(
            "amount-over-allowance",
            "tap_authorization",
            "challenge and answer for 500001 rials, allowance 500000",
        )
        .hex(&dear.encode())
        .ok(auth_json(&dear))
        .verify(ctx(&cert, &dear_ch), "AmountOverAllowance"),
    );
    let late_ch = challenge("tap-late", cert.body.valid_until + 1, 1, 20_000);
    let late = authorize(&k.tap, &late_ch, &h, 1000, 20_000);
    f.push(
        Vector::new(
            "expired",
            "tap_authorization",
            "the validator's time is one second after valid_until",
        )
        .hex(&late.encode())
        .ok(auth_json(&late))
        .verify(ctx(&cert, &late_ch), "Expired"),
    );
    let early_ch = challenge("tap-early", cert.body.valid_from - 1, 1, 20_000);
    let early = authorize(&k.tap, &early_ch, &h, 1000, 20_000);
    f.push(
        Vector::new(
            "not-yet-valid",
            "tap_authorization",
            "the validator's time is one second before valid_from",
        )
        .hex(&early.encode())
        .ok(auth_json(&early))
        .verify(ctx(&cert, &early_ch), "NotYetValid"),
    );
    let denied = sign_cert(cert_body(1, "stolen-phone", &k.tap), &k.issuer1);
    let dauth = authorize(&k.tap, &ch, &denied.hash(), 1000, 20_000);
    f.push(
        Vector::new(
            "deny-listed",
            "tap_authorization",
            "valid tap with a deny-listed certificate",
        )
        .hex(&dauth.encode())
        .ok(auth_json(&dauth))
        .verify(ctx(&denied, &ch), "DenyListed"),
    );
    let unknown = sign_cert(cert_body(3, "rider-1", &k.tap), &k.issuer3);
    let uauth = authorize(&k.tap, &ch, &unknown.hash(), 1000, 20_000);
    f.push(
        Vector::new(
            "unknown-issuer-key",
            "tap_authorization",
            "valid tap with a certificate of unknown issuer key 3",
        )
        .hex(&uauth.encode())
        .ok(auth_json(&uauth))
        .verify(ctx(&unknown, &ch), "UnknownIssuerKey"),
    );
    let forged = sign_cert(cert_body(1, "rider-1", &k.tap_other), &k.rogue);
    let fauth = authorize(&k.tap_other, &ch, &forged.hash(), 1000, 20_000);
    f.push(
        Vector::new(
            "forged-certificate",
            "tap_authorization",
            "a self-made certificate (rogue key claiming issuer 1) and a matching tap",
        )
        .hex(&fauth.encode())
        .ok(auth_json(&fauth))
        .verify(ctx(&forged, &ch), "BadSignature"),
    );
    framing(&mut f, "tap_authorization", &b);
    f.push(
        Vector::new(
            "negative-amount",
            "tap_authorization",
            "amount (offset 6) = -1",
        )
        .hex(&patched(&b, 6, &(-1i64).to_be_bytes()))
        .fails("InvalidValue"),
    );
    f
}

fn pass_file(k: &Keys) -> File {
    let mut f = File::new(
        "QR boarding passes (type 'P'): binary (type boarding_pass, hex) and text form \
         (type boarding_pass_text: 'MC1:' + Base45). verify: verify_boarding_pass(config, pass, now, \
         skew): issuer signature, deny list, certificate validity at now, window \
         [issued_at - skew, issued_at + lifetime + skew], counter range, max_amount <= allowance, \
         tap signature.",
    );
    let cfg = std_config(k);
    let ctx =
        |now: i64| json!({"config": hx(&cfg.encode()), "now": now, "skew": DEFAULT_PASS_SKEW_SECS});
    let pass = std_pass(k);
    let b = pass.encode();
    let text = pass.to_text();
    f.push(
        Vector::new(
            "valid",
            "boarding_pass",
            "counter 1001, issued at T0 for 60 s, at most 30000 rials; checked at T0 + 10",
        )
        .hex(&b)
        .ok(pass_json(&pass))
        .set("text", json!(text))
        .verify(ctx(T0 + 10), "ok"),
    );
    f.push(
        Vector::new(
            "valid-text",
            "boarding_pass_text",
            "the valid pass in its QR text form",
        )
        .set("text", json!(text))
        .ok(pass_json(&pass))
        .verify(ctx(T0 + 10), "ok"),
    );
    f.push(
        Vector::new(
            "valid-text-crlf",
            "boarding_pass_text",
            "as delivered by a serial scanner: trailing CR LF (ignored)",
        )
        .set("text", json!(format!("{text}\r\n")))
        .ok(pass_json(&pass)),
    );
    f.push(
        Vector::new(
            "window-start-edge",
            "boarding_pass",
            "checked at issued_at - skew (inclusive)",
        )
        .hex(&b)
        .ok(pass_json(&pass))
        .verify(ctx(T0 - DEFAULT_PASS_SKEW_SECS), "ok"),
    );
    f.push(
        Vector::new(
            "window-end-edge",
            "boarding_pass",
            "checked at issued_at + lifetime + skew (inclusive)",
        )
        .hex(&b)
        .ok(pass_json(&pass))
        .verify(ctx(T0 + 60 + DEFAULT_PASS_SKEW_SECS), "ok"),
    );
    f.push(
        Vector::new(
            "outside-window-late",
            "boarding_pass",
            "checked one second after issued_at + lifetime + skew",
        )
        .hex(&b)
        .ok(pass_json(&pass))
        .verify(
            ctx(T0 + 60 + DEFAULT_PASS_SKEW_SECS + 1),
            "PassOutsideWindow",
        ),
    );
    f.push(
        Vector::new(
            "outside-window-early",
            "boarding_pass",
            "checked one second before issued_at - skew (phone clock ahead)",
        )
        .hex(&b)
        .ok(pass_json(&pass))
        .verify(ctx(T0 - DEFAULT_PASS_SKEW_SECS - 1), "PassOutsideWindow"),
    );
    f.push(
        Vector::new(
            "outside-window-day-old",
            "boarding_pass",
            "a screenshot replayed a day later",
        )
        .hex(&b)
        .ok(pass_json(&pass))
        .verify(ctx(T0 + DAY), "PassOutsideWindow"),
    );
    let other = make_pass(&k.tap_other, std_cert(k), 1001, T0, 60, 30_000);
    f.push(
        Vector::new(
            "bad-signature-other-key",
            "boarding_pass",
            "signed by a tap key that is not the certificate's",
        )
        .hex(&other.encode())
        .ok(pass_json(&other))
        .verify(ctx(T0 + 10), "BadSignature"),
    );
    let mut tampered = pass.clone();
    tampered.body.issued_at = T0 + DAY;
    f.push(
        Vector::new(
            "bad-signature-tampered-time",
            "boarding_pass",
            "issued_at moved a day later after signing (to revive an old pass)",
        )
        .hex(&tampered.encode())
        .ok(pass_json(&tampered))
        .verify(ctx(T0 + DAY + 10), "BadSignature"),
    );
    let oor = make_pass(&k.tap, std_cert(k), 1100, T0, 60, 30_000);
    f.push(
        Vector::new(
            "counter-out-of-range",
            "boarding_pass",
            "counter 1100, validly signed",
        )
        .hex(&oor.encode())
        .ok(pass_json(&oor))
        .verify(ctx(T0 + 10), "CounterOutOfRange"),
    );
    let dear = make_pass(&k.tap, std_cert(k), 1001, T0, 60, ALLOWANCE + 1);
    f.push(
        Vector::new(
            "amount-over-allowance",
            "boarding_pass",
            "max_amount 500001 > allowance 500000, validly signed",
        )
        .hex(&dear.encode())
        .ok(pass_json(&dear))
        .verify(ctx(T0 + 10), "AmountOverAllowance"),
    );
    let exp_cert = std_cert(k);
    let t_exp = exp_cert.body.valid_until + 10;
    let expired = make_pass(&k.tap, exp_cert, 1001, t_exp, 60, 30_000);
    f.push(
        Vector::new(
            "certificate-expired",
            "boarding_pass",
            "pass in its window but its certificate expired 10 s before issue",
        )
        .hex(&expired.encode())
        .ok(pass_json(&expired))
        .verify(ctx(t_exp + 5), "Expired"),
    );
    let denied_cert = sign_cert(cert_body(1, "cloned-card", &k.tap), &k.issuer1);
    let denied = make_pass(&k.tap, denied_cert, 1001, T0, 60, 30_000);
    f.push(
        Vector::new(
            "deny-listed",
            "boarding_pass",
            "a deny-listed card's valid pass",
        )
        .hex(&denied.encode())
        .ok(pass_json(&denied))
        .verify(ctx(T0 + 10), "DenyListed"),
    );
    let unknown_cert = sign_cert(cert_body(3, "rider-1", &k.tap), &k.issuer3);
    let unknown = make_pass(&k.tap, unknown_cert, 1001, T0, 60, 30_000);
    f.push(
        Vector::new(
            "unknown-issuer-key",
            "boarding_pass",
            "certificate of unknown issuer key 3",
        )
        .hex(&unknown.encode())
        .ok(pass_json(&unknown))
        .verify(ctx(T0 + 10), "UnknownIssuerKey"),
    );
    framing(&mut f, "boarding_pass", &b);
    f.push(
        Vector::new(
            "zero-lifetime",
            "boarding_pass",
            "lifetime_secs (offset 198) = 0",
        )
        .hex(&patched(&b, 198, &[0, 0]))
        .fails("InvalidValue"),
    );
    f.push(
        Vector::new(
            "negative-max-amount",
            "boarding_pass",
            "max_amount (offset 200) = -1",
        )
        .hex(&patched(&b, 200, &(-1i64).to_be_bytes()))
        .fails("InvalidValue"),
    );
    f.push(
        Vector::new(
            "embedded-certificate-invalid-point",
            "boarding_pass",
            "the embedded certificate's tap key (offset 24) off the curve",
        )
        .hex(&patched(&b, 24, &off_curve(&k.tap.public)))
        .fails("InvalidPoint"),
    );
    f.push(
        Vector::new(
            "embedded-certificate-unknown-version",
            "boarding_pass",
            "the embedded certificate's version (offset 3) = 2",
        )
        .hex(&patched(&b, 3, &[2]))
        .fails("UnknownVersion"),
    );
    let payload = &text[PASS_TEXT_PREFIX.len()..];
    let text_err = |name: &str, desc: &str, t: String, err: &str| {
        Vector::new(name, "boarding_pass_text", desc)
            .set("text", json!(t))
            .fails(err)
    };
    f.push(text_err(
        "text-missing-prefix",
        "Base45 payload without 'MC1:'",
        payload.to_string(),
        "InvalidText",
    ));
    f.push(text_err(
        "text-missing-colon",
        "'MC1' without ':' and payload",
        "MC1".to_string(),
        "InvalidText",
    ));
    f.push(text_err(
        "text-unknown-version",
        "prefix 'MC2:'",
        format!("MC2:{payload}"),
        "UnknownVersion",
    ));
    f.push(text_err(
        "text-lowercase",
        "payload in lower case (not Base45)",
        format!("MC1:{}", payload.to_lowercase()),
        "InvalidText",
    ));
    f.push(text_err(
        "text-dangling-character",
        "payload with one extra character",
        format!("{text}0"),
        "InvalidText",
    ));
    f.push(text_err(
        "text-base45-out-of-range",
        "payload ending in the triplet 'GGW' (> 65535)",
        format!("{}GGW", &text[..text.len() - 3]),
        "InvalidText",
    ));
    f.push(text_err(
        "text-truncated",
        "payload without its last three characters (two bytes)",
        text[..text.len() - 3].to_string(),
        "Truncated",
    ));
    f.push(text_err(
        "text-trailing",
        "payload with three more characters (two bytes 00 00)",
        format!("{text}000"),
        "TrailingBytes",
    ));
    f
}

fn config_file(k: &Keys) -> File {
    let mut f = File::new(
        "Validator config bundles (type 'V') signed by an issuer key. verify: verify_config(config, \
         trusted_keys, installed_version).",
    );
    let cfg = std_config(k);
    let b = cfg.encode();
    let trusted = |keys: &[IssuerKey]| keys.iter().map(issuer_key_json).collect::<Vec<_>>();
    let keys = issuer_keys(k);
    f.push(
        Vector::new(
            "valid",
            "validator_config",
            "version 42, issuer keys 1 and 2, two denied cards, the Urmia tariff; first install",
        )
        .hex(&b)
        .ok(config_json(&cfg))
        .verify(
            json!({"trusted_keys": trusted(&keys), "installed_version": null}),
            "ok",
        ),
    );
    f.push(
        Vector::new(
            "valid-upgrade",
            "validator_config",
            "installed version 41 < 42",
        )
        .hex(&b)
        .ok(config_json(&cfg))
        .verify(
            json!({"trusted_keys": trusted(&keys), "installed_version": 41}),
            "ok",
        ),
    );
    f.push(
        Vector::new(
            "stale-bundle",
            "validator_config",
            "installed version 42: a replayed bundle is refused",
        )
        .hex(&b)
        .ok(config_json(&cfg))
        .verify(
            json!({"trusted_keys": trusted(&keys), "installed_version": 42}),
            "StaleBundle",
        ),
    );
    f.push(
        Vector::new(
            "unknown-signer",
            "validator_config",
            "the validator trusts only issuer key 2",
        )
        .hex(&b)
        .ok(config_json(&cfg))
        .verify(
            json!({"trusted_keys": trusted(&keys[1..]), "installed_version": null}),
            "UnknownIssuerKey",
        ),
    );
    let mut tampered = cfg.clone();
    tampered
        .body
        .deny_list
        .retain(|p| *p != pseudonym("stolen-phone"));
    f.push(
        Vector::new(
            "bad-signature-deny-list-edited",
            "validator_config",
            "a card removed from the deny list after signing",
        )
        .hex(&tampered.encode())
        .ok(config_json(&tampered))
        .verify(
            json!({"trusted_keys": trusted(&keys), "installed_version": null}),
            "BadSignature",
        ),
    );
    let mut body = std_config_body(k);
    body.deny_list.clear();
    body.issuer_keys.truncate(1);
    let minimal = make_config(body, &k.issuer1);
    f.push(
        Vector::new(
            "valid-empty-deny-list",
            "validator_config",
            "one issuer key, empty deny list",
        )
        .hex(&minimal.encode())
        .ok(config_json(&minimal))
        .verify(
            json!({"trusted_keys": trusted(&keys), "installed_version": null}),
            "ok",
        ),
    );
    framing(&mut f, "validator_config", &b);
    f.push(
        Vector::new(
            "too-many-issuer-keys",
            "validator_config",
            "issuer key count (offset 22) = 17 > 16",
        )
        .hex(&patched(&b, 22, &[17]))
        .fails("LengthOutOfRange"),
    );
    let mut unsorted = cfg.clone();
    unsorted.body.issuer_keys.reverse();
    f.push(
        Vector::new(
            "issuer-keys-unsorted",
            "validator_config",
            "issuer keys in order 2, 1",
        )
        .hex(&unsorted.encode())
        .fails("InvalidValue"),
    );
    let mut undenied = cfg.clone();
    undenied.body.deny_list.reverse();
    f.push(
        Vector::new(
            "deny-list-unsorted",
            "validator_config",
            "deny list not strictly increasing",
        )
        .hex(&undenied.encode())
        .fails("InvalidValue"),
    );
    let mut dup = cfg.clone();
    let first = dup.body.deny_list[0];
    dup.body.deny_list.insert(0, first);
    f.push(
        Vector::new(
            "deny-list-duplicate",
            "validator_config",
            "the same pseudonym twice",
        )
        .hex(&dup.encode())
        .fails("InvalidValue"),
    );
    let deny_count_at = 23 + 85 * cfg.body.issuer_keys.len();
    f.push(
        Vector::new(
            "deny-count-too-large",
            "validator_config",
            "deny list count = 0xFFFFFFFF (more than the bytes left)",
        )
        .hex(&patched(&b, deny_count_at, &[0xFF; 4]))
        .fails("LengthOutOfRange"),
    );
    f.push(
        Vector::new(
            "issuer-key-invalid-point",
            "validator_config",
            "issuer key 1's public key (offset 27) off the curve",
        )
        .hex(&patched(&b, 27, &off_curve(&k.issuer1.public)))
        .fails("InvalidPoint"),
    );
    f.push(
        Vector::new(
            "issuer-key-empty-window",
            "validator_config",
            "issuer key 1 valid_from (offset 92) == valid_until",
        )
        .hex(&patched(
            &b,
            92,
            &cfg.body.issuer_keys[0].valid_until.to_be_bytes(),
        ))
        .fails("InvalidValue"),
    );
    f.push(
        Vector::new(
            "embedded-tariff-unknown-version",
            "validator_config",
            "the embedded tariff's version byte = 2",
        )
        .hex(&patched(
            &b,
            deny_count_at + 4 + 16 * cfg.body.deny_list.len() + 1,
            &[2],
        ))
        .fails("UnknownVersion"),
    );
    f
}

fn tariff_file() -> File {
    let mut f = File::new(
        "Tariffs (type 'T') and the fare rule. Type tariff: decoding. Type tariff_fare: \
         Tariff::fare(class, line, time, state) on the given tariff; state.last_ride is [time, line] or null.",
    );
    let t = Tariff::urmia_default();
    let b = t.encode();
    f.push(
        Vector::new(
            "urmia",
            "tariff",
            "UTC+03:30, day starts 04:00, 45 min transfers, lines 1, 2, 10",
        )
        .hex(&b)
        .ok(tariff_json(&t)),
    );
    framing(&mut f, "tariff", &b);
    f.push(
        Vector::new(
            "utc-offset-out-of-range",
            "tariff",
            "UTC offset (offset 2) = +15 h",
        )
        .hex(&patched(&b, 2, &(15i32 * 3600).to_be_bytes()))
        .fails("InvalidValue"),
    );
    f.push(
        Vector::new(
            "day-start-out-of-range",
            "tariff",
            "day start (offset 6) = 86400",
        )
        .hex(&patched(&b, 6, &86_400u32.to_be_bytes()))
        .fails("InvalidValue"),
    );
    f.push(
        Vector::new(
            "negative-transfer-fare",
            "tariff",
            "adult transfer fare (offset 14) = -1",
        )
        .hex(&patched(&b, 14, &(-1i64).to_be_bytes()))
        .fails("InvalidValue"),
    );
    f.push(
        Vector::new("too-many-lines", "tariff", "line count (offset 78) = 4097")
            .hex(&patched(&b, 78, &4097u16.to_be_bytes()))
            .fails("LengthOutOfRange"),
    );
    f.push(
        Vector::new(
            "line-count-short",
            "tariff",
            "line count (offset 78) = 4 but three lines follow",
        )
        .hex(&patched(&b, 78, &4u16.to_be_bytes()))
        .fails("Truncated"),
    );
    let mut unsorted = t.clone();
    unsorted.lines.swap(0, 1);
    f.push(
        Vector::new("lines-unsorted", "tariff", "line ids 2, 1, 10")
            .hex(&unsorted.encode())
            .fails("InvalidValue"),
    );
    let mut neg = t.clone();
    neg.lines[2].fares[1] = -5;
    f.push(
        Vector::new("negative-line-fare", "tariff", "line 10 student fare = -5")
            .hex(&neg.encode())
            .fails("InvalidValue"),
    );
    // The fare rule.
    let day = t.fare_day(T0);
    let th = hx(&b);
    let fare =
        |name: &str, desc: &str, class: &str, line: u32, time: i64, state: Value, expect: Value| {
            Vector::new(name, "tariff_fare", desc)
                .set("tariff", json!(th))
                .set("class", json!(class))
                .set("line_id", json!(line))
                .set("time", json!(time))
                .set("state", state)
                .set("expect", expect)
        };
    let fresh = json!({"fare_day": 0, "spent_today": 0, "last_ride": null});
    let q = |amount: i64, kind: &str, base: i64, fd: i64, spent: i64, last: Value| {
        json!({"amount": amount, "kind": kind, "base": base,
               "next": {"fare_day": fd, "spent_today": spent, "last_ride": last}})
    };
    f.push(fare(
        "first-ride",
        "adult, line 1 at T0 (08:00 local), no previous ride",
        "adult",
        1,
        T0,
        fresh.clone(),
        q(20_000, "full", 20_000, day, 20_000, json!([T0, 1])),
    ));
    f.push(fare(
        "transfer",
        "adult, line 2, 10 min after a ride on line 1",
        "adult",
        2,
        T0 + 600,
        json!({"fare_day": day, "spent_today": 20_000, "last_ride": [T0, 1]}),
        q(5_000, "transfer", 20_000, day, 25_000, json!([T0 + 600, 2])),
    ));
    f.push(fare(
        "transfer-window-edge",
        "adult, line 2, exactly 45 min after line 1 (inclusive)",
        "adult",
        2,
        T0 + 2700,
        json!({"fare_day": day, "spent_today": 20_000, "last_ride": [T0, 1]}),
        q(
            5_000,
            "transfer",
            20_000,
            day,
            25_000,
            json!([T0 + 2700, 2]),
        ),
    ));
    f.push(fare(
        "after-transfer-window",
        "adult, line 2, 45 min 1 s after line 1",
        "adult",
        2,
        T0 + 2701,
        json!({"fare_day": day, "spent_today": 20_000, "last_ride": [T0, 1]}),
        q(20_000, "full", 20_000, day, 40_000, json!([T0 + 2701, 2])),
    ));
    f.push(fare(
        "same-line-no-transfer",
        "adult, line 1 again 10 min after line 1",
        "adult",
        1,
        T0 + 600,
        json!({"fare_day": day, "spent_today": 20_000, "last_ride": [T0, 1]}),
        q(20_000, "full", 20_000, day, 40_000, json!([T0 + 600, 1])),
    ));
    f.push(fare(
        "capped-partial",
        "adult metro (30000) with 45000 already spent today: pays the 15000 left to the cap",
        "adult",
        10,
        T0 + 7200,
        json!({"fare_day": day, "spent_today": 45_000, "last_ride": [T0, 1]}),
        q(
            15_000,
            "capped",
            30_000,
            day,
            60_000,
            json!([T0 + 7200, 10]),
        ),
    ));
    f.push(fare(
        "capped-free",
        "adult at the cap rides for 0",
        "adult",
        1,
        T0 + 9000,
        json!({"fare_day": day, "spent_today": 60_000, "last_ride": [T0 + 7200, 10]}),
        q(0, "capped", 20_000, day, 60_000, json!([T0 + 9000, 1])),
    ));
    f.push(fare(
        "new-fare-day-resets-cap",
        "adult at the cap yesterday pays full today",
        "adult",
        1,
        T0 + DAY,
        json!({"fare_day": day, "spent_today": 60_000, "last_ride": [T0 + 9000, 1]}),
        q(
            20_000,
            "full",
            20_000,
            day + 1,
            20_000,
            json!([T0 + DAY, 1]),
        ),
    ));
    // 03:59:59 local on the 29th = 00:29:59 UTC on the 29th: still the 28th's fare day.
    let late_night = T0 + 20 * 3600 - 1;
    f.push(fare(
        "late-night-belongs-to-evening",
        "03:59:59 local the next morning is still the previous fare day (day starts 04:00)",
        "adult",
        1,
        late_night,
        json!({"fare_day": day, "spent_today": 60_000, "last_ride": [T0 + 9000, 1]}),
        q(0, "capped", 20_000, day, 60_000, json!([late_night, 1])),
    ));
    f.push(fare(
        "day-start-edge",
        "04:00:00 local starts a new fare day",
        "adult",
        1,
        late_night + 1,
        json!({"fare_day": day, "spent_today": 60_000, "last_ride": [T0 + 9000, 1]}),
        q(
            20_000,
            "full",
            20_000,
            day + 1,
            20_000,
            json!([late_night + 1, 1]),
        ),
    ));
    f.push(fare(
        "student",
        "student, metro",
        "student",
        10,
        T0,
        fresh.clone(),
        q(15_000, "full", 15_000, day, 15_000, json!([T0, 10])),
    ));
    f.push(fare(
        "free-class",
        "free fare class, metro",
        "free",
        10,
        T0,
        fresh.clone(),
        q(0, "full", 0, day, 0, json!([T0, 10])),
    ));
    f.push(fare(
        "unknown-line",
        "line 99 is not in the tariff",
        "adult",
        99,
        T0,
        fresh,
        json!("UnknownLine"),
    ));
    f
}

fn record_file(k: &Keys) -> File {
    let mut f = File::new(
        "Tap records (type 'R'): what a validator journals and uploads, with the phone's proof \
         (kind 1 = NFC: challenge, authorization, certificate hash; kind 2 = QR: the whole pass).",
    );
    let nfc = nfc_record(k, 1000, "tap-1", T0);
    let b = nfc.encode();
    f.push(
        Vector::new(
            "nfc",
            "tap_record",
            "an NFC tap: counter 1000, 20000 rials full fare on line 1",
        )
        .hex(&b)
        .ok(record_json(&nfc)),
    );
    let qr = qr_record(k, 1001, T0 + 600);
    f.push(
        Vector::new(
            "qr",
            "tap_record",
            "a QR tap: counter 1001, 5000 rials transfer on line 2",
        )
        .hex(&qr.encode())
        .ok(record_json(&qr)),
    );
    framing(&mut f, "tap_record", &b);
    f.push(
        Vector::new(
            "counter-differs-from-proof",
            "tap_record",
            "record counter (offset 34) = 1001, proof says 1000",
        )
        .hex(&patched(&b, 34, &1001u32.to_be_bytes()))
        .fails("InvalidValue"),
    );
    f.push(
        Vector::new("negative-fare", "tap_record", "fare (offset 38) = -1")
            .hex(&patched(&b, 38, &(-1i64).to_be_bytes()))
            .fails("InvalidValue"),
    );
    f.push(
        Vector::new(
            "unknown-fare-kind",
            "tap_record",
            "fare kind (offset 46) = 3",
        )
        .hex(&patched(&b, 46, &[3]))
        .fails("InvalidValue"),
    );
    f.push(
        Vector::new(
            "unknown-proof-kind",
            "tap_record",
            "proof kind (offset 47) = 3",
        )
        .hex(&patched(&b, 47, &[3]))
        .fails("InvalidValue"),
    );
    f.push(
        Vector::new(
            "proof-challenge-wrong-type",
            "tap_record",
            "the NFC proof's challenge tag (offset 48) = 'X'",
        )
        .hex(&patched(&b, 48, b"X"))
        .fails("WrongType"),
    );
    f
}

fn batch_file(k: &Keys) -> File {
    let mut f = File::new(
        "Tap batches (type 'B') signed by the validator key. verify: TapBatch::verify_signature \
         with validator_public_key.",
    );
    let batch = batch_of(k, 2);
    let b = batch.encode();
    let vk = |key: &TestKey| json!({"validator_public_key": hx(key.public.as_bytes())});
    f.push(
        Vector::new(
            "valid",
            "tap_batch",
            "validator 7001: one NFC and one QR record",
        )
        .hex(&b)
        .ok(batch_json(&batch))
        .verify(vk(&k.validator), "ok"),
    );
    f.push(
        Vector::new(
            "wrong-validator-key",
            "tap_batch",
            "checked with another validator's key",
        )
        .hex(&b)
        .ok(batch_json(&batch))
        .verify(vk(&k.issuer1), "BadSignature"),
    );
    let mut tampered = batch.clone();
    tampered.body.records[0].fare = 2_000;
    f.push(
        Vector::new(
            "bad-signature-tampered-fare",
            "tap_batch",
            "the first record's fare lowered after signing",
        )
        .hex(&tampered.encode())
        .ok(batch_json(&tampered))
        .verify(vk(&k.validator), "BadSignature"),
    );
    let empty = make_batch(
        BatchBody {
            validator_id: VALIDATOR_ID,
            batch_id: nonce("empty-batch"),
            created_at: T0,
            records: vec![],
        },
        &k.validator,
    );
    f.push(
        Vector::new("valid-empty", "tap_batch", "no records")
            .hex(&empty.encode())
            .ok(batch_json(&empty))
            .verify(vk(&k.validator), "ok"),
    );
    framing(&mut f, "tap_batch", &b);
    f.push(
        Vector::new(
            "too-many-records",
            "tap_batch",
            "record count (offset 30) = 10001 > 10000",
        )
        .hex(&patched(&b, 30, &10_001u16.to_be_bytes()))
        .fails("LengthOutOfRange"),
    );
    let len0 = u16::from_be_bytes([b[32], b[33]]);
    f.push(
        Vector::new(
            "record-length-short",
            "tap_batch",
            "first record's length prefix (offset 32) one less than the record",
        )
        .hex(&patched(&b, 32, &(len0 - 1).to_be_bytes()))
        .fails("Truncated"),
    );
    f.push(
        Vector::new(
            "record-length-long",
            "tap_batch",
            "first record's length prefix (offset 32) one more than the record",
        )
        .hex(&patched(&b, 32, &(len0 + 1).to_be_bytes()))
        .fails("TrailingBytes"),
    );
    f
}

fn log_entries(k: &Keys) -> Vec<WalletLogEntry> {
    let r0 = nfc_record(k, 1000, "tap-1", T0);
    let r1 = qr_record(k, 1001, T0 + 600);
    let r2 = nfc_record(k, 1002, "tap-3", T0 + 3600);
    let mut out: Vec<WalletLogEntry> = Vec::new();
    for (i, (r, amount)) in [(r0, 20_000), (r1, 30_000), (r2, 20_000)]
        .into_iter()
        .enumerate()
    {
        let prev_hash = out.last().map_or(GENESIS_HASH, |e| e.hash());
        out.push(WalletLogEntry {
            seq: i as u64,
            prev_hash,
            time: r.time,
            amount,
            proof: r.proof,
        });
    }
    out
}

fn log_file(k: &Keys) -> File {
    let mut f = File::new(
        "Wallet log entries (type 'L') and chains. hash = SHA-256(LOG tag || encoding), the next \
         entry's prev_hash; the first prev_hash is 32 zero bytes. Type wallet_log_chain: \
         verify_chain(entries, prev_hash, next_seq, last_counter) -> final hash or an error.",
    );
    let es = log_entries(k);
    let hashes = [
        "entry 0: NFC tap, counter 1000, prev = genesis",
        "entry 1: QR pass, counter 1001",
        "entry 2: NFC tap, counter 1002",
    ];
    for (e, d) in es.iter().zip(hashes) {
        f.push(
            Vector::new(&format!("entry-{}", e.seq), "wallet_log_entry", d)
                .hex(&e.encode())
                .ok(log_json(e))
                .set("hash", json!(hx(&e.hash()))),
        );
    }
    let b = es[0].encode();
    framing(&mut f, "wallet_log_entry", &b);
    f.push(
        Vector::new(
            "negative-amount",
            "wallet_log_entry",
            "amount (offset 50) = -1",
        )
        .hex(&patched(&b, 50, &(-1i64).to_be_bytes()))
        .fails("InvalidValue"),
    );
    f.push(
        Vector::new(
            "unknown-proof-kind",
            "wallet_log_entry",
            "proof kind (offset 58) = 0",
        )
        .hex(&patched(&b, 58, &[0]))
        .fails("InvalidValue"),
    );
    let chain = |name: &str,
                 desc: &str,
                 entries: &[&WalletLogEntry],
                 prev: [u8; 32],
                 next_seq: u64,
                 last: Option<u32>,
                 expect: Value| {
        Vector::new(name, "wallet_log_chain", desc)
            .set(
                "entries",
                json!(entries.iter().map(|e| hx(&e.encode())).collect::<Vec<_>>()),
            )
            .set("prev_hash", json!(hx(&prev)))
            .set("next_seq", json!(next_seq))
            .set("last_counter", json!(last))
            .set("expect", expect)
    };
    let all: Vec<&WalletLogEntry> = es.iter().collect();
    f.push(chain(
        "chain-from-genesis",
        "entries 0..=2 from the genesis hash",
        &all,
        GENESIS_HASH,
        0,
        None,
        json!({"ok": hx(&es[2].hash())}),
    ));
    f.push(chain(
        "chain-resumed",
        "entries 1..=2 after a sync that ended at entry 0",
        &all[1..],
        es[0].hash(),
        1,
        Some(1000),
        json!({"ok": hx(&es[2].hash())}),
    ));
    f.push(chain(
        "chain-gap",
        "entry 1 missing",
        &[all[0], all[2]],
        GENESIS_HASH,
        0,
        None,
        json!("SequenceGap"),
    ));
    let mut forked = es[1].clone();
    forked.prev_hash[0] ^= 1;
    f.push(chain(
        "chain-broken-link",
        "entry 1's prev_hash does not match entry 0 (a restored or cloned log)",
        &[all[0], &forked],
        GENESIS_HASH,
        0,
        None,
        json!("BrokenLink"),
    ));
    f.push(chain(
        "chain-counter-reused",
        "entries 1..=2 after a sync whose last counter was 1001 (counter reuse)",
        &all[1..],
        es[0].hash(),
        1,
        Some(1001),
        json!("CounterNotIncreasing"),
    ));
    f
}

fn apdu_file(k: &Keys) -> File {
    let mut f = File::new(
        "ISO 7816-4 short APDUs and the SELECT response. command_apdu: CommandApdu::parse; \
         response_apdu: ResponseApdu::parse; select_response: SelectResponse::decode (type 'S'); \
         nfc_tap: whole command/response exchanges of a tap, to be checked against `config`.",
    );
    let cert = std_cert(k);
    let h = cert.hash();
    let ch = std_challenge();
    let auth = authorize(&k.tap, &ch, &h, 1000, 20_000);
    let sel = SelectResponse { cert_hash: Some(h) };
    let sel_b = sel.encode();
    f.push(
        Vector::new(
            "select-response",
            "select_response",
            "SELECT answer with the installed certificate's hash",
        )
        .hex(&sel_b)
        .ok(select_json(&sel)),
    );
    let none = SelectResponse { cert_hash: None };
    f.push(
        Vector::new(
            "select-response-no-credential",
            "select_response",
            "SELECT answer of a wallet without a credential",
        )
        .hex(&none.encode())
        .ok(select_json(&none)),
    );
    f.push(
        Vector::new(
            "select-response-bad-flag",
            "select_response",
            "certificate flag (offset 2) = 2",
        )
        .hex(&patched(&sel_b, 2, &[2]))
        .fails("InvalidValue"),
    );
    let sel_b_name = |n: &str| format!("select-response-{n}");
    f.push(
        Vector::new(
            &sel_b_name("truncated"),
            "select_response",
            "hash cut short by one byte",
        )
        .hex(&sel_b[..sel_b.len() - 1])
        .fails("Truncated"),
    );
    f.push(
        Vector::new(
            &sel_b_name("trailing-byte"),
            "select_response",
            "one byte after the hash",
        )
        .hex(&with_trailing(&sel_b))
        .fails("TrailingBytes"),
    );
    f.push(
        Vector::new(
            &sel_b_name("trailing-after-none"),
            "select_response",
            "a hash after flag 0",
        )
        .hex(&[&none.encode()[..], &h[..]].concat())
        .fails("TrailingBytes"),
    );
    f.push(
        Vector::new(
            &sel_b_name("unknown-version"),
            "select_response",
            "version 2",
        )
        .hex(&patched(&sel_b, 1, &[2]))
        .fails("UnknownVersion"),
    );
    let cmds = [
        (
            "select",
            "SELECT the ManCard AID F04D414E4341524401, Le 00",
            CommandApdu::select_mancard(),
        ),
        (
            "read-certificate",
            "READ CERTIFICATE, case 2, Le 00",
            CommandApdu::read_certificate(),
        ),
        (
            "authorize-tap",
            "AUTHORIZE TAP with the standard challenge, Le 00",
            CommandApdu::authorize_tap(&ch),
        ),
        (
            "case-1",
            "no data, no Le",
            CommandApdu {
                cla: 0x80,
                ins: 0x10,
                p1: 0,
                p2: 0,
                data: vec![],
                le: None,
            },
        ),
        (
            "case-3",
            "SELECT without Le",
            CommandApdu {
                le: None,
                ..CommandApdu::select_mancard()
            },
        ),
        (
            "case-4-le-16",
            "SELECT with Le 10",
            CommandApdu {
                le: Some(16),
                ..CommandApdu::select_mancard()
            },
        ),
    ];
    for (name, desc, c) in cmds {
        f.push(
            Vector::new(&format!("command-{name}"), "command_apdu", desc)
                .hex(&c.encode().unwrap())
                .ok(command_json(&c)),
        );
    }
    let sel_cmd = CommandApdu::select_mancard().encode().unwrap();
    let capdu_err = |name: &str, desc: &str, b: &[u8], err: &str| {
        Vector::new(&format!("command-{name}"), "command_apdu", desc)
            .hex(b)
            .fails(err)
    };
    f.push(capdu_err("empty", "zero bytes", &[], "TooShort"));
    f.push(capdu_err(
        "header-truncated",
        "three bytes",
        &sel_cmd[..3],
        "TooShort",
    ));
    f.push(capdu_err(
        "extended-length",
        "extended Lc 00 00 09",
        &[
            0x00, 0xA4, 0x04, 0x00, 0x00, 0x00, 0x09, 0xF0, 0x4D, 0x41, 0x4E, 0x43, 0x41, 0x52,
            0x44, 0x01,
        ],
        "ExtendedLength",
    ));
    f.push(capdu_err(
        "data-truncated",
        "Lc 09 but 8 data bytes",
        &sel_cmd[..sel_cmd.len() - 2],
        "LengthMismatch",
    ));
    f.push(capdu_err(
        "too-long",
        "Lc 09 with 9 data bytes, Le and one more byte",
        &with_trailing(&sel_cmd),
        "LengthMismatch",
    ));
    let resps = [
        (
            "select-ok",
            "SELECT response data + 9000",
            ResponseApdu::ok(sel_b.clone()),
        ),
        (
            "certificate-ok",
            "READ CERTIFICATE: the certificate + 9000",
            ResponseApdu::ok(cert.encode()),
        ),
        (
            "authorization-ok",
            "AUTHORIZE TAP: the authorization + 9000",
            ResponseApdu::ok(auth.encode()),
        ),
    ];
    for (name, desc, r) in resps {
        f.push(
            Vector::new(&format!("response-{name}"), "response_apdu", desc)
                .hex(&r.encode())
                .ok(response_json(&r)),
        );
    }
    let words = [
        (StatusWord::Ok, "9000"),
        (StatusWord::WrongLength, "6700"),
        (StatusWord::IncorrectData, "6A80"),
        (StatusWord::AppNotFound, "6A82"),
        (StatusWord::WrongP1P2, "6A86"),
        (StatusWord::WalletLocked, "6982"),
        (StatusWord::ConditionsNotSatisfied, "6985"),
        (StatusWord::NoCredential, "6A88"),
        (StatusWord::CredentialNotValid, "6984"),
        (StatusWord::CountersExhausted, "6A83"),
        (StatusWord::AllowanceExhausted, "6A84"),
        (StatusWord::StorageFailure, "6581"),
        (StatusWord::InsNotSupported, "6D00"),
        (StatusWord::ClaNotSupported, "6E00"),
        (StatusWord::Internal, "6F00"),
        (StatusWord::Other(0x6283), "6283"),
    ];
    for (sw, code) in words {
        let r = ResponseApdu::status(sw);
        f.push(
            Vector::new(&format!("status-{code}"), "response_apdu", sw.describe())
                .hex(&hex::decode(code).unwrap())
                .ok(response_json(&r)),
        );
    }
    f.push(
        Vector::new(
            "response-too-short",
            "response_apdu",
            "one byte: no status word",
        )
        .hex(&[0x90])
        .fails("ResponseTooShort"),
    );
    // Whole taps.
    let cfg = std_config(k);
    let ex = |c: CommandApdu, r: ResponseApdu| json!({"command": hx(&c.encode().unwrap()), "response": hx(&r.encode())});
    f.push(
        Vector::new(
            "tap-certificate-cached",
            "nfc_tap",
            "SELECT (returns the cached certificate's hash), AUTHORIZE TAP: 2 pairs",
        )
        .set("config", json!(hx(&cfg.encode())))
        .set("cached_certificate", json!(hx(&cert.encode())))
        .set(
            "exchanges",
            json!([
                ex(
                    CommandApdu::select_mancard(),
                    ResponseApdu::ok(sel_b.clone())
                ),
                ex(
                    CommandApdu::authorize_tap(&ch),
                    ResponseApdu::ok(auth.encode())
                ),
            ]),
        )
        .set("expect", json!("ok")),
    );
    f.push(
        Vector::new(
            "tap-certificate-not-cached",
            "nfc_tap",
            "SELECT, READ CERTIFICATE, AUTHORIZE TAP: 3 pairs",
        )
        .set("config", json!(hx(&cfg.encode())))
        .set("cached_certificate", Value::Null)
        .set(
            "exchanges",
            json!([
                ex(
                    CommandApdu::select_mancard(),
                    ResponseApdu::ok(sel_b.clone())
                ),
                ex(
                    CommandApdu::read_certificate(),
                    ResponseApdu::ok(cert.encode())
                ),
                ex(
                    CommandApdu::authorize_tap(&ch),
                    ResponseApdu::ok(auth.encode())
                ),
            ]),
        )
        .set("expect", json!("ok")),
    );
    let dear_ch = challenge("tap-dear", T0, 10, ALLOWANCE + 1);
    f.push(
        Vector::new(
            "tap-refused-allowance",
            "nfc_tap",
            "the wallet refuses a fare above its allowance with 6A84",
        )
        .set("config", json!(hx(&cfg.encode())))
        .set("cached_certificate", json!(hx(&cert.encode())))
        .set(
            "exchanges",
            json!([
                ex(CommandApdu::select_mancard(), ResponseApdu::ok(sel_b)),
                ex(
                    CommandApdu::authorize_tap(&dear_ch),
                    ResponseApdu::status(StatusWord::AllowanceExhausted)
                ),
            ]),
        )
        .set("expect", json!("6A84")),
    );
    f
}

/// Every vector file, by file name.
fn generate() -> BTreeMap<&'static str, Value> {
    let k = Keys::new();
    let mut out = BTreeMap::new();
    out.insert("keys.json", keys_file(&k));
    out.insert("certificate.json", certificate_file(&k).into_json());
    out.insert("tap_challenge.json", challenge_file(&k).into_json());
    out.insert("tap_authorization.json", authorization_file(&k).into_json());
    out.insert("boarding_pass.json", pass_file(&k).into_json());
    out.insert("validator_config.json", config_file(&k).into_json());
    out.insert("tariff.json", tariff_file().into_json());
    out.insert("tap_record.json", record_file(&k).into_json());
    out.insert("tap_batch.json", batch_file(&k).into_json());
    out.insert("wallet_log.json", log_file(&k).into_json());
    out.insert("apdu.json", apdu_file(&k).into_json());
    out
}

fn vectors_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/vectors")
}

fn render(v: &Value) -> String {
    let mut s = serde_json::to_string_pretty(v).unwrap();
    s.push('\n');
    s
}

#[test]
fn vectors_are_up_to_date() {
    let dir = vectors_dir();
    let bless = std::env::var("MANCARD_BLESS").is_ok_and(|v| v == "1");
    let generated = generate();
    let mut stale = Vec::new();
    for (name, value) in &generated {
        let path = dir.join(name);
        let text = render(value);
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        if committed != text {
            if bless {
                // Atomic replace: the checker tests may be reading the files concurrently.
                let tmp = path.with_extension("json.tmp");
                std::fs::write(&tmp, &text).unwrap();
                std::fs::rename(&tmp, &path).unwrap();
                eprintln!("blessed {}", path.display());
            } else {
                stale.push(name.to_string());
            }
        }
    }
    // No stray vector files that the generator no longer makes.
    for entry in std::fs::read_dir(&dir).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().to_string();
        if name.ends_with(".json") && !generated.contains_key(name.as_str()) {
            if bless {
                std::fs::remove_file(dir.join(&name)).unwrap();
            } else {
                stale.push(format!("{name} (not generated)"));
            }
        }
    }
    assert!(
        stale.is_empty(),
        "test vectors differ from the generator: {stale:?}\n\
         If the change is intended, rerun with MANCARD_BLESS=1 and review the diff."
    );
}

// ───────────────────────────── checker (reads only the committed JSON) ─────────────────────────────

fn load_committed() -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(vectors_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "json") {
            let name = path.file_name().unwrap().to_string_lossy().to_string();
            let v: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap())
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            out.insert(name, v);
        }
    }
    assert!(out.len() >= 11, "vector files missing: {:?}", out.keys());
    out
}

fn unhex(v: &Value) -> Vec<u8> {
    hex::decode(v.as_str().expect("hex string")).expect("valid hex")
}

fn arr32(v: &Value) -> [u8; 32] {
    unhex(v).try_into().expect("32 bytes")
}

fn num(v: &Value) -> i64 {
    v.as_i64().expect("integer")
}

fn cfg_of(v: &Value) -> ValidatorConfig {
    ValidatorConfig::decode(&unhex(v)).expect("context config decodes")
}

/// Decodes a vector's input by its type; on success returns the JSON view of the message and
/// checks that re-encoding gives back the input (canonical encoding).
fn decode_vector(v: &Value) -> Result<Value, String> {
    let ty = v["type"].as_str().unwrap();
    if ty == "boarding_pass_text" {
        let text = v["text"].as_str().unwrap();
        let p = BoardingPass::from_text(text).map_err(|e| decode_err(&e).to_string())?;
        assert_eq!(
            p.to_text(),
            text.trim_end_matches(['\r', '\n']),
            "canonical text"
        );
        return Ok(pass_json(&p));
    }
    let b = unhex(&v["hex"]);
    macro_rules! dec {
        ($t:ty, $view:expr) => {{
            let m = <$t>::decode(&b).map_err(|e| decode_err(&e).to_string())?;
            assert_eq!(m.encode(), b, "re-encoding is canonical");
            Ok($view(&m))
        }};
    }
    match ty {
        "certificate" => dec!(CredentialCertificate, cert_json),
        "tap_challenge" => dec!(TapChallenge, challenge_json),
        "tap_authorization" => dec!(TapAuthorization, auth_json),
        "boarding_pass" => dec!(BoardingPass, pass_json),
        "validator_config" => dec!(ValidatorConfig, config_json),
        "tariff" => dec!(Tariff, tariff_json),
        "tap_record" => dec!(TapRecord, record_json),
        "tap_batch" => dec!(TapBatch, batch_json),
        "wallet_log_entry" => dec!(WalletLogEntry, log_json),
        "select_response" => dec!(SelectResponse, select_json),
        "command_apdu" => {
            let c = CommandApdu::parse(&b).map_err(|e| apdu_err(&e).to_string())?;
            assert_eq!(c.encode().unwrap(), b, "re-encoding is canonical");
            Ok(command_json(&c))
        }
        "response_apdu" => {
            let r = ResponseApdu::parse(&b).map_err(|e| apdu_err(&e).to_string())?;
            assert_eq!(r.encode(), b, "re-encoding is canonical");
            Ok(response_json(&r))
        }
        other => panic!("unknown vector type {other}"),
    }
}

fn outcome<E>(r: Result<(), E>, name: impl Fn(&E) -> &'static str) -> String {
    match r {
        Ok(()) => "ok".to_string(),
        Err(e) => name(&e).to_string(),
    }
}

fn verify_vector(v: &Value, ctx: &Value) -> String {
    let ty = v["type"].as_str().unwrap();
    match ty {
        "certificate" => {
            let cert = CredentialCertificate::decode(&unhex(&v["hex"])).unwrap();
            let cfg = cfg_of(&ctx["config"]);
            let r = VerifiedCertificate::new(cert, &cfg.body.issuer_keys).and_then(|vc| {
                if cfg.is_denied(&vc.cert.body.pseudonym) {
                    return Err(VerifyError::DenyListed(vc.cert.body.pseudonym));
                }
                check_validity(&vc.cert, num(&ctx["now"]))
            });
            outcome(r, verify_err)
        }
        "tap_authorization" => {
            let auth = TapAuthorization::decode(&unhex(&v["hex"])).unwrap();
            let cert = CredentialCertificate::decode(&unhex(&ctx["certificate"])).unwrap();
            let ch = TapChallenge::decode(&unhex(&ctx["challenge"])).unwrap();
            let r = verify_nfc_tap(&cfg_of(&ctx["config"]), &cert, &ch, &auth).map(|_| ());
            outcome(r, verify_err)
        }
        "boarding_pass" | "boarding_pass_text" => {
            let pass = if ty == "boarding_pass" {
                BoardingPass::decode(&unhex(&v["hex"])).unwrap()
            } else {
                BoardingPass::from_text(v["text"].as_str().unwrap()).unwrap()
            };
            let r = verify_boarding_pass(
                &cfg_of(&ctx["config"]),
                &pass,
                num(&ctx["now"]),
                num(&ctx["skew"]),
            )
            .map(|_| ());
            outcome(r, verify_err)
        }
        "validator_config" => {
            let cfg = ValidatorConfig::decode(&unhex(&v["hex"])).unwrap();
            let trusted: Vec<IssuerKey> = ctx["trusted_keys"]
                .as_array()
                .unwrap()
                .iter()
                .map(|k| IssuerKey {
                    key_id: num(&k["key_id"]) as u32,
                    public_key: PublicKey::from_bytes(&unhex(&k["public_key"]), "k").unwrap(),
                    valid_from: num(&k["valid_from"]),
                    valid_until: num(&k["valid_until"]),
                })
                .collect();
            let installed = ctx["installed_version"].as_u64();
            outcome(verify_config(&cfg, &trusted, installed), verify_err)
        }
        "tap_batch" => {
            let batch = TapBatch::decode(&unhex(&v["hex"])).unwrap();
            let key = PublicKey::from_bytes(&unhex(&ctx["validator_public_key"]), "k").unwrap();
            if batch.verify_signature(&key) {
                "ok".into()
            } else {
                "BadSignature".into()
            }
        }
        other => panic!("no verification for {other}"),
    }
}

fn check_fare(v: &Value) -> Value {
    let t = Tariff::decode(&unhex(&v["tariff"])).unwrap();
    let class = FareClass::parse(v["class"].as_str().unwrap()).unwrap();
    let s = &v["state"];
    let state = RideState {
        fare_day: num(&s["fare_day"]),
        spent_today: num(&s["spent_today"]),
        last_ride: s["last_ride"]
            .as_array()
            .map(|a| (num(&a[0]), num(&a[1]) as u32)),
    };
    match t.fare(class, num(&v["line_id"]) as u32, num(&v["time"]), &state) {
        Ok(q) => json!({"amount": q.amount, "kind": fare_kind_name(q.kind), "base": q.base,
            "next": {"fare_day": q.next.fare_day, "spent_today": q.next.spent_today,
                     "last_ride": q.next.last_ride.map(|(t, l)| json!([t, l]))}}),
        Err(TariffError::UnknownLine(_)) => json!("UnknownLine"),
    }
}

fn check_chain(v: &Value) -> Value {
    let entries: Vec<WalletLogEntry> = v["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| WalletLogEntry::decode(&unhex(e)).unwrap())
        .collect();
    let last = v["last_counter"].as_u64().map(|c| c as u32);
    match verify_chain(
        &entries,
        arr32(&v["prev_hash"]),
        v["next_seq"].as_u64().unwrap(),
        last,
    ) {
        Ok(h) => json!({"ok": hx(&h)}),
        Err(e) => json!(chain_err(&e)),
    }
}

/// Plays a recorded NFC exchange as a validator would; returns "ok" or the refusing status word.
fn check_nfc_tap(v: &Value) -> String {
    let cfg = cfg_of(&v["config"]);
    let cached = v["cached_certificate"]
        .as_str()
        .map(|h| CredentialCertificate::decode(&hex::decode(h).unwrap()).unwrap());
    let ex = v["exchanges"].as_array().unwrap();
    let pairs: Vec<(CommandApdu, ResponseApdu)> = ex
        .iter()
        .map(|e| {
            let c = CommandApdu::parse(&unhex(&e["command"])).unwrap();
            let r = ResponseApdu::parse(&unhex(&e["response"])).unwrap();
            (c, r)
        })
        .collect();
    let mut it = pairs.into_iter();
    let (sel, sel_r) = it.next().unwrap();
    assert_eq!(sel, CommandApdu::select_mancard());
    if sel_r.sw != StatusWord::Ok {
        return format!("{:04X}", sel_r.sw.code());
    }
    let announced = SelectResponse::decode(&sel_r.data)
        .unwrap()
        .cert_hash
        .unwrap();
    let cert = match cached.filter(|c| c.hash() == announced) {
        Some(c) => c,
        None => {
            let (rc, rr) = it.next().unwrap();
            assert_eq!(rc, CommandApdu::read_certificate());
            let c = CredentialCertificate::decode(&rr.data).unwrap();
            assert_eq!(c.hash(), announced, "SELECT announced this certificate");
            c
        }
    };
    let (ac, ar) = it.next().unwrap();
    assert_eq!((ac.cla, ac.ins), (0x80, 0x20));
    assert!(it.next().is_none(), "no more exchanges after AUTHORIZE TAP");
    if ar.sw != StatusWord::Ok {
        return format!("{:04X}", ar.sw.code());
    }
    let ch = TapChallenge::decode(&ac.data).unwrap();
    let auth = TapAuthorization::decode(&ar.data).unwrap();
    outcome(
        verify_nfc_tap(&cfg, &cert, &ch, &auth).map(|_| ()),
        verify_err,
    )
}

#[test]
fn committed_vectors_hold() {
    let files = load_committed();
    let mut checked = 0usize;
    let mut failures = Vec::new();
    let mut types_seen = std::collections::BTreeSet::new();
    let mut outcomes_seen = std::collections::BTreeSet::new();
    for (file, content) in &files {
        let Some(vectors) = content["vectors"].as_array() else {
            continue;
        };
        for v in vectors {
            let id = format!("{file}#{}", v["name"].as_str().unwrap());
            let ty = v["type"].as_str().unwrap();
            types_seen.insert(ty.to_string());
            let mut fail = |what: String| failures.push(format!("{id}: {what}"));
            match ty {
                "tariff_fare" => {
                    let got = check_fare(v);
                    if got != v["expect"] {
                        fail(format!("fare {got} != expected {}", v["expect"]));
                    }
                }
                "wallet_log_chain" => {
                    let got = check_chain(v);
                    if got != v["expect"] {
                        fail(format!("chain {got} != expected {}", v["expect"]));
                    }
                }
                "nfc_tap" => {
                    let got = check_nfc_tap(v);
                    if got != v["expect"].as_str().unwrap() {
                        fail(format!("tap outcome {got} != expected {}", v["expect"]));
                    }
                }
                _ => {
                    let expect = v["decode"].as_str().unwrap();
                    outcomes_seen.insert(expect.to_string());
                    match (decode_vector(v), expect) {
                        (Ok(fields), "ok") => {
                            if fields != v["fields"] {
                                fail(format!(
                                    "decoded fields differ:\n got {fields}\n want {}",
                                    v["fields"]
                                ));
                            }
                        }
                        (Ok(_), e) => fail(format!("decoded, expected {e}")),
                        (Err(e), want) if e != want => fail(format!("got {e}, expected {want}")),
                        (Err(_), _) => {}
                    }
                    if let Some(h) = v.get("hash") {
                        let b = unhex(&v["hex"]);
                        let got = if ty == "certificate" {
                            CredentialCertificate::hash_bytes(&b)
                        } else {
                            WalletLogEntry::decode(&b).unwrap().hash()
                        };
                        if hx(&got) != h.as_str().unwrap() {
                            fail("hash differs".into());
                        }
                    }
                    if let Some(d) = v.get("digest") {
                        let ch = TapChallenge::decode(&unhex(&v["hex"])).unwrap();
                        if ch.digest(&arr32(&d["cert_hash"])) != arr32(&d["digest"]) {
                            fail("challenge digest differs".into());
                        }
                    }
                    if let Some(t) = v.get("text") {
                        if ty == "boarding_pass" {
                            let p = BoardingPass::decode(&unhex(&v["hex"])).unwrap();
                            if p.to_text() != t.as_str().unwrap() {
                                fail("text form differs".into());
                            }
                        }
                    }
                    if let Some(ctx) = v.get("verify") {
                        let got = verify_vector(v, ctx);
                        outcomes_seen.insert(got.clone());
                        if got != ctx["expect"].as_str().unwrap() {
                            fail(format!(
                                "verification gave {got}, expected {}",
                                ctx["expect"]
                            ));
                        }
                    }
                }
            }
            checked += 1;
        }
    }
    assert!(
        failures.is_empty(),
        "{} vector(s) failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    // Coverage of the suite itself: every message type and every typed outcome appears.
    for ty in [
        "certificate",
        "tap_challenge",
        "tap_authorization",
        "boarding_pass",
        "boarding_pass_text",
        "validator_config",
        "tariff",
        "tariff_fare",
        "tap_record",
        "tap_batch",
        "wallet_log_entry",
        "wallet_log_chain",
        "select_response",
        "command_apdu",
        "response_apdu",
        "nfc_tap",
    ] {
        assert!(types_seen.contains(ty), "no vector of type {ty}");
    }
    for o in [
        "ok",
        "Truncated",
        "TrailingBytes",
        "WrongType",
        "UnknownVersion",
        "InvalidValue",
        "InvalidPoint",
        "LengthOutOfRange",
        "InvalidText",
        "BadSignature",
        "UnknownIssuerKey",
        "IssuerKeyNotValid",
        "Expired",
        "NotYetValid",
        "CounterOutOfRange",
        "AmountOverAllowance",
        "ChallengeMismatch",
        "DenyListed",
        "PassOutsideWindow",
        "StaleBundle",
        "TooShort",
        "ExtendedLength",
        "LengthMismatch",
        "ResponseTooShort",
    ] {
        assert!(outcomes_seen.contains(o), "no vector expects {o}");
    }
    eprintln!("checked {checked} committed vectors");
}

#[test]
fn fixed_keys_reproduce() {
    let files = load_committed();
    let keys = files["keys.json"]["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 7);
    for k in keys {
        let scalar = unhex(&k["private_scalar"]);
        let sk = p256::ecdsa::SigningKey::from_slice(&scalar).unwrap();
        let point = sk.verifying_key().to_encoded_point(false);
        assert_eq!(hx(point.as_bytes()), k["public_key"].as_str().unwrap());
        let ring_key = SigningKey::from_pkcs8(&unhex(&k["pkcs8"])).unwrap();
        assert_eq!(
            hx(ring_key.public_key().as_bytes()),
            k["public_key"].as_str().unwrap()
        );
    }
}

/// The generator signs exactly the transcript the library signs: a message signed by the
/// library (ring, randomized) equals the deterministic vector except for the signature, and
/// each signature verifies under the library's checks.
#[test]
fn generator_signs_what_the_library_signs() {
    let k = Keys::new();
    let issuer = k.issuer1.ring();
    let tap = k.tap.ring();

    let det = std_cert(&k);
    let lib = cert_body(1, "rider-1", &k.tap).sign(&issuer).unwrap();
    assert_eq!(det.encode()[..120], lib.encode()[..120]);
    assert!(det.signature_valid(&k.issuer1.public) && lib.signature_valid(&k.issuer1.public));

    let ch = std_challenge();
    let det = authorize(&k.tap, &ch, &std_cert(&k).hash(), 1000, 20_000);
    let lib = TapAuthorization::sign(&tap, &ch, &std_cert(&k).hash(), 1000, 20_000).unwrap();
    assert_eq!(det.signed_bytes(), lib.signed_bytes());
    for a in [&det, &lib] {
        k.tap
            .public
            .verify(tags::TAP, &a.signed_bytes(), &a.signature)
            .unwrap();
    }

    let det = std_pass(&k);
    let lib = det.body.clone().sign(&tap).unwrap();
    assert_eq!(det.signed_bytes(), lib.signed_bytes());
    let cfg = std_config(&k);
    for p in [&det, &lib] {
        verify_boarding_pass(&cfg, p, T0, 0).unwrap();
    }

    let det = std_config(&k);
    let lib = std_config_body(&k).sign(&issuer).unwrap();
    assert_eq!(det.signed_bytes(), lib.signed_bytes());
    for c in [&det, &lib] {
        verify_config(c, &issuer_keys(&k), None).unwrap();
    }

    let det = batch_of(&k, 2);
    let lib = det.body.clone().sign(&k.validator.ring()).unwrap();
    assert_eq!(det.signed_bytes(), lib.signed_bytes());
    assert!(det.verify_signature(&k.validator.public) && lib.verify_signature(&k.validator.public));
}
