//! Wallet fixtures: a wallet in a directory over the software keystore, a provisioned
//! certificate, and the validator's side of an NFC exchange (SELECT, READ CERTIFICATE,
//! AUTHORIZE TAP) with its verification.
#![allow(clippy::indexing_slicing)] // fixtures: a slice out of range is a broken test

use crate::issuer::{CertSpec, Issuer};
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
    Arc::new(SoftwareKeystore::open_or_create(dir.join("keystore")).unwrap())
}

/// The wallet in `dir/wallet` with the default configuration.
pub fn open(dir: &Path) -> Wallet {
    open_with(dir, WalletConfig::default())
}

/// The wallet in `dir/wallet` with `config`.
pub fn open_with(dir: &Path, config: WalletConfig) -> Wallet {
    Wallet::open(dir.join("wallet"), keystore(dir), config).unwrap()
}

/// Requests, issues and installs a certificate (at [`T0`]); returns it.
pub fn provision(w: &Wallet, issuer: &Issuer, spec: CertSpec) -> CredentialCertificate {
    let req = w.prepare_credential_request().unwrap();
    let cert = issuer.issue(&req.tap_public_key, spec);
    w.install_certificate(cert.encode(), vec![issuer.info()], T0)
        .unwrap();
    cert
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
    ResponseApdu::parse(&w.process_apdu(cmd.encode().unwrap())).unwrap()
}

/// One NFC exchange as a validator does it: SELECT, READ CERTIFICATE, AUTHORIZE TAP.
pub fn tap(
    w: &Wallet,
    ch: &TapChallenge,
) -> Result<(CredentialCertificate, TapAuthorization), StatusWord> {
    let sel = send(w, &CommandApdu::select_mancard());
    if sel.sw != StatusWord::Ok {
        return Err(sel.sw);
    }
    SelectResponse::decode(&sel.data).unwrap();
    let rc = send(w, &CommandApdu::read_certificate());
    if rc.sw != StatusWord::Ok {
        return Err(rc.sw);
    }
    let cert = CredentialCertificate::decode(&rc.data).unwrap();
    let a = send(w, &CommandApdu::authorize_tap(ch));
    w.deactivated();
    if a.sw != StatusWord::Ok {
        return Err(a.sw);
    }
    Ok((cert, TapAuthorization::decode(&a.data).unwrap()))
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
