//! The small SQL adapter every store method runs through, so that one SQL text serves every
//! database the backend speaks (SQLite today; PostgreSQL next, issue #16).
//!
//! * Parameters are named (`:name` in the SQL text) and bound from [`named_params!`], which
//!   has rusqlite's syntax (`{":x": v}`) and turns each value into a [`Value`] through
//!   [`ToValue`].
//! * Rows are read by column name: [`Row::get`] converts the column's [`Value`] with
//!   [`FromValue`] (checked narrowing to `u32`/`u8`/`u64`, exact-length blobs), so a row
//!   closure never sees a driver type.
//! * [`Conn`] is a connection (inside the caller's transaction) of one driver; its methods
//!   prepare (cached), bind, run and map the driver's errors to [`StoreError`].
//!
//! SQL that cannot be written once for every dialect is marked `// dialect:` where it is used.

pub mod pg;
mod rows;
mod sqlite;

pub use rows::{col, col_as, ColType};

use crate::error::StoreError;
use std::fmt;

thread_local! {
    /// Statements this thread has run through a [`Conn`].
    static STATEMENTS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// How many statements this thread has run through the store (both databases). A store
/// call runs on its caller's thread, so a test measures what one request costs: a
/// settlement batch takes a few statements, not a few per tap.
pub fn statements_on_this_thread() -> u64 {
    STATEMENTS.with(std::cell::Cell::get)
}

fn counted() {
    STATEMENTS.with(|c| c.set(c.get().wrapping_add(1)));
}

/// Which SQL dialect a connection speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    /// PostgreSQL: `Conn::Pg` rewrites `:name` to `$n`.
    Postgres,
}

/// A value bound to a parameter or read from a column.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value<'a> {
    Null,
    Int(i64),
    Text(&'a str),
    Blob(&'a [u8]),
    /// A boolean (PostgreSQL's `boolean`; SQLite stores and returns integers).
    Bool(bool),
    /// An array of integers (`bigint[]`): PostgreSQL only, bound and never read. A key list
    /// bound as arrays keeps one statement text (and one cheap plan) for any number of keys;
    /// SQLite refuses it with an error.
    Ints(&'a [i64]),
    /// An array of blobs (`bytea[]`): PostgreSQL only, as [`Self::Ints`].
    Blobs(&'a [&'a [u8]]),
    /// An array of texts (`text[]`): PostgreSQL only, as [`Self::Ints`].
    Texts(&'a [&'a str]),
}

impl Value<'_> {
    /// What kind of value this is, for error messages.
    fn kind(&self) -> &'static str {
        match self {
            Self::Null => "null",
            Self::Int(_) => "an integer",
            Self::Text(_) => "text",
            Self::Blob(_) => "a blob",
            Self::Bool(_) => "a boolean",
            Self::Ints(_) => "an array of integers",
            Self::Blobs(_) => "an array of blobs",
            Self::Texts(_) => "an array of texts",
        }
    }
}

/// A column value that does not convert to the type asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValueError(pub String);

impl fmt::Display for ValueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ValueError {}

fn wrong(v: &Value<'_>, want: &str) -> ValueError {
    ValueError(format!("{} where {want} was expected", v.kind()))
}

/// A column whose value converts but is not one the code knows (an unknown enum text or
/// code): the error a conversion failure gives.
pub fn bad_value(column: &str, e: impl fmt::Display) -> StoreError {
    // the error rusqlite gave before the adapter; PostgreSQL needs a variant of its own
    StoreError::Sqlite(rusqlite::Error::FromSqlConversionFailure(
        0,
        rusqlite::types::Type::Text,
        Box::new(ValueError(format!("{column}: {e}"))),
    ))
}

/// A Rust value that binds to a parameter.
pub trait ToValue {
    fn to_value(&self) -> Value<'_>;
}

/// A Rust value read from a column.
pub trait FromValue: Sized {
    fn from_value(v: Value<'_>) -> Result<Self, ValueError>;
}

impl ToValue for Value<'_> {
    fn to_value(&self) -> Value<'_> {
        *self
    }
}

impl<T: ToValue + ?Sized> ToValue for &T {
    fn to_value(&self) -> Value<'_> {
        (**self).to_value()
    }
}

impl<T: ToValue> ToValue for Option<T> {
    fn to_value(&self) -> Value<'_> {
        match self {
            Some(v) => v.to_value(),
            None => Value::Null,
        }
    }
}

impl ToValue for i64 {
    fn to_value(&self) -> Value<'_> {
        Value::Int(*self)
    }
}

impl ToValue for u32 {
    fn to_value(&self) -> Value<'_> {
        Value::Int(i64::from(*self))
    }
}

impl ToValue for u8 {
    fn to_value(&self) -> Value<'_> {
        Value::Int(i64::from(*self))
    }
}

impl ToValue for bool {
    fn to_value(&self) -> Value<'_> {
        Value::Bool(*self)
    }
}

impl ToValue for str {
    fn to_value(&self) -> Value<'_> {
        Value::Text(self)
    }
}

impl ToValue for String {
    fn to_value(&self) -> Value<'_> {
        Value::Text(self)
    }
}

impl ToValue for [u8] {
    fn to_value(&self) -> Value<'_> {
        Value::Blob(self)
    }
}

impl ToValue for Vec<u8> {
    fn to_value(&self) -> Value<'_> {
        Value::Blob(self)
    }
}

impl<const N: usize> ToValue for [u8; N] {
    fn to_value(&self) -> Value<'_> {
        Value::Blob(self)
    }
}

impl<T: FromValue> FromValue for Option<T> {
    fn from_value(v: Value<'_>) -> Result<Self, ValueError> {
        match v {
            Value::Null => Ok(None),
            v => T::from_value(v).map(Some),
        }
    }
}

impl FromValue for i64 {
    fn from_value(v: Value<'_>) -> Result<Self, ValueError> {
        match v {
            Value::Int(i) => Ok(i),
            Value::Bool(b) => Ok(i64::from(b)),
            v => Err(wrong(&v, "an integer")),
        }
    }
}

/// An integer column narrowed to `T`; out of range is an error, never a wrap.
fn narrowed<T: TryFrom<i64>>(v: Value<'_>, what: &str) -> Result<T, ValueError> {
    let i = i64::from_value(v)?;
    T::try_from(i).map_err(|_| ValueError(format!("{i} is out of range for {what}")))
}

impl FromValue for u64 {
    fn from_value(v: Value<'_>) -> Result<Self, ValueError> {
        narrowed(v, "u64")
    }
}

impl FromValue for u32 {
    fn from_value(v: Value<'_>) -> Result<Self, ValueError> {
        narrowed(v, "u32")
    }
}

impl FromValue for u8 {
    fn from_value(v: Value<'_>) -> Result<Self, ValueError> {
        narrowed(v, "u8")
    }
}

impl FromValue for bool {
    fn from_value(v: Value<'_>) -> Result<Self, ValueError> {
        match v {
            Value::Bool(b) => Ok(b),
            Value::Int(i) => Ok(i != 0),
            v => Err(wrong(&v, "a boolean")),
        }
    }
}

impl FromValue for String {
    fn from_value(v: Value<'_>) -> Result<Self, ValueError> {
        match v {
            Value::Text(s) => Ok(s.to_owned()),
            v => Err(wrong(&v, "text")),
        }
    }
}

impl FromValue for Vec<u8> {
    fn from_value(v: Value<'_>) -> Result<Self, ValueError> {
        match v {
            Value::Blob(b) => Ok(b.to_vec()),
            v => Err(wrong(&v, "a blob")),
        }
    }
}

impl<const N: usize> FromValue for [u8; N] {
    fn from_value(v: Value<'_>) -> Result<Self, ValueError> {
        match v {
            Value::Blob(b) => <[u8; N]>::try_from(b)
                .map_err(|_| ValueError(format!("a blob of {} bytes, not {N}", b.len()))),
            v => Err(wrong(&v, "a blob")),
        }
    }
}

/// Named parameters for a [`Conn`] call: `named_params! {":a": a, ":b": &b[..]}` gives a
/// `&[(&str, Value)]` (each value through [`ToValue`]). The syntax is rusqlite's.
macro_rules! named_params {
    () => {
        &[] as &[(&str, $crate::store::db::Value<'_>)]
    };
    ($($name:literal : $value:expr),+ $(,)?) => {
        &[$(($name, $crate::store::db::ToValue::to_value(&$value))),+]
            as &[(&str, $crate::store::db::Value<'_>)]
    };
}
pub(crate) use named_params;

/// Splits `rows` into the chunks a multi-row statement takes on SQLite: 64, 16, 4 and 1 rows,
/// so a statement over any number of rows has at most four texts (each prepared once per
/// connection). PostgreSQL binds the rows as arrays instead, one statement for any number
/// (`rows.rs`).
pub fn chunks<T>(rows: &[T]) -> impl Iterator<Item = &[T]> {
    let mut rest = rows;
    std::iter::from_fn(move || {
        let n = [64, 16, 4, 1].into_iter().find(|&n| n <= rest.len())?;
        let (chunk, tail) = rest.split_at_checked(n)?;
        rest = tail;
        Some(chunk)
    })
}

/// The parameters of a statement over several rows: each row's values get the names
/// `:r{row}c{column}`, bound in order.
#[derive(Default)]
pub struct RowParams<'v> {
    names: Vec<String>,
    values: Vec<Value<'v>>,
    rows: usize,
}

impl<'v> RowParams<'v> {
    /// Adds one row's values; returns their parameter names, in column order.
    pub fn row(&mut self, values: impl IntoIterator<Item = Value<'v>>) -> Vec<String> {
        let r = self.rows;
        self.rows += 1;
        values
            .into_iter()
            .enumerate()
            .map(|(c, v)| {
                let name = format!(":r{r}c{c}");
                self.names.push(name.clone());
                self.values.push(v);
                name
            })
            .collect()
    }

    /// Adds one row; each value goes into its SQL template, in which `?` stands for the
    /// value's parameter name. Returns the filled templates joined by `sep`.
    pub fn row_sql<'t>(
        &mut self,
        cols: impl IntoIterator<Item = (Value<'v>, &'t str)>,
        sep: &str,
    ) -> String {
        let (values, templates): (Vec<Value<'v>>, Vec<&str>) = cols.into_iter().unzip();
        let names = self.row(values);
        let filled: Vec<String> = names
            .iter()
            .zip(templates)
            .map(|(n, t)| t.replace('?', n))
            .collect();
        filled.join(sep)
    }

    /// A derived table of one row per item of `rows`, for `FROM (…) k`: `SELECT … UNION ALL
    /// SELECT …`, each row's values in their column templates ([`Self::row_sql`]; name the
    /// columns in them, `? AS p`, and cast where the type must not be left to the value).
    pub fn rows_table<'t, C>(&mut self, rows: impl IntoIterator<Item = C>) -> String
    where
        C: IntoIterator<Item = (Value<'v>, &'t str)>,
    {
        let mut selects = Vec::new();
        for cols in rows {
            selects.push(format!("SELECT {}", self.row_sql(cols, ", ")));
        }
        selects.join(" UNION ALL ")
    }

    /// `(x = :a AND y = :b) OR …` over `pairs`, each pair a row of parameters.
    pub fn pairs_where(
        &mut self,
        (x, y): (&str, &str),
        pairs: impl Iterator<Item = (Value<'v>, Value<'v>)>,
    ) -> String {
        let (x, y) = (format!("{x} = ?"), format!("{y} = ?"));
        let terms: Vec<String> = pairs
            .map(|(a, b)| {
                format!(
                    "({})",
                    self.row_sql([(a, x.as_str()), (b, y.as_str())], " AND ")
                )
            })
            .collect();
        terms.join(" OR ")
    }

    /// The named parameters to bind.
    pub fn params(&self) -> Vec<(&str, Value<'v>)> {
        self.names
            .iter()
            .map(String::as_str)
            .zip(self.values.iter().copied())
            .collect()
    }
}

/// Named parameters, as [`named_params!`] gives them.
pub type Params<'p, 'v> = &'p [(&'p str, Value<'v>)];

/// One result row; columns are read by name.
pub struct Row<'a> {
    inner: RowInner<'a>,
}

enum RowInner<'a> {
    Sqlite(&'a rusqlite::Row<'a>),
    Pg(&'a postgres::Row),
}

impl Row<'_> {
    /// The column `name` as a `T`; a missing column, or a value that does not convert, is
    /// an error.
    pub fn get<T: FromValue>(&self, name: &str) -> Result<T, StoreError> {
        match &self.inner {
            RowInner::Sqlite(r) => sqlite::get(r, name),
            RowInner::Pg(r) => pg::get(r, name),
        }
    }
}

/// A connection of one driver, inside the caller's transaction. Cheap to copy.
#[derive(Clone, Copy)]
pub enum Conn<'a> {
    Sqlite(&'a rusqlite::Connection),
    Pg(&'a pg::PgTx<'a>),
}

impl<'a> Conn<'a> {
    pub fn dialect(&self) -> Dialect {
        match self {
            Self::Sqlite(_) => Dialect::Sqlite,
            Self::Pg(_) => Dialect::Postgres,
        }
    }

    /// The one row `sql` returns, if any (a second row is ignored).
    pub fn query_opt<T>(
        &self,
        sql: &str,
        params: Params<'_, '_>,
        f: impl FnOnce(&Row<'_>) -> Result<T, StoreError>,
    ) -> Result<Option<T>, StoreError> {
        counted();
        match self {
            Self::Sqlite(c) => sqlite::query_opt(c, sql, params, f),
            Self::Pg(c) => pg::query_opt(c, sql, params, f),
        }
    }

    /// The one row `sql` returns; no row is an error.
    pub fn query_one<T>(
        &self,
        sql: &str,
        params: Params<'_, '_>,
        f: impl FnOnce(&Row<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        counted();
        match self {
            Self::Sqlite(c) => sqlite::query_one(c, sql, params, f),
            Self::Pg(c) => pg::query_one(c, sql, params, f),
        }
    }

    /// Every row `sql` returns, each through `f`, in order.
    pub fn query_vec<T>(
        &self,
        sql: &str,
        params: Params<'_, '_>,
        f: impl FnMut(&Row<'_>) -> Result<T, StoreError>,
    ) -> Result<Vec<T>, StoreError> {
        counted();
        match self {
            Self::Sqlite(c) => sqlite::query_vec(c, sql, params, f),
            Self::Pg(c) => pg::query_vec(c, sql, params, f),
        }
    }

    /// Runs a statement that returns no rows; how many rows it changed.
    pub fn execute(&self, sql: &str, params: Params<'_, '_>) -> Result<usize, StoreError> {
        counted();
        match self {
            Self::Sqlite(c) => sqlite::execute(c, sql, params),
            Self::Pg(c) => pg::execute(c, sql, params),
        }
    }

    /// Runs several statements with no parameters (migrations).
    pub fn execute_batch(&self, sql: &str) -> Result<(), StoreError> {
        match self {
            Self::Sqlite(c) => Ok(c.execute_batch(sql)?),
            Self::Pg(c) => c.batch(sql),
        }
    }
}

#[cfg(test)]
pub(crate) mod pg_tests;
#[cfg(test)]
mod tests;
