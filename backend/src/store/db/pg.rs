//! [`Conn::Pg`](super::Conn): PostgreSQL under the adapter, through tokio-postgres and a
//! deadpool-postgres pool behind a synchronous facade.
//!
//! The engine is synchronous and runs on blocking threads (or on no runtime at all: the CLI,
//! `#[test]` fixtures). [`PgPool`] owns a small multi-thread tokio runtime (thread name
//! `mancard-pg`) that drives the connections; every facade call `block_on`s a future on it.
//! **It must not be called from inside an async task** (tokio refuses to block a runtime
//! thread and panics): callers go through `spawn_blocking`, as every HTTP handler already
//! does. Dropping a [`PgPool`] inside a runtime is fine (its runtime shuts down in the
//! background).
//!
//! * `:name` parameters are rewritten to `$n` (cached per SQL text); `::` casts, string
//!   literals, quoted identifiers and comments are left alone.
//! * Statements are prepared (cached per connection) with parameter types taken from the
//!   values: `Int` → INT8, `Text` → TEXT, `Blob` → BYTEA, `Bool` → BOOL, `Null` → inferred.
//! * Columns are read by their actual type (INT2/INT4/INT8/BOOL/TEXT/BYTEA); any other type
//!   (e.g. NUMERIC from `SUM`) is an error unless the SQL casts it.
//! * Errors: serialization failure and deadlock (40001, 40P01) → [`StoreError::Retryable`]
//!   (and the transaction remembers it, so `Store::write` retries whatever error the closure
//!   returns); unique violation → [`StoreError::Unique`]; pool timeouts and a closed
//!   connection → [`StoreError::Busy`].

use super::{FromValue, Params, Row, RowInner, Value};
use crate::error::StoreError;
use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod, Runtime};
use std::cell::Cell;
use std::collections::HashMap;
use std::error::Error as _;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::{to_sql_checked, IsNull, Kind, ToSql, Type};
use tokio_postgres::NoTls;

mod locks;
#[cfg(test)]
pub(super) use locks::{ACCOUNT_LOCKS, WRITERS_LOCK};

/// A pool of PostgreSQL connections and the runtime that drives them.
pub struct PgPool {
    pool: Pool,
    rt: Option<tokio::runtime::Runtime>,
    handle: tokio::runtime::Handle,
    rewrites: Mutex<HashMap<String, Arc<Rewritten>>>,
    /// At most this many account locks per write: the server's `max_locks_per_transaction`
    /// (read at connect, at least 64), the average its shared lock table is sized for per
    /// connection, so holding no more per connection cannot overflow it.
    max_account_locks: usize,
    /// Turns to wait for account locks on a connection: half the pool, so writes queued on
    /// busy accounts always leave connections to everyone else.
    lock_waiters: Arc<tokio::sync::Semaphore>,
}

impl std::fmt::Debug for PgPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // never the URL: it may hold a password
        f.debug_struct("PgPool").finish_non_exhaustive()
    }
}

impl Drop for PgPool {
    fn drop(&mut self) {
        self.pool.close();
        if let Some(rt) = self.rt.take() {
            // a plain drop would block, which panics inside another runtime
            rt.shutdown_background();
        }
    }
}

/// SQL with `:name` rewritten to `$n`, and the names in `$n` order.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Rewritten {
    pub(crate) sql: String,
    pub(crate) names: Vec<String>,
}

/// Rewrites `:name` parameters to `$1`, `$2`, … (one number per distinct name).
pub(crate) fn rewrite(sql: &str) -> Rewritten {
    let mut out = String::with_capacity(sql.len() + 8);
    let mut names: Vec<String> = Vec::new();
    let mut chars = sql.char_indices().peekable();
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    while let Some((_, c)) = chars.next() {
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

fn pg_err(e: &tokio_postgres::Error) -> StoreError {
    if let Some(code) = e.code() {
        let msg = e
            .as_db_error()
            .map_or_else(|| e.to_string(), |d| d.message().to_owned());
        if *code == SqlState::T_R_SERIALIZATION_FAILURE || *code == SqlState::T_R_DEADLOCK_DETECTED
        {
            return StoreError::Retryable(msg);
        }
        // a bounded wait ran out, or the server is going away: try again later (503)
        if *code == SqlState::LOCK_NOT_AVAILABLE
            || *code == SqlState::QUERY_CANCELED
            || *code == SqlState::IDLE_IN_TRANSACTION_SESSION_TIMEOUT
            || *code == SqlState::ADMIN_SHUTDOWN
            || *code == SqlState::CANNOT_CONNECT_NOW
            || *code == SqlState::TOO_MANY_CONNECTIONS
            || *code == SqlState::OUT_OF_MEMORY
            || *code == SqlState::INSUFFICIENT_RESOURCES
        {
            return StoreError::Busy(msg);
        }
        if *code == SqlState::UNIQUE_VIOLATION {
            let constraint = e
                .as_db_error()
                .and_then(|d| d.constraint())
                .unwrap_or_default()
                .to_owned();
            return StoreError::Unique { constraint, msg };
        }
        return StoreError::Postgres(format!("{msg} ({})", code.code()));
    }
    if e.is_closed() {
        return StoreError::Busy(format!("the database connection closed: {e}"));
    }
    match e.source() {
        Some(s) => StoreError::Postgres(format!("{e}: {s}")),
        None => StoreError::Postgres(e.to_string()),
    }
}

impl PgPool {
    /// A pool over `url` (`postgres://…` or a `host=… dbname=…` conninfo); `max` connections,
    /// each wait for one bounded by 10 s. Connects once to fail early.
    pub fn connect(url: &str, max: usize) -> Result<Self, StoreError> {
        let mut config: tokio_postgres::Config = url
            .parse()
            .map_err(|e| StoreError::Postgres(format!("the database URL: {e}")))?;
        // No wait without end: a lock (row or advisory) waited for over 10 s, a statement
        // over 30 s, or a transaction left idle for 60 s ends in an error, answered 503
        // (busy), so one stuck holder cannot hang every writer of every instance. The
        // server's keepalives and TCP user timeout end the session (and its session locks,
        // which no transaction timeout covers) of a backend host that vanished.
        let mut options = config.get_options().unwrap_or_default().to_owned();
        options.push_str(
            " -c lock_timeout=10s -c statement_timeout=30s \
             -c idle_in_transaction_session_timeout=60s \
             -c tcp_keepalives_idle=10 -c tcp_keepalives_interval=5 -c tcp_keepalives_count=3 \
             -c tcp_user_timeout=25000",
        );
        config.options(options.trim());
        // the client's side of a vanished peer: a database host that stops answering fails
        // the connection in ~25 s instead of leaving blocking threads on it for TCP's minutes
        config
            .keepalives(true)
            .keepalives_idle(Duration::from_secs(10))
            .keepalives_interval(Duration::from_secs(5))
            .keepalives_retries(3)
            .tcp_user_timeout(Duration::from_secs(25));
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("mancard-pg")
            .enable_all()
            .build()
            .map_err(|e| StoreError::Postgres(format!("runtime: {e}")))?;
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                // no round trip per checkout: a PgTx returns its connection clean (its
                // transaction ended, its session lock let go) or closes it (its Drop)
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let timeout = Some(Duration::from_secs(10));
        let pool = Pool::builder(manager)
            .max_size(max)
            .runtime(Runtime::Tokio1)
            .wait_timeout(timeout)
            .create_timeout(timeout)
            .recycle_timeout(timeout)
            .build()
            .map_err(|e| StoreError::Postgres(format!("pool: {e}")))?;
        let handle = rt.handle().clone();
        let mut me = Self {
            pool,
            rt: Some(rt),
            handle,
            rewrites: Mutex::new(HashMap::new()),
            max_account_locks: locks::MIN_ACCOUNT_LOCKS,
            lock_waiters: Arc::new(tokio::sync::Semaphore::new((max / 2).max(1))),
        };
        let c = me.get()?;
        let setting = me
            .block_on(c.query_one("SHOW max_locks_per_transaction", &[]))
            .ok()
            .and_then(|r| r.try_get::<_, String>(0).ok())
            .and_then(|v| v.trim().parse::<usize>().ok())
            .unwrap_or(locks::MIN_ACCOUNT_LOCKS);
        drop(c);
        me.max_account_locks = setting.max(locks::MIN_ACCOUNT_LOCKS);
        Ok(me)
    }

    /// At most this many account locks per write ([`PgTx::begin_write`]).
    pub fn max_account_locks(&self) -> usize {
        self.max_account_locks
    }

    /// A turn to wait for account locks on a connection (held until the locks are got),
    /// waited for without a connection; busy after 10 s.
    pub(super) fn lock_wait_turn(&self) -> Result<tokio::sync::OwnedSemaphorePermit, StoreError> {
        let sem = Arc::clone(&self.lock_waiters);
        self.block_on(async move {
            tokio::time::timeout(Duration::from_secs(10), sem.acquire_owned()).await
        })
        .map_err(|_| StoreError::Busy("too many writes wait for the same accounts".into()))?
        .map_err(|_| StoreError::Busy("the pool is closing".into()))
    }

    /// Runs `fut` on the pool's runtime, blocking the calling thread.
    ///
    /// Meant for blocking threads (`spawn_blocking`, plain threads). Called on an async
    /// worker anyway (a test body calling the engine directly), it still works: on a
    /// multi-thread runtime through `block_in_place`, on a current-thread one from a scoped
    /// helper thread, both of which stall that runtime for the call.
    pub fn block_on<F>(&self, fut: F) -> F::Output
    where
        F: Future + Send,
        F::Output: Send,
    {
        use tokio::runtime::{Handle, RuntimeFlavor};
        match Handle::try_current().map(|h| h.runtime_flavor()) {
            Err(_) => self.handle.block_on(fut),
            Ok(RuntimeFlavor::MultiThread) => {
                tokio::task::block_in_place(|| self.handle.block_on(fut))
            }
            Ok(_) => std::thread::scope(|s| match s.spawn(|| self.handle.block_on(fut)).join() {
                Ok(out) => out,
                Err(panic) => std::panic::resume_unwind(panic),
            }),
        }
    }

    /// A connection of the pool.
    pub fn get(&self) -> Result<Object, StoreError> {
        self.block_on(self.pool.get()).map_err(|e| match e {
            deadpool_postgres::PoolError::Backend(e) => match pg_err(&e) {
                StoreError::Postgres(m) => StoreError::Busy(format!("connect: {m}")),
                other => other,
            },
            e => StoreError::Busy(format!("no database connection: {e}")),
        })
    }

    fn rewritten(&self, sql: &str) -> Arc<Rewritten> {
        let mut map = self.rewrites.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(r) = map.get(sql) {
            return Arc::clone(r);
        }
        let r = Arc::new(rewrite(sql));
        map.insert(sql.to_owned(), Arc::clone(&r));
        r
    }
}

/// One pooled connection inside the caller's transaction.
pub struct PgTx<'p> {
    pool: &'p PgPool,
    /// `None` only once [`Drop`] has taken it out of the pool (a connection it could not
    /// clean).
    client: Option<Object>,
    /// A statement of this transaction failed with a retryable error (40001/40P01).
    retryable: Cell<bool>,
    /// A statement of this transaction failed (any error): PostgreSQL has aborted the
    /// transaction, and a COMMIT would be answered with a silent ROLLBACK. A caller that
    /// caught the error and returned `Ok` must not be told its writes were committed.
    failed: Cell<bool>,
    /// This connection may hold session advisory locks ([`PgTx::begin_write`]: account
    /// locks, the writers' lock exclusive), let go of after the transaction ends.
    locked: Cell<bool>,
    /// The connection may be inside a transaction or hold a session lock: set before
    /// `BEGIN`, cleared once the transaction ended and every session lock was let go.
    dirty: Cell<bool>,
}

impl Drop for PgTx<'_> {
    /// A connection returned dirty (a panic in the caller's closure unwound through it, or
    /// ending the transaction failed) is rolled back and unlocked at once, so its row and
    /// advisory locks do not wait in the pool; if even that fails it is closed, never
    /// returned. The pool recycles connections without a round trip (it checks only that
    /// the connection is open), so a connection goes back to it clean or not at all.
    fn drop(&mut self) {
        if !self.dirty.get() {
            return;
        }
        let cleaned = match &self.client {
            Some(c) => self
                .pool
                .block_on(c.batch_execute("ROLLBACK; SELECT pg_advisory_unlock_all()"))
                .is_ok(),
            None => true,
        };
        if !cleaned {
            if let Some(c) = self.client.take() {
                drop(Object::take(c));
            }
        }
    }
}

impl<'p> PgTx<'p> {
    /// Takes a connection and runs `begin` (e.g. `BEGIN ISOLATION LEVEL SERIALIZABLE`).
    pub fn begin(pool: &'p PgPool, begin: &str) -> Result<Self, StoreError> {
        let tx = Self::checkout(pool)?;
        tx.dirty.set(true);
        tx.batch(begin)?;
        Ok(tx)
    }

    /// A pooled connection, no transaction begun yet.
    fn checkout(pool: &'p PgPool) -> Result<Self, StoreError> {
        Ok(Self {
            pool,
            client: Some(pool.get()?),
            retryable: Cell::new(false),
            failed: Cell::new(false),
            locked: Cell::new(false),
            dirty: Cell::new(false),
        })
    }

    fn client(&self) -> Result<&Object, StoreError> {
        self.client
            .as_ref()
            .ok_or_else(|| StoreError::Busy("the database connection was closed".into()))
    }

    /// Whether a statement of this transaction failed with a retryable error.
    pub fn hit_retryable(&self) -> bool {
        self.retryable.get()
    }

    pub fn commit(self) -> Result<(), StoreError> {
        if self.failed.get() {
            // The transaction is aborted: nothing of it can commit. Retried like a
            // conflict: the next attempt sees what made the statement fail (e.g. a row a
            // concurrent writer committed) and takes the path that handles it.
            let rolled_back = self.batch("ROLLBACK").is_ok();
            if self.unlock().is_ok() && rolled_back {
                self.dirty.set(false);
            }
            return Err(StoreError::Retryable(
                "a statement of the transaction failed; it was rolled back".into(),
            ));
        }
        if self.locked.get() {
            // COMMIT and the unlock in one round trip. An error the server reports (it has
            // a SQLSTATE) can only be COMMIT's: the unlock cannot fail that way, and it did
            // not run. Any other error (the connection broke) leaves the outcome unknown,
            // as a broken COMMIT alone would; the connection is closed (Drop).
            let sent = self.pool.block_on(
                self.client()?
                    .batch_execute("COMMIT; SELECT pg_advisory_unlock_all()"),
            );
            return match sent {
                Ok(()) => {
                    self.locked.set(false);
                    self.dirty.set(false);
                    Ok(())
                }
                Err(e) if e.code().is_some() => {
                    let err = self.note(&e);
                    let ended = self.batch("ROLLBACK").is_ok();
                    if self.unlock().is_ok() && ended {
                        self.dirty.set(false);
                    }
                    Err(err)
                }
                Err(e) => Err(self.note(&e)),
            };
        }
        let out = self.batch("COMMIT");
        if out.is_ok() || self.batch("ROLLBACK").is_ok() {
            self.dirty.set(false);
        }
        out
    }

    pub fn rollback(self) -> Result<(), StoreError> {
        let out = self.batch("ROLLBACK");
        let unlocked = self.unlock();
        if out.is_ok() && unlocked.is_ok() {
            self.dirty.set(false);
        }
        out.and(unlocked)
    }

    fn note(&self, e: &tokio_postgres::Error) -> StoreError {
        self.failed.set(true);
        let err = pg_err(e);
        if matches!(err, StoreError::Retryable(_)) {
            self.retryable.set(true);
        }
        err
    }

    /// Runs statements with no parameters.
    pub fn batch(&self, sql: &str) -> Result<(), StoreError> {
        self.pool
            .block_on(self.client()?.batch_execute(sql))
            .map_err(|e| self.note(&e))
    }

    /// Prepares `sql` (cached) with types from `params`, and the values in `$n` order.
    fn prepare<'v>(
        &self,
        sql: &str,
        params: Params<'_, 'v>,
    ) -> Result<(tokio_postgres::Statement, Vec<Value<'v>>), StoreError> {
        let rw = self.pool.rewritten(sql);
        let mut values = Vec::with_capacity(rw.names.len());
        for name in &rw.names {
            let v = params
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| *v)
                .ok_or_else(|| StoreError::Postgres(format!("no value for parameter {name}")))?;
            values.push(v);
        }
        if let Some((extra, _)) = params
            .iter()
            .find(|(n, _)| !rw.names.iter().any(|x| x == n))
        {
            return Err(StoreError::Postgres(format!(
                "parameter {extra} is not in the statement"
            )));
        }
        let types: Vec<Type> = values.iter().map(param_type).collect();
        let st = self
            .pool
            .block_on(self.client()?.prepare_typed_cached(&rw.sql, &types))
            .map_err(|e| self.note(&e))?;
        Ok((st, values))
    }

    fn query(
        &self,
        sql: &str,
        params: Params<'_, '_>,
    ) -> Result<Vec<tokio_postgres::Row>, StoreError> {
        let (st, values) = self.prepare(sql, params)?;
        let refs: Vec<&(dyn ToSql + Sync)> =
            values.iter().map(|v| v as &(dyn ToSql + Sync)).collect();
        self.pool
            .block_on(self.client()?.query(&st, &refs))
            .map_err(|e| self.note(&e))
    }
}

/// The type a value is prepared with; unspecified (OID 0, the server infers it) for a null.
fn param_type(v: &Value<'_>) -> Type {
    match v {
        Value::Int(_) => Type::INT8,
        Value::Text(_) => Type::TEXT,
        Value::Blob(_) => Type::BYTEA,
        Value::Bool(_) => Type::BOOL,
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
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

/// Reads column `name` of a row as a `T`.
pub(super) fn get<T: FromValue>(r: &tokio_postgres::Row, name: &str) -> Result<T, StoreError> {
    let (idx, col) = r
        .columns()
        .iter()
        .enumerate()
        .find(|(_, c)| c.name() == name)
        .ok_or_else(|| StoreError::Postgres(format!("no column {name}")))?;
    let ty = col.type_();
    let conv = |e: tokio_postgres::Error| StoreError::Postgres(format!("column {name}: {e}"));
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

fn row(r: &tokio_postgres::Row) -> Row<'_> {
    Row {
        inner: RowInner::Pg(r),
    }
}

pub(super) fn query_opt<T>(
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

pub(super) fn query_one<T>(
    c: &PgTx<'_>,
    sql: &str,
    params: Params<'_, '_>,
    f: impl FnOnce(&Row<'_>) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    query_opt(c, sql, params, f)?
        .ok_or_else(|| StoreError::Postgres("the query returned no rows".into()))
}

pub(super) fn query_vec<T>(
    c: &PgTx<'_>,
    sql: &str,
    params: Params<'_, '_>,
    f: impl FnMut(&Row<'_>) -> Result<T, StoreError>,
) -> Result<Vec<T>, StoreError> {
    let rows = c.query(sql, params)?;
    let mut f = f;
    rows.iter().map(|r| f(&row(r))).collect()
}

pub(super) fn execute(
    c: &PgTx<'_>,
    sql: &str,
    params: Params<'_, '_>,
) -> Result<usize, StoreError> {
    let (st, values) = c.prepare(sql, params)?;
    let refs: Vec<&(dyn ToSql + Sync)> = values.iter().map(|v| v as &(dyn ToSql + Sync)).collect();
    let n = c
        .pool
        .block_on(c.client()?.execute(&st, &refs))
        .map_err(|e| c.note(&e))?;
    usize::try_from(n).map_err(|_| StoreError::Postgres(format!("{n} rows")))
}
