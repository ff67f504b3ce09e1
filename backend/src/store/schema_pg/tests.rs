//! PostgreSQL's schema steps: one a version up to this build's, and a database of an older
//! build, upgraded step by step, is exactly a fresh one ("upgraded equals fresh", as
//! `store::tests::upgraded_v1_schema_equals_a_fresh_one` is for SQLite).

use super::{migrate, migrate_up_to, PG_BASELINE_VERSION, PG_STEPS};
use crate::store::db::pg::{PgPool, PgTx};
use crate::store::db::pg_tests::fresh_pool;
use crate::store::db::{named_params, Conn};
use crate::store::SCHEMA_VERSION;

#[test]
fn there_is_one_step_a_version_up_to_this_build_s() {
    let versions: Vec<u32> = PG_STEPS.iter().map(|s| s.0).collect();
    let expected: Vec<u32> = (PG_BASELINE_VERSION + 1..=SCHEMA_VERSION).collect();
    assert_eq!(versions, expected);
}

/// The schema as the catalog has it: tables and their persistence, columns, constraints,
/// indexes, triggers, and the functions' source.
fn catalog(pool: &PgPool) -> Vec<String> {
    let tx = PgTx::begin(pool, "BEGIN").unwrap();
    let conn = Conn::Pg(&tx);
    let mut out = Vec::new();
    for sql in [
        "SELECT relname::text || ' ' || relkind::text || relpersistence::text AS d FROM pg_class
         WHERE relnamespace = 'public'::regnamespace",
        "SELECT table_name || '.' || column_name || ' ' || data_type || ' ' || is_nullable
                || ' ' || coalesce(column_default, '') || ' ' || is_identity AS d
         FROM information_schema.columns WHERE table_schema = 'public'",
        "SELECT conrelid::regclass::text || ' ' || conname || ' ' || pg_get_constraintdef(oid) AS d
         FROM pg_constraint WHERE connamespace = 'public'::regnamespace",
        "SELECT indexdef AS d FROM pg_indexes WHERE schemaname = 'public'",
        "SELECT pg_get_triggerdef(oid) AS d FROM pg_trigger WHERE NOT tgisinternal",
        "SELECT proname || ' ' || md5(prosrc) AS d FROM pg_proc
         WHERE pronamespace = 'public'::regnamespace",
    ] {
        out.extend(
            conn.query_vec(sql, named_params! {}, |r| r.get::<String>("d"))
                .unwrap(),
        );
    }
    out.sort();
    out
}

fn version(pool: &PgPool) -> u32 {
    let tx = PgTx::begin(pool, "BEGIN").unwrap();
    Conn::Pg(&tx)
        .query_one(
            "SELECT version FROM schema_version",
            named_params! {},
            |r| r.get("version"),
        )
        .unwrap()
}

#[test]
fn a_database_upgraded_step_by_step_is_exactly_a_fresh_one() {
    let Some(fresh) = fresh_pool() else { return };
    migrate(&fresh).unwrap();
    assert_eq!(version(&fresh), SCHEMA_VERSION);
    let want = catalog(&fresh);
    assert!(
        want.iter().any(|d| d.contains("mancard_touch_accounts")),
        "{want:?}"
    );
    for from in PG_BASELINE_VERSION..SCHEMA_VERSION {
        let Some(old) = fresh_pool() else { return };
        migrate_up_to(&old, from).unwrap();
        assert_eq!(version(&old), from);
        migrate(&old).unwrap();
        assert_eq!(version(&old), SCHEMA_VERSION, "from {from}");
        assert_eq!(catalog(&old), want, "upgraded from {from}");
    }
}
