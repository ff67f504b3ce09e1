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
    /// This validator has no validator certificate: phones answer no unauthenticated reader.
    NoValidatorCertificate,
    /// The installed config bundle lists this validator on the validator deny list.
    ValidatorBlocked,
    /// This validator's certificate is not valid at its clock (expired, or the clock is off).
    ValidatorCertificateNotValid { valid_from: u32, valid_until: u32 },
    /// This validator's certificate does not cover the line it serves.
    ValidatorLineNotAllowed(u32),
    /// A high-S signature: a modified copy of a valid signature (a photographed pass or a
    /// replayed answer with its s flipped).
    NonCanonicalSignature,
    /// A QR pass whose lifetime is longer than the config bundle allows.
    PassTooLong { lifetime: u16, max: u16 },
    /// The phone signed for another fare class than the challenge quoted.
    FareClassMismatch,
    /// 6986: the phone needs this validator's certificate (it was not sent inline).
    PhoneNeedsReaderCertificate,
    /// 69C1: the phone does not trust this validator's certificate (unknown issuer key).
    PhoneDistrustsReader,
    /// 69C2: the phone says this validator's certificate is expired or not yet valid.
    PhoneSaysReaderExpired,
    /// 69C3: the phone has this validator on its validator deny list.
    PhoneSaysReaderDenied,
    /// 69C4: the phone refused the challenge's signature.
    PhoneRejectedChallenge,
    /// 69C5: the validator's time is outside the phone's window.
    PhoneClockMismatch,
    /// 69C6: the fare is above the tariff's highest single fare for the rider's class.
    PhoneSaysFareTooHigh,
    /// 69C7: the phone answered too many taps this minute.
    PhoneTooManyTaps,
    /// 69C8: the phone says this validator may not charge on this line.
    PhoneSaysLineNotAllowed,
    /// 69C9: the phone says the challenge was made for another session.
    PhoneSaysStaleChallenge,
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
            Self::NoValidatorCertificate => "no_validator_certificate",
            Self::ValidatorBlocked => "validator_blocked",
            Self::ValidatorCertificateNotValid { .. } => "validator_certificate_not_valid",
            Self::ValidatorLineNotAllowed(_) => "validator_line_not_allowed",
            Self::NonCanonicalSignature => "non_canonical_signature",
            Self::PassTooLong { .. } => "pass_too_long",
            Self::FareClassMismatch => "fare_class_mismatch",
            Self::PhoneNeedsReaderCertificate => "reader_certificate_required",
            Self::PhoneDistrustsReader => "reader_unknown",
            Self::PhoneSaysReaderExpired => "reader_expired",
            Self::PhoneSaysReaderDenied => "reader_denied",
            Self::PhoneRejectedChallenge => "bad_challenge_signature",
            Self::PhoneClockMismatch => "reader_clock_off",
            Self::PhoneSaysFareTooHigh => "fare_too_high",
            Self::PhoneTooManyTaps => "too_many_taps",
            Self::PhoneSaysLineNotAllowed => "reader_line_not_allowed",
            Self::PhoneSaysStaleChallenge => "stale_challenge",
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
            _ => self.v2_display_text(),
        }
    }

    /// The display text of the protocol v2 reasons (reader authentication, bounded passes).
    fn v2_display_text(&self) -> String {
        match self {
            Self::NoValidatorCertificate => {
                "Validator not ready (no validator certificate installed) - please use another door"
                    .into()
            }
            Self::ValidatorBlocked => "This validator is blocked - please use another door".into(),
            Self::ValidatorCertificateNotValid { .. } => {
                "Validator certificate expired or validator clock wrong - please use another door"
                    .into()
            }
            Self::ValidatorLineNotAllowed(l) => {
                format!("Validator not allowed on line {l} - please use another door")
            }
            Self::NonCanonicalSignature => {
                "Card not recognised (modified signature) - show a new code or tap your phone"
                    .into()
            }
            Self::PassTooLong { max, .. } => {
                format!("QR code valid for too long (at most {max} s allowed) - show a new code")
            }
            Self::FareClassMismatch => "Fare class not confirmed by the phone - tap again".into(),
            Self::PhoneNeedsReaderCertificate => {
                "Phone needs the validator's certificate - tap again".into()
            }
            Self::PhoneDistrustsReader => {
                "Phone does not trust this validator - open the app online, or use another door"
                    .into()
            }
            Self::PhoneSaysReaderExpired => {
                "Phone says this validator's certificate expired - please use another door".into()
            }
            Self::PhoneSaysReaderDenied => {
                "Phone says this validator is blocked - please use another door".into()
            }
            Self::PhoneRejectedChallenge => {
                "Phone refused the validator's signature - please use another door".into()
            }
            Self::PhoneClockMismatch => {
                "Phone and validator clocks disagree - check your phone's date and time".into()
            }
            Self::PhoneSaysFareTooHigh => {
                "Phone refused: fare higher than the tariff allows - please use another door".into()
            }
            Self::PhoneTooManyTaps => {
                "Too many taps this minute - wait a minute and tap again".into()
            }
            Self::PhoneSaysLineNotAllowed => {
                "Phone says this validator may not charge on this line - use another door".into()
            }
            Self::PhoneSaysStaleChallenge => "Tap interrupted (old challenge) - tap again".into(),
            other => format!("Refused ({})", other.code()),
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
            VerifyError::NonCanonicalSignature => Self::NonCanonicalSignature,
            VerifyError::PassTooLong { lifetime, max } => Self::PassTooLong { lifetime, max },
            VerifyError::ValidatorDenied(_) => Self::ValidatorBlocked,
            VerifyError::ValidatorCertNotValid {
                valid_from,
                valid_until,
                ..
            } => Self::ValidatorCertificateNotValid {
                valid_from,
                valid_until,
            },
            VerifyError::LineNotAllowed { line_id, .. } => Self::ValidatorLineNotAllowed(line_id),
            VerifyError::FareClassMismatch { .. } => Self::FareClassMismatch,
            VerifyError::StaleBundle { .. } | VerifyError::WrongValidator { .. } => {
                Self::Internal(e.to_string())
            }
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
            StatusWord::ReaderCertificateRequired => Self::PhoneNeedsReaderCertificate,
            StatusWord::ReaderUnknown => Self::PhoneDistrustsReader,
            StatusWord::ReaderExpired => Self::PhoneSaysReaderExpired,
            StatusWord::ReaderDenied => Self::PhoneSaysReaderDenied,
            StatusWord::BadChallengeSignature => Self::PhoneRejectedChallenge,
            StatusWord::ReaderClockOff => Self::PhoneClockMismatch,
            StatusWord::FareTooHigh => Self::PhoneSaysFareTooHigh,
            StatusWord::TooManyTaps => Self::PhoneTooManyTaps,
            StatusWord::ReaderLineNotAllowed => Self::PhoneSaysLineNotAllowed,
            StatusWord::StaleChallenge => Self::PhoneSaysStaleChallenge,
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
    /// Command/response pairs exchanged (0 for QR): 2 for a cached adult card (SELECT,
    /// AUTHORIZE TAP), 3 at first sight (READ CERTIFICATE) or for another fare class (a second
    /// AUTHORIZE TAP quoted for the class the phone's certificate names).
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
