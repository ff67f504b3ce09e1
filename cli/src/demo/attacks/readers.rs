//! Protocol v2's rows about readers: any NFC reader on the street, a thief with a locked
//! phone, a rogue reader with a genuine (stolen) validator certificate trying to drain the
//! allowance, and a reader probing which validators the phone has met. The readers are
//! protocol-level (the testkit's reader flow) against the real wallet core.

use super::super::output::money;
use super::super::Res;
use super::common::{accepted, decision, sw, upload_said};
use super::reel::{Reel, V7};
use super::{Attack, Play};
use mancard::Wallet;
use mancard_api::endpoints::{ADMIN_VALIDATORS, VALIDATOR_BATCHES};
use mancard_api::{BatchResponse, RegisterValidatorRequest, RegisterValidatorResponse};
use mancard_protocol::{
    BatchBody, CommandApdu, FareClass, FareKind, ResponseApdu, SelectResponse, SigningKey,
    StatusWord, TapProof, TapRecord, Tariff, ValidatorCertBody, ValidatorCertificate,
};
use mancard_testkit::wallet::{Quote, Reader, Tapped};

/// A reader the reel drives at the protocol level.
pub(super) struct Rogue {
    pub(super) reader: Reader,
}

impl Rogue {
    /// Validator `id` registered by the operator (admin API) for `lines` (empty: any): a
    /// genuine validator key and certificate, later stolen or misused.
    pub(super) fn registered(reel: &Reel, id: u32, lines: Vec<u32>) -> Res<Self> {
        let (key, _) = SigningKey::generate()?;
        let b = reel.backend();
        let req = RegisterValidatorRequest {
            validator_id: id,
            public_key: hex::encode(key.public_key().as_bytes()),
            operator_id: None,
            lines,
        };
        let r: RegisterValidatorResponse = b
            .api
            .post(b.rt, ADMIN_VALIDATORS.path, Some(&reel.admin), Some(&req))?
            .parse()?;
        let cert = ValidatorCertificate::decode(&hex::decode(&r.certificate)?)?;
        Ok(Self {
            reader: Reader::with_certificate(key, cert),
        })
    }

    /// A reader on the street: its own key, a certificate naming validator `id` signed by a
    /// key no issuer ever had.
    pub(super) fn unknown(id: u32, now: i64) -> Res<Self> {
        let (key, _) = SigningKey::generate()?;
        let (forger, _) = SigningKey::generate()?;
        let cert = ValidatorCertBody {
            issuer_key_id: 99,
            validator_id: id,
            operator_id: 1,
            public_key: key.public_key(),
            valid_from: u32::try_from(now - 86_400)?,
            valid_until: u32::try_from(now + 86_400)?,
            lines: Vec::new(),
        }
        .sign(&forger)?;
        Ok(Self {
            reader: Reader::with_certificate(key, cert),
        })
    }

    /// One tap as quoted: the phone's authorization, or the status word that ended it.
    pub(super) fn tap(&self, w: &Wallet, q: &Quote) -> Res<Result<Tapped, StatusWord>> {
        self.reader
            .try_tap_with(w, q)
            .map_err(|e| e.to_string().into())
    }

    /// The reader's record of a tap, charging `fare` on `line`.
    pub(super) fn record(
        &self,
        t: &Tapped,
        pseudonym: &str,
        line: u32,
        fare: i64,
    ) -> Res<TapRecord> {
        Ok(TapRecord {
            validator_id: self.reader.validator_id,
            line_id: line,
            time: t.challenge.body.validator_time,
            pseudonym: mancard_protocol::Pseudonym::from_hex(pseudonym).ok_or("not a pseudonym")?,
            counter: t.authorization.counter,
            fare,
            fare_kind: FareKind::Full,
            proof: TapProof::Nfc {
                challenge: t.challenge.clone(),
                authorization: t.authorization.clone(),
            },
        })
    }

    /// Uploads `records` in a batch signed by this reader's key.
    pub(super) fn upload(&self, reel: &Reel, records: Vec<TapRecord>) -> Res<BatchResponse> {
        let (k, _) = SigningKey::generate()?;
        let mut batch_id = [0u8; 16];
        for (d, s) in batch_id
            .iter_mut()
            .zip(k.public_key().as_bytes().iter().skip(1))
        {
            *d = *s;
        }
        let bytes = BatchBody {
            validator_id: self.reader.validator_id,
            batch_id,
            created_at: reel.engine.now(),
            records,
            torn: Vec::new(),
        }
        .sign(&self.reader.key)?
        .encode();
        let b = reel.backend();
        b.api
            .post_bytes(b.rt, VALIDATOR_BATCHES.path, bytes)?
            .parse()
    }
}

/// One command to the phone, its parsed answer.
fn apdu(w: &Wallet, cmd: &CommandApdu) -> Res<ResponseApdu> {
    Ok(ResponseApdu::parse(&w.process_apdu(cmd.encode()?))?)
}

/// The quote of a tap at the phone's clock on `line`, asking `fare`.
pub(super) fn quote(line: u32, fare: Option<i64>, time: Option<i64>) -> Quote {
    Quote {
        time,
        line_id: line,
        fare,
        ..Quote::default()
    }
}

/// The status word a tap ended with, or 9000 for an authorization.
fn ended(r: &Result<Tapped, StatusWord>) -> StatusWord {
    match r {
        Ok(_) => StatusWord::Ok,
        Err(s) => *s,
    }
}

pub(super) const STREET_READER: (&str, &str, &str, Play) = (
    "street_reader",
    "Any NFC reader on the street reads the phone",
    "threat model v2",
    street_reader,
);

fn street_reader(reel: &mut Reel, a: &mut Attack) -> Res<()> {
    let d = reel.rider("Donya", 100_000, false)?;
    d.follow(&reel.engine)?;
    let rogue = Rogue::unknown(4321, reel.engine.now())?;
    let sel = apdu(&d.wallet, &CommandApdu::select_mancard())?;
    let session = SelectResponse::decode(&sel.data).map(|s| s.session);
    let rc = apdu(&d.wallet, &CommandApdu::read_certificate())?;
    let auth = rogue.tap(&d.wallet, &quote(1, None, None))?;
    d.wallet.deactivated();
    a.did(
        "a reader in a crowded bus sends SELECT, READ CERTIFICATE, then AUTHORIZE TAP with its \
         own challenge and a certificate of a key no issuer has",
    );
    a.said(
        "Donya's phone",
        format!(
            "SELECT {} ({} bytes: protocol version and a fresh random session); READ \
             CERTIFICATE {}; AUTHORIZE TAP {}",
            sw(sel.sw),
            sel.data.len(),
            sw(rc.sw),
            sw(ended(&auth))
        ),
    );
    let pseudonym = hex::decode(&d.cert.pseudonym)?;
    let names = sel
        .data
        .windows(pseudonym.len().max(1))
        .any(|w| w == pseudonym.as_slice());
    a.expect(
        "the answer to SELECT reveals nothing that names the phone (18 bytes, no pseudonym)",
        sel.sw == StatusWord::Ok && session.is_ok() && sel.data.len() == 18 && !names,
    );
    a.expect(
        "the certificate is not read by an unauthenticated reader",
        rc.sw != StatusWord::Ok && rc.data.is_empty(),
    );
    a.expect(
        "AUTHORIZE TAP from an unknown issuer's reader: 69C1",
        ended(&auth) == StatusWord::ReaderUnknown,
    );
    let refusals = d
        .wallet
        .history(None, 50)?
        .items
        .iter()
        .filter(|i| i.kind == mancard::HistoryKind::Refusal)
        .count();
    a.said("Donya's history", format!("{refusals} refusal(s) recorded"));
    a.expect("the rider can read what happened", refusals >= 1);
    a.charged(reel.charged(d.account_id)?, "nothing");
    Ok(())
}

pub(super) const LOCKED_PHONE: (&str, &str, &str, Play) = (
    "locked_phone",
    "A thief with a locked phone",
    "threat model v2",
    locked_phone,
);

fn locked_phone(reel: &mut Reel, a: &mut Attack) -> Res<()> {
    let l = reel.rider("Laleh", 100_000, false)?;
    l.wallet.set_locked(true)?;
    a.did("a thief takes Laleh's locked phone, taps it at validator 7 and opens the QR screen");
    let o = reel.tap(&l, V7)?;
    let pass = l.wallet.boarding_pass(chrono::Utc::now().timestamp());
    a.said("validator 7", decision(&o));
    a.said(
        "Laleh's phone (QR)",
        match &pass {
            Ok(_) => "a pass (unexpected)".to_string(),
            Err(e) => format!("no pass: {e}"),
        },
    );
    a.expect(
        "the validator is answered 6982: wallet_locked",
        super::common::refused(&o) == Some("wallet_locked"),
    );
    a.expect("no boarding pass while locked", pass.is_err());
    l.wallet.set_locked(false)?;
    a.charged(reel.charged(l.account_id)?, "nothing");
    Ok(())
}

/// Validator 21: a genuine validator certificate in a rogue reader's hands.
const STOLEN_KEY_READER: u32 = 21;

pub(super) const ROGUE_READER: (&str, &str, &str, Play) = (
    "rogue_reader_drain",
    "A rogue reader with a genuine validator certificate drains the allowance",
    "threat model v2",
    rogue_reader,
);

fn rogue_reader(reel: &mut Reel, a: &mut Attack) -> Res<()> {
    let y = reel.rider("Yasmin", 500_000, false)?;
    let limit = mancard::WalletConfig::default().max_authorizations_per_minute;
    y.follow(&reel.engine)?;
    let rogue = Rogue::registered(reel, STOLEN_KEY_READER, Vec::new())?;
    let now = reel.engine.now();
    let high = rogue.tap(&y.wallet, &quote(1, Some(500_000), None))?;
    let unknown_line = rogue.tap(&y.wallet, &quote(999, Some(20_000), None))?;
    let off = rogue.tap(&y.wallet, &quote(1, None, Some(now + 3600)))?;
    a.did(
        "a reader with validator 21's genuine key and certificate asks Yasmin's phone for \
         500,000 rials, for a line the tariff does not list, with its clock an hour off, then \
         for the line's fare again and again",
    );
    let mut signed = Vec::new();
    let mut last = StatusWord::Ok;
    for _ in 0..limit.saturating_add(2) {
        match rogue.tap(&y.wallet, &quote(1, None, None))? {
            Ok(t) => signed.push(t),
            Err(s) => {
                last = s;
                break;
            }
        }
    }
    a.said(
        "Yasmin's phone",
        format!(
            "500,000 rials: {}; line 999: {}; clock an hour off: {}; then {} authorization(s) \
             and {}",
            sw(ended(&high)),
            sw(ended(&unknown_line)),
            sw(ended(&off)),
            signed.len(),
            sw(last)
        ),
    );
    a.expect(
        "a fare above the line's, and an unknown line: 69C6",
        ended(&high) == StatusWord::FareTooHigh && ended(&unknown_line) == StatusWord::FareTooHigh,
    );
    a.expect(
        "a reader clock an hour off: 69C5",
        ended(&off) == StatusWord::ReaderClockOff,
    );
    a.expect(
        format!("at most {limit} authorizations a minute, then 69C7"),
        u32::try_from(signed.len()).is_ok_and(|n| n <= limit) && last == StatusWord::TooManyTaps,
    );
    let records = signed
        .iter()
        .map(|t| rogue.record(t, &y.cert.pseudonym, 1, 20_000))
        .collect::<Res<Vec<_>>>()?;
    let answer = rogue.upload(reel, records)?;
    let charged = reel.charged(y.account_id)?;
    let cap = Tariff::urmia_default()
        .daily_caps
        .get(FareClass::Adult.index())
        .copied()
        .unwrap_or(0);
    a.said(
        "backend (the rogue's batch)",
        format!(
            "{} settled: charged {} in all",
            answer.settled,
            money(charged)
        ),
    );
    a.expect(
        format!(
            "what it drained is bounded by the daily cap ({})",
            money(cap)
        ),
        charged <= cap,
    );
    a.charged(
        charged,
        "the authorizations the phone signed, rated over her day (capped)",
    );
    Ok(())
}

pub(super) const READER_CACHE_PROBE: (&str, &str, &str, Play) = (
    "reader_cache_probe",
    "A rogue reader probes which validators the phone has met",
    "threat model v2",
    reader_cache_probe,
);

fn reader_cache_probe(reel: &mut Reel, a: &mut Attack) -> Res<()> {
    let s = reel.rider("Shirin", 100_000, false)?;
    let o = reel.tap(&s, V7)?;
    a.said("validator 7 (Shirin's ride)", decision(&o));
    let fare = accepted(&o).map(|x| x.1).unwrap_or(-1);
    let now = reel.engine.now();
    let mut answers = Vec::new();
    for id in [V7.0, 4321] {
        let rogue = Rogue::unknown(id, now)?;
        let sel = apdu(&s.wallet, &CommandApdu::select_mancard())?;
        let session = SelectResponse::decode(&sel.data)?.session;
        let ch = rogue
            .reader
            .challenge(session, now, 1, 20_000, FareClass::Adult);
        let r = apdu(&s.wallet, &CommandApdu::authorize_tap(&ch, None))?;
        s.wallet.deactivated();
        answers.push(r.sw);
    }
    a.did(
        "a reader asks the phone, by certificate id only (P1 = 00), to authorize as validator 7 \
         (which the phone met) and as validator 4321 (which it never met)",
    );
    a.said(
        "Shirin's phone",
        format!(
            "as validator 7: {}; as validator 4321: {}",
            answers.first().map(|x| sw(*x)).unwrap_or_default(),
            answers.get(1).map(|x| sw(*x)).unwrap_or_default()
        ),
    );
    a.expect(
        "the same 6986 either way: the reader learns nothing of the validators met",
        answers.len() == 2
            && answers
                .iter()
                .all(|x| *x == StatusWord::ReaderCertificateRequired),
    );
    let up = reel.upload(V7.0)?;
    a.said("backend (validator 7's batch)", upload_said(&up));
    let charged = reel.charged(s.account_id)?;
    a.expect("her genuine ride is charged once", charged == fare);
    a.charged(charged, "her genuine ride, once");
    Ok(())
}
