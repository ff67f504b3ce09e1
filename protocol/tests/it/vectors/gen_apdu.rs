//! apdu.json: the SELECT response, command and response APDUs, the AUTHORIZE TAP command data
//! and answer, status words and whole NFC taps.

use super::*;

pub(super) fn apdu_file(k: &Keys) -> File {
    let mut f = File::new(
        "ISO 7816-4 short APDUs and the tap's messages. select_response: SelectResponse::decode \
         (type 'S', version 2: only the protocol version and a random session value). \
         command_apdu: CommandApdu::parse. authorize_command: AuthorizeCommand::parse(p1, hex) \
         (hex = the AUTHORIZE TAP command data: the signed challenge, then the validator \
         certificate when p1 = 01 or 02 (recover a torn tap); any other p1 is InvalidValue). \
         authorize_response: AuthorizeResponse::decode (the authorization, or the phone's \
         certificate to requote another fare class). response_apdu: ResponseApdu::parse. \
         nfc_tap: whole command/response exchanges of a tap replayed as the validator does (see \
         the checker), with its outcome and pair count.",
    );
    select_vectors(&mut f);
    command_vectors(&mut f, k);
    authorize_command_vectors(&mut f, k);
    authorize_response_vectors(&mut f, k);
    response_vectors(&mut f, k);
    tap_vectors(&mut f, k);
    f
}

fn select_vectors(f: &mut File) {
    let sel = SelectResponse {
        session: session("tap-1"),
    };
    let b = sel.encode();
    f.push(
        Vector::new(
            "select-response",
            "select_response",
            "SELECT answer: version 2 and the session value 'tap-1'; nothing names the phone",
        )
        .hex(&b)
        .ok(select_json(&sel)),
    );
    let mut g = File::new("");
    framing(&mut g, "select_response", &b);
    for v in g.vectors {
        let name = format!("select-response-{}", v.0["name"].as_str().unwrap());
        f.push(v.set("name", json!(name)));
    }
    let v1 = v1_message("select_response", "SELECT answer", v1::SELECT_RESPONSE);
    f.push(v1.set("name", json!("select-response-v1-message")));
}

fn command_vectors(f: &mut File, k: &Keys) {
    let ch = std_challenge(k);
    let vc = std_validator_cert(k);
    let cmds = [
        (
            "select",
            "SELECT the ManCard AID F04D414E4341524401, Le 00",
            CommandApdu::select_mancard(),
        ),
        (
            "read-certificate",
            "READ CERTIFICATE, case 2, Le 00",
            CommandApdu::read_certificate(),
        ),
        (
            "authorize-tap-with-certificate",
            "AUTHORIZE TAP, P1 01: the standard challenge and validator 7001's certificate, Le 00",
            CommandApdu::authorize_tap(&ch, Some(&vc)),
        ),
        (
            "authorize-tap-cached",
            "AUTHORIZE TAP, P1 00: the challenge only (the phone has the certificate cached)",
            CommandApdu::authorize_tap(&ch, None),
        ),
        (
            "authorize-tap-recover",
            "AUTHORIZE TAP, P1 02 (recover a torn tap): the challenge repeated and validator \
             7001's certificate, Le 00; answered by the stored authorization or 6A88",
            CommandApdu::recover_tap(&ch, &vc),
        ),
        (
            "case-1",
            "no data, no Le",
            CommandApdu {
                cla: 0x80,
                ins: 0x10,
                p1: 0,
                p2: 0,
                data: vec![],
                le: None,
            },
        ),
        (
            "case-3",
            "SELECT without Le",
            CommandApdu {
                le: None,
                ..CommandApdu::select_mancard()
            },
        ),
        (
            "case-4-le-16",
            "SELECT with Le 10",
            CommandApdu {
                le: Some(16),
                ..CommandApdu::select_mancard()
            },
        ),
    ];
    for (name, desc, c) in cmds {
        f.push(
            Vector::new(&format!("command-{name}"), "command_apdu", desc)
                .hex(&c.encode().unwrap())
                .ok(command_json(&c)),
        );
    }
    let sel_cmd = CommandApdu::select_mancard().encode().unwrap();
    let capdu_err = |name: &str, desc: &str, b: &[u8], err: &str| {
        Vector::new(&format!("command-{name}"), "command_apdu", desc)
            .hex(b)
            .fails(err)
    };
    f.push(capdu_err("empty", "zero bytes", &[], "TooShort"));
    f.push(capdu_err(
        "header-truncated",
        "three bytes",
        &sel_cmd[..3],
        "TooShort",
    ));
    f.push(capdu_err(
        "extended-length",
        "extended Lc 00 00 09",
        &[
            0x00, 0xA4, 0x04, 0x00, 0x00, 0x00, 0x09, 0xF0, 0x4D, 0x41, 0x4E, 0x43, 0x41, 0x52,
            0x44, 0x01,
        ],
        "ExtendedLength",
    ));
    f.push(capdu_err(
        "data-truncated",
        "Lc 09 but 8 data bytes",
        &sel_cmd[..sel_cmd.len() - 2],
        "LengthMismatch",
    ));
    f.push(capdu_err(
        "too-long",
        "Lc 09 with 9 data bytes, Le and one more byte",
        &with_trailing(&sel_cmd),
        "LengthMismatch",
    ));
}

fn authorize_command_vectors(f: &mut File, k: &Keys) {
    let ch = std_challenge(k);
    let vc = std_validator_cert(k);
    let mut lb = validator_cert_body(1, VALIDATOR_ID, &k.validator);
    lb.lines = vec![1, 2, 10];
    let lined = sign_validator_cert(lb, &k.issuer1);
    let cmd = |name: &str, desc: &str, p1: u8, data: &[u8]| {
        Vector::new(&format!("authorize-{name}"), "authorize_command", desc)
            .set("p1", json!(p1))
            .hex(data)
    };
    let ok = |name: &str, desc: &str, vcert: Option<&ValidatorCertificate>| {
        let c = CommandApdu::authorize_tap(&ch, vcert);
        let parsed = AuthorizeCommand {
            challenge: ch.clone(),
            validator_cert: vcert.cloned(),
        };
        cmd(name, desc, c.p1, &c.data).ok(authorize_command_json(&parsed))
    };
    f.push(ok(
        "with-certificate",
        "P1 01: challenge (123 B) || validator certificate, no lines (120 B) = 243 B",
        Some(&vc),
    ));
    f.push(ok(
        "with-three-line-certificate",
        "P1 01: challenge (123 B) || a 3-line validator certificate (132 B) = 255 B, the most a \
         short APDU carries",
        Some(&lined),
    ));
    f.push(ok("cached", "P1 00: the challenge alone (123 B)", None));
    let with = [ch.encode(), vc.encode()].concat();
    let recover = CommandApdu::recover_tap(&ch, &vc);
    f.push(
        cmd(
            "recover",
            "P1 02 (recover a torn tap): the data of P1 01, challenge || validator certificate",
            recover.p1,
            &recover.data,
        )
        .ok(authorize_command_json(&AuthorizeCommand {
            challenge: ch.clone(),
            validator_cert: Some(vc.clone()),
        })),
    );
    f.push(
        cmd(
            "recover-without-certificate",
            "P1 02 but only the challenge",
            2,
            &ch.encode(),
        )
        .fails("Truncated"),
    );
    for p1 in [3u8, 0xFF] {
        f.push(
            cmd(
                &format!("p1-{p1:02x}"),
                "an AUTHORIZE TAP P1 other than 00, 01 or 02, with valid P1 01 data",
                p1,
                &with,
            )
            .fails("InvalidValue"),
        );
    }
    f.push(
        cmd(
            "p1-01-without-certificate",
            "P1 01 but only the challenge",
            1,
            &ch.encode(),
        )
        .fails("Truncated"),
    );
    f.push(
        cmd(
            "p1-00-with-certificate",
            "P1 00 but a certificate follows the challenge",
            0,
            &with,
        )
        .fails("TrailingBytes"),
    );
    f.push(
        cmd(
            "certificate-trailing",
            "P1 01, one byte after the certificate",
            1,
            &with_trailing(&with),
        )
        .fails("TrailingBytes"),
    );
    f.push(
        cmd(
            "challenge-truncated",
            "P1 00, the challenge without its last byte",
            0,
            &ch.encode()[..TapChallenge::LEN - 1],
        )
        .fails("Truncated"),
    );
    f.push(
        cmd(
            "certificate-is-not-one",
            "P1 01, a credential certificate where the validator certificate goes",
            1,
            &[ch.encode(), std_cert(k).encode()].concat(),
        )
        .fails("WrongType"),
    );
    let v1_apdu = CommandApdu::parse(&unhex_const(v1::AUTHORIZE_COMMAND)).unwrap();
    f.push(
        cmd(
            "v1-message",
            "the data of a genuine protocol v1 AUTHORIZE TAP (a 42-byte unsigned v1 challenge)",
            v1_apdu.p1,
            &v1_apdu.data,
        )
        .fails("UnknownVersion"),
    );
}

fn authorize_response_vectors(f: &mut File, k: &Keys) {
    let auth = std_authorization(k);
    let student = student_cert(k);
    let resp = |name: &str, desc: &str, b: &[u8]| {
        Vector::new(&format!("answer-{name}"), "authorize_response", desc).hex(b)
    };
    for (name, desc, r) in [
        (
            "authorized",
            "the phone's authorization (142 B)",
            AuthorizeResponse::Authorized(auth.clone()),
        ),
        (
            "requote",
            "a student phone's certificate (184 B): the challenge quoted the adult fare",
            AuthorizeResponse::Requote(student),
        ),
    ] {
        f.push(resp(name, desc, &r.encode()).ok(authorize_response_json(&r)));
    }
    f.push(resp("empty", "zero bytes", &[]).fails("Truncated"));
    f.push(
        resp(
            "trailing-byte",
            "the authorization followed by 00",
            &with_trailing(&auth.encode()),
        )
        .fails("TrailingBytes"),
    );
    f.push(
        resp(
            "wrong-type",
            "type tag 'X'",
            &patched(&auth.encode(), 0, b"X"),
        )
        .fails("WrongType"),
    );
    f.push(
        resp(
            "v1-message",
            "a genuine protocol v1 authorization",
            &unhex_const(v1::AUTHORIZATION),
        )
        .fails("UnknownVersion"),
    );
}

/// A student certificate over the standard tap key.
fn student_cert(k: &Keys) -> CredentialCertificate {
    let mut body = cert_body(1, "rider-student", &k.tap);
    body.fare_class = FareClass::Student;
    sign_cert(body, &k.issuer1)
}

fn response_vectors(f: &mut File, k: &Keys) {
    let resps = [
        (
            "select-ok",
            "SELECT response data + 9000",
            ResponseApdu::ok(
                SelectResponse {
                    session: session("tap-1"),
                }
                .encode(),
            ),
        ),
        (
            "certificate-ok",
            "READ CERTIFICATE: the certificate + 9000",
            ResponseApdu::ok(std_cert(k).encode()),
        ),
        (
            "authorization-ok",
            "AUTHORIZE TAP: the authorization + 9000",
            ResponseApdu::ok(std_authorization(k).encode()),
        ),
        (
            "requote-ok",
            "AUTHORIZE TAP: the phone's certificate + 9000 (requote for its class)",
            ResponseApdu::ok(student_cert(k).encode()),
        ),
    ];
    for (name, desc, r) in resps {
        f.push(
            Vector::new(&format!("response-{name}"), "response_apdu", desc)
                .hex(&r.encode())
                .ok(response_json(&r)),
        );
    }
    let words = [
        (StatusWord::Ok, "9000"),
        (StatusWord::WrongLength, "6700"),
        (StatusWord::IncorrectData, "6A80"),
        (StatusWord::AppNotFound, "6A82"),
        (StatusWord::WrongP1P2, "6A86"),
        (StatusWord::WalletLocked, "6982"),
        (StatusWord::ConditionsNotSatisfied, "6985"),
        (StatusWord::NoCredential, "6A88"),
        (StatusWord::CredentialNotValid, "6984"),
        (StatusWord::CountersExhausted, "6A83"),
        (StatusWord::AllowanceExhausted, "6A84"),
        (StatusWord::StorageFailure, "6581"),
        (StatusWord::InsNotSupported, "6D00"),
        (StatusWord::ClaNotSupported, "6E00"),
        (StatusWord::Internal, "6F00"),
        (StatusWord::ReaderCertificateRequired, "6986"),
        (StatusWord::ReaderUnknown, "69C1"),
        (StatusWord::ReaderExpired, "69C2"),
        (StatusWord::ReaderDenied, "69C3"),
        (StatusWord::BadChallengeSignature, "69C4"),
        (StatusWord::ReaderClockOff, "69C5"),
        (StatusWord::FareTooHigh, "69C6"),
        (StatusWord::TooManyTaps, "69C7"),
        (StatusWord::ReaderLineNotAllowed, "69C8"),
        (StatusWord::StaleChallenge, "69C9"),
        (StatusWord::Other(0x6283), "6283"),
    ];
    for (sw, code) in words {
        let r = ResponseApdu::status(sw);
        f.push(
            Vector::new(&format!("status-{code}"), "response_apdu", sw.describe())
                .hex(&hex::decode(code).unwrap())
                .ok(response_json(&r)),
        );
    }
    f.push(
        Vector::new(
            "response-too-short",
            "response_apdu",
            "one byte: no status word",
        )
        .hex(&[0x90])
        .fails("ResponseTooShort"),
    );
}

fn exchange(c: &CommandApdu, r: &ResponseApdu) -> Value {
    json!({"command": hx(&c.encode().unwrap()), "response": hx(&r.encode())})
}

/// Whole taps, as the validator's side replays them.
fn tap_vectors(f: &mut File, k: &Keys) {
    let cfg = std_config(k);
    let vc = std_validator_cert(k);
    let cert = std_cert(k);
    let ch = std_challenge(k);
    let auth = ResponseApdu::ok(std_authorization(k).encode());
    let select = (
        CommandApdu::select_mancard(),
        ResponseApdu::ok(
            SelectResponse {
                session: session("tap-1"),
            }
            .encode(),
        ),
    );
    let tap = |name: &str,
               desc: &str,
               reader: &ValidatorCertificate,
               cached: &[&CredentialCertificate],
               pairs: &[(CommandApdu, ResponseApdu)],
               expect: &str| {
        Vector::new(&format!("tap-{name}"), "nfc_tap", desc)
            .set("config", json!(hx(&cfg.encode())))
            .set("validator_certificate", json!(hx(&reader.encode())))
            .set(
                "cached_certificates",
                json!(cached.iter().map(|c| hx(&c.encode())).collect::<Vec<_>>()),
            )
            .set(
                "exchanges",
                json!(pairs
                    .iter()
                    .map(|(c, r)| exchange(c, r))
                    .collect::<Vec<_>>()),
            )
            .set("pairs", json!(pairs.len()))
            .set("expect", json!(expect))
    };
    let with_cert = CommandApdu::authorize_tap(&ch, Some(&vc));
    let cached_cmd = CommandApdu::authorize_tap(&ch, None);
    f.push(tap(
        "first-sight",
        "neither side knows the other: SELECT, AUTHORIZE TAP with the validator certificate \
         inline (the phone verifies it and the challenge, then signs), READ CERTIFICATE (the \
         validator does not know the certificate id): 3 pairs",
        &vc,
        &[],
        &[
            select.clone(),
            (with_cert.clone(), auth.clone()),
            (
                CommandApdu::read_certificate(),
                ResponseApdu::ok(cert.encode()),
            ),
        ],
        "ok",
    ));
    f.push(tap(
        "cached",
        "each side has the other's certificate cached: SELECT, AUTHORIZE TAP (P1 00): 2 pairs",
        &vc,
        &[&cert],
        &[select.clone(), (cached_cmd.clone(), auth.clone())],
        "ok",
    ));
    f.push(tap(
        "phone-needs-reader-certificate",
        "the reader assumed the phone had its certificate (P1 00): 6986, then the same \
         challenge with the certificate inline: 3 pairs",
        &vc,
        &[&cert],
        &[
            select.clone(),
            (
                cached_cmd.clone(),
                ResponseApdu::status(StatusWord::ReaderCertificateRequired),
            ),
            (with_cert.clone(), auth.clone()),
        ],
        "ok",
    ));
    let student = student_cert(k);
    let mut sb = challenge_body("tap-1-requote", T0, 1, 10_000);
    sb.session = session("tap-1");
    sb.fare_class = FareClass::Student;
    let student_ch = sign_challenge(sb, &k.validator);
    let student_auth = authorize(
        &k.tap,
        &student_ch.body,
        &student.id(),
        COUNTER_FIRST,
        10_000,
        &chain_start(&student.id()),
    );
    f.push(tap(
        "requote-student",
        "a student phone, first sight: the adult quote (20000) is answered with the phone's \
         certificate, signing nothing; the reader admits it and sends a new challenge (fresh \
         nonce) for the student fare (10000), which the phone signs: 3 pairs",
        &vc,
        &[],
        &[
            select.clone(),
            (with_cert.clone(), ResponseApdu::ok(student.encode())),
            (
                CommandApdu::authorize_tap(&student_ch, None),
                ResponseApdu::ok(student_auth.encode()),
            ),
        ],
        "ok",
    ));
    let refused = |name: &str,
                   desc: &str,
                   reader: &ValidatorCertificate,
                   cmd: &CommandApdu,
                   sw: StatusWord| {
        tap(
            name,
            desc,
            reader,
            &[&cert],
            &[select.clone(), (cmd.clone(), ResponseApdu::status(sw))],
            &format!("{:04X}", sw.code()),
        )
    };
    f.push(refused(
        "locked-phone",
        "a locked phone answers SELECT (version and a random session only) and 6982 to AUTHORIZE",
        &vc,
        &with_cert,
        StatusWord::WalletLocked,
    ));
    let unknown = sign_validator_cert(
        validator_cert_body(3, VALIDATOR_ID, &k.validator),
        &k.issuer3,
    );
    f.push(refused(
        "unknown-reader",
        "a reader certified by an issuer key the phone does not know: 69C1, nothing signed",
        &unknown,
        &CommandApdu::authorize_tap(&ch, Some(&unknown)),
        StatusWord::ReaderUnknown,
    ));
    let dear = challenge(k, "tap-1", T0, 1, 200_000);
    f.push(refused(
        "fare-too-high",
        "a (validly signed) challenge for 200000 rials, above the tariff's highest adult fare: \
         69C6, nothing signed",
        &vc,
        &CommandApdu::authorize_tap(&dear, Some(&vc)),
        StatusWord::FareTooHigh,
    ));
}
