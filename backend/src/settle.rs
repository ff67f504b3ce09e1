//! Settlement checks that need no database: the evidence of one tap is verified against the
//! certificate it names, in an order that never blames a rider for bytes they did not sign
//! (the tap-key signature is checked before anything that could open a fraud case), and the
//! fare rule applied over a rider's rides.
//!
//! These functions are pure and `Sync`, so a batch's taps are verified in parallel.

use crate::ids::{AccountId, CertHash, DeviceId, PseudonymBytes};
use mancard_api::FraudKind;
use mancard_protocol::{
    authorized_amount, check_validity, prove_fork, BoardingPass, CredentialCertificate, FareClass,
    FareKind, PublicKey, RideState, SignatureError, TapAuthorization, TapChallenge, TapProof,
    TapRecord, Tariff, TimeRules, ValidatorCertificate, VerifiedCertificate, VerifyError,
    WalletLogEntry,
};
use std::collections::HashMap;

/// An issued certificate with where it belongs.
#[derive(Debug, Clone)]
pub struct CertInfo {
    pub cert: CredentialCertificate,
    /// The certificate id ([`CredentialCertificate::id`]).
    pub hash: CertHash,
    pub device_id: DeviceId,
    pub account_id: AccountId,
}

impl CertInfo {
    /// The certificate as the protocol's verifier takes it (its issuer signature is ours,
    /// checked when it was signed).
    fn verified(&self) -> VerifiedCertificate {
        VerifiedCertificate {
            cert: self.cert.clone(),
            hash: self.hash.0,
        }
    }
}

/// A registered validator as settlement needs it: the key its challenges must verify under.
#[derive(Debug, Clone)]
pub struct ValidatorInfo {
    pub key: PublicKey,
    /// Its issuer-signed certificate (none for a validator registered before protocol v2):
    /// the lines it may charge for.
    pub cert: Option<ValidatorCertificate>,
    /// When it was put on the validator deny list: challenges it signed from then on are not
    /// charged.
    pub denied_at: Option<i64>,
}

/// What a report's evidence is checked against besides its certificate.
#[derive(Debug, Clone, Copy)]
pub struct Evidence<'a> {
    /// Registered validators by id (those the reports name, at least).
    pub validators: &'a HashMap<u32, ValidatorInfo>,
    /// The current config bundle's time rules (the longest pass allowed).
    pub time_rules: &'a TimeRules,
    /// The tariff: what a phone of another class than the challenge quoted must have signed.
    pub tariff: &'a Tariff,
    /// The latest tap time accepted: the backend's clock plus the policy's tolerance. A tap
    /// dated later is refused (`from_the_future`).
    pub not_after: i64,
}

/// Tolerated difference between a validator record's time and the time in its signed challenge.
pub const RECORD_TIME_TOLERANCE_SECS: i64 = 300;

/// A tap whose evidence verified.
#[derive(Debug, Clone)]
pub struct CheckedTap {
    /// The tap's identity ([`TapProof::id`]): a hash of what the phone signed, never of a
    /// signature. Exactly-once and duplicates key on it.
    pub id: [u8; 32],
    pub pseudonym: PseudonymBytes,
    pub counter: u32,
    pub cert_hash: CertHash,
    pub account_id: AccountId,
    pub device_id: DeviceId,
    pub fare_class: FareClass,
    /// Signed time of the tap (NFC: the validator time in the challenge; QR: the pass's issue
    /// time), UTC seconds.
    pub time: i64,
    /// Line, when known (NFC: signed in the challenge; QR: only the validator's record says).
    pub line_id: Option<u32>,
    /// Signed amount: NFC the authorized fare, QR the pass's maximum.
    pub authorized: i64,
    /// The certificate's offline allowance (`allowance.max_amount`): the most all the taps
    /// under it may authorize in total.
    pub allowance: i64,
    /// Encoding of the signed evidence as reported first ([`proof_bytes`]).
    pub proof: Vec<u8>,
    /// NFC: the id of the validator-signed challenge (torn challenges are matched on it).
    /// QR: none.
    pub challenge_id: Option<[u8; 32]>,
    /// Set when the evidence is genuine but breaks the certificate's limits.
    pub fraud: Option<(FraudKind, String)>,
}

/// Why a report's evidence was rejected (not charged, no fraud case): the `reason` of a
/// `rejected` tap result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reject {
    /// The certificate it names was not issued here.
    UnknownCertificate,
    /// A validator record names another pseudonym than its certificate.
    PseudonymMismatch,
    /// The tap or pass signature does not verify under the certificate's tap key.
    BadSignature,
    /// A high-S signature somewhere in the evidence: a modified copy of a genuine one.
    NonCanonicalSignature,
    /// The challenge names a validator that is not registered.
    UnknownValidator,
    /// The challenge is not signed by the registered key of the validator it names (made up,
    /// by a wallet or anyone else).
    UnsignedChallenge,
    /// The challenge was signed by a validator after it was put on the deny list.
    ValidatorDenied,
    /// The challenge charges a line the validator's certificate does not allow.
    LineNotAllowed,
    /// The authorization does not answer its challenge.
    ChallengeMismatch,
    /// A pass carries another certificate than the one it names.
    CertificateMismatch,
    /// A pass lives longer than the current config bundle allows.
    PassTooLong,
    /// The tap's signed time is outside the certificate's validity.
    OutsideValidity,
    /// A validator record disagrees with its own signed evidence or batch.
    RecordMismatch,
    /// A wallet uploaded a tap under another device's certificate.
    ForeignCertificate,
    /// Another tap with the same counter is stored, but the two do not prove a fork.
    UnprovenConflict,
    /// The tap is dated later than the backend's clock allows.
    FromTheFuture,
}

impl Reject {
    /// The reason's wire text.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::UnknownCertificate => "unknown_certificate",
            Self::PseudonymMismatch => "pseudonym_mismatch",
            Self::BadSignature => "bad_signature",
            Self::NonCanonicalSignature => "non_canonical_signature",
            Self::UnknownValidator => "unknown_validator",
            Self::UnsignedChallenge => "unsigned_challenge",
            Self::ValidatorDenied => "validator_denied",
            Self::LineNotAllowed => "line_not_allowed",
            Self::ChallengeMismatch => "challenge_mismatch",
            Self::CertificateMismatch => "certificate_mismatch",
            Self::PassTooLong => "pass_too_long",
            Self::OutsideValidity => "outside_validity",
            Self::RecordMismatch => "record_mismatch",
            Self::ForeignCertificate => "foreign_certificate",
            Self::UnprovenConflict => "unproven_conflict",
            Self::FromTheFuture => "from_the_future",
        }
    }
}

/// The verdict on one report.
#[derive(Debug, Clone)]
pub enum Check {
    Ok(Box<CheckedTap>),
    Rejected { reason: Reject, detail: String },
}

fn reject(reason: Reject, detail: impl Into<String>) -> Check {
    Check::Rejected {
        reason,
        detail: detail.into(),
    }
}

/// The encoding of a proof as stored: its kind byte, then its messages (NFC: the challenge,
/// then the authorization; QR: the pass).
pub fn proof_bytes(proof: &TapProof) -> Vec<u8> {
    let mut v = vec![proof.kind_byte()];
    match proof {
        TapProof::Nfc {
            challenge,
            authorization,
        } => {
            v.extend_from_slice(&challenge.encode());
            v.extend_from_slice(&authorization.encode());
        }
        TapProof::Qr { pass } => v.extend_from_slice(&pass.encode()),
    }
    v
}

/// Decodes [`proof_bytes`]; `None` for anything else (a proof stored before protocol v2).
pub fn decode_proof(bytes: &[u8]) -> Option<TapProof> {
    match bytes.split_first()? {
        (1, rest) => {
            let (c, a) = rest.split_at_checked(TapChallenge::LEN)?;
            Some(TapProof::Nfc {
                challenge: TapChallenge::decode(c).ok()?,
                authorization: TapAuthorization::decode(a).ok()?,
            })
        }
        (2, rest) => Some(TapProof::Qr {
            pass: BoardingPass::decode(rest).ok()?,
        }),
        _ => None,
    }
}

/// The rejection of a refused signature (`what` says whose).
fn signature_reject(e: SignatureError, what: &str) -> Check {
    match e {
        SignatureError::NonCanonical => reject(
            Reject::NonCanonicalSignature,
            format!("the {what} signature is not canonical (high S): a modified copy"),
        ),
        SignatureError::Invalid => reject(
            Reject::BadSignature,
            format!("the {what} signature does not verify"),
        ),
    }
}

/// Checks that an NFC challenge was issued by the registered validator it names: signed by
/// its registered key, for a line its certificate allows, before it was denied.
pub fn check_challenge(challenge: &TapChallenge, ev: &Evidence<'_>) -> Result<(), Check> {
    let c = &challenge.body;
    let id = c.validator_id;
    let Some(v) = ev.validators.get(&id) else {
        return Err(reject(
            Reject::UnknownValidator,
            format!("the challenge names validator {id}, which is not registered"),
        ));
    };
    match challenge.verify(&v.key) {
        Ok(()) => {}
        Err(SignatureError::NonCanonical) => {
            return Err(signature_reject(SignatureError::NonCanonical, "challenge"))
        }
        Err(SignatureError::Invalid) => {
            return Err(reject(
                Reject::UnsignedChallenge,
                format!("the challenge is not signed by validator {id}'s registered key"),
            ))
        }
    }
    match validator_may_charge(id, v, c.line_id, c.validator_time) {
        Some(r) => Err(r),
        None => Ok(()),
    }
}

/// Whether validator `id` could charge on `line_id` at `time`: its certificate covers the line,
/// and it was not on the validator deny list yet. The rejection otherwise.
fn validator_may_charge(id: u32, v: &ValidatorInfo, line_id: u32, time: i64) -> Option<Check> {
    if v.cert
        .as_ref()
        .is_some_and(|vc| !vc.body.allows_line(line_id))
    {
        return Some(reject(
            Reject::LineNotAllowed,
            format!("validator {id} may not charge on line {line_id}"),
        ));
    }
    if v.denied_at.is_some_and(|d| time >= d) {
        return Some(reject(
            Reject::ValidatorDenied,
            format!("validator {id} was on the deny list at that time"),
        ));
    }
    None
}

/// The rejection or fraud verdict of a protocol refusal of a tap or pass. The certificate's
/// limits (counter range, allowance) are fraud only when the phone's signature verifies:
/// nobody is blamed for bytes they did not sign.
fn refusal(
    e: VerifyError,
    proof: &TapProof,
    ci: &CertInfo,
) -> Result<Option<(FraudKind, String)>, Check> {
    match e {
        VerifyError::CounterOutOfRange { .. } | VerifyError::AmountOverAllowance { .. } => {
            match proof.verify_phone_signature(&ci.cert.body.tap_public_key) {
                Ok(()) => Ok(limits_fraud(
                    &ci.cert.body.allowance,
                    proof.counter(),
                    proof.amount(),
                )),
                Err(s) => Err(signature_reject(s, "tap")),
            }
        }
        VerifyError::NonCanonicalSignature => {
            Err(signature_reject(SignatureError::NonCanonical, "tap"))
        }
        VerifyError::BadSignature => Err(signature_reject(SignatureError::Invalid, "tap")),
        VerifyError::PassTooLong { .. } => Err(reject(Reject::PassTooLong, e.to_string())),
        VerifyError::Expired { .. }
        | VerifyError::NotYetValid { .. }
        | VerifyError::PassOutsideWindow { .. } => {
            Err(reject(Reject::OutsideValidity, e.to_string()))
        }
        VerifyError::ChallengeMismatch | VerifyError::FareClassMismatch { .. } => Err(reject(
            Reject::ChallengeMismatch,
            format!("the authorization does not answer the challenge: {e}"),
        )),
        other => Err(reject(Reject::BadSignature, other.to_string())),
    }
}

/// What a proof whose signatures verify says.
struct SignedTerms {
    time: i64,
    /// NFC only.
    line_id: Option<u32>,
    authorized: i64,
    /// Set when the evidence is genuine but breaks the certificate's limits.
    fraud: Option<(FraudKind, String)>,
}

/// The signed terms of a proof whose signatures verify; the rejection otherwise.
fn signed_terms(proof: &TapProof, ci: &CertInfo, ev: &Evidence<'_>) -> Result<SignedTerms, Check> {
    let vc = ci.verified();
    match proof {
        TapProof::Nfc {
            challenge,
            authorization,
        } => {
            let fraud = match vc.verify_tap(challenge, authorization) {
                Ok(()) => None,
                Err(e) => refusal(e, proof, ci)?,
            };
            // Another class than quoted: the phone's own class's fare of the line, exactly.
            let class = vc.cert.body.fare_class;
            if authorized_amount(&challenge.body, class, ev.tariff) != Some(authorization.amount) {
                return Err(reject(
                    Reject::ChallengeMismatch,
                    format!(
                        "the {} fare signed is not the fare the challenge asks of that class",
                        class.name()
                    ),
                ));
            }
            let c = &challenge.body;
            Ok(SignedTerms {
                time: c.validator_time,
                line_id: Some(c.line_id),
                authorized: authorization.amount,
                fraud,
            })
        }
        TapProof::Qr { pass } => {
            if pass.body.certificate != ci.cert {
                if !pass.body.certificate.signature.is_low_s() {
                    return Err(signature_reject(
                        SignatureError::NonCanonical,
                        "certificate",
                    ));
                }
                return Err(reject(
                    Reject::CertificateMismatch,
                    "the pass carries another certificate",
                ));
            }
            // The backend learns of a pass after the fact: its window is checked at its own
            // issue time, its lifetime against the bundle.
            let b = &pass.body;
            let fraud = match vc.verify_pass(pass, b.issued_at, ev.time_rules) {
                Ok(()) => None,
                Err(e) => refusal(e, proof, ci)?,
            };
            Ok(SignedTerms {
                time: b.issued_at,
                line_id: None,
                authorized: b.max_amount,
                fraud,
            })
        }
    }
}

/// The fraud verdict on a genuine tap against its certificate's limits.
fn limits_fraud(
    a: &mancard_protocol::OfflineAllowance,
    counter: u32,
    authorized: i64,
) -> Option<(FraudKind, String)> {
    if !a.contains(counter) {
        Some((
            FraudKind::CounterOutOfRange,
            format!(
                "counter {counter} is outside {}..={}",
                a.counter_first, a.counter_last
            ),
        ))
    } else if authorized > a.max_amount {
        Some((
            FraudKind::OverAllowance,
            format!(
                "signed amount {authorized} exceeds the allowance {}",
                a.max_amount
            ),
        ))
    } else {
        None
    }
}

/// Verifies a proof against the certificate it names and, for NFC, the registered validator
/// its challenge names. `pseudonym` is the pseudonym the report claims (validator record), if
/// any.
pub fn check_proof(
    proof: &TapProof,
    cert: Option<&CertInfo>,
    pseudonym: Option<&[u8; 16]>,
    ev: &Evidence<'_>,
) -> Check {
    if let TapProof::Nfc { challenge, .. } = proof {
        if let Err(rejected) = check_challenge(challenge, ev) {
            return rejected;
        }
    }
    let Some(ci) = cert else {
        return reject(
            Reject::UnknownCertificate,
            format!(
                "certificate {} was not issued here",
                hex::encode(proof.cert_id())
            ),
        );
    };
    let body = &ci.cert.body;
    if pseudonym.is_some_and(|p| *p != body.pseudonym.0) {
        return reject(
            Reject::PseudonymMismatch,
            "the record's pseudonym is not the certificate's",
        );
    }
    let SignedTerms {
        time,
        line_id,
        authorized,
        fraud,
    } = match signed_terms(proof, ci, ev) {
        Ok(t) => t,
        Err(rejected) => return rejected,
    };
    if time > ev.not_after {
        return reject(
            Reject::FromTheFuture,
            format!(
                "the tap is dated {} s after the backend's clock allows",
                time.saturating_sub(ev.not_after)
            ),
        );
    }
    if let Err(e) = check_validity(&ci.cert, time) {
        return reject(Reject::OutsideValidity, e.to_string());
    }
    Check::Ok(Box::new(CheckedTap {
        id: proof.id(),
        pseudonym: PseudonymBytes(body.pseudonym.0),
        counter: proof.counter(),
        cert_hash: ci.hash,
        account_id: ci.account_id,
        device_id: ci.device_id,
        fare_class: body.fare_class,
        time,
        line_id,
        authorized,
        allowance: body.allowance.max_amount,
        proof: proof_bytes(proof),
        challenge_id: match proof {
            TapProof::Nfc { challenge, .. } => Some(challenge.id()),
            TapProof::Qr { .. } => None,
        },
        fraud,
    }))
}

/// Decides whether a stored tap and a new one with the same pseudonym and counter prove a
/// fork of the certificate's chain: both decoded, both signed by its tap key, different
/// signed bodies. The detail of the fraud case, or the reason it is not one.
pub fn fork_between(
    cert: &CredentialCertificate,
    stored: &[u8],
    new: &[u8],
) -> Result<String, String> {
    let a = decode_proof(stored).ok_or("the stored tap is not a protocol v2 proof")?;
    let b = decode_proof(new).ok_or("the new tap does not decode")?;
    match prove_fork(cert, &a, &b) {
        Ok(fork) => Ok(format!(
            "two different signed taps with counter {} ({fork:?})",
            b.counter()
        )),
        Err(e) => Err(format!(
            "the two taps with counter {} prove no fork: {e}",
            b.counter()
        )),
    }
}

/// The fraud verdict on a certificate's running total: `total` is the sum of the signed amounts
/// of every tap settled under the certificate, the new one included. Over the allowance, the
/// tap key has authorized more than the certificate allows (a stolen or cloned key): the same
/// `over_allowance` case as a single tap above it.
pub fn over_allowance_total(total: i64, allowance: i64) -> Option<(FraudKind, String)> {
    (total > allowance).then(|| {
        (
            FraudKind::OverAllowance,
            format!(
                "authorized total {total} exceeds the certificate's offline allowance {allowance}"
            ),
        )
    })
}

/// Verifies a validator's record: its evidence, and that its own fields agree with it.
pub fn check_record(
    rec: &TapRecord,
    batch_validator: u32,
    cert: Option<&CertInfo>,
    ev: &Evidence<'_>,
) -> Check {
    if rec.validator_id != batch_validator {
        return reject(
            Reject::RecordMismatch,
            "the record names another validator than its batch",
        );
    }
    if rec.time > ev.not_after {
        return reject(
            Reject::FromTheFuture,
            format!(
                "the record is dated {} s after the backend's clock allows",
                rec.time.saturating_sub(ev.not_after)
            ),
        );
    }
    if let TapProof::Nfc { challenge, .. } = &rec.proof {
        let challenge = &challenge.body;
        if challenge.validator_id != rec.validator_id
            || challenge.line_id != rec.line_id
            || rec.fare > challenge.fare
            || challenge
                .validator_time
                .saturating_sub(rec.time)
                .saturating_abs()
                > RECORD_TIME_TOLERANCE_SECS
        {
            return reject(
                Reject::RecordMismatch,
                "the record's validator, line or time disagree with the signed challenge, or its \
                 fare is above the fare the challenge signed",
            );
        }
    }
    if let TapProof::Qr { pass } = &rec.proof {
        if let Some(r) = qr_record_refusal(rec, pass, ev) {
            return r;
        }
    }
    match check_proof(&rec.proof, cert, Some(&rec.pseudonym.0), ev) {
        Check::Ok(mut t) => {
            if t.line_id.is_none() {
                if let TapProof::Qr { pass } = &rec.proof {
                    if rec.fare > pass.body.max_amount {
                        return reject(
                            Reject::RecordMismatch,
                            "the record's fare exceeds the pass's maximum",
                        );
                    }
                }
                t.line_id = Some(rec.line_id);
            }
            Check::Ok(t)
        }
        r => r,
    }
}

/// What the validator's own certificate and the pass's window say about a QR record: the
/// validator may charge on the line it names (its certificate's lines) and was not denied when
/// it scanned, and it scanned within the pass's window (the bundle's skew on either side), as
/// its own check did.
fn qr_record_refusal(rec: &TapRecord, pass: &BoardingPass, ev: &Evidence<'_>) -> Option<Check> {
    let id = rec.validator_id;
    if let Some(r) = ev
        .validators
        .get(&id)
        .and_then(|v| validator_may_charge(id, v, rec.line_id, rec.time))
    {
        return Some(r);
    }
    if !pass.in_window(rec.time, i64::from(ev.time_rules.clock_skew_secs)) {
        return Some(reject(
            Reject::RecordMismatch,
            "the record's time is outside the pass's window",
        ));
    }
    None
}

/// Verifies a wallet log entry's evidence (a self-reported NFC tap is charged only on a
/// challenge its registered validator signed); the certificate must belong to `device_id`.
pub fn check_entry(
    entry: &WalletLogEntry,
    device_id: DeviceId,
    cert: Option<&CertInfo>,
    ev: &Evidence<'_>,
) -> Check {
    if let Some(ci) = cert {
        if ci.device_id != device_id {
            return reject(
                Reject::ForeignCertificate,
                "the entry's certificate belongs to another device",
            );
        }
    }
    check_proof(&entry.proof, cert, None, ev)
}

/// The fare of one ride given the state so far, never more than its signed amount, and why it
/// is what it is. A ride whose line is unknown or not in the tariff costs its signed amount
/// (bounded by the daily cap) and is not a transfer origin.
pub fn rate(
    tariff: &Tariff,
    class: FareClass,
    line: Option<u32>,
    time: i64,
    authorized: i64,
    state: &RideState,
) -> (i64, FareKind, RideState) {
    if let Some(l) = line {
        if let Ok(q) = tariff.fare(class, l, time, state) {
            // never more than the phone signed (NFC: the authorized fare; QR: the maximum)
            let amount = q.amount.min(authorized.max(0));
            let mut next = q.next;
            next.spent_today = next
                .spent_today
                .saturating_sub(q.amount.saturating_sub(amount));
            return (amount, q.kind, next);
        }
    }
    let day = tariff.fare_day(time);
    let spent = if state.fare_day == day {
        state.spent_today
    } else {
        0
    };
    let cap = tariff
        .daily_caps
        .get(class.index())
        .copied()
        .unwrap_or(i64::MAX);
    let amount = authorized.min(cap.saturating_sub(spent).max(0)).max(0);
    let kind = if amount < authorized {
        FareKind::Capped
    } else {
        FareKind::Full
    };
    (
        amount,
        kind,
        RideState {
            fare_day: day,
            spent_today: spent.saturating_add(amount),
            last_ride: state.last_ride,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn running_total_over_the_allowance_is_fraud() {
        assert!(over_allowance_total(0, 0).is_none());
        assert!(over_allowance_total(500_000, 500_000).is_none());
        let (kind, detail) = over_allowance_total(520_000, 500_000).unwrap();
        assert_eq!(kind, FraudKind::OverAllowance);
        assert_eq!(
            detail,
            "authorized total 520000 exceeds the certificate's offline allowance 500000"
        );
        assert!(over_allowance_total(i64::MAX, 500_000).is_some());
    }
}
