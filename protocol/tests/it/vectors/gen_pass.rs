//! boarding_pass.json.

use super::*;

pub(super) fn pass_file(k: &Keys) -> File {
    let mut f = File::new(
        "QR boarding passes (type 'P', version 2): binary (type boarding_pass, hex) and text form \
         (type boarding_pass_text: 'MC2:' + Base45). verify: verify_boarding_pass(config, pass, \
         now) under the config's time rules: issuer signature, deny list, certificate validity at \
         now, lifetime <= max_pass_lifetime_secs, window [issued_at - skew, issued_at + lifetime + \
         skew] with skew = clock_skew_secs, counter range, max_amount <= allowance, tap signature \
         (low-S only).",
    );
    let cfg = std_config(k);
    let skew = i64::from(cfg.body.time_rules.clock_skew_secs);
    let ctx = |now: i64| config_ctx(&cfg, now);
    let pass = std_pass(k);
    let b = pass.encode();
    let text = pass.to_text();
    f.push(
        Vector::new(
            "valid",
            "boarding_pass",
            "counter 1001, issued at T0 for 60 s, adult, at most 30000 rials, first link of its \
             chain; checked at T0 + 10",
        )
        .hex(&b)
        .ok(pass_json(&pass))
        .set("text", json!(text))
        .set(
            "tap_id",
            json!(hx(&TapProof::Qr { pass: pass.clone() }.id())),
        )
        .verify(ctx(T0 + 10), "ok"),
    );
    f.push(
        Vector::new(
            "valid-text",
            "boarding_pass_text",
            "the valid pass in its QR text form",
        )
        .set("text", json!(text))
        .ok(pass_json(&pass))
        .verify(ctx(T0 + 10), "ok"),
    );
    f.push(
        Vector::new(
            "valid-text-crlf",
            "boarding_pass_text",
            "as delivered by a serial scanner: trailing CR LF (ignored)",
        )
        .set("text", json!(format!("{text}\r\n")))
        .ok(pass_json(&pass)),
    );
    let at = |name: &str, desc: &str, now: i64, expect: &str| {
        Vector::new(name, "boarding_pass", desc)
            .hex(&b)
            .ok(pass_json(&pass))
            .verify(ctx(now), expect)
    };
    f.push(at(
        "window-start-edge",
        "checked at issued_at - skew (inclusive)",
        T0 - skew,
        "ok",
    ));
    f.push(at(
        "window-end-edge",
        "checked at issued_at + lifetime + skew (inclusive)",
        T0 + 60 + skew,
        "ok",
    ));
    f.push(at(
        "outside-window-late",
        "checked one second after issued_at + lifetime + skew",
        T0 + 60 + skew + 1,
        "PassOutsideWindow",
    ));
    f.push(at(
        "outside-window-early",
        "checked one second before issued_at - skew (phone clock ahead)",
        T0 - skew - 1,
        "PassOutsideWindow",
    ));
    f.push(at(
        "outside-window-day-old",
        "a screenshot replayed a day later",
        T0 + DAY,
        "PassOutsideWindow",
    ));
    let case = |name: &str, desc: &str, p: &BoardingPass, now: i64, expect: &str| {
        Vector::new(name, "boarding_pass", desc)
            .hex(&p.encode())
            .ok(pass_json(p))
            .verify(ctx(now), expect)
    };
    f.push(case(
        "high-s-photographed",
        "a pass photographed over a rider's shoulder with s replaced by n - s: refused as \
         non-canonical (never a second proof of counter 1001)",
        &with_flipped_s(&pass),
        T0 + 10,
        "NonCanonicalSignature",
    ));
    let mut hb = pass.body.clone();
    hb.certificate = with_flipped_s(&hb.certificate);
    f.push(case(
        "certificate-high-s",
        "a pass (validly signed by the tap key) carrying its certificate with a flipped s",
        &sign_pass(&k.tap, hb),
        T0 + 10,
        "NonCanonicalSignature",
    ));
    f.push(case(
        "too-long",
        "lifetime 61 s, validly signed: one second over the bundle's 60",
        &make_pass(&k.tap, std_cert(k), 1001, T0, 61, 30_000),
        T0 + 10,
        "PassTooLong",
    ));
    f.push(case(
        "eighteen-hours",
        "lifetime 64800 s chosen by a modified app, validly signed",
        &make_pass(&k.tap, std_cert(k), 1001, T0, 64_800, 30_000),
        T0 + 10,
        "PassTooLong",
    ));
    let mut long_rules = std_config_body(k);
    long_rules.time_rules.max_pass_lifetime_secs = 120;
    let long_cfg = make_config(long_rules, &k.issuer1);
    let two_minutes = make_pass(&k.tap, std_cert(k), 1001, T0, 120, 30_000);
    f.push(
        Vector::new(
            "bundle-allows-longer",
            "boarding_pass",
            "a 120 s pass under a bundle whose max_pass_lifetime_secs is 120: accepted",
        )
        .hex(&two_minutes.encode())
        .ok(pass_json(&two_minutes))
        .verify(config_ctx(&long_cfg, T0 + 100), "ok"),
    );
    let mut student_body = cert_body(1, "rider-student", &k.tap);
    student_body.fare_class = FareClass::Student;
    let student = make_pass(
        &k.tap,
        sign_cert(student_body, &k.issuer1),
        1001,
        T0,
        60,
        15_000,
    );
    f.push(case(
        "valid-student",
        "a student's pass: fare class 1 repeated from the certificate",
        &student,
        T0 + 10,
        "ok",
    ));
    f.push(case(
        "bad-signature-other-key",
        "signed by a tap key that is not the certificate's",
        &make_pass(&k.tap_other, std_cert(k), 1001, T0, 60, 30_000),
        T0 + 10,
        "BadSignature",
    ));
    let mut tampered = pass.clone();
    tampered.body.issued_at = T0 + DAY;
    f.push(case(
        "bad-signature-tampered-time",
        "issued_at moved a day later after signing (to revive an old pass)",
        &tampered,
        T0 + DAY + 10,
        "BadSignature",
    ));
    f.push(case(
        "counter-out-of-range",
        "counter 1100, validly signed",
        &make_pass(&k.tap, std_cert(k), 1100, T0, 60, 30_000),
        T0 + 10,
        "CounterOutOfRange",
    ));
    f.push(case(
        "amount-over-allowance",
        "max_amount 500001 > allowance 500000, validly signed",
        &make_pass(&k.tap, std_cert(k), 1001, T0, 60, ALLOWANCE + 1),
        T0 + 10,
        "AmountOverAllowance",
    ));
    let exp_cert = std_cert(k);
    let t_exp = exp_cert.body.valid_until + 10;
    f.push(case(
        "certificate-expired",
        "pass in its window but its certificate expired 10 s before issue",
        &make_pass(&k.tap, exp_cert, 1001, t_exp, 60, 30_000),
        t_exp + 5,
        "Expired",
    ));
    f.push(case(
        "deny-listed",
        "a deny-listed card's valid pass",
        &make_pass(
            &k.tap,
            sign_cert(cert_body(1, "cloned-card", &k.tap), &k.issuer1),
            1001,
            T0,
            60,
            30_000,
        ),
        T0 + 10,
        "DenyListed",
    ));
    f.push(case(
        "unknown-issuer-key",
        "certificate of unknown issuer key 3",
        &make_pass(
            &k.tap,
            sign_cert(cert_body(3, "rider-1", &k.tap), &k.issuer3),
            1001,
            T0,
            60,
            30_000,
        ),
        T0 + 10,
        "UnknownIssuerKey",
    ));
    framing(&mut f, "boarding_pass", &b);
    f.push(v1_message("boarding_pass", "boarding pass", v1::PASS));
    let bad = |name: &str, desc: &str, bytes: Vec<u8>, err: &str| {
        Vector::new(name, "boarding_pass", desc)
            .hex(&bytes)
            .fails(err)
    };
    f.push(bad(
        "zero-lifetime",
        "lifetime_secs (offset 198) = 0",
        patched(&b, 198, &[0, 0]),
        "InvalidValue",
    ));
    f.push(bad(
        "fare-class-differs",
        "fare class (offset 200) = 1 (student) in an adult certificate's pass",
        patched(&b, 200, &[1]),
        "InvalidValue",
    ));
    f.push(bad(
        "negative-max-amount",
        "max_amount (offset 201) = -1",
        patched(&b, 201, &(-1i64).to_be_bytes()),
        "InvalidValue",
    ));
    f.push(bad(
        "embedded-certificate-invalid-point",
        "the embedded certificate's tap key (offset 24) off the curve",
        patched(&b, 24, &off_curve(&k.tap.public)),
        "InvalidPoint",
    ));
    f.push(bad(
        "embedded-certificate-v1",
        "the embedded certificate's version (offset 3) = 1",
        patched(&b, 3, &[1]),
        "UnknownVersion",
    ));
    pass_text_errors(&mut f, &text);
    f
}

fn pass_text_errors(f: &mut File, text: &str) {
    let payload = &text[PASS_TEXT_PREFIX.len()..];
    // 305 bytes: the Base45 text ends in a pair (the odd last byte), so edits that keep the
    // length well formed go in by triplets ahead of it.
    let (body, last) = text.split_at(text.len() - 2);
    let text_err = |name: &str, desc: &str, t: String, err: &str| {
        Vector::new(name, "boarding_pass_text", desc)
            .set("text", json!(t))
            .fails(err)
    };
    f.push(text_err(
        "text-v1",
        "a genuine protocol v1 pass text ('MC1:'): refused as an unknown version",
        v1::PASS_TEXT.to_string(),
        "UnknownVersion",
    ));
    f.push(text_err(
        "text-v1-prefix",
        "the v2 payload behind the v1 prefix 'MC1:'",
        format!("MC1:{payload}"),
        "UnknownVersion",
    ));
    f.push(text_err(
        "text-unknown-version",
        "prefix 'MC3:'",
        format!("MC3:{payload}"),
        "UnknownVersion",
    ));
    f.push(text_err(
        "text-missing-prefix",
        "Base45 payload without 'MC2:'",
        payload.to_string(),
        "InvalidText",
    ));
    f.push(text_err(
        "text-missing-colon",
        "'MC2' without ':' and payload",
        "MC2".to_string(),
        "InvalidText",
    ));
    f.push(text_err(
        "text-lowercase",
        "payload in lower case (not Base45)",
        format!("MC2:{}", payload.to_lowercase()),
        "InvalidText",
    ));
    f.push(text_err(
        "text-dangling-character",
        "payload with two extra characters: one dangling character after the last pair",
        format!("{text}00"),
        "InvalidText",
    ));
    f.push(text_err(
        "text-base45-out-of-range",
        "payload whose last triplet (before the final pair) is 'GGW' (> 65535)",
        format!("{}GGW{last}", &body[..body.len() - 3]),
        "InvalidText",
    ));
    f.push(text_err(
        "text-truncated",
        "payload without the triplet before its last pair (two bytes)",
        format!("{}{last}", &body[..body.len() - 3]),
        "Truncated",
    ));
    f.push(text_err(
        "text-trailing",
        "payload with a triplet (two bytes 00 00) inserted before its last pair",
        format!("{body}000{last}"),
        "TrailingBytes",
    ));
}
