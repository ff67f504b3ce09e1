//! ISO/IEC 7816-4 short APDUs and the ManCard command set.
//!
//! | command            | CLA | INS | P1 | P2 | data              | response data          |
//! |--------------------|-----|-----|----|----|-------------------|------------------------|
//! | SELECT by AID      | 00  | A4  | 04 | 00 | [`MANCARD_AID`]   | [`SelectResponse`]     |
//! | READ CERTIFICATE   | 80  | 10  | 00 | 00 | —  (Le)           | certificate (184 B)    |
//! | AUTHORIZE TAP      | 80  | 20  | 00 | 00 | challenge (42 B)  | authorization (110 B)  |
//!
//! Extended-length APDUs are refused with 6700: not every phone or reader supports them.

use crate::codec::{inherent_codec, DecodeError, Message, Reader, Writer};
use thiserror::Error;

/// The ManCard application identifier: proprietary (F0 range) "F0 'MANCARD' 01".
pub const MANCARD_AID: [u8; 9] = [0xF0, b'M', b'A', b'N', b'C', b'A', b'R', b'D', 0x01];

pub const CLA_ISO: u8 = 0x00;
pub const CLA_PROPRIETARY: u8 = 0x80;
pub const INS_SELECT: u8 = 0xA4;
pub const INS_READ_CERTIFICATE: u8 = 0x10;
pub const INS_AUTHORIZE_TAP: u8 = 0x20;

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
    /// 6A88: referenced data not found: no credential installed.
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
            Self::Other(c) => c,
        }
    }

    pub fn from_code(c: u16) -> Self {
        const KNOWN: [StatusWord; 15] = [
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
            Self::NoCredential => "no credential on this phone",
            Self::CredentialNotValid => "credential not valid at this time",
            Self::CountersExhausted => "offline rides used up",
            Self::AllowanceExhausted => "offline allowance too low for this fare",
            Self::StorageFailure => "phone could not record the tap",
            Self::InsNotSupported => "instruction not supported",
            Self::ClaNotSupported => "class not supported",
            Self::Internal => "internal error",
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

    pub fn authorize_tap(challenge: &crate::tap::TapChallenge) -> Self {
        Self {
            cla: CLA_PROPRIETARY,
            ins: INS_AUTHORIZE_TAP,
            p1: 0,
            p2: 0,
            data: challenge.encode(),
            le: Some(256),
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

/// The data of a successful SELECT: protocol version and the hash of the installed
/// certificate, so a validator that has the certificate cached can skip READ CERTIFICATE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SelectResponse {
    pub cert_hash: Option<[u8; 32]>,
}

impl Message for SelectResponse {
    const NAME: &'static str = "select response";
    const TAG: u8 = b'S';
    const VERSION: u8 = 1;

    fn size_hint(&self) -> usize {
        35
    }

    fn write_body(&self, w: &mut Writer) {
        match &self.cert_hash {
            Some(h) => w.u8(1).bytes(h),
            None => w.u8(0),
        };
    }

    fn read_body(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let cert_hash = match r.u8()? {
            0 => None,
            1 => Some(r.array()?),
            _ => {
                return Err(DecodeError::InvalidValue {
                    field: "select response",
                    reason: "certificate flag must be 0 or 1",
                })
            }
        };
        Ok(Self { cert_hash })
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
