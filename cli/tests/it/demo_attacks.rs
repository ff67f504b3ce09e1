//! `mancard demo --attacks`: the attack reel tries every attack of issue #13 and of protocol
//! v2 against the real parties; every one must be caught (each check made on the parties'
//! answers), and the books must agree at the end.

use serde_json::Value;
use std::collections::BTreeSet;
use std::process::Command;

fn reel(extra: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_mancard"))
        .args(["demo", "--attacks"])
        .args(extra)
        .output()
        .unwrap()
}

/// Every attack the reel must try: issue #13's and the threat model's protocol-v2 rows.
const ATTACKS: &[&str] = &[
    "cheaper_self_report",
    "allowance_across_certificates",
    "provisioning_retry",
    "unsigned_bytes",
    "unscanned_passes",
    "torn_tap_and_retry",
    "shared_pass",
    "tap_from_the_future",
    "cloned_phone_history_and_freeze",
    "flipped_s_pass",
    "reencoded_certificate",
    "pass_too_long",
    "street_reader",
    "locked_phone",
    "rogue_reader_drain",
    "reader_cache_probe",
    "dishonest_validator",
    "stolen_validator",
    "following_a_pseudonym",
];

#[test]
fn the_attack_reel_catches_every_attack_and_the_books_agree() {
    let out = reel(&["--json"]);
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let evs: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let attacks: Vec<&Value> = evs.iter().filter(|e| e["event"] == "attack").collect();
    let names: Vec<&str> = attacks
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ATTACKS);
    for a in &attacks {
        assert_eq!(a["caught"], true, "{a:#}");
        assert!(a["charged"].as_i64().unwrap() >= 0, "{a:#}");
        assert!(!a["attacker"].as_array().unwrap().is_empty(), "{a:#}");
        let parties = a["parties"].as_array().unwrap();
        assert!(!parties.is_empty(), "{a:#}");
        for p in parties {
            assert!(!p["party"].as_str().unwrap().is_empty(), "{a:#}");
            assert!(!p["said"].as_str().unwrap().is_empty(), "{a:#}");
        }
        let checks = a["checks"].as_array().unwrap();
        assert!(!checks.is_empty(), "{a:#}");
        assert!(checks.iter().all(|c| c["ok"] == true), "{a:#}");
        assert!(a["error"].is_null(), "{a:#}");
    }
    // What the parties said, for a few attacks: the refusals and charges are the expected ones.
    let said = |name: &str| -> String {
        let a = attacks.iter().find(|a| a["name"] == name).unwrap();
        a["parties"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                format!(
                    "{}: {}",
                    p["party"].as_str().unwrap(),
                    p["said"].as_str().unwrap()
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    let cheaper = said("cheaper_self_report");
    assert!(
        cheaper.contains("rejected (challenge_mismatch)"),
        "{cheaper}"
    );
    assert!(
        cheaper.contains("rejected (unsigned_challenge)"),
        "{cheaper}"
    );
    assert!(
        cheaper.contains("settled, charged 20,000 rials"),
        "{cheaper}"
    );
    assert!(said("unsigned_bytes").contains("409 chain_conflict"));
    assert!(said("shared_pass").contains("duplicate (shared_pass)"));
    assert!(said("tap_from_the_future").contains("rejected (from_the_future)"));
    assert!(said("torn_tap_and_retry").contains("not_charged 0 rials (0 toman) (torn_gate_closed)"));
    let fraud = said("cloned_phone_history_and_freeze");
    assert!(fraud.contains("403 account_frozen"), "{fraud}");
    assert!(fraud.contains("fraud 20,000 rials"), "{fraud}");
    assert!(said("locked_phone").contains("(wallet_locked)"));
    assert!(said("flipped_s_pass").contains("(non_canonical_signature)"));
    assert!(said("pass_too_long").contains("(pass_too_long)"));
    assert!(said("rogue_reader_drain").contains("69C7"));
    assert!(said("stolen_validator").contains("rejected (validator_denied)"));
    // What was charged: the genuine rides only, once each.
    let charged = |name: &str| {
        attacks.iter().find(|a| a["name"] == name).unwrap()["charged"]
            .as_i64()
            .unwrap()
    };
    assert_eq!(charged("cheaper_self_report"), 20_000);
    assert_eq!(charged("unscanned_passes"), 0);
    assert_eq!(charged("torn_tap_and_retry"), 20_000);
    assert_eq!(charged("shared_pass"), 40_000);
    assert_eq!(charged("tap_from_the_future"), 0);
    assert_eq!(charged("cloned_phone_history_and_freeze"), 20_000);
    assert_eq!(charged("dishonest_validator"), 20_000);
    assert_eq!(
        charged("rogue_reader_drain"),
        60_000,
        "capped at the daily cap"
    );
    // The books.
    let books = evs.iter().find(|e| e["event"] == "books").unwrap();
    assert_eq!(books["books_agree"], true, "{books:#}");
    assert_eq!(books["audit_ok"], true, "{books:#}");
    let total: i64 = attacks.iter().map(|a| a["charged"].as_i64().unwrap()).sum();
    assert_eq!(books["charged"], total, "{books:#}");
    let done = evs.last().unwrap();
    assert_eq!(done["event"], "done");
    assert_eq!(done["ok"], true);
    assert_eq!(done["caught"], ATTACKS.len());
    assert_eq!(done["not_caught"].as_array().unwrap().len(), 0);
    let unique: BTreeSet<&&str> = ATTACKS.iter().collect();
    assert_eq!(unique.len(), ATTACKS.len());
}

#[test]
fn the_attack_reel_tells_its_story_in_text() {
    let out = reel(&[]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains(&format!(
            "All {} attacks caught; the books agree.",
            ATTACKS.len()
        )),
        "{text}"
    );
    assert!(text.contains("[caught,"), "{text}");
    assert!(!text.contains("NOT CAUGHT"), "{text}");
    assert!(text.contains("backend audit ok"), "{text}");
}

#[test]
fn the_reel_takes_no_fault_or_reader() {
    let out = reel(&["--fault", "skip-upload"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--fault"));
}
