//! Host card emulation: the wallet's side of the NFC exchange.
//!
//! [`Wallet::process_apdu`] is total: every byte string gets a well-formed response APDU (data
//! ‖ SW1 SW2) and nothing panics. The tap path holds the writer mutex for one short section:
//! checks, counter, signature, one WAL commit (no fsync), response.

use crate::error::WalletError;
use crate::store::{EventRow, LogRow};
use crate::wallet::{Wallet, WriterState};
use mancard_protocol::apdu::{
    CLA_ISO, CLA_PROPRIETARY, INS_AUTHORIZE_TAP, INS_READ_CERTIFICATE, INS_SELECT,
};
use mancard_protocol::{
    check_validity, CommandApdu, CredentialCertificate, ResponseApdu, SelectResponse, StatusWord,
    TapAuthorization, TapChallenge, TapProof, VerifyError, WalletLogEntry, MANCARD_AID,
};
use std::sync::atomic::Ordering;

/// Why an AUTHORIZE TAP (or a pass) was refused: the status word and a sentence for the rider.
pub(crate) struct Refusal {
    pub(crate) sw: StatusWord,
    pub(crate) reason: String,
}

impl Refusal {
    fn new(sw: StatusWord, reason: impl Into<String>) -> Self {
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

impl Wallet {
    /// Processes one command APDU from the NFC field and returns the response APDU.
    pub fn process_apdu(&self, command: Vec<u8>) -> Vec<u8> {
        let run = std::panic::AssertUnwindSafe(|| self.dispatch(&command));
        let resp = std::panic::catch_unwind(run)
            .unwrap_or_else(|_| ResponseApdu::status(StatusWord::Internal));
        resp.encode()
    }

    /// The NFC field dropped or another application was selected: ends the session. Nothing is
    /// half-written: each command commits or changes nothing.
    pub fn deactivated(&self) {
        self.writer().selected = false;
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

    fn select(&self, cmd: &CommandApdu) -> ResponseApdu {
        if cmd.p1 != 0x04 || cmd.p2 != 0x00 {
            return ResponseApdu::status(StatusWord::WrongP1P2);
        }
        let mut ws = self.writer();
        if cmd.data != MANCARD_AID {
            ws.selected = false;
            return ResponseApdu::status(StatusWord::AppNotFound);
        }
        ws.selected = true;
        let resp = SelectResponse {
            cert_hash: ws.active.as_ref().map(|a| a.hash),
        }
        .encode();
        if cmd.le.is_some_and(|le| usize::from(le) < resp.len()) {
            return ResponseApdu::status(StatusWord::WrongLength);
        }
        ResponseApdu::ok(resp)
    }

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
        if !ws.selected {
            return ResponseApdu::status(StatusWord::ConditionsNotSatisfied);
        }
        match &ws.active {
            Some(a) => ResponseApdu::ok(a.cert_bytes.clone()),
            None => ResponseApdu::status(StatusWord::NoCredential),
        }
    }

    fn authorize_apdu(&self, cmd: &CommandApdu) -> ResponseApdu {
        if cmd.p1 != 0 || cmd.p2 != 0 {
            return ResponseApdu::status(StatusWord::WrongP1P2);
        }
        if cmd.data.len() != TapChallenge::LEN
            || cmd
                .le
                .is_some_and(|le| usize::from(le) < TapAuthorization::LEN)
        {
            return ResponseApdu::status(StatusWord::WrongLength);
        }
        let mut ws = self.writer();
        if !ws.selected {
            return ResponseApdu::status(StatusWord::ConditionsNotSatisfied);
        }
        let challenge = match TapChallenge::decode(&cmd.data) {
            Ok(c) => c,
            Err(e) => {
                let r = Refusal::new(
                    StatusWord::IncorrectData,
                    format!("unreadable challenge: {e}"),
                );
                self.record_refusal(&mut ws, &r, None);
                return ResponseApdu::status(r.sw);
            }
        };
        match self.authorize(&mut ws, &challenge) {
            Ok(auth) => ResponseApdu::ok(auth.encode()),
            Err(r) => {
                self.record_refusal(&mut ws, &r, Some(&challenge));
                ResponseApdu::status(r.sw)
            }
        }
    }

    /// The tap path proper. On success the authorization is in the committed tap log.
    fn authorize(
        &self,
        ws: &mut WriterState,
        challenge: &TapChallenge,
    ) -> Result<TapAuthorization, Refusal> {
        if self.is_locked() {
            return Err(Refusal::new(
                StatusWord::WalletLocked,
                "the wallet is locked",
            ));
        }
        let active = ws
            .active
            .as_ref()
            .ok_or_else(|| Refusal::new(StatusWord::NoCredential, "no ticket on this phone"))?;
        if active.revoked {
            return Err(Refusal::new(
                StatusWord::CredentialNotValid,
                "the ticket has been revoked",
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
        if let Err(e) = check_validity(&active.cert, challenge.validator_time) {
            let why = match e {
                VerifyError::Expired { .. } => "the ticket has expired",
                VerifyError::NotYetValid { .. } => "the ticket is not valid yet",
                _ => "the ticket is not valid now",
            };
            return Err(Refusal::new(
                StatusWord::CredentialNotValid,
                format!("{why} (validator time {})", challenge.validator_time),
            ));
        }
        let counter = self.next_counter_for(ws.next_counter, active)?;
        let remaining = active.remaining();
        if challenge.fare > remaining {
            return Err(Refusal::new(
                StatusWord::AllowanceExhausted,
                format!(
                    "fare {} is more than the {} left offline",
                    crate::money::format_amount(challenge.fare),
                    crate::money::format_amount(remaining)
                ),
            ));
        }
        self.ensure_reserved(counter)?;
        let auth = TapAuthorization::sign(key, challenge, &active.hash, counter, challenge.fare)
            .map_err(|e| Refusal::new(StatusWord::Internal, format!("signing failed: {e}")))?;
        let write = LogWrite {
            credential_id: active.id,
            proof: TapProof::Nfc {
                challenge: challenge.clone(),
                authorization: auth.clone(),
                cert_hash: active.hash,
            },
            amount: challenge.fare,
            time: self.corrected(crate::util::now_utc()),
            line_id: Some(challenge.line_id),
            validator_id: Some(challenge.validator_id),
        };
        self.commit_log(ws, write, counter)
            .map_err(|e| Refusal::new(StatusWord::StorageFailure, e.to_string()))?;
        Ok(auth)
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
    /// background thread keeps half a block ahead); otherwise reserves inline (one fsync).
    pub(crate) fn ensure_reserved(&self, counter: u32) -> Result<(), Refusal> {
        let c = u64::from(counter);
        if c < self.counters().durable_end.load(Ordering::Acquire) {
            return Ok(());
        }
        self.counters().next.fetch_max(c, Ordering::AcqRel);
        self.counters().stalled();
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
            prev_hash: ws.log.prev_hash,
            time: w.time,
            amount: w.amount,
            proof: w.proof,
        };
        let bytes = entry.encode();
        let hash = entry.hash();
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
        let result = ws.db.write(|tx| tx.append_tap(&row));
        if let Err(e) = result {
            self.counters()
                .next
                .store(ws.next_counter, Ordering::Release);
            tracing::warn!("could not record a tap: {e}");
            return Err(e);
        }
        ws.log.next_seq = ws.log.next_seq.saturating_add(1);
        ws.log.prev_hash = hash;
        if let Some(a) = ws.active.as_mut() {
            a.spent = a.spent.saturating_add(w.amount);
        }
        self.after_commit(ws);
        Ok(())
    }

    /// Writes a refusal to the history (best effort: a refusal must never fail harder).
    fn record_refusal(&self, ws: &mut WriterState, r: &Refusal, ch: Option<&TapChallenge>) {
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
        if let Err(e) = ws.db.write(|tx| tx.insert_event(&event)) {
            tracing::warn!("could not record a refusal: {e}");
        }
    }
}
