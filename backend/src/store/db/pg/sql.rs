//! The SQL text and the values of [`super::PgTx`]'s statements: the `:name` rewrite to `$n`,
//! the parameter types and conversions, columns read by their actual type, and the query
//! helpers `Conn::Pg` calls.

use super::super::{FromValue, Params, Row, RowInner, Value};
use super::PgTx;
use crate::error::StoreError;
use postgres::types::{to_sql_checked, IsNull, Kind, ToSql, Type};
use std::collections::{HashMap, HashSet};

/// SQL with `:name` rewritten to `$n`, and the names in `$n` order.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Rewritten {
    pub(crate) sql: String,
    pub(crate) names: Vec<String>,
}

/// Rewrites `:name` parameters to `$1`, `$2`, … (one number per distinct name). Nothing in a
/// string, a quoted identifier, a `--` or `/* */` comment (nested, as PostgreSQL nests them)
/// or a dollar-quoted string (`$$…$$`, `$tag$…$tag$`) is a parameter.
pub(crate) fn rewrite(sql: &str) -> Rewritten {
    let mut out = String::with_capacity(sql.len() + 8);
    let mut names: Vec<String> = Vec::new();
    let mut chars = sql.char_indices().peekable();
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    while let Some((i, c)) = chars.next() {
        let rest = sql.get(i..).unwrap_or_default();
        let verbatim = match c {
            '/' if rest.starts_with("/*") => Some(block_comment_len(rest)),
            // `a$b$` is an identifier: a dollar quote never starts inside one
            '$' if !sql
                .get(..i)
                .and_then(|before| before.chars().next_back())
                .is_some_and(|p| ident(p) || p == '$' || !p.is_ascii()) =>
            {
                dollar_quoted_len(rest)
            }
            _ => None,
        };
        if let Some(len) = verbatim {
            out.push_str(rest.get(..len).unwrap_or(rest));
            let end = i.saturating_add(len);
            while chars.peek().is_some_and(|p| p.0 < end) {
                chars.next();
            }
            continue;
        }
        match c {
            '\'' | '"' => {
                out.push(c);
                for (_, d) in chars.by_ref() {
                    out.push(d);
                    if d == c {
                        break;
                    }
                }
            }
            '-' if chars.peek().map(|p| p.1) == Some('-') => {
                out.push(c);
                for (_, d) in chars.by_ref() {
                    out.push(d);
                    if d == '\n' {
                        break;
                    }
                }
            }
            ':' if chars.peek().map(|p| p.1) == Some(':') => {
                out.push_str("::");
                chars.next();
            }
            ':' if chars
                .peek()
                .is_some_and(|p| p.1.is_ascii_alphabetic() || p.1 == '_') =>
            {
                let mut name = String::from(":");
                while let Some(&(_, d)) = chars.peek() {
                    if !ident(d) {
                        break;
                    }
                    name.push(d);
                    chars.next();
                }
                let n = match names.iter().position(|x| *x == name) {
                    Some(i) => i + 1,
                    None => {
                        names.push(name);
                        names.len()
                    }
                };
                out.push('$');
                out.push_str(&n.to_string());
            }
            c => out.push(c),
        }
    }
    Rewritten { sql: out, names }
}

/// The values of `rw`'s parameters in its numbering (`$1`, `$2`, …) from `params` by name;
/// an error for a name without a value or a value without a name.
///
/// Usually the values come in the order their names first appear (as `RowParams` gives a
/// many-row statement's): one pass. Otherwise by name through a map: a statement of 64 rows
/// (as PostgreSQL's were before their rows were bound as arrays, `rows.rs`) has over a
/// thousand parameters, and searching the list for each was quadratic, the backend's largest
/// cost after the signatures under load (docs/perf.md §8).
pub(crate) fn bind_values<'v>(
    rw: &Rewritten,
    params: Params<'_, 'v>,
) -> Result<Vec<Value<'v>>, StoreError> {
    if params.len() == rw.names.len() && params.iter().zip(&rw.names).all(|((n, _), x)| n == x) {
        return Ok(params.iter().map(|(_, v)| *v).collect());
    }
    let mut by_name: HashMap<&str, Value<'v>> = HashMap::with_capacity(params.len());
    for (n, v) in params {
        // of two values under one name, the first is bound
        by_name.entry(n).or_insert(*v);
    }
    let mut values = Vec::with_capacity(rw.names.len());
    for name in &rw.names {
        let v = by_name
            .get(name.as_str())
            .copied()
            .ok_or_else(|| StoreError::Postgres(format!("no value for parameter {name}")))?;
        values.push(v);
    }
    // every name of the statement has a value: any other key is one it does not have
    if by_name.len() > rw.names.len() {
        let named: HashSet<&str> = rw.names.iter().map(String::as_str).collect();
        if let Some(extra) = by_name.keys().find(|n| !named.contains(*n)) {
            return Err(StoreError::Postgres(format!(
                "parameter {extra} is not in the statement"
            )));
        }
    }
    Ok(values)
}

/// The length in bytes of the block comment `rest` starts with (`/*`), nested comments
/// included; an unterminated one runs to the end.
fn block_comment_len(rest: &str) -> usize {
    let b = rest.as_bytes();
    let (mut depth, mut i) = (0usize, 0usize);
    while let (Some(&x), Some(&y)) = (b.get(i), b.get(i.saturating_add(1))) {
        match (x, y) {
            (b'/', b'*') => {
                depth = depth.saturating_add(1);
                i = i.saturating_add(2);
            }
            (b'*', b'/') => {
                depth = depth.saturating_sub(1);
                i = i.saturating_add(2);
                if depth == 0 {
                    return i;
                }
            }
            _ => i = i.saturating_add(1),
        }
    }
    rest.len()
}

/// The length in bytes of the dollar-quoted string `rest` starts with (`$$…$$` or
/// `$tag$…$tag$`; an unterminated one runs to the end), or `None` when its `$` opens none
/// (a positional `$1`, say).
fn dollar_quoted_len(rest: &str) -> Option<usize> {
    let after = rest.strip_prefix('$')?;
    let tag = after.get(..after.find('$')?)?;
    let tag_ok = tag
        .chars()
        .enumerate()
        .all(|(k, c)| c == '_' || c.is_alphabetic() || (k > 0 && c.is_ascii_digit()));
    if !tag_ok {
        return None;
    }
    let open = tag.len().saturating_add(2);
    let delimiter = rest.get(..open)?;
    let body = rest.get(open..)?;
    Some(body.find(delimiter).map_or(rest.len(), |at| {
        open.saturating_add(at).saturating_add(open)
    }))
}

/// The type a value is prepared with; unspecified (OID 0, the server infers it) for a null.
pub(super) fn param_type(v: &Value<'_>) -> Type {
    match v {
        Value::Int(_) => Type::INT8,
        Value::Text(_) => Type::TEXT,
        Value::Blob(_) => Type::BYTEA,
        Value::Bool(_) => Type::BOOL,
        Value::Ints(_) => Type::INT8_ARRAY,
        Value::Blobs(_) => Type::BYTEA_ARRAY,
        Value::Texts(_) => Type::TEXT_ARRAY,
        Value::Null => Type::new(String::new(), 0, Kind::Pseudo, String::new()),
    }
}

impl ToSql for Value<'_> {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut bytes::BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match *self {
            Value::Null => Ok(IsNull::Yes),
            Value::Int(i) if *ty == Type::INT4 => i32::try_from(i)?.to_sql(ty, out),
            Value::Int(i) if *ty == Type::INT2 => i16::try_from(i)?.to_sql(ty, out),
            Value::Int(i) if *ty == Type::BOOL => (i != 0).to_sql(ty, out),
            Value::Int(i) => i.to_sql(ty, out),
            Value::Text(s) => s.to_sql(ty, out),
            Value::Blob(b) => b.to_sql(ty, out),
            Value::Bool(b) => b.to_sql(ty, out),
            Value::Ints(v) => v.to_sql(ty, out),
            Value::Blobs(v) => v.to_sql(ty, out),
            Value::Texts(v) => v.to_sql(ty, out),
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

/// Reads column `name` of a row as a `T`.
pub(in crate::store::db) fn get<T: FromValue>(
    r: &postgres::Row,
    name: &str,
) -> Result<T, StoreError> {
    let (idx, col) = r
        .columns()
        .iter()
        .enumerate()
        .find(|(_, c)| c.name() == name)
        .ok_or_else(|| StoreError::Postgres(format!("no column {name}")))?;
    let ty = col.type_();
    let conv = |e: postgres::Error| StoreError::Postgres(format!("column {name}: {e}"));
    let v = if *ty == Type::INT8 {
        r.try_get::<_, Option<i64>>(idx)
            .map_err(conv)?
            .map(Value::Int)
    } else if *ty == Type::INT4 {
        r.try_get::<_, Option<i32>>(idx)
            .map_err(conv)?
            .map(|i| Value::Int(i.into()))
    } else if *ty == Type::INT2 {
        r.try_get::<_, Option<i16>>(idx)
            .map_err(conv)?
            .map(|i| Value::Int(i.into()))
    } else if *ty == Type::BOOL {
        r.try_get::<_, Option<bool>>(idx)
            .map_err(conv)?
            .map(Value::Bool)
    } else if *ty == Type::TEXT || *ty == Type::VARCHAR || *ty == Type::NAME {
        r.try_get::<_, Option<&str>>(idx)
            .map_err(conv)?
            .map(Value::Text)
    } else if *ty == Type::BYTEA {
        r.try_get::<_, Option<&[u8]>>(idx)
            .map_err(conv)?
            .map(Value::Blob)
    } else {
        return Err(StoreError::Postgres(format!(
            "column {name} is of type {ty}: cast it in the SQL"
        )));
    };
    T::from_value(v.unwrap_or(Value::Null))
        .map_err(|e| StoreError::Postgres(format!("column {name}: {e}")))
}

fn row(r: &postgres::Row) -> Row<'_> {
    Row {
        inner: RowInner::Pg(r),
    }
}

pub(in crate::store::db) fn query_opt<T>(
    c: &PgTx<'_>,
    sql: &str,
    params: Params<'_, '_>,
    f: impl FnOnce(&Row<'_>) -> Result<T, StoreError>,
) -> Result<Option<T>, StoreError> {
    let rows = c.query(sql, params)?;
    match rows.first() {
        Some(r) => f(&row(r)).map(Some),
        None => Ok(None),
    }
}

pub(in crate::store::db) fn query_one<T>(
    c: &PgTx<'_>,
    sql: &str,
    params: Params<'_, '_>,
    f: impl FnOnce(&Row<'_>) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    query_opt(c, sql, params, f)?
        .ok_or_else(|| StoreError::Postgres("the query returned no rows".into()))
}

pub(in crate::store::db) fn query_vec<T>(
    c: &PgTx<'_>,
    sql: &str,
    params: Params<'_, '_>,
    f: impl FnMut(&Row<'_>) -> Result<T, StoreError>,
) -> Result<Vec<T>, StoreError> {
    let rows = c.query(sql, params)?;
    let mut f = f;
    rows.iter().map(|r| f(&row(r))).collect()
}

pub(in crate::store::db) fn execute(
    c: &PgTx<'_>,
    sql: &str,
    params: Params<'_, '_>,
) -> Result<usize, StoreError> {
    let n = c.run(sql, params, |client, st, refs| client.execute(st, refs))?;
    usize::try_from(n).map_err(|_| StoreError::Postgres(format!("{n} rows")))
}

#[cfg(test)]
mod tests {
    //! The `:name` rewrite and the binding of values to it (no server needed).

    use super::super::super::RowParams;
    use super::{bind_values, rewrite, Value};

    #[test]
    fn rewrites_names_but_not_casts_literals_or_comments() {
        let r =
            rewrite("SELECT :a::text, ':b', \":c\", x FROM t -- :d\n WHERE y = :a AND z = :e_1");
        assert_eq!(
            r.sql,
            "SELECT $1::text, ':b', \":c\", x FROM t -- :d\n WHERE y = $1 AND z = $2"
        );
        assert_eq!(r.names, [":a", ":e_1"]);
    }

    #[test]
    fn binds_values_by_name_in_the_statement_s_order() {
        let r = rewrite("SELECT :b, :a, :b, :c");
        let ordered = [
            (":b", Value::Int(2)),
            (":a", Value::Int(1)),
            (":c", Value::Int(3)),
        ];
        let shuffled = [
            (":c", Value::Int(3)),
            (":a", Value::Int(1)),
            (":b", Value::Int(2)),
        ];
        for params in [&ordered[..], &shuffled[..]] {
            let v = bind_values(&r, params).unwrap();
            assert!(matches!(
                v[..],
                [Value::Int(2), Value::Int(1), Value::Int(3)]
            ));
        }
        // of two values under one name the first is bound
        let twice = [
            (":a", Value::Int(1)),
            (":b", Value::Int(2)),
            (":c", Value::Int(3)),
            (":a", Value::Int(9)),
        ];
        let v = bind_values(&r, &twice).unwrap();
        assert!(matches!(
            v[..],
            [Value::Int(2), Value::Int(1), Value::Int(3)]
        ));
        let missing = bind_values(&r, &ordered[..2]).unwrap_err();
        assert!(
            missing.to_string().contains("no value for parameter :c"),
            "{missing}"
        );
        let extra = [
            (":b", Value::Int(2)),
            (":a", Value::Int(1)),
            (":c", Value::Int(3)),
            (":d", Value::Int(4)),
        ];
        let extra = bind_values(&r, &extra).unwrap_err();
        assert!(
            extra
                .to_string()
                .contains("parameter :d is not in the statement"),
            "{extra}"
        );
        // a many-row statement's values, in order, as RowParams gives them
        let mut rows = RowParams::default();
        let tuples: Vec<String> = (0..64)
            .map(|i| format!("({})", rows.row([Value::Int(i), Value::Int(-i)]).join(", ")))
            .collect();
        let r = rewrite(&format!(
            "INSERT INTO t (a, b) VALUES {}",
            tuples.join(", ")
        ));
        let v = bind_values(&r, &rows.params()).unwrap();
        assert_eq!(v.len(), 128);
        assert!(matches!(v[126..], [Value::Int(63), Value::Int(-63)]));
    }

    #[test]
    fn block_comments_and_dollar_quotes_hold_no_parameters() {
        let sql = "SELECT /* :no /* :nested */ :still_no */ :a, $$ :no $$, $t_1$ :no $ $t_1$, :b, \
                   $1, x$y, /* unterminated :no";
        let r = rewrite(sql);
        assert_eq!(
            r.sql,
            "SELECT /* :no /* :nested */ :still_no */ $1, $$ :no $$, $t_1$ :no $ $t_1$, $2, \
             $1, x$y, /* unterminated :no"
        );
        assert_eq!(r.names, [":a", ":b"]);
        let r = rewrite("SELECT $q$ :no");
        assert!(
            r.names.is_empty(),
            "an unterminated dollar quote runs to the end"
        );
        let r = rewrite("SELECT :a, 'é' /* é */ , $é$ :no $é$, :b");
        assert_eq!(r.names, [":a", ":b"]);
        let r = rewrite("SELECT a$b$c, :a, d$e$ FROM t");
        assert_eq!(
            r.names,
            [":a"],
            "a dollar inside an identifier opens no quote"
        );
    }
}
