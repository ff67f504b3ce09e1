//! [`Conn::Pg`](super::Conn): PostgreSQL under the adapter, through the synchronous
//! `postgres` client and an r2d2 pool.
//!
//! The engine is synchronous and runs on blocking threads (or on no runtime at all: the CLI,
//! `#[test]` fixtures). Each pooled connection is driven **on the thread that queries it**
//! (the client polls its socket inside the call), so a statement costs one round trip to the
//! server and no hand-off to another thread and back (ADR 0012 §8: on 2 busy cores those
//! hand-offs cost more than the round trip). A call made on an async worker anyway (a test
//! body calling the engine directly) leaves the runtime for its duration ([`off_runtime`]);
//! HTTP handlers already call the engine through `spawn_blocking`.
//!
//! * `:name` parameters are rewritten to `$n` (cached per SQL text); `::` casts, string
//!   literals, quoted identifiers and comments are left alone.
//! * Statements are prepared (cached per connection) with parameter types taken from the
//!   values: `Int` → INT8, `Text` → TEXT, `Blob` → BYTEA, `Bool` → BOOL, `Null` → inferred.
//! * Columns are read by their actual type (INT2/INT4/INT8/BOOL/TEXT/BYTEA); any other type
//!   (e.g. NUMERIC from `SUM`) is an error unless the SQL casts it.
//! * TLS as the URL's `sslmode`/`sslrootcert` ask, always verified ([`tls`]).
//! * Errors: serialization failure and deadlock (40001, 40P01) → [`StoreError::Retryable`]
//!   (and the transaction remembers it, so `Store::write` retries whatever error the closure
//!   returns); unique violation → [`StoreError::Unique`]; pool timeouts and a closed
//!   connection → [`StoreError::Busy`].

use super::{Params, Value};
use crate::error::StoreError;
use postgres::error::SqlState;
use postgres::types::{ToSql, Type};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::error::Error as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

mod locks;
mod sql;
mod tls;
mod turns;
#[cfg(test)]
pub(super) use locks::{ACCOUNT_LOCKS, WRITERS_LOCK};
use sql::param_type;
use sql::{bind_values, rewrite, Rewritten};
pub(super) use sql::{execute, get, query_one, query_opt, query_vec};
pub use turns::Turn;
use turns::Turns;

/// Runs `f` where a blocking call is allowed: directly on a plain or blocking thread; on an
/// async worker, out of the runtime (`block_in_place` on a multi-thread runtime, a scoped
/// helper thread on a current-thread one), stalling that worker for the call. The client
/// runs a small runtime of its own per call, which tokio refuses inside another.
fn off_runtime<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current().map(|h| h.runtime_flavor()) {
        Err(_) => f(),
        Ok(RuntimeFlavor::MultiThread) => tokio::task::block_in_place(f),
        Ok(_) => std::thread::scope(|s| match s.spawn(f).join() {
            Ok(out) => out,
            Err(panic) => std::panic::resume_unwind(panic),
        }),
    }
}

/// A pooled connection: the client, its prepared statements, and whether it may go back.
pub struct PgConn {
    client: postgres::Client,
    /// Prepared statements by SQL text, one per parameter types.
    statements: HashMap<String, Vec<(Vec<Type>, postgres::Statement)>>,
    /// It could not be left clean (a transaction or session lock may remain), or its
    /// prepared statements no longer match the schema: the pool closes it instead of
    /// handing it out again.
    broken: bool,
    /// When it was last given back to the pool.
    returned: Instant,
}

/// At most this many prepared statements per SQL text and connection (one per pattern of
/// null parameters, which are prepared untyped).
const STATEMENTS_PER_TEXT: usize = 16;

/// A connection idle longer than this is probed before use ([`PgTx::checkout`]).
pub(super) const PROBE_AFTER: Duration = Duration::from_secs(2);

/// The longest a checkout waits for a connection, in line and in the pool together.
const CHECKOUT_WAIT: Duration = Duration::from_secs(10);

/// r2d2's failed background connects, logged (without the URL: it may hold a password).
#[derive(Debug)]
struct LogConnectErrors;

impl r2d2::HandleError<postgres::Error> for LogConnectErrors {
    fn handle_error(&self, error: postgres::Error) {
        tracing::warn!(error = %error, "cannot open a database connection");
    }
}

/// Opens connections for the pool.
struct Manager {
    config: postgres::Config,
    tls: tokio_postgres_rustls::MakeRustlsConnect,
}

impl r2d2::ManageConnection for Manager {
    type Connection = PgConn;
    type Error = postgres::Error;

    fn connect(&self) -> Result<PgConn, postgres::Error> {
        Ok(PgConn {
            client: self.config.connect(self.tls.clone())?,
            statements: HashMap::new(),
            broken: false,
            returned: Instant::now(),
        })
    }

    /// Not called by the pool (it checks nothing on checkout: a [`PgTx`] returns its
    /// connection clean or marks it broken); [`PgTx::checkout`] probes idle ones itself.
    fn is_valid(&self, c: &mut PgConn) -> Result<(), postgres::Error> {
        c.client.batch_execute("")
    }

    fn has_broken(&self, c: &mut PgConn) -> bool {
        c.broken || c.client.is_closed()
    }
}

/// A pool of PostgreSQL connections.
pub struct PgPool {
    /// `None` only once dropped (the pool is closed off any runtime).
    pool: Option<r2d2::Pool<Manager>>,
    rewrites: Mutex<HashMap<String, Arc<Rewritten>>>,
    /// At most this many account locks per write: the server's `max_locks_per_transaction`
    /// (read at connect, at least 64), the average its shared lock table is sized for per
    /// connection, so holding no more per connection cannot overflow it.
    max_account_locks: usize,
    /// Turns to wait for account locks on a connection: half the pool, so writes queued on
    /// busy accounts always leave connections to everyone else.
    lock_waiters: Turns,
    /// Turns to run a write that moves money ([`Self::money_write_turn`]): the cores this
    /// process may run on, unless [`Self::with_money_writes`] says otherwise.
    money_writers: Turns,
    /// A seat per pooled connection, taken before one is checked out: r2d2 hands a freed
    /// connection to any of its waiters, so under saturation one request could wait its
    /// whole 10 s while later ones got through; in line for a seat they are served in order,
    /// and a seat holder waits in the pool only while a connection is being opened (the
    /// pool opens them on demand and closes broken ones), within the same 10 s.
    seats: Turns,
}

impl std::fmt::Debug for PgPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // never the URL: it may hold a password
        f.debug_struct("PgPool").finish_non_exhaustive()
    }
}

impl Drop for PgPool {
    fn drop(&mut self) {
        // closing the idle connections runs their clients: off any runtime
        if let Some(pool) = self.pool.take() {
            off_runtime(move || drop(pool));
        }
    }
}

fn pg_err(e: &postgres::Error) -> StoreError {
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

/// The server's `max_pred_locks_per_transaction` below which it is warned about at start
/// (`scripts/postgres.sh` sets 1024; PostgreSQL's default is 64).
pub const MIN_PREDICATE_LOCKS: usize = 1024;

impl PgPool {
    /// A pool over `url` (`postgres://…` or a `host=… dbname=…` conninfo); `max` connections,
    /// each wait for one bounded by 10 s. Connects once to fail early.
    pub fn connect(url: &str, max: usize) -> Result<Self, StoreError> {
        // libpq's environment, which this driver does not read: refused rather than ignored
        let pgssl = ["PGSSLMODE", "PGSSLROOTCERT"]
            .into_iter()
            .find(|v| std::env::var_os(v).is_some());
        let tls = tls::from_url(url, pgssl)?;
        let mut config = tls.config;
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
            .tcp_user_timeout(Duration::from_secs(25))
            .connect_timeout(Duration::from_secs(10));
        let max = u32::try_from(max.max(1)).unwrap_or(u32::MAX);
        let builder = r2d2::Pool::builder()
            .max_size(max)
            // opened as needed, not all up front (several instances share one server)
            .min_idle(Some(0))
            // no round trip per checkout: a PgTx returns its connection clean (its
            // transaction ended, its session locks let go) or marks it broken
            .test_on_check_out(false)
            .connection_timeout(Duration::from_secs(10))
            .error_handler(Box::new(LogConnectErrors));
        // One connection first, outside the pool: a wrong password or database name fails
        // at once with the server's own words (the pool would retry in the background until
        // its wait ran out).
        let first = off_runtime(|| -> Result<usize, postgres::Error> {
            let mut c = config.connect(tls.connector.clone())?;
            let row = c.query_one(
                "SELECT current_setting('max_locks_per_transaction'),
                        current_setting('max_pred_locks_per_transaction')",
                &[],
            )?;
            let number = |i: usize| -> Result<Option<usize>, postgres::Error> {
                Ok(row.try_get::<_, String>(i)?.trim().parse::<usize>().ok())
            };
            if let Some(n) = number(1)?.filter(|n| *n < MIN_PREDICATE_LOCKS) {
                tracing::warn!(
                    max_pred_locks_per_transaction = n,
                    "the server keeps few predicate locks a transaction: settlement batches \
                     read thousands of rows, the server promotes their locks to whole tables, \
                     and concurrent batches abort each other (set it to {MIN_PREDICATE_LOCKS} \
                     or more)"
                );
            }
            Ok(number(0)?.unwrap_or(locks::MIN_ACCOUNT_LOCKS))
        });
        let setting = match first {
            Ok(n) => n,
            Err(e) => {
                return Err(match pg_err(&e) {
                    StoreError::Postgres(m) => StoreError::Busy(format!("connect: {m}")),
                    other => other,
                })
            }
        };
        let manager = Manager {
            config,
            tls: tls.connector,
        };
        let pool = off_runtime(|| builder.build(manager))
            .map_err(|e| StoreError::Busy(format!("connect: {e}")))?;
        let turns = usize::try_from(max / 2).unwrap_or(1).max(1);
        Ok(Self {
            pool: Some(pool),
            rewrites: Mutex::new(HashMap::new()),
            max_account_locks: setting.max(locks::MIN_ACCOUNT_LOCKS),
            lock_waiters: Turns::new(turns),
            seats: Turns::new(usize::try_from(max).unwrap_or(1)),
            money_writers: Turns::new(std::thread::available_parallelism().map_or(2, usize::from)),
        })
    }

    /// At most `n` writes that move money at once ([`Self::money_write_turn`]), at least one
    /// and at most the pool's connections. The default, the cores this process may run on,
    /// suits a database on the same machine (more writes at once only add contention for
    /// the same cores: perf.md §8); a backend on small hosts whose database has cores of its
    /// own keeps the database busy with more (`backend serve --db-money-writes`).
    #[must_use]
    pub fn with_money_writes(mut self, n: usize) -> Self {
        let most = usize::try_from(self.max_size()).unwrap_or(usize::MAX);
        self.money_writers = Turns::new(n.clamp(1, most.max(1)));
        self
    }

    /// How many money-write turns are free.
    #[cfg(test)]
    pub(crate) fn money_turns_free(&self) -> usize {
        self.money_writers.free()
    }

    /// How many wait in line for a connection.
    #[cfg(test)]
    pub(crate) fn waiting_for_a_connection(&self) -> usize {
        self.seats.waiting()
    }

    /// At most this many account locks per write ([`PgTx::begin_write`]).
    pub fn max_account_locks(&self) -> usize {
        self.max_account_locks
    }

    /// A turn to wait for account locks on a connection (held until the locks are got),
    /// waited for without a connection; busy after 10 s.
    pub(super) fn lock_wait_turn(&self) -> Result<Turn<'_>, StoreError> {
        self.lock_waiters
            .take("too many writes wait for the same accounts")
    }

    /// A turn to run a write that moves money ([`crate::store::Store::write_for`]), taken
    /// once its account locks are held (a write waiting for a busy account holds no turn)
    /// and given back when its transaction is over (never held through a retry's backoff);
    /// busy after 10 s. As many at once as the machine has cores keeps the cores busy.
    /// (It was made for SERIALIZABLE, which locks what a transaction read by index page, not
    /// by row: many settlement batches at once aborted each other on pages they shared
    /// though they shared no rider. Money writes now run at REPEATABLE READ, which has no
    /// such false conflicts; the turn stays a bound on the work in flight.)
    pub fn money_write_turn(&self) -> Result<Turn<'_>, StoreError> {
        self.money_writers
            .take("too many writes that move money are waiting")
    }

    /// Runs `sql` (no parameters) on a connection of its own, outside any transaction (e.g.
    /// `CREATE DATABASE`).
    pub fn execute_alone(&self, sql: &str) -> Result<(), StoreError> {
        PgTx::checkout(self)?.batch(sql)
    }

    /// A connection of the pool.
    /// How many connections the pool may hold.
    fn max_size(&self) -> u32 {
        self.pool.as_ref().map_or(1, r2d2::Pool::max_size)
    }

    /// A connection of the pool, waited for until `deadline` (at least a moment: an idle
    /// one is taken even when the time is up).
    fn get(&self, deadline: Instant) -> Result<r2d2::PooledConnection<Manager>, StoreError> {
        let pool = self
            .pool
            .as_ref()
            .ok_or_else(|| StoreError::Busy("the pool is closing".into()))?;
        let left = deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(50));
        off_runtime(|| pool.get_timeout(left))
            .map_err(|e| StoreError::Busy(format!("no database connection: {e}")))
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
    /// `None` only once [`Drop`] has let go of it.
    conn: RefCell<Option<r2d2::PooledConnection<Manager>>>,
    /// A statement of this transaction failed with a retryable error (40001/40P01, or a
    /// unique violation when [`Self::unique_violations_conflict`]).
    retryable: Cell<bool>,
    /// A unique violation is a conflict with a concurrent writer, retried
    /// ([`Self::unique_violations_conflict`]).
    unique_conflicts: Cell<bool>,
    /// A statement of this transaction met a unique violation taken as a conflict.
    unique_hit: Cell<bool>,
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
    /// A write that moves money: its turn ([`PgPool::money_write_turn`]), given back when
    /// the transaction is over (after [`Drop`] has ended it).
    turn: Option<Turn<'p>>,
    /// Its seat among the pool's connections, given back after [`Drop`] has returned the
    /// connection.
    _seat: Turn<'p>,
}

impl Drop for PgTx<'_> {
    /// A connection returned dirty (a panic in the caller's closure unwound through it, or
    /// ending the transaction failed) is rolled back and unlocked at once, so its row and
    /// advisory locks do not wait in the pool; if even that fails it is closed, never
    /// returned. The pool checks nothing on checkout, so a connection goes back to it clean
    /// or not at all.
    fn drop(&mut self) {
        let dirty = self.dirty.get();
        let Some(mut conn) = self.conn.get_mut().take() else {
            return;
        };
        off_runtime(move || {
            if dirty
                && conn
                    .client
                    .batch_execute("ROLLBACK; SELECT pg_advisory_unlock_all()")
                    .is_err()
            {
                conn.broken = true;
            }
            conn.returned = Instant::now();
            // a broken connection is closed here, by the pool
            drop(conn);
        });
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

    /// A pooled connection, no transaction begun yet. One idle for a while is probed first
    /// (one empty query): the client reads its socket only inside a call, so a connection
    /// the server closed meanwhile (a restart, a failover, an idle session killed on the
    /// way) still looks open, and would fail its request's first statement. A dead one is
    /// closed and the next one taken.
    fn checkout(pool: &'p PgPool) -> Result<Self, StoreError> {
        // one wait in all: in line for a seat, then (rarely: while a connection is being
        // opened) in the pool
        let now = Instant::now();
        let deadline = now.checked_add(CHECKOUT_WAIT).unwrap_or(now);
        let seat = pool
            .seats
            .take("no database connection: every one is in use")?;
        let mut conn = pool.get(deadline)?;
        for _ in 0..pool.max_size() {
            if conn.returned.elapsed() < PROBE_AFTER {
                break;
            }
            let dead = off_runtime(|| conn.client.batch_execute("").is_err());
            if !dead {
                break;
            }
            conn.broken = true;
            off_runtime(move || drop(conn));
            conn = pool.get(deadline)?;
        }
        Ok(Self {
            pool,
            conn: RefCell::new(Some(conn)),
            retryable: Cell::new(false),
            unique_conflicts: Cell::new(false),
            unique_hit: Cell::new(false),
            failed: Cell::new(false),
            locked: Cell::new(false),
            dirty: Cell::new(false),
            turn: None,
            _seat: seat,
        })
    }

    /// Runs `f` on the connection (off any runtime); an error is noted on the transaction.
    fn with<T: Send>(
        &self,
        f: impl FnOnce(&mut PgConn) -> Result<T, postgres::Error> + Send,
    ) -> Result<T, StoreError> {
        let mut guard = self
            .conn
            .try_borrow_mut()
            .map_err(|_| StoreError::Postgres("the connection is in use".into()))?;
        let conn = guard
            .as_mut()
            .ok_or_else(|| StoreError::Busy("the database connection was closed".into()))?;
        let conn: &mut PgConn = conn;
        off_runtime(|| f(&mut *conn)).map_err(|e| {
            // a prepared statement the schema changed under (a migration by another
            // instance): the connection's cache is stale, so it is closed when given back
            if e.code() == Some(&SqlState::FEATURE_NOT_SUPPORTED)
                || e.code() == Some(&SqlState::INVALID_SQL_STATEMENT_NAME)
            {
                conn.broken = true;
            }
            self.note(&e)
        })
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
            let mut code = None;
            let sent = self.with(|c| {
                c.client
                    .batch_execute("COMMIT; SELECT pg_advisory_unlock_all()")
                    .inspect_err(|e| code = e.code().cloned())
            });
            return match sent {
                Ok(()) => {
                    self.locked.set(false);
                    self.dirty.set(false);
                    Ok(())
                }
                Err(err) if code.is_some() => {
                    let ended = self.batch("ROLLBACK").is_ok();
                    if self.unlock().is_ok() && ended {
                        self.dirty.set(false);
                    }
                    Err(err)
                }
                Err(err) => Err(err),
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

    fn note(&self, e: &postgres::Error) -> StoreError {
        self.failed.set(true);
        let err = pg_err(e);
        if matches!(err, StoreError::Retryable(_)) {
            self.retryable.set(true);
        } else if self.unique_conflicts.get() && matches!(err, StoreError::Unique { .. }) {
            self.retryable.set(true);
            self.unique_hit.set(true);
        }
        err
    }

    /// Whether a statement met a unique violation taken as a conflict
    /// ([`Self::unique_violations_conflict`]).
    pub fn hit_unique(&self) -> bool {
        self.unique_hit.get()
    }

    /// Makes a unique violation in this transaction a conflict, run again like a
    /// serialization failure. At REPEATABLE READ, PostgreSQL reports an insert that meets a
    /// key a concurrent transaction committed after this one's snapshot as a unique violation
    /// (SERIALIZABLE reports it as a serialization failure): the next attempt sees that row
    /// and takes the path that handles it ([`crate::store::PG_UNIQUE_RETRIES`]: a key that
    /// conflicts while the write runs alone is the write's own fault, reported as it is).
    pub fn unique_violations_conflict(&self) {
        self.unique_conflicts.set(true);
    }

    /// Runs statements with no parameters.
    pub fn batch(&self, sql: &str) -> Result<(), StoreError> {
        self.with(|c| c.client.batch_execute(sql))
    }

    /// The values of `params` in `$n` order of `sql`'s rewrite, and the rewritten SQL.
    fn bind<'v>(
        &self,
        sql: &str,
        params: Params<'_, 'v>,
    ) -> Result<(Arc<Rewritten>, Vec<Value<'v>>), StoreError> {
        let rw = self.pool.rewritten(sql);
        let values = bind_values(&rw, params)?;
        Ok((rw, values))
    }

    /// Runs `sql` with `params` through `run` on its prepared statement (prepared once per
    /// connection and parameter types).
    fn run<T: Send>(
        &self,
        sql: &str,
        params: Params<'_, '_>,
        run: impl FnOnce(
                &mut postgres::Client,
                &postgres::Statement,
                &[&(dyn ToSql + Sync)],
            ) -> Result<T, postgres::Error>
            + Send,
    ) -> Result<T, StoreError> {
        let (rw, values) = self.bind(sql, params)?;
        let types: Vec<Type> = values.iter().map(param_type).collect();
        let refs: Vec<&(dyn ToSql + Sync)> =
            values.iter().map(|v| v as &(dyn ToSql + Sync)).collect();
        self.with(move |c| {
            let cached = c
                .statements
                .get(rw.sql.as_str())
                .and_then(|v| v.iter().find(|(t, _)| *t == types))
                .map(|(_, st)| st.clone());
            let st = match cached {
                Some(st) => st,
                None => {
                    let st = c.client.prepare_typed(&rw.sql, &types)?;
                    let kept = c.statements.entry(rw.sql.clone()).or_default();
                    // one text has one statement per pattern of null parameters: bounded
                    // per text, so no caller's nulls can grow a connection's cache for ever
                    if kept.len() >= STATEMENTS_PER_TEXT {
                        kept.clear();
                    }
                    kept.push((types, st.clone()));
                    st
                }
            };
            run(&mut c.client, &st, &refs)
        })
    }

    fn query(&self, sql: &str, params: Params<'_, '_>) -> Result<Vec<postgres::Row>, StoreError> {
        self.run(sql, params, |c, st, refs| c.query(st, refs))
    }

    /// The first row of `sql` without parameters, run as a simple query (text values).
    pub(super) fn simple_first(
        &self,
        sql: &str,
    ) -> Result<Option<Vec<Option<String>>>, StoreError> {
        let msgs = self.with(|c| c.client.simple_query(sql))?;
        Ok(msgs.iter().find_map(|m| match m {
            postgres::SimpleQueryMessage::Row(r) => {
                Some((0..r.len()).map(|i| r.get(i).map(str::to_owned)).collect())
            }
            _ => None,
        }))
    }
}
