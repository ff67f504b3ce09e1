//! Server configuration and issuance policy.

use crate::providers::ProvidersConfig;
use mancard_protocol::{Tariff, TimeRules};
use std::net::SocketAddr;
use std::path::PathBuf;

/// Counters in a certificate by default: far more than the rides its allowance pays for
/// (500,000 rials is 25 full fares), so the money, not the counters, is what runs out, and
/// restarts of the phone's app (each may skip the rest of a reserved block after a crash)
/// cannot strand a rider whose balance covers the ride.
pub const DEFAULT_COUNTERS_PER_CERT: u32 = 1_024;
// At least 1,024 (issue #14: 64 stranded riders whose app restarted a few times).
const _: () = assert!(DEFAULT_COUNTERS_PER_CERT >= 1_024);

/// Policy knobs of issuance, sessions and top-up. Defaults suit a pilot.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Certificate lifetime (default 72 h).
    pub cert_lifetime_secs: i64,
    /// How far back a certificate's `valid_from` is set, to tolerate validator clocks running slow.
    pub cert_backdate_secs: i64,
    /// Counters per certificate (default [`DEFAULT_COUNTERS_PER_CERT`]): a ride costs one, so
    /// this bounds the rides one certificate can sign offline whatever its allowance; the
    /// wallet asks for the next certificate when under a quarter is left.
    pub counters_per_cert: u32,
    /// Each certificate's counter range starts a random 0..this many counters after the
    /// previous one's end (the first one's after 0): consecutive ranges would link a phone's
    /// certificates, whose pseudonyms are otherwise unrelated. 0 turns the gap off.
    pub counter_gap_max: u32,
    /// Upper bound of a certificate's offline amount (the balance bounds it too).
    pub max_offline_amount: i64,
    /// Replenishment is due when less than this remains of a certificate's lifetime.
    pub replenish_before_expiry_secs: i64,
    pub otp_ttl_secs: i64,
    /// Wrong guesses a code survives: the one that reaches this many dies (default 3). A guess
    /// names its code request (`request_id`) and counts against that request's code only.
    pub otp_max_attempts: i64,
    /// Unused since issue #15 (code sends are paced by `otp_send_interval_secs` and
    /// `otp_send_burst` instead of an hourly cap that let a stranger lock a rider out).
    pub otp_max_per_hour: i64,
    pub session_ttl_secs: i64,
    pub nonce_ttl_secs: i64,
    pub topup_ttl_secs: i64,
    pub topup_min: i64,
    pub topup_max: i64,
    /// Body limit of JSON endpoints, bytes.
    pub json_body_limit: usize,
    /// Body limit of the validator batch upload, bytes.
    pub batch_body_limit: usize,
    /// Most wallet log entries one sync may carry.
    pub max_sync_entries: usize,
    /// Seconds between reconciliation runs of paid-but-unverified top-ups (0: never; then
    /// call `Engine::reconcile_topups` yourself).
    pub reconcile_every_secs: u64,
    /// Lifetime of a validator certificate (default 365 days).
    pub validator_cert_lifetime_secs: i64,
    /// The time rules signed into the config bundle (longest pass, clock skew, tap window);
    /// settlement refuses passes longer than this bundle allows.
    pub time_rules: TimeRules,
    /// How far after the backend's clock a reported tap may be dated (validator and phone
    /// clocks run a little fast); later ones are refused as `from_the_future`.
    pub future_tolerance_secs: i64,
    /// Abuse events (one pass shown at several validators) allowed per account and fare day;
    /// one more revokes the device (`shared_pass`).
    pub shared_pass_limit: i64,
    /// Certificates the devices of one account may be issued in 24 hours (a retry that gets
    /// the same certificate back does not count).
    pub max_certificates_per_day: u32,
    /// A session ends this long after its last use (default 7 days; `session_ttl_secs` is the
    /// absolute limit).
    pub session_idle_secs: i64,
    /// Code sends to one phone number from everyone together are paced: one per this many
    /// seconds on average (default 30), after a burst of `otp_send_burst` (default 6). This
    /// bounds the SMS a number can be bombed with and the guesses a distributed attacker gets.
    pub otp_send_interval_secs: i64,
    pub otp_send_burst: i64,
    /// Code sends to one phone number from one client address (IPv6: one /64) are paced
    /// more tightly: one per this many seconds (default 120) after a burst of
    /// `otp_pair_send_burst` (default 3). One address can use at most a quarter of the
    /// number's pace, so a stranger at one address never keeps the rider from a fresh code.
    pub otp_pair_send_interval_secs: i64,
    pub otp_pair_send_burst: i64,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            cert_lifetime_secs: 72 * 3600,
            cert_backdate_secs: 300,
            counters_per_cert: DEFAULT_COUNTERS_PER_CERT,
            counter_gap_max: 1 << 16,
            max_offline_amount: 500_000,
            replenish_before_expiry_secs: 24 * 3600,
            otp_ttl_secs: 300,
            otp_max_attempts: 3,
            otp_max_per_hour: 5,
            session_ttl_secs: 30 * 24 * 3600,
            nonce_ttl_secs: 300,
            topup_ttl_secs: 900,
            topup_min: 10_000,
            topup_max: 100_000_000,
            json_body_limit: 1024 * 1024,
            batch_body_limit: 8 * 1024 * 1024,
            max_sync_entries: 1_000,
            reconcile_every_secs: 60,
            validator_cert_lifetime_secs: 365 * 86_400,
            time_rules: TimeRules::default(),
            future_tolerance_secs: 300,
            shared_pass_limit: 1,
            max_certificates_per_day: 8,
            session_idle_secs: 7 * 24 * 3600,
            otp_send_interval_secs: 30,
            otp_send_burst: 6,
            otp_pair_send_interval_secs: 120,
            otp_pair_send_burst: 3,
        }
    }
}

/// A PostgreSQL URL or conninfo; it may hold a password, so `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl(pub String);

impl std::fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DatabaseUrl(..)")
    }
}

/// Everything [`crate::Backend::start`] needs.
#[derive(Debug, Clone)]
pub struct BackendConfig {
    /// SQLite database file (created if missing). The issuer key file lives next to it, see
    /// [`crate::keys::key_file_path`], unless `keys_path` names it. With `database_url` set,
    /// no SQLite file is opened: `db_path` only anchors the default key file.
    pub db_path: PathBuf,
    /// A PostgreSQL database (`postgres://…`) instead of the SQLite file (issue #16). Several
    /// instances may share it. Never logged (it may hold a password): its `Debug` is redacted.
    pub database_url: Option<DatabaseUrl>,
    /// The issuer key file; default [`crate::keys::key_file_path`] of `db_path`. Instances
    /// sharing one PostgreSQL database must share the key file too.
    pub keys_path: Option<PathBuf>,
    /// Connections in the PostgreSQL pool.
    pub db_pool_max: usize,
    /// Writes that move money at once on PostgreSQL, at most `db_pool_max`; `None`: the cores
    /// this process may run on (`PgPool::with_money_writes`).
    pub db_money_writes: Option<usize>,
    /// Listen address; port 0 picks an ephemeral port.
    pub listen: SocketAddr,
    /// Sandbox mode: one-time codes are logged and readable at `/sandbox/otp`, and the sandbox
    /// payment gateway under `/sandbox/` is enabled.
    pub sandbox: bool,
    /// The named operators of `/v1/admin/*` (scopes, token digests) and the two-person
    /// rule's limits; none configured disables the admin endpoints.
    pub operators: crate::operators::Operators,
    /// Base URL put in payment and callback links; default `http://<bound address>`.
    pub public_url: Option<String>,
    pub policy: Policy,
    /// The tariff served to validators and used at settlement.
    pub tariff: Tariff,
    /// The SMS sender and the payment gateway (sandbox ones by default; production mode
    /// refuses to start without real ones).
    pub providers: ProvidersConfig,
    /// Rate limits, timeouts and load shedding at the HTTP edge.
    pub edge: crate::edge::EdgeLimits,
}

impl BackendConfig {
    /// A sandbox configuration on an ephemeral loopback port (tests, demo); its edge limits
    /// are [`crate::EdgeLimits::loopback`] (no per-address limits: every client is 127.0.0.1).
    pub fn sandbox(db_path: impl Into<PathBuf>) -> Self {
        Self {
            db_path: db_path.into(),
            database_url: None,
            keys_path: None,
            db_pool_max: 16,
            db_money_writes: None,
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            sandbox: true,
            operators: crate::operators::Operators::none(),
            public_url: None,
            policy: Policy::default(),
            tariff: Tariff::urmia_default(),
            providers: ProvidersConfig::default(),
            edge: crate::edge::EdgeLimits::loopback(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{BackendConfig, DatabaseUrl};

    /// A configuration printed for debugging never shows the database password.
    #[test]
    fn the_database_url_is_never_in_debug_output() {
        let mut cfg = BackendConfig::sandbox("/tmp/x.sqlite");
        cfg.database_url = Some(DatabaseUrl("postgres://app:hunter2@db/mancard".into()));
        let shown = format!("{cfg:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("DatabaseUrl"), "{shown}");
    }
}
