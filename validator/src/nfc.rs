//! The NFC tap, reader side (protocol v2): a mutually authenticated tap in 2 command/response
//! pairs when the validator has the phone's certificate cached, 3 at first sight.
//!
//! ```text
//! SELECT                         → session (18 B: nothing that names the phone)
//! AUTHORIZE TAP (P1=01)          → authorization (a student's phone signs its own class's fare
//!                                  of the line), or the phone's certificate (a quote below it)
//!   challenge signed by this validator's key, quoted for Adult at the line's full fare,
//!   ‖ this validator's certificate
//! [AUTHORIZE TAP, requoted]      → authorization (the certificate's class, a fresh nonce)
//! [READ CERTIFICATE]             → the certificate the authorization names (first sight)
//! ```
//!
//! The phone authorizes the full fare of its class; the validator charges its rider-aware quote
//! (transfer, daily cap), which is never more than the signed amount ("authorize the full fare,
//! charge the quote"); the backend re-rates anyway.

use crate::channel::{CardChannel, ChannelError};
use crate::decision::{Medium, Refusal, TapOutcome};
use crate::device::Validator;
use mancard_protocol::{
    AuthorizeResponse, ChallengeBody, CommandApdu, CredentialCertificate, FareClass, FareQuote,
    ResponseApdu, SelectResponse, StatusWord, TapAuthorization, TapChallenge, TapProof, TapRecord,
    ValidatorCertificate, VerifiedCertificate,
};
use ring::rand::SecureRandom as _;
use std::sync::Arc;
use std::time::Instant;

/// The state of one tap: the channel, the pairs exchanged, whether the card was cached.
struct Exchange<'a> {
    ch: &'a mut dyn CardChannel,
    apdus: u32,
    cert_cached: bool,
}

impl Exchange<'_> {
    /// Sends one command; the response data on 9000, a typed refusal otherwise.
    fn send(&mut self, cmd: &CommandApdu, fare: Option<i64>) -> Result<Vec<u8>, Refusal> {
        let bytes = cmd
            .encode()
            .map_err(|e| Refusal::Internal(format!("cannot encode command: {e}")))?;
        self.apdus = self.apdus.saturating_add(1);
        let raw = self.ch.transmit(&bytes).map_err(|e| match e {
            ChannelError::CardRemoved => Refusal::Communication("card removed".into()),
            other => Refusal::Communication(other.to_string()),
        })?;
        let resp = ResponseApdu::parse(&raw).map_err(|e| Refusal::Malformed(e.to_string()))?;
        if resp.sw != StatusWord::Ok {
            return Err(Refusal::from_status(resp.sw, fare));
        }
        Ok(resp.data)
    }

    /// AUTHORIZE TAP with this validator's certificate inline.
    fn authorize(
        &mut self,
        challenge: &TapChallenge,
        vcert: &ValidatorCertificate,
    ) -> Result<AuthorizeResponse, Refusal> {
        let data = self.send(
            &CommandApdu::authorize_tap(challenge, Some(vcert)),
            Some(challenge.body.fare),
        )?;
        AuthorizeResponse::decode(&data)
            .map_err(|e| Refusal::Malformed(format!("AUTHORIZE TAP answer: {e}")))
    }
}

impl Validator {
    /// One NFC tap over `channel` (see the module documentation). The decision is journaled
    /// before it is returned.
    pub fn tap_nfc(&mut self, channel: &mut dyn CardChannel) -> TapOutcome {
        let start = Instant::now();
        let now = self.now();
        let mut x = Exchange {
            ch: channel,
            apdus: 0,
            cert_cached: false,
        };
        let result = self.nfc_exchange(&mut x, now);
        let decision = match result {
            Ok((record, quote)) => self.commit_accept(Medium::Nfc, record, &quote),
            Err(r) => self.commit_refusal(Medium::Nfc, now, r),
        };
        TapOutcome {
            decision,
            medium: Medium::Nfc,
            time: now,
            elapsed: start.elapsed(),
            apdus: x.apdus,
            cert_cached: x.cert_cached,
        }
    }

    /// What this validator checks of itself before it talks to a phone: a config, not blocked,
    /// a certificate valid now that covers its line.
    fn nfc_ready(&self, now: i64) -> Result<ValidatorCertificate, Refusal> {
        self.engine.require_config()?;
        self.check_not_blocked()?;
        let cert = self
            .certificate
            .clone()
            .ok_or(Refusal::NoValidatorCertificate)?;
        if !cert.body.valid_at(now) {
            return Err(Refusal::ValidatorCertificateNotValid {
                valid_from: cert.body.valid_from,
                valid_until: cert.body.valid_until,
            });
        }
        self.check_own_line()?;
        Ok(cert)
    }

    fn nfc_exchange(
        &mut self,
        x: &mut Exchange<'_>,
        now: i64,
    ) -> Result<(TapRecord, FareQuote), Refusal> {
        let vcert = self.nfc_ready(now)?;
        let sel = x.send(&CommandApdu::select_mancard(), None)?;
        let session = SelectResponse::decode(&sel)
            .map_err(|e| Refusal::Malformed(format!("SELECT response: {e}")))?
            .session;
        let mut challenge = self.challenge(session, FareClass::Adult, now)?;
        let mut known = None;
        let mut answer = x.authorize(&challenge, &vcert)?;
        if let AuthorizeResponse::Requote(cert) = answer {
            let vc = self.admit_presented(x, cert, challenge.body.fare_class, now)?;
            challenge = self.challenge(session, vc.cert.body.fare_class, now)?;
            known = Some(vc);
            answer = x.authorize(&challenge, &vcert)?;
        }
        let auth = match answer {
            AuthorizeResponse::Authorized(a) => a,
            // Asked for a third quote: the phone and this validator disagree on the class.
            AuthorizeResponse::Requote(_) => return Err(Refusal::FareClassMismatch),
        };
        let vc = match known {
            Some(vc) if vc.hash == auth.cert_id => vc,
            Some(_) => return Err(Refusal::ChallengeMismatch),
            None => self.certificate_of(x, &auth, now)?,
        };
        let quote = self
            .engine
            .decide_with(&vc, self.line_id, &challenge, &auth)?;
        let record = TapRecord {
            validator_id: self.validator_id,
            line_id: self.line_id,
            time: now,
            pseudonym: vc.cert.body.pseudonym,
            counter: auth.counter,
            fare: quote.amount,
            fare_kind: quote.kind,
            proof: TapProof::Nfc {
                challenge,
                authorization: auth,
            },
        };
        Ok((record, quote))
    }

    /// A challenge for `class` at the line's full fare, with a fresh nonce, signed by this
    /// validator's key.
    fn challenge(
        &self,
        session: [u8; 16],
        class: FareClass,
        now: i64,
    ) -> Result<TapChallenge, Refusal> {
        let fare = self.engine.full_fare(class, self.line_id, now)?;
        let mut nonce = [0u8; 16];
        self.rng
            .fill(&mut nonce)
            .map_err(|_| Refusal::Internal("random generator failed".into()))?;
        ChallengeBody {
            validator_id: self.validator_id,
            nonce,
            session,
            validator_time: now,
            line_id: self.line_id,
            fare,
            fare_class: class,
        }
        .sign(&self.key)
        .map_err(|e| Refusal::Internal(format!("cannot sign the challenge: {e}")))
    }

    /// The certificate a phone answered a challenge with (it is of another class than
    /// `quoted`): issuer signature, deny list, validity.
    fn admit_presented(
        &mut self,
        x: &mut Exchange<'_>,
        cert: CredentialCertificate,
        quoted: FareClass,
        now: i64,
    ) -> Result<Arc<VerifiedCertificate>, Refusal> {
        if cert.body.fare_class == quoted {
            return Err(Refusal::FareClassMismatch);
        }
        x.cert_cached = self.engine.cached_cert(&cert.id()).is_some();
        self.engine.admit_checked(cert, now)
    }

    /// The certificate an authorization names: from the cache, or read from the phone (its id
    /// must be the one the phone signed), then admitted.
    fn certificate_of(
        &mut self,
        x: &mut Exchange<'_>,
        auth: &TapAuthorization,
        now: i64,
    ) -> Result<Arc<VerifiedCertificate>, Refusal> {
        if let Some(vc) = self.engine.cached_cert(&auth.cert_id) {
            x.cert_cached = true;
            return Ok(vc);
        }
        let bytes = x.send(&CommandApdu::read_certificate(), None)?;
        let cert = CredentialCertificate::decode(&bytes)
            .map_err(|e| Refusal::Malformed(format!("certificate: {e}")))?;
        if cert.id() != auth.cert_id {
            return Err(Refusal::Malformed(
                "the certificate read is not the one the authorization names".into(),
            ));
        }
        self.engine.admit_checked(cert, now)
    }
}
