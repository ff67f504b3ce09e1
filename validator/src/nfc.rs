//! The NFC tap, reader side (protocol v2): a mutually authenticated tap in 2 command/response
//! pairs when the validator has the phone's certificate cached, 3 at first sight.
//!
//! ```text
//! SELECT                         → session (18 B: nothing that names the phone)
//! [AUTHORIZE TAP (P1=02), torn]  → the authorization already signed, or 6A88 (not this phone)
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
//!
//! **Torn taps.** An AUTHORIZE TAP the phone may have signed (sent, and answered neither by a
//! refusal status word nor by a re-quote) that does not end with the gate open is journaled
//! as torn with its challenge. At the next taps within the torn window the reader first
//! repeats the waiting torn challenges (newest first, at most [`MAX_TORN_REPEATS`]) after
//! SELECT, each in its own quiet command, AUTHORIZE TAP P1 02 (recover): the phone that signed
//! one answers the identical authorization, which is verified and journaled as a normal tap
//! (the gate opens, at the fare of the torn challenge, on the same counter) while its torn
//! entry is deleted, in one transaction; any other phone answers 6A88 (not signed here),
//! writing nothing, and gets its own fresh challenge. Torn taps never recovered go into the
//! next batch as `TornRecord`s: the gate did not open for them.
//!
//! **Write-ahead.** Every fresh challenge (P1 00/01, the re-quoted one included) is journaled
//! durably as *pending* before it is sent. The tap resolves it: journaled with the tap record
//! in one transaction (the gate opens), deleted on a refusal status word or a re-quote, torn
//! otherwise; one the validator never resolved (it lost power mid-tap) is torn at the next
//! start. So even a crash between the challenge and the journal leaves the tap recoverable, or
//! evidence that the gate did not open.

use crate::channel::{CardChannel, ChannelError};
use crate::decision::{Decision, Medium, Refusal, TapOutcome};
use crate::device::Validator;
use mancard_protocol::{
    AuthorizeResponse, ChallengeBody, CommandApdu, CredentialCertificate, FareClass, FareQuote,
    ResponseApdu, SelectResponse, StatusWord, TapAuthorization, TapChallenge, TapProof, TapRecord,
    ValidatorCertificate, VerifiedCertificate,
};
use ring::rand::SecureRandom as _;
use std::sync::Arc;
use std::time::Instant;

/// Most waiting torn challenges repeated at one tap, before a fresh challenge.
pub const MAX_TORN_REPEATS: usize = 2;

/// The state of one tap: the channel, the pairs exchanged, whether the card was cached.
struct Exchange<'a> {
    ch: &'a mut dyn CardChannel,
    apdus: u32,
    cert_cached: bool,
    /// The journal row (pending) of the last fresh challenge the phone may have signed:
    /// journaled, sent, and answered neither by a refusal status word nor by a re-quote. Torn
    /// if the gate does not open.
    exposed: Option<i64>,
}

/// The journal entry a tap that went through resolves with its record.
#[derive(Debug, Clone, Copy)]
enum Resolves {
    /// A torn tap recovered by a repeated challenge.
    Torn(i64),
    /// The fresh challenge this tap journaled before sending it.
    Pending(i64),
}

/// A tap that went through: its record and quote, and the journal entry it resolves.
struct Passed {
    record: TapRecord,
    quote: FareQuote,
    resolves: Resolves,
}

impl Exchange<'_> {
    /// Sends one command; the response (any status word), or a transport or framing refusal.
    fn transmit(&mut self, cmd: &CommandApdu) -> Result<ResponseApdu, Refusal> {
        let bytes = cmd
            .encode()
            .map_err(|e| Refusal::Internal(format!("cannot encode command: {e}")))?;
        self.apdus = self.apdus.saturating_add(1);
        let raw = self.ch.transmit(&bytes).map_err(|e| match e {
            ChannelError::CardRemoved => Refusal::Communication("card removed".into()),
            other => Refusal::Communication(other.to_string()),
        })?;
        ResponseApdu::parse(&raw).map_err(|e| Refusal::Malformed(e.to_string()))
    }

    /// Sends one command; the response data on 9000, a typed refusal otherwise.
    fn send(&mut self, cmd: &CommandApdu, fare: Option<i64>) -> Result<Vec<u8>, Refusal> {
        let resp = self.transmit(cmd)?;
        if resp.sw != StatusWord::Ok {
            return Err(Refusal::from_status(resp.sw, fare));
        }
        Ok(resp.data)
    }

    /// A waiting torn challenge repeated (AUTHORIZE TAP P1 02, recover): the phone's
    /// authorization if it signed that challenge, None if it answers any status word (6A88:
    /// another phone, not signed there; or a refusal, e.g. locked, that the fresh challenge
    /// meets again) or, against the protocol, a re-quote.
    fn repeat(
        &mut self,
        challenge: &TapChallenge,
        vcert: &ValidatorCertificate,
    ) -> Result<Option<TapAuthorization>, Refusal> {
        let resp = self.transmit(&CommandApdu::recover_tap(challenge, vcert))?;
        if resp.sw != StatusWord::Ok {
            return Ok(None);
        }
        match AuthorizeResponse::decode(&resp.data) {
            Ok(AuthorizeResponse::Authorized(a)) => Ok(Some(a)),
            Ok(AuthorizeResponse::Requote(_)) => Ok(None),
            Err(e) => Err(Refusal::Malformed(format!(
                "answer to a repeated challenge: {e}"
            ))),
        }
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
            exposed: None,
        };
        let result = self.nfc_exchange(&mut x, now);
        let mut decision = match result {
            Ok(Passed {
                record,
                quote,
                resolves: Resolves::Torn(seq),
            }) => self.commit_recovered(record, &quote, seq),
            Ok(Passed {
                record,
                quote,
                resolves: Resolves::Pending(seq),
            }) => self.commit_answered(record, &quote, seq),
            Err(r) => self.commit_refusal(Medium::Nfc, now, r),
        };
        if let (false, Some(seq)) = (decision.is_accepted(), x.exposed.take()) {
            if let Err(e) = self.journal.tear_pending(seq, self.now()) {
                decision = Decision::Refused(Refusal::JournalFailure(format!(
                    "{e} (while journaling a torn tap after: {decision:?})"
                )));
            }
        }
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

    fn nfc_exchange(&mut self, x: &mut Exchange<'_>, now: i64) -> Result<Passed, Refusal> {
        let vcert = self.nfc_ready(now)?;
        let sel = x.send(&CommandApdu::select_mancard(), None)?;
        let session = SelectResponse::decode(&sel)
            .map_err(|e| Refusal::Malformed(format!("SELECT response: {e}")))?
            .session;
        if let Some(passed) = self.recover_torn(x, &vcert, now)? {
            return Ok(passed);
        }
        let mut challenge = self.challenge(session, FareClass::Adult, now)?;
        let mut known = None;
        let mut answer = self.authorize(x, &challenge, &vcert, now)?;
        if let AuthorizeResponse::Requote(cert) = answer {
            let vc = self.admit_presented(x, cert, challenge.body.fare_class, now)?;
            challenge = self.challenge(session, vc.cert.body.fare_class, now)?;
            known = Some(vc);
            answer = self.authorize(x, &challenge, &vcert, now)?;
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
        let pending = x
            .exposed
            .ok_or_else(|| Refusal::Internal("the answered challenge is not journaled".into()))?;
        Ok(Passed {
            record: self.nfc_record(&vc, challenge, auth, &quote, now),
            quote,
            resolves: Resolves::Pending(pending),
        })
    }

    /// AUTHORIZE TAP with this validator's certificate inline, the challenge journaled as
    /// pending first (write-ahead, durable): from the moment it is sent the challenge is
    /// exposed (the phone may sign it), until the phone refuses it by a status word or asks
    /// for a re-quote, which deletes the pending entry.
    fn authorize(
        &mut self,
        x: &mut Exchange<'_>,
        challenge: &TapChallenge,
        vcert: &ValidatorCertificate,
        now: i64,
    ) -> Result<AuthorizeResponse, Refusal> {
        let seq = self
            .journal
            .record_pending(challenge, now)
            .map_err(|e| Refusal::JournalFailure(format!("{e} (before sending a challenge)")))?;
        x.exposed = Some(seq);
        let resp = x.transmit(&CommandApdu::authorize_tap(challenge, Some(vcert)))?;
        if resp.sw != StatusWord::Ok {
            self.discard_exposed(x)?;
            return Err(Refusal::from_status(resp.sw, Some(challenge.body.fare)));
        }
        let answer = AuthorizeResponse::decode(&resp.data)
            .map_err(|e| Refusal::Malformed(format!("AUTHORIZE TAP answer: {e}")))?;
        if matches!(answer, AuthorizeResponse::Requote(_)) {
            self.discard_exposed(x)?;
        }
        Ok(answer)
    }

    /// The exposed challenge was not signed (a refusal status word, a re-quote): its pending
    /// entry is deleted.
    fn discard_exposed(&mut self, x: &mut Exchange<'_>) -> Result<(), Refusal> {
        if let Some(seq) = x.exposed {
            self.journal
                .discard_pending(seq)
                .map_err(|e| Refusal::JournalFailure(e.to_string()))?;
            x.exposed = None;
        }
        Ok(())
    }

    /// The waiting torn challenges repeated, newest first: the first one the phone answers
    /// with an authorization is verified as a normal tap (at the torn challenge's line, time
    /// and fare) and recovers that entry. None: no phone's torn tap, go on with a fresh
    /// challenge.
    fn recover_torn(
        &mut self,
        x: &mut Exchange<'_>,
        vcert: &ValidatorCertificate,
        now: i64,
    ) -> Result<Option<Passed>, Refusal> {
        let since = now.saturating_sub(self.journal.torn_window_secs());
        let pending = self
            .journal
            .torn_within(since, MAX_TORN_REPEATS)
            .map_err(|e| Refusal::JournalFailure(e.to_string()))?;
        for torn in pending {
            let Some(auth) = x.repeat(&torn.challenge, vcert)? else {
                continue;
            };
            // A recovered answer this validator cannot accept (its certificate was superseded
            // or denied since, say) leaves the torn entry torn — the gate stays closed for it —
            // and the card goes on with a fresh challenge instead of being refused.
            let Ok(vc) = self.certificate_of(x, &auth, now) else {
                continue;
            };
            let line = torn.challenge.body.line_id;
            let Ok(quote) = self.engine.decide_with(&vc, line, &torn.challenge, &auth) else {
                continue;
            };
            return Ok(Some(Passed {
                record: self.nfc_record(&vc, torn.challenge, auth, &quote, now),
                quote,
                resolves: Resolves::Torn(torn.seq),
            }));
        }
        Ok(None)
    }

    /// The tap record of an authorization of `challenge` under `vc`, decided at `now`.
    fn nfc_record(
        &self,
        vc: &VerifiedCertificate,
        challenge: TapChallenge,
        authorization: TapAuthorization,
        quote: &FareQuote,
        now: i64,
    ) -> TapRecord {
        TapRecord {
            validator_id: self.validator_id,
            line_id: challenge.body.line_id,
            time: now,
            pseudonym: vc.cert.body.pseudonym,
            counter: authorization.counter,
            fare: quote.amount,
            fare_kind: quote.kind,
            proof: TapProof::Nfc {
                challenge,
                authorization,
            },
        }
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
