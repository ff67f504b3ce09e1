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
        "tap_challenge.json",
        "tap_authorization.json",
        "validator_config.json",
        "tariff.json",
        "tap_record.json",
        "tap_batch.json",
        "wallet_log.json",
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
    let (code, _, err) = inspect(&["MC2:ABC"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("unknown boarding pass text version 2"),
        "{err}"
    );
}
