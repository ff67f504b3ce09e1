//! ISO/IEC 7816-4 short APDUs and the ManCard command set.
//!
//! | command            | CLA | INS | P1 | P2 | data                                  | response data                         |
//! |--------------------|-----|-----|----|----|---------------------------------------|---------------------------------------|
//! | SELECT by AID      | 00  | A4  | 04 | 00 | [`MANCARD_AID`]                       | [`SelectResponse`] (18 B)             |
//! | AUTHORIZE TAP      | 80  | 20  | 01 | 00 | challenge (123 B) ‖ validator cert    | authorization (142 B) or certificate  |
//! | AUTHORIZE TAP      | 80  | 20  | 00 | 00 | challenge (123 B), cert cached by id  | authorization (142 B) or certificate  |
//! | AUTHORIZE TAP      | 80  | 20  | 02 | 00 | torn challenge ‖ validator cert       | the stored authorization, or 6A88     |
//! | READ CERTIFICATE   | 80  | 10  | 00 | 00 | —  (Le)                               | certificate (184 B)                   |
//!
//! SELECT reveals only the protocol version (its header) and a fresh random session value. The
//! phone answers AUTHORIZE TAP only for a challenge signed by a validator whose certificate it
//! has verified (sent inline, P1 = 01, or cached from an earlier tap, P1 = 00), and READ
//! CERTIFICATE only after such a challenge in the same session. When the challenge quotes
//! another fare class than the phone's, the phone signs its own class's fare of the line
//! ([`crate::verify::authorized_amount`]) if it is not above the fare asked; otherwise it answers
//! with its certificate instead of a signature, and the reader sends a new challenge for that
//! class ([`AuthorizeResponse`]).
//!
//! P1 = 02 (*recover*, [`AuthorizeP1::Recover`]) is a torn tap's retry: the reader repeats a
//! challenge whose answer it lost. The phone answers only the authorization it already signed
//! for exactly that challenge, or 6A88 (not signed here): it runs no other check, signs
//! nothing, and writes nothing.
//!
//! Extended-length APDUs are refused with 6700: not every phone or reader supports them.

use crate::cert::CredentialCertificate;
use crate::codec::{inherent_codec, DecodeError, Message, Reader, Writer};
use crate::tap::{TapAuthorization, TapChallenge};
use crate::validator_cert::ValidatorCertificate;
use thiserror::Error;

/// The ManCard application identifier: proprietary (F0 range) "F0 'MANCARD' 01".
pub const MANCARD_AID: [u8; 9] = [0xF0, b'M', b'A', b'N', b'C', b'A', b'R', b'D', 0x01];

pub const CLA_ISO: u8 = 0x00;
pub const CLA_PROPRIETARY: u8 = 0x80;
pub const INS_SELECT: u8 = 0xA4;
pub const INS_READ_CERTIFICATE: u8 = 0x10;
pub const INS_AUTHORIZE_TAP: u8 = 0x20;
/// AUTHORIZE TAP P1: the validator certificate follows the challenge.
pub const P1_WITH_CERTIFICATE: u8 = 0x01;
/// AUTHORIZE TAP P1: only the challenge; the phone has the validator's certificate cached.
pub const P1_CACHED_CERTIFICATE: u8 = 0x00;
/// AUTHORIZE TAP P1: recover a torn tap: the challenge (one the reader sent before and never
/// heard the answer to) and the validator certificate, as P1 01; the phone answers only an
/// authorization it already signed for exactly that challenge, else 6A88.
pub const P1_RECOVER: u8 = 0x02;

/// What an AUTHORIZE TAP asks, by its P1. Any other P1 is refused (6A86).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuthorizeP1 {
    /// P1 00: the challenge alone; the phone has the validator's certificate cached.
    Cached,
    /// P1 01: the challenge and the validator certificate.
    WithCertificate,
    /// P1 02: a torn tap's retry (the challenge and the validator certificate): answered only
    /// with the authorization already signed for exactly that challenge.
    Recover,
}

impl AuthorizeP1 {
    /// The P1 byte's meaning; None for any P1 but 00, 01 and 02.
    pub fn from_byte(p1: u8) -> Option<Self> {
        match p1 {
            P1_CACHED_CERTIFICATE => Some(Self::Cached),
            P1_WITH_CERTIFICATE => Some(Self::WithCertificate),
            P1_RECOVER => Some(Self::Recover),
            _ => None,
        }
    }

    pub fn byte(self) -> u8 {
        match self {
            Self::Cached => P1_CACHED_CERTIFICATE,
            Self::WithCertificate => P1_WITH_CERTIFICATE,
            Self::Recover => P1_RECOVER,
        }
    }

    /// Whether the validator certificate follows the challenge in the command data.
    pub fn carries_certificate(self) -> bool {
        !matches!(self, Self::Cached)
    }
}

/// Status words used by ManCard. Every response carries exactly one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StatusWord {
    /// 9000: success.
    Ok,
    /// 6700: wrong length (Lc/Le inconsistent, truncated, or extended length).
    WrongLength,
    /// 6A80: incorrect data in the command (malformed challenge).
    IncorrectData,
    /// 6A82: application not found (SELECT of another AID).
    AppNotFound,
    /// 6A86: incorrect P1/P2.
    WrongP1P2,
    /// 6982: security status not satisfied: the wallet is locked.
    WalletLocked,
    /// 6985: conditions of use not satisfied: command out of order (no SELECT first).
    ConditionsNotSatisfied,
    /// 6A88: referenced data not found: no credential installed; or, to AUTHORIZE TAP P1 02
    /// (recover), this phone signed no authorization for that challenge.
    NoCredential,
    /// 6984: the credential is not valid at the validator's time (expired, not yet valid, revoked).
    CredentialNotValid,
    /// 6A83: the certificate's counter range is used up.
    CountersExhausted,
    /// 6A84: the fare exceeds what is left of the offline allowance.
    AllowanceExhausted,
    /// 6581: memory failure: the wallet could not record the tap durably.
    StorageFailure,
    /// 6D00: instruction not supported.
    InsNotSupported,
    /// 6E00: class not supported.
    ClaNotSupported,
    /// 6F00: internal error, no precise diagnosis.
    Internal,
    /// 6986: AUTHORIZE TAP named a validator whose certificate the phone has not cached.
    ReaderCertificateRequired,
    /// 69C1: the validator certificate is not signed by a known, valid issuer key.
    ReaderUnknown,
    /// 69C2: the validator certificate is expired or not yet valid.
    ReaderExpired,
    /// 69C3: the validator is on the validator deny list.
    ReaderDenied,
    /// 69C4: the challenge's signature does not verify under the validator's key (or is not
    /// canonical), or the challenge names another validator than its certificate.
    BadChallengeSignature,
    /// 69C5: the validator's time is outside the window around the phone's clock.
    ReaderClockOff,
    /// 69C6: the fare is above the tariff's highest single fare for the rider's class.
    FareTooHigh,
    /// 69C7: more authorizations this minute than a rider can use.
    TooManyTaps,
    /// 69C8: the validator certificate does not cover the challenge's line.
    ReaderLineNotAllowed,
    /// 69C9: the challenge was made for another session (a replayed or relayed challenge).
    StaleChallenge,
    /// 6400: the wallet is not open yet (the app is starting): nothing was read or signed, tap
    /// again. Answered by the phone's card-emulation service, never by the wallet core.
    NotReady,
    /// Any other status word seen from a card.
    Other(u16),
}

impl StatusWord {
    pub fn code(self) -> u16 {
        match self {
            Self::Ok => 0x9000,
            Self::WrongLength => 0x6700,
            Self::IncorrectData => 0x6A80,
            Self::AppNotFound => 0x6A82,
            Self::WrongP1P2 => 0x6A86,
            Self::WalletLocked => 0x6982,
            Self::ConditionsNotSatisfied => 0x6985,
            Self::NoCredential => 0x6A88,
            Self::CredentialNotValid => 0x6984,
            Self::CountersExhausted => 0x6A83,
            Self::AllowanceExhausted => 0x6A84,
            Self::StorageFailure => 0x6581,
            Self::InsNotSupported => 0x6D00,
            Self::ClaNotSupported => 0x6E00,
            Self::Internal => 0x6F00,
            Self::ReaderCertificateRequired => 0x6986,
            Self::ReaderUnknown => 0x69C1,
            Self::ReaderExpired => 0x69C2,
            Self::ReaderDenied => 0x69C3,
            Self::BadChallengeSignature => 0x69C4,
            Self::ReaderClockOff => 0x69C5,
            Self::FareTooHigh => 0x69C6,
            Self::TooManyTaps => 0x69C7,
            Self::ReaderLineNotAllowed => 0x69C8,
            Self::StaleChallenge => 0x69C9,
            Self::NotReady => 0x6400,
            Self::Other(c) => c,
        }
    }

    pub fn from_code(c: u16) -> Self {
        const KNOWN: [StatusWord; 26] = [
            StatusWord::NotReady,
            StatusWord::ReaderCertificateRequired,
            StatusWord::ReaderUnknown,
            StatusWord::ReaderExpired,
            StatusWord::ReaderDenied,
            StatusWord::BadChallengeSignature,
            StatusWord::ReaderClockOff,
            StatusWord::FareTooHigh,
            StatusWord::TooManyTaps,
            StatusWord::ReaderLineNotAllowed,
            StatusWord::StaleChallenge,
            StatusWord::Ok,
            StatusWord::WrongLength,
            StatusWord::IncorrectData,
            StatusWord::AppNotFound,
            StatusWord::WrongP1P2,
            StatusWord::WalletLocked,
            StatusWord::ConditionsNotSatisfied,
            StatusWord::NoCredential,
            StatusWord::CredentialNotValid,
            StatusWord::CountersExhausted,
            StatusWord::AllowanceExhausted,
            StatusWord::StorageFailure,
            StatusWord::InsNotSupported,
            StatusWord::ClaNotSupported,
            StatusWord::Internal,
        ];
        KNOWN
            .into_iter()
            .find(|s| s.code() == c)
            .unwrap_or(Self::Other(c))
    }

    /// A stable snake-case name: the message catalogs' key (`sw-<name>`) for the rider's words.
    pub fn name(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::WrongLength => "wrong_length",
            Self::IncorrectData => "incorrect_data",
            Self::AppNotFound => "app_not_found",
            Self::WrongP1P2 => "wrong_p1p2",
            Self::WalletLocked => "wallet_locked",
            Self::ConditionsNotSatisfied => "conditions_not_satisfied",
            Self::NoCredential => "no_credential",
            Self::CredentialNotValid => "credential_not_valid",
            Self::CountersExhausted => "counters_exhausted",
            Self::AllowanceExhausted => "allowance_exhausted",
            Self::StorageFailure => "storage_failure",
            Self::InsNotSupported => "ins_not_supported",
            Self::ClaNotSupported => "cla_not_supported",
            Self::Internal => "internal",
            Self::ReaderCertificateRequired => "reader_certificate_required",
            Self::ReaderUnknown => "reader_unknown",
            Self::ReaderExpired => "reader_expired",
            Self::ReaderDenied => "reader_denied",
            Self::BadChallengeSignature => "bad_challenge_signature",
            Self::ReaderClockOff => "reader_clock_off",
            Self::FareTooHigh => "fare_too_high",
            Self::TooManyTaps => "too_many_taps",
            Self::ReaderLineNotAllowed => "reader_line_not_allowed",
            Self::StaleChallenge => "stale_challenge",
            Self::NotReady => "not_ready",
            Self::Other(_) => "other",
        }
    }

    /// A short human description (for validator displays and `mancard inspect`).
    pub fn describe(self) -> &'static str {
        match self {
            Self::Ok => "success",
            Self::WrongLength => "wrong length",
            Self::IncorrectData => "incorrect data",
            Self::AppNotFound => "application not found",
            Self::WrongP1P2 => "incorrect P1/P2",
            Self::WalletLocked => "wallet locked",
            Self::ConditionsNotSatisfied => "command out of order",
            Self::NoCredential => {
                "not found: no credential on this phone (to a recover: not signed here)"
            }
            Self::CredentialNotValid => "credential not valid at this time",
            Self::CountersExhausted => "offline rides used up",
            Self::AllowanceExhausted => "offline allowance too low for this fare",
            Self::StorageFailure => "phone could not record the tap",
            Self::InsNotSupported => "instruction not supported",
            Self::ClaNotSupported => "class not supported",
            Self::Internal => "internal error",
            Self::ReaderCertificateRequired => "phone needs the reader's certificate",
            Self::ReaderUnknown => "phone does not trust this reader",
            Self::ReaderExpired => "reader certificate expired",
            Self::ReaderDenied => "reader is blocked",
            Self::BadChallengeSignature => "reader's challenge signature is wrong",
            Self::ReaderClockOff => "reader clock is wrong",
            Self::FareTooHigh => "fare higher than any fare of the tariff",
            Self::TooManyTaps => "too many taps this minute",
            Self::ReaderLineNotAllowed => "reader not allowed on this line",
            Self::StaleChallenge => "challenge from another session",
            Self::NotReady => "wallet not open yet",
            Self::Other(_) => "unknown status",
        }
    }
}

/// Why bytes are not a short command APDU; maps to the status word to answer with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum ApduError {
    #[error("APDU shorter than its 4-byte header")]
    TooShort,
    #[error("extended-length APDUs are not supported")]
    ExtendedLength,
    #[error("Lc says {lc} data byte(s) but the APDU is {actual} byte(s) long")]
    LengthMismatch { lc: usize, actual: usize },
    #[error("command data longer than 255 bytes")]
    DataTooLong,
    #[error("Le must be 1..=256 in a short APDU")]
    LeOutOfRange,
    #[error("response shorter than its 2-byte status word")]
    ResponseTooShort,
}

impl ApduError {
    pub fn status(self) -> StatusWord {
        StatusWord::WrongLength
    }
}

/// A short command APDU (cases 1–4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandApdu {
    pub cla: u8,
    pub ins: u8,
    pub p1: u8,
    pub p2: u8,
    /// Command data (Lc bytes, 1–255; empty for cases 1 and 2).
    pub data: Vec<u8>,
    /// Expected response length 1–256 (Le byte 00 means 256), None when absent.
    pub le: Option<u16>,
}

impl CommandApdu {
    pub fn parse(b: &[u8]) -> Result<Self, ApduError> {
        let (header, body) = b.split_at_checked(4).ok_or(ApduError::TooShort)?;
        let [cla, ins, p1, p2] = <[u8; 4]>::try_from(header).map_err(|_| ApduError::TooShort)?;
        let le_of = |x: u8| if x == 0 { 256 } else { u16::from(x) };
        let (data, le) = match body {
            [] => (Vec::new(), None),
            [le] => (Vec::new(), Some(le_of(*le))),
            [0, ..] => return Err(ApduError::ExtendedLength),
            [lc, rest @ ..] => {
                let lc = usize::from(*lc);
                if rest.len() == lc {
                    (rest.to_vec(), None)
                } else if rest.len() == lc + 1 {
                    let (d, le) = rest.split_at(lc);
                    (d.to_vec(), le.first().map(|x| le_of(*x)))
                } else {
                    return Err(ApduError::LengthMismatch {
                        lc,
                        actual: b.len(),
                    });
                }
            }
        };
        Ok(Self {
            cla,
            ins,
            p1,
            p2,
            data,
            le,
        })
    }

    pub fn encode(&self) -> Result<Vec<u8>, ApduError> {
        let mut v = Vec::with_capacity(6 + self.data.len());
        v.extend_from_slice(&[self.cla, self.ins, self.p1, self.p2]);
        if !self.data.is_empty() {
            let lc = u8::try_from(self.data.len()).map_err(|_| ApduError::DataTooLong)?;
            v.push(lc);
            v.extend_from_slice(&self.data);
        }
        match self.le {
            None => {}
            Some(0) | Some(257..) => return Err(ApduError::LeOutOfRange),
            Some(256) => v.push(0),
            Some(le) => v.push(le as u8),
        }
        Ok(v)
    }

    pub fn select_mancard() -> Self {
        Self {
            cla: CLA_ISO,
            ins: INS_SELECT,
            p1: 0x04,
            p2: 0x00,
            data: MANCARD_AID.to_vec(),
            le: Some(256),
        }
    }

    pub fn read_certificate() -> Self {
        Self {
            cla: CLA_PROPRIETARY,
            ins: INS_READ_CERTIFICATE,
            p1: 0,
            p2: 0,
            data: Vec::new(),
            le: Some(256),
        }
    }

    /// AUTHORIZE TAP with the validator certificate inline (P1 = 01), or without it (P1 = 00)
    /// when `validator_cert` is None.
    pub fn authorize_tap(
        challenge: &TapChallenge,
        validator_cert: Option<&ValidatorCertificate>,
    ) -> Self {
        let mut data = challenge.encode();
        let p1 = match validator_cert {
            Some(c) => {
                data.extend_from_slice(&c.encode());
                P1_WITH_CERTIFICATE
            }
            None => P1_CACHED_CERTIFICATE,
        };
        Self {
            cla: CLA_PROPRIETARY,
            ins: INS_AUTHORIZE_TAP,
            p1,
            p2: 0,
            data,
            le: Some(256),
        }
    }

    /// AUTHORIZE TAP P1 = 02 (recover): a torn tap's challenge, repeated byte for byte, and the
    /// validator certificate (the data of P1 = 01).
    pub fn recover_tap(challenge: &TapChallenge, validator_cert: &ValidatorCertificate) -> Self {
        Self {
            p1: P1_RECOVER,
            ..Self::authorize_tap(challenge, Some(validator_cert))
        }
    }
}

/// A response APDU: data followed by a status word.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseApdu {
    pub data: Vec<u8>,
    pub sw: StatusWord,
}

impl ResponseApdu {
    pub fn ok(data: Vec<u8>) -> Self {
        Self {
            data,
            sw: StatusWord::Ok,
        }
    }

    pub fn status(sw: StatusWord) -> Self {
        Self {
            data: Vec::new(),
            sw,
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(self.data.len() + 2);
        v.extend_from_slice(&self.data);
        v.extend_from_slice(&self.sw.code().to_be_bytes());
        v
    }

    pub fn parse(b: &[u8]) -> Result<Self, ApduError> {
        let split = b.len().checked_sub(2).ok_or(ApduError::ResponseTooShort)?;
        let (data, sw) = b.split_at(split);
        let code = u16::from_be_bytes([
            sw.first().copied().unwrap_or(0),
            sw.get(1).copied().unwrap_or(0),
        ]);
        Ok(Self {
            data: data.to_vec(),
            sw: StatusWord::from_code(code),
        })
    }
}

/// The data of a successful SELECT: the protocol version (the message header) and a fresh
/// random session value that the reader's signed challenge must repeat. Nothing in it names the
/// phone, its certificate or its rider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SelectResponse {
    pub session: [u8; 16],
}

impl SelectResponse {
    pub const LEN: usize = 2 + 16;
}

impl Message for SelectResponse {
    const NAME: &'static str = "select response";
    const TAG: u8 = b'S';
    const VERSION: u8 = 2;

    fn size_hint(&self) -> usize {
        Self::LEN
    }

    fn write_body(&self, w: &mut Writer) {
        w.bytes(&self.session);
    }

    fn read_body(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            session: r.array()?,
        })
    }
}

/// The data of an AUTHORIZE TAP command: the signed challenge, then (P1 = 01 and 02) the
/// validator certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizeCommand {
    pub challenge: TapChallenge,
    pub validator_cert: Option<ValidatorCertificate>,
}

impl AuthorizeCommand {
    /// Parses the command data for P1 (00, 01 or 02; any other P1 is `InvalidValue`); trailing
    /// or missing bytes are refused.
    pub fn parse(p1: u8, data: &[u8]) -> Result<Self, DecodeError> {
        Self::parse_with_known(p1, data, |_| None)
    }

    /// [`Self::parse`] for a phone that may hold the inline certificate already: `known` is
    /// asked for the certificate it holds for the challenge's validator id, and when that
    /// certificate encodes to exactly the inline bytes it is taken as their decoding (a clone)
    /// instead of decoding them again, which would decompress the validator key (about a
    /// third of a P-256 signature's time). Otherwise the bytes are decoded as by `parse`: the
    /// answer, and every error, is the same. `known` must hold only certificates that were
    /// decoded (so that one decodes back to itself from its encoding).
    pub fn parse_with_known<'k>(
        p1: u8,
        data: &[u8],
        known: impl FnOnce(u32) -> Option<&'k ValidatorCertificate>,
    ) -> Result<Self, DecodeError> {
        let p1 = AuthorizeP1::from_byte(p1).ok_or(DecodeError::InvalidValue {
            field: "AUTHORIZE TAP P1",
            reason: "not 00, 01 or 02",
        })?;
        // A short input is decoded as a challenge anyway, so that its header speaks first: a
        // v1 reader's 42-byte challenge is an unknown version, not a truncated v2 one.
        let (ch, rest) = data
            .split_at_checked(TapChallenge::LEN)
            .unwrap_or((data, &[]));
        let challenge = TapChallenge::decode(ch)?;
        let validator_cert = if p1.carries_certificate() {
            match known(challenge.body.validator_id) {
                Some(c) if c.encode() == rest => Some(c.clone()),
                _ => Some(ValidatorCertificate::decode(rest)?),
            }
        } else if rest.is_empty() {
            None
        } else {
            return Err(DecodeError::TrailingBytes { count: rest.len() });
        };
        Ok(Self {
            challenge,
            validator_cert,
        })
    }
}

/// The data of a successful AUTHORIZE TAP: the authorization, or the phone's certificate when
/// the challenge quoted another fare class (the reader then sends a challenge for the class the
/// certificate names).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthorizeResponse {
    Authorized(TapAuthorization),
    Requote(CredentialCertificate),
}

impl AuthorizeResponse {
    pub fn encode(&self) -> Vec<u8> {
        match self {
            Self::Authorized(a) => a.encode(),
            Self::Requote(c) => c.encode(),
        }
    }

    /// Decodes either answer by its type tag.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        match bytes.first() {
            Some(&t) if t == <CredentialCertificate as Message>::TAG => {
                Ok(Self::Requote(CredentialCertificate::decode(bytes)?))
            }
            _ => Ok(Self::Authorized(TapAuthorization::decode(bytes)?)),
        }
    }
}

inherent_codec!(SelectResponse);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_cases() {
        let c1 = CommandApdu::parse(&[0x80, 0x10, 0, 0]).unwrap();
        assert_eq!((c1.data.len(), c1.le), (0, None));
        let c2 = CommandApdu::parse(&[0x80, 0x10, 0, 0, 0]).unwrap();
        assert_eq!(c2.le, Some(256));
        let c3 = CommandApdu::parse(&[0, 0xA4, 4, 0, 2, 0xF0, 1]).unwrap();
        assert_eq!((c3.data, c3.le), (vec![0xF0, 1], None));
        let c4 = CommandApdu::parse(&[0, 0xA4, 4, 0, 2, 0xF0, 1, 0x10]).unwrap();
        assert_eq!(c4.le, Some(16));
        assert_eq!(CommandApdu::parse(&[0, 0xA4, 4]), Err(ApduError::TooShort));
        assert_eq!(
            CommandApdu::parse(&[0, 0xA4, 4, 0, 0, 0, 1, 0xAA]),
            Err(ApduError::ExtendedLength)
        );
        assert!(matches!(
            CommandApdu::parse(&[0, 0xA4, 4, 0, 3, 1]),
            Err(ApduError::LengthMismatch { .. })
        ));
        let sel = CommandApdu::select_mancard();
        assert_eq!(CommandApdu::parse(&sel.encode().unwrap()).unwrap(), sel);
    }

    #[test]
    fn status_words_roundtrip() {
        for c in [0x9000u16, 0x6700, 0x6A82, 0x6A84, 0x6F00, 0x6283] {
            assert_eq!(StatusWord::from_code(c).code(), c);
        }
        let r = ResponseApdu::parse(&[1, 2, 0x90, 0x00]).unwrap();
        assert_eq!((r.data, r.sw), (vec![1, 2], StatusWord::Ok));
        assert!(ResponseApdu::parse(&[0x90]).is_err());
    }
}
