//! The validator's decision with a cached certificate: signing the challenge, then cache
//! lookup, a 100,000-card deny list, validity, fare, amount, the tap signature and the replay
//! check, on an in-memory journal with the clock at [`T0`]. Its peer is one raw sign and one
//! raw verify (the two signatures of a tap the validator makes and checks).

use super::Res;
use crate::issuer::{CertSpec, Issuer};
use crate::time::{DAY, T0};
use crate::validator::certify;
use mancard_protocol::crypto::tags;
use mancard_protocol::{
    chain_start, BoardingPass, ChallengeBody, FareClass, FareKind, PassBody, Pseudonym, PublicKey,
    SigningKey, TapAuthorization, TapChallenge, TapProof, TapRecord,
};
use mancard_validator::{Journal, Validator};
use std::hint::black_box;
use std::sync::Arc;

/// `n` revoked pseudonyms, none of them a real card's.
pub fn deny_list(n: u32) -> Vec<Pseudonym> {
    (0..n)
        .map(|i| {
            let mut p = [0u8; 16];
            for (d, s) in p.iter_mut().zip(i.to_be_bytes()) {
                *d = s;
            }
            if let Some(last) = p.last_mut() {
                *last = 0xAA;
            }
            Pseudonym(p)
        })
        .collect()
}

/// The validator-decision scenario.
pub struct ValidatorDecision {
    validator: Validator,
    validator_key: SigningKey,
    challenge: TapChallenge,
    auth: TapAuthorization,
    signed: Vec<u8>,
    tap_public_key: PublicKey,
    /// A QR pass of the same card (for the QR decision).
    pub pass_text: String,
}

impl ValidatorDecision {
    /// Validator 9 on line 1 trusting `issuer`, its bundle denying `deny` cards, the card's
    /// certificate already cached, one authorization for a 20,000-rial fare.
    pub fn new(issuer: &Issuer, deny: u32) -> Res<Self> {
        let mut j = Journal::in_memory()?;
        Validator::provision_journal(&mut j, &issuer.anchor(), 9, 1)?;
        let (validator_key, pkcs8) = SigningKey::generate()?;
        let key = SigningKey::from_pkcs8(&pkcs8)?;
        let mut v = Validator::from_parts(j, key, Arc::new(|| T0))?;
        v.install_config(&issuer.bundle(1, T0, deny_list(deny)).encode())?;
        certify(issuer, &mut v, T0);
        let tap = SigningKey::generate()?.0;
        let spec = CertSpec {
            valid_from: T0 - 10,
            valid_until: T0 + DAY,
            first: 0,
            last: 1000,
            max_amount: 1_000_000,
            ..CertSpec::default()
        };
        let cert = issuer.issue_for(&tap, spec);
        let vc = v
            .engine()
            .admit_cert(cert.clone())
            .map_err(|r| format!("admit: {r:?}"))?;
        let start = chain_start(&vc.hash);
        let pass_text = PassBody {
            certificate: cert,
            counter: 7,
            issued_at: T0,
            lifetime_secs: 60,
            fare_class: FareClass::Adult,
            max_amount: 30_000,
            prev: start,
        }
        .sign(&tap)?
        .to_text();
        let challenge = ChallengeBody {
            validator_id: 9,
            nonce: [7; 16],
            session: [3; 16],
            validator_time: T0,
            line_id: 1,
            fare: 20_000,
            fare_class: FareClass::Adult,
        }
        .sign(&validator_key)?;
        let auth = TapAuthorization::sign(&tap, &challenge.body, &vc.hash, 5, 20_000, &start)?;
        Ok(Self {
            validator: v,
            validator_key,
            signed: auth.signed_bytes(&challenge.body),
            challenge,
            auth,
            tap_public_key: tap.public_key(),
            pass_text,
        })
    }

    /// One decision on the cached certificate: the validator signs its challenge (the same
    /// body, so the phone's authorization of it stays valid), then decides; a refusal is an
    /// error.
    pub fn run_once(&mut self) -> Res<()> {
        let challenge = self.challenge.body.clone().sign(&self.validator_key)?;
        let q = self
            .validator
            .engine()
            .decide_nfc(1, black_box(&challenge), &self.auth)
            .map_err(|e| format!("decision: {e:?}"))?;
        black_box(q);
        Ok(())
    }

    /// The peer: one raw P-256 sign of the challenge's size and one raw verify of the same tap
    /// signature.
    pub fn peer_once(&self) -> Res<()> {
        let sig = self
            .validator_key
            .sign(tags::CHALLENGE, black_box(&self.challenge.body.encode()))?;
        black_box(sig);
        self.tap_public_key
            .verify(tags::TAP, black_box(&self.signed), &self.auth.signature)
            .map_err(|_| "raw verify failed")?;
        Ok(())
    }

    /// QR: pass text → Base45 decode → cached certificate → window, deny list, fare, tap
    /// signature.
    pub fn check_pass_once(&mut self) -> Res<()> {
        let p = BoardingPass::from_text(black_box(&self.pass_text))?;
        let r = self
            .validator
            .engine()
            .check_pass(&p, 1, T0)
            .map_err(|e| format!("pass: {e:?}"))?;
        black_box(r);
        Ok(())
    }

    /// An accepted tap's journal record with this card's proof (for journal benches).
    pub fn record(&self, counter: u32) -> TapRecord {
        TapRecord {
            validator_id: 9,
            line_id: 1,
            time: T0,
            pseudonym: Pseudonym([1; 16]),
            counter,
            fare: 20_000,
            fare_kind: FareKind::Full,
            proof: TapProof::Nfc {
                challenge: self.challenge.clone(),
                authorization: self.auth.clone(),
            },
        }
    }
}
