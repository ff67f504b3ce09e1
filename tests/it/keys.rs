//! Sealed tap keys: a tampered sealed key, a damaged keystore or another phone's keystore give
//! a clear error and no tap.

use mancard::{CredentialState, FileKeystore, Wallet, WalletError};
use mancard_protocol::StatusWord;
use mancard_testkit::wallet::*;
use mancard_testkit::{CertSpec, Issuer, T0};
use std::sync::Arc;

fn assert_no_tap(w: &Wallet, issuer: &Issuer, what: &str) {
    let st = w.status(device_time(w, T0)).unwrap();
    assert_eq!(st.state, CredentialState::KeyUnavailable, "{what}");
    let problem = st.problem.unwrap();
    assert!(
        problem.contains("sealed") || problem.contains("key"),
        "{what}: {problem}"
    );
    let before = w.verify_tap_log().unwrap();
    let reader = Reader::new(issuer, READER_ID);
    assert_eq!(
        reader.tap_with(w, &Quote::fare_at(10, T0)).err(),
        Some(StatusWord::NoCredential),
        "{what}"
    );
    assert!(
        matches!(
            w.boarding_pass(device_time(w, T0)),
            Err(WalletError::KeyUnavailable { .. })
        ),
        "{what}"
    );
    assert_eq!(
        w.verify_tap_log().unwrap(),
        before,
        "{what}: nothing logged"
    );
    let refusal = &w.history(None, 1).unwrap().items[0];
    assert!(refusal.detail.contains("key"), "{what}: {}", refusal.detail);
}

fn provisioned(d: &std::path::Path) -> Issuer {
    let w = open(d);
    let issuer = Issuer::new(1);
    provision(&w, &issuer, CertSpec::default());
    set_clock(&w, T0);
    Reader::new(&issuer, READER_ID)
        .tap_with(&w, &Quote::fare_at(10, T0))
        .unwrap();
    issuer
}

#[test]
fn tampered_sealed_key_in_the_database() {
    let d = tempfile::tempdir().unwrap();
    let issuer = provisioned(d.path());
    {
        let c = rusqlite::Connection::open(d.path().join("wallet").join(mancard::DB_FILE)).unwrap();
        let sealed: Vec<u8> = c
            .query_row(
                "SELECT sealed_key FROM tap_keys WHERE state = 'installed'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        let mut t = sealed.clone();
        let n = t.len();
        t[n / 2] ^= 0x01;
        c.execute(
            "UPDATE tap_keys SET sealed_key = ?1 WHERE state = 'installed'",
            [t],
        )
        .unwrap();
    }
    let w = open(d.path());
    assert_no_tap(&w, &issuer, "tampered blob");
}

#[test]
fn another_phones_keystore() {
    let d = tempfile::tempdir().unwrap();
    let issuer = provisioned(d.path());
    let other = tempfile::tempdir().unwrap();
    let ks = Arc::new(FileKeystore::open_or_create(other.path()).unwrap());
    let w = Wallet::open(
        d.path().join("wallet"),
        ks,
        mancard_testkit::wallet::english(),
    )
    .unwrap();
    assert_no_tap(&w, &issuer, "wrong keystore");
    // a new credential for this keystore restores service
    let c = provision(&w, &issuer, CertSpec::default());
    let t = Reader::new(&issuer, READER_ID)
        .tap_with(&w, &Quote::fare_at(10, T0))
        .unwrap();
    verify(&issuer, &c, &t.challenge, &t.authorization);
}

#[test]
fn damaged_keystore_files() {
    let d = tempfile::tempdir().unwrap();
    let issuer = provisioned(d.path());
    let seal_file = d.path().join("keystore").join("sealing-key.aes256");
    let mut k = std::fs::read(&seal_file).unwrap();
    k[0] ^= 0x80;
    std::fs::write(&seal_file, &k).unwrap();
    let w = open(d.path());
    assert_no_tap(&w, &issuer, "altered sealing key");
    drop(w);
    std::fs::write(&seal_file, &k[..31]).unwrap();
    assert!(matches!(
        FileKeystore::open(d.path().join("keystore")),
        Err(mancard::KeystoreError::Unavailable { .. })
    ));
}
