//! certificate.json and validator_certificate.json.

use super::*;

pub(super) fn certificate_file(k: &Keys) -> File {
    let mut f = File::new(
        "Credential certificates (type 'C', version 2). decode: expected outcome of \
         CredentialCertificate::decode; id: SHA-256(CERT-ID tag || encoding of the body, without \
         the signature), so a re-encoded (flipped-s) signature leaves the id unchanged. verify: \
         issuer key lookup in the config, issuer key window, issuer signature (low-S only), deny \
         list, then validity at `now`.",
    );
    let cfg = std_config(k);
    let cert = std_cert(k);
    let b = cert.encode();
    f.push(
        Vector::new(
            "valid",
            "certificate",
            "issuer 1, adult, counters 1000..=1099, 500000 rials",
        )
        .hex(&b)
        .ok(cert_json(&cert))
        .set("id", json!(hx(&cert.id())))
        .verify(config_ctx(&cfg, T0), "ok"),
    );
    let high = with_flipped_s(&cert);
    f.push(
        Vector::new(
            "high-s-same-id",
            "certificate",
            "the valid certificate with its signature's s replaced by n - s: the same id (the id \
             never covers the signature), refused as non-canonical",
        )
        .hex(&high.encode())
        .ok(cert_json(&high))
        .set("id", json!(hx(&cert.id())))
        .verify(config_ctx(&cfg, T0), "NonCanonicalSignature"),
    );
    let mut sb = cert_body(2, "rider-student", &k.tap);
    sb.fare_class = FareClass::Student;
    sb.valid_from = T0 - 3600;
    let student = sign_cert(sb, &k.issuer2);
    f.push(
        Vector::new(
            "valid-student-issuer-2",
            "certificate",
            "student certificate signed by issuer key 2",
        )
        .hex(&student.encode())
        .ok(cert_json(&student))
        .set("id", json!(hx(&student.id())))
        .verify(config_ctx(&cfg, T0), "ok"),
    );
    let dated = |name: &str, desc: &str, now: i64, expect: &str| {
        Vector::new(name, "certificate", desc)
            .hex(&b)
            .ok(cert_json(&cert))
            .verify(config_ctx(&cfg, now), expect)
    };
    f.push(dated(
        "expired",
        "the valid certificate checked one second after valid_until",
        cert.body.valid_until + 1,
        "Expired",
    ));
    f.push(dated(
        "last-valid-second",
        "checked at exactly valid_until (inclusive)",
        cert.body.valid_until,
        "ok",
    ));
    f.push(dated(
        "not-yet-valid",
        "checked one second before valid_from",
        cert.body.valid_from - 1,
        "NotYetValid",
    ));
    let refused = |name: &str, desc: &str, c: &CredentialCertificate, expect: &str| {
        Vector::new(name, "certificate", desc)
            .hex(&c.encode())
            .ok(cert_json(c))
            .verify(config_ctx(&cfg, T0), expect)
    };
    let mut tampered = cert.clone();
    tampered.body.allowance.max_amount = 5_000_000;
    f.push(
        refused(
            "bad-signature-tampered-allowance",
            "max_amount raised after signing: another id, and the signature fails",
            &tampered,
            "BadSignature",
        )
        .set("id", json!(hx(&tampered.id()))),
    );
    f.push(refused(
        "bad-signature-rogue-key",
        "signed by a key that is not issuer key 1 but claims id 1",
        &sign_cert(cert_body(1, "rider-1", &k.tap), &k.rogue),
        "BadSignature",
    ));
    f.push(refused(
        "unknown-issuer-key",
        "signed by issuer key 3, which the config does not list",
        &sign_cert(cert_body(3, "rider-1", &k.tap), &k.issuer3),
        "UnknownIssuerKey",
    ));
    let mut early = cert_body(2, "rider-1", &k.tap);
    early.valid_from = T0 - 3 * DAY;
    f.push(refused(
        "issuer-key-not-valid",
        "issuer key 2 signed a certificate starting before key 2's window (T0 - 2 days)",
        &sign_cert(early, &k.issuer2),
        "IssuerKeyNotValid",
    ));
    f.push(refused(
        "deny-listed",
        "validly signed, but its pseudonym is on the config's deny list",
        &sign_cert(cert_body(1, "stolen-phone", &k.tap), &k.issuer1),
        "DenyListed",
    ));
    framing(&mut f, "certificate", &b);
    f.push(v1_message("certificate", "certificate", v1::CERTIFICATE));
    let bad = |name: &str, desc: &str, bytes: Vec<u8>, err: &str| {
        Vector::new(name, "certificate", desc)
            .hex(&bytes)
            .fails(err)
    };
    f.push(bad(
        "invalid-point-off-curve",
        "tap public key (offset 22) with one bit of Y flipped",
        patched(&b, 22, &off_curve(&k.tap.public)),
        "InvalidPoint",
    ));
    f.push(bad(
        "invalid-point-compressed",
        "tap public key prefix 02 instead of 04",
        patched(&b, 22, &[2]),
        "InvalidPoint",
    ));
    f.push(bad(
        "invalid-point-zero",
        "tap public key 04 || 64 zero bytes",
        patched(&b, 22, &[&[4u8][..], &[0u8; 64]].concat()),
        "InvalidPoint",
    ));
    f.push(bad(
        "empty-validity-window",
        "valid_from (offset 87) == valid_until",
        patched(&b, 87, &cert.body.valid_until.to_be_bytes()),
        "InvalidValue",
    ));
    f.push(bad(
        "unknown-fare-class",
        "fare class (offset 103) = 4",
        patched(&b, 103, &[4]),
        "InvalidValue",
    ));
    f.push(bad(
        "inverted-counter-range",
        "counter_first (offset 104) = 2000 > counter_last",
        patched(&b, 104, &2000u32.to_be_bytes()),
        "InvalidValue",
    ));
    f.push(bad(
        "negative-allowance",
        "max_amount (offset 112) = -1",
        patched(&b, 112, &(-1i64).to_be_bytes()),
        "InvalidValue",
    ));
    f
}

/// A compressed SEC1 encoding (prefix 02) of an x that is on no P-256 point.
fn x_off_curve() -> Vec<u8> {
    (0u8..=255)
        .map(|i| [&[2u8][..], &[i; 32]].concat())
        .find(|c| PublicKey::from_compressed(c, "x").is_err())
        .unwrap()
}

pub(super) fn validator_certificate_file(k: &Keys) -> File {
    let mut f = File::new(
        "Validator certificates (type 'G', version 2): the issuer's signature over a validator's \
         id, operator, compressed public key, validity (u32 UTC seconds) and at most 3 lines (empty \
         = any line). A reader sends it inline in AUTHORIZE TAP (P1 = 01). id: SHA-256(CERT-ID tag \
         || body). verify: verify_validator_certificate(certificate, config issuer keys, \
         config.is_validator_denied, now): issuer key known and valid at valid_from, issuer \
         signature (low-S only), validator deny list, validity at `now`.",
    );
    let cfg = std_config(k);
    let vc = std_validator_cert(k);
    let b = vc.encode();
    let ctx = |now: i64| config_ctx(&cfg, now);
    f.push(
        Vector::new(
            "valid",
            "validator_certificate",
            "issuer 1 over validator 7001's key, operator 1, any line, valid a year around T0",
        )
        .hex(&b)
        .ok(validator_cert_json(&vc))
        .set("id", json!(hx(&vc.id())))
        .verify(ctx(T0), "ok"),
    );
    let mut lb = validator_cert_body(1, VALIDATOR_ID, &k.validator);
    lb.lines = vec![10, 1, 2];
    let lined = sign_validator_cert(lb, &k.issuer1);
    f.push(
        Vector::new(
            "valid-three-lines",
            "validator_certificate",
            "allowed on lines 1, 2 and 10 (signed in increasing order): the largest, 132 bytes",
        )
        .hex(&lined.encode())
        .ok(validator_cert_json(&lined))
        .set("id", json!(hx(&lined.id())))
        .verify(ctx(T0), "ok"),
    );
    let on = |name: &str, desc: &str, c: &ValidatorCertificate, now: i64, expect: &str| {
        Vector::new(name, "validator_certificate", desc)
            .hex(&c.encode())
            .ok(validator_cert_json(c))
            .verify(ctx(now), expect)
    };
    f.push(on(
        "last-valid-second",
        "checked at exactly valid_until (inclusive)",
        &vc,
        i64::from(VALIDATOR_VALID_UNTIL),
        "ok",
    ));
    f.push(on(
        "expired",
        "checked one second after valid_until",
        &vc,
        i64::from(VALIDATOR_VALID_UNTIL) + 1,
        "ValidatorCertNotValid",
    ));
    f.push(on(
        "not-yet-valid",
        "checked one second before valid_from",
        &vc,
        i64::from(VALIDATOR_VALID_FROM) - 1,
        "ValidatorCertNotValid",
    ));
    f.push(
        on(
            "high-s",
            "the valid certificate with s replaced by n - s: same id, refused as non-canonical",
            &with_flipped_s(&vc),
            T0,
            "NonCanonicalSignature",
        )
        .set("id", json!(hx(&vc.id()))),
    );
    f.push(on(
        "unknown-issuer",
        "signed by issuer key 3, which the config does not list",
        &sign_validator_cert(
            validator_cert_body(3, VALIDATOR_ID, &k.validator),
            &k.issuer3,
        ),
        T0,
        "UnknownIssuerKey",
    ));
    f.push(on(
        "rogue-issuer",
        "a reader's self-made certificate: a rogue key claiming issuer key 1",
        &sign_validator_cert(
            validator_cert_body(1, VALIDATOR_ID, &k.validator_other),
            &k.rogue,
        ),
        T0,
        "BadSignature",
    ));
    let mut early = validator_cert_body(2, VALIDATOR_ID, &k.validator);
    early.valid_from = (T0 - 3 * DAY) as u32;
    f.push(on(
        "issuer-key-not-valid",
        "issuer key 2 signed a certificate starting before key 2's window (T0 - 2 days)",
        &sign_validator_cert(early, &k.issuer2),
        T0,
        "IssuerKeyNotValid",
    ));
    f.push(on(
        "denied-validator",
        "validator 7013, validly certified, is on the config's validator deny list",
        &sign_validator_cert(
            validator_cert_body(1, DENIED_VALIDATOR_ID, &k.validator_other),
            &k.issuer1,
        ),
        T0,
        "ValidatorDenied",
    ));
    let mut tampered = lined.clone();
    tampered.body.lines = vec![1, 2, 3];
    f.push(on(
        "bad-signature-lines-edited",
        "line 10 replaced by line 3 after signing",
        &tampered,
        T0,
        "BadSignature",
    ));
    let mut swapped = vc.clone();
    swapped.body.public_key = k.validator_other.public;
    f.push(on(
        "bad-signature-key-swapped",
        "validator 7001's certificate with validator 7002's key put in",
        &swapped,
        T0,
        "BadSignature",
    ));
    framing(&mut f, "validator_certificate", &b);
    let lb = lined.encode();
    let bad = |name: &str, desc: &str, bytes: Vec<u8>, err: &str| {
        Vector::new(name, "validator_certificate", desc)
            .hex(&bytes)
            .fails(err)
    };
    f.push(bad(
        "uncompressed-key-prefix",
        "public key (offset 14) prefix 04: only a compressed point (02/03) is accepted",
        patched(&b, 14, &[4]),
        "InvalidPoint",
    ));
    f.push(bad(
        "key-off-curve",
        "public key (offset 14) with an x that is on no curve point",
        patched(&b, 14, &x_off_curve()),
        "InvalidPoint",
    ));
    f.push(bad(
        "empty-validity-window",
        "valid_from (offset 47) == valid_until",
        patched(&b, 47, &VALIDATOR_VALID_UNTIL.to_be_bytes()),
        "InvalidValue",
    ));
    let four = [&b[..55], &[4u8], &[0u8; 16], &b[56..]].concat();
    f.push(bad(
        "four-lines",
        "line count (offset 55) = 4 with four lines: at most 3",
        four,
        "InvalidValue",
    ));
    f.push(bad(
        "lines-unsorted",
        "lines 1, 10, 2",
        patched(
            &lb,
            60,
            &[&10u32.to_be_bytes()[..], &2u32.to_be_bytes()].concat(),
        ),
        "InvalidValue",
    ));
    f.push(bad(
        "lines-duplicate",
        "lines 1, 1, 10",
        patched(&lb, 60, &1u32.to_be_bytes()),
        "InvalidValue",
    ));
    f.push(bad(
        "line-count-long",
        "line count (offset 55) = 1 but no line follows before the signature: the signature's \
         bytes are read as the line and 4 bytes are missing at the end",
        patched(&b, 55, &[1]),
        "Truncated",
    ));
    f
}
