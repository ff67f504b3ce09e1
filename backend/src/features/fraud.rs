//! Fraud cases after they are opened (settlement and sync open them, on signed evidence only):
//! the evidence a case keeps, the freeze it puts on the account (no new certificates while a
//! case of any of its devices is open; top-ups are still credited), and the operator's
//! resolution — `confirmed` keeps the device revoked, `dismissed` lifts the revocation the case
//! caused; either unfreezes the account once no case of it is open.
//!
//! # The evidence encoding
//!
//! A case's evidence is one self-describing byte string, a [`CaseEvidence`] message in the
//! protocol's framing: tag `F` (0x46), version 1, a `u8` count (1..=[`MAX_PARTS`]), then each
//! part as a `u32` big-endian length and its bytes. A part is either a tap proof as settlement
//! stores it ([`crate::settle::proof_bytes`]: kind byte 1 = NFC, the challenge then the
//! authorization; 2 = QR, the pass) or a whole protocol message (e.g. the two wallet log
//! entries of a fork). `mancard inspect` decodes it and shows every part.

use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::ids::{AccountId, CertHash, DeviceId};
use crate::settle::decode_proof;
use crate::store::Reader;
use mancard_api::admin::{
    FraudCaseDetail, FraudResolution, FraudStatusFilter, ResolveFraudRequest, ResolveFraudResponse,
};
use mancard_api::FraudCase;
use mancard_protocol::codec::{Reader as Bytes, Writer as Out};
use mancard_protocol::inspect::{decode_bytes, Decoded};
use mancard_protocol::{CredentialCertificate, DecodeError, Message, TapProof};

/// The type tag of [`CaseEvidence`].
pub const EVIDENCE_TAG: u8 = b'F';
/// At most this many parts in one evidence string.
pub const MAX_PARTS: usize = 8;
/// At most this many bytes in one part.
pub const MAX_PART_LEN: usize = 64 * 1024;
/// An operator's name, at most this many bytes.
const MAX_OPERATOR_LEN: usize = 100;
/// A resolution note, at most this many bytes.
const MAX_NOTE_LEN: usize = 500;

/// The evidence of a fraud case: the signed messages that prove it (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseEvidence {
    pub parts: Vec<Vec<u8>>,
}

impl Message for CaseEvidence {
    const NAME: &'static str = "fraud case evidence";
    const TAG: u8 = EVIDENCE_TAG;
    const VERSION: u8 = 1;

    fn write_body(&self, w: &mut Out) {
        let parts: Vec<(u32, &Vec<u8>)> = self
            .parts
            .iter()
            .filter(|p| p.len() <= MAX_PART_LEN)
            .filter_map(|p| u32::try_from(p.len()).ok().map(|n| (n, p)))
            .take(MAX_PARTS)
            .collect();
        w.u8(u8::try_from(parts.len()).unwrap_or(0));
        for (len, p) in parts {
            w.u32(len);
            w.bytes(p);
        }
    }

    fn read_body(r: &mut Bytes<'_>) -> Result<Self, DecodeError> {
        let count = usize::from(r.u8()?);
        if count == 0 || count > MAX_PARTS {
            return Err(DecodeError::LengthOutOfRange {
                field: "evidence parts",
                len: count,
                max: MAX_PARTS,
            });
        }
        let mut parts = Vec::with_capacity(count);
        for _ in 0..count {
            let len = usize::try_from(r.u32()?).unwrap_or(usize::MAX);
            if len > MAX_PART_LEN {
                return Err(DecodeError::LengthOutOfRange {
                    field: "evidence part",
                    len,
                    max: MAX_PART_LEN,
                });
            }
            parts.push(r.take(len)?.to_vec());
        }
        Ok(Self { parts })
    }

    fn size_hint(&self) -> usize {
        self.parts.iter().map(|p| p.len() + 4).sum::<usize>() + 3
    }
}

/// The evidence bytes a case keeps: `parts` framed as one [`CaseEvidence`] (each part a stored
/// tap proof or an encoded protocol message; at most [`MAX_PARTS`] of at most
/// [`MAX_PART_LEN`] bytes are kept).
pub fn evidence_bytes(parts: &[&[u8]]) -> Vec<u8> {
    CaseEvidence {
        parts: parts.iter().map(|p| p.to_vec()).collect(),
    }
    .encode()
}

/// One part of the evidence, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EvidencePart {
    /// A tap proof as settlement stores it.
    Proof(Box<TapProof>),
    /// A signed protocol message (a wallet log entry, a tap record, …).
    Message(Box<Decoded>),
    /// Bytes that are neither (kept as they were received).
    Unreadable { len: usize, error: String },
}

impl EvidencePart {
    fn decode(bytes: &[u8]) -> Self {
        let unreadable = |error: String| Self::Unreadable {
            len: bytes.len(),
            error,
        };
        match bytes.first() {
            Some(1 | 2) => decode_proof(bytes).map_or_else(
                || unreadable("a tap proof that does not decode".into()),
                |p| Self::Proof(Box::new(p)),
            ),
            _ => match decode_bytes(bytes) {
                Ok(Decoded::Select(_) | Decoded::Command(_) | Decoded::Response(_)) => {
                    unreadable("not a signed protocol message".into())
                }
                Ok(d) => Self::Message(Box::new(d)),
                Err(e) => unreadable(e.to_string()),
            },
        }
    }

    /// The tap proof the part carries, if any.
    pub fn proof(&self) -> Option<&TapProof> {
        match self {
            Self::Proof(p) => Some(p.as_ref()),
            Self::Message(m) => match m.as_ref() {
                Decoded::LogEntry(e) => Some(&e.proof),
                Decoded::Record(r) => Some(&r.proof),
                _ => None,
            },
            Self::Unreadable { .. } => None,
        }
    }

    /// What the part is, in a few words.
    pub fn kind(&self) -> String {
        match self {
            Self::Proof(p) => match p.as_ref() {
                TapProof::Nfc { .. } => "tap proof (NFC)".into(),
                TapProof::Qr { .. } => "tap proof (QR pass)".into(),
            },
            Self::Message(m) => m.kind().into(),
            Self::Unreadable { error, .. } => format!("unreadable ({error})"),
        }
    }

    /// The part's fields, one per line, indented by `ind`.
    fn lines(&self, ind: &str, out: &mut Vec<String>) {
        let nested = |out: &mut Vec<String>, d: Decoded| {
            out.extend(d.describe().into_iter().map(|l| format!("{ind}{l}")));
        };
        match self {
            Self::Proof(p) => {
                out.push(format!("{ind}tap id: {}", hex::encode(p.id())));
                out.push(format!("{ind}certificate id: {}", hex::encode(p.cert_id())));
                match p.as_ref() {
                    TapProof::Nfc {
                        challenge,
                        authorization,
                    } => {
                        nested(out, Decoded::Challenge(challenge.clone()));
                        nested(out, Decoded::Authorization(authorization.clone()));
                    }
                    TapProof::Qr { pass } => nested(out, Decoded::Pass(pass.clone())),
                }
            }
            Self::Message(m) => nested(out, m.as_ref().clone()),
            Self::Unreadable { len, .. } => out.push(format!("{ind}{len} bytes")),
        }
    }
}

/// Decodes evidence bytes into its parts.
pub fn decode_evidence(bytes: &[u8]) -> Result<Vec<EvidencePart>, DecodeError> {
    let e = CaseEvidence::decode(bytes)?;
    Ok(e.parts.iter().map(|p| EvidencePart::decode(p)).collect())
}

/// Evidence bytes described, one field per line (what `mancard inspect` prints).
pub fn describe_evidence(bytes: &[u8]) -> Result<Vec<String>, DecodeError> {
    let parts = decode_evidence(bytes)?;
    let mut out = vec![format!("{}:", CaseEvidence::NAME)];
    out.push(format!("  parts: {}", parts.len()));
    for (i, p) in parts.iter().enumerate() {
        out.push(format!("  part {}: {}", i + 1, p.kind()));
        p.lines("    ", &mut out);
    }
    Ok(out)
}

fn check_resolution(req: &ResolveFraudRequest) -> Result<()> {
    let operator = req.operator.trim();
    if operator.is_empty() || operator.len() > MAX_OPERATOR_LEN {
        return Err(Error::InvalidResolution(
            "the operator's name is 1 to 100 bytes",
        ));
    }
    let note = req.note.trim();
    if note.is_empty() || note.len() > MAX_NOTE_LEN {
        return Err(Error::InvalidResolution("the note is 1 to 500 bytes"));
    }
    Ok(())
}

impl Engine {
    /// Whether the account is frozen: a fraud case of any of its devices is open. Issuance
    /// refuses new certificates while it is (403 `account_frozen`).
    pub fn account_frozen(&self, tx: &Reader<'_>, account: AccountId) -> Result<bool> {
        Ok(tx.account_has_open_case(account)?)
    }

    /// The fraud cases with a status, oldest first.
    pub fn list_fraud_cases(&self, filter: FraudStatusFilter) -> Result<Vec<FraudCase>> {
        Ok(self.store.read(|tx| tx.fraud_cases_with(filter))?)
    }

    /// One case with its evidence, hex and decoded (each tap signature checked against the
    /// certificate issued here that it names).
    pub fn fraud_case(&self, id: i64) -> Result<FraudCaseDetail> {
        self.store.read(|tx| {
            let case = tx.fraud_case(id)?.ok_or(Error::UnknownFraudCase(id))?;
            let evidence = tx.fraud_evidence(id)?.unwrap_or_default();
            let mut summary = if evidence.is_empty() {
                vec!["no evidence kept (the case was opened before evidence was kept)".into()]
            } else {
                describe_evidence(&evidence)
                    .unwrap_or_else(|e| vec![format!("the evidence does not decode: {e}")])
            };
            for (i, part) in decode_evidence(&evidence)
                .unwrap_or_default()
                .iter()
                .enumerate()
            {
                if let Some(p) = part.proof() {
                    summary.push(format!("part {}: {}", i + 1, signature_check(tx, p)?));
                }
            }
            Ok(FraudCaseDetail {
                case,
                evidence: hex::encode(&evidence),
                evidence_summary: summary,
            })
        })
    }

    /// Resolves a case (idempotent: the same resolution again changes nothing; another one is
    /// [`Error::FraudCaseResolved`]). `dismissed` lifts the device's revocation unless another
    /// case of the device is open or confirmed; the account is unfrozen once none is open.
    pub fn resolve_fraud(
        &self,
        id: i64,
        req: &ResolveFraudRequest,
    ) -> Result<ResolveFraudResponse> {
        check_resolution(req)?;
        let now = self.now();
        let resp = self.store.write(|tx| {
            let case = tx.fraud_case(id)?.ok_or(Error::UnknownFraudCase(id))?;
            let changed = match case.resolution {
                Some(r) if r == req.resolution => false,
                Some(r) => {
                    return Err(Error::FraudCaseResolved {
                        id,
                        resolution: r.as_str().to_string(),
                    })
                }
                None => {
                    let trimmed = ResolveFraudRequest {
                        resolution: req.resolution,
                        note: req.note.trim().to_string(),
                        operator: req.operator.trim().to_string(),
                    };
                    tx.resolve_fraud_case(id, &trimmed, now)?
                }
            };
            let device = DeviceId(case.device_id);
            if changed
                && req.resolution == FraudResolution::Dismissed
                && !tx.device_has_standing_case(device, id)?
                && tx.lift_fraud_revocation(device)?
            {
                // In this transaction: the next bundle no longer names the device.
                self.bundle_in(tx, now)?;
            }
            if changed {
                // the operator log, in the transaction that resolves the case
                let detail = format!(
                    "{} (device {}, account {}); note {:?}",
                    req.resolution.as_str(),
                    case.device_id,
                    case.account_id,
                    req.note.trim()
                );
                let target = format!("fraud case {id}");
                self.log_effect(tx, req.operator.trim(), "fraud.resolved", &target, &detail)?;
            }
            let case = tx.fraud_case(id)?.ok_or(Error::UnknownFraudCase(id))?;
            Ok::<_, Error>(ResolveFraudResponse {
                account_frozen: self.account_frozen(tx, AccountId(case.account_id))?,
                device_revoked: tx.revocation(device)?.is_some(),
                changed,
                case,
            })
        })?;
        if resp.changed {
            tracing::warn!(
                case = id,
                account_id = resp.case.account_id,
                device_id = resp.case.device_id,
                resolution = req.resolution.as_str(),
                operator = req.operator.trim(),
                account_frozen = resp.account_frozen,
                device_revoked = resp.device_revoked,
                "fraud case resolved"
            );
        }
        Ok(resp)
    }
}

/// Whether a proof's tap signature verifies under the certificate it names, if issued here.
fn signature_check(tx: &Reader<'_>, p: &TapProof) -> Result<String> {
    let id = p.cert_id();
    let Some(row) = tx.certificate(&CertHash(id))? else {
        return Ok(format!(
            "certificate {} was not issued here",
            hex::encode(id)
        ));
    };
    let Ok(cert) = CredentialCertificate::decode(&row.encoded) else {
        return Ok("the stored certificate does not decode".into());
    };
    Ok(match p.verify_phone_signature(&cert.body.tap_public_key) {
        Ok(()) => format!(
            "tap signature (counter {}) verifies under certificate {}",
            p.counter(),
            hex::encode(id)
        ),
        Err(e) => format!(
            "tap signature (counter {}) does NOT verify under certificate {}: {e}",
            p.counter(),
            hex::encode(id)
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evidence_round_trips_and_refuses_what_is_not_evidence() {
        let bytes = evidence_bytes(&[b"\x01abc", b"L\x02"]);
        assert_eq!(bytes[..3], [b'F', 1, 2]);
        let back = CaseEvidence::decode(&bytes).unwrap();
        assert_eq!(back.parts, [b"\x01abc".to_vec(), b"L\x02".to_vec()]);
        // both parts are kept as received, and shown as unreadable
        let parts = decode_evidence(&bytes).unwrap();
        assert!(matches!(parts[0], EvidencePart::Unreadable { len: 4, .. }));
        assert!(parts.iter().all(|p| p.proof().is_none()));

        let mut trailing = bytes.clone();
        trailing.push(0);
        assert_eq!(
            CaseEvidence::decode(&trailing),
            Err(DecodeError::TrailingBytes { count: 1 })
        );
        assert!(matches!(
            CaseEvidence::decode(&bytes[..bytes.len() - 1]),
            Err(DecodeError::Truncated { .. })
        ));
        assert!(matches!(
            CaseEvidence::decode(&[b'F', 1, 0]),
            Err(DecodeError::LengthOutOfRange { len: 0, .. })
        ));
        assert!(matches!(
            CaseEvidence::decode(&[b'F', 2, 1, 0, 0, 0, 0]),
            Err(DecodeError::UnknownVersion { found: 2, .. })
        ));
        let huge = [b'F', 1, 1, 0, 1, 0, 1];
        assert!(matches!(
            CaseEvidence::decode(&huge),
            Err(DecodeError::LengthOutOfRange { len: 65_537, .. })
        ));
    }

    #[test]
    fn at_most_eight_parts_are_kept() {
        let part: &[u8] = b"x";
        let bytes = evidence_bytes(&[part; 10]);
        assert_eq!(CaseEvidence::decode(&bytes).unwrap().parts.len(), MAX_PARTS);
    }
}
