//! Wallet fixtures: a wallet in a directory over the software keystore, a provisioned
//! certificate, and the validator's side of an NFC exchange (SELECT, READ CERTIFICATE,
//! AUTHORIZE TAP) with its verification.
#![allow(clippy::indexing_slicing)] // fixtures: a slice out of range is a broken test

use crate::issuer::{CertSpec, Issuer};
use crate::scenarios::Res;
use crate::time::T0;
use mancard::{SoftwareKeystore, Wallet, WalletConfig};
use mancard_protocol::{
    CommandApdu, CredentialCertificate, ResponseApdu, SelectResponse, StatusWord, TapAuthorization,
    TapChallenge, VerifiedCertificate,
};
use std::path::Path;
use std::sync::Arc;

/// The software keystore in `dir/keystore` (created on first use).
pub fn keystore(dir: &Path) -> Arc<SoftwareKeystore> {
    try_keystore(dir).unwrap()
}

/// [`keystore`], an error if it cannot be opened or created.
pub fn try_keystore(dir: &Path) -> Res<Arc<SoftwareKeystore>> {
    Ok(Arc::new(SoftwareKeystore::open_or_create(
        dir.join("keystore"),
    )?))
}

/// The wallet in `dir/wallet` with the default configuration.
pub fn open(dir: &Path) -> Wallet {
    open_with(dir, WalletConfig::default())
}

/// The wallet in `dir/wallet` with `config`.
pub fn open_with(dir: &Path, config: WalletConfig) -> Wallet {
    try_open_with(dir, config).unwrap()
}

/// [`open_with`], an error if the keystore or the wallet cannot be opened.
pub fn try_open_with(dir: &Path, config: WalletConfig) -> Res<Wallet> {
    Ok(Wallet::open(
        dir.join("wallet"),
        try_keystore(dir)?,
        config,
    )?)
}

/// Requests, issues and installs a certificate (at [`T0`]); returns it.
pub fn provision(w: &Wallet, issuer: &Issuer, spec: CertSpec) -> CredentialCertificate {
    try_provision_at(w, issuer, spec, T0).unwrap()
}

/// [`provision`] with the certificate installed at `now`.
pub fn provision_at(
    w: &Wallet,
    issuer: &Issuer,
    spec: CertSpec,
    now: i64,
) -> CredentialCertificate {
    try_provision_at(w, issuer, spec, now).unwrap()
}

/// [`provision_at`], an error if the wallet refuses the request or the certificate.
pub fn try_provision_at(
    w: &Wallet,
    issuer: &Issuer,
    spec: CertSpec,
    now: i64,
) -> Res<CredentialCertificate> {
    let req = w.prepare_credential_request()?;
    let cert = issuer.issue(&req.tap_public_key, spec);
    w.install_certificate(cert.encode(), vec![issuer.info()], now)?;
    Ok(cert)
}

/// Validator 7's challenge number `n` on line 1 (a distinct nonce per `n`).
pub fn challenge(n: u64, fare: i64, time: i64) -> TapChallenge {
    let mut nonce = [0u8; 16];
    nonce[..8].copy_from_slice(&n.to_be_bytes());
    nonce[8..].copy_from_slice(&(n ^ 0xA5A5_A5A5).to_be_bytes());
    TapChallenge {
        validator_id: 7,
        nonce,
        validator_time: time,
        line_id: 1,
        fare,
    }
}

/// One command APDU through the wallet's HCE entry point.
pub fn send(w: &Wallet, cmd: &CommandApdu) -> ResponseApdu {
    try_send(w, cmd).unwrap()
}

/// [`send`], an error if the command cannot be encoded or the answer parsed.
pub fn try_send(w: &Wallet, cmd: &CommandApdu) -> Res<ResponseApdu> {
    Ok(ResponseApdu::parse(&w.process_apdu(cmd.encode()?))?)
}

/// The answers of an NFC exchange that went through.
pub struct Exchange {
    /// READ CERTIFICATE's answer (`None` when the validator had it cached).
    pub certificate: Option<Vec<u8>>,
    /// AUTHORIZE TAP's answer: the encoded `TapAuthorization`.
    pub authorization: Vec<u8>,
}

/// One NFC exchange as a validator does it: SELECT, READ CERTIFICATE (unless the validator
/// has it cached), AUTHORIZE TAP, field off. `Ok(Err(sw))` is the status word that ended it;
/// an error is an APDU that cannot be encoded or an answer that cannot be parsed.
pub fn try_exchange(
    w: &Wallet,
    ch: &TapChallenge,
    read_certificate: bool,
) -> Res<Result<Exchange, StatusWord>> {
    let sel = try_send(w, &CommandApdu::select_mancard())?;
    if sel.sw != StatusWord::Ok {
        return Ok(Err(sel.sw));
    }
    let certificate = if read_certificate {
        SelectResponse::decode(&sel.data)?;
        let rc = try_send(w, &CommandApdu::read_certificate())?;
        if rc.sw != StatusWord::Ok {
            return Ok(Err(rc.sw));
        }
        Some(rc.data)
    } else {
        None
    };
    let a = try_send(w, &CommandApdu::authorize_tap(ch))?;
    w.deactivated();
    if a.sw != StatusWord::Ok {
        return Ok(Err(a.sw));
    }
    Ok(Ok(Exchange {
        certificate,
        authorization: a.data,
    }))
}

/// One NFC exchange as a validator does it: SELECT, READ CERTIFICATE, AUTHORIZE TAP.
pub fn tap(
    w: &Wallet,
    ch: &TapChallenge,
) -> Result<(CredentialCertificate, TapAuthorization), StatusWord> {
    let x = try_exchange(w, ch, true).unwrap()?;
    let cert = CredentialCertificate::decode(&x.certificate.unwrap()).unwrap();
    Ok((cert, TapAuthorization::decode(&x.authorization).unwrap()))
}

/// The validator's verification of a tap.
pub fn verify(
    issuer: &Issuer,
    cert: &CredentialCertificate,
    ch: &TapChallenge,
    a: &TapAuthorization,
) {
    let vc = VerifiedCertificate::new(cert.clone(), &[issuer.issuer_key()]).unwrap();
    vc.verify_tap(ch, a).unwrap();
}
