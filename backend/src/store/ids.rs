//! How the id and digest types are stored: ids as integers, hashes and pseudonyms as blobs of
//! their exact length (a stored value of another length reads as an error, never truncated).

use super::db::{bad_value, FromValue, Row, ToValue, Value, ValueError};
use crate::error::StoreError;
use crate::ids::{AccountId, BatchId, CertHash, DeviceId, PseudonymBytes};

macro_rules! column {
    ($ty:ident, $inner:ty) => {
        impl ToValue for $ty {
            fn to_value(&self) -> Value<'_> {
                self.0.to_value()
            }
        }

        impl FromValue for $ty {
            fn from_value(v: Value<'_>) -> Result<Self, ValueError> {
                <$inner>::from_value(v).map($ty)
            }
        }
    };
}

column!(AccountId, i64);
column!(DeviceId, i64);
column!(CertHash, [u8; 32]);
column!(BatchId, [u8; 16]);
column!(PseudonymBytes, [u8; 16]);

/// Reads a fare class column (its `u8` code); an unknown code is a conversion error.
pub(super) fn fare_class(
    r: &Row<'_>,
    column: &str,
) -> Result<mancard_protocol::FareClass, StoreError> {
    let v: u8 = r.get(column)?;
    mancard_protocol::FareClass::from_u8(v).map_err(|e| bad_value(column, e))
}

/// Reads a text column naming an enum value; an unknown text is a conversion error.
pub(super) fn parsed<T>(
    r: &Row<'_>,
    column: &str,
    parse: fn(&str) -> Option<T>,
) -> Result<T, StoreError> {
    let text: String = r.get(column)?;
    parse(&text).ok_or_else(|| bad_value(column, format!("unknown {column} {text:?}")))
}
