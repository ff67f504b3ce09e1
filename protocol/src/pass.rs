//! The QR boarding pass: a short-lived tap-key signature the reader checks by time.

use crate::base45;
use crate::cert::CredentialCertificate;
use crate::codec::{DecodeError, Message, Reader, Writer};
use crate::crypto::{tags, KeyError, SigningKey};
use crate::signed::{Signed, SignedBody};
use crate::tariff::FareClass;

/// Text prefix: names the format and its version ("MC" + version + ':').
pub const PASS_TEXT_PREFIX: &str = "MC2:";

/// The fields the tap key signs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PassBody {
    pub certificate: CredentialCertificate,
    pub counter: u32,
    /// Wallet clock (corrected by the server offset), UTC seconds.
    pub issued_at: i64,
    /// Seconds the pass stays valid after `issued_at`; verifiers refuse more than the signed
    /// config bundle's maximum.
    pub lifetime_secs: u16,
    /// The rider's fare class (the certificate's), repeated so a reader can show it at a glance.
    pub fare_class: FareClass,
    /// The most the validator may charge for this ride (bounds the value of a copied pass).
    pub max_amount: i64,
    /// The id of the wallet's previous signed tap or pass under this certificate, or the
    /// certificate's chain start (see [`crate::log`]).
    pub prev: [u8; 32],
}

/// A signed boarding pass.
pub type BoardingPass = Signed<PassBody>;

impl PassBody {
    pub fn sign(self, tap_key: &SigningKey) -> Result<BoardingPass, KeyError> {
        Signed::sign(self, tap_key)
    }
}

impl Message for PassBody {
    const NAME: &'static str = "boarding pass";
    const TAG: u8 = b'P';
    const VERSION: u8 = 2;

    fn size_hint(&self) -> usize {
        BoardingPass::LEN
    }

    fn write_body(&self, w: &mut Writer) {
        self.certificate.write(w);
        w.u32(self.counter)
            .i64(self.issued_at)
            .u16(self.lifetime_secs)
            .u8(self.fare_class as u8)
            .i64(self.max_amount)
            .bytes(&self.prev);
    }

    fn read_body(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let certificate = CredentialCertificate::read(r)?;
        let counter = r.u32()?;
        let issued_at = r.i64()?;
        let lifetime_secs = r.u16()?;
        if lifetime_secs == 0 {
            return Err(DecodeError::InvalidValue {
                field: "pass lifetime",
                reason: "must be at least one second",
            });
        }
        let fare_class = FareClass::from_u8(r.u8()?)?;
        if fare_class != certificate.body.fare_class {
            return Err(DecodeError::InvalidValue {
                field: "pass fare class",
                reason: "differs from the certificate's fare class",
            });
        }
        let max_amount = r.amount("pass maximum amount")?;
        Ok(Self {
            certificate,
            counter,
            issued_at,
            lifetime_secs,
            fare_class,
            max_amount,
            prev: r.array()?,
        })
    }
}

impl SignedBody for PassBody {
    const DOMAIN: &'static [u8] = tags::PASS;
}

impl Signed<PassBody> {
    pub const LEN: usize = 2 + CredentialCertificate::LEN + 4 + 8 + 2 + 1 + 8 + 32 + 64;

    /// The QR-text-safe form: `MC2:` followed by Base45 (RFC 9285), all in the QR alphanumeric set.
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
            "2" => Self::decode(&base45::decode(payload)?),
            v => match v.parse::<u8>() {
                Ok(found) if v.len() <= 3 && !v.starts_with('0') => {
                    Err(DecodeError::UnknownVersion {
                        message: "boarding pass text",
                        found,
                        supported: 2,
                    })
                }
                _ => Err(DecodeError::InvalidText {
                    reason: "the format version after MC must be a number like 2",
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
