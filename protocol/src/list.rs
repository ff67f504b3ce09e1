//! Count-prefixed lists, written once.
//!
//! Every list on the wire is a count followed by its elements. The element type declares the
//! count's width, the most elements a decoder accepts, the field names its errors carry and
//! (through `prev` in [`ListElement::read_element`]) the order its elements must be in. The
//! signer refuses a list longer than the decoder accepts ([`check_count`]), so nothing signed
//! here can fail to decode.

use crate::codec::{DecodeError, Reader, Writer};
use crate::crypto::KeyError;

/// Width of a list's count prefix (big-endian).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CountWidth {
    U8,
    U16,
    U32,
}

impl CountWidth {
    /// Writes `n`, saturated to the width (a signer never gets here with more than the maximum).
    fn write(self, w: &mut Writer, n: usize) {
        match self {
            Self::U8 => w.u8(u8::try_from(n).unwrap_or(u8::MAX)),
            Self::U16 => w.u16(u16::try_from(n).unwrap_or(u16::MAX)),
            Self::U32 => w.u32(u32::try_from(n).unwrap_or(u32::MAX)),
        };
    }

    fn read(self, r: &mut Reader<'_>) -> Result<usize, DecodeError> {
        Ok(match self {
            Self::U8 => usize::from(r.u8()?),
            Self::U16 => usize::from(r.u16()?),
            Self::U32 => usize::try_from(r.u32()?).unwrap_or(usize::MAX),
        })
    }
}

/// An element of a count-prefixed list, with the list's framing declared once.
pub trait ListElement: Sized {
    /// Width of the count prefix.
    const COUNT_WIDTH: CountWidth;
    /// Most elements a decoder accepts (and a signer signs).
    const MAX: usize;
    /// Field named by [`DecodeError::LengthOutOfRange`] when a decoded count is refused.
    const COUNT_FIELD: &'static str;
    /// Field named by [`KeyError::MessageTooLarge`] when a list is too long to sign.
    const LIST_FIELD: &'static str;
    /// A lower bound on one element's encoded size (bounds what a forged count reserves).
    const MIN_LEN: usize;
    /// If true, a count whose elements cannot fit in the input left is refused before any
    /// element is read, and the error's maximum is what the input could hold. For long lists of
    /// fixed-size elements (the deny list), where a forged count must not cost a long read.
    const COUNT_BOUND_BY_INPUT: bool = false;

    /// Writes one element.
    fn write_element(&self, w: &mut Writer);

    /// Reads one element; `prev` is the element before it, for lists with an order.
    fn read_element(r: &mut Reader<'_>, prev: Option<&Self>) -> Result<Self, DecodeError>;
}

/// Writes `items` with their count prefix.
pub fn write_list<T: ListElement>(w: &mut Writer, items: &[T]) {
    T::COUNT_WIDTH.write(w, items.len());
    for item in items {
        item.write_element(w);
    }
}

/// Reads a count prefix and that many elements, refusing a count over the maximum.
pub fn read_list<T: ListElement>(r: &mut Reader<'_>) -> Result<Vec<T>, DecodeError> {
    let n = T::COUNT_WIDTH.read(r)?;
    let min_len = T::MIN_LEN.max(1);
    let room = r.remaining() / min_len;
    let max = if T::COUNT_BOUND_BY_INPUT {
        room.min(T::MAX)
    } else {
        T::MAX
    };
    if n > max {
        return Err(DecodeError::LengthOutOfRange {
            field: T::COUNT_FIELD,
            len: n,
            max,
        });
    }
    let mut items: Vec<T> = Vec::with_capacity(n.min(room.saturating_add(1)));
    for _ in 0..n {
        let item = T::read_element(r, items.last())?;
        items.push(item);
    }
    Ok(items)
}

/// Refuses to sign a list longer than its decoder accepts.
pub fn check_count<T: ListElement>(items: &[T]) -> Result<(), KeyError> {
    if items.len() > T::MAX {
        return Err(KeyError::MessageTooLarge {
            field: T::LIST_FIELD,
            len: items.len(),
            max: T::MAX,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq)]
    struct Id(u8);

    impl ListElement for Id {
        const COUNT_WIDTH: CountWidth = CountWidth::U16;
        const MAX: usize = 3;
        const COUNT_FIELD: &'static str = "id count";
        const LIST_FIELD: &'static str = "id list";
        const MIN_LEN: usize = 1;

        fn write_element(&self, w: &mut Writer) {
            w.u8(self.0);
        }

        fn read_element(r: &mut Reader<'_>, prev: Option<&Self>) -> Result<Self, DecodeError> {
            let id = Id(r.u8()?);
            if prev.is_some_and(|p| p.0 >= id.0) {
                return Err(DecodeError::InvalidValue {
                    field: "ids",
                    reason: "must increase",
                });
            }
            Ok(id)
        }
    }

    #[test]
    fn round_trip_bounds_and_order() {
        let mut w = Writer::default();
        write_list(&mut w, &[Id(1), Id(2)]);
        assert_eq!(w.as_slice(), &[0, 2, 1, 2]);
        let mut r = Reader::new(w.as_slice());
        assert_eq!(read_list::<Id>(&mut r).unwrap(), vec![Id(1), Id(2)]);

        let mut r = Reader::new(&[0, 4, 1, 2, 3, 4]);
        assert_eq!(
            read_list::<Id>(&mut r),
            Err(DecodeError::LengthOutOfRange {
                field: "id count",
                len: 4,
                max: 3
            })
        );
        let mut r = Reader::new(&[0, 2, 2, 2]);
        assert!(matches!(
            read_list::<Id>(&mut r),
            Err(DecodeError::InvalidValue { field: "ids", .. })
        ));
        assert!(check_count(&[Id(1), Id(2), Id(3)]).is_ok());
        assert_eq!(
            check_count(&[Id(1), Id(2), Id(3), Id(4)]),
            Err(KeyError::MessageTooLarge {
                field: "id list",
                len: 4,
                max: 3
            })
        );
    }
}
