//! QR passes under the signed bundle's time rules: the longest lifetime and the clock skew
//! are the bundle's, never the signer's; copies with a flipped signature are refused.

use mancard_protocol::{Signature, TimeRules};
use mancard_testkit::validator::{
    card, fixed, timeless_issuer, validator_in_memory, ISSUER_KEY_ID,
};
use mancard_testkit::T0;
use mancard_validator::{Decision, Refusal};

fn refusal(d: &Decision) -> Refusal {
    d.refusal()
        .cloned()
        .unwrap_or_else(|| panic!("expected a refusal, got {d:?}"))
}

#[test]
fn a_pass_longer_than_the_bundle_allows_is_refused() {
    let issuer = timeless_issuer(ISSUER_KEY_ID);
    let mut v = validator_in_memory(&issuer, T0);
    assert_eq!(v.status().unwrap().time_rules, TimeRules::default());
    let c = card(&issuer, T0);
    // An 18-hour pass: before v2 it was accepted once at each of several validators.
    let long = c.pass_for(150, T0 - 3600, 18 * 3600, 30_000);
    let d = v.verify_qr(&long.to_text()).decision;
    assert_eq!(
        refusal(&d),
        Refusal::PassTooLong {
            lifetime: 18 * 3600,
            max: 60
        }
    );
    assert_eq!(d.code(), "pass_too_long");
    assert!(d.display_text().contains("at most 60 s"), "{d}");
    // One second over the default maximum.
    let d = v
        .verify_qr(&c.pass_for(151, T0, 61, 30_000).to_text())
        .decision;
    assert_eq!(
        refusal(&d),
        Refusal::PassTooLong {
            lifetime: 61,
            max: 60
        }
    );
    // Exactly the maximum: accepted.
    assert!(v
        .verify_qr(&c.pass_for(152, T0, 60, 30_000).to_text())
        .decision
        .is_accepted());
    let st = v.status().unwrap();
    assert_eq!(
        (st.journal.accepted_total, st.journal.refusals_total),
        (1, 2)
    );
    // The bundle decides: one that allows two minutes accepts the 61-second pass.
    let rules = TimeRules {
        max_pass_lifetime_secs: 120,
        ..TimeRules::default()
    };
    v.install_config(&issuer.bundle_with(2, T0, vec![], vec![], rules).encode())
        .unwrap();
    assert!(v
        .verify_qr(&c.pass_for(153, T0, 61, 30_000).to_text())
        .decision
        .is_accepted());
}

#[test]
fn the_bundle_sets_the_skew_and_the_validator_may_only_narrow_it() {
    let issuer = timeless_issuer(ISSUER_KEY_ID);
    let mut v = validator_in_memory(&issuer, T0);
    let c = card(&issuer, T0);
    // Default skew 30 s: a pass from a phone 25 s ahead is accepted, 40 s ahead refused.
    assert!(v
        .verify_qr(&c.pass(150, T0 + 25, 30_000).to_text())
        .decision
        .is_accepted());
    assert_eq!(
        refusal(
            &v.verify_qr(&c.pass(151, T0 + 40, 30_000).to_text())
                .decision
        )
        .code(),
        "phone_clock_off"
    );
    // A validator setting cannot widen the bundle's skew...
    v.set_skew_secs(3600);
    assert_eq!(v.status().unwrap().time_rules.clock_skew_secs, 30);
    assert_eq!(
        refusal(
            &v.verify_qr(&c.pass(152, T0 + 40, 30_000).to_text())
                .decision
        )
        .code(),
        "phone_clock_off"
    );
    // ... but can narrow it.
    v.set_skew_secs(5);
    assert_eq!(v.status().unwrap().time_rules.clock_skew_secs, 5);
    assert_eq!(
        refusal(
            &v.verify_qr(&c.pass(153, T0 + 10, 30_000).to_text())
                .decision
        )
        .code(),
        "phone_clock_off"
    );
    // A bundle with a 10-second skew, the local cap back at 30 s: the bundle's 10 s rules.
    v.set_skew_secs(30);
    let rules = TimeRules {
        clock_skew_secs: 10,
        ..TimeRules::default()
    };
    v.install_config(&issuer.bundle_with(2, T0, vec![], vec![], rules).encode())
        .unwrap();
    assert_eq!(v.status().unwrap().time_rules.clock_skew_secs, 10);
    assert_eq!(
        refusal(
            &v.verify_qr(&c.pass(154, T0 + 20, 30_000).to_text())
                .decision
        )
        .code(),
        "phone_clock_off"
    );
    assert!(v
        .verify_qr(&c.pass(155, T0 + 8, 30_000).to_text())
        .decision
        .is_accepted());
}

#[test]
fn a_pass_copy_with_a_flipped_signature_is_refused_at_the_validator() {
    let issuer = timeless_issuer(ISSUER_KEY_ID);
    let mut v = validator_in_memory(&issuer, T0);
    let c = card(&issuer, T0);
    let pass = c.pass(150, T0, 30_000);
    let mut copy = pass.clone();
    copy.signature = Signature(pass.signature.malleated());
    // Shown before the rider's own pass: refused as non-canonical, and it does not use up
    // the rider's counter.
    let d = v.verify_qr(&copy.to_text()).decision;
    assert_eq!(refusal(&d), Refusal::NonCanonicalSignature);
    assert_eq!(d.code(), "non_canonical_signature");
    assert!(v.verify_qr(&pass.to_text()).decision.is_accepted());
    // Shown after it: still non-canonical (not a second ride, not a duplicate to settle).
    v.set_clock(fixed(T0 + 5));
    assert_eq!(
        refusal(&v.verify_qr(&copy.to_text()).decision),
        Refusal::NonCanonicalSignature
    );
    assert_eq!(v.status().unwrap().journal.accepted_total, 1);
}
