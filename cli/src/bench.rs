//! `mancard bench`: every headline figure in one run, each beside its physical limit or peer
//! measured in the same run (interleaved, so both see the same machine state):
//!
//! | figure | peer / limit | goal |
//! |---|---|---|
//! | wallet tap: SELECT + AUTHORIZE through `process_apdu` | one raw ring P-256 sign | ≤ 2× |
//! | validator decision, cached certificate | one raw ring P-256 verify | ≤ 1.3× |
//! | boarding pass: sign + log + QR matrix | the 3 ms budget | ≤ 1× |
//! | whole tap through pcscd + vpcd | the same tap in process; the 10 ms goal | p99 ≤ 10 ms |
//! | wallet sync of 10,000 taps (`mancard::online`) | 10,000 raw verifies, 1 core | ≤ 1 s |
//! | backend settlement ingest | raw SQLite insert of the same rows | verify-bound |
//! | wallet tap with 100,000 taps of history | the same tap on an empty wallet | ≤ 1.2× |
//!
//! `--quick` runs fewer iterations (a CI smoke test); `--json` prints one object per row.
//! Measure with `cargo run --release -p mancard-cli -- bench`.

use crate::CliResult;
use clap::Args;
use mancard::online::{OnlineOptions, OnlineWallet};
use mancard::{IssuerKeyInfo, SoftwareKeystore, Wallet, WalletConfig};
use mancard_backend::model::{
    CredentialRequest as BeCredentialRequest, OtpRequest, RegisterValidatorRequest, SessionRequest,
    TopupRequest,
};
use mancard_backend::{Backend, BackendConfig, Engine};
use mancard_protocol::crypto::tags;
use mancard_protocol::provision::{sign_provision, ProvisionPurpose};
use mancard_protocol::{
    BatchBody, CertificateBody, CommandApdu, ConfigBody, CredentialCertificate, FareClass,
    FareKind, IssuerKey, OfflineAllowance, Pseudonym, PublicKey, SigningKey, TapAuthorization,
    TapChallenge, TapProof, TapRecord, Tariff, WalletLogEntry,
};
use mancard_validator::pcsc_reader::{pcscd_available, PcscReader};
use mancard_validator::vpcd::{run_card, FnCard};
use mancard_validator::{FnChannel, Journal, TrustAnchor, Validator};
use ring::signature::{EcdsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use serde_json::json;
use std::hint::black_box;
use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

#[derive(Args)]
pub struct BenchArgs {
    /// A short run (fewer iterations, smaller fixtures): a smoke test for CI, not for figures.
    #[arg(long)]
    quick: bool,
    /// One JSON object per row instead of the table.
    #[arg(long)]
    json: bool,
    /// PC/SC reader for the whole-tap row (its card side is vpcd at `--vpcd`).
    #[arg(long, default_value = "Virtual PCD 00 01")]
    reader_name: String,
    /// vpcd address the benchmark's phone connects to (`Virtual PCD 00 01` is 35964).
    #[arg(long, default_value = "127.0.0.1:35964")]
    vpcd: String,
}

/// One row of the table.
struct Row {
    figure: &'static str,
    /// Microseconds (None: not measured).
    median_us: Option<f64>,
    p99_us: Option<f64>,
    peer: String,
    peer_us: Option<f64>,
    /// figure / peer (or / budget).
    ratio: Option<f64>,
    goal: &'static str,
    /// None when there is no pass/fail goal.
    ok: Option<bool>,
    note: String,
}

impl Row {
    fn na(figure: &'static str, peer: &str, goal: &'static str, why: String) -> Self {
        Self {
            figure,
            median_us: None,
            p99_us: None,
            peer: peer.into(),
            peer_us: None,
            ratio: None,
            goal,
            ok: None,
            note: why,
        }
    }
}

/// Sizes of a run.
struct Plan {
    taps: usize,
    verifies: usize,
    passes: usize,
    pcsc_taps: usize,
    history: u64,
    sync_taps: usize,
    batches: usize,
}

const T0: i64 = 1_795_840_200;
static NONCE: AtomicU64 = AtomicU64::new(1);

pub fn run(args: BenchArgs) -> CliResult {
    let plan = if args.quick {
        Plan {
            taps: 300,
            verifies: 300,
            passes: 50,
            pcsc_taps: 20,
            history: 10_000,
            sync_taps: 1_000,
            batches: 1,
        }
    } else {
        Plan {
            taps: 20_000,
            verifies: 20_000,
            passes: 1_000,
            pcsc_taps: 1_000,
            history: 100_000,
            sync_taps: 10_000,
            batches: 5,
        }
    };
    let started = Instant::now();
    let tmp = tempfile::Builder::new()
        .prefix("mancard-bench-")
        .tempdir()
        .map_err(|e| format!("cannot create a temporary directory: {e}"))?;
    let dir = tmp.path();
    if !args.json {
        println!(
            "mancard bench{}: {} CPU(s), {} build, {}",
            if args.quick { " --quick" } else { "" },
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            if cfg!(debug_assertions) {
                "DEBUG (figures meaningless: use --release)"
            } else {
                "release"
            },
            chrono::Utc::now().format("%Y-%m-%d %H:%M UTC")
        );
    }
    let issuer = key()?;
    let mut rows = Vec::new();
    let progress = |name: &str| {
        if !args.json {
            eprintln!(
                "  measuring {name} ({:.1} s)",
                started.elapsed().as_secs_f64()
            );
        }
    };

    progress("wallet tap");
    let empty = provisioned(&dir.join("empty"), &issuer)?;
    rows.push(wallet_tap(&empty, plan.taps)?);
    progress("validator decision");
    rows.push(validator_decision(&issuer, plan.verifies)?);
    progress("boarding pass");
    rows.push(boarding_pass(&dir.join("pass"), &issuer, plan.passes)?);
    progress("PC/SC tap");
    rows.push(pcsc_tap(&dir.join("pcsc"), &issuer, &args, plan.pcsc_taps)?);
    progress("wallet sync");
    rows.push(sync(&dir.join("sync"), plan.sync_taps, plan.verifies)?);
    progress("settlement ingest");
    rows.push(settlement(&dir.join("settle"), plan.batches)?);
    progress("tap with history");
    rows.push(history(
        &dir.join("history"),
        &issuer,
        &empty,
        plan.history,
        plan.taps,
    )?);

    print_rows(&rows, args.json);
    if !args.json {
        println!(
            "whole run {:.1} s; medians of interleaved loops (each figure and its peer alternate)",
            started.elapsed().as_secs_f64()
        );
    }
    Ok(ExitCode::SUCCESS)
}

// ---------------------------------------------------------------- stats and printing

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(i.min(sorted.len() - 1)).copied().unwrap_or(0.0)
}

fn sorted(mut v: Vec<f64>) -> Vec<f64> {
    v.sort_by(|a, b| a.total_cmp(b));
    v
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn fmt_us(v: Option<f64>) -> String {
    match v {
        None => "—".into(),
        Some(x) if x < 1_000.0 => format!("{x:.1} µs"),
        Some(x) if x < 1_000_000.0 => format!("{:.2} ms", x / 1000.0),
        Some(x) => format!("{:.2} s", x / 1e6),
    }
}

fn print_rows(rows: &[Row], as_json: bool) {
    if as_json {
        for r in rows {
            println!(
                "{}",
                json!({"figure": r.figure, "median_us": r.median_us, "p99_us": r.p99_us,
                       "peer": r.peer, "peer_median_us": r.peer_us, "ratio": r.ratio,
                       "goal": r.goal, "ok": r.ok, "note": r.note})
            );
        }
        return;
    }
    println!();
    println!(
        "{:<46} {:>10} {:>10}  {:<34} {:>10} {:>7}  goal",
        "figure", "median", "p99", "peer / limit (same run)", "peer", "ratio"
    );
    for r in rows {
        println!(
            "{:<46} {:>10} {:>10}  {:<34} {:>10} {:>7}  {:<13} {}",
            r.figure,
            fmt_us(r.median_us),
            fmt_us(r.p99_us),
            r.peer,
            fmt_us(r.peer_us),
            r.ratio
                .map(|x| format!("{x:.2}×"))
                .unwrap_or_else(|| "n/a".into()),
            r.goal,
            match r.ok {
                Some(true) => "ok",
                Some(false) => "OVER",
                None => "",
            }
        );
        if !r.note.is_empty() {
            println!("{:<46}   {}", "", r.note);
        }
    }
}

// ---------------------------------------------------------------- fixtures

fn key() -> Res<SigningKey> {
    Ok(SigningKey::generate()?.0)
}

fn issuer_info(issuer: &SigningKey) -> IssuerKeyInfo {
    IssuerKeyInfo {
        key_id: 1,
        public_key: issuer.public_key().as_bytes().to_vec(),
        valid_from: 0,
        valid_until: i64::MAX / 2,
    }
}

fn open_wallet(dir: &Path) -> Res<Wallet> {
    let ks = SoftwareKeystore::open_or_create(dir.join("keystore"))
        .map_err(|e| format!("keystore: {e}"))?;
    Ok(Wallet::open(
        dir.join("wallet"),
        Arc::new(ks),
        WalletConfig::default(),
    )?)
}

/// A wallet with a long-lived certificate (as benches/tap.rs): counters and allowance that
/// never run out during the run.
fn provisioned(dir: &Path, issuer: &SigningKey) -> Res<Wallet> {
    let w = open_wallet(dir)?;
    let req = w.prepare_credential_request()?;
    let cert = CertificateBody {
        issuer_key_id: 1,
        pseudonym: Pseudonym::random()?,
        tap_public_key: PublicKey::from_bytes(&req.tap_public_key, "tap key")?,
        valid_from: T0 - 86_400,
        valid_until: T0 + 20 * 365 * 86_400,
        fare_class: FareClass::Adult,
        allowance: OfflineAllowance {
            counter_first: 0,
            counter_last: u32::MAX - 1,
            max_amount: i64::MAX / 2,
        },
    }
    .sign(issuer)?;
    w.install_certificate(cert.encode(), vec![issuer_info(issuer)], T0)?;
    Ok(w)
}

fn challenge() -> TapChallenge {
    let n = NONCE.fetch_add(1, Ordering::Relaxed);
    let mut nonce = [0u8; 16];
    nonce[..8].copy_from_slice(&n.to_be_bytes());
    TapChallenge {
        validator_id: 7,
        nonce,
        validator_time: T0,
        line_id: 1,
        fare: 1,
    }
}

/// SELECT + AUTHORIZE TAP through `process_apdu`, as the HCE service calls it.
fn one_tap(w: &Wallet, select: &[u8]) -> Res<Duration> {
    let cmd = CommandApdu::authorize_tap(&challenge()).encode()?;
    let t = Instant::now();
    let r1 = w.process_apdu(select.to_vec());
    let r2 = w.process_apdu(cmd);
    let e = t.elapsed();
    w.deactivated();
    if r2.get(r2.len().saturating_sub(2)..) != Some(&[0x90, 0x00][..]) {
        return Err(format!("the wallet refused a benchmark tap: {}", hex::encode(&r2)).into());
    }
    black_box((r1, r2));
    Ok(e)
}

fn raw_signer() -> Res<(EcdsaKeyPair, ring::rand::SystemRandom)> {
    let rng = ring::rand::SystemRandom::new();
    let doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
        .map_err(|_| "ring key generation failed")?;
    let kp = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, doc.as_ref(), &rng)
        .map_err(|_| "ring key parse failed")?;
    Ok((kp, rng))
}

// ---------------------------------------------------------------- rows

fn wallet_tap(w: &Wallet, n: usize) -> Res<Row> {
    let (kp, rng) = raw_signer()?;
    let msg = [0x42u8; 120];
    let select = CommandApdu::select_mancard().encode()?;
    // warm-up
    for _ in 0..50 {
        one_tap(w, &select)?;
    }
    let (mut taps, mut raw) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for _ in 0..n {
        let t = Instant::now();
        black_box(
            kp.sign(&rng, black_box(&msg))
                .map_err(|_| "ring sign failed")?,
        );
        raw.push(us(t.elapsed()));
        taps.push(us(one_tap(w, &select)?));
    }
    let (taps, raw) = (sorted(taps), sorted(raw));
    let (m, r) = (pct(&taps, 0.5), pct(&raw, 0.5));
    let st = w.stats();
    Ok(Row {
        figure: "wallet tap: SELECT+AUTHORIZE (process_apdu)",
        median_us: Some(m),
        p99_us: Some(pct(&taps, 0.99)),
        peer: "raw ring P-256 sign".into(),
        peer_us: Some(r),
        ratio: Some(m / r),
        goal: "≤ 2×",
        ok: Some(m / r <= 2.0),
        note: format!(
            "n={n}; counter fsyncs so far {} for {} log entries",
            st.counter_fsyncs, st.log_entries
        ),
    })
}

fn validator_decision(issuer: &SigningKey, n: usize) -> Res<Row> {
    let mut j = Journal::in_memory()?;
    let anchor = TrustAnchor {
        key_id: Some(1),
        public_key: issuer.public_key(),
    };
    Validator::provision_journal(&mut j, &anchor, 9, 1)?;
    let mut v = Validator::from_parts(j, key()?, Arc::new(|| T0))?;
    v.install_config(&bundle(issuer, T0, 100_000)?)?;
    let tap = key()?;
    let cert = CertificateBody {
        issuer_key_id: 1,
        pseudonym: Pseudonym::random()?,
        tap_public_key: tap.public_key(),
        valid_from: T0 - 10,
        valid_until: T0 + 86_400,
        fare_class: FareClass::Adult,
        allowance: OfflineAllowance {
            counter_first: 0,
            counter_last: 1000,
            max_amount: 1_000_000,
        },
    }
    .sign(issuer)?;
    let vc = v
        .engine()
        .admit_cert(cert)
        .map_err(|r| format!("admit: {r:?}"))?;
    let ch = TapChallenge {
        validator_id: 9,
        nonce: [7; 16],
        validator_time: T0,
        line_id: 1,
        fare: 20_000,
    };
    let auth = TapAuthorization::sign(&tap, &ch, &vc.hash, 5, 20_000)?;
    let signed = auth.signed_bytes();
    let pk = tap.public_key();
    let (mut dec, mut raw) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for i in 0..n + 50 {
        let t = Instant::now();
        pk.verify(tags::TAP, black_box(&signed), &auth.signature)
            .map_err(|_| "raw verify failed")?;
        let r = us(t.elapsed());
        let t = Instant::now();
        black_box(
            v.engine()
                .decide_cached_nfc(black_box(&vc.hash), 1, &ch, &auth)
                .map_err(|e| format!("decision: {e:?}"))?,
        );
        let d = us(t.elapsed());
        if i >= 50 {
            raw.push(r);
            dec.push(d);
        }
    }
    let (dec, raw) = (sorted(dec), sorted(raw));
    let (m, r) = (pct(&dec, 0.5), pct(&raw, 0.5));
    Ok(Row {
        figure: "validator decision, cached certificate",
        median_us: Some(m),
        p99_us: Some(pct(&dec, 0.99)),
        peer: "raw ring P-256 verify".into(),
        peer_us: Some(r),
        ratio: Some(m / r),
        goal: "≤ 1.3×",
        ok: Some(m / r <= 1.3),
        note: format!("n={n}; deny list of 100,000 cards; fare, validity, replay, signature"),
    })
}

/// A signed config bundle with `deny` revoked cards.
fn bundle(issuer: &SigningKey, now: i64, deny: u32) -> Res<Vec<u8>> {
    Ok(ConfigBody {
        bundle_version: 1,
        issued_at: now,
        signer_key_id: 1,
        issuer_keys: vec![IssuerKey {
            key_id: 1,
            public_key: issuer.public_key(),
            valid_from: 0,
            valid_until: i64::MAX / 2,
        }],
        deny_list: (0..deny)
            .map(|i| {
                let mut p = [0u8; 16];
                p[..4].copy_from_slice(&i.to_be_bytes());
                p[15] = 0xAA;
                Pseudonym(p)
            })
            .collect(),
        tariff: Tariff::urmia_default(),
    }
    .sign(issuer)?
    .encode())
}

fn boarding_pass(dir: &Path, issuer: &SigningKey, n: usize) -> Res<Row> {
    let w = provisioned(dir, issuer)?;
    let mut v = Vec::with_capacity(n);
    let mut info = String::new();
    for k in 0..n + 10 {
        // a new minute each time: a new pass (no reuse)
        let now = T0 + i64::try_from(k)? * 60;
        let t = Instant::now();
        let p = w.boarding_pass(now)?;
        let e = us(t.elapsed());
        if k >= 10 {
            v.push(e);
        } else if k == 0 {
            info = format!(
                "{} chars, QR version {} ({}×{})",
                p.text.len(),
                p.matrix.version,
                p.matrix.width,
                p.matrix.width
            );
        }
        black_box(p);
    }
    let v = sorted(v);
    let m = pct(&v, 0.5);
    Ok(Row {
        figure: "boarding pass: sign + log + QR matrix",
        median_us: Some(m),
        p99_us: Some(pct(&v, 0.99)),
        peer: "budget 3 ms".into(),
        peer_us: Some(3_000.0),
        ratio: Some(m / 3_000.0),
        goal: "≤ 1× (3 ms)",
        ok: Some(m <= 3_000.0),
        note: format!("n={n}; {info}"),
    })
}

fn pcsc_tap(dir: &Path, issuer: &SigningKey, args: &BenchArgs, n: usize) -> Res<Row> {
    const FIG: &str = "whole tap via pcscd + vpcd (PC/SC)";
    if !pcscd_available() {
        return Ok(Row::na(
            FIG,
            "same tap in process",
            "p99 ≤ 10 ms",
            "n/a (pcscd not running: scripts/pcsc-up.sh)".into(),
        ));
    }
    let now = chrono::Utc::now().timestamp();
    let w = Arc::new(open_wallet(dir)?);
    let req = w.prepare_credential_request()?;
    let cert = CertificateBody {
        issuer_key_id: 1,
        pseudonym: Pseudonym::random()?,
        tap_public_key: PublicKey::from_bytes(&req.tap_public_key, "tap key")?,
        valid_from: now - 3600,
        valid_until: now + 86_400,
        fare_class: FareClass::Adult,
        allowance: OfflineAllowance {
            counter_first: req.next_counter,
            counter_last: req.next_counter.saturating_add(100_000),
            max_amount: 100_000_000,
        },
    }
    .sign(issuer)?;
    w.install_certificate(cert.encode(), vec![issuer_info(issuer)], now)?;
    let anchor = TrustAnchor {
        key_id: Some(1),
        public_key: issuer.public_key(),
    };
    let mut v = Validator::init(&dir.join("validator"), &anchor, 9, 1)?;
    v.install_config(&bundle(issuer, now, 1_000)?)?;

    let reader = match PcscReader::open(&args.reader_name) {
        Ok(r) => r,
        Err(e) => {
            return Ok(Row::na(
                FIG,
                "same tap in process",
                "p99 ≤ 10 ms",
                format!("n/a (reader {}: {e})", args.reader_name),
            ))
        }
    };
    let _ = reader.wait_for_removal(Some(Duration::from_secs(3)));
    let stop = Arc::new(AtomicBool::new(false));
    let (w1, w2, s) = (Arc::clone(&w), Arc::clone(&w), Arc::clone(&stop));
    let addr = args.vpcd.clone();
    let phone = std::thread::spawn(move || {
        let mut card = FnCard {
            on_apdu: move |a: &[u8]| w1.process_apdu(a.to_vec()),
            on_deactivated: move || w2.deactivated(),
        };
        run_card(&addr, &mut card, &s, None, |_| {}).map(|st| st.apdus)
    });
    let measured = (|| -> Res<(Vec<f64>, Vec<f64>)> {
        if !reader.wait_for_card(Some(Duration::from_secs(10)))? {
            return Err(format!(
                "no card appeared on {} (vpcd {})",
                args.reader_name, args.vpcd
            )
            .into());
        }
        let (mut whole, mut inproc) = (Vec::with_capacity(n), Vec::with_capacity(n));
        for i in 0..n + 10 {
            let t = Instant::now();
            let mut ch = reader.connect(Duration::from_secs(2))?;
            let o = v.tap_nfc(&mut ch);
            ch.finish();
            let e = us(t.elapsed());
            if !o.decision.is_accepted() {
                return Err(format!("PC/SC tap refused: {}", o.decision.display_text()).into());
            }
            // The peer: the same validator and wallet, in process (no PC/SC, no TCP).
            let w3 = Arc::clone(&w);
            let mut fc = FnChannel::new(move |a| w3.process_apdu(a));
            let t = Instant::now();
            let o2 = v.tap_nfc(&mut fc);
            let e2 = us(t.elapsed());
            w.deactivated();
            if !o2.decision.is_accepted() {
                return Err(
                    format!("in-process tap refused: {}", o2.decision.display_text()).into(),
                );
            }
            if i >= 10 {
                whole.push(e);
                inproc.push(e2);
            }
        }
        Ok((whole, inproc))
    })();
    stop.store(true, Ordering::SeqCst);
    let _ = phone.join();
    let (whole, inproc) = match measured {
        Ok(x) => x,
        Err(e) => {
            return Ok(Row::na(
                FIG,
                "same tap in process",
                "p99 ≤ 10 ms",
                format!("n/a ({e})"),
            ))
        }
    };
    let (whole, inproc) = (sorted(whole), sorted(inproc));
    let (m, p99, peer) = (pct(&whole, 0.5), pct(&whole, 0.99), pct(&inproc, 0.5));
    Ok(Row {
        figure: FIG,
        median_us: Some(m),
        p99_us: Some(p99),
        peer: "same tap in process (FnChannel)".into(),
        peer_us: Some(peer),
        ratio: Some(m / peer),
        goal: "p99 ≤ 10 ms",
        ok: Some(p99 <= 10_000.0),
        note: format!(
            "n={n}; connect, SELECT, AUTHORIZE, journal (synchronous=FULL), reset; {}",
            args.reader_name
        ),
    })
}

/// A rider set up through the engine (sandbox OTP, top-up, a software binding key).
struct Rider {
    tap: SigningKey,
    cert: CredentialCertificate,
    hash: [u8; 32],
    counter: u32,
}

fn setup_rider(e: &Engine, i: usize, topup: i64) -> Res<(i64, String, Rider)> {
    let phone = format!("+98914{i:07}");
    fn err(s: &'static str) -> impl Fn(mancard_backend::ApiError) -> String {
        move |x| format!("{s}: {x}")
    }
    e.request_otp(&OtpRequest {
        phone: phone.clone(),
    })
    .map_err(err("otp"))?;
    let code = e.sandbox_otp(&phone).map_err(err("sandbox otp"))?.code;
    let s = e
        .create_session(&SessionRequest {
            phone: phone.clone(),
            code,
        })
        .map_err(err("session"))?;
    if topup > 0 {
        let intent = e
            .create_topup(
                s.account_id,
                &TopupRequest {
                    amount: topup,
                    idempotency_key: format!("bench-{i}"),
                },
            )
            .map_err(err("top-up"))?;
        let token = intent
            .payment_url
            .rsplit('/')
            .next()
            .unwrap_or_default()
            .to_string();
        e.gateway_pay(&token, true).map_err(err("gateway"))?;
        e.topup_status(s.account_id, &intent.intent_id)
            .map_err(err("top-up status"))?;
    }
    let binding = key()?;
    let tap = key()?;
    let n = e.new_nonce(s.account_id).map_err(err("nonce"))?;
    let nonce: [u8; 32] = hex::decode(&n.nonce)?
        .try_into()
        .map_err(|_| "nonce is not 32 bytes")?;
    let sig = sign_provision(
        &binding,
        ProvisionPurpose::Provision,
        &nonce,
        &tap.public_key(),
    )?;
    let c = e
        .issue(
            s.account_id,
            &BeCredentialRequest {
                nonce: n.nonce,
                binding_public_key: hex::encode(binding.public_key().as_bytes()),
                tap_public_key: hex::encode(tap.public_key().as_bytes()),
                signature: hex::encode(sig.as_bytes()),
                next_counter: None,
            },
            ProvisionPurpose::Provision,
        )
        .map_err(err("issue"))?;
    let cert = CredentialCertificate::decode(&hex::decode(c.certificate)?)?;
    Ok((
        s.account_id,
        phone,
        Rider {
            tap,
            hash: cert.hash(),
            counter: cert.body.allowance.counter_first,
            cert,
        },
    ))
}

/// The wallet's sync of `n` taps through `mancard::online`, against an in-process backend.
fn sync(dir: &Path, n: usize, verifies: usize) -> Res<Row> {
    const FIG: &str = "wallet sync of 10,000 taps (mancard::online)";
    let label_peer = "raw ring verify × taps, 1 core";
    match sync_inner(dir, n, verifies) {
        Ok(row) => Ok(row),
        Err(e) => Ok(Row::na(
            FIG,
            label_peer,
            "≤ 1 s",
            format!("n/a (online layer not usable: {e})"),
        )),
    }
}

fn sync_inner(dir: &Path, n: usize, verifies: usize) -> Res<Row> {
    std::fs::create_dir_all(dir)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let mut cfg = BackendConfig::sandbox(dir.join("backend.sqlite"));
    cfg.policy.counters_per_cert = u32::try_from(n)?.saturating_mul(2).max(64);
    let handle = rt.block_on(Backend::start(cfg))?;
    let result = (|| -> Res<(f64, f64, u64)> {
        let e = Arc::clone(handle.engine());
        let w = Arc::new(open_wallet(dir)?);
        let online = OnlineWallet::new(
            Arc::clone(&w),
            handle.url(),
            OnlineOptions {
                max_attempts: 2,
                ..OnlineOptions::default()
            },
        )?;
        let phone = "+989140000001".to_string();
        let sent = online.block_on(online.register(phone))??;
        let code = e
            .sandbox_otp(&sent.phone)
            .map_err(|x| format!("sandbox otp: {x}"))?
            .code;
        online.block_on(online.verify(sent.phone, code))??;
        online.block_on(online.provision())??;
        // n taps of fare 0 (within any allowance), one every 20 s from now on.
        let now = e.now();
        let select = CommandApdu::select_mancard().encode()?;
        for i in 0..n {
            let mut ch = challenge();
            ch.fare = 0;
            ch.validator_time = now + i64::try_from(i)? * 20;
            w.process_apdu(select.clone());
            let r = w.process_apdu(CommandApdu::authorize_tap(&ch).encode()?);
            w.deactivated();
            if r.get(r.len().saturating_sub(2)..) != Some(&[0x90, 0x00][..]) {
                return Err(format!("tap {i} refused: {}", hex::encode(&r)).into());
            }
        }
        let t = Instant::now();
        let rep = online.block_on(online.sync())??;
        let took = us(t.elapsed());
        // The peer: verifying every tap signature once, one core (the least a backend does).
        let raw = raw_verify_us(verifies)?;
        Ok((took, raw * n as f64, rep.uploaded))
    })();
    let stopped = rt.block_on(handle.shutdown());
    let (took, peer, uploaded) = result?;
    stopped?;
    Ok(Row {
        figure: "wallet sync of 10,000 taps (mancard::online)",
        median_us: Some(took),
        p99_us: None,
        peer: format!("raw ring verify × {n}, 1 core"),
        peer_us: Some(peer),
        ratio: Some(took / peer),
        goal: "≤ 1 s",
        ok: (n >= 10_000).then_some(took <= 1e6),
        note: format!(
            "{n} taps, {uploaded} uploaded over loopback HTTP; one sync() call (budget of benches/sync.rs)"
        ),
    })
}

/// Median of one raw ring P-256 verify, microseconds.
fn raw_verify_us(n: usize) -> Res<f64> {
    let k = key()?;
    let msg = [0x17u8; 120];
    let sig = k.sign(tags::TAP, &msg)?;
    let pk = k.public_key();
    let mut v = Vec::with_capacity(n);
    for _ in 0..n.max(10) {
        let t = Instant::now();
        pk.verify(tags::TAP, black_box(&msg), &sig)
            .map_err(|_| "verify failed")?;
        v.push(us(t.elapsed()));
    }
    Ok(pct(&sorted(v), 0.5))
}

fn settlement(dir: &Path, batches: usize) -> Res<Row> {
    const RIDERS: usize = 20;
    const PER_BATCH: usize = 1_000;
    std::fs::create_dir_all(dir)?;
    let mut cfg = BackendConfig::sandbox(dir.join("bench.sqlite"));
    cfg.policy.counters_per_cert = 100_000;
    // Each rider authorizes 1,000,000 rials per batch under one certificate: the allowance
    // (a running total since the backend checks it cumulatively) must cover the whole run.
    cfg.policy.max_offline_amount = 100_000_000;
    let e = Engine::open(cfg, "http://127.0.0.1:0".into())?;
    let vkey = key()?;
    e.register_validator(&RegisterValidatorRequest {
        validator_id: 1,
        public_key: hex::encode(vkey.public_key().as_bytes()),
    })
    .map_err(|x| format!("register validator: {x}"))?;
    let mut riders = Vec::with_capacity(RIDERS);
    for i in 0..RIDERS {
        riders.push(setup_rider(&e, i, 10_000_000)?.2);
    }
    let t = Tariff::urmia_default();
    let now = e.now();
    let base = (t.fare_day(now) + 1) * 86_400 - i64::from(t.utc_offset_secs)
        + i64::from(t.day_start_secs)
        + 3600;
    let (mut ingest, mut insert) = (Vec::new(), Vec::new());
    let per = PER_BATCH / RIDERS;
    for b in 0..batches {
        let mut records = Vec::with_capacity(PER_BATCH);
        for k in 0..per {
            for r in riders.iter_mut() {
                let line = [1u32, 2, 10].get(k % 3).copied().unwrap_or(1);
                let time = base + i64::try_from(b * per + k)? * 60;
                let mut nonce = [0u8; 16];
                nonce[..4].copy_from_slice(&r.counter.to_be_bytes());
                let challenge = TapChallenge {
                    validator_id: 1,
                    nonce,
                    validator_time: time,
                    line_id: line,
                    fare: 20_000,
                };
                let authorization =
                    TapAuthorization::sign(&r.tap, &challenge, &r.hash, r.counter, 20_000)?;
                records.push(TapRecord {
                    validator_id: 1,
                    line_id: line,
                    time,
                    pseudonym: r.cert.body.pseudonym,
                    counter: r.counter,
                    fare: 20_000,
                    fare_kind: FareKind::Full,
                    proof: TapProof::Nfc {
                        challenge,
                        authorization,
                        cert_hash: r.hash,
                    },
                });
                r.counter = r.counter.saturating_add(1);
            }
        }
        let mut batch_id = [0u8; 16];
        batch_id[..8].copy_from_slice(&u64::try_from(b)?.to_be_bytes());
        let bytes = BatchBody {
            validator_id: 1,
            batch_id,
            created_at: base,
            records: records.clone(),
        }
        .sign(&vkey)?
        .encode();
        insert.push(raw_insert(dir, &records, b)?);
        let t0 = Instant::now();
        let r = e.ingest_batch(&bytes).map_err(|x| format!("ingest: {x}"))?;
        ingest.push(us(t0.elapsed()) / records.len() as f64);
        if r.settled != records.len() {
            return Err(format!("settlement: {} of {} settled", r.settled, records.len()).into());
        }
    }
    let audit = e.audit().map_err(|x| format!("audit: {x}"))?;
    if !audit.ok {
        return Err(format!("backend audit failed after ingest: {audit:?}").into());
    }
    let (ingest, insert) = (sorted(ingest), sorted(insert));
    let (m, p) = (pct(&ingest, 0.5), pct(&insert, 0.5));
    Ok(Row {
        figure: "backend settlement ingest, per tap",
        median_us: Some(m),
        p99_us: None,
        peer: "raw SQLite insert of the same row".into(),
        peer_us: Some(p),
        ratio: Some(m / p),
        goal: "verify-bound",
        ok: None,
        note: format!(
            "{batches} batch(es) × {PER_BATCH} NFC taps, {RIDERS} riders: {:.0} taps/s vs {:.0} rows/s \
             (WAL, synchronous=FULL); ingest verifies every signature",
            1e6 / m,
            1e6 / p
        ),
    })
}

/// A raw SQLite insert of the same rows (one transaction, WAL, synchronous=FULL), as
/// backend/benches/settlement.rs measures it; microseconds per row.
fn raw_insert(dir: &Path, records: &[TapRecord], round: usize) -> Res<f64> {
    let mut conn = rusqlite::Connection::open(dir.join("raw.sqlite"))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS taps (pseudonym BLOB NOT NULL, counter INTEGER NOT NULL,
            line_id INTEGER, time INTEGER NOT NULL, fare INTEGER NOT NULL, proof BLOB NOT NULL,
            PRIMARY KEY (pseudonym, counter)) WITHOUT ROWID;",
    )?;
    let rows: Vec<_> = records
        .iter()
        .map(|r| {
            (
                r.pseudonym.0,
                r.counter,
                r.line_id,
                r.time,
                r.fare,
                r.encode(),
            )
        })
        .collect();
    let offset = u32::try_from(round)?.saturating_mul(1_000_000);
    let t = Instant::now();
    let tx = conn.transaction()?;
    {
        let mut st = tx.prepare(
            "INSERT INTO taps (pseudonym, counter, line_id, time, fare, proof)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?;
        for (p, c, l, tm, f, proof) in &rows {
            st.execute(rusqlite::params![
                &p[..],
                c.saturating_add(offset),
                l,
                tm,
                f,
                proof
            ])?;
        }
    }
    tx.commit()?;
    Ok(us(t.elapsed()) / rows.len().max(1) as f64)
}

/// Tap cost with `n` taps of history vs the empty wallet, interleaved.
fn history(dir: &Path, issuer: &SigningKey, empty: &Wallet, n: u64, taps: usize) -> Res<Row> {
    let t = Instant::now();
    let full = seed_history(dir, issuer, n)?;
    let seeded = t.elapsed();
    let select = CommandApdu::select_mancard().encode()?;
    for _ in 0..50 {
        one_tap(&full, &select)?;
    }
    let (mut a, mut b) = (Vec::with_capacity(taps), Vec::with_capacity(taps));
    for _ in 0..taps {
        a.push(us(one_tap(&full, &select)?));
        b.push(us(one_tap(empty, &select)?));
    }
    let (a, b) = (sorted(a), sorted(b));
    let (m, p) = (pct(&a, 0.5), pct(&b, 0.5));
    Ok(Row {
        figure: if n >= 100_000 {
            "wallet tap with 100,000 taps of history"
        } else {
            "wallet tap with long history (--quick: 10k)"
        },
        median_us: Some(m),
        p99_us: Some(pct(&a, 0.99)),
        peer: "same tap, empty wallet".into(),
        peer_us: Some(p),
        ratio: Some(m / p),
        goal: "≤ 1.2×",
        ok: Some(m / p <= 1.2),
        note: format!(
            "n={taps}; {n} history rows seeded in {:.1} s (direct SQL, as benches/tap.rs)",
            seeded.as_secs_f64()
        ),
    })
}

/// Adds `n` tap-log rows in one transaction with direct SQL (a well-formed chain; the
/// signatures are copies of one real answer: a size fixture, not evidence), as benches/tap.rs.
fn seed_history(dir: &Path, issuer: &SigningKey, n: u64) -> Res<Wallet> {
    let w = provisioned(dir, issuer)?;
    w.process_apdu(CommandApdu::select_mancard().encode()?);
    let ch = challenge();
    let r = w.process_apdu(CommandApdu::authorize_tap(&ch).encode()?);
    w.deactivated();
    let auth = TapAuthorization::decode(r.get(..r.len().saturating_sub(2)).unwrap_or(&[]))?;
    let first = w.tap_log(0, 1)?;
    let entry0 = WalletLogEntry::decode(first.first().ok_or("no tap log entry")?)?;
    drop(w);
    let mut c = rusqlite::Connection::open(dir.join("wallet").join(mancard::DB_FILE))?;
    let tx = c.transaction()?;
    {
        let mut prev = entry0.hash();
        let mut ins = tx.prepare(
            "INSERT INTO tap_log (seq, credential_id, counter, kind, amount, time, line_id,
                                  validator_id, entry, hash)
             VALUES (?1, 1, ?2, 1, 1, ?3, 1, 7, ?4, ?5)",
        )?;
        for seq in 1..=n {
            let counter = u32::try_from(u64::from(entry0.counter()) + seq)?;
            let mut a = auth.clone();
            a.counter = counter;
            let e = WalletLogEntry {
                seq,
                prev_hash: prev,
                time: T0,
                amount: 1,
                proof: TapProof::Nfc {
                    challenge: ch.clone(),
                    authorization: a,
                    cert_hash: entry0.proof.cert_hash(),
                },
            };
            let h = e.hash();
            ins.execute(rusqlite::params![
                i64::try_from(seq)?,
                counter,
                T0,
                e.encode(),
                &h[..]
            ])?;
            prev = h;
        }
    }
    tx.commit()?;
    drop(c);
    open_wallet(dir)
}
