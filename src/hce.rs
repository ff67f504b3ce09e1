//! Host card emulation: the wallet's side of the NFC exchange.
//!
//! [`Wallet::process_apdu`] is total: every byte string gets a well-formed response APDU (data
//! ‖ SW1 SW2) and nothing panics. SELECT answers only the protocol version and a fresh random
//! session value; AUTHORIZE TAP (P1 00/01) is answered only for a challenge signed by a
//! validator whose certificate the phone verified (`authorize.rs`); AUTHORIZE TAP P1 02, a torn
//! tap's retry, only with the very authorization the phone already signed for that challenge
//! (else 6A88, quietly: nothing written); READ CERTIFICATE only after such a challenge in the
//! same session. The tap path holds the writer mutex for one short section: checks, counter,
//! signature, one WAL commit (no fsync), response.

use crate::error::WalletError;
use crate::readers::NfcSession;
use crate::store::{EventRow, LogRow};
use crate::wallet::{Wallet, WriterState};
use mancard_protocol::apdu::{
    AuthorizeP1, CLA_ISO, CLA_PROPRIETARY, INS_AUTHORIZE_TAP, INS_READ_CERTIFICATE, INS_SELECT,
};
use mancard_protocol::{
    AuthorizeCommand, AuthorizeResponse, ChallengeBody, CommandApdu, CredentialCertificate,
    ResponseApdu, SelectResponse, StatusWord, TapAuthorization, TapChallenge, TapProof,
    ValidatorCertificate, WalletLogEntry, MANCARD_AID,
};
use std::sync::atomic::Ordering;

/// Why an AUTHORIZE TAP (or a pass) was refused: the status word and a sentence for the rider.
pub(crate) struct Refusal {
    pub(crate) sw: StatusWord,
    pub(crate) reason: String,
}

impl Refusal {
    pub(crate) fn new(sw: StatusWord, reason: impl Into<String>) -> Self {
        Self {
            sw,
            reason: reason.into(),
        }
    }
}

/// What a successful authorization or pass writes to the tap log and history.
pub(crate) struct LogWrite {
    pub(crate) credential_id: i64,
    pub(crate) proof: TapProof,
    pub(crate) amount: i64,
    pub(crate) time: i64,
    pub(crate) line_id: Option<u32>,
    pub(crate) validator_id: Option<u32>,
}

/// The data lengths an AUTHORIZE TAP may have for its P1.
fn authorize_data_fits(p1: AuthorizeP1, len: usize) -> bool {
    if p1.carries_certificate() {
        (TapChallenge::LEN + ValidatorCertificate::MIN_LEN
            ..=TapChallenge::LEN + ValidatorCertificate::MAX_LEN)
            .contains(&len)
    } else {
        len == TapChallenge::LEN
    }
}

/// AUTHORIZE TAP's answer with `9000`, or `6700` if it does not fit the reader's Le.
fn answered(cmd: &CommandApdu, resp: &AuthorizeResponse) -> ResponseApdu {
    let data = resp.encode();
    if cmd.le.is_some_and(|le| usize::from(le) < data.len()) {
        return ResponseApdu::status(StatusWord::WrongLength);
    }
    ResponseApdu::ok(data)
}

impl Wallet {
    /// Processes one command APDU from the NFC field and returns the response APDU.
    pub fn process_apdu(&self, command: Vec<u8>) -> Vec<u8> {
        let run = std::panic::AssertUnwindSafe(|| self.dispatch(&command));
        let resp = std::panic::catch_unwind(run)
            .unwrap_or_else(|_| ResponseApdu::status(StatusWord::Internal));
        resp.encode()
    }

    /// The NFC field dropped or another application was selected: ends the session. Nothing is
    /// half-written: each command commits or changes nothing. If no reader selects ManCard
    /// again within `WalletConfig::park_after_quiet_ms`, the next counter is recorded durably
    /// (off the tap path), so a process killed while idle skips no counter.
    pub fn deactivated(&self) {
        self.writer().session = None;
        // whether or not a ManCard session was open (a reader may have selected another
        // application since): a park with nothing reserved ahead writes nothing
        self.counters().touch();
        self.request_quiet();
    }

    fn dispatch(&self, bytes: &[u8]) -> ResponseApdu {
        let cmd = match CommandApdu::parse(bytes) {
            Ok(c) => c,
            Err(e) => return ResponseApdu::status(e.status()),
        };
        match (cmd.cla, cmd.ins) {
            (CLA_ISO, INS_SELECT) => self.select(&cmd),
            (CLA_PROPRIETARY, INS_READ_CERTIFICATE) => self.read_certificate(&cmd),
            (CLA_PROPRIETARY, INS_AUTHORIZE_TAP) => self.authorize_apdu(&cmd),
            (CLA_ISO | CLA_PROPRIETARY, _) => ResponseApdu::status(StatusWord::InsNotSupported),
            _ => ResponseApdu::status(StatusWord::ClaNotSupported),
        }
    }

    /// SELECT: a new session with a fresh random value, and nothing else (no certificate, no
    /// pseudonym: a reader learns nothing it could follow the phone with).
    fn select(&self, cmd: &CommandApdu) -> ResponseApdu {
        if cmd.p1 != 0x04 || cmd.p2 != 0x00 {
            return ResponseApdu::status(StatusWord::WrongP1P2);
        }
        let mut ws = self.writer();
        ws.session = None;
        if cmd.data != MANCARD_AID {
            return ResponseApdu::status(StatusWord::AppNotFound);
        }
        if cmd
            .le
            .is_some_and(|le| usize::from(le) < SelectResponse::LEN)
        {
            return ResponseApdu::status(StatusWord::WrongLength);
        }
        let Some(session) = NfcSession::fresh() else {
            tracing::warn!("the system random number generator failed");
            return ResponseApdu::status(StatusWord::Internal);
        };
        let resp = SelectResponse {
            session: session.value,
        }
        .encode();
        ws.session = Some(session);
        // A tap is starting: reserve its counters now, in the background, while the reader
        // prepares its challenge (and cancel a pending park).
        // (not for a locked phone: a thief's reader would only make it skip counters; and only
        // when needed, so a tap in a run of taps wakes no thread)
        self.counters().touch();
        if !self.is_locked()
            && ws.active.as_ref().is_some_and(|a| a.key.is_some())
            && self.counters().wants_reservation(ws.next_counter)
        {
            self.request_reservation();
        }
        ResponseApdu::ok(resp)
    }

    /// READ CERTIFICATE: only to a reader that proved itself in this session.
    fn read_certificate(&self, cmd: &CommandApdu) -> ResponseApdu {
        if cmd.p1 != 0 || cmd.p2 != 0 {
            return ResponseApdu::status(StatusWord::WrongP1P2);
        }
        if !cmd.data.is_empty()
            || cmd
                .le
                .is_some_and(|le| usize::from(le) < CredentialCertificate::LEN)
        {
            return ResponseApdu::status(StatusWord::WrongLength);
        }
        let ws = self.writer();
        let Some(session) = &ws.session else {
            return ResponseApdu::status(StatusWord::ConditionsNotSatisfied);
        };
        if self.is_locked() {
            return ResponseApdu::status(StatusWord::WalletLocked);
        }
        if !session.reader_authenticated {
            return ResponseApdu::status(StatusWord::ConditionsNotSatisfied);
        }
        match &ws.active {
            Some(a) => ResponseApdu::ok(a.cert_bytes.clone()),
            None => ResponseApdu::status(StatusWord::NoCredential),
        }
    }

    /// AUTHORIZE TAP: the ISO checks (P1, P2, lengths), then P1 02 goes to
    /// [`Wallet::recover_apdu`]; P1 00/01: the session and lock, then the reader's
    /// authentication and the tap itself (`authorize.rs`). Every refusal after the ISO checks
    /// writes a history entry the rider can read.
    fn authorize_apdu(&self, cmd: &CommandApdu) -> ResponseApdu {
        let Some(p1) = AuthorizeP1::from_byte(cmd.p1).filter(|_| cmd.p2 == 0) else {
            return ResponseApdu::status(StatusWord::WrongP1P2);
        };
        if !authorize_data_fits(p1, cmd.data.len())
            || cmd
                .le
                .is_some_and(|le| usize::from(le) < TapAuthorization::LEN)
        {
            return ResponseApdu::status(StatusWord::WrongLength);
        }
        if p1 == AuthorizeP1::Recover {
            return self.recover_apdu(cmd);
        }
        let mut ws = self.writer();
        let refused = |ws: &mut WriterState, r: Refusal, ch: Option<&ChallengeBody>| {
            self.record_refusal(ws, &r, ch);
            ResponseApdu::status(r.sw)
        };
        if ws.session.is_none() {
            let r = Refusal::new(
                StatusWord::ConditionsNotSatisfied,
                "a reader asked for a payment out of order (without selecting ManCard first)",
            );
            return refused(&mut ws, r, None);
        }
        if self.is_locked() {
            let r = Refusal::new(
                StatusWord::WalletLocked,
                "a reader asked for a payment while the wallet was locked",
            );
            return refused(&mut ws, r, None);
        }
        // a byte-identical certificate of a reader met before is not decoded again
        let command = match ws.readers.parse_authorize(cmd.p1, &cmd.data) {
            Ok(c) => c,
            Err(e) => {
                let r = Refusal::new(
                    StatusWord::IncorrectData,
                    format!("a reader sent an unreadable payment request: {e}"),
                );
                return refused(&mut ws, r, None);
            }
        };
        if let Err(r) = self.authenticate_reader(&mut ws, &command) {
            return refused(&mut ws, r, None);
        }
        let body = &command.challenge.body;
        match self.answer_challenge(&mut ws, &command.challenge) {
            Ok(resp) => answered(cmd, &resp),
            Err(r) => refused(&mut ws, r, Some(body)),
        }
    }

    /// AUTHORIZE TAP P1 02 (recover), after the ISO checks: a torn tap's retry. Out of order
    /// (no SELECT) 6985, locked 6982, unreadable data 6A80; then the authorization this phone
    /// already signed for exactly this challenge ([`Wallet::torn_answer`]), or 6A88. Quiet:
    /// it writes nothing (no history entry, no rate-limit tick, no counter), and on 6A88 the
    /// session is unchanged; no other check runs, so a probe learns only "not signed here",
    /// the same for every challenge this phone did not sign. A locked phone's refusal is
    /// recorded by the normal AUTHORIZE TAP the reader sends next.
    fn recover_apdu(&self, cmd: &CommandApdu) -> ResponseApdu {
        let mut ws = self.writer();
        if ws.session.is_none() {
            return ResponseApdu::status(StatusWord::ConditionsNotSatisfied);
        }
        if self.is_locked() {
            return ResponseApdu::status(StatusWord::WalletLocked);
        }
        let Ok(command) = AuthorizeCommand::parse(cmd.p1, &cmd.data) else {
            return ResponseApdu::status(StatusWord::IncorrectData);
        };
        let Some(auth) = self.torn_answer(&ws, &command.challenge) else {
            return ResponseApdu::status(StatusWord::NoCredential);
        };
        if let Some(session) = ws.session.as_mut() {
            // the reader proved itself when the phone signed this challenge
            session.reader_authenticated = true;
        }
        tracing::info!(
            "reader {} repeated a challenge already signed: the same authorization again",
            command.challenge.body.validator_id
        );
        answered(cmd, &AuthorizeResponse::Authorized(auth))
    }

    /// The counter to use next under `active`, or 6A83.
    pub(crate) fn next_counter_for(
        &self,
        next: u64,
        active: &crate::wallet::Active,
    ) -> Result<u32, Refusal> {
        let a = &active.cert.body.allowance;
        let c = next.max(u64::from(a.counter_first));
        if c > u64::from(a.counter_last) {
            return Err(Refusal::new(
                StatusWord::CountersExhausted,
                "the offline rides of this ticket are used up",
            ));
        }
        u32::try_from(c)
            .map_err(|_| Refusal::new(StatusWord::CountersExhausted, "counter out of range"))
    }

    /// Makes sure `counter` is below the durable reservation mark. Normally true already (the
    /// reservation started when the reader selected ManCard, and the background thread keeps
    /// half a block ahead); otherwise waits for the one in flight or reserves inline (one
    /// fsync). A tap that had to wait at all is a stall and grows the block until the next park
    /// (`on_tap_path`; a QR pass has no SELECT to start a reservation early, and its inline
    /// write is no burst).
    pub(crate) fn ensure_reserved(&self, counter: u32, on_tap_path: bool) -> Result<(), Refusal> {
        let c = u64::from(counter);
        if c < self.counters().durable_end.load(Ordering::Acquire) {
            return Ok(());
        }
        if on_tap_path {
            // taps outran the reservations (a burst, or an AUTHORIZE right behind its SELECT)
            self.counters().stalled();
        }
        // the reservation this tap's SELECT asked for is usually in flight: wait for its fsync
        self.counters()
            .wait_for_requested(c, std::time::Duration::from_millis(200));
        if c < self.counters().durable_end.load(Ordering::Acquire) {
            return Ok(());
        }
        self.counters().next.fetch_max(c, Ordering::AcqRel);
        self.counters()
            .reserve_ahead()
            .map_err(|e| Refusal::new(StatusWord::StorageFailure, e.to_string()))?;
        if c < self.counters().durable_end.load(Ordering::Acquire) {
            Ok(())
        } else {
            Err(Refusal::new(
                StatusWord::StorageFailure,
                "could not reserve a counter",
            ))
        }
    }

    /// Appends one entry to the tap log (which is also the history of taps and passes) in one
    /// transaction, then advances the in-memory state. On failure nothing in memory changes
    /// except that the counter is burnt (never offered again).
    pub(crate) fn commit_log(
        &self,
        ws: &mut WriterState,
        w: LogWrite,
        counter: u32,
    ) -> Result<(), WalletError> {
        let entry = WalletLogEntry {
            seq: ws.log.next_seq,
            time: w.time,
            amount: w.amount,
            proof: w.proof,
        };
        let bytes = entry.encode();
        let hash = entry.hash();
        let cert_id = entry.proof.cert_id();
        let seq = i64::try_from(entry.seq).map_err(|_| WalletError::internal("log full"))?;
        // burn the counter whatever happens next
        ws.next_counter = u64::from(counter).saturating_add(1);
        let row = LogRow {
            seq,
            credential_id: w.credential_id,
            counter,
            kind: entry.proof.kind_byte(),
            amount: w.amount,
            time: w.time,
            line_id: w.line_id,
            validator_id: w.validator_id,
            entry: &bytes,
            hash: &hash,
        };
        // one INSERT in autocommit mode: one statement is one transaction
        let result = ws.db.append_tap(&row);
        if let Err(e) = result {
            self.counters()
                .next
                .store(ws.next_counter, Ordering::Release);
            tracing::warn!("could not record a tap: {e}");
            return Err(e);
        }
        ws.log.next_seq = ws.log.next_seq.saturating_add(1);
        ws.log.last = Some((cert_id, hash));
        if let Some(a) = ws.active.as_mut() {
            a.spent = a.spent.saturating_add(w.amount);
        }
        self.after_commit(ws);
        Ok(())
    }

    /// Writes a refusal to the history (best effort: a refusal must never fail harder). The
    /// challenge's fare, line and validator are recorded only for a verified challenge (`ch`).
    fn record_refusal(&self, ws: &mut WriterState, r: &Refusal, ch: Option<&ChallengeBody>) {
        let event = EventRow {
            after_seq: ws.log.next_seq_db(),
            time: self.corrected(crate::util::now_utc()),
            kind: "refusal",
            amount: ch.map_or(0, |c| c.fare),
            line_id: ch.map(|c| c.line_id),
            validator_id: ch.map(|c| c.validator_id),
            status_word: Some(r.sw.code()),
            detail: &r.reason,
        };
        let keep = self.config().refusal_log_limit;
        if let Err(e) = ws.db.write(|tx| tx.insert_refusal(&event, keep)) {
            tracing::warn!("could not record a refusal: {e}");
        }
        self.count_write(ws);
    }
}
