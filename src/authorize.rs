//! AUTHORIZE TAP, after the ISO checks: the reader proves itself (validator certificate,
//! challenge signature, this session, its clock), then the phone signs the fare asked (its class
//! quoted) or its own class's fare of the line (another class quoted, not above the fare asked),
//! never above the line's fare for its class, within the rate limit, on the signed tap chain;
//! for a quote below its own fare it answers with its certificate instead. Each refusal has its own status
//! word and a sentence for the rider's history; a refusal signs nothing and uses no counter.
//!
//! A torn tap's recovery is its own command (AUTHORIZE TAP P1 02, `hce.rs`), answered by
//! [`Wallet::torn_answer`]: a reader that repeats, byte for byte, a challenge this phone signed
//! among its last [`TORN_LOOKBACK`] tap-log entries, within the bundle's tap window, gets the
//! identical authorization back (no new counter, no new log entry, no rate-limit tick), so a
//! retry after a lost answer is the same tap. A normal AUTHORIZE TAP never looks there: a
//! challenge of another session is 69C9, whoever signed it.

use crate::hce::{LogWrite, Refusal};
use crate::wallet::{Active, Wallet, WriterState};
use mancard_protocol::{
    authorized_amount, check_validator_standing, check_validity, verify_challenge,
    verify_validator_certificate, AuthorizeCommand, AuthorizeResponse, ChallengeBody, StatusWord,
    TapAuthorization, TapChallenge, TapProof, ValidatorCertificate, VerifyError, WalletLogEntry,
};
use std::time::Instant;

/// How many of the newest tap-log entries a repeated challenge is looked up in.
pub(crate) const TORN_LOOKBACK: u32 = 16;

/// Whether `a` and `b` are the same bytes, in a time that depends only on their lengths (a
/// repeated challenge is compared with what the phone signed without telling how much of it
/// matched).
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    let diff = a.iter().zip(b).fold(0u8, |d, (x, y)| d | (x ^ y));
    a.len() == b.len() && std::hint::black_box(diff) == 0
}

/// The status word and sentence of a refused validator certificate.
fn certificate_refusal(id: u32, e: &VerifyError) -> Refusal {
    match e {
        VerifyError::ValidatorCertNotValid { .. } => Refusal::new(
            StatusWord::ReaderExpired,
            format!("reader {id}'s certificate is expired or not yet valid: {e}"),
        ),
        VerifyError::ValidatorDenied(_) => Refusal::new(
            StatusWord::ReaderDenied,
            format!("reader {id} is blocked by ManCard"),
        ),
        _ => Refusal::new(
            StatusWord::ReaderUnknown,
            format!("a reader ManCard does not trust asked for a payment (reader {id}: {e})"),
        ),
    }
}

/// The status word and sentence of a refused challenge.
fn challenge_refusal(id: u32, e: &VerifyError) -> Refusal {
    match e {
        VerifyError::LineNotAllowed { line_id, .. } => Refusal::new(
            StatusWord::ReaderLineNotAllowed,
            format!("reader {id} is not allowed to charge on line {line_id}"),
        ),
        _ => Refusal::new(
            StatusWord::BadChallengeSignature,
            format!("reader {id}'s payment request is not signed correctly: {e}"),
        ),
    }
}

/// Verifies a validator certificate (or only its validity and the deny list when exactly the
/// same certificate authenticated before). Nothing is remembered here: the certificate enters
/// the cache only once its reader has authenticated.
fn admit_certificate(
    ws: &WriterState,
    cert: &ValidatorCertificate,
    now: i64,
) -> Result<(), Refusal> {
    let Some(bundle) = ws.bundle.as_ref() else {
        return Err(no_bundle());
    };
    let id = cert.body.validator_id;
    let r = if ws.readers.holds_exactly(cert) {
        check_validator_standing(cert, |v| bundle.is_validator_denied(v), now)
    } else {
        verify_validator_certificate(
            cert,
            &bundle.body.issuer_keys,
            |v| bundle.is_validator_denied(v),
            now,
        )
    };
    r.map_err(|e| certificate_refusal(id, &e))
}

/// What a reader that named its certificate by id only (P1 = 00) hears for any failure before
/// it authenticated: the same "show your certificate" whether or not the phone has met that
/// validator, so probing never tells where the phone has been.
fn certificate_required(validator_id: u32) -> Refusal {
    Refusal::new(
        StatusWord::ReaderCertificateRequired,
        format!("reader {validator_id} did not show its certificate"),
    )
}

fn no_bundle() -> Refusal {
    Refusal::new(
        StatusWord::ReaderUnknown,
        "this phone does not have ManCard's reader list yet: sync first (connect to the internet once)",
    )
}

impl Wallet {
    /// A torn tap's recovery (AUTHORIZE TAP P1 02): the authorization this phone already
    /// signed for exactly this challenge (the same encoded bytes, its signature included), if
    /// it is among the newest [`TORN_LOOKBACK`] tap-log entries and its `validator_time` is
    /// within the bundle's tap window of the phone's corrected clock. The challenge was verified
    /// when it was signed; answering it again spends nothing and reveals only what its reader
    /// was sent before. None: not signed here (a storage error is None too).
    ///
    /// The work done does not depend on the challenge asked about, only on the phone's log:
    /// the newest entries are read whatever the challenge names (not filtered by validator,
    /// which would tell by its time where the phone tapped), each one is compared in constant
    /// time, and the window is checked after the scan; only "signed here or not" comes out.
    pub(crate) fn torn_answer(
        &self,
        ws: &WriterState,
        challenge: &TapChallenge,
    ) -> Option<TapAuthorization> {
        let wanted = challenge.encode();
        let from = ws
            .log
            .next_seq_db()
            .saturating_sub(i64::from(TORN_LOOKBACK));
        let entries = ws
            .db
            .read()
            .entries_from(from, TORN_LOOKBACK)
            .map_err(|e| tracing::warn!("could not look up a repeated challenge: {e}"))
            .unwrap_or_default();
        let mut found = None;
        for bytes in &entries {
            let proof = WalletLogEntry::decode(bytes).map(|e| e.proof);
            if let Ok(TapProof::Nfc {
                challenge,
                authorization,
            }) = proof
            {
                if same_bytes(&challenge.encode(), &wanted) {
                    // the newest wins (entries come oldest first)
                    found = Some(authorization);
                }
            }
        }
        let window = ws
            .bundle
            .as_ref()
            .map(|b| i64::from(b.body.time_rules.tap_window_secs));
        let now = self.corrected(crate::util::now_utc());
        let off = challenge.body.validator_time.saturating_sub(now);
        let in_window = window.is_some_and(|w| off.saturating_abs() <= w);
        found.filter(|_| in_window)
    }

    /// The reader's side of the mutual authentication: a config bundle to judge readers by,
    /// the validator certificate (inline or cached), the challenge's signature and line, this
    /// session's value and the validator's clock. On success the session's reader is
    /// authenticated (READ CERTIFICATE is answered from then on).
    pub(crate) fn authenticate_reader(
        &self,
        ws: &mut WriterState,
        cmd: &AuthorizeCommand,
    ) -> Result<(), Refusal> {
        let now = self.corrected(crate::util::now_utc());
        if ws.bundle.is_none() {
            return Err(no_bundle());
        }
        let ch = &cmd.challenge.body;
        let cert = match &cmd.validator_cert {
            Some(c) => {
                admit_certificate(ws, c, now)?;
                verify_challenge(&cmd.challenge, c)
                    .map_err(|e| challenge_refusal(c.body.validator_id, &e))?;
                c.clone()
            }
            None => {
                let cached = ws.readers.get(ch.validator_id).map(|c| c.cert.clone());
                let Some(c) = cached else {
                    return Err(certificate_required(ch.validator_id));
                };
                admit_certificate(ws, &c, now)
                    .and_then(|()| {
                        verify_challenge(&cmd.challenge, &c)
                            .map_err(|e| challenge_refusal(c.body.validator_id, &e))
                    })
                    .map_err(|_| certificate_required(ch.validator_id))?;
                c
            }
        };
        let id = cert.body.validator_id;
        let Some(session) = ws.session.as_mut() else {
            return Err(Refusal::new(
                StatusWord::ConditionsNotSatisfied,
                "a reader asked for a payment out of order (without selecting ManCard first)",
            ));
        };
        if ch.session != session.value {
            return Err(Refusal::new(
                StatusWord::StaleChallenge,
                format!(
                    "reader {id}'s payment request was made for another tap (replayed or relayed)"
                ),
            ));
        }
        let window = ws
            .bundle
            .as_ref()
            .map_or(0, |b| i64::from(b.body.time_rules.tap_window_secs));
        let off = ch.validator_time.saturating_sub(now);
        if off.saturating_abs() > window {
            return Err(Refusal::new(
                StatusWord::ReaderClockOff,
                format!("reader {id}'s clock is {off} seconds off this phone's (at most {window} allowed)"),
            ));
        }
        session.reader_authenticated = true;
        if !ws.readers.holds_exactly(&cert) {
            ws.readers.insert(cert);
        }
        Ok(())
    }

    /// The phone's answer to an authenticated reader's challenge: its certificate when the
    /// challenge quotes another class below its own fare, else the signed authorization
    /// (committed to the tap log before it is answered).
    pub(crate) fn answer_challenge(
        &self,
        ws: &mut WriterState,
        challenge: &TapChallenge,
    ) -> Result<AuthorizeResponse, Refusal> {
        let ch = &challenge.body;
        let active = ws
            .active
            .as_ref()
            .ok_or_else(|| Refusal::new(StatusWord::NoCredential, "no ticket on this phone"))?;
        let class = active.cert.body.fare_class;
        let Some(amount) = amount_to_sign(ws.bundle.as_ref(), ch, class)? else {
            return Ok(AuthorizeResponse::Requote(active.cert.clone()));
        };
        let limit = self.config().max_authorizations_per_minute;
        if ws.recent_taps.full(limit, Instant::now()) {
            return Err(Refusal::new(
                StatusWord::TooManyTaps,
                format!(
                    "reader {} was refused: more than {limit} payments in a minute",
                    ch.validator_id
                ),
            ));
        }
        let auth = self.sign_tap(ws, challenge, amount)?;
        ws.recent_taps.record(Instant::now());
        Ok(AuthorizeResponse::Authorized(auth))
    }

    /// The credential's own checks, then the signature on the tap chain and its commit.
    fn sign_tap(
        &self,
        ws: &mut WriterState,
        challenge: &TapChallenge,
        amount: i64,
    ) -> Result<TapAuthorization, Refusal> {
        let ch = &challenge.body;
        // The in-memory count only grows; passes over since it was made no longer hold their
        // reservation, so recount before refusing a fare that does not seem to fit.
        if ws.active.as_ref().is_some_and(|a| amount > a.remaining()) {
            let t = self.corrected(crate::util::now_utc());
            self.release_expired_passes(ws, t).map_err(|e| {
                Refusal::new(
                    StatusWord::Internal,
                    format!("could not recount passes: {e}"),
                )
            })?;
        }
        let active = ws
            .active
            .as_ref()
            .ok_or_else(|| Refusal::new(StatusWord::NoCredential, "no ticket on this phone"))?;
        let key = usable_key(active, ch)?;
        let counter = self.next_counter_for(ws.next_counter, active)?;
        let remaining = active.remaining();
        if amount > remaining {
            return Err(Refusal::new(
                StatusWord::AllowanceExhausted,
                format!(
                    "fare {} is more than the {} left offline",
                    crate::money::format_amount(amount),
                    crate::money::format_amount(remaining)
                ),
            ));
        }
        self.ensure_reserved(counter, true)?;
        let prev = ws.log.expected_prev(&active.hash);
        let auth = TapAuthorization::sign(key, ch, &active.hash, counter, amount, &prev)
            .map_err(|e| Refusal::new(StatusWord::Internal, format!("signing failed: {e}")))?;
        let write = LogWrite {
            credential_id: active.id,
            proof: TapProof::Nfc {
                challenge: challenge.clone(),
                authorization: auth.clone(),
            },
            amount,
            time: self.corrected(crate::util::now_utc()),
            line_id: Some(ch.line_id),
            validator_id: Some(ch.validator_id),
        };
        self.commit_log(ws, write, counter)
            .map_err(|e| Refusal::new(StatusWord::StorageFailure, e.to_string()))?;
        Ok(auth)
    }
}

/// What the phone signs for a challenge (`None`: answer with the certificate, the reader must
/// quote for the rider's class). The line's single fare for the rider's class bounds what a
/// reader may ask, and a line the tariff does not list has no fare: both refused (69C6).
/// Quoted for the rider's class: the fare asked. Quoted for another class (a reader cannot know
/// the class before the answer, so it quotes the adult fare): the rider's own class's fare of
/// the line when it is not above the fare asked (`authorized_amount`, which validators and the
/// backend check), else a re-quote.
fn amount_to_sign(
    bundle: Option<&mancard_protocol::ValidatorConfig>,
    ch: &ChallengeBody,
    class: mancard_protocol::FareClass,
) -> Result<Option<i64>, Refusal> {
    let tariff = bundle.map(|b| &b.body.tariff);
    let Some(max) = tariff.and_then(|t| t.single_fare(class, ch.line_id)) else {
        return Err(Refusal::new(
            StatusWord::FareTooHigh,
            format!(
                "reader {} asked for a payment on line {}, which has no fare",
                ch.validator_id, ch.line_id
            ),
        ));
    };
    if ch.fare_class == class && ch.fare > max {
        return Err(Refusal::new(
            StatusWord::FareTooHigh,
            format!(
                "reader {} asked for {}, more than the {} fare of line {}, {}",
                ch.validator_id,
                crate::money::format_amount(ch.fare),
                class.name(),
                ch.line_id,
                crate::money::format_amount(max)
            ),
        ));
    }
    // the one rule validators and the backend check the signed amount against
    Ok(tariff.and_then(|t| authorized_amount(ch, class, t)))
}

/// The credential's tap key, if it is unrevoked, unsealed and valid at the validator's time.
fn usable_key<'a>(
    active: &'a Active,
    ch: &ChallengeBody,
) -> Result<&'a mancard_protocol::SigningKey, Refusal> {
    if active.revoked {
        return Err(Refusal::new(
            StatusWord::CredentialNotValid,
            crate::text::revoked_refusal(active.revoked_reason.as_deref()),
        ));
    }
    let Some(key) = active.key.as_ref() else {
        return Err(Refusal::new(
            StatusWord::NoCredential,
            format!(
                "the ticket's key cannot be used: {}",
                active.key_problem.as_deref().unwrap_or("unknown")
            ),
        ));
    };
    if let Err(e) = check_validity(&active.cert, ch.validator_time) {
        let why = match e {
            VerifyError::Expired { .. } => "the ticket has expired",
            VerifyError::NotYetValid { .. } => "the ticket is not valid yet",
            _ => "the ticket is not valid now",
        };
        return Err(Refusal::new(
            StatusWord::CredentialNotValid,
            format!("{why} (validator time {})", ch.validator_time),
        ));
    }
    Ok(key)
}
