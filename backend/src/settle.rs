//! Settlement checks that need no database: the evidence of one tap is verified against the
//! certificate it names, in an order that never blames a rider for bytes they did not sign
//! (the tap-key signature is checked before anything that could open a fraud case), and the
//! fare rule applied over a rider's rides.
//!
//! These functions are pure and `Sync`, so a batch's taps are verified in parallel.

use crate::ids::{AccountId, CertHash, DeviceId, PseudonymBytes};
use mancard_api::FraudKind;
use mancard_protocol::{
    check_validity, CredentialCertificate, FareClass, RideState, TapProof, TapRecord, Tariff,
    WalletLogEntry,
};

/// An issued certificate with where it belongs.
#[derive(Debug, Clone)]
pub struct CertInfo {
    pub cert: CredentialCertificate,
    pub hash: CertHash,
    pub device_id: DeviceId,
    pub account_id: AccountId,
}

/// Tolerated difference between a validator record's time and the time in its signed challenge.
pub const RECORD_TIME_TOLERANCE_SECS: i64 = 300;

/// A tap whose evidence verified.
#[derive(Debug, Clone)]
pub struct CheckedTap {
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
    /// Canonical encoding of the signed evidence; two reports of one tap must match it.
    pub proof: Vec<u8>,
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
    /// The authorization does not answer its challenge.
    ChallengeMismatch,
    /// A pass carries another certificate than the one it names.
    CertificateMismatch,
    /// The tap's signed time is outside the certificate's validity.
    OutsideValidity,
    /// A validator record disagrees with its own signed evidence or batch.
    RecordMismatch,
    /// A wallet uploaded a tap under another device's certificate.
    ForeignCertificate,
}

impl Reject {
    /// The reason's wire text.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::UnknownCertificate => "unknown_certificate",
            Self::PseudonymMismatch => "pseudonym_mismatch",
            Self::BadSignature => "bad_signature",
            Self::ChallengeMismatch => "challenge_mismatch",
            Self::CertificateMismatch => "certificate_mismatch",
            Self::OutsideValidity => "outside_validity",
            Self::RecordMismatch => "record_mismatch",
            Self::ForeignCertificate => "foreign_certificate",
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

/// The canonical bytes of a proof (kind byte, then its messages).
pub fn proof_bytes(proof: &TapProof) -> Vec<u8> {
    let mut v = vec![proof.kind_byte()];
    match proof {
        TapProof::Nfc {
            challenge,
            authorization,
            cert_hash,
        } => {
            v.extend_from_slice(&challenge.encode());
            v.extend_from_slice(&authorization.encode());
            v.extend_from_slice(cert_hash);
        }
        TapProof::Qr { pass } => v.extend_from_slice(&pass.encode()),
    }
    v
}

/// The signed time, line (NFC only) and amount of a proof whose signature verifies under the
/// certificate's tap key; the rejection otherwise.
fn signed_terms(proof: &TapProof, ci: &CertInfo) -> Result<(i64, Option<u32>, i64), Check> {
    let tap_key = &ci.cert.body.tap_public_key;
    match proof {
        TapProof::Nfc {
            challenge,
            authorization,
            ..
        } => {
            if authorization.verify(tap_key).is_err() {
                return Err(reject(
                    Reject::BadSignature,
                    "the tap signature does not verify",
                ));
            }
            if authorization.digest != challenge.digest(&ci.hash.0)
                || authorization.amount != challenge.fare
            {
                return Err(reject(
                    Reject::ChallengeMismatch,
                    "the authorization does not answer the challenge",
                ));
            }
            Ok((
                challenge.validator_time,
                Some(challenge.line_id),
                authorization.amount,
            ))
        }
        TapProof::Qr { pass } => {
            if pass.body.certificate != ci.cert {
                return Err(reject(
                    Reject::CertificateMismatch,
                    "the pass carries another certificate",
                ));
            }
            if pass.verify(tap_key).is_err() {
                return Err(reject(
                    Reject::BadSignature,
                    "the pass signature does not verify",
                ));
            }
            Ok((pass.body.issued_at, None, pass.body.max_amount))
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

/// Verifies a proof against the certificate it names. `pseudonym` is the pseudonym the report
/// claims (validator record), if any.
pub fn check_proof(
    proof: &TapProof,
    cert: Option<&CertInfo>,
    pseudonym: Option<&[u8; 16]>,
) -> Check {
    let Some(ci) = cert else {
        return reject(
            Reject::UnknownCertificate,
            format!(
                "certificate {} was not issued here",
                hex::encode(proof.cert_hash())
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
    let (time, line_id, authorized) = match signed_terms(proof, ci) {
        Ok(t) => t,
        Err(rejected) => return rejected,
    };
    if let Err(e) = check_validity(&ci.cert, time) {
        return reject(Reject::OutsideValidity, e.to_string());
    }
    let counter = proof.counter();
    let a = &body.allowance;
    let fraud = limits_fraud(a, counter, authorized);
    Check::Ok(Box::new(CheckedTap {
        pseudonym: PseudonymBytes(body.pseudonym.0),
        counter,
        cert_hash: ci.hash,
        account_id: ci.account_id,
        device_id: ci.device_id,
        fare_class: body.fare_class,
        time,
        line_id,
        authorized,
        allowance: a.max_amount,
        proof: proof_bytes(proof),
        fraud,
    }))
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
pub fn check_record(rec: &TapRecord, batch_validator: u32, cert: Option<&CertInfo>) -> Check {
    if rec.validator_id != batch_validator {
        return reject(
            Reject::RecordMismatch,
            "the record names another validator than its batch",
        );
    }
    if let TapProof::Nfc { challenge, .. } = &rec.proof {
        if challenge.validator_id != rec.validator_id
            || challenge.line_id != rec.line_id
            || challenge.fare != rec.fare
            || challenge
                .validator_time
                .saturating_sub(rec.time)
                .saturating_abs()
                > RECORD_TIME_TOLERANCE_SECS
        {
            return reject(
                Reject::RecordMismatch,
                "the record's validator, line, fare or time disagree with the signed challenge",
            );
        }
    }
    match check_proof(&rec.proof, cert, Some(&rec.pseudonym.0)) {
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

/// Verifies a wallet log entry's evidence; the certificate must belong to `device_id`.
pub fn check_entry(entry: &WalletLogEntry, device_id: DeviceId, cert: Option<&CertInfo>) -> Check {
    if let Some(ci) = cert {
        if ci.device_id != device_id {
            return reject(
                Reject::ForeignCertificate,
                "the entry's certificate belongs to another device",
            );
        }
    }
    check_proof(&entry.proof, cert, None)
}

/// The fare of one ride given the state so far. A ride whose line is unknown or not in the
/// tariff costs its signed amount (bounded by the daily cap) and is not a transfer origin.
pub fn rate(
    tariff: &Tariff,
    class: FareClass,
    line: Option<u32>,
    time: i64,
    authorized: i64,
    state: &RideState,
) -> (i64, RideState) {
    if let Some(l) = line {
        if let Ok(q) = tariff.fare(class, l, time, state) {
            return (q.amount, q.next);
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
    (
        amount,
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
