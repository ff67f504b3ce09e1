//! `mancard inspect` on the shipped protocol vectors: decodes, verifies with the right issuer
//! key, and fails (exit 1) with the wrong one or on garbage (exit 2).

use std::path::Path;
use std::process::Command;

fn vectors(file: &str) -> serde_json::Value {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../protocol/tests/vectors")
        .join(file);
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

fn key_file(dir: &Path, name: &str) -> std::path::PathBuf {
    let keys = vectors("keys.json");
    let key = keys["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["name"] == name)
        .unwrap();
    let path = dir.join(format!("{name}.pub"));
    std::fs::write(&path, key["public_key"].as_str().unwrap()).unwrap();
    path
}

fn inspect(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_mancard"))
        .arg("inspect")
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[test]
fn pass_text_decodes_and_verifies_with_its_issuer_only() {
    let dir = tempfile::tempdir().unwrap();
    let pass = &vectors("boarding_pass.json")["vectors"][0];
    let text = pass["text"].as_str().unwrap();
    let good = key_file(dir.path(), "issuer-1");
    let (code, out, _) = inspect(&[text, "--issuer-key", good.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with("boarding pass:"), "{out}");
    assert!(
        out.contains("card pseudonym: 0f5198cde2df7124da9595f3cf0a4232"),
        "{out}"
    );
    assert!(out.contains("verification: OK (issuer key 1)"), "{out}");

    let rogue = key_file(dir.path(), "rogue-issuer");
    let (code, out, _) = inspect(&[text, "--issuer-key", rogue.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("verification: FAILED: signature does not verify"),
        "{out}"
    );
}

#[test]
fn every_valid_vector_hex_decodes() {
    for file in [
        "certificate.json",
        "validator_certificate.json",
        "tap_challenge.json",
        "tap_authorization.json",
        "validator_config.json",
        "tariff.json",
        "tap_record.json",
        "tap_batch.json",
        "wallet_log.json",
        "apdu.json",
    ] {
        let v = vectors(file);
        let ok = v["vectors"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["decode"] == "ok" && c["hex"].is_string())
            .unwrap_or_else(|| panic!("{file} has a decodable vector"));
        let (code, out, err) = inspect(&[ok["hex"].as_str().unwrap()]);
        assert_eq!(code, 0, "{file}: {out}{err}");
        assert!(out.lines().count() > 2, "{file}: {out}");
        if file == "tap_challenge.json" {
            // amounts use the one money display
            assert!(out.contains("fare: 20,000 rials (2,000 toman)"), "{out}");
        }
    }
}

#[test]
fn garbage_is_a_clear_error() {
    let (code, _, err) = inspect(&["zz-not-a-message"]);
    assert_eq!(code, 2);
    assert!(err.contains("cannot decode input"), "{err}");
    let (code, _, err) = inspect(&["MC3:ABC"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("unknown boarding pass text version 3"),
        "{err}"
    );
    // A protocol v1 pass is refused as such.
    let v1 = vector("boarding_pass.json", "text-v1");
    let (code, _, err) = inspect(&[v1["text"].as_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(
        err.contains("unknown boarding pass text version 1"),
        "{err}"
    );
}

fn vector(file: &str, name: &str) -> serde_json::Value {
    vectors(file)["vectors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == name)
        .unwrap_or_else(|| panic!("{file} has no vector {name}"))
        .clone()
}

fn hex_of(file: &str, name: &str) -> String {
    vector(file, name)["hex"].as_str().unwrap().to_string()
}

#[test]
fn validator_certificates_verify_with_their_issuer_only() {
    let dir = tempfile::tempdir().unwrap();
    let good = key_file(dir.path(), "issuer-1");
    let rogue = key_file(dir.path(), "rogue-issuer");
    let vc = hex_of("validator_certificate.json", "valid");
    let (code, out, _) = inspect(&[&vc, "--issuer-key", good.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with("validator certificate:"), "{out}");
    assert!(out.contains("validator id: 7001"), "{out}");
    assert!(out.contains("verification: OK (issuer key 1)"), "{out}");
    let (code, out, _) = inspect(&[&vc, "--issuer-key", rogue.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("verification: FAILED: signature does not verify"),
        "{out}"
    );
    // A re-encoded (high-S) certificate is refused for that reason.
    let high = hex_of("validator_certificate.json", "high-s");
    let (code, out, _) = inspect(&[&high, "--issuer-key", good.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("not canonical"), "{out}");
}

#[test]
fn an_authorize_command_is_decoded_and_its_reader_verified() {
    let dir = tempfile::tempdir().unwrap();
    let good = key_file(dir.path(), "issuer-1");
    let rogue = key_file(dir.path(), "rogue-issuer");
    let apdu = hex_of("apdu.json", "command-authorize-tap-with-certificate");
    let (code, out, _) = inspect(&[&apdu]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("command: AUTHORIZE TAP"), "{out}");
    assert!(out.contains("tap challenge:"), "{out}");
    assert!(out.contains("validator certificate:"), "{out}");
    assert!(
        out.contains("verification: OK (challenge signed by validator 7001)"),
        "{out}"
    );
    let (code, out, _) = inspect(&[&apdu, "--issuer-key", good.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("verification: OK (issuer key 1, inline validator certificate)"),
        "{out}"
    );
    let (code, out, _) = inspect(&[&apdu, "--issuer-key", rogue.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    // Without the certificate inline, the reader's certificate is given.
    let cached = hex_of("apdu.json", "command-authorize-tap-cached");
    let vc = hex_of("validator_certificate.json", "valid");
    let (code, out, _) = inspect(&[&cached, "--validator-certificate", &vc]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("verification: OK (challenge signed by validator 7001)"),
        "{out}"
    );
}

#[test]
fn challenges_batches_and_taps_verify_with_the_certificates_given() {
    let vc = hex_of("validator_certificate.json", "valid");
    let cert = hex_of("certificate.json", "valid");
    let ch = hex_of("tap_challenge.json", "valid");
    let (code, out, _) = inspect(&[&ch, "--validator-certificate", &vc]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("verification: OK (challenge signed by validator 7001)"),
        "{out}"
    );
    let forged = hex_of("tap_challenge.json", "signed-by-another-key");
    let (code, out, _) = inspect(&[&forged, "--validator-certificate", &vc]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("verification: FAILED: signature does not verify"),
        "{out}"
    );

    let batch = hex_of("tap_batch.json", "valid");
    let (code, out, _) = inspect(&[
        &batch,
        "--validator-certificate",
        &vc,
        "--certificate",
        &cert,
    ]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("verification: OK (batch signed by validator 7001)"),
        "{out}"
    );
    assert!(
        out.contains("verification: OK (record 0: tap signature (counter 1000))"),
        "{out}"
    );
    assert!(
        out.contains("verification: OK (record 1: pass tap signature (counter 1001))"),
        "{out}"
    );

    let entry = hex_of("wallet_log.json", "entry-2");
    let (code, out, _) = inspect(&[
        &entry,
        "--validator-certificate",
        &vc,
        "--certificate",
        &cert,
    ]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("verification: OK (tap signature (counter 1002))"),
        "{out}"
    );
    let high = hex_of("tap_record.json", "nfc-high-s-same-tap-id");
    let (code, out, _) = inspect(&[&high, "--certificate", &cert]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("not canonical"), "{out}");
}

#[test]
fn a_photographed_pass_with_flipped_s_fails_inspection() {
    let pass = hex_of("boarding_pass.json", "high-s-photographed");
    let (code, out, _) = inspect(&[&pass]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("verification: FAILED: signature is not canonical"),
        "{out}"
    );
    let long = hex_of("boarding_pass.json", "eighteen-hours");
    let (code, out, _) = inspect(&[&long]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("longer than the 60s"), "{out}");
}
