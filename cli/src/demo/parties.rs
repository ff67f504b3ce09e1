//! What the day and the attack reel share: the story's clock (the sandbox backend's, moved
//! forward only), validators registered with the backend and configured over HTTP, and a
//! validator's upload with the backend's answers and the clock it was judged at.

use super::{Res, HTTP_TIMEOUT};
use mancard_api::endpoints::VALIDATOR_BATCHES;
use mancard_api::{BatchResponse, RegisterValidatorRequest};
use mancard_backend::Engine;
use mancard_protocol::{PublicKey, TapBatch, TapProof, TapRecord, Tariff};
use mancard_validator::{http, Clock, TrustAnchor, UploadReport, Validator};
use std::path::Path;

/// Moves the sandbox backend's clock forward so that it reads at least `t` (never back):
/// reports reach the backend after the rides they report, never before.
pub(super) fn clock_to(engine: &Engine, t: i64) -> Res<()> {
    engine
        .advance_clock_to(t)
        .map_err(|e| format!("sandbox clock: {e}"))?;
    Ok(())
}

/// 07:00 Iran time on the first fare day whose 07:00 is still ahead of `now` (today's, or
/// tomorrow's once it has passed): the story's first morning.
pub(super) fn next_morning(now: i64) -> i64 {
    let t = Tariff::urmia_default();
    let seven = |d: i64| d * 86_400 - i64::from(t.utc_offset_secs) + 7 * 3600;
    let today = seven((now + i64::from(t.utc_offset_secs)).div_euclid(86_400));
    if today > now + 60 {
        today
    } else {
        today + 86_400
    }
}

/// The trust anchor a validator is set up with: the backend's current issuer key.
fn anchor(engine: &Engine) -> Res<(TrustAnchor, u32)> {
    let keys = engine.key_info();
    let current = keys
        .iter()
        .find(|k| k.current)
        .or_else(|| keys.first())
        .ok_or("the backend has no issuer key")?;
    let anchor = TrustAnchor {
        key_id: Some(current.key_id),
        public_key: PublicKey::from_bytes(
            &hex::decode(&current.public_key).map_err(|e| format!("issuer key: {e}"))?,
            "issuer key",
        )?,
    };
    Ok((anchor, current.key_id))
}

/// A validator set up as an operator does: it trusts the backend's current issuer key,
/// registers its own key (the backend answers its certificate), fetches its signed config
/// bundle over HTTP, and runs on `clock`.
pub(super) struct NewValidator {
    pub(super) validator: Validator,
    pub(super) issuer_key_id: u32,
    pub(super) bundle_bytes: usize,
}

pub(super) fn add_validator(
    engine: &Engine,
    url: &str,
    dir: &Path,
    (id, line): (u32, u32),
    clock: Clock,
) -> Res<NewValidator> {
    let (anchor, issuer_key_id) = anchor(engine)?;
    let mut v = Validator::init(dir, &anchor, id, line)?;
    let registered = engine
        .register_validator(&RegisterValidatorRequest::new(
            id,
            hex::encode(v.public_key().as_bytes()),
        ))
        .map_err(|e| format!("register validator {id}: {e}"))?;
    let bundle = fetch_bundle(url)?;
    v.install_config(&bundle)?;
    let certificate =
        hex::decode(&registered.certificate).map_err(|e| format!("validator certificate: {e}"))?;
    v.install_certificate(&certificate)?;
    v.set_clock(clock);
    Ok(NewValidator {
        validator: v,
        issuer_key_id,
        bundle_bytes: bundle.len(),
    })
}

/// The backend's current signed config bundle (`GET /v1/validator/config`).
pub(super) fn fetch_bundle(url: &str) -> Res<Vec<u8>> {
    Ok(http::fetch_config(url, None, HTTP_TIMEOUT)
        .map_err(|e| format!("fetch config: {e}"))?
        .ok_or("the backend answered 304 to a request without a bundle version")?)
}

/// One validator's upload: what it sent and what the backend answered.
#[derive(Default)]
pub(super) struct Uploaded {
    pub(super) report: UploadReport,
    pub(super) answers: Vec<BatchResponse>,
    /// The latest time any uploaded record claims (its own or its proof's), and the
    /// backend's clock when the batch was sent: the first is never after the second.
    pub(super) latest_tap: Option<i64>,
    pub(super) backend_time: Option<i64>,
}

/// Uploads the validator's journal to the backend over HTTP (sealed batches first, with
/// their ids); `online: false` is a validator out of coverage (the upload fails).
pub(super) fn upload(
    v: &mut Validator,
    engine: &Engine,
    url: &str,
    online: bool,
) -> Res<(Uploaded, Option<String>)> {
    let target = http::join(url, VALIDATOR_BATCHES.path);
    let mut up = Uploaded::default();
    let sent = v.upload(|b| {
        if !online {
            return Err("no network: the bus is out of coverage".to_string());
        }
        if let Some(t) = batch_latest(&b.bytes) {
            up.latest_tap = up.latest_tap.max(Some(t));
        }
        up.backend_time = Some(engine.now());
        let r = http::post(&target, "application/octet-stream", &b.bytes, HTTP_TIMEOUT)
            .map_err(|e| e.to_string())?;
        let body = r.ok().map_err(|e| e.to_string())?;
        let answer =
            serde_json::from_slice(&body).map_err(|e| format!("unreadable batch answer: {e}"))?;
        up.answers.push(answer);
        Ok(())
    });
    match sent {
        Ok(report) => {
            up.report = report;
            Ok((up, None))
        }
        Err(e) => Ok((up, Some(e.to_string()))),
    }
}

/// The latest time a sealed batch's records claim.
fn batch_latest(bytes: &[u8]) -> Option<i64> {
    let b = TapBatch::decode(bytes).ok()?;
    let records = b.body.records.iter().map(record_time);
    let torn = b.body.torn.iter().map(|t| t.time);
    records.chain(torn).max()
}

/// The latest time a record claims: its own and its proof's signed time.
pub(super) fn record_time(r: &TapRecord) -> i64 {
    r.time.max(proof_time(&r.proof))
}

/// The signed time of a proof (NFC: the challenge's; QR: the pass's issue time).
pub(super) fn proof_time(p: &TapProof) -> i64 {
    match p {
        TapProof::Nfc { challenge, .. } => challenge.body.validator_time,
        TapProof::Qr { pass } => pass.body.issued_at,
    }
}
