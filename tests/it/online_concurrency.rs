//! Offline first: taps keep working while a sync runs, and a wallet process SIGKILLed in the
//! middle of a sync (while it also taps) converges at the next sync.
//!
//! The child is this same test binary, re-run with `--ignored --exact online_concurrency::sync_child` and
//! `MANCARD_SYNC_DIR` / `MANCARD_SYNC_URL` set.

use crate::support::clocked_taps;
use mancard::now_utc;
use mancard_api::RegisterValidatorRequest;
use mancard_protocol::{SigningKey, StatusWord, ValidatorCertificate};
use mancard_testkit::online::*;
use mancard_testkit::wallet::{phone_time, set_clock, Quote, Reader};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

const ENV_DIR: &str = "MANCARD_SYNC_DIR";
const ENV_URL: &str = "MANCARD_SYNC_URL";

/// Large certificates. The backlogs ride hours ahead, at clocks the phone is set to; the taps
/// that run beside a sync ride at the phone's own clock (which each sync sets), so earlier.
fn big_certificates(p: &mut mancard_backend::Policy) {
    p.counters_per_cert = 50_000;
    p.max_offline_amount = 100_000_000;
}

#[test]
fn taps_during_sync_are_neither_blocked_nor_lost() {
    let env = Env::start_with(big_certificates);
    let root = data_dir(env.path(), "phone");
    let w = open_wallet(&root);
    let o = online(&w, &env.url);
    let account = login(&env, &o, PHONE);
    o.block_on(o.provision()).unwrap().unwrap();
    top_up(&env, &o, 5_000_000);
    let mut v = Validator::new(&env, 11);
    // registered before the backlog's rides move the backend's clock on
    let v12 = Validator::new(&env, 12);
    clocked_taps(&w, &mut v, 1_500, now_utc() + 600, 30);

    // the taps during the syncs are at the phone's own clock, which each sync sets to the
    // backend's (the backlog's last ride): set it there from the start
    set_clock(&w, env.engine().now());
    let done = Arc::new(AtomicBool::new(false));
    let tapper = {
        let w = Arc::clone(&w);
        let done = Arc::clone(&done);
        let mut v = v12;
        std::thread::spawn(move || {
            for i in 0..400 {
                let sw = tap(&w, &mut v, [1, 2, 10][i % 3], phone_time(&w));
                assert_eq!(sw, StatusWord::Ok, "tap {i} during a sync");
            }
            done.store(true, Ordering::SeqCst);
        })
    };
    let mut syncs = 0;
    while !done.load(Ordering::SeqCst) || syncs == 0 {
        o.block_on(o.sync()).unwrap().unwrap();
        syncs += 1;
    }
    tapper.join().unwrap();
    let r = o.block_on(o.sync()).unwrap().unwrap();
    assert_eq!(r.pending_taps, 0);
    assert_eq!(w.verify_tap_log().unwrap(), 1_900);
    assert_converged(&env, &w, account);
}

#[test]
#[ignore = "child half of sigkill_during_sync_converges"]
fn sync_child() {
    let (Some(dir), Ok(url)) = (std::env::var_os(ENV_DIR), std::env::var(ENV_URL)) else {
        eprintln!("sync_child only runs as the child of sigkill_during_sync_converges");
        return;
    };
    let dir = std::path::PathBuf::from(dir);
    let w = open_wallet(&dir);
    let o = online(&w, &url);
    let reader = load_reader(&dir);
    let tapper = {
        let w = Arc::clone(&w);
        std::thread::spawn(move || {
            for i in 0..40 {
                let q = Quote {
                    line_id: [1, 2, 10][i % 3],
                    ..Quote::default()
                };
                let _ = reader.tap_with(&w, &q);
            }
        })
    };
    println!("READY");
    loop {
        o.block_on(o.sync()).unwrap().unwrap();
        if tapper.is_finished() {
            break;
        }
    }
    println!("DONE");
    std::thread::sleep(Duration::from_secs(600));
}

/// A validator registered at the backend for the child (which has no `Env`): its key and the
/// certificate the backend issued, next to the wallet.
fn save_reader(env: &Env, dir: &std::path::Path, id: u32) {
    let (key, pkcs8) = SigningKey::generate().unwrap();
    let r = env
        .engine()
        .register_validator(&RegisterValidatorRequest::new(
            id,
            hex::encode(key.public_key().as_bytes()),
        ))
        .unwrap();
    std::fs::write(dir.join("reader.pk8"), pkcs8.as_slice()).unwrap();
    std::fs::write(
        dir.join("reader.cert"),
        hex::decode(&r.certificate).unwrap(),
    )
    .unwrap();
}

fn load_reader(dir: &std::path::Path) -> Reader {
    let key = SigningKey::from_pkcs8(&std::fs::read(dir.join("reader.pk8")).unwrap()).unwrap();
    let cert =
        ValidatorCertificate::decode(&std::fs::read(dir.join("reader.cert")).unwrap()).unwrap();
    Reader::with_certificate(key, cert)
}

#[test]
fn sigkill_during_sync_converges() {
    let env = Env::start_with(big_certificates);
    let root = data_dir(env.path(), "phone");
    let account;
    {
        let w = open_wallet(&root);
        let o = online(&w, &env.url);
        account = login(&env, &o, PHONE);
        o.block_on(o.provision()).unwrap().unwrap();
        top_up(&env, &o, 5_000_000);
    }
    save_reader(&env, &root, 41);
    let exe = std::env::current_exe().unwrap();
    let err_path = env.path().join("child-stderr.txt");
    let mut seed = Validator::new(&env, 21);
    let mut t = now_utc() + 600;
    for (run, delay_ms) in [0u64, 15, 40, 90, 200, 400].into_iter().enumerate() {
        {
            // a backlog for the child to sync
            let w = open_wallet(&root);
            clocked_taps(&w, &mut seed, 1_000, t, 10);
            t += 1_000 * 10;
        }
        let mut child = Command::new(&exe)
            .args([
                "--ignored",
                "--exact",
                "online_concurrency::sync_child",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(ENV_DIR, &root)
            .env(ENV_URL, &env.url)
            .stdout(Stdio::piped())
            .stderr(Stdio::from(std::fs::File::create(&err_path).unwrap()))
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        loop {
            let l = lines
                .next()
                .unwrap_or_else(|| {
                    panic!(
                        "run {run}: child ended: {}",
                        std::fs::read_to_string(&err_path).unwrap_or_default()
                    )
                })
                .unwrap();
            if l.contains("READY") {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(delay_ms));
        child.kill().unwrap(); // SIGKILL, wherever the sync is
        child.wait().unwrap();
        // whatever instant it died at, the wallet opens and its log verifies
        let w = open_wallet(&root);
        w.verify_tap_log().unwrap();
        let l = w.ledger().unwrap();
        assert!(l.confirmed_balance <= 5_000_000);
    }
    let w = open_wallet(&root);
    let o = online(&w, &env.url);
    let r = o.block_on(o.sync()).unwrap().unwrap();
    assert_eq!(r.credential_status, "active", "{r:?}");
    assert_converged(&env, &w, account);
}
