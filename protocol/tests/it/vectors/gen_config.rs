//! validator_config.json and tariff.json.

use super::*;

pub(super) fn config_file(k: &Keys) -> File {
    let mut f = File::new(
        "Validator config bundles (type 'V', version 2) signed by an issuer key: issuer keys, the \
         card deny list, the validator deny list (readers phones must not answer), the time rules \
         every party applies (longest pass lifetime, clock skew, the tap clock window) and the \
         tariff. verify: verify_config(config, trusted_keys, installed_version).",
    );
    let cfg = std_config(k);
    let b = cfg.encode();
    let keys = issuer_keys(k);
    let trusted = |keys: &[IssuerKey], installed: Option<u64>| {
        json!({
            "trusted_keys": keys.iter().map(issuer_key_json).collect::<Vec<_>>(),
            "installed_version": installed,
        })
    };
    let case = |name: &str, desc: &str, c: &ValidatorConfig, ctx: Value, expect: &str| {
        Vector::new(name, "validator_config", desc)
            .hex(&c.encode())
            .ok(config_json(c))
            .verify(ctx, expect)
    };
    f.push(case(
        "valid",
        "version 42, issuer keys 1 and 2, two denied cards, validator 7013 denied, default time \
         rules (60 s passes, 30 s skew, 300 s tap window), the Urmia tariff; first install",
        &cfg,
        trusted(&keys, None),
        "ok",
    ));
    f.push(case(
        "valid-upgrade",
        "installed version 41 < 42",
        &cfg,
        trusted(&keys, Some(41)),
        "ok",
    ));
    f.push(case(
        "stale-bundle",
        "installed version 42: a replayed bundle is refused",
        &cfg,
        trusted(&keys, Some(42)),
        "StaleBundle",
    ));
    f.push(case(
        "unknown-signer",
        "the verifier trusts only issuer key 2",
        &cfg,
        trusted(&keys[1..], None),
        "UnknownIssuerKey",
    ));
    f.push(case(
        "high-s",
        "the valid bundle with s replaced by n - s",
        &with_flipped_s(&cfg),
        trusted(&keys, None),
        "NonCanonicalSignature",
    ));
    let mut edited = cfg.clone();
    edited
        .body
        .deny_list
        .retain(|p| *p != pseudonym("stolen-phone"));
    f.push(case(
        "bad-signature-deny-list-edited",
        "a card removed from the deny list after signing",
        &edited,
        trusted(&keys, None),
        "BadSignature",
    ));
    let mut unblocked = cfg.clone();
    unblocked.body.validator_deny_list.clear();
    f.push(case(
        "bad-signature-validator-unblocked",
        "the denied validator removed from the validator deny list after signing",
        &unblocked,
        trusted(&keys, None),
        "BadSignature",
    ));
    let mut longer = cfg.clone();
    longer.body.time_rules.max_pass_lifetime_secs = 65_535;
    f.push(case(
        "bad-signature-time-rules-edited",
        "the longest pass lifetime raised to 65535 s after signing",
        &longer,
        trusted(&keys, None),
        "BadSignature",
    ));
    let mut body = std_config_body(k);
    body.deny_list.clear();
    body.validator_deny_list.clear();
    body.issuer_keys.truncate(1);
    let minimal = make_config(body, &k.issuer1);
    f.push(case(
        "valid-empty-lists",
        "one issuer key, empty deny lists",
        &minimal,
        trusted(&keys, None),
        "ok",
    ));
    framing(&mut f, "validator_config", &b);
    f.push(v1_message("validator_config", "config bundle", v1::CONFIG));
    config_decode_errors(&mut f, k, &cfg);
    f
}

fn config_decode_errors(f: &mut File, k: &Keys, cfg: &ValidatorConfig) {
    let b = cfg.encode();
    let bad = |name: &str, desc: &str, bytes: Vec<u8>, err: &str| {
        Vector::new(name, "validator_config", desc)
            .hex(&bytes)
            .fails(err)
    };
    let deny_count_at = 23 + 85 * cfg.body.issuer_keys.len();
    let vdeny_count_at = deny_count_at + 4 + 16 * cfg.body.deny_list.len();
    let rules_at = vdeny_count_at + 2 + 4 * cfg.body.validator_deny_list.len();
    let tariff_at = rules_at + 6;
    f.push(bad(
        "too-many-issuer-keys",
        "issuer key count (offset 22) = 17 > 16",
        patched(&b, 22, &[17]),
        "LengthOutOfRange",
    ));
    let mut unsorted = cfg.clone();
    unsorted.body.issuer_keys.reverse();
    f.push(bad(
        "issuer-keys-unsorted",
        "issuer keys in order 2, 1",
        unsorted.encode(),
        "InvalidValue",
    ));
    let mut undenied = cfg.clone();
    undenied.body.deny_list.reverse();
    f.push(bad(
        "deny-list-unsorted",
        "deny list not strictly increasing",
        undenied.encode(),
        "InvalidValue",
    ));
    let mut dup = cfg.clone();
    let first = dup.body.deny_list[0];
    dup.body.deny_list.insert(0, first);
    f.push(bad(
        "deny-list-duplicate",
        "the same pseudonym twice",
        dup.encode(),
        "InvalidValue",
    ));
    f.push(bad(
        "deny-count-too-large",
        "deny list count = 0xFFFFFFFF (more than the bytes left)",
        patched(&b, deny_count_at, &[0xFF; 4]),
        "LengthOutOfRange",
    ));
    f.push(bad(
        "issuer-key-invalid-point",
        "issuer key 1's public key (offset 27) off the curve",
        patched(&b, 27, &off_curve(&k.issuer1.public)),
        "InvalidPoint",
    ));
    f.push(bad(
        "issuer-key-empty-window",
        "issuer key 1 valid_from (offset 92) == valid_until",
        patched(&b, 92, &cfg.body.issuer_keys[0].valid_until.to_be_bytes()),
        "InvalidValue",
    ));
    let mut vdup = cfg.clone();
    vdup.body.validator_deny_list = vec![DeniedValidator(7013), DeniedValidator(7013)];
    f.push(bad(
        "validator-deny-list-duplicate",
        "validator 7013 twice on the validator deny list",
        vdup.encode(),
        "InvalidValue",
    ));
    f.push(bad(
        "validator-deny-count-too-large",
        &format!(
            "validator deny list count (offset {vdeny_count_at}) = 65535 (more than the bytes left)"
        ),
        patched(&b, vdeny_count_at, &[0xFF; 2]),
        "LengthOutOfRange",
    ));
    f.push(bad(
        "zero-pass-lifetime",
        &format!("max_pass_lifetime_secs (offset {rules_at}) = 0"),
        patched(&b, rules_at, &[0, 0]),
        "InvalidValue",
    ));
    f.push(bad(
        "embedded-tariff-unknown-version",
        &format!(
            "the embedded tariff's version byte (offset {}) = 2",
            tariff_at + 1
        ),
        patched(&b, tariff_at + 1, &[2]),
        "UnknownVersion",
    ));
}

pub(super) fn tariff_file() -> File {
    let mut f = File::new(
        "Tariffs (type 'T', version 1: unchanged in protocol v2, nested in the v2 config bundle) and the fare rule. Type tariff: decoding. Type tariff_fare: \
         Tariff::fare(class, line, time, state) on the given tariff; state.last_ride is [time, line] or null.",
    );
    let t = Tariff::urmia_default();
    let b = t.encode();
    f.push(
        Vector::new(
            "urmia",
            "tariff",
            "UTC+03:30, day starts 04:00, 45 min transfers, lines 1, 2, 10",
        )
        .hex(&b)
        .ok(tariff_json(&t)),
    );
    framing(&mut f, "tariff", &b);
    f.push(
        Vector::new(
            "utc-offset-out-of-range",
            "tariff",
            "UTC offset (offset 2) = +15 h",
        )
        .hex(&patched(&b, 2, &(15i32 * 3600).to_be_bytes()))
        .fails("InvalidValue"),
    );
    f.push(
        Vector::new(
            "day-start-out-of-range",
            "tariff",
            "day start (offset 6) = 86400",
        )
        .hex(&patched(&b, 6, &86_400u32.to_be_bytes()))
        .fails("InvalidValue"),
    );
    f.push(
        Vector::new(
            "negative-transfer-fare",
            "tariff",
            "adult transfer fare (offset 14) = -1",
        )
        .hex(&patched(&b, 14, &(-1i64).to_be_bytes()))
        .fails("InvalidValue"),
    );
    f.push(
        Vector::new("too-many-lines", "tariff", "line count (offset 78) = 4097")
            .hex(&patched(&b, 78, &4097u16.to_be_bytes()))
            .fails("LengthOutOfRange"),
    );
    f.push(
        Vector::new(
            "line-count-short",
            "tariff",
            "line count (offset 78) = 4 but three lines follow",
        )
        .hex(&patched(&b, 78, &4u16.to_be_bytes()))
        .fails("Truncated"),
    );
    let mut unsorted = t.clone();
    unsorted.lines.swap(0, 1);
    f.push(
        Vector::new("lines-unsorted", "tariff", "line ids 2, 1, 10")
            .hex(&unsorted.encode())
            .fails("InvalidValue"),
    );
    let mut neg = t.clone();
    neg.lines[2].fares[1] = -5;
    f.push(
        Vector::new("negative-line-fare", "tariff", "line 10 student fare = -5")
            .hex(&neg.encode())
            .fails("InvalidValue"),
    );
    // The fare rule.
    let day = t.fare_day(T0);
    let th = hx(&b);
    let fare =
        |name: &str, desc: &str, class: &str, line: u32, time: i64, state: Value, expect: Value| {
            Vector::new(name, "tariff_fare", desc)
                .set("tariff", json!(th))
                .set("class", json!(class))
                .set("line_id", json!(line))
                .set("time", json!(time))
                .set("state", state)
                .set("expect", expect)
        };
    let fresh = json!({"fare_day": 0, "spent_today": 0, "last_ride": null});
    let q = |amount: i64, kind: &str, base: i64, fd: i64, spent: i64, last: Value| {
        json!({"amount": amount, "kind": kind, "base": base,
               "next": {"fare_day": fd, "spent_today": spent, "last_ride": last}})
    };
    f.push(fare(
        "first-ride",
        "adult, line 1 at T0 (08:00 local), no previous ride",
        "adult",
        1,
        T0,
        fresh.clone(),
        q(20_000, "full", 20_000, day, 20_000, json!([T0, 1])),
    ));
    f.push(fare(
        "transfer",
        "adult, line 2, 10 min after a ride on line 1",
        "adult",
        2,
        T0 + 600,
        json!({"fare_day": day, "spent_today": 20_000, "last_ride": [T0, 1]}),
        q(5_000, "transfer", 20_000, day, 25_000, json!([T0 + 600, 2])),
    ));
    f.push(fare(
        "transfer-window-edge",
        "adult, line 2, exactly 45 min after line 1 (inclusive)",
        "adult",
        2,
        T0 + 2700,
        json!({"fare_day": day, "spent_today": 20_000, "last_ride": [T0, 1]}),
        q(
            5_000,
            "transfer",
            20_000,
            day,
            25_000,
            json!([T0 + 2700, 2]),
        ),
    ));
    f.push(fare(
        "after-transfer-window",
        "adult, line 2, 45 min 1 s after line 1",
        "adult",
        2,
        T0 + 2701,
        json!({"fare_day": day, "spent_today": 20_000, "last_ride": [T0, 1]}),
        q(20_000, "full", 20_000, day, 40_000, json!([T0 + 2701, 2])),
    ));
    f.push(fare(
        "same-line-no-transfer",
        "adult, line 1 again 10 min after line 1",
        "adult",
        1,
        T0 + 600,
        json!({"fare_day": day, "spent_today": 20_000, "last_ride": [T0, 1]}),
        q(20_000, "full", 20_000, day, 40_000, json!([T0 + 600, 1])),
    ));
    f.push(fare(
        "capped-partial",
        "adult metro (30000) with 45000 already spent today: pays the 15000 left to the cap",
        "adult",
        10,
        T0 + 7200,
        json!({"fare_day": day, "spent_today": 45_000, "last_ride": [T0, 1]}),
        q(
            15_000,
            "capped",
            30_000,
            day,
            60_000,
            json!([T0 + 7200, 10]),
        ),
    ));
    f.push(fare(
        "capped-free",
        "adult at the cap rides for 0",
        "adult",
        1,
        T0 + 9000,
        json!({"fare_day": day, "spent_today": 60_000, "last_ride": [T0 + 7200, 10]}),
        q(0, "capped", 20_000, day, 60_000, json!([T0 + 9000, 1])),
    ));
    f.push(fare(
        "new-fare-day-resets-cap",
        "adult at the cap yesterday pays full today",
        "adult",
        1,
        T0 + DAY,
        json!({"fare_day": day, "spent_today": 60_000, "last_ride": [T0 + 9000, 1]}),
        q(
            20_000,
            "full",
            20_000,
            day + 1,
            20_000,
            json!([T0 + DAY, 1]),
        ),
    ));
    // 03:59:59 local on the 29th = 00:29:59 UTC on the 29th: still the 28th's fare day.
    let late_night = T0 + 20 * 3600 - 1;
    f.push(fare(
        "late-night-belongs-to-evening",
        "03:59:59 local the next morning is still the previous fare day (day starts 04:00)",
        "adult",
        1,
        late_night,
        json!({"fare_day": day, "spent_today": 60_000, "last_ride": [T0 + 9000, 1]}),
        q(0, "capped", 20_000, day, 60_000, json!([late_night, 1])),
    ));
    f.push(fare(
        "day-start-edge",
        "04:00:00 local starts a new fare day",
        "adult",
        1,
        late_night + 1,
        json!({"fare_day": day, "spent_today": 60_000, "last_ride": [T0 + 9000, 1]}),
        q(
            20_000,
            "full",
            20_000,
            day + 1,
            20_000,
            json!([late_night + 1, 1]),
        ),
    ));
    f.push(fare(
        "student",
        "student, metro",
        "student",
        10,
        T0,
        fresh.clone(),
        q(15_000, "full", 15_000, day, 15_000, json!([T0, 10])),
    ));
    f.push(fare(
        "free-class",
        "free fare class, metro",
        "free",
        10,
        T0,
        fresh.clone(),
        q(0, "full", 0, day, 0, json!([T0, 10])),
    ));
    f.push(fare(
        "unknown-line",
        "line 99 is not in the tariff",
        "adult",
        99,
        T0,
        fresh,
        json!("UnknownLine"),
    ));
    f
}
