//! Strict big-endian binary codec shared by every ManCard message.
//!
//! Every decoder built on [`Reader`] rejects truncation, trailing bytes, unknown
//! versions and out-of-range values with a typed [`DecodeError`]; nothing here can panic.
//! A top-level message implements [`Message`], which writes and checks the header and the
//! end of input for all of them.

use thiserror::Error;

/// Why a byte string is not a valid ManCard message.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DecodeError {
    #[error("message truncated: needed {needed} more byte(s) at offset {offset}")]
    Truncated { offset: usize, needed: usize },
    #[error("{count} unexpected trailing byte(s) after the message")]
    TrailingBytes { count: usize },
    #[error("wrong message type: expected {expected} (0x{expected_tag:02X}), found 0x{found:02X}")]
    WrongType {
        expected: &'static str,
        expected_tag: u8,
        found: u8,
    },
    #[error("unknown {message} version {found} (this code understands version {supported})")]
    UnknownVersion {
        message: &'static str,
        found: u8,
        supported: u8,
    },
    #[error("invalid {field}: {reason}")]
    InvalidValue {
        field: &'static str,
        reason: &'static str,
    },
    #[error("{field} is not a valid uncompressed P-256 public key")]
    InvalidPoint { field: &'static str },
    #[error("{field} length {len} is out of range (maximum {max})")]
    LengthOutOfRange {
        field: &'static str,
        len: usize,
        max: usize,
    },
    #[error("invalid text form: {reason}")]
    InvalidText { reason: &'static str },
}

/// Cursor over an input slice; every read is bounds-checked.
#[derive(Debug)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    pub fn position(&self) -> usize {
        self.pos
    }

    pub fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    /// The bytes consumed so far (used to recover the signed part of a message).
    pub fn consumed_since(&self, start: usize) -> &'a [u8] {
        self.buf.get(start..self.pos).unwrap_or(&[])
    }

    pub fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let end = self.pos.checked_add(n).ok_or(DecodeError::Truncated {
            offset: self.pos,
            needed: n,
        })?;
        match self.buf.get(self.pos..end) {
            Some(s) => {
                self.pos = end;
                Ok(s)
            }
            None => Err(DecodeError::Truncated {
                offset: self.pos,
                needed: end - self.buf.len().min(end),
            }),
        }
    }

    pub fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let s = self.take(N)?;
        let mut out = [0u8; N];
        out.copy_from_slice(s);
        Ok(out)
    }

    pub fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.array::<1>()?[0])
    }
    pub fn u16(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_be_bytes(self.array()?))
    }
    pub fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.array()?))
    }
    pub fn i32(&mut self) -> Result<i32, DecodeError> {
        Ok(i32::from_be_bytes(self.array()?))
    }
    pub fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_be_bytes(self.array()?))
    }
    pub fn i64(&mut self) -> Result<i64, DecodeError> {
        Ok(i64::from_be_bytes(self.array()?))
    }

    /// A money amount in rials: must be ≥ 0.
    pub fn amount(&mut self, field: &'static str) -> Result<i64, DecodeError> {
        let v = self.i64()?;
        if v < 0 {
            return Err(DecodeError::InvalidValue {
                field,
                reason: "amount is negative",
            });
        }
        Ok(v)
    }

    /// Reads the type tag and version byte that open every top-level message.
    pub fn header(
        &mut self,
        message: &'static str,
        tag: u8,
        version: u8,
    ) -> Result<(), DecodeError> {
        let found = self.u8()?;
        if found != tag {
            return Err(DecodeError::WrongType {
                expected: message,
                expected_tag: tag,
                found,
            });
        }
        let v = self.u8()?;
        if v != version {
            return Err(DecodeError::UnknownVersion {
                message,
                found: v,
                supported: version,
            });
        }
        Ok(())
    }

    /// Fails unless the whole input was consumed.
    pub fn finish(self) -> Result<(), DecodeError> {
        match self.remaining() {
            0 => Ok(()),
            count => Err(DecodeError::TrailingBytes { count }),
        }
    }
}

/// One top-level ManCard message: a type tag and a version byte, then its body.
///
/// The header, the whole-input decode and the trailing-byte check are written once, here; a
/// message only says how its body is written and read. Decoding refuses another tag
/// ([`DecodeError::WrongType`]), another version ([`DecodeError::UnknownVersion`]) and bytes
/// left over after the message ([`DecodeError::TrailingBytes`]).
pub trait Message: Sized {
    /// The message's name in decode errors ("certificate", "tap batch", …).
    const NAME: &'static str;
    /// The type tag, the first byte on the wire.
    const TAG: u8;
    /// The layout version this code reads and writes, the second byte on the wire.
    const VERSION: u8;

    /// Writes the fields after the header.
    fn write_body(&self, w: &mut Writer);

    /// Reads the fields after the header, checking each value.
    fn read_body(r: &mut Reader<'_>) -> Result<Self, DecodeError>;

    /// Bytes to reserve before encoding (a guess, not a limit).
    fn size_hint(&self) -> usize {
        64
    }

    /// Writes header and body (for a message nested in another).
    fn write(&self, w: &mut Writer) {
        w.header(Self::TAG, Self::VERSION);
        self.write_body(w);
    }

    /// Reads header and body (for a message nested in another).
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.header(Self::NAME, Self::TAG, Self::VERSION)?;
        Self::read_body(r)
    }

    /// The message on the wire.
    fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(self.size_hint());
        self.write(&mut w);
        w.into_vec()
    }

    /// Decodes exactly one message: all of `bytes` or an error.
    fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        decode_exact(bytes, Self::read)
    }
}

/// Gives message types inherent `encode`/`decode` that call [`Message`]'s, so callers need not
/// import the trait.
macro_rules! inherent_codec {
    ($($t:ty),+ $(,)?) => {$(
        impl $t {
            /// The message on the wire (see [`crate::codec::Message::encode`]).
            pub fn encode(&self) -> Vec<u8> {
                crate::codec::Message::encode(self)
            }

            /// Decodes exactly one message (see [`crate::codec::Message::decode`]).
            pub fn decode(bytes: &[u8]) -> Result<Self, crate::codec::DecodeError> {
                <Self as crate::codec::Message>::decode(bytes)
            }
        }
    )+};
}
pub(crate) use inherent_codec;

/// Decodes a whole message with `read`, rejecting trailing bytes.
pub fn decode_exact<T>(
    bytes: &[u8],
    read: impl FnOnce(&mut Reader<'_>) -> Result<T, DecodeError>,
) -> Result<T, DecodeError> {
    let mut r = Reader::new(bytes);
    let v = read(&mut r)?;
    r.finish()?;
    Ok(v)
}

/// Append-only big-endian writer.
#[derive(Debug, Default, Clone)]
pub struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    pub fn with_capacity(n: usize) -> Self {
        Self {
            buf: Vec::with_capacity(n),
        }
    }
    pub fn header(&mut self, tag: u8, version: u8) -> &mut Self {
        self.buf.push(tag);
        self.buf.push(version);
        self
    }
    pub fn u8(&mut self, v: u8) -> &mut Self {
        self.buf.push(v);
        self
    }
    pub fn u16(&mut self, v: u16) -> &mut Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }
    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }
    pub fn i32(&mut self, v: i32) -> &mut Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }
    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }
    pub fn i64(&mut self, v: i64) -> &mut Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }
    pub fn bytes(&mut self, v: &[u8]) -> &mut Self {
        self.buf.extend_from_slice(v);
        self
    }
    pub fn len(&self) -> usize {
        self.buf.len()
    }
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }
    pub fn as_slice(&self) -> &[u8] {
        &self.buf
    }
    pub fn into_vec(self) -> Vec<u8> {
        self.buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_and_trailing_are_typed() {
        let mut r = Reader::new(&[1, 2, 3]);
        assert_eq!(r.u16().unwrap(), 0x0102);
        assert!(matches!(
            r.u32(),
            Err(DecodeError::Truncated { offset: 2, .. })
        ));
        let r = Reader::new(&[1]);
        assert_eq!(r.finish(), Err(DecodeError::TrailingBytes { count: 1 }));
    }

    #[test]
    fn negative_amount_rejected() {
        let mut w = Writer::default();
        w.i64(-1);
        let v = w.into_vec();
        assert!(matches!(
            Reader::new(&v).amount("fare"),
            Err(DecodeError::InvalidValue { field: "fare", .. })
        ));
    }
}
