//! What the validator decided and why, in words a rider can read on the display.

use mancard_l10n::{Arg, Lang};
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
    /// 6400: the phone's wallet is not open yet (the app is starting).
    PhoneNotReady,
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
            Self::PhoneNotReady => "phone_not_ready",
        }
    }

    /// The text for the validator's display, in English (the journal's `text` column and
    /// logs); [`Refusal::text`] in the rider's language.
    pub fn display_text(&self) -> String {
        self.text(Lang::En)
    }

    /// The rider's sentence in `lang`, from the message catalog (`refusal-<code>`).
    pub fn text(&self, lang: Lang) -> String {
        let (id, args) = self.message(lang);
        mancard_l10n::text(lang, &id, &args)
    }

    /// The catalog message id and its arguments.
    pub(crate) fn message(&self, lang: Lang) -> (String, Vec<(&'static str, Arg)>) {
        let args = match self {
            Self::LineNotInTariff(l) | Self::ValidatorLineNotAllowed(l) => {
                vec![("line", Arg::Int(i64::from(*l)))]
            }
            Self::InsufficientAllowance { fare, .. } => {
                vec![("fare", Arg::ValidatorAmount(*fare))]
            }
            Self::CardError(sw) => vec![
                ("sw", Arg::Text(format!("{:04X}", sw.code()))),
                (
                    "sw_text",
                    Arg::Text(mancard_l10n::text(lang, &format!("sw-{}", sw.name()), &[])),
                ),
            ],
            Self::PassTooLong { max, .. } => vec![("max", Arg::Int(i64::from(*max)))],
            _ => Vec::new(),
        };
        (format!("refusal-{}", self.code()), args)
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
            StatusWord::NotReady => Self::PhoneNotReady,
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

    /// The text for the validator's display in English, e.g.
    /// `OK - 20,000 rials (2,000 toman) (full fare)`; [`Decision::text`] in the rider's language.
    pub fn display_text(&self) -> String {
        self.text(Lang::En)
    }

    /// The validator's display in `lang`: `پذیرفته شد – ۲٬۰۰۰ تومان (کرایهٔ کامل)`.
    pub fn text(&self, lang: Lang) -> String {
        match self {
            Self::Accepted(a) => {
                let kind = match a.fare_kind {
                    FareKind::Full => "fare-kind-full",
                    FareKind::Transfer => "fare-kind-transfer",
                    FareKind::Capped => "fare-kind-capped",
                };
                let kind = ("kind", Arg::Text(mancard_l10n::text(lang, kind, &[])));
                if a.fare == 0 {
                    mancard_l10n::text(lang, "validator-accepted-free", &[kind])
                } else {
                    let fare = ("fare", Arg::ValidatorAmount(a.fare));
                    mancard_l10n::text(lang, "validator-accepted", &[fare, kind])
                }
            }
            Self::Refused(r) => mancard_l10n::text(
                lang,
                "validator-refused",
                &[("reason", Arg::Text(r.text(lang)))],
            ),
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
    // one list of every refusal, one line per variant
    #![allow(clippy::too_many_lines)]
    use super::*;

    /// One of every refusal. The match below stops compiling when a variant is added without
    /// being listed here, so that every reason is checked against every catalog.
    fn every_refusal() -> Vec<Refusal> {
        use Refusal as R;
        let all = vec![
            R::NotConfigured,
            R::LineNotInTariff(7),
            R::NoCredential,
            R::NotAManCard,
            R::WalletLocked,
            R::Expired { valid_until: 1 },
            R::NotYetValid { valid_from: 1 },
            R::CredentialNotValidOnPhone,
            R::Blocked,
            R::AlreadyUsed { counter: 3 },
            R::InsufficientAllowance {
                fare: 20_000,
                available: None,
            },
            R::CountersExhausted,
            R::CounterOutOfRange {
                counter: 9,
                first: 1,
                last: 5,
            },
            R::PhoneClockOff {
                issued_at: 1,
                now: 2,
            },
            R::UnknownIssuer(1),
            R::IssuerKeyNotValid(1),
            R::BadSignature,
            R::AmountMismatch {
                asked: 1,
                signed: 2,
            },
            R::ChallengeMismatch,
            R::PhoneStorageFailure,
            R::CardError(StatusWord::Other(0x6F01)),
            R::Malformed("x".into()),
            R::Communication("x".into()),
            R::NotAPass("x".into()),
            R::JournalFailure("x".into()),
            R::Internal("x".into()),
            R::NoValidatorCertificate,
            R::ValidatorBlocked,
            R::ValidatorCertificateNotValid {
                valid_from: 1,
                valid_until: 2,
            },
            R::ValidatorLineNotAllowed(4),
            R::NonCanonicalSignature,
            R::PassTooLong {
                lifetime: 900,
                max: 120,
            },
            R::FareClassMismatch,
            R::PhoneNeedsReaderCertificate,
            R::PhoneDistrustsReader,
            R::PhoneSaysReaderExpired,
            R::PhoneSaysReaderDenied,
            R::PhoneRejectedChallenge,
            R::PhoneClockMismatch,
            R::PhoneSaysFareTooHigh,
            R::PhoneTooManyTaps,
            R::PhoneSaysLineNotAllowed,
            R::PhoneSaysStaleChallenge,
            R::PhoneNotReady,
        ];
        for r in &all {
            match r {
                R::NotConfigured
                | R::LineNotInTariff(_)
                | R::NoCredential
                | R::NotAManCard
                | R::WalletLocked
                | R::Expired { .. }
                | R::NotYetValid { .. }
                | R::CredentialNotValidOnPhone
                | R::Blocked
                | R::AlreadyUsed { .. }
                | R::InsufficientAllowance { .. }
                | R::CountersExhausted
                | R::CounterOutOfRange { .. }
                | R::PhoneClockOff { .. }
                | R::UnknownIssuer(_)
                | R::IssuerKeyNotValid(_)
                | R::BadSignature
                | R::AmountMismatch { .. }
                | R::ChallengeMismatch
                | R::PhoneStorageFailure
                | R::CardError(_)
                | R::Malformed(_)
                | R::Communication(_)
                | R::NotAPass(_)
                | R::JournalFailure(_)
                | R::Internal(_)
                | R::NoValidatorCertificate
                | R::ValidatorBlocked
                | R::ValidatorCertificateNotValid { .. }
                | R::ValidatorLineNotAllowed(_)
                | R::NonCanonicalSignature
                | R::PassTooLong { .. }
                | R::FareClassMismatch
                | R::PhoneNeedsReaderCertificate
                | R::PhoneDistrustsReader
                | R::PhoneSaysReaderExpired
                | R::PhoneSaysReaderDenied
                | R::PhoneRejectedChallenge
                | R::PhoneClockMismatch
                | R::PhoneSaysFareTooHigh
                | R::PhoneTooManyTaps
                | R::PhoneSaysLineNotAllowed
                | R::PhoneSaysStaleChallenge
                | R::PhoneNotReady => {}
            }
        }
        all
    }

    #[test]
    fn every_refusal_code_has_text_in_every_catalog() {
        let all = every_refusal();
        let codes: std::collections::BTreeSet<_> = all.iter().map(Refusal::code).collect();
        assert_eq!(codes.len(), all.len(), "two refusals share a code");
        for lang in Lang::ALL {
            for r in &all {
                let (id, args) = r.message(lang);
                let text = mancard_l10n::text_checked(lang, &id, &args)
                    .unwrap_or_else(|e| panic!("{}: {e}", r.code()));
                assert!(!text.is_empty());
                assert_eq!(r.text(lang), text);
            }
        }
        // and every status word a card error can name
        for code in (0x6000..0x7000).chain(0x9000..0x9001) {
            let name = StatusWord::from_code(code).name();
            for lang in Lang::ALL {
                assert!(
                    mancard_l10n::has_message(lang, &format!("sw-{name}")),
                    "sw-{name} in {lang}"
                );
            }
        }
    }

    #[test]
    fn the_display_speaks_the_riders_language() {
        let accepted = Decision::Accepted(Acceptance {
            medium: Medium::Nfc,
            pseudonym: Pseudonym([7; 16]),
            counter: 1,
            fare: 20_000,
            fare_kind: FareKind::Full,
            base_fare: 20_000,
            journal_seq: 1,
        });
        assert_eq!(
            accepted.text(Lang::Fa),
            "پذیرفته شد – ۲٬۰۰۰ تومان (کرایهٔ کامل)"
        );
        assert_eq!(
            accepted.text(Lang::Azb),
            "قبول اولوندو – ۲٬۰۰۰ تومن (تام کیرایه)"
        );
        assert_eq!(
            accepted.text(Lang::En),
            "OK - 20,000 rials (2,000 toman) (full fare)"
        );
        let refused = Decision::Refused(Refusal::InsufficientAllowance {
            fare: 150_000,
            available: None,
        });
        assert_eq!(
            refused.text(Lang::Fa),
            "پذیرفته نشد: اعتبار آفلاین برای ۱۵٬۰۰۰ تومان کافی نیست – حساب را شارژ کنید یا به اینترنت وصل شوید"
        );
        let card_error = Refusal::CardError(StatusWord::Internal);
        assert_eq!(
            card_error.text(Lang::En),
            "Card error 6F00 (internal error) - tap again"
        );
        assert_eq!(
            card_error.text(Lang::Fa),
            "خطای کارت 6F00 (خطای داخلی) – دوباره بزنید"
        );
    }

    #[test]
    fn money_text() {
        assert_eq!(money(20_000), "20,000 rials (2,000 toman)");
        assert_eq!(money(0), "0 rials (0 toman)");
        assert_eq!(money(1_234_567), "1,234,567 rials (123,456 toman)");
        assert_eq!(money(500), "500 rials (50 toman)");
    }
}
