//! QR boarding passes: verified by the protocol crate, clock corrected by the server offset,
//! amount reserved against the allowance, lifetime bounded by the config bundle, on the signed
//! tap chain, QR within budget.

use mancard::{HistoryKind, WalletConfig, WalletError};
use mancard_protocol::{
    chain_start, verify_boarding_pass, BoardingPass, FareClass, TapProof, TimeRules,
    VerifiedCertificate, VerifyError, WalletLogEntry,
};
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
    let rules = TimeRules::default();
    vc.verify_pass(&pass, T0 + 10, &rules).unwrap();
    assert!(
        vc.verify_pass(&pass, T0 + 200, &rules).is_err(),
        "expired pass"
    );
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
    vc.verify_pass(
        &BoardingPass::from_text(&next.text).unwrap(),
        T0 + 50,
        &rules,
    )
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
    // the passes are on the signed chain: the first starts it, the second signs the first
    assert!(p.text.starts_with("MC2:"));
    assert_eq!(pass.body.prev, chain_start(&cert.id()));
    assert_eq!(pass.body.fare_class, FareClass::Adult);
    assert_eq!(entries[1].proof.prev(), entries[0].proof.id());
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
            ..mancard_testkit::wallet::english()
        },
    );
    provision(
        &w,
        &Issuer::new(1),
        CertSpec {
            max_amount: 40_000,
            class: FareClass::Student,
            ..CertSpec::default()
        },
    );
    let a = w.boarding_pass(T0).unwrap();
    assert_eq!(a.max_amount, 25_000);
    // the first pass holds 25,000 while a validator may still accept it (its 60 s and the
    // 30 s of clock skew)
    for at in [T0 + 46, T0 + 90] {
        assert!(matches!(
            w.boarding_pass(at),
            Err(WalletError::AllowanceExhausted {
                needed: 25_000,
                remaining: 15_000
            })
        ));
    }
    // then, never charged, it is released
    assert_eq!(w.boarding_pass(T0 + 91).unwrap().max_amount, 25_000);
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

#[test]
fn a_pass_never_lives_longer_than_the_bundle_allows() {
    let d = tempfile::tempdir().unwrap();
    // the app asks for ten minutes; the bundle allows 20 seconds
    let w = open_with(
        d.path(),
        WalletConfig {
            pass_lifetime_secs: 600,
            ..test_config()
        },
    );
    let issuer = Issuer::new(1);
    provision(&w, &issuer, CertSpec::default());
    let rules = TimeRules {
        max_pass_lifetime_secs: 20,
        ..TimeRules::default()
    };
    let bundle = issuer.bundle_with(2, T0, Vec::new(), Vec::new(), rules);
    install_bundle(&w, &bundle);
    let p = w.boarding_pass(T0).unwrap();
    assert_eq!(p.expires_at - p.issued_at, 20);
    let pass = BoardingPass::from_text(&p.text).unwrap();
    assert_eq!(pass.body.lifetime_secs, 20);
    verify_boarding_pass(&bundle, &pass, T0 + 10).unwrap();
    // the protocol's default when the bundle allows more than the app asks for
    let d2 = tempfile::tempdir().unwrap();
    let w2 = open(d2.path());
    provision(&w2, &issuer, CertSpec::default());
    let p2 = w2.boarding_pass(T0).unwrap();
    assert_eq!(p2.expires_at - p2.issued_at, 60);
    // and a validator with the stricter bundle refuses that longer pass
    let long = BoardingPass::from_text(&p2.text).unwrap();
    assert_eq!(
        verify_boarding_pass(&bundle, &long, T0 + 10).unwrap_err(),
        VerifyError::PassTooLong {
            lifetime: 60,
            max: 20
        }
    );
}

#[test]
fn a_wallet_without_a_bundle_makes_passes_of_the_default_lifetime_at_most() {
    let d = tempfile::tempdir().unwrap();
    let w = open_with(
        d.path(),
        WalletConfig {
            pass_lifetime_secs: 3_600,
            ..test_config()
        },
    );
    let issuer = Issuer::new(1);
    try_install_certificate_at(&w, &issuer, CertSpec::default(), T0).unwrap();
    assert_eq!(w.config_version(), None);
    let p = w.boarding_pass(T0).unwrap();
    assert_eq!(
        p.expires_at - p.issued_at,
        i64::from(mancard_protocol::DEFAULT_PASS_LIFETIME_SECS)
    );
}

/// The scanners validators and riders' phones really use read the pass as the wallet renders
/// it: zbar (`zbarimg`, Debian zbar-tools) and ZXing (the Java library Android apps embed,
/// Debian libzxing-javase-java, through its command-line runner). The largest v2 pass (QR
/// version 13, ECC M) at 3 and 6 pixels per module. Both tools are installed by
/// `scripts/test.sh`; a missing tool fails the test.
#[test]
fn the_pass_is_read_by_zbar_and_zxing() {
    let d = tempfile::tempdir().unwrap();
    let w = open(d.path());
    let issuer = Issuer::new(1);
    provision(&w, &issuer, CertSpec::default());
    let p = w.boarding_pass(T0).unwrap();
    assert_eq!(p.matrix.version, 13, "the v2 pass is the largest that fits");
    for px in [3, 6] {
        let png = d.path().join(format!("pass-{px}.png"));
        std::fs::write(&png, p.png(px).unwrap()).unwrap();

        let zbar = std::process::Command::new("zbarimg")
            .args(["--raw", "-q"])
            .arg(&png)
            .output()
            .expect("zbarimg (Debian zbar-tools) must be installed: scripts/test.sh does it");
        assert!(zbar.status.success(), "zbarimg failed at {px} px: {zbar:?}");
        let text = String::from_utf8(zbar.stdout).unwrap();
        assert_eq!(text.trim_end_matches('\n'), p.text, "zbar at {px} px");

        let jars = ["javase.jar", "core.jar", "jcommander.jar"]
            .map(|j| format!("/usr/share/java/{j}"))
            .join(":");
        let zxing = std::process::Command::new("java")
            .args([
                "-cp",
                &jars,
                "com.google.zxing.client.j2se.CommandLineRunner",
                // as a phone's or a validator's scanner does: look harder before giving up;
                // and the file is the rendered symbol itself, not a photo of it (ZXing's
                // photo binarizer misses some random passes in a 231-pixel file)
                "--try_harder",
                "--pure_barcode",
            ])
            .arg(&png)
            .output()
            .expect("java and ZXing (Debian libzxing-javase-java) must be installed");
        let out = String::from_utf8_lossy(&zxing.stdout);
        assert!(zxing.status.success(), "ZXing failed at {px} px: {zxing:?}");
        assert!(out.contains("format: QR_CODE"), "ZXing at {px} px: {out}");
        let raw = out
            .split("Raw result:\n")
            .nth(1)
            .and_then(|r| r.lines().next())
            .unwrap_or_default();
        assert_eq!(raw, p.text, "ZXing at {px} px");
        // what the scanners read is the signed pass itself
        let pass = BoardingPass::from_text(raw).unwrap();
        assert_eq!(
            pass.encode(),
            BoardingPass::from_text(&p.text).unwrap().encode()
        );
    }
}
