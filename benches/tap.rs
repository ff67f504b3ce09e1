//! Wallet tap-path benchmark.
//!
//! - `tap/raw_p256_sign`: one ring ECDSA P-256 signature (the yardstick, same run);
//! - `tap/select_authorize`: SELECT + AUTHORIZE TAP APDUs in, responses out, with persistence;
//! - `tap/select_authorize_100k`: the same with 100,000 taps already in the history;
//! - `pass/boarding_pass`: sign + log + QR matrix; `pass/svg|png|terminal`: renders of it.
//!
//! After criterion, a manual loop of 5,000 taps per wallet prints median, p99 and fsyncs/tap.
//! Quick run: `cargo bench -p mancard --bench tap -- --warm-up-time 0.5 --measurement-time 2`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use criterion::{criterion_group, criterion_main, Criterion};
use mancard::{IssuerKeyInfo, SoftwareKeystore, Wallet, WalletConfig};
use mancard_protocol::{
    CertificateBody, CommandApdu, FareClass, OfflineAllowance, Pseudonym, SigningKey,
    TapAuthorization, TapChallenge, TapProof, WalletLogEntry,
};
use ring::signature::{EcdsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use std::hint::black_box;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const T0: i64 = 1_795_840_200;
static NONCE: AtomicU64 = AtomicU64::new(1);

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

fn wallet(dir: &Path) -> Wallet {
    let ks = Arc::new(SoftwareKeystore::open_or_create(dir.join("keystore")).unwrap());
    Wallet::open(dir.join("wallet"), ks, WalletConfig::default()).unwrap()
}

fn provisioned(dir: &Path) -> Wallet {
    let w = wallet(dir);
    let (issuer, _) = SigningKey::generate().unwrap();
    let req = w.prepare_credential_request().unwrap();
    let cert = CertificateBody {
        issuer_key_id: 1,
        pseudonym: Pseudonym::random().unwrap(),
        tap_public_key: mancard_protocol::PublicKey::from_bytes(&req.tap_public_key, "tap")
            .unwrap(),
        valid_from: T0 - 86_400,
        valid_until: T0 + 20 * 365 * 86_400,
        fare_class: FareClass::Adult,
        allowance: OfflineAllowance {
            counter_first: 0,
            counter_last: u32::MAX - 1,
            max_amount: i64::MAX / 2,
        },
    }
    .sign(&issuer)
    .unwrap();
    let info = IssuerKeyInfo {
        key_id: 1,
        public_key: issuer.public_key().as_bytes().to_vec(),
        valid_from: T0 - 365 * 86_400,
        valid_until: T0 + 365 * 86_400,
    };
    w.install_certificate(cert.encode(), vec![info], T0)
        .unwrap();
    w
}

/// Adds `n` tap-log and history rows in one transaction with direct SQL (a well-formed chain;
/// signatures are copies of one real answer — this is a size fixture, not evidence).
fn seed_history(dir: &Path, n: u64) -> Wallet {
    let w = provisioned(dir);
    let sel = CommandApdu::select_mancard().encode().unwrap();
    w.process_apdu(sel);
    let ch = challenge();
    let r = w.process_apdu(CommandApdu::authorize_tap(&ch).encode().unwrap());
    let auth = TapAuthorization::decode(&r[..r.len() - 2]).unwrap();
    let entry0 = WalletLogEntry::decode(&w.tap_log(0, 1).unwrap()[0]).unwrap();
    drop(w);
    let mut c = rusqlite::Connection::open(dir.join("wallet").join(mancard::DB_FILE)).unwrap();
    let tx = c.transaction().unwrap();
    {
        let mut prev = entry0.hash();
        let mut ins = tx
            .prepare(
                "INSERT INTO tap_log (seq, credential_id, counter, kind, amount, time, line_id,
                                      validator_id, entry, hash)
                 VALUES (?1, 1, ?2, 1, 1, ?3, 1, 7, ?4, ?5)",
            )
            .unwrap();
        for seq in 1..=n {
            let counter = u32::try_from(entry0.counter() as u64 + seq).unwrap();
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
                seq as i64,
                counter,
                T0,
                e.encode(),
                &h[..]
            ])
            .unwrap();
            prev = h;
        }
    }
    tx.commit().unwrap();
    drop(c);
    wallet(dir)
}

fn one_tap(w: &Wallet, select: &[u8]) {
    let r1 = w.process_apdu(select.to_vec());
    let cmd = CommandApdu::authorize_tap(&challenge()).encode().unwrap();
    let r2 = w.process_apdu(cmd);
    w.deactivated();
    assert_eq!(r2[r2.len() - 2..], [0x90, 0x00]);
    black_box((r1, r2));
}

struct Fixtures {
    _dirs: Vec<tempfile::TempDir>,
    empty: Wallet,
    full: Wallet,
    raw: EcdsaKeyPair,
}

fn fixtures() -> Fixtures {
    let d1 = tempfile::tempdir().unwrap();
    let d2 = tempfile::tempdir().unwrap();
    let t = Instant::now();
    let full = seed_history(d2.path(), 100_000);
    eprintln!("seeded 100,000 taps and reopened in {:?}", t.elapsed());
    let empty = provisioned(d1.path());
    let rng = ring::rand::SystemRandom::new();
    let doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
    let raw =
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, doc.as_ref(), &rng).unwrap();
    Fixtures {
        _dirs: vec![d1, d2],
        empty,
        full,
        raw,
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn manual_loop(name: &str, w: &Wallet, n: usize, raw_median: Duration) {
    let select = CommandApdu::select_mancard().encode().unwrap();
    let f0 = w.stats().counter_fsyncs;
    let mut times = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        one_tap(w, &select);
        times.push(t.elapsed());
    }
    let st = w.stats();
    let fsyncs = st.counter_fsyncs - f0;
    times.sort_unstable();
    let med = percentile(&times, 0.5);
    println!(
        "manual {name:<28} n={n} median={:>8.1?} p99={:>8.1?} max={:>8.1?} median/raw_sign={:.2} fsyncs/tap={:.4} (1/{:.1}) stalls={} block={}",
        med,
        percentile(&times, 0.99),
        times[times.len() - 1],
        med.as_secs_f64() / raw_median.as_secs_f64(),
        fsyncs as f64 / n as f64,
        n as f64 / fsyncs.max(1) as f64,
        st.reservation_stalls,
        st.reservation_block,
    );
}

fn bench(c: &mut Criterion) {
    let fx = fixtures();
    let rng = ring::rand::SystemRandom::new();
    let msg = [0x42u8; 120];
    let select = CommandApdu::select_mancard().encode().unwrap();

    let mut g = c.benchmark_group("tap");
    g.bench_function("raw_p256_sign", |b| {
        b.iter(|| black_box(fx.raw.sign(&rng, black_box(&msg)).unwrap()))
    });
    g.bench_function("select_authorize", |b| {
        b.iter(|| one_tap(&fx.empty, &select))
    });
    g.bench_function("select_authorize_100k", |b| {
        b.iter(|| one_tap(&fx.full, &select))
    });
    g.finish();

    let pass_dir = tempfile::tempdir().unwrap();
    let pw = provisioned(pass_dir.path());
    let clock = AtomicU64::new(0);
    let mut g = c.benchmark_group("pass");
    g.bench_function("boarding_pass", |b| {
        b.iter(|| {
            // a new minute each time, so a new pass (no reuse)
            let k = clock.fetch_add(1, Ordering::Relaxed) as i64;
            black_box(pw.boarding_pass(T0 + k * 60).unwrap())
        })
    });
    let p = pw.boarding_pass(T0 - 3600).unwrap();
    println!(
        "pass text {} chars, QR version {} ({}x{} modules)",
        p.text.len(),
        p.matrix.version,
        p.matrix.width,
        p.matrix.width
    );
    g.bench_function("qr_matrix_only", |b| {
        b.iter(|| black_box(mancard::QrMatrix::encode(&p.text).unwrap()))
    });
    g.bench_function("svg", |b| b.iter(|| black_box(p.svg())));
    g.bench_function("png_4px", |b| b.iter(|| black_box(p.png(4).unwrap())));
    g.bench_function("terminal", |b| b.iter(|| black_box(p.terminal())));
    g.finish();

    // manual loops: p99 and fsyncs per tap
    let mut raw = Vec::with_capacity(5_000);
    for _ in 0..5_000 {
        let t = Instant::now();
        black_box(fx.raw.sign(&rng, &msg).unwrap());
        raw.push(t.elapsed());
    }
    raw.sort_unstable();
    let raw_med = percentile(&raw, 0.5);
    println!(
        "manual {:<28} n=5000 median={:>8.1?} p99={:>8.1?}",
        "raw_p256_sign",
        raw_med,
        percentile(&raw, 0.99)
    );
    manual_loop("select_authorize (empty)", &fx.empty, 5_000, raw_med);
    manual_loop("select_authorize (100k)", &fx.full, 5_000, raw_med);
    let mut pt = Vec::with_capacity(1_000);
    for k in 0..1_000i64 {
        let t = Instant::now();
        black_box(pw.boarding_pass(T0 + 10_000_000 + k * 60).unwrap());
        pt.push(t.elapsed());
    }
    pt.sort_unstable();
    println!(
        "manual {:<28} n=1000 median={:>8.1?} p99={:>8.1?}",
        "boarding_pass",
        percentile(&pt, 0.5),
        percentile(&pt, 0.99)
    );
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(30)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = bench
}
criterion_main!(benches);
