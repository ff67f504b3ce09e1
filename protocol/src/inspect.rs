//! Decode any ManCard message and list its fields, like `openssl x509 -text`.

use crate::apdu::{AuthorizeCommand, CommandApdu, ResponseApdu, SelectResponse};
use crate::batch::{TapBatch, TapProof, TapRecord, TornRecord};
use crate::cert::CredentialCertificate;
use crate::codec::{DecodeError, Message};
use crate::config::{IssuerKey, ValidatorConfig};
use crate::log::WalletLogEntry;
use crate::money::Rials;
use crate::pass::{BoardingPass, PASS_TEXT_PREFIX};
use crate::tap::{TapAuthorization, TapChallenge};
use crate::tariff::Tariff;
use crate::validator_cert::ValidatorCertificate;
use crate::verify::{
    verify_certificate_signature, verify_config, verify_validator_certificate, VerifyError,
};

/// Any decoded ManCard message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decoded {
    Certificate(CredentialCertificate),
    ValidatorCertificate(ValidatorCertificate),
    Challenge(TapChallenge),
    Authorization(TapAuthorization),
    Pass(BoardingPass),
    Config(ValidatorConfig),
    Tariff(Tariff),
    Record(TapRecord),
    Torn(TornRecord),
    Batch(TapBatch),
    LogEntry(WalletLogEntry),
    Select(SelectResponse),
    Command(CommandApdu),
    Response(ResponseApdu),
}

/// Decodes text (pass text, or hex with optional spaces/colons) into a message.
pub fn decode_any(input: &str) -> Result<Decoded, DecodeError> {
    let t = input.trim();
    if t.starts_with("MC") && t.contains(':') && t.len() > PASS_TEXT_PREFIX.len() + 2 {
        if let Ok(p) = BoardingPass::from_text(t) {
            return Ok(Decoded::Pass(p));
        }
        if t.get(2..3).is_some_and(|c| c != "1" && c != "2") || !is_hex(t) {
            return BoardingPass::from_text(t).map(Decoded::Pass);
        }
    }
    let cleaned: String = t
        .chars()
        .filter(|c| !c.is_whitespace() && *c != ':')
        .collect();
    let bytes = hex::decode(&cleaned).map_err(|_| DecodeError::InvalidText {
        reason: "neither a ManCard pass text nor hex",
    })?;
    decode_bytes(&bytes)
}

fn is_hex(s: &str) -> bool {
    s.chars()
        .all(|c| c.is_ascii_hexdigit() || c.is_whitespace() || c == ':')
}

/// Decodes bytes by their type tag; bytes with an ISO class byte (00/80) are read as a
/// command APDU, and anything else ending in a status word as a response APDU.
pub fn decode_bytes(b: &[u8]) -> Result<Decoded, DecodeError> {
    match b.first() {
        Some(&CredentialCertificate::TAG) => {
            CredentialCertificate::decode(b).map(Decoded::Certificate)
        }
        Some(&ValidatorCertificate::TAG) => {
            ValidatorCertificate::decode(b).map(Decoded::ValidatorCertificate)
        }
        Some(&TapChallenge::TAG) => TapChallenge::decode(b).map(Decoded::Challenge),
        Some(&TapAuthorization::TAG) => TapAuthorization::decode(b).map(Decoded::Authorization),
        Some(&BoardingPass::TAG) => BoardingPass::decode(b).map(Decoded::Pass),
        Some(&ValidatorConfig::TAG) => ValidatorConfig::decode(b).map(Decoded::Config),
        Some(&Tariff::TAG) => Tariff::decode(b).map(Decoded::Tariff),
        Some(&TapRecord::TAG) => TapRecord::decode(b).map(Decoded::Record),
        Some(&TornRecord::TAG) => TornRecord::decode(b).map(Decoded::Torn),
        Some(&TapBatch::TAG) => TapBatch::decode(b).map(Decoded::Batch),
        Some(&WalletLogEntry::TAG) => WalletLogEntry::decode(b).map(Decoded::LogEntry),
        Some(&SelectResponse::TAG) => SelectResponse::decode(b).map(Decoded::Select),
        Some(0x00) | Some(0x80) => {
            CommandApdu::parse(b)
                .map(Decoded::Command)
                .map_err(|_| DecodeError::InvalidText {
                    reason: "not a valid short command APDU",
                })
        }
        Some(_) if b.len() >= 2 => {
            ResponseApdu::parse(b)
                .map(Decoded::Response)
                .map_err(|_| DecodeError::InvalidText {
                    reason: "unknown message type",
                })
        }
        _ => Err(DecodeError::Truncated {
            offset: 0,
            needed: 2,
        }),
    }
}

fn h(b: &[u8]) -> String {
    hex::encode(b)
}

fn cert_lines(c: &CredentialCertificate, ind: &str, out: &mut Vec<String>) {
    let b = &c.body;
    out.push(format!(
        "{ind}format version: {}",
        CredentialCertificate::VERSION
    ));
    out.push(format!("{ind}issuer key id: {}", b.issuer_key_id));
    out.push(format!("{ind}card pseudonym: {}", b.pseudonym));
    out.push(format!(
        "{ind}tap public key: {}",
        h(b.tap_public_key.as_bytes())
    ));
    out.push(format!("{ind}valid from: {} (UTC seconds)", b.valid_from));
    out.push(format!("{ind}valid until: {} (UTC seconds)", b.valid_until));
    out.push(format!("{ind}fare class: {}", b.fare_class.name()));
    out.push(format!(
        "{ind}offline counters: {}..={} ({} rides)",
        b.allowance.counter_first,
        b.allowance.counter_last,
        b.allowance.counters()
    ));
    out.push(format!(
        "{ind}offline amount: {}",
        Rials(b.allowance.max_amount)
    ));
    out.push(format!("{ind}certificate id: {}", h(&c.id())));
    out.push(format!(
        "{ind}issuer signature: {}",
        h(c.signature.as_bytes())
    ));
}

fn validator_cert_lines(c: &ValidatorCertificate, ind: &str, out: &mut Vec<String>) {
    let b = &c.body;
    out.push(format!("{ind}issuer key id: {}", b.issuer_key_id));
    out.push(format!("{ind}validator id: {}", b.validator_id));
    out.push(format!("{ind}operator id: {}", b.operator_id));
    out.push(format!(
        "{ind}validator public key: {}",
        h(&b.public_key.to_compressed())
    ));
    out.push(format!("{ind}valid from: {} (UTC seconds)", b.valid_from));
    out.push(format!("{ind}valid until: {} (UTC seconds)", b.valid_until));
    if b.lines.is_empty() {
        out.push(format!("{ind}lines: any"));
    } else {
        out.push(format!("{ind}lines: {:?}", b.lines));
    }
    out.push(format!("{ind}certificate id: {}", h(&c.id())));
    out.push(format!(
        "{ind}issuer signature: {}",
        h(c.signature.as_bytes())
    ));
}

fn challenge_lines(c: &TapChallenge, ind: &str, out: &mut Vec<String>) {
    let b = &c.body;
    out.push(format!("{ind}validator id: {}", b.validator_id));
    out.push(format!("{ind}nonce: {}", h(&b.nonce)));
    out.push(format!("{ind}phone session: {}", h(&b.session)));
    out.push(format!("{ind}validator time: {}", b.validator_time));
    out.push(format!("{ind}line: {}", b.line_id));
    out.push(format!("{ind}fare: {}", Rials(b.fare)));
    out.push(format!("{ind}fare class: {}", b.fare_class.name()));
    out.push(format!(
        "{ind}validator signature: {}",
        h(c.signature.as_bytes())
    ));
}

fn auth_lines(a: &TapAuthorization, ind: &str, out: &mut Vec<String>) {
    out.push(format!("{ind}counter: {}", a.counter));
    out.push(format!("{ind}amount: {}", Rials(a.amount)));
    out.push(format!("{ind}previous tap: {}", h(&a.prev)));
    out.push(format!("{ind}certificate id: {}", h(&a.cert_id)));
    out.push(format!("{ind}tap signature: {}", h(a.signature.as_bytes())));
}

fn record_lines(r: &TapRecord, ind: &str, out: &mut Vec<String>) {
    out.push(format!("{ind}validator id: {}", r.validator_id));
    out.push(format!("{ind}line: {}", r.line_id));
    out.push(format!("{ind}time: {}", r.time));
    out.push(format!("{ind}card pseudonym: {}", r.pseudonym));
    out.push(format!("{ind}counter: {}", r.counter));
    out.push(format!(
        "{ind}fare: {} ({})",
        Rials(r.fare),
        r.fare_kind.name()
    ));
    proof_lines(&r.proof, ind, out);
}

fn torn_lines(t: &TornRecord, ind: &str, out: &mut Vec<String>) {
    out.push(format!("{ind}gave up at: {} (validator clock)", t.time));
    out.push(format!("{ind}challenge id: {}", h(&t.challenge_id())));
    out.push(format!(
        "{ind}meaning: the gate did not open for this challenge"
    ));
    challenge_lines(&t.challenge, &format!("{ind}challenge."), out);
}

fn proof_lines(p: &TapProof, ind: &str, out: &mut Vec<String>) {
    match p {
        TapProof::Nfc {
            challenge,
            authorization,
        } => {
            out.push(format!("{ind}proof: NFC"));
            out.push(format!("{ind}  tap id: {}", h(&p.id())));
            challenge_lines(challenge, &format!("{ind}  challenge."), out);
            auth_lines(authorization, &format!("{ind}  authorization."), out);
        }
        TapProof::Qr { pass } => {
            out.push(format!("{ind}proof: QR pass"));
            out.push(format!("{ind}  tap id: {}", h(&p.id())));
            pass_lines(pass, &format!("{ind}  "), out);
        }
    }
}

fn pass_lines(p: &BoardingPass, ind: &str, out: &mut Vec<String>) {
    out.push(format!("{ind}counter: {}", p.body.counter));
    out.push(format!("{ind}issued at: {}", p.body.issued_at));
    out.push(format!("{ind}lifetime: {} s", p.body.lifetime_secs));
    out.push(format!("{ind}fare class: {}", p.body.fare_class.name()));
    out.push(format!("{ind}maximum amount: {}", Rials(p.body.max_amount)));
    out.push(format!("{ind}previous tap: {}", h(&p.body.prev)));
    out.push(format!("{ind}tap signature: {}", h(p.signature.as_bytes())));
    out.push(format!("{ind}certificate:"));
    cert_lines(&p.body.certificate, &format!("{ind}  "), out);
}

impl Decoded {
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Certificate(_) => "credential certificate",
            Self::ValidatorCertificate(_) => "validator certificate",
            Self::Challenge(_) => "tap challenge",
            Self::Authorization(_) => "tap authorization",
            Self::Pass(_) => "boarding pass",
            Self::Config(_) => "validator config bundle",
            Self::Tariff(_) => "tariff",
            Self::Record(_) => "tap record",
            Self::Torn(_) => "torn record",
            Self::Batch(_) => "tap batch",
            Self::LogEntry(_) => "wallet log entry",
            Self::Select(_) => "SELECT response",
            Self::Command(_) => "command APDU",
            Self::Response(_) => "response APDU",
        }
    }

    /// Human-readable field listing, one field per line.
    pub fn describe(&self) -> Vec<String> {
        let mut out = vec![format!("{}:", self.kind())];
        let ind = "  ";
        match self {
            Self::Certificate(c) => cert_lines(c, ind, &mut out),
            Self::ValidatorCertificate(c) => validator_cert_lines(c, ind, &mut out),
            Self::Challenge(c) => challenge_lines(c, ind, &mut out),
            Self::Authorization(a) => auth_lines(a, ind, &mut out),
            Self::Pass(p) => pass_lines(p, ind, &mut out),
            Self::Config(c) => config_lines(c, ind, &mut out),
            Self::Tariff(t) => tariff_lines(t, ind, &mut out),
            Self::Record(r) => record_lines(r, ind, &mut out),
            Self::Torn(t) => torn_lines(t, ind, &mut out),
            Self::Batch(b) => batch_lines(b, ind, &mut out),
            Self::LogEntry(e) => log_entry_lines(e, ind, &mut out),
            Self::Select(s) => select_lines(s, ind, &mut out),
            Self::Command(c) => command_lines(c, ind, &mut out),
            Self::Response(r) => response_lines(r, ind, &mut out),
        }
        out
    }

    /// The issuer key id that signed this message, for issuer-signed messages.
    pub fn issuer_key_id(&self) -> Option<u32> {
        match self {
            Self::Certificate(c) => Some(c.body.issuer_key_id),
            Self::ValidatorCertificate(c) => Some(c.body.issuer_key_id),
            Self::Pass(p) => Some(p.body.certificate.body.issuer_key_id),
            Self::Config(c) => Some(c.body.signer_key_id),
            _ => None,
        }
    }

    /// Checks the issuer signature of a certificate, validator certificate, pass or config
    /// bundle with `key` (a pass: also its own tap signature, and its lifetime against the
    /// default bundle maximum).
    /// Returns None for messages an issuer does not sign.
    pub fn verify_issuer(&self, key: &IssuerKey) -> Option<Result<(), VerifyError>> {
        let keys = std::slice::from_ref(key);
        match self {
            Self::Certificate(c) => Some(verify_certificate_signature(c, keys)),
            Self::ValidatorCertificate(c) => Some(verify_validator_certificate(
                c,
                keys,
                |_| false,
                i64::from(c.body.valid_from),
            )),
            Self::Pass(p) => Some(
                verify_certificate_signature(&p.body.certificate, keys).and_then(|_| {
                    crate::verify::VerifiedCertificate::new(p.body.certificate.clone(), keys)?
                        .verify_pass(p, p.body.issued_at, &crate::config::TimeRules::default())
                }),
            ),
            Self::Config(c) => Some(verify_config(c, keys, None)),
            _ => None,
        }
    }
}

fn config_lines(c: &ValidatorConfig, ind: &str, out: &mut Vec<String>) {
    let b = &c.body;
    out.push(format!("{ind}bundle version: {}", b.bundle_version));
    out.push(format!("{ind}issued at: {}", b.issued_at));
    out.push(format!("{ind}signed by issuer key: {}", b.signer_key_id));
    for k in &b.issuer_keys {
        out.push(format!(
            "{ind}issuer key {}: {} valid {}..{}",
            k.key_id,
            h(k.public_key.as_bytes()),
            k.valid_from,
            k.valid_until
        ));
    }
    out.push(format!("{ind}deny list: {} card(s)", b.deny_list.len()));
    for p in b.deny_list.iter().take(20) {
        out.push(format!("{ind}  {p}"));
    }
    let denied: Vec<u32> = b.validator_deny_list.iter().map(|v| v.0).collect();
    out.push(format!("{ind}validator deny list: {denied:?}"));
    let t = &b.time_rules;
    out.push(format!(
        "{ind}longest pass: {} s, clock skew: {} s, tap clock window: {} s",
        t.max_pass_lifetime_secs, t.clock_skew_secs, t.tap_window_secs
    ));
    tariff_lines(&b.tariff, ind, out);
}

fn batch_lines(b: &TapBatch, ind: &str, out: &mut Vec<String>) {
    out.push(format!("{ind}validator id: {}", b.body.validator_id));
    out.push(format!("{ind}batch id: {}", h(&b.body.batch_id)));
    out.push(format!("{ind}created at: {}", b.body.created_at));
    out.push(format!("{ind}records: {}", b.body.records.len()));
    for (i, r) in b.body.records.iter().enumerate() {
        out.push(format!("{ind}record {i}:"));
        record_lines(r, &format!("{ind}  "), out);
    }
    out.push(format!("{ind}torn records: {}", b.body.torn.len()));
    for (i, t) in b.body.torn.iter().enumerate() {
        out.push(format!("{ind}torn record {i}:"));
        torn_lines(t, &format!("{ind}  "), out);
    }
    out.push(format!(
        "{ind}validator signature: {}",
        h(b.signature.as_bytes())
    ));
}

fn log_entry_lines(e: &WalletLogEntry, ind: &str, out: &mut Vec<String>) {
    out.push(format!("{ind}sequence: {}", e.seq));
    out.push(format!("{ind}time: {}", e.time));
    out.push(format!("{ind}amount: {}", Rials(e.amount)));
    out.push(format!("{ind}entry link (tap id): {}", h(&e.hash())));
    proof_lines(&e.proof, ind, out);
}

fn select_lines(s: &SelectResponse, ind: &str, out: &mut Vec<String>) {
    out.push(format!(
        "{ind}protocol version: {}",
        SelectResponse::VERSION
    ));
    out.push(format!("{ind}session value: {}", h(&s.session)));
}

fn command_lines(c: &CommandApdu, ind: &str, out: &mut Vec<String>) {
    out.push(format!(
        "{ind}CLA {:02X} INS {:02X} P1 {:02X} P2 {:02X}",
        c.cla, c.ins, c.p1, c.p2
    ));
    out.push(format!("{ind}command: {}", command_name(c)));
    out.push(format!(
        "{ind}data ({} bytes): {}",
        c.data.len(),
        h(&c.data)
    ));
    out.push(format!(
        "{ind}Le: {}",
        c.le.map_or("absent".to_string(), |l| l.to_string())
    ));
    if command_name(c) == "AUTHORIZE TAP" {
        if let Ok(a) = AuthorizeCommand::parse(c.p1, &c.data) {
            out.push(format!("{ind}tap challenge:"));
            challenge_lines(&a.challenge, &format!("{ind}  "), out);
            if let Some(v) = &a.validator_cert {
                out.push(format!("{ind}validator certificate:"));
                validator_cert_lines(v, &format!("{ind}  "), out);
            }
            return;
        }
    }
    embedded_message_lines(&c.data, ind, out);
}

fn response_lines(r: &ResponseApdu, ind: &str, out: &mut Vec<String>) {
    out.push(format!(
        "{ind}status word: {:04X} ({})",
        r.sw.code(),
        r.sw.describe()
    ));
    out.push(format!(
        "{ind}data ({} bytes): {}",
        r.data.len(),
        h(&r.data)
    ));
    embedded_message_lines(&r.data, ind, out);
}

/// An APDU's data field, described as the message it carries (if it is one, and not another APDU).
fn embedded_message_lines(data: &[u8], ind: &str, out: &mut Vec<String>) {
    if let Ok(m) = decode_bytes(data) {
        if !matches!(m, Decoded::Command(_) | Decoded::Response(_)) {
            out.extend(m.describe().into_iter().map(|l| format!("{ind}{l}")));
        }
    }
}

fn command_name(c: &CommandApdu) -> &'static str {
    use crate::apdu::{
        CLA_ISO, CLA_PROPRIETARY, INS_AUTHORIZE_TAP, INS_READ_CERTIFICATE, INS_SELECT,
    };
    match (c.cla, c.ins) {
        (CLA_ISO, INS_SELECT) => "SELECT",
        (CLA_PROPRIETARY, INS_READ_CERTIFICATE) => "READ CERTIFICATE",
        (CLA_PROPRIETARY, INS_AUTHORIZE_TAP) => "AUTHORIZE TAP",
        _ => "unknown",
    }
}

fn tariff_lines(t: &Tariff, ind: &str, out: &mut Vec<String>) {
    out.push(format!("{ind}tariff:"));
    out.push(format!(
        "{ind}  local time: UTC{:+}s, fare day starts at {}s",
        t.utc_offset_secs, t.day_start_secs
    ));
    out.push(format!(
        "{ind}  transfer window: {} s, transfer fares {:?}",
        t.transfer_window_secs, t.transfer_fares
    ));
    out.push(format!("{ind}  daily caps: {:?}", t.daily_caps));
    for l in &t.lines {
        out.push(format!(
            "{ind}  line {}: adult {} student {} senior {} free {}",
            l.line_id, l.fares[0], l.fares[1], l.fares[2], l.fares[3]
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_show_grouped_rials_and_toman() {
        let c = TapChallenge {
            body: crate::tap::ChallengeBody {
                validator_id: 7001,
                nonce: [0; 16],
                session: [0; 16],
                validator_time: 0,
                line_id: 1,
                fare: 20_000,
                fare_class: crate::tariff::FareClass::Adult,
            },
            signature: crate::crypto::Signature([0; 64]),
        };
        let lines = Decoded::Challenge(c).describe();
        assert!(
            lines
                .iter()
                .any(|l| l == "  fare: 20,000 rials (2,000 toman)"),
            "{lines:?}"
        );
    }
}
