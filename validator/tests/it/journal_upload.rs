//! Journal durability, restart rebuild, and exactly-once upload across a SIGKILL.
//! Uses a std TcpListener fake backend (`mancard_testkit::validator::acceptor`) that
//! deduplicates by batch id.

use mancard_protocol::{CredentialCertificate, FareClass, FareKind, SigningKey, TapBatch};
use mancard_testkit::validator::acceptor::{Acceptor, Mode};
use mancard_testkit::validator::{
    card, certify, timeless_issuer, validator_in_memory, TestCard, ISSUER_KEY_ID, LINE,
    VALIDATOR_ID,
};
use mancard_testkit::{CertSpec, Issuer, T0};
use mancard_validator::http;
use mancard_validator::{Refusal, Validator};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const TIMEOUT: Duration = Duration::from_secs(5);

/// Initialises a validator data dir with bundle v1 (real clock), and stores a test card.
fn setup_dir(dir: &Path, issuer: &Issuer) -> Validator {
    let now = chrono::Utc::now().timestamp();
    let mut v = Validator::init(dir, &issuer.anchor(), VALIDATOR_ID, LINE).unwrap();
    v.install_config(&issuer.bundle(1, now - 60, vec![]).encode())
        .unwrap();
    certify(issuer, &mut v, now);
    let (tap, pkcs8) = SigningKey::generate().unwrap();
    let cert = issuer.issue_for(
        &tap,
        CertSpec {
            valid_from: now - 86_400,
            valid_until: now + 86_400,
            class: FareClass::Adult,
            first: 1,
            last: 99,
            max_amount: 500_000,
        },
    );
    std::fs::write(dir.join("card.key"), &pkcs8[..]).unwrap();
    std::fs::write(dir.join("card.cert"), cert.encode()).unwrap();
    v
}

fn load_card(dir: &Path, next_counter: u32) -> TestCard {
    let tap = SigningKey::from_pkcs8(&std::fs::read(dir.join("card.key")).unwrap()).unwrap();
    let cert =
        CredentialCertificate::decode(&std::fs::read(dir.join("card.cert")).unwrap()).unwrap();
    let mut c = TestCard::new(tap, cert);
    c.next_counter = next_counter;
    c
}

/// Runs inside the child process (see `spawn_child`); a no-op in a normal test run.
#[test]
fn child_process_entry() {
    let Ok(dir) = std::env::var("MANCARD_CHILD_DIR") else {
        return;
    };
    let dir = Path::new(&dir);
    let mut v = Validator::open(dir).unwrap();
    match std::env::var("MANCARD_CHILD_MODE").unwrap().as_str() {
        "tap" => {
            let mut card = load_card(dir, 1);
            let o = v.tap_nfc(&mut card);
            assert!(o.decision.is_accepted(), "{:?}", o.decision);
            println!("CHILD-TAPPED");
        }
        "upload" => {
            let url = std::env::var("MANCARD_ACCEPTOR").unwrap();
            println!("CHILD-UPLOADING");
            let _ = v.upload(|b| http::send_batch(&url, b, Duration::from_secs(60)));
            println!("CHILD-UPLOAD-RETURNED");
        }
        m => panic!("unknown mode {m}"),
    }
    // Wait to be killed.
    std::thread::sleep(Duration::from_secs(60));
}

fn spawn_child(dir: &Path, mode: &str, acceptor: &str) -> std::process::Child {
    Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "journal_upload::child_process_entry",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("MANCARD_CHILD_DIR", dir)
        .env("MANCARD_CHILD_MODE", mode)
        .env("MANCARD_ACCEPTOR", acceptor)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

fn wait_line(child: &mut std::process::Child, want: &str) {
    let out = child.stdout.take().unwrap();
    let mut r = BufReader::new(out);
    let mut line = String::new();
    loop {
        line.clear();
        let n = r.read_line(&mut line).unwrap();
        assert!(n > 0, "child exited before printing {want}");
        if line.contains(want) {
            break;
        }
    }
    child.stdout = Some(r.into_inner());
}

#[test]
fn killed_between_decision_and_upload_uploads_exactly_once() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let issuer = timeless_issuer(ISSUER_KEY_ID);
    let v = setup_dir(dir, &issuer);
    let acceptor = Acceptor::start();
    *acceptor.validator_key.lock().unwrap() = Some(v.public_key());
    drop(v);

    // 1. The child taps, the decision is journaled, then it is SIGKILLed before any upload.
    let mut child = spawn_child(dir, "tap", &acceptor.url);
    wait_line(&mut child, "CHILD-TAPPED");
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();

    let v = Validator::open(dir).unwrap();
    let st = v.status().unwrap();
    assert_eq!((st.journal.accepted_total, st.journal.unsealed), (1, 1));
    assert_eq!(st.replay_cache, 1, "replay cache rebuilt from the journal");
    drop(v);

    // 2. The child seals and sends the batch; the backend records it but the child is killed
    //    before the acknowledgement arrives.
    acceptor.set_mode(Mode::Hang);
    let mut child = spawn_child(dir, "upload", &acceptor.url);
    wait_line(&mut child, "CHILD-UPLOADING");
    let t = Instant::now();
    while acceptor.posts() == 0 {
        assert!(t.elapsed() < Duration::from_secs(20), "batch never arrived");
        std::thread::sleep(Duration::from_millis(10));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let first_id = acceptor.state.lock().unwrap().posts[0];

    // 3. After restart the same batch (same id) is resent until acknowledged.
    let mut v = Validator::open(dir).unwrap();
    let st = v.status().unwrap();
    assert_eq!(
        (st.journal.pending_batches, st.journal.in_pending_batches),
        (1, 1)
    );
    acceptor.set_mode(Mode::DropResponse); // a lost response: still not acknowledged
    assert!(v
        .upload(|b| http::send_batch(&acceptor.url, b, TIMEOUT))
        .is_err());
    acceptor.set_mode(Mode::Unavailable);
    assert!(v
        .upload(|b| http::send_batch(&acceptor.url, b, TIMEOUT))
        .is_err());
    acceptor.set_mode(Mode::Ack);
    let rep = v
        .upload(|b| http::send_batch(&acceptor.url, b, TIMEOUT))
        .unwrap();
    assert_eq!(rep.acked, vec![first_id]);
    assert!(rep.complete);
    // Nothing more to send.
    let rep = v
        .upload(|b| http::send_batch(&acceptor.url, b, TIMEOUT))
        .unwrap();
    assert!(rep.acked.is_empty() && rep.complete);

    let s = acceptor.state.lock().unwrap();
    assert!(
        s.posts.iter().all(|id| *id == first_id),
        "always the same batch id"
    );
    assert_eq!(
        s.posts.len(),
        3,
        "sent by the child, resent after the lost answer, acked"
    );
    assert_eq!(
        (s.batches.len(), s.taps.len(), s.duplicate_records),
        (1, 1, 0)
    );
    assert_eq!(s.bad_signatures, 0);
    drop(s);
    let st = v.status().unwrap();
    assert_eq!(st.journal.uploaded, 1);
    assert_eq!((st.journal.pending_batches, st.journal.unsealed), (0, 0));
    // The uploaded tap still guards against replays after another restart.
    drop(v);
    let mut v = Validator::open(dir).unwrap();
    let mut card = load_card(dir, 1);
    assert_eq!(
        v.tap_nfc(&mut card).decision.refusal(),
        Some(&Refusal::AlreadyUsed { counter: 1 })
    );
}

#[test]
fn state_survives_restart_and_batches_are_signed() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let issuer = timeless_issuer(ISSUER_KEY_ID);
    let mut v = setup_dir(dir, &issuer);
    let now = v.now();
    let mut card = load_card(dir, 1);
    assert!(v.tap_nfc(&mut card).decision.is_accepted());
    let pass = card.pass(50, now, 30_000);
    assert!(v.verify_qr(&pass.to_text()).decision.is_accepted());
    assert!(!v.verify_qr("junk").decision.is_accepted());
    let pubkey = v.public_key();
    drop(v);

    let mut v = Validator::open(dir).unwrap();
    assert_eq!(v.config().unwrap().body.bundle_version, 1);
    // Replay cache and ride state rebuilt: the pass is used; the next ride on line 2 is a transfer.
    assert_eq!(
        v.verify_qr(&pass.to_text()).decision.refusal(),
        Some(&Refusal::AlreadyUsed { counter: 50 })
    );
    v.set_line(2).unwrap();
    let o = v.tap_nfc(&mut card);
    assert_eq!(
        o.decision.acceptance().unwrap().fare_kind,
        FareKind::Transfer
    );
    let st = v.status().unwrap();
    assert_eq!(
        (st.journal.accepted_total, st.journal.refusals_total),
        (3, 2)
    );
    assert_eq!(st.line_id, 2);
    // Sealed batch: signed by the validator key, with all three taps.
    let sealed = v.seal().unwrap().unwrap();
    let batch = TapBatch::decode(&sealed.bytes).unwrap();
    assert!(batch.verify_signature(&pubkey));
    assert_eq!(batch.body.records.len(), 3);
    assert_eq!(batch.body.validator_id, VALIDATOR_ID);
    // Sealing again returns the same pending batch.
    assert_eq!(v.seal().unwrap().unwrap().batch_id, sealed.batch_id);
    // Key file is private, public key file matches.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.join("validator.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let pubtxt = std::fs::read_to_string(dir.join("validator.pub")).unwrap();
    assert_eq!(pubtxt.trim(), hex::encode(pubkey.as_bytes()));
}

#[test]
fn sync_config_over_http_and_refused_bundle_keeps_old() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let issuer = timeless_issuer(ISSUER_KEY_ID);
    let mut v = setup_dir(dir, &issuer);
    let now = v.now();
    let acceptor = Acceptor::start();
    *acceptor.config.lock().unwrap() = issuer.bundle(5, now, vec![]).encode();
    let bytes = http::fetch_config(&acceptor.url, None, TIMEOUT)
        .unwrap()
        .unwrap();
    v.install_config(&bytes).unwrap();
    assert_eq!(v.config().unwrap().body.bundle_version, 5);
    // A tampered bundle from the network is refused; v5 stays, also after restart.
    let impostor = timeless_issuer(ISSUER_KEY_ID);
    *acceptor.config.lock().unwrap() = impostor.bundle(6, now, vec![]).encode();
    let bytes = http::fetch_config(&acceptor.url, Some(5), TIMEOUT)
        .unwrap()
        .unwrap();
    assert!(v.install_config(&bytes).is_err());
    drop(v);
    let v = Validator::open(dir).unwrap();
    assert_eq!(v.config().unwrap().body.bundle_version, 5);
    assert_eq!(acceptor.state.lock().unwrap().config_gets, 2);
}

#[test]
fn many_batches_and_pruning() {
    let issuer = timeless_issuer(ISSUER_KEY_ID);
    let mut v = validator_in_memory(&issuer, T0);
    // 1,200 taps from 12 cards → 3 batches of ≤ 500.
    for _ in 0..12 {
        let mut c = card(&issuer, T0);
        for _ in 0..100 {
            assert!(v.tap_nfc(&mut c).decision.is_accepted());
        }
    }
    let mut sent = Vec::new();
    let rep = v
        .upload(|b| {
            sent.push((b.batch_id, b.records));
            Ok(())
        })
        .unwrap();
    assert_eq!(rep.records, 1_200);
    assert_eq!(
        sent.iter().map(|s| s.1).collect::<Vec<_>>(),
        vec![500, 500, 200]
    );
    let st = v.status().unwrap();
    assert_eq!(
        (st.journal.uploaded, st.journal.accepted_total),
        (1_200, 1_200)
    );
    // A failing sender leaves nothing acknowledged and keeps the batch for later.
    let mut c = card(&issuer, T0);
    assert!(v.tap_nfc(&mut c).decision.is_accepted());
    assert!(v.upload(|_| Err("offline".into())).is_err());
    assert_eq!(v.status().unwrap().journal.pending_batches, 1);
}
