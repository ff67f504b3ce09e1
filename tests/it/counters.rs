//! Counters across restarts: an open that never taps reserves nothing, a clean close and a quiet
//! field drop record the next counter durably (so a restart resumes inside the reserved block),
//! and only a crash between a tap and the next park skips counters — at most a block.

use mancard::{Wallet, WalletConfig, WalletError, COUNTER_FILE};
use mancard_protocol::{StatusWord, TapAuthorization};
use mancard_testkit::wallet::*;
use mancard_testkit::{CertSpec, Issuer, T0};
use std::time::Duration;

/// A certificate with the backend's default counter range (1,024 counters).
pub fn backend_sized() -> CertSpec {
    CertSpec {
        first: 0,
        last: 1_023,
        ..CertSpec::default()
    }
}

fn device_now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Waits (up to 5 s) until the wallet has written `parks` parks.
fn wait_for_parks(w: &Wallet, parks: u64) {
    for _ in 0..500 {
        if w.stats().counter_parks >= parks {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("no park after the quiet period: {:?}", w.stats());
}

#[test]
fn a_thousand_open_close_cycles_then_a_tap_succeeds() {
    let d = tempfile::tempdir().unwrap();
    let issuer = Issuer::new(1);
    let reader = Reader::new(&issuer, READER_ID);
    let first = {
        let w = open(d.path());
        provision(&w, &issuer, backend_sized());
        set_clock(&w, T0);
        reader.tap(&w).unwrap().authorization.counter
    };
    for i in 0..1_000 {
        let w = open(d.path());
        // what `mancard wallet status` does on every run
        let s = w.status(device_now()).unwrap();
        assert_eq!(s.counters_left, 1_023 - u64::from(first), "cycle {i}");
        assert_eq!(w.stats().counter_fsyncs, 0, "cycle {i}: an open wrote");
        if i % 10 == 0 {
            // a reader came close and went away: a block is reserved, the close parks it
            select(&w);
            w.deactivated();
        }
        if i % 2 == 0 {
            w.close().unwrap();
        } else {
            drop(w);
        }
    }
    let w = open(d.path());
    let t = reader.tap(&w).unwrap();
    assert_eq!(
        t.authorization.counter,
        first + 1,
        "1,000 open/close cycles skipped counters"
    );
    assert_eq!(w.verify_tap_log().unwrap(), 2);
}

#[test]
fn a_quiet_field_drop_parks_and_the_next_open_resumes_there() {
    // (a process killed after the park resumes there too: crash::a_hundred_sigkill_restarts…)
    let d = tempfile::tempdir().unwrap();
    let issuer = Issuer::new(1);
    let reader = Reader::new(&issuer, READER_ID);
    let config = WalletConfig {
        park_after_quiet_ms: 50,
        ..test_config()
    };
    let c0 = {
        let w = open_with(d.path(), config.clone());
        provision(&w, &issuer, backend_sized());
        set_clock(&w, T0);
        let c = reader.tap(&w).unwrap().authorization.counter;
        let s = w.stats();
        assert!(s.counter_mark > s.next_counter, "reserved ahead: {s:?}");
        // the field dropped (tap_with calls deactivated); after the quiet period: parked
        wait_for_parks(&w, 1);
        let s = w.stats();
        assert_eq!(s.counter_mark, s.next_counter, "{s:?}");
        c
    };
    let w = open_with(d.path(), config);
    let c1 = reader.tap(&w).unwrap().authorization.counter;
    assert_eq!(c1, c0 + 1, "counters skipped after a park");
    assert_eq!(w.verify_tap_log().unwrap(), 2);
}

#[test]
fn one_wallet_instance_per_directory() {
    // two instances would each keep a counter mark in memory; one's park could lower the
    // durable mark below counters the other handed out
    let d = tempfile::tempdir().unwrap();
    let w = open(d.path());
    let started = std::time::Instant::now();
    let err = try_open_with(d.path(), test_config()).unwrap_err();
    let err = err.downcast::<WalletError>().unwrap();
    assert!(matches!(*err, WalletError::InUse { .. }), "{err}");
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "it waited first"
    );
    drop(w);
    // closed: the directory is free again
    let w = open(d.path());
    w.close().unwrap();
    let _ = open(d.path());
}

#[test]
fn a_pass_parks_after_the_quiet_period_and_bursts_end_at_the_park() {
    let d = tempfile::tempdir().unwrap();
    let issuer = Issuer::new(1);
    let reader = Reader::new(&issuer, READER_ID);
    let config = WalletConfig {
        park_after_quiet_ms: 30,
        ..test_config()
    };
    let block = u64::from(config.counter_block);
    let w = open_with(d.path(), config);
    provision(&w, &issuer, backend_sized());
    set_clock(&w, T0);
    for round in 1..=4u64 {
        // ten minutes on: the last pass is stale, a new one takes a new counter
        set_clock(&w, T0 + 600 * i64::try_from(round).unwrap());
        reader.tap(&w).unwrap();
        wait_for_parks(&w, 2 * round - 1);
        w.boarding_pass(device_now()).unwrap();
        // no field drops after a pass: the quiet timer parks it all the same
        wait_for_parks(&w, 2 * round);
        let s = w.stats();
        assert_eq!(s.counter_mark, s.next_counter, "round {round}: {s:?}");
        // a pass's inline reservation is no burst: the block stays as configured
        assert_eq!(s.reservation_block, block, "round {round}: {s:?}");
    }
}

#[test]
fn park_counter_is_not_undone_by_a_reservation_already_queued() {
    let d = tempfile::tempdir().unwrap();
    let issuer = Issuer::new(1);
    let reader = Reader::new(&issuer, READER_ID);
    let w = open(d.path());
    provision(&w, &issuer, backend_sized());
    set_clock(&w, T0);
    for i in 0..30 {
        reader.tap(&w).unwrap();
        // what an app about to be stopped calls; reservations its taps queued come after it
        w.park_counter().unwrap();
        std::thread::sleep(Duration::from_millis(5));
        let s = w.stats();
        assert_eq!(
            s.counter_mark, s.next_counter,
            "tap {i}: the park was undone: {s:?}"
        );
    }
}

#[test]
fn a_reader_that_keeps_the_field_up_gets_no_park() {
    // a park needs the wallet quiet: while a reader has ManCard selected nothing is parked,
    // so a tap in progress never waits for a re-reservation
    let d = tempfile::tempdir().unwrap();
    let issuer = Issuer::new(1);
    let reader = Reader::new(&issuer, READER_ID);
    let w = open_with(
        d.path(),
        WalletConfig {
            park_after_quiet_ms: 20,
            ..test_config()
        },
    );
    provision(&w, &issuer, backend_sized());
    set_clock(&w, T0);
    reader.tap(&w).unwrap();
    select(&w);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(w.stats().counter_parks, 0, "parked during a session");
    let before = w.stats().counter_fsyncs;
    w.deactivated();
    wait_for_parks(&w, 1);
    assert_eq!(w.stats().counter_fsyncs, before + 1);
    // the next tap: its SELECT re-reserves (in the background) and the tap goes through
    let s = w.stats();
    let t = reader.tap(&w).unwrap();
    assert_eq!(u64::from(t.authorization.counter), s.next_counter);
}

/// One tap of `fare` at [`T0`]: the authorization, or the status word of the refusal.
fn tap_fare(w: &Wallet, r: &Reader, fare: i64) -> Result<TapAuthorization, StatusWord> {
    r.tap_with(w, &Quote::fare_at(fare, T0))
        .map(|t| t.authorization)
}

#[test]
fn counters_increase_across_restarts_and_a_missing_counter_file_is_an_error() {
    let d = tempfile::tempdir().unwrap();
    let issuer = Issuer::new(1);
    let reader = Reader::new(&issuer, READER_ID);
    let first: Vec<u32> = {
        let w = open(d.path());
        provision(&w, &issuer, CertSpec::default());
        set_clock(&w, T0);
        (0..20)
            .map(|_| tap_fare(&w, &reader, 10).unwrap().counter)
            .collect()
    };
    assert!(first.windows(2).all(|p| p[0] < p[1]));
    let mut last = *first.last().unwrap();
    for round in 0..3 {
        let w = open(d.path());
        assert_eq!(w.stats().counter_fsyncs, 0, "an open reserved");
        let a = tap_fare(&w, &reader, 10).unwrap();
        assert_eq!(a.counter, last + 1, "a clean close skipped counters");
        last = a.counter;
        assert_eq!(w.verify_tap_log().unwrap(), 21 + round);
        // the reservation the SELECT asked for (the AUTHORIZE right behind it may wait for it
        // and double the block, and then a second one keeps half a block ahead)
        let s = w.stats();
        assert!((1..=2).contains(&s.counter_fsyncs), "{s:?}");
    }
    std::fs::remove_file(d.path().join("wallet").join(COUNTER_FILE)).unwrap();
    let err = Wallet::open(
        d.path().join("wallet"),
        keystore(d.path()),
        WalletConfig::default(),
    )
    .unwrap_err();
    assert!(matches!(err, WalletError::CounterFile { .. }), "{err}");
    assert!(!d.path().join("wallet").join(COUNTER_FILE).exists());
}

#[test]
fn fsyncs_stay_at_one_per_block() {
    let d = tempfile::tempdir().unwrap();
    let config = WalletConfig {
        background_maintenance: false,
        ..test_config()
    };
    let block = u64::from(config.counter_block);
    let w = open_with(d.path(), config);
    let issuer = Issuer::new(1);
    provision(&w, &issuer, CertSpec::default());
    set_clock(&w, T0);
    let reader = Reader::new(&issuer, READER_ID);
    let before = w.stats().counter_fsyncs;
    for _ in 0..160 {
        tap_fare(&w, &reader, 1).unwrap();
    }
    let s = w.stats();
    // one write per block, plus the one that keeps half a block ahead at the end
    assert_eq!(s.counter_fsyncs - before, 160 / block + 1, "{s:?}");
    assert_eq!(s.counter_parks, 0, "no quiet park without the timer: {s:?}");
    assert!(s.reserved_until > s.next_counter);
}

#[test]
fn a_locked_phone_reserves_nothing_when_a_reader_selects_it() {
    // a thief's reader selecting a locked phone, then a reboot, would only skip counters
    let d = tempfile::tempdir().unwrap();
    let issuer = Issuer::new(1);
    let w = open_with(
        d.path(),
        WalletConfig {
            background_maintenance: false,
            ..test_config()
        },
    );
    provision(&w, &issuer, backend_sized());
    set_clock(&w, T0);
    w.set_locked(true).unwrap();
    for _ in 0..10 {
        select(&w);
        w.deactivated();
    }
    assert_eq!(w.stats().counter_fsyncs, 0, "{:?}", w.stats());
    w.set_locked(false).unwrap();
    select(&w);
    assert_eq!(w.stats().counter_fsyncs, 1, "{:?}", w.stats());
}
