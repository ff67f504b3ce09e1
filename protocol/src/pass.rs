//! The QR boarding pass: a short-lived tap-key signature the reader checks by time.

use crate::base45;
use crate::cert::CredentialCertificate;
use crate::codec::{DecodeError, Reader, Writer};
use crate::crypto::{tags, KeyError, Signature, SigningKey};

/// Text prefix: names the format and its version ("MC" + version + ':').
pub const PASS_TEXT_PREFIX: &str = "MC1:";

/// The fields the tap key signs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PassBody {
    pub certificate: CredentialCertificate,
    pub counter: u32,
    /// Wallet clock (corrected by the server offset), UTC seconds.
    pub issued_at: i64,
    /// Seconds the pass stays valid after `issued_at`.
    pub lifetime_secs: u16,
    /// The most the validator may charge for this ride (bounds the value of a copied pass).
    pub max_amount: i64,
}

/// A signed boarding pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoardingPass {
    pub body: PassBody,
    pub signature: Signature,
}

impl PassBody {
    fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(BoardingPass::LEN);
        w.header(BoardingPass::TAG, BoardingPass::VERSION);
        self.certificate.encode_into(&mut w);
        w.u32(self.counter)
            .i64(self.issued_at)
            .u16(self.lifetime_secs)
            .i64(self.max_amount);
        w.into_vec()
    }

    pub fn sign(self, tap_key: &SigningKey) -> Result<BoardingPass, KeyError> {
        let signature = tap_key.sign(tags::PASS, &self.encode())?;
        Ok(BoardingPass {
            body: self,
            signature,
        })
    }
}

impl BoardingPass {
    pub const TAG: u8 = b'P';
    pub const VERSION: u8 = 1;
    pub const LEN: usize = 2 + CredentialCertificate::LEN + 4 + 8 + 2 + 8 + 64;

    /// The bytes the signature covers (after the domain tag).
    pub fn signed_bytes(&self) -> Vec<u8> {
        self.body.encode()
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut v = self.body.encode();
        v.extend_from_slice(self.signature.as_bytes());
        v
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        r.header("boarding pass", Self::TAG, Self::VERSION)?;
        let certificate = CredentialCertificate::read(&mut r)?;
        let counter = r.u32()?;
        let issued_at = r.i64()?;
        let lifetime_secs = r.u16()?;
        if lifetime_secs == 0 {
            return Err(DecodeError::InvalidValue {
                field: "pass lifetime",
                reason: "must be at least one second",
            });
        }
        let max_amount = r.amount("pass maximum amount")?;
        let signature = Signature(r.array()?);
        r.finish()?;
        Ok(Self {
            body: PassBody {
                certificate,
                counter,
                issued_at,
                lifetime_secs,
                max_amount,
            },
            signature,
        })
    }

    /// The QR-text-safe form: `MC1:` followed by Base45 (RFC 9285), all in the QR alphanumeric set.
    pub fn to_text(&self) -> String {
        let mut s = String::from(PASS_TEXT_PREFIX);
        s.push_str(&base45::encode(&self.encode()));
        s
    }

    /// Parses the text form. Leading/trailing CR, LF and tab (as serial scanners append) are
    /// ignored; a space is a Base45 character, so it is not trimmed.
    pub fn from_text(text: &str) -> Result<Self, DecodeError> {
        let t = text.trim_matches(|c: char| c == '\r' || c == '\n' || c == '\t');
        let rest = t.strip_prefix("MC").ok_or(DecodeError::InvalidText {
            reason: "not a ManCard pass (missing MC prefix)",
        })?;
        let (ver, payload) = rest.split_once(':').ok_or(DecodeError::InvalidText {
            reason: "missing ':' after the format version",
        })?;
        match ver {
            "1" => Self::decode(&base45::decode(payload)?),
            v => match v.parse::<u8>() {
                Ok(found) if v.len() <= 3 && !v.starts_with('0') => {
                    Err(DecodeError::UnknownVersion {
                        message: "boarding pass text",
                        found,
                        supported: 1,
                    })
                }
                _ => Err(DecodeError::InvalidText {
                    reason: "the format version after MC must be a number like 1",
                }),
            },
        }
    }

    /// True if `now` is inside the pass window widened by `skew_secs` on both sides.
    pub fn in_window(&self, now: i64, skew_secs: i64) -> bool {
        let start = self.body.issued_at.saturating_sub(skew_secs);
        let end = self
            .body
            .issued_at
            .saturating_add(i64::from(self.body.lifetime_secs))
            .saturating_add(skew_secs);
        (start..=end).contains(&now)
    }
}
