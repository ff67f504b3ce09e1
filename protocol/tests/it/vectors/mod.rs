//! Test vectors: language-neutral JSON (hex) in `tests/vectors/`, made from fixed keys with
//! deterministic RFC 6979 signatures (low-S, as every ManCard signer emits).
//!
//! * `vectors_are_up_to_date` regenerates every file and fails on any difference from the
//!   committed files. `MANCARD_BLESS=1 cargo test -p mancard-protocol --test it vectors::`
//!   rewrites them.
//! * `check::committed_vectors_hold` reads only the committed JSON and checks every stated
//!   outcome with the library's decoders and verifiers.
//!
//! Expected outcomes are written by hand in the generators; they are never computed by running
//! the code under test.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod check;
mod gen_apdu;
mod gen_certs;
mod gen_config;
mod gen_log;
mod gen_pass;
mod gen_tap;
mod v1;

use mancard_protocol::apdu::{ApduError, P1_RECOVER};
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

fn validator_cert_json(c: &ValidatorCertificate) -> Value {
    let b = &c.body;
    json!({
        "issuer_key_id": b.issuer_key_id,
        "validator_id": b.validator_id,
        "operator_id": b.operator_id,
        "public_key": hx(&b.public_key.to_compressed()),
        "valid_from": b.valid_from,
        "valid_until": b.valid_until,
        "lines": b.lines,
        "signature": hx(c.signature.as_bytes()),
    })
}

fn challenge_json(c: &TapChallenge) -> Value {
    let b = &c.body;
    json!({
        "validator_id": b.validator_id,
        "nonce": hx(&b.nonce),
        "session": hx(&b.session),
        "validator_time": b.validator_time,
        "line_id": b.line_id,
        "fare": b.fare,
        "fare_class": b.fare_class as u8,
        "fare_class_name": b.fare_class.name(),
        "signature": hx(c.signature.as_bytes()),
    })
}

fn auth_json(a: &TapAuthorization) -> Value {
    json!({
        "counter": a.counter,
        "amount": a.amount,
        "prev": hx(&a.prev),
        "cert_id": hx(&a.cert_id),
        "signature": hx(a.signature.as_bytes()),
    })
}

fn pass_json(p: &BoardingPass) -> Value {
    json!({
        "certificate": cert_json(&p.body.certificate),
        "counter": p.body.counter,
        "issued_at": p.body.issued_at,
        "lifetime_secs": p.body.lifetime_secs,
        "fare_class": p.body.fare_class as u8,
        "max_amount": p.body.max_amount,
        "prev": hx(&p.body.prev),
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
    let t = &b.time_rules;
    json!({
        "bundle_version": b.bundle_version,
        "issued_at": b.issued_at,
        "signer_key_id": b.signer_key_id,
        "issuer_keys": b.issuer_keys.iter().map(issuer_key_json).collect::<Vec<_>>(),
        "deny_list": b.deny_list.iter().map(|p| hx(&p.0)).collect::<Vec<_>>(),
        "validator_deny_list": b.validator_deny_list.iter().map(|v| v.0).collect::<Vec<_>>(),
        "time_rules": {
            "max_pass_lifetime_secs": t.max_pass_lifetime_secs,
            "clock_skew_secs": t.clock_skew_secs,
            "tap_window_secs": t.tap_window_secs,
        },
        "tariff": tariff_json(&b.tariff),
        "signature": hx(c.signature.as_bytes()),
    })
}

fn proof_json(p: &TapProof) -> Value {
    match p {
        TapProof::Nfc {
            challenge,
            authorization,
        } => json!({
            "kind": "nfc",
            "challenge": challenge_json(challenge),
            "authorization": auth_json(authorization),
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

fn torn_json(t: &TornRecord) -> Value {
    json!({
        "time": t.time,
        "challenge": challenge_json(&t.challenge),
    })
}

fn batch_json(b: &TapBatch) -> Value {
    json!({
        "validator_id": b.body.validator_id,
        "batch_id": hx(&b.body.batch_id),
        "created_at": b.body.created_at,
        "records": b.body.records.iter().map(record_json).collect::<Vec<_>>(),
        "torn": b.body.torn.iter().map(torn_json).collect::<Vec<_>>(),
        "signature": hx(b.signature.as_bytes()),
    })
}

fn log_json(e: &WalletLogEntry) -> Value {
    json!({
        "seq": e.seq,
        "time": e.time,
        "amount": e.amount,
        "proof": proof_json(&e.proof),
    })
}

fn select_json(s: &SelectResponse) -> Value {
    json!({"session": hx(&s.session)})
}

fn command_json(c: &CommandApdu) -> Value {
    json!({"cla": c.cla, "ins": c.ins, "p1": c.p1, "p2": c.p2, "data": hx(&c.data), "le": c.le})
}

fn authorize_command_json(c: &AuthorizeCommand) -> Value {
    json!({
        "challenge": challenge_json(&c.challenge),
        "validator_certificate": c.validator_cert.as_ref().map(validator_cert_json),
    })
}

fn authorize_response_json(r: &AuthorizeResponse) -> Value {
    match r {
        AuthorizeResponse::Authorized(a) => json!({"authorized": auth_json(a)}),
        AuthorizeResponse::Requote(c) => json!({"requote": cert_json(c)}),
    }
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
        VerifyError::NonCanonicalSignature => "NonCanonicalSignature",
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
        VerifyError::PassTooLong { .. } => "PassTooLong",
        VerifyError::ValidatorDenied(_) => "ValidatorDenied",
        VerifyError::ValidatorCertNotValid { .. } => "ValidatorCertNotValid",
        VerifyError::WrongValidator { .. } => "WrongValidator",
        VerifyError::LineNotAllowed { .. } => "LineNotAllowed",
        VerifyError::FareClassMismatch { .. } => "FareClassMismatch",
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

fn fork_name(r: &Result<Fork, NotAFork>) -> &'static str {
    match r {
        Ok(Fork::SamePredecessor) => "SamePredecessor",
        Ok(Fork::SameCounter) => "SameCounter",
        Err(NotAFork::OtherCertificate) => "OtherCertificate",
        Err(NotAFork::Signature(SignatureError::NonCanonical)) => "NonCanonicalSignature",
        Err(NotAFork::Signature(SignatureError::Invalid)) => "BadSignature",
        Err(NotAFork::SameTap) => "SameTap",
        Err(NotAFork::Unrelated) => "Unrelated",
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

fn unhex_const(s: &str) -> Vec<u8> {
    hex::decode(s).unwrap()
}

/// The framing errors every top-level message must reject: empty, truncated (by one byte and
/// to the header), trailing byte, the next (unknown) version, version 1 for a v2 message (its
/// v2 layout under the v1 version byte), wrong type tag.
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
    let next = valid[1] + 1;
    f.push(
        Vector::new(
            "unknown-version",
            ty,
            &format!("version byte {next} (a future version)"),
        )
        .hex(&patched(valid, 1, &[next]))
        .fails("UnknownVersion"),
    );
    if valid[1] == 2 {
        f.push(
            Vector::new(
                "version-byte-1",
                ty,
                "the valid v2 message with version byte 1: v1 is refused, whatever follows",
            )
            .hex(&patched(valid, 1, &[1]))
            .fails("UnknownVersion"),
        );
    }
    f.push(
        Vector::new("wrong-type", ty, "type tag 'X'")
            .hex(&patched(valid, 0, b"X"))
            .fails("WrongType"),
    );
}

/// A real v1 message (frozen bytes from the v1 vectors) that v2 refuses as an unknown version.
fn v1_message(ty: &str, what: &str, v1_hex: &str) -> Vector {
    Vector::new(
        "v1-message",
        ty,
        &format!("a genuine protocol v1 {what}: refused as an unknown version"),
    )
    .hex(&unhex_const(v1_hex))
    .fails("UnknownVersion")
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
        "issuer-1" => {
            "issuer key id 1 (signs certificates, validator certificates and the config bundle)"
        }
        "issuer-2" => "issuer key id 2 (rotation; valid from T0 - 2 days)",
        "issuer-3" => "issuer key id 3 (in no config: unknown issuer)",
        "rogue-issuer" => "attacker key that claims issuer key id 1",
        "tap" => "the wallet's tap key (in the certificates)",
        "tap-other" => "another wallet's tap key",
        "validator-7001" => {
            "validator 7001's key (in its validator certificate; signs its challenges and batches)"
        }
        "validator-7002" => "validator 7002's key (another reader)",
        _ => "",
    };
    json!({
        "description": "Fixed P-256 keys of the vectors. TEST ONLY: the private keys are public. \
            private_scalar = SHA-256(\"ManCard test vector key: \" || name); pkcs8 is the same key \
            as a PKCS#8 v1 document that ring loads. Signatures are ECDSA P-256 / SHA-256, \
            deterministic per RFC 6979 then made low-S (s <= n/2), fixed 64-byte r || s, over \
            TAG || body. A high-S signature (s > n/2) is refused as NonCanonicalSignature.",
        "t0": T0,
        "keys": k.all().iter().map(|key| json!({
            "name": key.name,
            "role": role(key.name),
            "private_scalar": hx(&key.scalar),
            "pkcs8": hx(&key.pkcs8()),
            "public_key": hx(key.public.as_bytes()),
            "public_key_compressed": hx(&key.public.to_compressed()),
        })).collect::<Vec<_>>(),
        "domain_tags": {
            "certificate": hx(tags::CERTIFICATE),
            "validator_certificate": hx(tags::VALIDATOR_CERTIFICATE),
            "challenge": hx(tags::CHALLENGE),
            "challenge_digest": hx(tags::CHALLENGE_DIGEST),
            "challenge_id": hx(tags::CHALLENGE_ID),
            "tap": hx(tags::TAP),
            "pass": hx(tags::PASS),
            "config": hx(tags::CONFIG),
            "batch": hx(tags::BATCH),
            "tap_id": hx(tags::TAP_ID),
            "chain_start": hx(tags::CHAIN_START),
            "cert_id": hx(tags::CERT_ID),
        },
    })
}

/// Every vector file, by file name.
fn generate() -> BTreeMap<&'static str, Value> {
    let k = Keys::new();
    let mut out = BTreeMap::new();
    out.insert("keys.json", keys_file(&k));
    out.insert(
        "certificate.json",
        gen_certs::certificate_file(&k).into_json(),
    );
    out.insert(
        "validator_certificate.json",
        gen_certs::validator_certificate_file(&k).into_json(),
    );
    out.insert(
        "tap_challenge.json",
        gen_tap::challenge_file(&k).into_json(),
    );
    out.insert(
        "tap_authorization.json",
        gen_tap::authorization_file(&k).into_json(),
    );
    out.insert("boarding_pass.json", gen_pass::pass_file(&k).into_json());
    out.insert(
        "validator_config.json",
        gen_config::config_file(&k).into_json(),
    );
    out.insert("tariff.json", gen_config::tariff_file().into_json());
    out.insert("tap_record.json", gen_log::record_file(&k).into_json());
    out.insert("torn_record.json", gen_log::torn_file(&k).into_json());
    out.insert("tap_batch.json", gen_log::batch_file(&k).into_json());
    out.insert("wallet_log.json", gen_log::log_file(&k).into_json());
    out.insert("apdu.json", gen_apdu::apdu_file(&k).into_json());
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
