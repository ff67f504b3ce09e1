//! What the validator decided and why, in words a rider can read on the display.

use mancard_protocol::{FareKind, Pseudonym, StatusWord, VerifyError};
use std::fmt;
use std::time::Duration;

/// How the phone presented itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Medium {
    Nfc,
    Qr,
}

impl Medium {
    pub fn name(self) -> &'static str {
        match self {
            Self::Nfc => "nfc",
            Self::Qr => "qr",
        }
    }
}

/// An accepted ride: the gate opens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acceptance {
    pub medium: Medium,
    pub pseudonym: Pseudonym,
    pub counter: u32,
    /// Rials charged (may be 0 under the daily cap or for the free class).
    pub fare: i64,
    pub fare_kind: FareKind,
    /// The line's flat fare before transfer and cap.
    pub base_fare: i64,
    /// Journal sequence number of the tap.
    pub journal_seq: i64,
}

/// Why a ride was refused. Each attack or failure has its own reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The validator has no verified config bundle yet.
    NotConfigured,
    /// The validator's line is not in the tariff.
    LineNotInTariff(u32),
    /// The phone answered but has no ManCard credential (6A88 or an empty SELECT).
    NoCredential,
    /// The card in the field is not a ManCard (SELECT refused: 6A82).
    NotAManCard,
    /// The wallet app is locked (6982).
    WalletLocked,
    /// The certificate expired before the validator's time.
    Expired { valid_until: i64 },
    /// The certificate starts after the validator's time.
    NotYetValid { valid_from: i64 },
    /// The phone itself says its credential is not valid now (6984).
    CredentialNotValidOnPhone,
    /// The card is on the deny list (lost, stolen, fraud).
    Blocked,
    /// This (card, counter) was already used: a replayed answer or pass.
    AlreadyUsed { counter: u32 },
    /// The offline allowance cannot pay this fare (6A84, or fare above the certificate's maximum,
    /// or above the pass's maximum amount).
    InsufficientAllowance { fare: i64, available: Option<i64> },
    /// The certificate's counters are used up (6A83).
    CountersExhausted,
    /// The counter is outside the certificate's range.
    CounterOutOfRange { counter: u32, first: u32, last: u32 },
    /// QR pass outside its time window: the phone's clock is off (or the pass is old).
    PhoneClockOff { issued_at: i64, now: i64 },
    /// The certificate names an issuer key this validator does not know.
    UnknownIssuer(u32),
    /// The issuer key was not valid when the certificate starts.
    IssuerKeyNotValid(u32),
    /// A signature (issuer's or tap key's) does not verify.
    BadSignature,
    /// The phone's answer does not match the challenge (another challenge, certificate or amount).
    AmountMismatch { asked: i64, signed: i64 },
    /// The authorization answers another challenge or certificate.
    ChallengeMismatch,
    /// The phone could not record the tap (6581).
    PhoneStorageFailure,
    /// The phone answered with an unexpected status word.
    CardError(StatusWord),
    /// The phone's answer could not be decoded.
    Malformed(String),
    /// The phone left the field or the reader failed mid-tap.
    Communication(String),
    /// The QR text is not a ManCard pass.
    NotAPass(String),
    /// The validator could not write its journal: the gate must not open.
    JournalFailure(String),
    /// The validator's random generator failed.
    Internal(String),
}

impl Refusal {
    /// A stable short code for the journal and logs.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotConfigured => "not_configured",
            Self::LineNotInTariff(_) => "line_not_in_tariff",
            Self::NoCredential => "no_credential",
            Self::NotAManCard => "not_a_mancard",
            Self::WalletLocked => "wallet_locked",
            Self::Expired { .. } => "expired",
            Self::NotYetValid { .. } => "not_yet_valid",
            Self::CredentialNotValidOnPhone => "credential_not_valid",
            Self::Blocked => "blocked",
            Self::AlreadyUsed { .. } => "already_used",
            Self::InsufficientAllowance { .. } => "insufficient_allowance",
            Self::CountersExhausted => "counters_exhausted",
            Self::CounterOutOfRange { .. } => "counter_out_of_range",
            Self::PhoneClockOff { .. } => "phone_clock_off",
            Self::UnknownIssuer(_) => "unknown_issuer",
            Self::IssuerKeyNotValid(_) => "issuer_key_not_valid",
            Self::BadSignature => "bad_signature",
            Self::AmountMismatch { .. } => "amount_mismatch",
            Self::ChallengeMismatch => "challenge_mismatch",
            Self::PhoneStorageFailure => "phone_storage_failure",
            Self::CardError(_) => "card_error",
            Self::Malformed(_) => "malformed",
            Self::Communication(_) => "communication",
            Self::NotAPass(_) => "not_a_pass",
            Self::JournalFailure(_) => "journal_failure",
            Self::Internal(_) => "internal",
        }
    }

    /// The text for the validator's display.
    pub fn display_text(&self) -> String {
        match self {
            Self::NotConfigured => {
                "Validator not ready (no configuration) - please use another door".into()
            }
            Self::LineNotInTariff(l) => format!("Validator misconfigured (line {l} has no fare)"),
            Self::NoCredential => "No ManCard on this phone - open the app to get one".into(),
            Self::NotAManCard => "Not a ManCard - hold your ManCard phone to the reader".into(),
            Self::WalletLocked => "ManCard is locked - unlock your phone and tap again".into(),
            Self::Expired { .. } => "Card expired - open the app online to renew".into(),
            Self::NotYetValid { .. } => "Card not yet valid - check your phone's date".into(),
            Self::CredentialNotValidOnPhone => {
                "Card not valid now - open the app online to renew".into()
            }
            Self::Blocked => "Card blocked - contact ManCard support".into(),
            Self::AlreadyUsed { .. } => "Already used - this ride was already paid".into(),
            Self::InsufficientAllowance { fare, .. } => format!(
                "Insufficient offline balance for {} - top up or go online",
                money(*fare)
            ),
            Self::CountersExhausted => "Offline rides used up - open the app online".into(),
            Self::CounterOutOfRange { .. } => {
                "Card data invalid (counter) - open the app online".into()
            }
            Self::PhoneClockOff { .. } => {
                "QR code expired or phone clock is off - show a new code".into()
            }
            Self::UnknownIssuer(_) => "Card not recognised (unknown issuer)".into(),
            Self::IssuerKeyNotValid(_) => "Card not recognised (issuer key not valid)".into(),
            Self::BadSignature => "Card not recognised (bad signature)".into(),
            Self::AmountMismatch { .. } => "Fare not confirmed by the phone - tap again".into(),
            Self::ChallengeMismatch => "Answer not valid for this tap - tap again".into(),
            Self::PhoneStorageFailure => "Phone could not save the ride - tap again".into(),
            Self::CardError(sw) => format!(
                "Card error {:04X} ({}) - tap again",
                sw.code(),
                sw.describe()
            ),
            Self::Malformed(_) => "Unreadable answer from the phone - tap again".into(),
            Self::Communication(_) => "Tap too short - hold the phone still and tap again".into(),
            Self::NotAPass(_) => "Not a ManCard QR code".into(),
            Self::JournalFailure(_) => "Validator out of order - please use another door".into(),
            Self::Internal(_) => "Validator error - please tap again".into(),
        }
    }

    /// Maps a shared-verifier error to the rider's reason.
    pub fn from_verify(e: VerifyError) -> Self {
        match e {
            VerifyError::BadSignature => Self::BadSignature,
            VerifyError::UnknownIssuerKey(k) => Self::UnknownIssuer(k),
            VerifyError::IssuerKeyNotValid(k) => Self::IssuerKeyNotValid(k),
            VerifyError::Expired { valid_until, .. } => Self::Expired { valid_until },
            VerifyError::NotYetValid { valid_from, .. } => Self::NotYetValid { valid_from },
            VerifyError::CounterOutOfRange {
                counter,
                first,
                last,
            } => Self::CounterOutOfRange {
                counter,
                first,
                last,
            },
            VerifyError::AmountOverAllowance { amount, max } => Self::InsufficientAllowance {
                fare: amount,
                available: Some(max),
            },
            VerifyError::ChallengeMismatch => Self::ChallengeMismatch,
            VerifyError::DenyListed(_) => Self::Blocked,
            VerifyError::PassOutsideWindow { issued_at, now, .. } => {
                Self::PhoneClockOff { issued_at, now }
            }
            VerifyError::StaleBundle { .. } => Self::Internal(e.to_string()),
        }
    }

    /// Maps a phone's status word (not 9000) to the rider's reason.
    pub fn from_status(sw: StatusWord, fare: Option<i64>) -> Self {
        match sw {
            StatusWord::NoCredential => Self::NoCredential,
            StatusWord::AppNotFound => Self::NotAManCard,
            StatusWord::WalletLocked => Self::WalletLocked,
            StatusWord::CredentialNotValid => Self::CredentialNotValidOnPhone,
            StatusWord::CountersExhausted => Self::CountersExhausted,
            StatusWord::AllowanceExhausted => Self::InsufficientAllowance {
                fare: fare.unwrap_or(0),
                available: None,
            },
            StatusWord::StorageFailure => Self::PhoneStorageFailure,
            other => Self::CardError(other),
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.display_text())
    }
}

/// The validator's verdict on one presentation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Accepted(Acceptance),
    Refused(Refusal),
}

impl Decision {
    pub fn is_accepted(&self) -> bool {
        matches!(self, Self::Accepted(_))
    }

    pub fn refusal(&self) -> Option<&Refusal> {
        match self {
            Self::Refused(r) => Some(r),
            Self::Accepted(_) => None,
        }
    }

    pub fn acceptance(&self) -> Option<&Acceptance> {
        match self {
            Self::Accepted(a) => Some(a),
            Self::Refused(_) => None,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            Self::Accepted(_) => "accepted",
            Self::Refused(r) => r.code(),
        }
    }

    /// The text for the validator's display, e.g.
    /// `OK - 20,000 rials (2,000 toman), full fare`.
    pub fn display_text(&self) -> String {
        match self {
            Self::Accepted(a) => {
                let kind = match a.fare_kind {
                    FareKind::Full => "full fare",
                    FareKind::Transfer => "transfer",
                    FareKind::Capped => "daily cap reached",
                };
                if a.fare == 0 {
                    format!("OK - free ride ({kind})")
                } else {
                    format!("OK - {} ({kind})", money(a.fare))
                }
            }
            Self::Refused(r) => format!("REFUSED: {}", r.display_text()),
        }
    }
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.display_text())
    }
}

/// One decision with its context: when, how fast, how many APDUs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TapOutcome {
    pub decision: Decision,
    pub medium: Medium,
    /// Validator clock at the decision, UTC seconds.
    pub time: i64,
    /// From the first APDU (or the QR text) to the journaled decision.
    pub elapsed: Duration,
    /// Command/response pairs exchanged (0 for QR).
    pub apdus: u32,
    /// True when the certificate came from the cache (no READ CERTIFICATE, no issuer verify).
    pub cert_cached: bool,
}

/// `20,000 rials (2,000 toman)` (the protocol's one money formatter).
pub fn money(rials: i64) -> String {
    mancard_protocol::Rials(rials).to_string()
}

#[cfg(test)]
mod tests {
    use super::money;

    #[test]
    fn money_text() {
        assert_eq!(money(20_000), "20,000 rials (2,000 toman)");
        assert_eq!(money(0), "0 rials (0 toman)");
        assert_eq!(money(1_234_567), "1,234,567 rials (123,456 toman)");
        assert_eq!(money(500), "500 rials (50 toman)");
    }
}
