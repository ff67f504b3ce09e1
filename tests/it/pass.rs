//! QR boarding passes: verified by the protocol crate, clock corrected by the server offset,
//! amount reserved against the allowance, QR within budget.

use mancard::{HistoryKind, WalletConfig, WalletError};
use mancard_protocol::{BoardingPass, FareClass, TapProof, VerifiedCertificate, WalletLogEntry};
use mancard_testkit::wallet::*;
use mancard_testkit::{CertSpec, Issuer, T0};

#[test]
fn pass_verifies_with_corrected_clock_and_is_reused_until_refresh() {
    let d = tempfile::tempdir().unwrap();
    let w = open(d.path());
    let issuer = Issuer::new(1);
    let cert = provision(&w, &issuer, CertSpec::default());
    let vc = VerifiedCertificate::new(cert.clone(), &[issuer.issuer_key()]).unwrap();

    // the phone's clock is a day behind; the server offset set at sync corrects it
    let phone_now = T0 - 86_400;
    w.set_server_time_offset(86_400).unwrap();
    let p = w.boarding_pass(phone_now).unwrap();
    assert_eq!(p.issued_at, T0);
    assert_eq!(p.expires_at, T0 + 60);
    assert_eq!(p.refresh_at, phone_now + 45);
    assert_eq!(p.max_amount, 30_000, "highest adult fare of the tariff");
    let pass = BoardingPass::from_text(&p.text).unwrap();
    vc.verify_pass(&pass, T0 + 10, 30).unwrap();
    assert!(vc.verify_pass(&pass, T0 + 200, 30).is_err(), "expired pass");
    assert!(p.matrix.version <= 13, "QR version {}", p.matrix.version);
    assert_eq!(
        p.matrix.modules.len(),
        (p.matrix.width * p.matrix.width) as usize
    );
    assert!(p.svg().contains("<svg"));
    assert!(p.png(4).unwrap().starts_with(b"\x89PNG"));
    assert!(p.terminal().lines().count() > 20);

    // before refresh: the same pass, no new counter
    let again = w.boarding_pass(phone_now + 30).unwrap();
    assert_eq!(again, p);
    // after refresh: a new pass with a higher counter
    let next = w.boarding_pass(phone_now + 45).unwrap();
    assert!(next.counter > p.counter);
    vc.verify_pass(&BoardingPass::from_text(&next.text).unwrap(), T0 + 50, 30)
        .unwrap();

    // two passes in the log and the history, 60,000 reserved
    let entries: Vec<WalletLogEntry> = w
        .tap_log(0, 10)
        .unwrap()
        .iter()
        .map(|b| WalletLogEntry::decode(b).unwrap())
        .collect();
    assert_eq!(entries.len(), 2);
    assert!(matches!(entries[0].proof, TapProof::Qr { .. }));
    assert_eq!(entries[0].time, T0);
    assert_eq!(w.ledger().unwrap().pending_amount, 60_000);
    let h = w.history(None, 10).unwrap();
    assert!(h.items.iter().all(|i| i.kind == HistoryKind::Pass));
}

#[test]
fn pass_amount_is_configurable_and_bounded_by_the_allowance() {
    let d = tempfile::tempdir().unwrap();
    let w = open_with(
        d.path(),
        WalletConfig {
            pass_max_amount: Some(25_000),
            ..WalletConfig::default()
        },
    );
    provision(
        &w,
        &Issuer::new(1),
        CertSpec {
            max_amount: 60_000,
            class: FareClass::Student,
            ..CertSpec::default()
        },
    );
    let a = w.boarding_pass(T0).unwrap();
    assert_eq!(a.max_amount, 25_000);
    w.boarding_pass(T0 + 100).unwrap();
    assert!(matches!(
        w.boarding_pass(T0 + 200),
        Err(WalletError::AllowanceExhausted {
            needed: 25_000,
            remaining: 10_000
        })
    ));
    // outside the certificate window by the corrected clock
    assert!(matches!(
        w.boarding_pass(T0 + 30 * 86_400),
        Err(WalletError::CredentialNotValid { .. })
    ));
    w.set_locked(true).unwrap();
    assert!(matches!(
        w.boarding_pass(T0 + 300),
        Err(WalletError::Locked)
    ));
}

#[test]
fn no_credential_no_pass() {
    let d = tempfile::tempdir().unwrap();
    let w = open(d.path());
    assert!(matches!(
        w.boarding_pass(T0),
        Err(WalletError::NoCredential)
    ));
}
