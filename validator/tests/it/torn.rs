//! Torn taps (issue 13): the real wallet core behind a fault-injecting channel that loses,
//! garbles or forges the phone's answer. The validator journals the challenge as torn, repeats
//! it at the next tap within its torn window in its own quiet command (AUTHORIZE TAP P1 02,
//! recover), and the phone answers the identical authorization: one tap, one counter, one log
//! entry. A torn tap never recovered is uploaded as a `TornRecord`; another phone answers 6A88,
//! writes nothing and taps as usual; a rogue reader replaying a challenge gets only the
//! authorization it was already sent. Write-ahead: every fresh challenge is journaled (pending)
//! before it is sent, so a validator that loses power right after sending it still finds it at
//! restart, as a torn tap. End to end with the backend:
//! `a_torn_tap_and_its_retry_are_charged_once`.

use mancard::{HistoryKind, Wallet, WalletConfig};
use mancard_protocol::apdu::{
    INS_AUTHORIZE_TAP, INS_READ_CERTIFICATE, P1_RECOVER, P1_WITH_CERTIFICATE,
};
use mancard_protocol::{
    AuthorizeResponse, CommandApdu, FareClass, ResponseApdu, SelectResponse, StatusWord,
    TapAuthorization, TapBatch, TapChallenge, TapProof, WalletLogEntry,
};
use mancard_testkit::validator::{
    card, card_of, certify, fixed, timeless_issuer, validator_in_memory, ISSUER_KEY_ID, LINE,
};
use mancard_testkit::{wallet, CertSpec, Issuer};
use mancard_validator::{
    CardChannel, ChannelError, TapOutcome, Validator, DEFAULT_TORN_WINDOW_SECS,
};
use std::path::Path;

/// What happens to the phone's answer to the chosen command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    /// The field drops: the phone answered (and signed), the reader never hears it.
    Drop,
    /// The reader hears noise.
    Garbage,
    /// The authorization arrives with one bit of its signature flipped.
    FlipSignature,
    /// The validator loses power once the phone has answered (a panic in the test).
    PowerLoss,
}

/// The wallet in the field. Every command reaches the phone (so it signs as it would); the
/// answer to the `nth` command with instruction `ins` suffers `fault`. Keeps every command
/// and the phone's true answers.
struct Field<'a> {
    w: &'a Wallet,
    fault: Option<(u8, usize, Fault)>,
    seen: usize,
    commands: Vec<Vec<u8>>,
    answers: Vec<Vec<u8>>,
}

impl<'a> Field<'a> {
    fn clean(w: &'a Wallet) -> Self {
        Self {
            w,
            fault: None,
            seen: 0,
            commands: Vec::new(),
            answers: Vec::new(),
        }
    }

    /// The first AUTHORIZE TAP's answer suffers `fault`.
    fn tearing(w: &'a Wallet, fault: Fault) -> Self {
        Self::tearing_at(w, INS_AUTHORIZE_TAP, 1, fault)
    }

    fn tearing_at(w: &'a Wallet, ins: u8, nth: usize, fault: Fault) -> Self {
        Self {
            fault: Some((ins, nth, fault)),
            ..Self::clean(w)
        }
    }

    /// The challenges of the AUTHORIZE TAP commands sent, in order.
    fn challenges(&self) -> Vec<TapChallenge> {
        self.commands
            .iter()
            .filter_map(|c| CommandApdu::parse(c).ok())
            .filter(|c| c.ins == INS_AUTHORIZE_TAP)
            .map(|c| TapChallenge::decode(&c.data[..TapChallenge::LEN]).unwrap())
            .collect()
    }

    /// The P1 of the AUTHORIZE TAP commands sent, in order.
    fn authorize_p1s(&self) -> Vec<u8> {
        self.commands
            .iter()
            .filter(|c| c[1] == INS_AUTHORIZE_TAP)
            .map(|c| c[2])
            .collect()
    }

    /// The phone's true answers to the AUTHORIZE TAP commands, in order.
    fn authorize_answers(&self) -> Vec<ResponseApdu> {
        self.commands
            .iter()
            .zip(&self.answers)
            .filter(|(c, _)| c[1] == INS_AUTHORIZE_TAP)
            .map(|(_, a)| ResponseApdu::parse(a).unwrap())
            .collect()
    }
}

impl CardChannel for Field<'_> {
    fn transmit(&mut self, apdu: &[u8]) -> Result<Vec<u8>, ChannelError> {
        let answer = self.w.process_apdu(apdu.to_vec());
        self.commands.push(apdu.to_vec());
        self.answers.push(answer.clone());
        let Some((ins, nth, fault)) = self.fault else {
            return Ok(answer);
        };
        if apdu.get(1) != Some(&ins) {
            return Ok(answer);
        }
        self.seen += 1;
        if self.seen != nth {
            return Ok(answer);
        }
        match fault {
            Fault::Drop => Err(ChannelError::CardRemoved),
            Fault::Garbage => Ok(vec![0x41, 0x02, 0x13, 0x37, 0x90, 0x00]),
            Fault::FlipSignature => {
                let mut a = answer;
                let sig = a.len() - 2 - 10;
                a[sig] ^= 1;
                Ok(a)
            }
            Fault::PowerLoss => panic!("power loss (simulated): the validator stops here"),
        }
    }
}

/// One tap of `w` at `v` over `field`; the field drops after it (as a phone leaves).
fn tap(v: &mut Validator, field: &mut Field<'_>) -> TapOutcome {
    let o = v.tap_nfc(field);
    field.w.deactivated();
    o
}

/// A wallet with an adult certificate (counters 0..=99, 200,000 rials) and the issuer's bundle.
fn wallet_in(dir: &Path, issuer: &Issuer, now: i64, config: WalletConfig) -> Wallet {
    let w = wallet::open_with(
        dir,
        WalletConfig {
            background_maintenance: false,
            ..config
        },
    );
    let spec = CertSpec {
        valid_from: now - 3600,
        valid_until: now + 7 * 86_400,
        class: FareClass::Adult,
        first: 0,
        last: 99,
        max_amount: 200_000,
    };
    wallet::provision_at(&w, issuer, spec, now);
    w
}

fn a_wallet(dir: &Path, issuer: &Issuer, now: i64) -> Wallet {
    wallet_in(dir, issuer, now, WalletConfig::default())
}

/// The rider's history: (all items, refusals).
fn history(w: &Wallet) -> (usize, usize) {
    let items = w.history(None, 1_000).unwrap().items;
    let refusals = items
        .iter()
        .filter(|i| i.kind == HistoryKind::Refusal)
        .count();
    (items.len(), refusals)
}

/// The phone's tap log.
fn log(w: &Wallet) -> Vec<WalletLogEntry> {
    w.tap_log(0, 100)
        .unwrap()
        .iter()
        .map(|b| WalletLogEntry::decode(b).unwrap())
        .collect()
}

/// The challenge and authorization of an NFC log entry.
fn nfc(e: &WalletLogEntry) -> (TapChallenge, TapAuthorization) {
    match &e.proof {
        TapProof::Nfc {
            challenge,
            authorization,
        } => (challenge.clone(), authorization.clone()),
        TapProof::Qr { .. } => panic!("a QR entry"),
    }
}

fn sealed(v: &mut Validator) -> TapBatch {
    TapBatch::decode(&v.seal().unwrap().unwrap().bytes).unwrap()
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

#[test]
fn a_lost_answer_is_torn_and_the_retry_gets_the_same_authorization() {
    let now = now();
    let issuer = timeless_issuer(ISSUER_KEY_ID);
    let tmp = tempfile::tempdir().unwrap();
    let w = a_wallet(tmp.path(), &issuer, now);
    let mut v = validator_in_memory(&issuer, now);
    assert_eq!(v.torn_window_secs(), DEFAULT_TORN_WINDOW_SECS);
    assert_eq!(DEFAULT_TORN_WINDOW_SECS, 120);

    // the phone signs counter 0, the reader never hears it: no gate, a torn tap
    let mut f1 = Field::tearing(&w, Fault::Drop);
    let o = tap(&mut v, &mut f1);
    assert_eq!(o.decision.code(), "communication", "{:?}", o.decision);
    assert_eq!(v.status().unwrap().journal.torn_waiting, 1);
    assert_eq!(v.status().unwrap().journal.accepted_total, 0);
    let entries = log(&w);
    assert_eq!(entries.len(), 1);
    let (torn_challenge, signed) = nfc(&entries[0]);
    assert_eq!(f1.challenges(), vec![torn_challenge.clone()]);
    assert_eq!(w.stats().next_counter, 1);

    // the retry: SELECT, the torn challenge again in AUTHORIZE TAP P1 02 (the phone answers
    // the identical authorization), READ CERTIFICATE (the validator never got the certificate)
    let history_before = history(&w);
    let mut f2 = Field::clean(&w);
    let o = tap(&mut v, &mut f2);
    let a = o
        .decision
        .acceptance()
        .unwrap_or_else(|| panic!("{:?}", o.decision));
    assert_eq!((a.counter, a.fare), (signed.counter, 20_000));
    assert_eq!((o.apdus, o.cert_cached), (3, false));
    assert_eq!(f2.challenges(), vec![torn_challenge.clone()]);
    assert_eq!(f2.authorize_p1s(), vec![P1_RECOVER]);
    assert_eq!(f1.authorize_p1s(), vec![P1_WITH_CERTIFICATE]);
    assert_eq!(
        f2.answers[1], f1.answers[1],
        "the same answer, byte for byte"
    );
    // one log entry, no new counter, nothing new in the history
    assert_eq!(log(&w), entries);
    assert_eq!(history(&w), history_before);
    assert_eq!(w.stats().next_counter, 1);
    let st = v.status().unwrap();
    assert_eq!((st.journal.accepted_total, st.journal.torn_waiting), (1, 0));
    // the batch: one tap record, the torn challenge's own, no torn record
    let batch = sealed(&mut v);
    assert_eq!(batch.body.records.len(), 1);
    assert!(batch.body.torn.is_empty());
    assert_eq!(batch.body.records[0].proof, entries[0].proof);
    assert_eq!(batch.body.records[0].counter, 0);

    // the next tap is a fresh one: no torn challenge repeated, 2 pairs, counter 1
    let mut f3 = Field::clean(&w);
    let o = tap(&mut v, &mut f3);
    assert_eq!(o.decision.acceptance().unwrap().counter, 1);
    assert_eq!((o.apdus, o.cert_cached), (2, true));
    assert_ne!(f3.challenges(), vec![torn_challenge]);
}

#[test]
fn garbage_a_bad_signature_or_a_lost_certificate_tear_too() {
    let now = now();
    let issuer = timeless_issuer(ISSUER_KEY_ID);
    for (ins, fault, code) in [
        (INS_AUTHORIZE_TAP, Fault::Garbage, "malformed"),
        (INS_AUTHORIZE_TAP, Fault::FlipSignature, "bad_signature"),
        (INS_READ_CERTIFICATE, Fault::Drop, "communication"),
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let w = a_wallet(tmp.path(), &issuer, now);
        let mut v = validator_in_memory(&issuer, now);
        let mut f = Field::tearing_at(&w, ins, 1, fault);
        let o = tap(&mut v, &mut f);
        assert_eq!(o.decision.code(), code, "{fault:?}: {:?}", o.decision);
        assert_eq!(v.status().unwrap().journal.torn_waiting, 1, "{fault:?}");
        let o = tap(&mut v, &mut Field::clean(&w));
        assert_eq!(
            o.decision.acceptance().map(|a| a.counter),
            Some(0),
            "{fault:?}: {:?}",
            o.decision
        );
        assert_eq!(log(&w).len(), 1, "{fault:?}");
        assert_eq!(v.status().unwrap().journal.torn_waiting, 0, "{fault:?}");
    }
}

#[test]
fn a_refusal_by_the_phone_tears_nothing() {
    let now = now();
    let issuer = timeless_issuer(ISSUER_KEY_ID);
    let tmp = tempfile::tempdir().unwrap();
    let w = a_wallet(tmp.path(), &issuer, now);
    let mut v = validator_in_memory(&issuer, now);
    // a locked phone answers 6982 and signs nothing: not torn
    w.set_locked(true).unwrap();
    let h0 = history(&w);
    let o = tap(&mut v, &mut Field::clean(&w));
    assert_eq!(o.decision.code(), "wallet_locked");
    assert_eq!(v.status().unwrap().journal.torn_waiting, 0);
    assert!(log(&w).is_empty());
    assert_eq!(
        history(&w),
        (h0.0 + 1, h0.1 + 1),
        "one locked tap, one refusal"
    );
    // a torn tap, then the phone locked: it answers 6982 to the repeated challenge (P1 02) too
    // (the lock comes first), quietly, then to the fresh one; the torn tap keeps waiting
    w.set_locked(false).unwrap();
    tap(&mut v, &mut Field::tearing(&w, Fault::Drop));
    w.set_locked(true).unwrap();
    let before = history(&w);
    let mut f = Field::clean(&w);
    let o = tap(&mut v, &mut f);
    assert_eq!(o.decision.code(), "wallet_locked");
    assert_eq!(f.authorize_p1s(), vec![P1_RECOVER, P1_WITH_CERTIFICATE]);
    assert_eq!(
        f.authorize_answers()
            .iter()
            .map(|a| a.sw)
            .collect::<Vec<_>>(),
        vec![StatusWord::WalletLocked, StatusWord::WalletLocked]
    );
    assert_eq!(
        history(&w),
        (before.0 + 1, before.1 + 1),
        "one locked tap, one refusal: the P1 02 wrote nothing"
    );
    assert_eq!(v.status().unwrap().journal.torn_waiting, 1);
    w.set_locked(false).unwrap();
    let o = tap(&mut v, &mut Field::clean(&w));
    assert_eq!(o.decision.acceptance().map(|a| a.counter), Some(0));
    assert_eq!(log(&w).len(), 1);
}

#[test]
fn a_retry_after_the_window_is_a_new_tap_and_the_torn_one_is_uploaded() {
    let now = now();
    let issuer = timeless_issuer(ISSUER_KEY_ID);
    let tmp = tempfile::tempdir().unwrap();
    let w = a_wallet(tmp.path(), &issuer, now);
    let mut v = validator_in_memory(&issuer, now);
    tap(&mut v, &mut Field::tearing(&w, Fault::Drop));
    let (torn_challenge, _) = nfc(&log(&w)[0]);

    // 121 s later the torn tap no longer waits: a fresh challenge, a new counter
    v.set_clock(fixed(now + DEFAULT_TORN_WINDOW_SECS + 1));
    let mut f = Field::clean(&w);
    let o = tap(&mut v, &mut f);
    assert_eq!(o.decision.acceptance().map(|a| a.counter), Some(1));
    assert_eq!(o.apdus, 3, "SELECT, AUTHORIZE (fresh), READ CERTIFICATE");
    assert_eq!(f.challenges().len(), 1);
    assert_ne!(f.challenges()[0], torn_challenge);
    assert_eq!(log(&w).len(), 2);

    // the batch: the new tap, and the torn one as evidence the gate did not open
    let mut batches = Vec::new();
    let rep = v
        .upload(|b| {
            batches.push(TapBatch::decode(&b.bytes).unwrap());
            Ok(())
        })
        .unwrap();
    assert_eq!((rep.records, rep.torn, rep.complete), (1, 1, true));
    let batch = &batches[0];
    assert_eq!(batch.body.records[0].counter, 1);
    assert_eq!(batch.body.torn.len(), 1);
    assert_eq!(batch.body.torn[0].challenge, torn_challenge);
    assert_eq!(batch.body.torn[0].time, now);
    assert_eq!(batch.body.torn[0].challenge_id(), torn_challenge.id());
    let st = v.status().unwrap();
    assert_eq!((st.journal.torn_waiting, st.journal.torn_uploaded), (0, 1));
    // uploaded exactly once: nothing left to seal
    assert!(v.seal().unwrap().is_none());
    // and the phone, tapping again, is not asked about it any more
    let mut f = Field::clean(&w);
    tap(&mut v, &mut f);
    assert!(!f.challenges().contains(&torn_challenge));
}

#[test]
fn another_phone_is_not_confused_by_a_waiting_torn_tap() {
    let now = now();
    let issuer = timeless_issuer(ISSUER_KEY_ID);
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = a_wallet(da.path(), &issuer, now);
    let b = a_wallet(db.path(), &issuer, now);
    let mut v = validator_in_memory(&issuer, now);
    tap(&mut v, &mut Field::tearing(&a, Fault::Drop));
    let (torn_challenge, _) = nfc(&log(&a)[0]);

    // phone B hears A's torn challenge first (P1 02): 6A88, not signed here, nothing signed
    // and nothing written; then its own fresh challenge, a normal tap
    let history_before = history(&b);
    let mut f = Field::clean(&b);
    let o = tap(&mut v, &mut f);
    let acc = o
        .decision
        .acceptance()
        .unwrap_or_else(|| panic!("{:?}", o.decision));
    assert_eq!(acc.counter, 0);
    assert_eq!(
        o.apdus, 4,
        "SELECT, the torn challenge, a fresh one, READ CERTIFICATE"
    );
    let sent = f.challenges();
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[0], torn_challenge);
    assert_eq!(f.authorize_p1s(), vec![P1_RECOVER, P1_WITH_CERTIFICATE]);
    let answers = f.authorize_answers();
    assert_eq!(
        (answers[0].sw, answers[0].data.len()),
        (StatusWord::NoCredential, 0),
        "B never signs A's challenge: 6A88"
    );
    assert_eq!(answers[1].sw, StatusWord::Ok);
    // B's history: its own tap, and no refusal (the P1 02 left no entry)
    assert_eq!(history(&b), (history_before.0 + 1, history_before.1));
    let b_log = log(&b);
    assert_eq!(b_log.len(), 1);
    assert_eq!(nfc(&b_log[0]).0, sent[1]);
    assert_eq!(b.stats().next_counter, 1);
    // A's torn tap still waits, and A recovers it
    assert_eq!(v.status().unwrap().journal.torn_waiting, 1);
    let o = tap(&mut v, &mut Field::clean(&a));
    assert_eq!(o.decision.acceptance().map(|x| x.counter), Some(0));
    assert_eq!(log(&a).len(), 1);
    let batch = sealed(&mut v);
    let challenges: Vec<TapChallenge> = batch
        .body
        .records
        .iter()
        .map(|r| match &r.proof {
            TapProof::Nfc { challenge, .. } => challenge.clone(),
            TapProof::Qr { .. } => panic!("a QR record"),
        })
        .collect();
    assert_eq!(challenges, vec![sent[1].clone(), torn_challenge]);
    assert!(batch.body.torn.is_empty());
}

/// A phone that does not know P1 02 (it answers 6A86, wrong P1), or refuses it otherwise,
/// is not held up: the reader goes on with its fresh challenge, and the torn tap keeps waiting.
#[test]
fn a_phone_refusing_the_recover_command_taps_as_usual() {
    let now = now();
    let issuer = timeless_issuer(ISSUER_KEY_ID);
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = a_wallet(da.path(), &issuer, now);
    let b = a_wallet(db.path(), &issuer, now);
    let mut v = validator_in_memory(&issuer, now);
    tap(&mut v, &mut Field::tearing(&a, Fault::Drop));
    for sw in [StatusWord::WrongP1P2, StatusWord::StaleChallenge] {
        let p1s = std::cell::RefCell::new(Vec::new());
        let mut ch = mancard_validator::FnChannel::new(|apdu: Vec<u8>| {
            if apdu[1] == INS_AUTHORIZE_TAP {
                p1s.borrow_mut().push(apdu[2]);
                if apdu[2] == P1_RECOVER {
                    return ResponseApdu::status(sw).encode();
                }
            }
            b.process_apdu(apdu)
        });
        let o = v.tap_nfc(&mut ch);
        b.deactivated();
        assert!(o.decision.is_accepted(), "{sw:?}: {:?}", o.decision);
        assert_eq!(
            p1s.into_inner(),
            vec![P1_RECOVER, P1_WITH_CERTIFICATE],
            "{sw:?}"
        );
        assert_eq!(v.status().unwrap().journal.torn_waiting, 1, "{sw:?}");
    }
    assert_eq!(log(&b).len(), 2);
}

#[test]
fn at_most_the_two_newest_torn_taps_are_repeated() {
    let now = now();
    let issuer = timeless_issuer(ISSUER_KEY_ID);
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let phones: Vec<Wallet> = dirs
        .iter()
        .map(|d| a_wallet(d.path(), &issuer, now))
        .collect();
    let mut v = validator_in_memory(&issuer, now);
    for (i, p) in phones.iter().enumerate() {
        v.set_clock(fixed(now + i as i64));
        // phone i first hears the i torn challenges before it (6A88), then its own is lost
        tap(
            &mut v,
            &mut Field::tearing_at(p, INS_AUTHORIZE_TAP, i + 1, Fault::Drop),
        );
    }
    assert_eq!(v.status().unwrap().journal.torn_waiting, 3);
    let torn: Vec<TapChallenge> = phones.iter().map(|p| nfc(&log(p)[0]).0).collect();
    // the oldest phone comes back: it hears the two newest torn challenges (not its own),
    // then a fresh one: a second counter
    v.set_clock(fixed(now + 10));
    let mut f = Field::clean(&phones[0]);
    let o = tap(&mut v, &mut f);
    assert_eq!(o.decision.acceptance().map(|a| a.counter), Some(1));
    let sent = f.challenges();
    assert_eq!(&sent[..2], &[torn[2].clone(), torn[1].clone()]);
    assert_eq!(sent.len(), 3);
    assert_eq!(
        f.authorize_answers()
            .iter()
            .map(|a| a.sw)
            .collect::<Vec<_>>(),
        vec![
            StatusWord::NoCredential,
            StatusWord::NoCredential,
            StatusWord::Ok
        ]
    );
    assert_eq!(history(&phones[0]).1, 0, "no refusal in its history");
    // the newest recovers its own
    let o = tap(&mut v, &mut Field::clean(&phones[2]));
    assert_eq!(o.decision.acceptance().map(|a| a.counter), Some(0));
    assert_eq!(log(&phones[2]).len(), 1);
    assert_eq!(v.status().unwrap().journal.torn_waiting, 2);
    // after the window, the two never recovered are uploaded as torn
    v.set_clock(fixed(now + 200));
    let batch = sealed(&mut v);
    let mut uploaded: Vec<TapChallenge> = batch
        .body
        .torn
        .iter()
        .map(|t| t.challenge.clone())
        .collect();
    uploaded.sort_by_key(|c| c.body.validator_time);
    assert_eq!(uploaded, vec![torn[0].clone(), torn[1].clone()]);
    assert_eq!(batch.body.records.len(), 2);
}

#[test]
fn a_rogue_reader_replaying_a_challenge_gets_only_the_old_authorization() {
    let now = now();
    let issuer = timeless_issuer(ISSUER_KEY_ID);
    let tmp = tempfile::tempdir().unwrap();
    let w = a_wallet(tmp.path(), &issuer, now);
    let mut v = validator_in_memory(&issuer, now);
    let o = tap(&mut v, &mut Field::clean(&w));
    assert!(o.decision.is_accepted());
    let (old, auth) = nfc(&log(&w)[0]);
    let vcert = v.certificate().unwrap().clone();
    let counter = w.stats().next_counter;

    let send =
        |cmd: &CommandApdu| ResponseApdu::parse(&w.process_apdu(cmd.encode().unwrap())).unwrap();
    let replay = |cmd: CommandApdu| {
        let sel = send(&CommandApdu::select_mancard());
        SelectResponse::decode(&sel.data).unwrap();
        let r = send(&cmd);
        w.deactivated();
        r
    };
    // recover (P1 02): the authorization already sent, again, and nothing written
    let quiet = history(&w);
    for _ in 0..2 {
        let r = replay(CommandApdu::recover_tap(&old, &vcert));
        assert_eq!(r.sw, StatusWord::Ok);
        assert_eq!(r.data, AuthorizeResponse::Authorized(auth.clone()).encode());
    }
    assert_eq!(history(&w), quiet);
    // a normal AUTHORIZE TAP (P1 01 or 00) never looks the challenge up: another session is
    // 69C9, as for any replayed challenge, with the refusal in the rider's history
    for cert in [Some(&vcert), None] {
        let r = replay(CommandApdu::authorize_tap(&old, cert));
        assert_eq!((r.sw, r.data.len()), (StatusWord::StaleChallenge, 0));
    }
    assert_eq!(history(&w), (quiet.0 + 2, quiet.1 + 2));
    // nothing new signed, spent or logged
    assert_eq!(w.stats().next_counter, counter);
    assert_eq!(log(&w).len(), 1);
    // a challenge the phone did not sign (one nonce bit off, its signature broken): 6A88 to a
    // recover, nothing written
    let mut forged = old.clone();
    forged.body.nonce[0] ^= 1;
    let quiet = history(&w);
    let r = replay(CommandApdu::recover_tap(&forged, &vcert));
    assert_eq!((r.sw, r.data.len()), (StatusWord::NoCredential, 0));
    // once the challenge's time is outside the tap window of the phone's clock: 6A88 too
    w.set_server_time_offset(400).unwrap();
    let r = replay(CommandApdu::recover_tap(&old, &vcert));
    assert_eq!((r.sw, r.data.len()), (StatusWord::NoCredential, 0));
    w.set_server_time_offset(0).unwrap();
    assert_eq!(history(&w), quiet);
    assert_eq!(w.stats().next_counter, counter);
    // the validator's next tap is a fresh one
    let o = tap(&mut v, &mut Field::clean(&w));
    assert_eq!(o.decision.acceptance().map(|a| a.counter), Some(1));
}

#[test]
fn a_recovery_is_not_a_new_authorization_for_the_rate_limit() {
    let now = now();
    let issuer = timeless_issuer(ISSUER_KEY_ID);
    let tmp = tempfile::tempdir().unwrap();
    let w = wallet_in(
        tmp.path(),
        &issuer,
        now,
        WalletConfig {
            max_authorizations_per_minute: 1,
            ..WalletConfig::default()
        },
    );
    let mut v = validator_in_memory(&issuer, now);
    tap(&mut v, &mut Field::tearing(&w, Fault::Drop));
    // the retry within the minute: the same authorization, not a second one (no 69C7)
    let o = tap(&mut v, &mut Field::clean(&w));
    assert_eq!(o.decision.acceptance().map(|a| a.counter), Some(0));
    // a fresh tap within the minute is the second authorization: refused
    let o = tap(&mut v, &mut Field::clean(&w));
    assert_eq!(o.decision.code(), "too_many_taps");
    assert_eq!(log(&w).len(), 1);
}

#[test]
fn a_torn_tap_survives_a_validator_restart() {
    let now = now();
    let issuer = timeless_issuer(ISSUER_KEY_ID);
    let tmp = tempfile::tempdir().unwrap();
    let w = a_wallet(&tmp.path().join("phone"), &issuer, now);
    let dir = tmp.path().join("validator");
    let mut v = Validator::init(&dir, &issuer.anchor(), 4242, LINE).unwrap();
    v.set_clock(fixed(now));
    v.install_config(&issuer.bundle(1, now - 3600, vec![]).encode())
        .unwrap();
    certify(&issuer, &mut v, now);
    v.set_torn_window_secs(90).unwrap();
    tap(&mut v, &mut Field::tearing(&w, Fault::Drop));
    assert_eq!(v.status().unwrap().journal.torn_waiting, 1);
    // power loss between the torn tap and the retry
    drop(v);
    let mut v = Validator::open(&dir).unwrap();
    v.set_clock(fixed(now + 30));
    assert_eq!(
        v.torn_window_secs(),
        90,
        "the window is a persisted setting"
    );
    assert_eq!(v.status().unwrap().journal.torn_waiting, 1);
    let o = tap(&mut v, &mut Field::clean(&w));
    assert_eq!(o.decision.acceptance().map(|a| a.counter), Some(0));
    assert_eq!(log(&w).len(), 1);
    // and the recovery itself is durable
    drop(v);
    let mut v = Validator::open(&dir).unwrap();
    v.set_clock(fixed(now + 500));
    let st = v.status().unwrap();
    assert_eq!((st.journal.accepted_total, st.journal.torn_waiting), (1, 0));
    let batch = sealed(&mut v);
    assert_eq!((batch.body.records.len(), batch.body.torn.len()), (1, 0));
}

// ──────────────────────── write-ahead: a validator crash mid-tap ────────────────────────

/// A validator with an on-disk journal in `dir`, its clock at `now`.
fn validator_on_disk(dir: &Path, issuer: &Issuer, now: i64) -> Validator {
    let mut v = Validator::init(dir, &issuer.anchor(), 4242, LINE).unwrap();
    v.set_clock(fixed(now));
    v.install_config(&issuer.bundle(1, now - 3600, vec![]).encode())
        .unwrap();
    certify(issuer, &mut v, now);
    v
}

/// The validator in `dir` taps `w` and loses power right after the phone answered its fresh
/// challenge (the phone signed it; the validator journaled nothing after sending it). Returns
/// that challenge and the phone's true answer; the validator is gone (dropped).
fn crash_mid_tap(dir: &Path, issuer: &Issuer, w: &Wallet, now: i64) -> (TapChallenge, Vec<u8>) {
    let mut v = validator_on_disk(dir, issuer, now);
    let mut f = Field::tearing(w, Fault::PowerLoss);
    let crashed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| v.tap_nfc(&mut f)));
    assert!(crashed.is_err(), "the validator went on: {crashed:?}");
    w.deactivated();
    drop(v);
    let entries = log(w);
    assert_eq!(entries.len(), 1, "the phone signed");
    let (challenge, _) = nfc(&entries[0]);
    assert_eq!(f.challenges(), vec![challenge.clone()]);
    (challenge, f.answers[1].clone())
}

/// The validator reopened after a crash, its clock at `now`.
fn reopened(dir: &Path, now: i64) -> Validator {
    let mut v = Validator::open(dir).unwrap();
    v.set_clock(fixed(now));
    v
}

#[test]
fn a_crash_after_the_challenge_is_sent_leaves_a_torn_tap_the_phone_recovers() {
    let now = now();
    let issuer = timeless_issuer(ISSUER_KEY_ID);
    let tmp = tempfile::tempdir().unwrap();
    let w = a_wallet(&tmp.path().join("phone"), &issuer, now);
    let dir = tmp.path().join("validator");
    let (challenge, answer) = crash_mid_tap(&dir, &issuer, &w, now);

    // at restart the challenge, journaled before it was sent, is a torn tap
    let mut v = reopened(&dir, now + 20);
    let st = v.status().unwrap();
    assert_eq!((st.journal.torn_waiting, st.journal.accepted_total), (1, 0));
    // the phone taps again: the challenge repeated (P1 02), the identical authorization
    let mut f = Field::clean(&w);
    let o = tap(&mut v, &mut f);
    let a = o
        .decision
        .acceptance()
        .unwrap_or_else(|| panic!("{:?}", o.decision));
    assert_eq!(a.counter, 0);
    assert_eq!(f.authorize_p1s(), vec![P1_RECOVER]);
    assert_eq!(f.challenges(), vec![challenge.clone()]);
    assert_eq!(f.answers[1], answer, "the same answer, byte for byte");
    assert_eq!(log(&w).len(), 1);
    assert_eq!(w.stats().next_counter, 1);
    // one record, the torn challenge's own; no torn record, nothing pending
    let st = v.status().unwrap();
    assert_eq!((st.journal.accepted_total, st.journal.torn_waiting), (1, 0));
    let batch = sealed(&mut v);
    assert_eq!((batch.body.records.len(), batch.body.torn.len()), (1, 0));
    assert_eq!(batch.body.records[0].proof, log(&w)[0].proof);
    drop(v);
    assert_eq!(
        reopened(&dir, now + 30)
            .status()
            .unwrap()
            .journal
            .torn_waiting,
        0
    );
}

#[test]
fn a_crash_after_the_challenge_is_sent_is_uploaded_as_torn_after_the_window() {
    let now = now();
    let issuer = timeless_issuer(ISSUER_KEY_ID);
    let tmp = tempfile::tempdir().unwrap();
    let w = a_wallet(&tmp.path().join("phone"), &issuer, now);
    let dir = tmp.path().join("validator");
    let (challenge, _) = crash_mid_tap(&dir, &issuer, &w, now);

    // the validator comes back after its torn window: the next batch carries the challenge as
    // a TornRecord, timed when it was journaled (evidence that the gate did not open)
    let mut v = reopened(&dir, now + DEFAULT_TORN_WINDOW_SECS + 1);
    let batch = sealed(&mut v);
    assert!(batch.body.records.is_empty());
    assert_eq!(batch.body.torn.len(), 1);
    assert_eq!(batch.body.torn[0].challenge, challenge);
    assert_eq!(batch.body.torn[0].time, now);
    // and the phone's next tap there is a fresh one
    let mut f = Field::clean(&w);
    let o = tap(&mut v, &mut f);
    assert_eq!(o.decision.acceptance().map(|a| a.counter), Some(1));
    assert!(!f.challenges().contains(&challenge));
}

#[test]
fn an_ordinary_tap_or_a_refusal_leaves_no_pending_challenge() {
    let now = now();
    let issuer = timeless_issuer(ISSUER_KEY_ID);
    let tmp = tempfile::tempdir().unwrap();
    let w = a_wallet(&tmp.path().join("phone"), &issuer, now);
    let dir = tmp.path().join("validator");
    let mut v = validator_on_disk(&dir, &issuer, now);
    // an ordinary tap; a locked phone (6982: nothing signed); an adult phone asking for a
    // re-quote; a student phone asking for a re-quote twice (two challenges, both unsigned)
    assert!(tap(&mut v, &mut Field::clean(&w)).decision.is_accepted());
    w.set_locked(true).unwrap();
    assert_eq!(
        tap(&mut v, &mut Field::clean(&w)).decision.code(),
        "wallet_locked"
    );
    let mut adult = card(&issuer, now);
    adult.bad.always_requote = true;
    assert!(!v.tap_nfc(&mut adult).decision.is_accepted());
    let mut student = card_of(&issuer, now, FareClass::Student);
    student.bad.always_requote = true;
    assert!(!v.tap_nfc(&mut student).decision.is_accepted());
    assert_eq!(student.requotes, 2);
    assert_eq!(v.status().unwrap().journal.torn_waiting, 0);
    // a restart would turn any challenge left pending into a torn tap: there is none
    drop(v);
    let mut v = reopened(&dir, now + 1);
    let st = v.status().unwrap();
    assert_eq!((st.journal.accepted_total, st.journal.torn_waiting), (1, 0));
    let batch = sealed(&mut v);
    assert_eq!((batch.body.records.len(), batch.body.torn.len()), (1, 0));
}

// ───────────────────────────── end to end, with the backend ─────────────────────────────

mod e2e {
    use super::{log, nfc, tap, Fault, Field};
    use mancard_api::{RegisterValidatorRequest, SyncRequest, TapVerdict, VerdictStatus};
    use mancard_protocol::{Pseudonym, TapBatch, ValidatorConfig};
    use mancard_testkit::online::{data_dir, login, online, open_wallet, top_up, Env, PHONE};
    use mancard_testkit::validator::{fixed, LINE};
    use mancard_validator::{http, TrustAnchor, Validator};
    use std::path::Path;
    use std::time::Duration;

    const TIMEOUT: Duration = Duration::from_secs(10);

    /// A validator registered at `env`'s backend: its bundle and the certificate the backend
    /// issues, its clock stopped at `time`.
    fn registered(env: &Env, dir: &Path, id: u32, time: i64) -> Validator {
        let bytes = http::fetch_config(&env.url, None, TIMEOUT)
            .unwrap()
            .unwrap();
        let cfg = ValidatorConfig::decode(&bytes).unwrap();
        let signer = cfg.issuer_key(cfg.body.signer_key_id).unwrap().clone();
        let anchor = TrustAnchor {
            key_id: Some(signer.key_id),
            public_key: signer.public_key,
        };
        let mut v = Validator::init(dir, &anchor, id, LINE).unwrap();
        v.set_clock(fixed(time));
        v.install_config(&bytes).unwrap();
        let reg = env
            .engine()
            .register_validator(&RegisterValidatorRequest::new(
                id,
                hex::encode(v.public_key().as_bytes()),
            ))
            .unwrap();
        v.install_certificate(&hex::decode(&reg.certificate).unwrap())
            .unwrap();
        v
    }

    /// Uploads `v`'s batches to the backend; the batches sent.
    fn upload(env: &Env, v: &mut Validator) -> Vec<TapBatch> {
        let mut sent = Vec::new();
        let rep = v
            .upload(|b| {
                sent.push(TapBatch::decode(&b.bytes).unwrap());
                http::send_batch(&env.url, b, TIMEOUT)
            })
            .unwrap();
        assert!(rep.complete);
        sent
    }

    /// The backend's newest verdict for each counter of the device named by `pseudonym`.
    fn verdicts(env: &Env, account: i64, pseudonym: &Pseudonym) -> Vec<TapVerdict> {
        let r = env
            .engine()
            .sync(
                account,
                &SyncRequest {
                    pseudonym: hex::encode(pseudonym.0),
                    cursor: 0,
                    entries: Vec::new(),
                    verdict_cursor: 0,
                },
            )
            .unwrap();
        let mut newest: Vec<TapVerdict> = Vec::new();
        for v in r.verdicts {
            newest.retain(|x| x.counter != v.counter);
            newest.push(v);
        }
        newest.sort_by_key(|v| v.counter);
        newest
    }

    #[test]
    fn a_torn_tap_and_its_retry_are_charged_once() {
        let env = Env::start();
        let w = open_wallet(&data_dir(env.path(), "phone"));
        let o = online(&w, &env.url);
        let account = login(&env, &o, PHONE);
        o.block_on(o.provision()).unwrap().unwrap();
        top_up(&env, &o, 200_000);
        assert_eq!(env.balance_of(account), 200_000);
        // the rides are a little in the past (the backend refuses taps from the future; the
        // phone accepts a reader clock within the bundle's tap window of its own)
        let now = mancard::now_utc();
        let t0 = now - 150;
        let mut v1 = registered(&env, &env.path().join("v1"), 71, t0);
        let mut v2 = registered(&env, &env.path().join("v2"), 72, t0);

        // (a) torn at validator 71, recovered there 10 s later: one tap, one counter
        let o1 = tap(&mut v1, &mut Field::tearing(&w, Fault::Drop));
        assert_eq!(o1.decision.code(), "communication");
        v1.set_clock(fixed(t0 + 10));
        let o2 = tap(&mut v1, &mut Field::clean(&w));
        let a = o2
            .decision
            .acceptance()
            .cloned()
            .unwrap_or_else(|| panic!("{:?}", o2.decision));
        let c0 = a.counter;
        assert_eq!(nfc(&log(&w)[0]).1.counter, c0);
        assert_eq!(log(&w).len(), 1);
        // the wallet reports it first, then the validator: the same tap, charged once
        o.block_on(o.sync()).unwrap().unwrap();
        let sent = upload(&env, &mut v1);
        assert_eq!(sent.len(), 1);
        assert_eq!(
            (sent[0].body.records.len(), sent[0].body.torn.len()),
            (1, 0)
        );
        let pseudonym = sent[0].body.records[0].pseudonym;
        assert_eq!(env.balance_of(account), 200_000 - a.fare);
        let v = verdicts(&env, account, &pseudonym);
        assert_eq!(v.len(), 1, "{v:?}");
        assert_eq!((v[0].counter, v[0].status), (c0, VerdictStatus::Charged));
        assert_eq!(v[0].charged, a.fare);

        // (b) torn at validator 71 and never recovered: the rider walks to validator 72, which
        // signs a new counter; the wallet reports both
        let t1 = now - 100;
        v1.set_clock(fixed(t1));
        v2.set_clock(fixed(t1 + 20));
        let o3 = tap(&mut v1, &mut Field::tearing(&w, Fault::Drop));
        assert_eq!(o3.decision.code(), "communication");
        let o4 = tap(&mut v2, &mut Field::clean(&w));
        let b = o4
            .decision
            .acceptance()
            .cloned()
            .unwrap_or_else(|| panic!("{:?}", o4.decision));
        assert_eq!(
            b.counter,
            c0 + 2,
            "a new counter: the torn tap's was signed"
        );
        let entries = log(&w);
        assert_eq!(entries.len(), 3);
        let (torn_challenge, torn_auth) = nfc(&entries[1]);
        assert_eq!(torn_auth.counter, c0 + 1);
        o.block_on(o.sync()).unwrap().unwrap();
        assert_eq!(upload(&env, &mut v2)[0].body.records.len(), 1);
        // validator 71 uploads once its torn window has passed: the gate did not open
        v1.set_clock(fixed(t1 + 130));
        let sent = upload(&env, &mut v1);
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].body.records.len(), 0);
        assert_eq!(sent[0].body.torn.len(), 1);
        assert_eq!(sent[0].body.torn[0].challenge, torn_challenge);
        o.block_on(o.sync()).unwrap().unwrap();

        let v = verdicts(&env, account, &pseudonym);
        let by_counter = |c: u32| {
            v.iter()
                .find(|x| x.counter == c)
                .unwrap_or_else(|| panic!("no verdict for counter {c}: {v:?}"))
        };
        let torn = by_counter(c0 + 1);
        assert_eq!(
            (torn.status, torn.charged, torn.reason.as_deref()),
            (VerdictStatus::NotCharged, 0, Some("torn_gate_closed"))
        );
        let retry = by_counter(c0 + 2);
        assert_eq!(retry.status, VerdictStatus::Charged);
        assert!(retry.charged > 0);
        // charged: the recovered tap of (a) and the retry of (b); never the torn one
        let charged: i64 = v.iter().map(|x| x.charged).sum();
        assert_eq!(env.balance_of(account), 200_000 - charged);
        assert_eq!(by_counter(c0).charged + retry.charged, charged);
        env.assert_audit_ok();
    }
}
