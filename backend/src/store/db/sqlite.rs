//! [`Conn::Sqlite`](super::Conn): rusqlite under the adapter. Statements are prepared through
//! the connection's statement cache, parameters bound by name, columns read by name; every
//! rusqlite error becomes `StoreError::Sqlite`, as before the adapter.

use super::{FromValue, Params, Row, RowInner, Value};
use crate::error::StoreError;
use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{Connection, ToSql};

impl ToSql for Value<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(match *self {
            Value::Null => ValueRef::Null,
            Value::Int(i) => ValueRef::Integer(i),
            Value::Text(s) => ValueRef::Text(s.as_bytes()),
            Value::Blob(b) => ValueRef::Blob(b),
            Value::Bool(b) => ValueRef::Integer(i64::from(b)),
            // SQLite has no array type: a statement written for PostgreSQL's
            Value::Ints(_) | Value::Blobs(_) | Value::Texts(_) => {
                return Err(rusqlite::Error::ToSqlConversionFailure(Box::new(
                    super::ValueError("SQLite binds no arrays (a PostgreSQL statement)".into()),
                )))
            }
        }))
    }
}

/// The parameters as rusqlite binds them by name.
fn bound<'p>(params: Params<'p, '_>) -> Vec<(&'p str, &'p dyn ToSql)> {
    params
        .iter()
        .map(|(name, v)| (*name, v as &dyn ToSql))
        .collect()
}

/// Reads column `name` of a row as a `T`.
pub(super) fn get<T: FromValue>(r: &rusqlite::Row<'_>, name: &str) -> Result<T, StoreError> {
    let idx = r.as_ref().column_index(name)?;
    let raw = r.get_ref(idx)?;
    let conversion = |e: Box<dyn std::error::Error + Send + Sync>| {
        StoreError::from(rusqlite::Error::FromSqlConversionFailure(
            idx,
            raw.data_type(),
            e,
        ))
    };
    let v = match raw {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => Value::Int(i),
        ValueRef::Real(_) => {
            return Err(
                rusqlite::Error::InvalidColumnType(idx, name.into(), raw.data_type()).into(),
            )
        }
        ValueRef::Text(t) => Value::Text(std::str::from_utf8(t).map_err(|e| conversion(e.into()))?),
        ValueRef::Blob(b) => Value::Blob(b),
    };
    T::from_value(v).map_err(|e| conversion(e.into()))
}

fn row<'a>(r: &'a rusqlite::Row<'a>) -> Row<'a> {
    Row {
        inner: RowInner::Sqlite(r),
    }
}

pub(super) fn query_opt<T>(
    c: &Connection,
    sql: &str,
    params: Params<'_, '_>,
    f: impl FnOnce(&Row<'_>) -> Result<T, StoreError>,
) -> Result<Option<T>, StoreError> {
    let mut st = c.prepare_cached(sql)?;
    let mut rows = st.query(&bound(params)[..])?;
    match rows.next()? {
        Some(r) => f(&row(r)).map(Some),
        None => Ok(None),
    }
}

pub(super) fn query_one<T>(
    c: &Connection,
    sql: &str,
    params: Params<'_, '_>,
    f: impl FnOnce(&Row<'_>) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    query_opt(c, sql, params, f)?.ok_or(StoreError::Sqlite(rusqlite::Error::QueryReturnedNoRows))
}

pub(super) fn query_vec<T>(
    c: &Connection,
    sql: &str,
    params: Params<'_, '_>,
    mut f: impl FnMut(&Row<'_>) -> Result<T, StoreError>,
) -> Result<Vec<T>, StoreError> {
    let mut st = c.prepare_cached(sql)?;
    let mut rows = st.query(&bound(params)[..])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        out.push(f(&row(r))?);
    }
    Ok(out)
}

pub(super) fn execute(
    c: &Connection,
    sql: &str,
    params: Params<'_, '_>,
) -> Result<usize, StoreError> {
    Ok(c.prepare_cached(sql)?.execute(&bound(params)[..])?)
}
