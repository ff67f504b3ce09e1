//! Statements over many rows with one text per database (issue #16).
//!
//! * **SQLite** has no arrays: the rows go into a multi-row `VALUES` list (or a `UNION ALL`
//!   derived table), in [`chunks`] of 64, 16, 4 and 1 rows, as before.
//! * **PostgreSQL** binds each column as one array and reads the rows back with
//!   `unnest(…) WITH ORDINALITY`: one statement, one plan and one firing of the statement
//!   triggers for any number of rows, where the chunks took four of each for a batch of 100.
//!
//! Each column has a type ([`ColType`]) and a template in which `?` stands for the row's
//! value (`NULLIF(?, -1)`), so both texts come from one description. A value whose kind is not
//! its column's (a programming error; a null included) is a typed error before any SQL runs.

use super::{chunks, Conn, Dialect, Params, Row, RowParams, Value};
use crate::error::StoreError;

/// The SQL type of a column of rows; PostgreSQL binds the column as an array of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColType {
    /// `bigint` ([`Value::Int`]).
    Int,
    /// `bytea` ([`Value::Blob`]).
    Blob,
    /// `text` ([`Value::Text`]).
    Text,
}

impl ColType {
    /// The PostgreSQL array type a column is bound as.
    fn pg_array(self) -> &'static str {
        match self {
            Self::Int => "bigint[]",
            Self::Blob => "bytea[]",
            Self::Text => "text[]",
        }
    }

    /// A SQLite derived-table column of this type: integers cast, so that a comparison with
    /// a column sees an integer, as PostgreSQL's `bigint` does.
    fn sqlite_select(self) -> &'static str {
        match self {
            Self::Int => "CAST(? AS BIGINT)",
            Self::Blob | Self::Text => "?",
        }
    }
}

/// One column of a statement over rows: its type and its SQL template (`?` stands for the
/// row's value; it may stand more than once).
#[derive(Debug, Clone, Copy)]
pub struct Col {
    pub ty: ColType,
    pub sql: &'static str,
}

/// A column whose template is its value (`?`).
pub const fn col(ty: ColType) -> Col {
    Col { ty, sql: "?" }
}

/// A column with a template (`NULLIF(?, -1)`).
pub const fn col_as(ty: ColType, sql: &'static str) -> Col {
    Col { ty, sql }
}

/// One column's values, gathered for PostgreSQL.
enum Array<'v> {
    Ints(Vec<i64>),
    Blobs(Vec<&'v [u8]>),
    Texts(Vec<&'v str>),
}

impl<'v> Array<'v> {
    /// Column `c` of `rows`; a value of another kind than `ty` is an error.
    fn gather<const N: usize>(
        ty: ColType,
        c: usize,
        rows: &[[Value<'v>; N]],
    ) -> Result<Self, StoreError> {
        /// Each row's value of column `c` through `pick` (`None` for another kind).
        fn each<'v, T, const N: usize>(
            rows: &[[Value<'v>; N]],
            c: usize,
            pick: impl Fn(Value<'v>) -> Option<T>,
        ) -> Result<Vec<T>, StoreError> {
            rows.iter()
                .map(|r| r.get(c).copied().and_then(&pick).ok_or_else(mismatch))
                .collect()
        }
        Ok(match ty {
            ColType::Int => Self::Ints(each(rows, c, |v| match v {
                Value::Int(i) => Some(i),
                _ => None,
            })?),
            ColType::Blob => Self::Blobs(each(rows, c, |v| match v {
                Value::Blob(b) => Some(b),
                _ => None,
            })?),
            ColType::Text => Self::Texts(each(rows, c, |v| match v {
                Value::Text(t) => Some(t),
                _ => None,
            })?),
        })
    }

    fn value(&self) -> Value<'_> {
        match self {
            Self::Ints(v) => Value::Ints(v),
            Self::Blobs(v) => Value::Blobs(v),
            Self::Texts(v) => Value::Texts(v),
        }
    }
}

/// Checks every row's values against the columns' types on SQLite, which would store a
/// mismatch as it is ([`Array::gather`] refuses it on PostgreSQL), so both databases refuse
/// the same rows before any SQL runs.
fn check<const N: usize>(cols: &[Col; N], rows: &[[Value<'_>; N]]) -> Result<(), StoreError> {
    let fits = |ty: ColType, v: &Value<'_>| {
        matches!(
            (ty, v),
            (ColType::Int, Value::Int(_))
                | (ColType::Blob, Value::Blob(_))
                | (ColType::Text, Value::Text(_))
        )
    };
    let ok = rows
        .iter()
        .all(|r| cols.iter().zip(r).all(|(c, v)| fits(c.ty, v)));
    if ok {
        Ok(())
    } else {
        Err(mismatch())
    }
}

/// An order of values of one kind (the keys of [`Conn::query_in`], checked to be of their
/// column's kind), to find the keys listed twice.
fn same_kind_order(a: &Value<'_>, b: &Value<'_>) -> std::cmp::Ordering {
    match (a, b) {
        (Value::Int(x), Value::Int(y)) => x.cmp(y),
        (Value::Blob(x), Value::Blob(y)) => x.cmp(y),
        (Value::Text(x), Value::Text(y)) => x.cmp(y),
        _ => std::cmp::Ordering::Equal,
    }
}

/// A row's value of another kind than its column's.
fn mismatch() -> StoreError {
    StoreError::Corrupt("a row's value is not of its column's type")
}

impl Conn<'_> {
    /// Runs the statements that carry `rows`: each gets its text from `sql` (given the rows'
    /// derived table `{from}` to use as `FROM {from}`, whose columns are `k.c0`, `k.c1`, …
    /// and, on PostgreSQL, `k.ord` for the row's place) and its parameters. One statement on
    /// PostgreSQL; [`chunks`] on SQLite.
    fn over_rows<const N: usize>(
        &self,
        cols: &[Col; N],
        rows: &[[Value<'_>; N]],
        sql: &dyn Fn(&str) -> String,
        run: &mut dyn FnMut(&str, Params<'_, '_>) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        if rows.is_empty() {
            return Ok(());
        }
        // dialect: PostgreSQL binds a column as one array (SQLite has none)
        if self.dialect() == Dialect::Postgres {
            let arrays = cols
                .iter()
                .enumerate()
                .map(|(c, col)| Array::gather(col.ty, c, rows))
                .collect::<Result<Vec<_>, _>>()?;
            let names: Vec<String> = (0..N).map(|c| format!(":a{c}")).collect();
            let unnest: Vec<String> = names
                .iter()
                .zip(cols)
                .map(|(n, col)| format!("{n}::{}", col.ty.pg_array()))
                .collect();
            let columns: Vec<String> = (0..N).map(|c| format!("c{c}")).collect();
            let from = format!(
                "unnest({}) WITH ORDINALITY AS k({}, ord)",
                unnest.join(", "),
                columns.join(", ")
            );
            let params: Vec<(&str, Value<'_>)> = names
                .iter()
                .map(String::as_str)
                .zip(arrays.iter().map(Array::value))
                .collect();
            return run(&sql(&from), &params);
        }
        check(cols, rows)?;
        let templates: Vec<String> = cols
            .iter()
            .enumerate()
            .map(|(c, col)| format!("{} AS c{c}", col.ty.sqlite_select()))
            .collect();
        for chunk in chunks(rows) {
            let mut params = RowParams::default();
            let from = params.rows_table(
                chunk
                    .iter()
                    .map(|r| r.iter().copied().zip(templates.iter().map(String::as_str))),
            );
            run(&sql(&format!("({from}) k")), &params.params())?;
        }
        Ok(())
    }

    /// `{head} … {tail}` inserting `rows` in order, each column through its template (`head`
    /// is `INSERT INTO t (a, b, …)`, `tail` an `ON CONFLICT …` or empty); how many rows it
    /// changed. On PostgreSQL one `INSERT … SELECT … FROM unnest(…) ORDER BY` its order; on
    /// SQLite a few `VALUES` lists. Ids drawn for the rows follow their order on both.
    pub fn insert_rows<const N: usize>(
        &self,
        (head, tail): (&str, &str),
        cols: &[Col; N],
        rows: &[[Value<'_>; N]],
    ) -> Result<usize, StoreError> {
        let mut changed = 0;
        // dialect: PostgreSQL selects from the arrays; SQLite writes the values out
        if self.dialect() == Dialect::Postgres {
            let select: Vec<String> = cols
                .iter()
                .enumerate()
                .map(|(c, col)| col.sql.replace('?', &format!("k.c{c}")))
                .collect();
            let sql = |from: &str| {
                format!(
                    "{head} SELECT {} FROM {from} ORDER BY k.ord {tail}",
                    select.join(", ")
                )
            };
            self.over_rows(cols, rows, &sql, &mut |sql, p| {
                changed += self.execute(sql, p)?;
                Ok(())
            })?;
            return Ok(changed);
        }
        check(cols, rows)?;
        for chunk in chunks(rows) {
            let mut params = RowParams::default();
            let tuples: Vec<String> = chunk
                .iter()
                .map(|r| {
                    let filled = params.row_sql(r.iter().zip(cols).map(|(v, c)| (*v, c.sql)), ", ");
                    format!("({filled})")
                })
                .collect();
            let sql = format!("{head} VALUES {} {tail}", tuples.join(", "));
            changed += self.execute(&sql, &params.params())?;
        }
        Ok(changed)
    }

    /// Runs `sql(from)`, a statement that reads (or updates) with the rows' derived table
    /// `from` (columns `k.c0`, `k.c1`, …), and returns every row it gives, through `f`.
    pub fn query_rows<T, const N: usize>(
        &self,
        cols: &[ColType; N],
        rows: &[[Value<'_>; N]],
        sql: &dyn Fn(&str) -> String,
        mut f: impl FnMut(&Row<'_>) -> Result<T, StoreError>,
    ) -> Result<Vec<T>, StoreError> {
        let cols = cols.map(col);
        let mut out = Vec::new();
        self.over_rows(&cols, rows, sql, &mut |sql, p| {
            out.extend(self.query_vec(sql, p, &mut f)?);
            Ok(())
        })?;
        Ok(out)
    }

    /// Runs `sql(cond)`, a statement whose `cond` is `{column}` in `keys` (none: nothing
    /// runs; a key listed twice counts once), and returns every row it gives, through `f`. On PostgreSQL `= ANY` of one array,
    /// which an index answers key by key whatever the table's statistics (a join with the
    /// keys' derived table was planned as a scan of every row a partial index holds); on
    /// SQLite an `IN` list, in [`chunks`].
    pub fn query_in<T>(
        &self,
        (column, ty): (&str, ColType),
        keys: &[Value<'_>],
        sql: &dyn Fn(&str) -> String,
        mut f: impl FnMut(&Row<'_>) -> Result<T, StoreError>,
    ) -> Result<Vec<T>, StoreError> {
        // each key once: a key in two of SQLite's chunks would give its rows twice
        let mut keys = keys.to_vec();
        keys.sort_unstable_by(same_kind_order);
        keys.dedup();
        let rows: Vec<[Value<'_>; 1]> = keys.iter().map(|k| [*k]).collect();
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        // dialect: PostgreSQL binds the keys as one array
        if self.dialect() == Dialect::Postgres {
            let array = Array::gather(ty, 0, &rows)?;
            let cond = format!("{column} = ANY (:keys::{})", ty.pg_array());
            return self.query_vec(&sql(&cond), &[(":keys", array.value())], f);
        }
        check(&[col(ty)], &rows)?;
        let mut out = Vec::new();
        for chunk in chunks(&keys) {
            let mut params = RowParams::default();
            let names: Vec<String> = chunk.iter().flat_map(|k| params.row([*k])).collect();
            let cond = format!("{column} IN ({})", names.join(", "));
            out.extend(self.query_vec(&sql(&cond), &params.params(), &mut f)?);
        }
        Ok(out)
    }

    /// [`Self::query_rows`] for a statement that returns no rows; how many rows it changed.
    pub fn execute_rows<const N: usize>(
        &self,
        cols: &[ColType; N],
        rows: &[[Value<'_>; N]],
        sql: &dyn Fn(&str) -> String,
    ) -> Result<usize, StoreError> {
        let cols = cols.map(col);
        let mut changed = 0;
        self.over_rows(&cols, rows, sql, &mut |sql, p| {
            changed += self.execute(sql, p)?;
            Ok(())
        })?;
        Ok(changed)
    }
}

#[cfg(test)]
mod tests {
    use super::{col, col_as, ColType, Conn, Dialect, Value};
    use crate::error::StoreError;
    use crate::store::db::{named_params, statements_on_this_thread};

    const COLS: [super::Col; 3] = [
        col(ColType::Text),
        col_as(ColType::Int, "NULLIF(?, -1)"),
        col(ColType::Blob),
    ];

    /// Rows `range` of the test's keys and blobs; every seventh `n` is -1 (stored as null).
    fn rows<'v>(
        range: std::ops::Range<usize>,
        (keys, blobs): (&'v [String], &'v [Vec<u8>]),
    ) -> Vec<[Value<'v>; 3]> {
        range
            .map(|i| {
                let n = if i % 7 == 0 {
                    -1
                } else {
                    i64::try_from(i).unwrap()
                };
                [Value::Text(&keys[i]), Value::Int(n), Value::Blob(&blobs[i])]
            })
            .collect()
    }

    fn count(conn: Conn<'_>) -> i64 {
        conn.query_one("SELECT COUNT(*) AS n FROM t", named_params! {}, |r| {
            r.get("n")
        })
        .unwrap()
    }

    const HEAD: (&str, &str) = ("INSERT INTO t (k, n, b)", "ON CONFLICT (k) DO NOTHING");

    /// What `insert_rows`, `query_rows`, `query_in` and `execute_rows` promise, on one
    /// database: rows inserted in order (ids drawn in row order), conflicts skipped and
    /// counted, templates applied, keys read back, and a value of the wrong kind refused
    /// before any SQL runs.
    fn contract(conn: Conn<'_>) {
        let keys: Vec<String> = (0..200).map(|i| format!("k{i:03}")).collect();
        let blobs: Vec<Vec<u8>> = (0..200u8).map(|i| vec![i; usize::from(i % 5)]).collect();
        inserts(conn, (&keys[..], &blobs[..]));
        reads(conn, &keys);
        refusals(conn);
    }

    fn inserts(conn: Conn<'_>, data: (&[String], &[Vec<u8>])) {
        let (head, blobs) = (HEAD, data.1);
        // the rows go in in descending key order: their ids must follow the rows, not the keys
        let mut first = rows(0..150, data);
        first.reverse();
        let before = statements_on_this_thread();
        assert_eq!(conn.insert_rows(head, &COLS, &first).unwrap(), 150);
        let statements = statements_on_this_thread() - before;
        // 150 rows: one statement on PostgreSQL; 64 + 64 + 16 + 4 + 1 + 1 on SQLite
        let want = if conn.dialect() == Dialect::Postgres {
            1
        } else {
            6
        };
        assert_eq!(statements, want, "{:?}", conn.dialect());
        let stored: Vec<(String, Option<i64>, Vec<u8>)> = conn
            .query_vec("SELECT k, n, b FROM t ORDER BY id", named_params! {}, |r| {
                Ok((r.get("k")?, r.get("n")?, r.get("b")?))
            })
            .unwrap();
        assert_eq!(stored.len(), 150);
        for (j, (k, n, b)) in stored.iter().enumerate() {
            let i = 149 - j;
            let i64i = i64::try_from(i).unwrap();
            assert_eq!(k, &format!("k{i:03}"), "ids follow the rows' order");
            assert_eq!(*n, (i % 7 != 0).then_some(i64i), "the template applied");
            assert_eq!(b, &blobs[i]);
        }
        // rows 140..160: ten stored already, skipped by the conflict clause and not counted
        assert_eq!(
            conn.insert_rows(head, &COLS, &rows(140..160, data))
                .unwrap(),
            10
        );
        assert_eq!(count(conn), 160);
    }

    fn reads(conn: Conn<'_>, keys: &[String]) {
        // keys read back through a join, a key twice giving its row twice, a missing key none
        let wanted = [
            [Value::Text("k001")],
            [Value::Text("k001")],
            [Value::Text("none")],
        ];
        let found: Vec<i64> = conn
            .query_rows(
                &[ColType::Text],
                &wanted,
                &|from| format!("SELECT t.n AS n FROM {from} JOIN t ON t.k = k.c0"),
                |r| r.get("n"),
            )
            .unwrap();
        assert_eq!(found, [1, 1]);
        // keys as a list: a key twice (here in SQLite's first and last chunks) gives its row
        // once
        let mut listed: Vec<Value<'_>> = (0..70).map(|i| Value::Text(&keys[i])).collect();
        listed.extend([Value::Text("none"), Value::Text(&keys[5])]);
        let before = statements_on_this_thread();
        let mut ns: Vec<Option<i64>> = conn
            .query_in(
                ("k", ColType::Text),
                &listed,
                &|cond| format!("SELECT n FROM t WHERE {cond}"),
                |r| r.get("n"),
            )
            .unwrap();
        let want = if conn.dialect() == Dialect::Postgres {
            1
        } else {
            5
        };
        assert_eq!(
            statements_on_this_thread() - before,
            want,
            "71 keys once each: 64 + 4 + 1 + 1 + 1"
        );
        assert_eq!(ns.len(), 70, "each of seventy rows once");
        ns.sort_unstable();
        assert_eq!(ns.iter().filter(|n| n.is_none()).count(), 10);
        ns.dedup();
        assert_eq!(ns.len(), 61, "sixty values and a null");
        let set = [
            [Value::Text("k002"), Value::Int(-2)],
            [Value::Text("k003"), Value::Int(-3)],
        ];
        let changed = conn
            .execute_rows(&[ColType::Text, ColType::Int], &set, &|from| {
                format!("UPDATE t SET n = k.c1 FROM {from} WHERE t.k = k.c0")
            })
            .unwrap();
        assert_eq!(changed, 2);
        let n: i64 = conn
            .query_one("SELECT n FROM t WHERE k = 'k003'", named_params! {}, |r| {
                r.get("n")
            })
            .unwrap();
        assert_eq!(n, -3);
    }

    fn refusals(conn: Conn<'_>) {
        let head = HEAD;
        // no rows: nothing runs
        let before = statements_on_this_thread();
        assert_eq!(conn.insert_rows(head, &COLS, &[]).unwrap(), 0);
        assert_eq!(statements_on_this_thread(), before);

        // a null, or a value of another kind, in a column: refused, nothing stored
        for bad in [Value::Null, Value::Text("7"), Value::Blob(b"7")] {
            let row = [[Value::Text("bad"), bad, Value::Blob(b"")]];
            let before = statements_on_this_thread();
            let e = conn.insert_rows(head, &COLS, &row).unwrap_err();
            assert!(matches!(e, StoreError::Corrupt(_)), "{e}");
            assert!(e.to_string().contains("column's type"), "{e}");
            assert_eq!(statements_on_this_thread(), before, "no SQL ran");
            let e = conn
                .execute_rows(
                    &[ColType::Text, ColType::Int],
                    &[[Value::Text("k004"), bad]],
                    &|f| format!("UPDATE t SET n = k.c1 FROM {f} WHERE t.k = k.c0"),
                )
                .unwrap_err();
            assert!(matches!(e, StoreError::Corrupt(_)), "{e}");
        }
        assert_eq!(count(conn), 160);
    }

    #[test]
    fn rows_go_in_order_and_come_back_on_sqlite() {
        let c = rusqlite::Connection::open_in_memory().unwrap();
        let conn = Conn::Sqlite(&c);
        conn.execute_batch(
            "CREATE TABLE t (id INTEGER PRIMARY KEY, k TEXT NOT NULL UNIQUE, n INTEGER, b BLOB);",
        )
        .unwrap();
        contract(conn);
    }

    #[test]
    fn rows_go_in_order_and_come_back_on_postgres() {
        let Some(pool) = crate::store::db::pg_tests::fresh_pool() else {
            return;
        };
        let tx = crate::store::db::pg_tests::with_table(&pool);
        contract(Conn::Pg(&tx));
        tx.rollback().unwrap();
    }
}
