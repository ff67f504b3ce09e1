//! Size budget: what must fit on the wire and in a QR code (DESIGN.md §4, §5).
//! Prints the measured sizes (`cargo test -p mancard-protocol --test it sizes:: -- --nocapture`).

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

const MAX_COMMAND_DATA: usize = 255;
const MAX_RESPONSE: usize = 256 + 2;

/// A minimal wallet applet, just enough to play the protocol's three commands.
struct Card {
    cert: CredentialCertificate,
    tap_key: SigningKey,
    selected: bool,
    next_counter: u32,
}

impl Card {
    fn process(&mut self, command: &[u8]) -> Vec<u8> {
        let Ok(c) = CommandApdu::parse(command) else {
            return ResponseApdu::status(StatusWord::WrongLength).encode();
        };
        let r = match (c.cla, c.ins) {
            (0x00, INS_SELECT) if c.data == MANCARD_AID => {
                self.selected = true;
                let s = SelectResponse {
                    cert_hash: Some(self.cert.hash()),
                };
                ResponseApdu::ok(s.encode())
            }
            (0x00, INS_SELECT) => ResponseApdu::status(StatusWord::AppNotFound),
            _ if !self.selected => ResponseApdu::status(StatusWord::ConditionsNotSatisfied),
            (CLA_PROPRIETARY, INS_READ_CERTIFICATE) => ResponseApdu::ok(self.cert.encode()),
            (CLA_PROPRIETARY, INS_AUTHORIZE_TAP) => match TapChallenge::decode(&c.data) {
                Ok(ch) => {
                    let counter = self.next_counter;
                    self.next_counter += 1;
                    let a = TapAuthorization::sign(
                        &self.tap_key,
                        &ch,
                        &self.cert.hash(),
                        counter,
                        ch.fare,
                    )
                    .unwrap();
                    ResponseApdu::ok(a.encode())
                }
                Err(_) => ResponseApdu::status(StatusWord::IncorrectData),
            },
            _ => ResponseApdu::status(StatusWord::InsNotSupported),
        };
        r.encode()
    }
}

struct TapStats {
    pairs: usize,
    max_command_data: usize,
    max_command: usize,
    max_response: usize,
}

/// The validator's side of an NFC tap: SELECT, READ CERTIFICATE unless cached, AUTHORIZE TAP.
/// Every APDU is checked to be short.
fn tap(
    card: &mut Card,
    cache: Option<&CredentialCertificate>,
    config: &ValidatorConfig,
) -> TapStats {
    let mut stats = TapStats {
        pairs: 0,
        max_command_data: 0,
        max_command: 0,
        max_response: 0,
    };
    let mut exchange = |card: &mut Card, c: CommandApdu| -> ResponseApdu {
        let bytes = c.encode().expect("short APDU encodes");
        assert!(c.data.len() <= MAX_COMMAND_DATA);
        assert!(c.le.is_none_or(|le| le <= 256));
        let parsed = CommandApdu::parse(&bytes).unwrap();
        assert_eq!(parsed, c, "command round-trips as a short APDU");
        let resp = card.process(&bytes);
        assert!(
            resp.len() <= MAX_RESPONSE,
            "response {} > {MAX_RESPONSE}",
            resp.len()
        );
        stats.pairs += 1;
        stats.max_command_data = stats.max_command_data.max(c.data.len());
        stats.max_command = stats.max_command.max(bytes.len());
        stats.max_response = stats.max_response.max(resp.len());
        let r = ResponseApdu::parse(&resp).unwrap();
        assert_eq!(r.sw, StatusWord::Ok);
        r
    };
    let sel = exchange(card, CommandApdu::select_mancard());
    let announced = SelectResponse::decode(&sel.data)
        .unwrap()
        .cert_hash
        .unwrap();
    let cert = match cache.filter(|c| c.hash() == announced) {
        Some(c) => c.clone(),
        None => {
            let r = exchange(card, CommandApdu::read_certificate());
            CredentialCertificate::decode(&r.data).unwrap()
        }
    };
    let ch = std_challenge();
    let r = exchange(card, CommandApdu::authorize_tap(&ch));
    let auth = TapAuthorization::decode(&r.data).unwrap();
    verify_nfc_tap(config, &cert, &ch, &auth).unwrap();
    stats
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

#[test]
fn size_budget() {
    let k = Keys::new();
    let cert = std_cert(&k);
    let config = std_config(&k);

    // Certificate.
    let cert_len = cert.encode().len();
    assert_eq!(cert_len, CredentialCertificate::LEN);
    assert!(cert_len <= 256, "certificate {cert_len} B > 256");

    // Tap authorization response: data + SW.
    let auth = authorize(&k.tap, &std_challenge(), &cert.hash(), 1000, 20_000);
    let auth_resp = ResponseApdu::ok(auth.encode()).encode().len();
    assert_eq!(auth.encode().len(), TapAuthorization::LEN);
    assert!(
        auth_resp <= 128,
        "authorization response {auth_resp} B > 128"
    );

    // Challenge and the three commands.
    let challenge_len = std_challenge().encode().len();
    assert_eq!(challenge_len, TapChallenge::LEN);
    let select_cmd = CommandApdu::select_mancard().encode().unwrap().len();
    let read_cmd = CommandApdu::read_certificate().encode().unwrap().len();
    let auth_cmd = CommandApdu::authorize_tap(&std_challenge())
        .encode()
        .unwrap()
        .len();
    let select_resp = ResponseApdu::ok(
        SelectResponse {
            cert_hash: Some(cert.hash()),
        }
        .encode(),
    )
    .encode()
    .len();
    let cert_resp = ResponseApdu::ok(cert.encode()).encode().len();
    for len in [select_resp, cert_resp, auth_resp] {
        assert!(len <= MAX_RESPONSE);
    }

    // Whole taps.
    let mut card = Card {
        cert: cert.clone(),
        tap_key: k.tap.ring(),
        selected: false,
        next_counter: COUNTER_FIRST,
    };
    let cached = tap(&mut card, Some(&cert), &config);
    assert!(cached.pairs <= 3, "cached tap took {} pairs", cached.pairs);
    let uncached = tap(&mut card, None, &config);
    assert!(
        uncached.pairs <= 4,
        "uncached tap took {} pairs",
        uncached.pairs
    );
    let stale_cache = std_cert_other(&k);
    let stale = tap(&mut card, Some(&stale_cache), &config);
    assert_eq!(
        stale.pairs, uncached.pairs,
        "a cache miss reads the certificate"
    );
    for s in [&cached, &uncached] {
        assert!(s.max_command_data <= MAX_COMMAND_DATA);
        assert!(s.max_response <= MAX_RESPONSE);
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
    println!("  certificate                      {cert_len} B (budget 256)");
    println!("  tap challenge                    {challenge_len} B");
    println!(
        "  tap authorization                {} B",
        auth.encode().len()
    );
    println!("  authorization response + SW      {auth_resp} B (budget 128)");
    println!("  SELECT command / response        {select_cmd} B / {select_resp} B");
    println!("  READ CERTIFICATE cmd / response  {read_cmd} B / {cert_resp} B");
    println!("  AUTHORIZE TAP cmd / response     {auth_cmd} B / {auth_resp} B");
    println!(
        "  largest command data / response  {} B / {} B (budgets 255 / 258)",
        uncached.max_command_data.max(cached.max_command_data),
        uncached.max_response.max(cached.max_response)
    );
    println!(
        "  APDU pairs per NFC tap           {} cached, {} not cached (budgets 3 / 4)",
        cached.pairs, uncached.pairs
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
        "  config bundle (2 keys, 2 denied, 3 lines) {} B",
        config.encode().len()
    );
    println!(
        "  tap record NFC / QR              {} B / {} B",
        nfc_record(&k, 1000, "x", T0).encode().len(),
        qr_record(&k, 1001, T0).encode().len()
    );
}

/// A certificate the validator may have cached from another rider.
fn std_cert_other(k: &Keys) -> CredentialCertificate {
    sign_cert(cert_body(1, "rider-2", &k.tap_other), &k.issuer1)
}

/// Every status-word response and the SELECT response without credential are short too.
#[test]
fn error_responses_are_short() {
    for code in [
        0x9000u16, 0x6700, 0x6A80, 0x6A82, 0x6A86, 0x6982, 0x6985, 0x6A88, 0x6984, 0x6A83, 0x6A84,
        0x6581, 0x6D00, 0x6E00, 0x6F00,
    ] {
        let sw = StatusWord::from_code(code);
        assert!(
            !matches!(sw, StatusWord::Other(_)),
            "{code:04X} is a known word"
        );
        assert_eq!(ResponseApdu::status(sw).encode().len(), 2);
    }
    let none = SelectResponse { cert_hash: None }.encode();
    assert_eq!(none.len(), 3);
}

#[test]
fn oversized_lists_are_refused_at_signing_not_emitted() {
    use mancard_protocol::{BatchBody, ConfigBody, KeyError, SigningKey, Tariff};
    let (key, _) = SigningKey::generate().unwrap();
    let body = BatchBody {
        validator_id: 1,
        batch_id: [0; 16],
        created_at: 0,
        records: Vec::new(),
    };
    assert!(body.sign(&key).is_ok());
    let mut tariff = Tariff::urmia_default();
    tariff.lines = (0..=Tariff::MAX_LINES as u32)
        .map(|id| mancard_protocol::LineFare {
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
        tariff,
    };
    assert!(matches!(
        cfg.sign(&key),
        Err(KeyError::MessageTooLarge {
            field: "tariff line list",
            ..
        })
    ));
    let le0 = mancard_protocol::CommandApdu {
        le: Some(0),
        ..mancard_protocol::CommandApdu::read_certificate()
    };
    assert!(le0.encode().is_err());
}
