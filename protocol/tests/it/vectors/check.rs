//! The committed-vectors checker: reads only the committed JSON and checks every stated outcome
//! (decoding, canonical re-encoding, derived ids and digests, verification, chains, fork proofs
//! and whole taps) with the library's decoders and verifiers.

use super::*;
use std::collections::BTreeSet;

fn load_committed() -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(vectors_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "json") {
            let name = path.file_name().unwrap().to_string_lossy().to_string();
            let v: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap())
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            out.insert(name, v);
        }
    }
    assert!(out.len() >= 12, "vector files missing: {:?}", out.keys());
    out
}

fn unhex(v: &Value) -> Vec<u8> {
    hex::decode(v.as_str().expect("hex string")).expect("valid hex")
}

fn num(v: &Value) -> i64 {
    v.as_i64().expect("integer")
}

fn cfg_of(v: &Value) -> ValidatorConfig {
    ValidatorConfig::decode(&unhex(v)).expect("context config decodes")
}

fn vcert_of(v: &Value) -> ValidatorCertificate {
    ValidatorCertificate::decode(&unhex(v)).expect("context validator certificate decodes")
}

fn cert_of(v: &Value) -> CredentialCertificate {
    CredentialCertificate::decode(&unhex(v)).expect("context certificate decodes")
}

fn entry_of(v: &Value) -> WalletLogEntry {
    WalletLogEntry::decode(&unhex(v)).expect("log entry decodes")
}

/// Decodes a vector's input by its type; on success returns the JSON view of the message and
/// checks that re-encoding gives back the input (canonical encoding).
fn decode_vector(v: &Value) -> Result<Value, String> {
    let ty = v["type"].as_str().unwrap();
    if ty == "boarding_pass_text" {
        let text = v["text"].as_str().unwrap();
        let p = BoardingPass::from_text(text).map_err(|e| decode_err(&e).to_string())?;
        assert_eq!(
            p.to_text(),
            text.trim_end_matches(['\r', '\n']),
            "canonical text"
        );
        return Ok(pass_json(&p));
    }
    let b = unhex(&v["hex"]);
    macro_rules! dec {
        ($t:ty, $view:expr) => {{
            let m = <$t>::decode(&b).map_err(|e| decode_err(&e).to_string())?;
            assert_eq!(m.encode(), b, "re-encoding is canonical");
            Ok($view(&m))
        }};
    }
    match ty {
        "certificate" => dec!(CredentialCertificate, cert_json),
        "validator_certificate" => dec!(ValidatorCertificate, validator_cert_json),
        "tap_challenge" => dec!(TapChallenge, challenge_json),
        "tap_authorization" => dec!(TapAuthorization, auth_json),
        "boarding_pass" => dec!(BoardingPass, pass_json),
        "validator_config" => dec!(ValidatorConfig, config_json),
        "tariff" => dec!(Tariff, tariff_json),
        "tap_record" => dec!(TapRecord, record_json),
        "torn_record" => dec!(TornRecord, torn_json),
        "tap_batch" => dec!(TapBatch, batch_json),
        "wallet_log_entry" => dec!(WalletLogEntry, log_json),
        "select_response" => dec!(SelectResponse, select_json),
        "authorize_response" => dec!(AuthorizeResponse, authorize_response_json),
        "authorize_command" => {
            let p1 = u8::try_from(num(&v["p1"])).unwrap();
            let c = AuthorizeCommand::parse(p1, &b).map_err(|e| decode_err(&e).to_string())?;
            let again = match (p1, &c.validator_cert) {
                (P1_RECOVER, Some(vc)) => CommandApdu::recover_tap(&c.challenge, vc),
                (_, vc) => CommandApdu::authorize_tap(&c.challenge, vc.as_ref()),
            };
            assert_eq!((again.p1, again.data), (p1, b), "re-encoding is canonical");
            Ok(authorize_command_json(&c))
        }
        "command_apdu" => {
            let c = CommandApdu::parse(&b).map_err(|e| apdu_err(&e).to_string())?;
            assert_eq!(c.encode().unwrap(), b, "re-encoding is canonical");
            Ok(command_json(&c))
        }
        "response_apdu" => {
            let r = ResponseApdu::parse(&b).map_err(|e| apdu_err(&e).to_string())?;
            assert_eq!(r.encode(), b, "re-encoding is canonical");
            Ok(response_json(&r))
        }
        other => panic!("unknown vector type {other}"),
    }
}

fn outcome<E>(r: Result<(), E>, name: impl Fn(&E) -> &'static str) -> String {
    match r {
        Ok(()) => "ok".to_string(),
        Err(e) => name(&e).to_string(),
    }
}

fn trusted_keys(ctx: &Value) -> Vec<IssuerKey> {
    ctx["trusted_keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| IssuerKey {
            key_id: u32::try_from(num(&k["key_id"])).unwrap(),
            public_key: PublicKey::from_bytes(&unhex(&k["public_key"]), "k").unwrap(),
            valid_from: num(&k["valid_from"]),
            valid_until: num(&k["valid_until"]),
        })
        .collect()
}

fn verify_vector(v: &Value, ctx: &Value) -> String {
    let ty = v["type"].as_str().unwrap();
    let r = match ty {
        "certificate" => {
            let cert = cert_of(&v["hex"]);
            let cfg = cfg_of(&ctx["config"]);
            VerifiedCertificate::new(cert, &cfg.body.issuer_keys).and_then(|vc| {
                if cfg.is_denied(&vc.cert.body.pseudonym) {
                    return Err(VerifyError::DenyListed(vc.cert.body.pseudonym));
                }
                check_validity(&vc.cert, num(&ctx["now"]))
            })
        }
        "validator_certificate" => {
            let cfg = cfg_of(&ctx["config"]);
            verify_validator_certificate(
                &vcert_of(&v["hex"]),
                &cfg.body.issuer_keys,
                |id| cfg.is_validator_denied(id),
                num(&ctx["now"]),
            )
        }
        "tap_challenge" => verify_challenge(
            &TapChallenge::decode(&unhex(&v["hex"])).unwrap(),
            &vcert_of(&ctx["validator_certificate"]),
        ),
        "tap_authorization" => {
            let auth = TapAuthorization::decode(&unhex(&v["hex"])).unwrap();
            let ch = TapChallenge::decode(&unhex(&ctx["challenge"])).unwrap();
            let cert = cert_of(&ctx["certificate"]);
            verify_nfc_tap(&cfg_of(&ctx["config"]), &cert, &ch, &auth).map(|_| ())
        }
        "boarding_pass" | "boarding_pass_text" => {
            let pass = if ty == "boarding_pass" {
                BoardingPass::decode(&unhex(&v["hex"])).unwrap()
            } else {
                BoardingPass::from_text(v["text"].as_str().unwrap()).unwrap()
            };
            verify_boarding_pass(&cfg_of(&ctx["config"]), &pass, num(&ctx["now"])).map(|_| ())
        }
        "validator_config" => {
            let cfg = ValidatorConfig::decode(&unhex(&v["hex"])).unwrap();
            let installed = ctx["installed_version"].as_u64();
            verify_config(&cfg, &trusted_keys(ctx), installed)
        }
        "tap_batch" => {
            let batch = TapBatch::decode(&unhex(&v["hex"])).unwrap();
            let key = PublicKey::from_bytes(&unhex(&ctx["validator_public_key"]), "k").unwrap();
            batch.verify(&key).map_err(VerifyError::from)
        }
        other => panic!("no verification for {other}"),
    };
    outcome(r, verify_err)
}

/// The derived values a vector states (ids, digests, links, text), each recomputed.
fn derived_mismatches(v: &Value) -> Vec<String> {
    let ty = v["type"].as_str().unwrap();
    let mut got: Vec<(&str, String)> = Vec::new();
    match (ty, v.get("hex")) {
        ("certificate", Some(h)) => got.push(("id", hx(&cert_of(h).id()))),
        ("validator_certificate", Some(h)) => got.push(("id", hx(&vcert_of(h).id()))),
        ("tap_challenge", Some(h)) => {
            let ch = TapChallenge::decode(&unhex(h)).unwrap();
            got.push(("digest", hx(&ch.body.digest())));
            got.push(("id", hx(&ch.id())));
        }
        ("tap_authorization", Some(h)) => {
            let a = TapAuthorization::decode(&unhex(h)).unwrap();
            got.push(("chain_start", hx(&chain_start(&a.cert_id))));
        }
        ("boarding_pass", Some(h)) => {
            let pass = BoardingPass::decode(&unhex(h)).unwrap();
            got.push(("text", pass.to_text()));
            got.push(("tap_id", hx(&TapProof::Qr { pass }.id())));
        }
        ("tap_record", Some(h)) => {
            let r = TapRecord::decode(&unhex(h)).unwrap();
            got.push(("tap_id", hx(&r.proof.id())));
        }
        ("torn_record", Some(h)) => {
            let t = TornRecord::decode(&unhex(h)).unwrap();
            got.push(("challenge_id", hx(&t.challenge_id())));
        }
        ("wallet_log_entry", Some(h)) => got.push(("link", hx(&entry_of(h).hash()))),
        _ => {}
    }
    got.into_iter()
        .filter_map(|(key, value)| {
            let want = v.get(key)?.as_str().unwrap();
            (value != want).then(|| format!("{key} differs: got {value}"))
        })
        .collect()
}

fn head_of(v: &Value) -> ChainHead {
    ChainHead {
        next_seq: v["next_seq"].as_u64().unwrap(),
        last: v["last"].as_object().map(|l| {
            let c = unhex(&l["cert_id"]).try_into().unwrap();
            let k = unhex(&l["link"]).try_into().unwrap();
            (c, k)
        }),
        last_counter: v["last_counter"]
            .as_u64()
            .map(|c| u32::try_from(c).unwrap()),
    }
}

fn check_chain(v: &Value) -> Value {
    let entries: Vec<WalletLogEntry> = v["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(entry_of)
        .collect();
    match verify_chain(&entries, head_of(&v["head"])) {
        Ok(h) => json!({"ok": {
            "next_seq": h.next_seq,
            "last": h.last.map(|(c, l)| json!({"cert_id": hx(&c), "link": hx(&l)})),
            "last_counter": h.last_counter,
        }}),
        Err(e) => json!(chain_err(&e)),
    }
}

fn check_fork(v: &Value) -> String {
    let cert = cert_of(&v["certificate"]);
    let (a, b) = (entry_of(&v["a"]), entry_of(&v["b"]));
    fork_name(&prove_fork(&cert, &a.proof, &b.proof)).to_string()
}

fn check_fare(v: &Value) -> Value {
    let t = Tariff::decode(&unhex(&v["tariff"])).unwrap();
    let class = FareClass::parse(v["class"].as_str().unwrap()).unwrap();
    let s = &v["state"];
    let state = RideState {
        fare_day: num(&s["fare_day"]),
        spent_today: num(&s["spent_today"]),
        last_ride: s["last_ride"]
            .as_array()
            .map(|a| (num(&a[0]), u32::try_from(num(&a[1])).unwrap())),
    };
    let line = u32::try_from(num(&v["line_id"])).unwrap();
    match t.fare(class, line, num(&v["time"]), &state) {
        Ok(q) => json!({"amount": q.amount, "kind": fare_kind_name(q.kind), "base": q.base,
            "next": {"fare_day": q.next.fare_day, "spent_today": q.next.spent_today,
                     "last_ride": q.next.last_ride.map(|(t, l)| json!([t, l]))}}),
        Err(TariffError::UnknownLine(_)) => json!("UnknownLine"),
    }
}

/// The validator's side of a recorded tap, checked step by step: the SELECT session, its own
/// challenge (signed, for that session), a requote admitted only for a verified certificate of
/// another class and answered by a fresh challenge for that class, the certificate found in
/// the cache or read after the authorization, and the authorization verified. Returns "ok", the
/// refusing status word, or the verification error.
fn check_nfc_tap(v: &Value) -> String {
    let cfg = cfg_of(&v["config"]);
    let reader = vcert_of(&v["validator_certificate"]);
    let mut known: Vec<CredentialCertificate> = v["cached_certificates"]
        .as_array()
        .unwrap()
        .iter()
        .map(cert_of)
        .collect();
    let mut it = v["exchanges"].as_array().unwrap().iter().map(|e| {
        let c = CommandApdu::parse(&unhex(&e["command"])).unwrap();
        let r = ResponseApdu::parse(&unhex(&e["response"])).unwrap();
        (c, r)
    });
    let (sel, sel_r) = it.next().unwrap();
    assert_eq!(sel, CommandApdu::select_mancard());
    if sel_r.sw != StatusWord::Ok {
        return format!("{:04X}", sel_r.sw.code());
    }
    let session = SelectResponse::decode(&sel_r.data).unwrap().session;
    let mut quoted_for: Option<(FareClass, [u8; 16])> = None;
    while let Some((cmd, resp)) = it.next() {
        assert_eq!((cmd.cla, cmd.ins), (0x80, 0x20), "AUTHORIZE TAP expected");
        let ac = AuthorizeCommand::parse(cmd.p1, &cmd.data).unwrap();
        let ch = &ac.challenge;
        assert_eq!(
            ch.body.session, session,
            "the challenge answers this session"
        );
        verify_challenge(ch, &reader).unwrap();
        if let Some(inline) = &ac.validator_cert {
            assert_eq!(inline, &reader, "the reader sends its own certificate");
        }
        if let Some((class, nonce)) = quoted_for.take() {
            assert_eq!(ch.body.fare_class, class, "requoted for the phone's class");
            assert_ne!(ch.body.nonce, nonce, "a requote is a fresh challenge");
        }
        match resp.sw {
            StatusWord::Ok => {}
            StatusWord::ReaderCertificateRequired => continue,
            sw => {
                assert!(it.next().is_none(), "nothing after a refusal");
                return format!("{:04X}", sw.code());
            }
        }
        match AuthorizeResponse::decode(&resp.data).unwrap() {
            AuthorizeResponse::Requote(cert) => {
                if let Err(e) = VerifiedCertificate::new(cert.clone(), &cfg.body.issuer_keys) {
                    return verify_err(&e).to_string();
                }
                assert_ne!(
                    cert.body.fare_class, ch.body.fare_class,
                    "a requote changes class"
                );
                quoted_for = Some((cert.body.fare_class, ch.body.nonce));
                known.push(cert);
            }
            AuthorizeResponse::Authorized(auth) => {
                let cert = match known.iter().find(|c| c.id() == auth.cert_id) {
                    Some(c) => c.clone(),
                    None => {
                        let (rc, rr) = it.next().expect("READ CERTIFICATE after an unknown id");
                        assert_eq!(rc, CommandApdu::read_certificate());
                        let c = CredentialCertificate::decode(&rr.data).unwrap();
                        assert_eq!(c.id(), auth.cert_id, "the certificate that signed");
                        c
                    }
                };
                assert!(it.next().is_none(), "nothing after the decision");
                return outcome(
                    verify_nfc_tap(&cfg, &cert, ch, &auth).map(|_| ()),
                    verify_err,
                );
            }
        }
    }
    panic!("the exchanges end without a decision")
}

/// Runs one vector; returns its failures, the outcomes it expects.
fn check_one(v: &Value, outcomes: &mut BTreeSet<String>) -> Vec<String> {
    let ty = v["type"].as_str().unwrap();
    let mut fails = Vec::new();
    let mut expect_eq = |what: &str, got: Value, want: &Value| {
        if &got != want {
            fails.push(format!("{what} {got} != expected {want}"));
        }
    };
    match ty {
        "tariff_fare" => expect_eq("fare", check_fare(v), &v["expect"]),
        "wallet_log_chain" => expect_eq("chain", check_chain(v), &v["expect"]),
        "fork_proof" => {
            outcomes.insert(v["expect"].as_str().unwrap().to_string());
            expect_eq("fork proof", json!(check_fork(v)), &v["expect"]);
        }
        "nfc_tap" => {
            let pairs = v["exchanges"].as_array().unwrap().len();
            assert!(pairs <= 3, "{pairs} pairs: a tap takes at most 3");
            expect_eq("pairs", json!(pairs), &v["pairs"]);
            expect_eq("tap outcome", json!(check_nfc_tap(v)), &v["expect"]);
        }
        _ => {
            let expect = v["decode"].as_str().unwrap();
            outcomes.insert(expect.to_string());
            match (decode_vector(v), expect) {
                (Ok(fields), "ok") => {
                    if fields != v["fields"] {
                        fails.push(format!(
                            "decoded fields differ:\n got {fields}\n want {}",
                            v["fields"]
                        ));
                    }
                    fails.extend(derived_mismatches(v));
                }
                (Ok(_), e) => fails.push(format!("decoded, expected {e}")),
                (Err(e), want) if e != want => fails.push(format!("got {e}, expected {want}")),
                (Err(_), _) => {}
            }
            if let Some(ctx) = v.get("verify") {
                let got = verify_vector(v, ctx);
                outcomes.insert(got.clone());
                if got != ctx["expect"].as_str().unwrap() {
                    fails.push(format!(
                        "verification gave {got}, expected {}",
                        ctx["expect"]
                    ));
                }
            }
        }
    }
    fails
}

#[test]
fn committed_vectors_hold() {
    let files = load_committed();
    let mut checked = 0usize;
    let mut failures = Vec::new();
    let mut types_seen = BTreeSet::new();
    let mut outcomes_seen = BTreeSet::new();
    let mut names_seen = BTreeSet::new();
    for (file, content) in &files {
        let Some(vectors) = content["vectors"].as_array() else {
            continue;
        };
        for v in vectors {
            let name = v["name"].as_str().unwrap();
            let id = format!("{file}#{name}");
            assert!(names_seen.insert(id.clone()), "duplicate vector {id}");
            types_seen.insert(v["type"].as_str().unwrap().to_string());
            for f in check_one(v, &mut outcomes_seen) {
                failures.push(format!("{id}: {f}"));
            }
            checked += 1;
        }
    }
    assert!(
        failures.is_empty(),
        "{} vector(s) failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    // Coverage of the suite itself: every message type and every typed outcome appears.
    for ty in [
        "certificate",
        "validator_certificate",
        "tap_challenge",
        "tap_authorization",
        "boarding_pass",
        "boarding_pass_text",
        "validator_config",
        "tariff",
        "tariff_fare",
        "tap_record",
        "torn_record",
        "tap_batch",
        "wallet_log_entry",
        "wallet_log_chain",
        "fork_proof",
        "select_response",
        "command_apdu",
        "authorize_command",
        "authorize_response",
        "response_apdu",
        "nfc_tap",
    ] {
        assert!(types_seen.contains(ty), "no vector of type {ty}");
    }
    for o in [
        "ok",
        "Truncated",
        "TrailingBytes",
        "WrongType",
        "UnknownVersion",
        "InvalidValue",
        "InvalidPoint",
        "LengthOutOfRange",
        "InvalidText",
        "BadSignature",
        "NonCanonicalSignature",
        "UnknownIssuerKey",
        "IssuerKeyNotValid",
        "Expired",
        "NotYetValid",
        "CounterOutOfRange",
        "AmountOverAllowance",
        "ChallengeMismatch",
        "DenyListed",
        "PassOutsideWindow",
        "PassTooLong",
        "StaleBundle",
        "ValidatorDenied",
        "ValidatorCertNotValid",
        "WrongValidator",
        "LineNotAllowed",
        "SamePredecessor",
        "SameCounter",
        "SameTap",
        "Unrelated",
        "OtherCertificate",
        "TooShort",
        "ExtendedLength",
        "LengthMismatch",
        "ResponseTooShort",
    ] {
        assert!(outcomes_seen.contains(o), "no vector expects {o}");
    }
    // Every v2 message type has a genuine v1 message refused as an unknown version.
    for ty in [
        "certificate",
        "tap_challenge",
        "tap_authorization",
        "boarding_pass",
        "validator_config",
        "tap_record",
        "tap_batch",
        "wallet_log_entry",
    ] {
        let file = files
            .values()
            .filter_map(|c| c["vectors"].as_array())
            .flatten()
            .find(|v| v["type"] == ty && v["name"] == "v1-message");
        assert!(
            file.is_some_and(|v| v["decode"] == "UnknownVersion"),
            "no v1 {ty} refused as UnknownVersion"
        );
    }
    eprintln!("checked {checked} committed vectors");
}

#[test]
fn fixed_keys_reproduce() {
    let files = load_committed();
    let keys = files["keys.json"]["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 8);
    for k in keys {
        let scalar = unhex(&k["private_scalar"]);
        let sk = p256::ecdsa::SigningKey::from_slice(&scalar).unwrap();
        let point = sk.verifying_key().to_encoded_point(false);
        assert_eq!(hx(point.as_bytes()), k["public_key"].as_str().unwrap());
        let compressed = sk.verifying_key().to_encoded_point(true);
        assert_eq!(
            hx(compressed.as_bytes()),
            k["public_key_compressed"].as_str().unwrap()
        );
        let ring_key = SigningKey::from_pkcs8(&unhex(&k["pkcs8"])).unwrap();
        assert_eq!(
            hx(ring_key.public_key().as_bytes()),
            k["public_key"].as_str().unwrap()
        );
    }
}

/// The generator signs exactly the transcript the library signs: a message signed by the
/// library (ring, randomized) equals the deterministic vector except for the signature, both
/// are low-S, and each verifies under the library's checks.
#[test]
fn generator_signs_what_the_library_signs() {
    let k = Keys::new();
    let issuer = k.issuer1.ring();
    let tap = k.tap.ring();
    let validator = k.validator.ring();

    let det = std_cert(&k);
    let lib = cert_body(1, "rider-1", &k.tap).sign(&issuer).unwrap();
    assert_eq!(det.body, lib.body);
    assert_eq!(det.id(), lib.id());
    for c in [&det, &lib] {
        assert!(c.signature.is_low_s());
        c.verify(&k.issuer1.public).unwrap();
    }

    let det = std_validator_cert(&k);
    let lib = validator_cert_body(1, VALIDATOR_ID, &k.validator)
        .sign(&issuer)
        .unwrap();
    assert_eq!(det.signed_bytes(), lib.signed_bytes());
    for c in [&det, &lib] {
        c.verify(&k.issuer1.public).unwrap();
    }

    let det = std_challenge(&k);
    let lib = det.body.clone().sign(&validator).unwrap();
    assert_eq!(det.signed_bytes(), lib.signed_bytes());
    for c in [&det, &lib] {
        verify_challenge(c, &std_validator_cert(&k)).unwrap();
    }

    let id = std_cert(&k).id();
    let det = std_authorization(&k);
    let lib = TapAuthorization::sign(
        &tap,
        &std_challenge(&k).body,
        &id,
        COUNTER_FIRST,
        20_000,
        &chain_start(&id),
    )
    .unwrap();
    let ch = std_challenge(&k);
    assert_eq!(det.signed_bytes(&ch.body), lib.signed_bytes(&ch.body));
    for a in [&det, &lib] {
        assert!(a.signature.is_low_s());
        a.verify(&k.tap.public, &ch.body).unwrap();
    }

    let cfg = std_config(&k);
    let det = std_pass(&k);
    let lib = det.body.clone().sign(&tap).unwrap();
    assert_eq!(det.signed_bytes(), lib.signed_bytes());
    for p in [&det, &lib] {
        verify_boarding_pass(&cfg, p, T0).unwrap();
    }

    let lib = std_config_body(&k).sign(&issuer).unwrap();
    assert_eq!(cfg.signed_bytes(), lib.signed_bytes());
    for c in [&cfg, &lib] {
        verify_config(c, &issuer_keys(&k), None).unwrap();
    }

    let det = batch_of(&k, 2);
    let lib = det.body.clone().sign(&validator).unwrap();
    assert_eq!(det.signed_bytes(), lib.signed_bytes());
    assert!(det.verify_signature(&k.validator.public) && lib.verify_signature(&k.validator.public));
}
