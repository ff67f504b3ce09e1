//! `mancard inspect`: decode any protocol message and print its fields, like `openssl x509 -text`,
//! then verify every signature the keys given allow: issuer signatures (`--issuer-key`), a
//! reader's challenges and batches (`--validator-certificate`), a phone's NFC authorizations
//! (`--certificate`), and what a message carries itself (a pass's tap signature, an AUTHORIZE
//! TAP command's challenge under its inline validator certificate). A fraud case's evidence
//! (`mancard backend fraud show`) is decoded part by part, each signed tap checked like a
//! record's.

use crate::CliResult;
use clap::Args;
use mancard_backend::features::fraud::{decode_evidence, describe_evidence, EVIDENCE_TAG};
use mancard_protocol::apdu::INS_AUTHORIZE_TAP;
use mancard_protocol::inspect::{decode_any, Decoded};
use mancard_protocol::{
    verify_challenge, AuthorizeCommand, CredentialCertificate, IssuerKey, PublicKey, TapBatch,
    TapProof, TimeRules, ValidatorCertificate, VerifyError,
};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Args)]
pub struct InspectArgs {
    /// Hex (spaces and colons allowed) or a pass text `MC2:...`; `-` reads standard input.
    input: String,
    /// Issuer public key file: hex of the 65-byte uncompressed key, optionally `KEYID:HEX`.
    /// Verifies the issuer signature of a certificate, validator certificate, pass or config
    /// bundle, and of the validator certificate inside an AUTHORIZE TAP command.
    #[arg(long)]
    issuer_key: Option<PathBuf>,
    /// A validator certificate (hex): verifies a tap challenge, an AUTHORIZE TAP command sent
    /// without its certificate, the challenges of NFC taps in records, log entries and batches,
    /// and a batch's signature.
    #[arg(long)]
    validator_certificate: Option<String>,
    /// A credential certificate (hex): verifies the phone's signature of the NFC taps in
    /// records, log entries and batches made under it.
    #[arg(long)]
    certificate: Option<String>,
}

/// The keys and certificates given on the command line.
struct Given {
    issuer: Option<IssuerKey>,
    validator: Option<ValidatorCertificate>,
    certificate: Option<CredentialCertificate>,
}

/// One signature (or rule) checked, and what it was checked with.
struct Check {
    what: String,
    result: Result<(), VerifyError>,
}

impl Check {
    fn new(what: impl Into<String>, result: Result<(), VerifyError>) -> Self {
        Self {
            what: what.into(),
            result,
        }
    }
}

pub fn run(args: InspectArgs) -> CliResult {
    let input = if args.input == "-" {
        std::io::read_to_string(std::io::stdin())?
    } else {
        args.input.clone()
    };
    if let Some(evidence) = evidence_bytes(&input) {
        return run_evidence(&evidence, &args);
    }
    let msg = decode_any(&input).map_err(|e| format!("cannot decode input: {e}"))?;
    for line in msg.describe() {
        println!("{line}");
    }
    let issuer = match &args.issuer_key {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read issuer key {}: {e}", path.display()))?;
            Some(parse_issuer_key(text.trim(), issuer_key_id(&msg))?)
        }
        None => None,
    };
    let given = given(&args, issuer)?;
    let checks = checks(&msg, &given);
    if checks.is_empty() && asked(&args) {
        println!(
            "verification: not applicable ({} has no signature these keys check)",
            msg.kind()
        );
    }
    report(checks)
}

fn asked(args: &InspectArgs) -> bool {
    args.issuer_key.is_some() || args.validator_certificate.is_some() || args.certificate.is_some()
}

fn given(
    args: &InspectArgs,
    issuer: Option<IssuerKey>,
) -> Result<Given, Box<dyn std::error::Error>> {
    Ok(Given {
        issuer,
        validator: args
            .validator_certificate
            .as_deref()
            .map(|h| parse_hex(h, "validator certificate", ValidatorCertificate::decode))
            .transpose()?,
        certificate: args
            .certificate
            .as_deref()
            .map(|h| parse_hex(h, "certificate", CredentialCertificate::decode))
            .transpose()?,
    })
}

/// The bytes of a fraud case's evidence, if the input is hex that starts with its tag.
fn evidence_bytes(input: &str) -> Option<Vec<u8>> {
    let cleaned: String = input
        .trim()
        .chars()
        .filter(|c| !c.is_whitespace() && *c != ':')
        .collect();
    let bytes = hex::decode(cleaned).ok()?;
    (bytes.first() == Some(&EVIDENCE_TAG)).then_some(bytes)
}

/// A fraud case's evidence: every part decoded, and the signatures of its taps checked with
/// the keys given (a pass's own signature always).
fn run_evidence(bytes: &[u8], args: &InspectArgs) -> CliResult {
    let lines = describe_evidence(bytes).map_err(|e| format!("cannot decode input: {e}"))?;
    for line in lines {
        println!("{line}");
    }
    let given = given(args, None)?;
    let mut checks = Vec::new();
    for (i, part) in decode_evidence(bytes)?.iter().enumerate() {
        if let Some(p) = part.proof() {
            proof_checks(p, &given, &format!("part {}: ", i + 1), &mut checks);
        }
    }
    report(checks)
}

/// Prints each check; exit 1 if any failed.
fn report(checks: Vec<Check>) -> CliResult {
    let mut failed = false;
    for c in checks {
        match c.result {
            Ok(()) => println!("verification: OK ({})", c.what),
            Err(e) => {
                failed = true;
                println!("verification: FAILED: {e} ({})", c.what);
            }
        }
    }
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// The issuer key id a message names: its own, or (an AUTHORIZE TAP command) its inline
/// validator certificate's.
fn issuer_key_id(msg: &Decoded) -> Option<u32> {
    msg.issuer_key_id()
        .or_else(|| inline_reader(msg).map(|v| v.body.issuer_key_id))
}

/// The AUTHORIZE TAP command a message is, if it is one.
fn authorize_command(msg: &Decoded) -> Option<AuthorizeCommand> {
    match msg {
        Decoded::Command(c) if c.ins == INS_AUTHORIZE_TAP => {
            AuthorizeCommand::parse(c.p1, &c.data).ok()
        }
        _ => None,
    }
}

fn inline_reader(msg: &Decoded) -> Option<ValidatorCertificate> {
    authorize_command(msg).and_then(|a| a.validator_cert)
}

/// Every check the message and the keys given allow.
fn checks(msg: &Decoded, given: &Given) -> Vec<Check> {
    let mut out = Vec::new();
    if let Some(key) = &given.issuer {
        let issuer = format!("issuer key {}", key.key_id);
        if let Some(r) = msg.verify_issuer(key) {
            out.push(Check::new(issuer, r));
        } else if let Some(v) = inline_reader(msg) {
            let r = Decoded::ValidatorCertificate(v).verify_issuer(key);
            if let Some(r) = r {
                out.push(Check::new(
                    format!("{issuer}, inline validator certificate"),
                    r,
                ));
            }
        }
    }
    match msg {
        Decoded::Pass(p) => {
            let key = p.body.certificate.body.tap_public_key;
            out.push(Check::new(
                "tap signature under the certificate's tap key",
                p.verify(&key).map_err(VerifyError::from),
            ));
            let max = TimeRules::default().max_pass_lifetime_secs;
            let lifetime = p.body.lifetime_secs;
            let r = if lifetime > max {
                Err(VerifyError::PassTooLong { lifetime, max })
            } else {
                Ok(())
            };
            out.push(Check::new(
                format!("lifetime within the default bundle's {max} s"),
                r,
            ));
        }
        Decoded::Challenge(ch) => {
            if let Some(v) = &given.validator {
                out.push(challenge_check(ch, v));
            }
        }
        Decoded::Command(_) => {
            if let Some(cmd) = authorize_command(msg) {
                let reader = cmd.validator_cert.as_ref().or(given.validator.as_ref());
                if let Some(v) = reader {
                    out.push(challenge_check(&cmd.challenge, v));
                }
            }
        }
        Decoded::Record(r) => proof_checks(&r.proof, given, "", &mut out),
        Decoded::LogEntry(e) => proof_checks(&e.proof, given, "", &mut out),
        Decoded::Batch(b) => batch_checks(b, given, &mut out),
        _ => {}
    }
    out
}

fn challenge_check(ch: &mancard_protocol::TapChallenge, v: &ValidatorCertificate) -> Check {
    Check::new(
        format!("challenge signed by validator {}", v.body.validator_id),
        verify_challenge(ch, v),
    )
}

/// The signatures of one tap's proof: a pass's under its own certificate, an NFC tap's
/// challenge under the validator certificate and authorization under the certificate given.
fn proof_checks(proof: &TapProof, given: &Given, at: &str, out: &mut Vec<Check>) {
    match proof {
        TapProof::Qr { pass } => out.push(Check::new(
            format!("{at}pass tap signature (counter {})", pass.body.counter),
            pass.verify(&pass.body.certificate.body.tap_public_key)
                .map_err(VerifyError::from),
        )),
        TapProof::Nfc {
            challenge,
            authorization,
        } => {
            if let Some(v) = &given.validator {
                let mut c = challenge_check(challenge, v);
                c.what = format!("{at}{}", c.what);
                out.push(c);
            }
            if let Some(cert) = &given.certificate {
                let what = format!("{at}tap signature (counter {})", authorization.counter);
                let r = if authorization.cert_id == cert.id() {
                    authorization
                        .verify(&cert.body.tap_public_key, &challenge.body)
                        .map_err(VerifyError::from)
                } else {
                    Err(VerifyError::ChallengeMismatch)
                };
                out.push(Check::new(what, r));
            }
        }
    }
}

fn batch_checks(b: &TapBatch, given: &Given, out: &mut Vec<Check>) {
    if let Some(v) = &given.validator {
        let what = format!("batch signed by validator {}", v.body.validator_id);
        let r = if b.body.validator_id == v.body.validator_id {
            b.verify(&v.body.public_key).map_err(VerifyError::from)
        } else {
            Err(VerifyError::WrongValidator {
                challenge: b.body.validator_id,
                certificate: v.body.validator_id,
            })
        };
        out.push(Check::new(what, r));
    }
    for (i, r) in b.body.records.iter().enumerate() {
        proof_checks(&r.proof, given, &format!("record {i}: "), out);
    }
}

fn parse_hex<T>(
    text: &str,
    what: &str,
    decode: impl Fn(&[u8]) -> Result<T, mancard_protocol::DecodeError>,
) -> Result<T, Box<dyn std::error::Error>> {
    let cleaned: String = text
        .chars()
        .filter(|c| !c.is_whitespace() && *c != ':')
        .collect();
    let bytes = hex::decode(cleaned).map_err(|e| format!("the {what} is not hex: {e}"))?;
    Ok(decode(&bytes).map_err(|e| format!("cannot decode the {what}: {e}"))?)
}

fn parse_issuer_key(
    text: &str,
    message_key_id: Option<u32>,
) -> Result<IssuerKey, Box<dyn std::error::Error>> {
    let (id, hexkey) = match text.split_once(':') {
        Some((id, k)) => (Some(id.trim().parse::<u32>()?), k.trim()),
        None => (None, text),
    };
    let bytes = hex::decode(hexkey).map_err(|e| format!("issuer key is not hex: {e}"))?;
    let public_key = PublicKey::from_bytes(&bytes, "issuer key")?;
    Ok(IssuerKey {
        // Without an id, accept whichever id the message names.
        key_id: id.or(message_key_id).unwrap_or(0),
        public_key,
        valid_from: i64::MIN,
        valid_until: i64::MAX,
    })
}
