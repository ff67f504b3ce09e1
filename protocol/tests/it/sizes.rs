//! Size budget: what must fit on the wire and in a QR code (docs/protocol.md, "Sizes").
//! Every APDU pair of every tap path is measured against the short-APDU limits (command data
//! ≤ 255 bytes, response ≤ 256 data bytes + SW), and the pair count per tap against the budget
//! (3 at first sight, 2 with both certificates cached). Prints the measured table:
//! `cargo test -p mancard-protocol --test it sizes:: -- --nocapture`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use mancard_protocol::apdu::{
    CLA_PROPRIETARY, INS_AUTHORIZE_TAP, INS_READ_CERTIFICATE, INS_SELECT,
};
use mancard_protocol::*;
use mancard_testkit::protocol::*;
use qrcode::bits::Bits;
use qrcode::optimize::Parser;
use qrcode::types::Mode;
use qrcode::{EcLevel, QrCode, Version};
use std::collections::BTreeMap;

const MAX_COMMAND_DATA: usize = 255;
const MAX_RESPONSE: usize = 256 + 2;

/// A minimal v2 wallet applet, just enough to play the protocol's commands: it authenticates
/// the reader (its certificate inline or cached, the challenge's signature and session), asks
/// for a requote when the fare class differs, and answers READ CERTIFICATE only after a
/// verified challenge.
struct Card {
    cert: CredentialCertificate,
    tap_key: SigningKey,
    issuer_keys: Vec<IssuerKey>,
    readers: BTreeMap<u32, ValidatorCertificate>,
    session: Option<[u8; 16]>,
    authenticated: bool,
    taps: u8,
    next_counter: u32,
    prev: [u8; 32],
}

impl Card {
    fn new(k: &Keys, cert: CredentialCertificate) -> Self {
        Self {
            prev: chain_start(&cert.id()),
            cert,
            tap_key: k.tap.ring(),
            issuer_keys: issuer_keys(k),
            readers: BTreeMap::new(),
            session: None,
            authenticated: false,
            taps: 0,
            next_counter: COUNTER_FIRST,
        }
    }

    fn process(&mut self, command: &[u8]) -> Vec<u8> {
        let Ok(c) = CommandApdu::parse(command) else {
            return ResponseApdu::status(StatusWord::WrongLength).encode();
        };
        let r = match (c.cla, c.ins) {
            (0x00, INS_SELECT) if c.data == MANCARD_AID => {
                self.taps = self.taps.wrapping_add(1);
                let s = session(&format!("card-session-{}", self.taps));
                self.session = Some(s);
                self.authenticated = false;
                ResponseApdu::ok(SelectResponse { session: s }.encode())
            }
            (0x00, INS_SELECT) => ResponseApdu::status(StatusWord::AppNotFound),
            _ if self.session.is_none() => ResponseApdu::status(StatusWord::ConditionsNotSatisfied),
            (CLA_PROPRIETARY, INS_READ_CERTIFICATE) if self.authenticated => {
                ResponseApdu::ok(self.cert.encode())
            }
            (CLA_PROPRIETARY, INS_READ_CERTIFICATE) => {
                ResponseApdu::status(StatusWord::ConditionsNotSatisfied)
            }
            (CLA_PROPRIETARY, INS_AUTHORIZE_TAP) => self.authorize(&c),
            _ => ResponseApdu::status(StatusWord::InsNotSupported),
        };
        r.encode()
    }

    fn authorize(&mut self, c: &CommandApdu) -> ResponseApdu {
        let Ok(cmd) = AuthorizeCommand::parse(c.p1, &c.data) else {
            return ResponseApdu::status(StatusWord::IncorrectData);
        };
        let ch = &cmd.challenge;
        let reader = match cmd.validator_cert {
            Some(v) => {
                let denied = |_| false;
                if verify_validator_certificate(&v, &self.issuer_keys, denied, T0).is_err() {
                    return ResponseApdu::status(StatusWord::ReaderUnknown);
                }
                self.readers.insert(v.body.validator_id, v.clone());
                v
            }
            None => match self.readers.get(&ch.body.validator_id) {
                Some(v) => v.clone(),
                None => return ResponseApdu::status(StatusWord::ReaderCertificateRequired),
            },
        };
        if verify_challenge(ch, &reader).is_err() {
            return ResponseApdu::status(StatusWord::BadChallengeSignature);
        }
        if Some(ch.body.session) != self.session {
            return ResponseApdu::status(StatusWord::StaleChallenge);
        }
        self.authenticated = true;
        if ch.body.fare_class != self.cert.body.fare_class {
            return ResponseApdu::ok(AuthorizeResponse::Requote(self.cert.clone()).encode());
        }
        let counter = self.next_counter;
        self.next_counter += 1;
        let a = TapAuthorization::sign(
            &self.tap_key,
            &ch.body,
            &self.cert.id(),
            counter,
            ch.body.fare,
            &self.prev,
        )
        .unwrap();
        self.prev = TapProof::Nfc {
            challenge: ch.clone(),
            authorization: a.clone(),
        }
        .id();
        ResponseApdu::ok(AuthorizeResponse::Authorized(a).encode())
    }
}

/// What one tap measured.
#[derive(Debug, Default)]
struct TapStats {
    /// (command name, command APDU length, command data length, response length) per pair.
    pairs: Vec<(&'static str, usize, usize, usize)>,
}

impl TapStats {
    fn max_command_data(&self) -> usize {
        self.pairs.iter().map(|p| p.2).max().unwrap_or(0)
    }
    fn max_response(&self) -> usize {
        self.pairs.iter().map(|p| p.3).max().unwrap_or(0)
    }
}

/// The validator: its key and certificate, and the phones' certificates it has cached.
struct Reader<'a> {
    key: &'a TestKey,
    cert: ValidatorCertificate,
    cache: Vec<CredentialCertificate>,
    taps: u32,
}

impl Reader<'_> {
    fn challenge(&mut self, session: [u8; 16], class: FareClass) -> TapChallenge {
        self.taps += 1;
        let fare = Tariff::urmia_default()
            .fare(class, 1, T0, &RideState::default())
            .unwrap()
            .amount;
        let mut body = challenge_body(&format!("reader-{}", self.taps), T0, 1, fare);
        body.session = session;
        body.fare_class = class;
        sign_challenge(body, self.key)
    }

    /// The reader's side of an NFC tap: SELECT; a challenge quoted for an adult, with the
    /// reader's certificate inline unless `phone_has_reader`; on 6986 the same with it inline;
    /// on a requote, a fresh challenge for the certificate's class; READ CERTIFICATE when the
    /// authorizing certificate is not cached. Every APDU is checked to be short.
    fn tap(
        &mut self,
        card: &mut Card,
        phone_has_reader: bool,
        config: &ValidatorConfig,
    ) -> TapStats {
        let mut stats = TapStats::default();
        let mut exchange = |name: &'static str, card: &mut Card, c: CommandApdu| -> ResponseApdu {
            let bytes = c.encode().expect("short APDU encodes");
            assert!(
                c.data.len() <= MAX_COMMAND_DATA,
                "{name}: {} B of data",
                c.data.len()
            );
            assert!(c.le.is_none_or(|le| le <= 256));
            assert_eq!(
                CommandApdu::parse(&bytes).unwrap(),
                c,
                "round-trips as a short APDU"
            );
            let resp = card.process(&bytes);
            assert!(
                resp.len() <= MAX_RESPONSE,
                "{name}: response {} B",
                resp.len()
            );
            stats
                .pairs
                .push((name, bytes.len(), c.data.len(), resp.len()));
            ResponseApdu::parse(&resp).unwrap()
        };
        let sel = exchange("SELECT", card, CommandApdu::select_mancard());
        let session = SelectResponse::decode(&sel.data).unwrap().session;
        let mut ch = self.challenge(session, FareClass::Adult);
        let mut inline = !phone_has_reader;
        let r = loop {
            let name = if inline {
                "AUTHORIZE TAP (P1 01)"
            } else {
                "AUTHORIZE TAP (P1 00)"
            };
            let r = exchange(
                name,
                card,
                CommandApdu::authorize_tap(&ch, inline.then_some(&self.cert)),
            );
            if r.sw == StatusWord::ReaderCertificateRequired && !inline {
                inline = true;
                continue;
            }
            assert_eq!(r.sw, StatusWord::Ok);
            match AuthorizeResponse::decode(&r.data).unwrap() {
                AuthorizeResponse::Requote(cert) => {
                    VerifiedCertificate::new(cert.clone(), &config.body.issuer_keys).unwrap();
                    ch = self.challenge(session, cert.body.fare_class);
                    self.cache.push(cert);
                    inline = false;
                }
                AuthorizeResponse::Authorized(a) => break a,
            }
        };
        let cert = match self.cache.iter().find(|c| c.id() == r.cert_id) {
            Some(c) => c.clone(),
            None => {
                let resp = exchange("READ CERTIFICATE", card, CommandApdu::read_certificate());
                let c = CredentialCertificate::decode(&resp.data).unwrap();
                self.cache.push(c.clone());
                c
            }
        };
        verify_nfc_tap(config, &cert, &ch, &r).unwrap();
        stats
    }
}

/// Smallest QR version (at ECC M) holding `text` as one alphanumeric segment.
fn alphanumeric_version(text: &str) -> Option<i16> {
    (1..=40).find(|&v| {
        let mut bits = Bits::new(Version::Normal(v));
        bits.push_alphanumeric_data(text.as_bytes()).is_ok()
            && bits.push_terminator(EcLevel::M).is_ok()
            && QrCode::with_bits(bits, EcLevel::M).is_ok()
    })
}

fn qr_alphanumeric(c: char) -> bool {
    c.is_ascii_digit() || c.is_ascii_uppercase() || " $%*+-./:".contains(c)
}

fn student_cert(k: &Keys) -> CredentialCertificate {
    let mut body = cert_body(1, "rider-student", &k.tap);
    body.fare_class = FareClass::Student;
    sign_cert(body, &k.issuer1)
}

fn print_tap(label: &str, s: &TapStats) {
    println!("  {label}: {} pairs", s.pairs.len());
    for (name, cmd, data, resp) in &s.pairs {
        println!("    {name:<24} command {cmd:>3} B (data {data:>3} B), response {resp:>3} B");
    }
}

/// Every tap path, pair by pair: first sight and cached, adult and student, a reader whose
/// certificate the phone lost, and the largest validator certificate.
#[test]
fn every_apdu_pair_is_short_and_taps_take_at_most_three() {
    let k = Keys::new();
    let config = std_config(&k);
    let mut reader = Reader {
        key: &k.validator,
        cert: std_validator_cert(&k),
        cache: Vec::new(),
        taps: 0,
    };
    let mut adult = Card::new(&k, std_cert(&k));
    let first = reader.tap(&mut adult, false, &config);
    assert_eq!(
        first.pairs.len(),
        3,
        "first sight: SELECT, AUTHORIZE, READ CERTIFICATE"
    );
    let cached = reader.tap(&mut adult, true, &config);
    assert_eq!(cached.pairs.len(), 2, "both cached: SELECT, AUTHORIZE");

    let mut student = Card::new(&k, student_cert(&k));
    let s_first = reader.tap(&mut student, false, &config);
    assert_eq!(
        s_first.pairs.len(),
        3,
        "student: SELECT, AUTHORIZE (requote), AUTHORIZE"
    );
    let s_cached = reader.tap(&mut student, true, &config);
    assert_eq!(s_cached.pairs.len(), 3, "a non-adult class always requotes");

    let mut forgetful = Card::new(&k, std_cert(&k));
    let lost = reader.tap(&mut forgetful, true, &config);
    assert_eq!(
        lost.pairs.len(),
        3,
        "phone lacked the reader's certificate: 6986, retry"
    );

    let mut lb = validator_cert_body(1, VALIDATOR_ID, &k.validator);
    lb.lines = vec![1, 2, 10];
    let mut lined = Reader {
        key: &k.validator,
        cert: sign_validator_cert(lb, &k.issuer1),
        cache: Vec::new(),
        taps: 0,
    };
    assert_eq!(lined.cert.encode().len(), ValidatorCertificate::MAX_LEN);
    let widest = lined.tap(&mut Card::new(&k, std_cert(&k)), false, &config);
    assert_eq!(
        widest.max_command_data(),
        MAX_COMMAND_DATA,
        "3 lines fill the APDU exactly"
    );
    for s in [&first, &cached, &s_first, &s_cached, &lost, &widest] {
        assert!(s.max_command_data() <= MAX_COMMAND_DATA);
        assert!(s.max_response() <= MAX_RESPONSE);
    }
    println!("ManCard NFC taps (measured):");
    print_tap("adult, first sight", &first);
    print_tap("adult, both cached", &cached);
    print_tap("student, first sight (requote)", &s_first);
    print_tap("student, both cached (requote)", &s_cached);
    print_tap("phone lost the reader's certificate", &lost);
    print_tap("first sight, 3-line validator certificate", &widest);
}

#[test]
fn size_budget() {
    let k = Keys::new();
    let cert = std_cert(&k);
    let config = std_config(&k);
    let vcert = std_validator_cert(&k);
    let ch = std_challenge(&k);
    let auth = std_authorization(&k);

    let cert_len = cert.encode().len();
    assert_eq!(cert_len, CredentialCertificate::LEN);
    assert_eq!(cert_len, 184);
    let vcert_len = vcert.encode().len();
    assert_eq!(vcert_len, ValidatorCertificate::MIN_LEN);
    assert_eq!(
        (ValidatorCertificate::MIN_LEN, ValidatorCertificate::MAX_LEN),
        (120, 132)
    );
    let challenge_len = ch.encode().len();
    assert_eq!(challenge_len, TapChallenge::LEN);
    assert_eq!(challenge_len, 123);
    assert_eq!(auth.encode().len(), TapAuthorization::LEN);
    assert_eq!(TapAuthorization::LEN, 142);
    const { assert!(TapChallenge::LEN + ValidatorCertificate::MAX_LEN <= MAX_COMMAND_DATA) };

    let select_cmd = CommandApdu::select_mancard().encode().unwrap().len();
    let select_resp = ResponseApdu::ok(SelectResponse { session: [0; 16] }.encode())
        .encode()
        .len();
    assert_eq!(select_resp, SelectResponse::LEN + 2);
    let auth_inline_cmd = CommandApdu::authorize_tap(&ch, Some(&vcert))
        .encode()
        .unwrap()
        .len();
    let auth_cached_cmd = CommandApdu::authorize_tap(&ch, None)
        .encode()
        .unwrap()
        .len();
    let auth_resp = ResponseApdu::ok(auth.encode()).encode().len();
    let requote_resp = ResponseApdu::ok(cert.encode()).encode().len();
    let read_cmd = CommandApdu::read_certificate().encode().unwrap().len();
    for len in [select_resp, auth_resp, requote_resp] {
        assert!(len <= MAX_RESPONSE);
    }

    // QR boarding pass.
    let pass = std_pass(&k);
    let pass_len = pass.encode().len();
    assert_eq!(pass_len, BoardingPass::LEN);
    let text = pass.to_text();
    assert!(text.starts_with(PASS_TEXT_PREFIX));
    let bad: Vec<char> = text.chars().filter(|c| !qr_alphanumeric(*c)).collect();
    assert!(
        bad.is_empty(),
        "pass text has non-alphanumeric characters {bad:?}"
    );
    let qr = QrCode::with_error_correction_level(text.as_bytes(), EcLevel::M).unwrap();
    let Version::Normal(auto_version) = qr.version() else {
        panic!("micro QR chosen")
    };
    assert!(
        auto_version <= 13,
        "QR version {auto_version} > 13 at ECC M"
    );
    // The encoder's own segmentation never needs byte mode for this text.
    let segments: Vec<_> = Parser::new(text.as_bytes())
        .optimize(qr.version())
        .collect();
    assert!(
        segments
            .iter()
            .all(|s| matches!(s.mode, Mode::Alphanumeric | Mode::Numeric)),
        "byte-mode segment in {segments:?}"
    );
    // And the whole text as one alphanumeric segment fits too.
    let alnum_version = alphanumeric_version(&text).expect("fits some version");
    assert!(
        alnum_version <= 13,
        "alphanumeric-only QR version {alnum_version} > 13"
    );
    assert!(auto_version <= alnum_version);

    println!("ManCard size budget (measured):");
    println!("  credential certificate           {cert_len} B");
    println!(
        "  validator certificate            {vcert_len} B (no line) .. {} B (3 lines)",
        ValidatorCertificate::MAX_LEN
    );
    println!("  tap challenge (signed)           {challenge_len} B");
    println!(
        "  tap authorization                {} B",
        TapAuthorization::LEN
    );
    println!("  SELECT command / response        {select_cmd} B / {select_resp} B");
    println!(
        "  AUTHORIZE TAP P1 01 / P1 00 cmd  {auth_inline_cmd} B .. {} B / {auth_cached_cmd} B",
        auth_inline_cmd + 4 * ValidatorCertBody::MAX_LINES
    );
    println!("  AUTHORIZE answer: auth / requote {auth_resp} B / {requote_resp} B");
    println!("  READ CERTIFICATE cmd / response  {read_cmd} B / {requote_resp} B");
    println!(
        "  largest command data / response  {} B / {} B (limits 255 / 258)",
        TapChallenge::LEN + ValidatorCertificate::MAX_LEN,
        requote_resp
    );
    println!("  boarding pass                    {pass_len} B");
    println!(
        "  pass text                        {} chars ({} after the prefix)",
        text.len(),
        text.len() - PASS_TEXT_PREFIX.len()
    );
    println!(
        "  QR at ECC M                      version {auto_version} (auto), version {alnum_version} \
         as one alphanumeric segment (budget 13), {0}x{0} modules",
        qr.width()
    );
    println!(
        "  config bundle (2 keys, 2 denied cards, 1 denied validator, 3 lines) {} B",
        config.encode().len()
    );
    let records = chained_records(&k, 2);
    println!(
        "  tap record NFC / QR              {} B / {} B",
        records[0].encode().len(),
        records[1].encode().len()
    );
    let torn = TornRecord {
        time: T0,
        challenge: std_challenge(&k),
    };
    assert_eq!(torn.encode().len(), TornRecord::LEN);
    println!(
        "  torn record                      {} B",
        torn.encode().len()
    );
    let log = log_chain(&k, 2);
    println!(
        "  wallet log entry NFC / QR        {} B / {} B",
        log[0].encode().len(),
        log[1].encode().len()
    );
}

/// Every status-word response is short too.
#[test]
fn error_responses_are_short() {
    for code in [
        0x9000u16, 0x6700, 0x6A80, 0x6A82, 0x6A86, 0x6982, 0x6985, 0x6A88, 0x6984, 0x6A83, 0x6A84,
        0x6581, 0x6D00, 0x6E00, 0x6F00, 0x6986, 0x69C1, 0x69C2, 0x69C3, 0x69C4, 0x69C5, 0x69C6,
        0x69C7, 0x69C8, 0x69C9,
    ] {
        let sw = StatusWord::from_code(code);
        assert!(
            !matches!(sw, StatusWord::Other(_)),
            "{code:04X} is a known word"
        );
        assert_eq!(sw.code(), code);
        assert_eq!(ResponseApdu::status(sw).encode().len(), 2);
    }
}

#[test]
fn oversized_lists_are_refused_at_signing_not_emitted() {
    let (key, _) = SigningKey::generate().unwrap();
    let body = BatchBody {
        validator_id: 1,
        batch_id: [0; 16],
        created_at: 0,
        records: Vec::new(),
        torn: Vec::new(),
    };
    assert!(body.sign(&key).is_ok());
    let mut tariff = Tariff::urmia_default();
    tariff.lines = (0..=Tariff::MAX_LINES as u32)
        .map(|id| LineFare {
            line_id: id,
            fares: [1, 1, 1, 0],
        })
        .collect();
    let cfg = ConfigBody {
        bundle_version: 1,
        issued_at: 0,
        signer_key_id: 1,
        issuer_keys: Vec::new(),
        deny_list: Vec::new(),
        validator_deny_list: Vec::new(),
        time_rules: TimeRules::default(),
        tariff,
    };
    assert!(matches!(
        cfg.sign(&key),
        Err(KeyError::MessageTooLarge {
            field: "tariff line list",
            ..
        })
    ));
    let four_lines = ValidatorCertBody {
        issuer_key_id: 1,
        validator_id: 1,
        operator_id: 1,
        public_key: key.public_key(),
        valid_from: 0,
        valid_until: 1,
        lines: vec![1, 2, 3, 4],
    };
    assert!(matches!(
        four_lines.sign(&key),
        Err(KeyError::MessageTooLarge {
            field: "validator certificate lines",
            len: 4,
            max: 3
        })
    ));
    let le0 = CommandApdu {
        le: Some(0),
        ..CommandApdu::read_certificate()
    };
    assert!(le0.encode().is_err());
}
