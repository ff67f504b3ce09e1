//! How the id and digest types are stored: ids as INTEGER, hashes and pseudonyms as BLOBs of
//! their exact length (a stored value of another length reads as an error, never truncated).

use crate::ids::{AccountId, BatchId, CertHash, DeviceId, PseudonymBytes};
use rusqlite::types::{FromSql, FromSqlResult, ToSql, ToSqlOutput, ValueRef};

macro_rules! column {
    ($ty:ident, $inner:ty) => {
        impl ToSql for $ty {
            fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
                self.0.to_sql()
            }
        }

        impl FromSql for $ty {
            fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
                <$inner>::column_result(value).map($ty)
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
    r: &rusqlite::Row<'_>,
    column: &str,
) -> rusqlite::Result<mancard_protocol::FareClass> {
    let v: u8 = r.get(column)?;
    mancard_protocol::FareClass::from_u8(v).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Integer, Box::new(e))
    })
}

/// Reads a text column naming an enum value; an unknown text is a conversion error.
pub(super) fn parsed<T>(
    r: &rusqlite::Row<'_>,
    column: &str,
    parse: fn(&str) -> Option<T>,
) -> rusqlite::Result<T> {
    let text: String = r.get(column)?;
    parse(&text).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            0,
            rusqlite::types::Type::Text,
            format!("unknown {column} {text:?}").into(),
        )
    })
}
