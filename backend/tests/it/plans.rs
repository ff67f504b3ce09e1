//! What a request costs the database (issue #16): in proportion to the request, not to the
//! tables.
//!
//! - A batch's rows are read through indexes, never a table whole. Young tables (a fresh
//!   database, a new month's partition) have no statistics, and PostgreSQL's default guesses
//!   then chose sequential scans and a hash of every verdict for a handful of keys: a batch's
//!   cost grew with the tables, and at SERIALIZABLE a whole-table scan also locks the table
//!   against every concurrent writer.
//! - A sync's config bundle, while nothing it lists changed, is one statement instead of a
//!   read of every certificate and revocation.

use mancard_api::TapStatus;
use mancard_backend::store::Revocation;
use mancard_testkit::backend::*;

/// Rows read (sequentially, through an index) and sequential scans of the tables a batch
/// settles into, as the server counts them.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Reads {
    seq_scans: i64,
    rows: i64,
    inserted: i64,
}

const TABLES: [&str; 3] = ["taps", "ledger", "tap_verdicts"];

/// The server's counters of `TABLES`, once they show `taps_inserted` tap rows: a connection
/// reports its counters when idle, within about ten seconds.
fn reads(url: &str, taps_inserted: i64) -> Vec<Reads> {
    let mut client = postgres::Client::connect(url, postgres::NoTls).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let out: Vec<Reads> = TABLES
            .iter()
            .map(|t| {
                let row = client
                    .query_one(
                        "SELECT seq_scan, seq_tup_read + COALESCE(idx_tup_fetch, 0), n_tup_ins
                           FROM pg_stat_user_tables WHERE relname = $1",
                        &[t],
                    )
                    .unwrap();
                Reads {
                    seq_scans: row.get(0),
                    rows: row.get(1),
                    inserted: row.get(2),
                }
            })
            .collect();
        if out[0].inserted >= taps_inserted {
            return out;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the server never reported {taps_inserted} tap rows: {out:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

/// A batch of 4 taps after one of 120: on tables that have no statistics yet, the second
/// batch reads no table sequentially and fewer rows of each than half of what the first
/// batch left there. Fails with the planner's default guesses (a sequential scan of `taps`
/// for the challenges answered, a hash of every verdict for the newest verdict of each tap).
#[test]
fn a_batch_reads_rows_in_proportion_to_itself_not_to_the_tables() {
    if !on_postgres() {
        eprintln!("skipped: this counts PostgreSQL's scans (MANCARD_TEST_DB=postgres)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let cfg = backend_config(&dir);
    let url = cfg.database_url.clone().unwrap().0;
    let e = mancard_backend::Engine::open(cfg, "http://127.0.0.1".into()).unwrap();
    let v = Validator::register_on(&e, 3);
    let base = ride_base(e.now());
    let mut riders: Vec<EngineRider> = (0..62)
        .map(|i| EngineRider::setup(&e, &format!("+98912555{i:04}"), 100_000))
        .collect();
    e.advance_clock(base + 3 * 3600 - e.now()).unwrap();
    let (many, few) = riders.split_at_mut(60);
    let ingest = |riders: &mut [EngineRider], batch_id: u8| {
        let batch = two_rides_each(&v, riders, batch_id, base);
        let b = e.ingest_batch(&batch).unwrap();
        assert!(
            b.records.iter().all(|t| t.status == TapStatus::Settled),
            "{b:?}"
        );
    };
    ingest(many, 1);
    let before = reads(&url, 120);
    ingest(few, 2);
    let after = reads(&url, 124);
    for ((t, b), a) in TABLES.iter().zip(&before).zip(&after) {
        assert_eq!(
            a.seq_scans, b.seq_scans,
            "{t}: the 4-tap batch scanned the whole table ({b:?} → {a:?})"
        );
        assert!(
            a.rows - b.rows < b.inserted / 2,
            "{t}: the 4-tap batch read {} rows of a table of about {} ({b:?} → {a:?})",
            a.rows - b.rows,
            b.inserted
        );
    }
    assert!(e.audit().unwrap().ok);
}

/// The deny list of a served bundle.
fn deny_list(b: &mancard_backend::features::validators::SignedBundle) -> Vec<[u8; 16]> {
    let cfg = mancard_protocol::ValidatorConfig::decode(&b.encoded).unwrap();
    cfg.body.deny_list.iter().map(|p| p.0).collect()
}

/// Two instances on one database. Asked again with nothing changed, an instance serves the
/// bundle it built for one statement (no read of the deny lists); a revocation written by the
/// other instance makes the next one a new version that lists the device's pseudonym. Fails
/// without the memo (the repeat costs the deny-list reads) and with a memo that ignores the
/// database's generation (the revoked device is missing).
#[test]
fn a_current_bundle_costs_one_statement_and_a_revocation_anywhere_renews_it() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = backend_config(&dir);
    let a = mancard_backend::Engine::open(cfg.clone(), "http://127.0.0.1".into()).unwrap();
    let b = mancard_backend::Engine::open(cfg, "http://127.0.0.1".into()).unwrap();
    let rider = EngineRider::setup(&a, "+989125550100", 0);
    let first = a.config_bundle().unwrap();
    let before = mancard_backend::statements_on_this_thread();
    let again = a.config_bundle().unwrap();
    let cost = mancard_backend::statements_on_this_thread() - before;
    assert_eq!(again.version, first.version);
    assert_eq!(again.encoded, first.encoded);
    assert_eq!(cost, 1, "a current bundle: {cost} statements");

    let cert = b
        .store()
        .read(|tx| tx.certificate(&mancard_backend::ids::CertHash(rider.cert_hash)))
        .unwrap()
        .unwrap();
    assert!(!deny_list(&again).contains(&cert.pseudonym.0));
    b.store()
        .write(|tx| tx.revoke(cert.device_id, Revocation::SharedPass, b.now()))
        .unwrap();
    let renewed = a.config_bundle().unwrap();
    assert!(
        renewed.version > first.version,
        "{} {}",
        renewed.version,
        first.version
    );
    assert!(deny_list(&renewed).contains(&cert.pseudonym.0));
    // and the other instance serves the same version
    assert_eq!(b.config_bundle().unwrap().version, renewed.version);
}
