//! tap_challenge.json and tap_authorization.json.

use super::*;

pub(super) fn challenge_file(k: &Keys) -> File {
    let mut f = File::new(
        "Tap challenges (type 'H', version 2), validator -> phone, signed by the validator key over \
         CHALLENGE tag || body. digest: SHA-256(CHALLENGE-DIGEST tag || body), what the phone's \
         authorization signs. id: SHA-256(CHALLENGE-ID tag || body), the challenge's identity \
         (a torn record names it). verify: verify_challenge(challenge, validator_certificate): the \
         challenge names the certificate's validator, the certificate allows its line, and the \
         validator signature verifies (low-S only).",
    );
    let vcert = std_validator_cert(k);
    let ctx = |c: &ValidatorCertificate| json!({"validator_certificate": hx(&c.encode())});
    let ch = std_challenge(k);
    let b = ch.encode();
    f.push(
        Vector::new(
            "valid",
            "tap_challenge",
            "validator 7001, line 1, adult fare 20000 rials at T0, for the phone's session 'tap-1'",
        )
        .hex(&b)
        .ok(challenge_json(&ch))
        .set("digest", json!(hx(&ch.body.digest())))
        .set("id", json!(hx(&ch.id())))
        .verify(ctx(&vcert), "ok"),
    );
    let free = challenge(k, "free", T0, 10, 0);
    f.push(
        Vector::new(
            "valid-zero-fare",
            "tap_challenge",
            "a free ride (fare 0) on line 10",
        )
        .hex(&free.encode())
        .ok(challenge_json(&free))
        .verify(ctx(&vcert), "ok"),
    );
    let mut sb = challenge_body("student", T0, 10, 15_000);
    sb.fare_class = FareClass::Student;
    let student = sign_challenge(sb, &k.validator);
    f.push(
        Vector::new(
            "valid-student-quote",
            "tap_challenge",
            "the metro's student fare, 15000 rials, quoted after the phone answered with its \
             (student) certificate",
        )
        .hex(&student.encode())
        .ok(challenge_json(&student))
        .set("digest", json!(hx(&student.body.digest())))
        .verify(ctx(&vcert), "ok"),
    );
    let on = |name: &str, desc: &str, c: &TapChallenge, vc: &ValidatorCertificate, e: &str| {
        Vector::new(name, "tap_challenge", desc)
            .hex(&c.encode())
            .ok(challenge_json(c))
            .verify(ctx(vc), e)
    };
    f.push(on(
        "high-s",
        "the valid challenge with s replaced by n - s",
        &with_flipped_s(&ch),
        &vcert,
        "NonCanonicalSignature",
    ));
    f.push(on(
        "signed-by-another-key",
        "validator 7001's challenge signed with validator 7002's key",
        &sign_challenge(ch.body.clone(), &k.validator_other),
        &vcert,
        "BadSignature",
    ));
    let mut dear = ch.clone();
    dear.body.fare = 200_000;
    f.push(on(
        "bad-signature-fare-raised",
        "the fare raised to 200000 after the validator signed",
        &dear,
        &vcert,
        "BadSignature",
    ));
    let mut other_body = ch.body.clone();
    other_body.validator_id = OTHER_VALIDATOR_ID;
    f.push(on(
        "wrong-validator",
        "validator 7002's own (validly signed) challenge presented with validator 7001's \
         certificate",
        &sign_challenge(other_body, &k.validator_other),
        &vcert,
        "WrongValidator",
    ));
    let mut lb = validator_cert_body(1, VALIDATOR_ID, &k.validator);
    lb.lines = vec![2, 10];
    let lined = sign_validator_cert(lb, &k.issuer1);
    f.push(on(
        "line-not-allowed",
        "a challenge for line 1 from a validator certified for lines 2 and 10 only",
        &ch,
        &lined,
        "LineNotAllowed",
    ));
    framing(&mut f, "tap_challenge", &b);
    f.push(v1_message(
        "tap_challenge",
        "(unsigned) challenge",
        v1::CHALLENGE,
    ));
    f.push(
        Vector::new(
            "negative-fare",
            "tap_challenge",
            "fare (offset 50) = -20000",
        )
        .hex(&patched(&b, 50, &(-20_000i64).to_be_bytes()))
        .fails("InvalidValue"),
    );
    f.push(
        Vector::new(
            "unknown-fare-class",
            "tap_challenge",
            "fare class (offset 58) = 4",
        )
        .hex(&patched(&b, 58, &[4]))
        .fails("InvalidValue"),
    );
    f
}

pub(super) fn authorization_file(k: &Keys) -> File {
    let mut f = File::new(
        "Tap authorizations (type 'A', version 2), phone -> validator, signed by the tap key over \
         TAP tag || 'A' 02 || counter || amount || prev || cert_id || digest of the challenge. prev: \
         the id of the wallet's previous signed tap under this certificate, or its chain start \
         SHA-256(CHAIN-START tag || cert_id). verify: verify_nfc_tap(config, certificate, \
         challenge, authorization): issuer signature, deny list, validity at the challenge's time, \
         cert_id and amount == fare, fare class, counter range, allowance, tap signature (low-S \
         only). The challenge's own (validator) signature is checked by verify_challenge.",
    );
    let cfg = std_config(k);
    let cert = std_cert(k);
    let id = cert.id();
    let start = chain_start(&id);
    let ch = std_challenge(k);
    let ctx = |cert: &CredentialCertificate, ch: &TapChallenge| json!({"config": hx(&cfg.encode()), "certificate": hx(&cert.encode()), "challenge": hx(&ch.encode())});
    let auth = std_authorization(k);
    let b = auth.encode();
    f.push(
        Vector::new(
            "valid",
            "tap_authorization",
            "counter 1000, 20000 rials, the first tap of the certificate (prev = its chain start)",
        )
        .hex(&b)
        .ok(auth_json(&auth))
        .set("chain_start", json!(hx(&start)))
        .verify(ctx(&cert, &ch), "ok"),
    );
    let tap = |counter: u32, amount: i64, prev: &[u8; 32]| {
        authorize(&k.tap, &ch.body, &id, counter, amount, prev)
    };
    let case = |name: &str,
                desc: &str,
                a: &TapAuthorization,
                c: &CredentialCertificate,
                ch: &TapChallenge,
                e: &str| {
        Vector::new(name, "tap_authorization", desc)
            .hex(&a.encode())
            .ok(auth_json(a))
            .verify(ctx(c, ch), e)
    };
    f.push(case(
        "valid-last-counter-chained",
        "counter 1099, the last of the range, continuing a chain (prev = an earlier tap's id)",
        &tap(COUNTER_LAST, 20_000, &sha256(&[b"an earlier tap"])),
        &cert,
        &ch,
        "ok",
    ));
    f.push(case(
        "high-s",
        "the valid authorization with s replaced by n - s (a copy from a validator's journal)",
        &TapAuthorization {
            signature: flip_s(&auth.signature),
            ..auth.clone()
        },
        &cert,
        &ch,
        "NonCanonicalSignature",
    ));
    f.push(case(
        "certificate-high-s",
        "the valid tap checked with its certificate's signature flipped to high S (same cert id)",
        &auth,
        &with_flipped_s(&cert),
        &ch,
        "NonCanonicalSignature",
    ));
    f.push(case(
        "bad-signature-other-key",
        "signed by a tap key that is not the certificate's",
        &authorize(&k.tap_other, &ch.body, &id, 1000, 20_000, &start),
        &cert,
        &ch,
        "BadSignature",
    ));
    f.push(case(
        "bad-signature-tampered-counter",
        "counter changed to 1001 after signing",
        &TapAuthorization {
            counter: 1001,
            ..auth.clone()
        },
        &cert,
        &ch,
        "BadSignature",
    ));
    f.push(case(
        "bad-signature-tampered-prev",
        "prev changed after signing (a claimed chain the phone never signed)",
        &TapAuthorization {
            prev: [7; 32],
            ..auth.clone()
        },
        &cert,
        &ch,
        "BadSignature",
    ));
    f.push(case(
        "replayed-to-another-challenge",
        "the valid answer replayed to a new challenge (other nonce and session, same fare)",
        &auth,
        &cert,
        &challenge(k, "tap-2", T0 + 30, 1, 20_000),
        "BadSignature",
    ));
    f.push(case(
        "challenge-mismatch-amount",
        "authorizes 5000 rials where the challenge asks 20000",
        &tap(1000, 5_000, &start),
        &cert,
        &ch,
        "ChallengeMismatch",
    ));
    f.push(case(
        "challenge-mismatch-certificate",
        "bound to the standard certificate, presented with another one (same tap key)",
        &auth,
        &sign_cert(cert_body(1, "rider-2", &k.tap), &k.issuer1),
        &ch,
        "ChallengeMismatch",
    ));
    let mut sb = challenge_body("student", T0, 1, 15_000);
    sb.fare_class = FareClass::Student;
    let student_ch = sign_challenge(sb, &k.validator);
    f.push(case(
        "fare-class-mismatch",
        "an adult certificate's signature of 15000 over a challenge quoted for a student at \
         15000: the adult fare of line 1 (20000) is above the quote, so an honest adult phone \
         re-quotes; such a signature is refused",
        &authorize(&k.tap, &student_ch.body, &id, 1000, 15_000, &start),
        &cert,
        &student_ch,
        "ChallengeMismatch",
    ));
    let mut student_body = cert_body(1, "student-rider", &k.tap);
    student_body.fare_class = FareClass::Student;
    let student = sign_cert(student_body, &k.issuer1);
    f.push(case(
        "another-class-signs-its-own-fare",
        "a student certificate's signature of the student fare of line 1 (10000) over the \
         reader's adult quote (20000): the reader cannot know the class before the answer; \
         authorized_amount gives 10000",
        &authorize(
            &k.tap,
            &ch.body,
            &student.id(),
            1000,
            10_000,
            &chain_start(&student.id()),
        ),
        &student,
        &ch,
        "ok",
    ));
    f.push(case(
        "another-class-signs-the-quote",
        "a student certificate's signature of the adult quote (20000) instead of its own fare",
        &authorize(
            &k.tap,
            &ch.body,
            &student.id(),
            1000,
            20_000,
            &chain_start(&student.id()),
        ),
        &student,
        &ch,
        "ChallengeMismatch",
    ));
    f.push(case(
        "counter-out-of-range",
        "counter 1100, one past the range, validly signed",
        &tap(1100, 20_000, &start),
        &cert,
        &ch,
        "CounterOutOfRange",
    ));
    f.push(case(
        "counter-below-range",
        "counter 999, one before the range, validly signed",
        &tap(999, 20_000, &start),
        &cert,
        &ch,
        "CounterOutOfRange",
    ));
    let dear_ch = challenge(k, "tap-dear", T0, 1, ALLOWANCE + 1);
    f.push(case(
        "amount-over-allowance",
        "challenge and answer for 500001 rials, allowance 500000",
        &authorize(&k.tap, &dear_ch.body, &id, 1000, ALLOWANCE + 1, &start),
        &cert,
        &dear_ch,
        "AmountOverAllowance",
    ));
    let late_ch = challenge(k, "tap-late", cert.body.valid_until + 1, 1, 20_000);
    f.push(case(
        "expired",
        "the validator's time is one second after valid_until",
        &authorize(&k.tap, &late_ch.body, &id, 1000, 20_000, &start),
        &cert,
        &late_ch,
        "Expired",
    ));
    let early_ch = challenge(k, "tap-early", cert.body.valid_from - 1, 1, 20_000);
    f.push(case(
        "not-yet-valid",
        "the validator's time is one second before valid_from",
        &authorize(&k.tap, &early_ch.body, &id, 1000, 20_000, &start),
        &cert,
        &early_ch,
        "NotYetValid",
    ));
    let other = |c: &CredentialCertificate, key: &TestKey| {
        authorize(key, &ch.body, &c.id(), 1000, 20_000, &chain_start(&c.id()))
    };
    let denied = sign_cert(cert_body(1, "stolen-phone", &k.tap), &k.issuer1);
    f.push(case(
        "deny-listed",
        "valid tap with a deny-listed certificate",
        &other(&denied, &k.tap),
        &denied,
        &ch,
        "DenyListed",
    ));
    let unknown = sign_cert(cert_body(3, "rider-1", &k.tap), &k.issuer3);
    f.push(case(
        "unknown-issuer-key",
        "valid tap with a certificate of unknown issuer key 3",
        &other(&unknown, &k.tap),
        &unknown,
        &ch,
        "UnknownIssuerKey",
    ));
    let forged = sign_cert(cert_body(1, "rider-1", &k.tap_other), &k.rogue);
    f.push(case(
        "forged-certificate",
        "a self-made certificate (rogue key claiming issuer 1) and a matching tap",
        &other(&forged, &k.tap_other),
        &forged,
        &ch,
        "BadSignature",
    ));
    framing(&mut f, "tap_authorization", &b);
    f.push(v1_message(
        "tap_authorization",
        "authorization",
        v1::AUTHORIZATION,
    ));
    f.push(
        Vector::new(
            "negative-amount",
            "tap_authorization",
            "amount (offset 6) = -1",
        )
        .hex(&patched(&b, 6, &(-1i64).to_be_bytes()))
        .fails("InvalidValue"),
    );
    f
}
