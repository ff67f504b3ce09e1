//! The config bundle on the phone (`Wallet::install_config`): accepted only when signed by an
//! issuer key the wallet already trusts (or, on a wallet that trusts none yet, by a key the
//! bundle itself lists), only newer versions, stored across restarts; a refused bundle changes
//! nothing.

use mancard::WalletError;
use mancard_protocol::{
    ConfigBody, FareClass, StatusWord, Tariff, TimeRules, ValidatorConfig, PROTOCOL_VERSION,
};
use mancard_testkit::wallet::*;
use mancard_testkit::{CertSpec, Issuer, T0};

/// A bundle listing both issuers' keys, signed by `signer`.
fn two_key_bundle(signer: &Issuer, a: &Issuer, b: &Issuer, version: u64) -> ValidatorConfig {
    ConfigBody {
        bundle_version: version,
        issued_at: T0,
        signer_key_id: signer.key_id,
        issuer_keys: vec![a.issuer_key(), b.issuer_key()],
        deny_list: Vec::new(),
        validator_deny_list: Vec::new(),
        time_rules: TimeRules::default(),
        tariff: Tariff::urmia_default(),
    }
    .sign(&signer.key)
    .unwrap()
}

fn refused(r: Result<(), WalletError>) -> String {
    match r {
        Err(e @ WalletError::InvalidConfig { .. }) => e.to_string(),
        other => panic!("expected a refused bundle, got {other:?}"),
    }
}

#[test]
fn a_config_bundle_is_installed_only_from_a_trusted_issuer() {
    let d = tempfile::tempdir().unwrap();
    let issuer = Issuer::new(1);
    let forger = Issuer::new(1); // the same key id, another key
    {
        let w = open(d.path());
        // a wallet that trusts nothing yet takes the first bundle it is given (over TLS)
        assert_eq!(w.config_version(), None);
        let v1 = issuer.bundle(1, T0, Vec::new());
        w.install_config(v1.encode()).unwrap();
        assert_eq!(w.config_version(), Some(1));
        // the same bundle again, even re-signed (ECDSA is randomized): nothing to do
        w.install_config(v1.encode()).unwrap();
        w.install_config(issuer.bundle(1, T0, Vec::new()).encode())
            .unwrap();
        // not newer: refused, whatever it says
        let e = refused(w.install_config(issuer.bundle(1, T0 + 60, Vec::new()).encode()));
        assert!(e.contains("not newer"), "{e}");
        assert!(e.starts_with("config bundle refused: "), "{e}");
        // signed by a key the wallet does not trust: refused, nothing changed
        let forged = forger.bundle_with(9, T0, Vec::new(), Vec::new(), TimeRules::default());
        let e = refused(w.install_config(forged.encode()));
        assert!(e.contains("does not trust"), "{e}");
        assert_eq!(w.config_version(), Some(1));
        // unreadable, and a v1 bundle
        let e = refused(w.install_config(vec![1, 2, 3]));
        assert!(e.contains("unreadable"), "{e}");
        let mut old = v1.encode();
        assert_eq!(old[1], PROTOCOL_VERSION);
        old[1] = 1;
        let e = refused(w.install_config(old));
        assert!(e.contains("unreadable"), "{e}");
        // a signature that does not verify under the listed key
        let mut bad = issuer.bundle(2, T0, Vec::new());
        bad.signature.0[10] ^= 1;
        refused(w.install_config(bad.encode()));
        // a bundle signed by a key it does not list
        let mut unlisted = issuer.bundle(2, T0, Vec::new());
        unlisted.body.signer_key_id = 7;
        let e = refused(w.install_config(unlisted.encode()));
        assert!(e.contains("does not list"), "{e}");
        assert_eq!(w.config_version(), Some(1));
    }
    // stored: a restart keeps version 1 and its trust
    let w = open(d.path());
    assert_eq!(w.config_version(), Some(1));
    refused(w.install_config(forger.bundle(5, T0, Vec::new()).encode()));
    // key rotation: a bundle signed by the trusted key introduces key 2, which then signs
    let next = Issuer::new(2);
    w.install_config(two_key_bundle(&issuer, &issuer, &next, 2).encode())
        .unwrap();
    w.install_config(two_key_bundle(&next, &issuer, &next, 3).encode())
        .unwrap();
    assert_eq!(w.config_version(), Some(3));
}

#[test]
fn the_issuer_keys_of_the_certificate_decide_the_first_bundle() {
    let d = tempfile::tempdir().unwrap();
    let w = open(d.path());
    let issuer = Issuer::new(1);
    let other = Issuer::new(1);
    try_install_certificate_at(&w, &issuer, CertSpec::default(), T0).unwrap();
    set_clock(&w, T0);
    // no bundle yet: no reader is answered ("sync first")
    let reader = Reader::new(&issuer, READER_ID);
    assert_eq!(reader.tap(&w).unwrap_err(), StatusWord::ReaderUnknown);
    // a self-consistent bundle of another issuer: the wallet trusts the certificate's issuer
    let e = refused(w.install_config(other.bundle(1, T0, Vec::new()).encode()));
    assert!(e.contains("does not trust"), "{e}");
    assert_eq!(w.config_version(), None);
    // and a reader certified by that other issuer is still refused
    let rogue = Reader::new(&other, 8);
    assert_eq!(rogue.tap(&w).unwrap_err(), StatusWord::ReaderUnknown);
    // the right bundle: the reader is answered
    w.install_config(issuer.bundle(4, T0, Vec::new()).encode())
        .unwrap();
    let t = reader.tap_with(&w, &Quote::fare_at(20_000, T0)).unwrap();
    assert_eq!(t.challenge.body.fare_class, FareClass::Adult);
    assert_eq!(rogue.tap(&w).unwrap_err(), StatusWord::ReaderUnknown);
}
