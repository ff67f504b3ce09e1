//! Test support: an issuer, config bundles, certificates and a protocol-level test card.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    dead_code
)]

pub mod acceptor;

use mancard_protocol::{
    BoardingPass, CertificateBody, CommandApdu, ConfigBody, CredentialCertificate, FareClass,
    IssuerKey, OfflineAllowance, PassBody, Pseudonym, ResponseApdu, SelectResponse, SigningKey,
    StatusWord, TapAuthorization, TapChallenge, Tariff, ValidatorConfig, MANCARD_AID,
};
use mancard_validator::{Journal, TrustAnchor, Validator};
use std::sync::Arc;

/// 2026-11-28 08:00 Iran time.
pub const T0: i64 = 1_795_840_200;
pub const ISSUER_KEY_ID: u32 = 7;
pub const LINE: u32 = 1;
pub const VALIDATOR_ID: u32 = 4242;

pub struct Issuer {
    pub key: SigningKey,
    pub key_id: u32,
}

impl Issuer {
    pub fn new(key_id: u32) -> Self {
        Self {
            key: SigningKey::generate().unwrap().0,
            key_id,
        }
    }

    pub fn anchor(&self) -> TrustAnchor {
        TrustAnchor {
            key_id: Some(self.key_id),
            public_key: self.key.public_key(),
        }
    }

    pub fn issuer_key(&self) -> IssuerKey {
        IssuerKey {
            key_id: self.key_id,
            public_key: self.key.public_key(),
            valid_from: 0,
            valid_until: i64::MAX / 2,
        }
    }

    pub fn bundle(&self, version: u64, issued_at: i64, deny: Vec<Pseudonym>) -> ValidatorConfig {
        ConfigBody {
            bundle_version: version,
            issued_at,
            signer_key_id: self.key_id,
            issuer_keys: vec![self.issuer_key()],
            deny_list: deny,
            tariff: Tariff::urmia_default(),
        }
        .sign(&self.key)
        .unwrap()
    }

    pub fn certificate(
        &self,
        tap_key: &SigningKey,
        valid_from: i64,
        valid_until: i64,
        class: FareClass,
        counters: (u32, u32),
        max_amount: i64,
    ) -> CredentialCertificate {
        CertificateBody {
            issuer_key_id: self.key_id,
            pseudonym: Pseudonym::random().unwrap(),
            tap_public_key: tap_key.public_key(),
            valid_from,
            valid_until,
            fare_class: class,
            allowance: OfflineAllowance {
                counter_first: counters.0,
                counter_last: counters.1,
                max_amount,
            },
        }
        .sign(&self.key)
        .unwrap()
    }
}

/// How a test card misbehaves.
#[derive(Debug, Clone, Default)]
pub struct Misbehaviour {
    /// Sign this amount instead of the challenge's fare.
    pub sign_amount: Option<i64>,
    /// Use this counter (and do not advance).
    pub counter: Option<u32>,
    /// Answer AUTHORIZE with these bytes (e.g. a recorded earlier answer).
    pub replay_answer: Option<Vec<u8>>,
    /// Flip a byte of the signature.
    pub corrupt_signature: bool,
    /// Answer the READ CERTIFICATE with this certificate instead of the announced one.
    pub swap_certificate: Option<Vec<u8>>,
}

/// A phone as the protocol sees it: answers the ManCard APDUs by signing with its tap key.
pub struct TestCard {
    pub tap_key: SigningKey,
    pub cert: Option<CredentialCertificate>,
    pub next_counter: u32,
    pub spent: i64,
    pub selected: bool,
    pub bad: Misbehaviour,
    pub last_answer: Option<Vec<u8>>,
    pub reads: u32,
    pub taps: u32,
}

impl TestCard {
    pub fn new(tap_key: SigningKey, cert: CredentialCertificate) -> Self {
        let next_counter = cert.body.allowance.counter_first;
        Self {
            tap_key,
            cert: Some(cert),
            next_counter,
            spent: 0,
            selected: false,
            bad: Misbehaviour::default(),
            last_answer: None,
            reads: 0,
            taps: 0,
        }
    }

    pub fn empty() -> Self {
        Self {
            tap_key: SigningKey::generate().unwrap().0,
            cert: None,
            next_counter: 0,
            spent: 0,
            selected: false,
            bad: Misbehaviour::default(),
            last_answer: None,
            reads: 0,
            taps: 0,
        }
    }

    pub fn pseudonym(&self) -> Pseudonym {
        self.cert.as_ref().unwrap().body.pseudonym
    }

    fn sw(sw: StatusWord) -> Vec<u8> {
        ResponseApdu::status(sw).encode()
    }

    pub fn process_apdu(&mut self, apdu: &[u8]) -> Vec<u8> {
        let cmd = match CommandApdu::parse(apdu) {
            Ok(c) => c,
            Err(e) => return Self::sw(e.status()),
        };
        match (cmd.cla, cmd.ins) {
            (0x00, 0xA4) => {
                if cmd.data != MANCARD_AID {
                    self.selected = false;
                    return Self::sw(StatusWord::AppNotFound);
                }
                self.selected = true;
                let r = SelectResponse {
                    cert_hash: self.cert.as_ref().map(|c| c.hash()),
                };
                ResponseApdu::ok(r.encode()).encode()
            }
            _ if !self.selected => Self::sw(StatusWord::ConditionsNotSatisfied),
            (0x80, 0x10) => {
                self.reads += 1;
                if let Some(b) = &self.bad.swap_certificate {
                    return ResponseApdu::ok(b.clone()).encode();
                }
                match &self.cert {
                    Some(c) => ResponseApdu::ok(c.encode()).encode(),
                    None => Self::sw(StatusWord::NoCredential),
                }
            }
            (0x80, 0x20) => {
                if let Some(b) = &self.bad.replay_answer {
                    return b.clone();
                }
                let Some(cert) = self.cert.clone() else {
                    return Self::sw(StatusWord::NoCredential);
                };
                let Ok(ch) = TapChallenge::decode(&cmd.data) else {
                    return Self::sw(StatusWord::IncorrectData);
                };
                let b = &cert.body;
                if ch.validator_time < b.valid_from || ch.validator_time > b.valid_until {
                    return Self::sw(StatusWord::CredentialNotValid);
                }
                let counter = self.bad.counter.unwrap_or(self.next_counter);
                if self.bad.counter.is_none() && counter > b.allowance.counter_last {
                    return Self::sw(StatusWord::CountersExhausted);
                }
                if self.spent + ch.fare > b.allowance.max_amount {
                    return Self::sw(StatusWord::AllowanceExhausted);
                }
                let amount = self.bad.sign_amount.unwrap_or(ch.fare);
                let mut auth =
                    TapAuthorization::sign(&self.tap_key, &ch, &cert.hash(), counter, amount)
                        .unwrap();
                if self.bad.corrupt_signature {
                    auth.signature.0[10] ^= 0x55;
                }
                if self.bad.counter.is_none() {
                    self.next_counter += 1;
                }
                self.spent += ch.fare;
                self.taps += 1;
                let out = ResponseApdu::ok(auth.encode()).encode();
                self.last_answer = Some(out.clone());
                out
            }
            _ => Self::sw(StatusWord::InsNotSupported),
        }
    }

    /// A QR pass for `counter` issued at `issued_at`.
    pub fn pass(&self, counter: u32, issued_at: i64, max_amount: i64) -> BoardingPass {
        PassBody {
            certificate: self.cert.clone().unwrap(),
            counter,
            issued_at,
            lifetime_secs: 60,
            max_amount,
        }
        .sign(&self.tap_key)
        .unwrap()
    }
}

/// A card with a fresh tap key and a certificate valid around `now`.
pub fn card(issuer: &Issuer, now: i64) -> TestCard {
    let (tap, _) = SigningKey::generate().unwrap();
    let cert = issuer.certificate(
        &tap,
        now - 86_400,
        now + 7 * 86_400,
        FareClass::Adult,
        (100, 199),
        500_000,
    );
    TestCard::new(tap, cert)
}

/// A validator with an in-memory journal, a fixed clock at `now`, and bundle v1 installed.
pub fn validator_in_memory(issuer: &Issuer, now: i64) -> Validator {
    let mut j = Journal::in_memory().unwrap();
    Validator::provision_journal(&mut j, &issuer.anchor(), VALIDATOR_ID, LINE).unwrap();
    let key = SigningKey::generate().unwrap().0;
    let mut v = Validator::from_parts(j, key, Arc::new(move || now)).unwrap();
    v.install_config(&issuer.bundle(1, now - 3600, vec![]).encode())
        .unwrap();
    v
}

pub fn fixed(now: i64) -> mancard_validator::Clock {
    Arc::new(move || now)
}

impl mancard_validator::CardChannel for TestCard {
    fn transmit(&mut self, apdu: &[u8]) -> Result<Vec<u8>, mancard_validator::ChannelError> {
        Ok(self.process_apdu(apdu))
    }
}

/// A cross-process lock for vpcd reader 0 (tests in different binaries, or run by nextest in
/// parallel processes, must not present two cards at once): holding a bound loopback port.
pub fn vpcd_lock() -> std::net::TcpListener {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        match std::net::TcpListener::bind("127.0.0.1:35969") {
            Ok(l) => return l,
            Err(e) if std::time::Instant::now() >= deadline => panic!("vpcd test lock: {e}"),
            Err(_) => std::thread::sleep(std::time::Duration::from_millis(50)),
        }
    }
}
