//! The HTTP edge under abuse, over real HTTP on loopback: code-request floods from one
//! address and from many (behind a trusted proxy), per-account sync and issuance floods,
//! clients that stall mid-headers, mid-body or drip their body, load shedding, and a resent
//! log that must cost no signature work. Limits are tightened through `EdgeLimits`, never by
//! sleeping; time only ever bounds how long a test waits for the server to act (generous
//! margins: CI is a loaded 2-core machine).

use mancard_api::endpoints::{CREDENTIAL_NONCE, HEALTHZ, REQUEST_OTP, WALLET_SYNC};
use mancard_api::{OtpRequest, SyncRequest, SyncResponse, TapStatus};
use mancard_backend::{AccountId, Backend, EdgeLimits, Rate};
use mancard_testkit::backend::{
    backend_config, ride_base, EngineRider, Harness, Validator, Wallet,
};
use reqwest::StatusCode;
use serde_json::Value;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a test waits at most for the server to do what it must (not a speed target).
const PATIENCE: Duration = Duration::from_secs(90);

async fn start(edge: impl FnOnce(&mut EdgeLimits)) -> Harness {
    Harness::start_with_config(|cfg| edge(&mut cfg.edge)).await
}

fn phone(i: usize) -> String {
    format!("+98912{i:07}")
}

/// Sends one code request, with `X-Forwarded-For: forwarded` if given; status and headers.
async fn request_code(h: &Harness, i: usize, forwarded: Option<&str>) -> reqwest::Response {
    let mut r = h
        .http
        .post(h.u(REQUEST_OTP.path))
        .json(&OtpRequest { phone: phone(i) });
    if let Some(f) = forwarded {
        r = r.header("x-forwarded-for", f);
    }
    r.send().await.unwrap()
}

/// Asserts a refusal is a 429 problem document with a whole-seconds `Retry-After`.
async fn assert_rate_limited(resp: reqwest::Response) {
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    let after: u64 = resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(after >= 1, "Retry-After {after}");
    assert_eq!(
        resp.headers()["content-type"].to_str().unwrap(),
        "application/problem+json"
    );
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["code"], "rate_limited", "{v}");
}

/// Counts accepted (202) code requests for numbers `0..n`; every other answer must be a
/// proper 429.
async fn flood(h: &Harness, n: usize, forwarded: impl Fn(usize) -> String) -> usize {
    let mut accepted = 0;
    for i in 0..n {
        let resp = request_code(h, i, Some(&forwarded(i))).await;
        if resp.status() == StatusCode::ACCEPTED {
            accepted += 1;
        } else {
            assert_rate_limited(resp).await;
        }
    }
    accepted
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_code_requests_is_throttled() {
    let tight = |e: &mut EdgeLimits| {
        e.otp_per_address = Some(Rate::new(5, 3_600));
        e.otp_global = Some(Rate::new(20, 3_600));
    };
    // One address, 1,000 numbers, each request claiming another address in X-Forwarded-For:
    // the header is not believed from a peer that is not a configured proxy.
    let h = start(tight).await;
    let accepted = flood(&h, 1_000, |i| format!("10.9.{}.{}", i / 250, i % 250)).await;
    assert!((1..=5).contains(&accepted), "{accepted} codes sent");
    // Numbers past the fifth never got a code.
    let (s, _) = h
        .get(&format!("/sandbox/otp?phone=%2B98912{:07}", 999), None)
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    // Behind a trusted proxy every request comes from another client address: the
    // per-address limit does not bind, the global cap does.
    let h = start(|e| {
        tight(e);
        e.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
    })
    .await;
    let accepted = flood(&h, 1_000, |i| {
        format!("198.51.{}.{}, 10.0.0.{}", i / 250, i % 250, i % 7)
    })
    .await;
    // the budget is charged for each code sent, so one more than it may go out before the
    // gate closes
    assert!((6..=21).contains(&accepted), "{accepted} codes sent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn code_guesses_are_throttled_per_address() {
    let h = start(|e| e.session_per_address = Some(Rate::new(3, 3_600))).await;
    let guess = |code: &str| {
        h.http
            .post(h.u(mancard_api::endpoints::CREATE_SESSION.path))
            .json(&mancard_api::SessionRequest {
                phone: phone(3),
                code: code.into(),
                request_id: "00112233445566778899aabbccddeeff".into(),
            })
            .send()
    };
    for i in 0..3 {
        let r = guess(&format!("{i:08}")).await.unwrap();
        assert!(r.status().is_client_error(), "{}", r.status());
        assert_ne!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    }
    for i in 3..20 {
        assert_rate_limited(guess(&format!("{i:08}")).await.unwrap()).await;
    }
}

/// A raw client: connects, writes `first`, and reads until the server closes (or `PATIENCE`
/// passes). Returns what it read and whether the server closed the connection.
fn raw_exchange(addr: SocketAddr, first: &[u8]) -> (Vec<u8>, bool) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    s.write_all(first).unwrap();
    read_until_closed(&mut s)
}

fn read_until_closed(s: &mut TcpStream) -> (Vec<u8>, bool) {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return (got, true),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::ConnectionAborted
                ) =>
            {
                return (got, true)
            }
            Err(_) => return (got, false), // read timeout: still open
        }
    }
}

fn status_line(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .lines()
        .next()
        .unwrap_or_default()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_client_is_disconnected() {
    let h = start(|e| {
        e.header_read_timeout = Duration::from_secs(1);
        e.body_read_timeout = Duration::from_secs(1);
        e.request_timeout = Duration::from_secs(3);
    })
    .await;
    let addr = h.handle().addr();
    let head = "POST /v1/auth/otp HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n";
    let (mid_headers, idle, mid_body, drip) = tokio::task::spawn_blocking(move || {
        // Stalled in the middle of its headers.
        let mid_headers = raw_exchange(addr, head.as_bytes());
        // Connected and silent.
        let idle = raw_exchange(addr, b"");
        // Whole header, a tenth of the body, then nothing.
        let partial = format!("{head}Content-Length: 100\r\n\r\n{{\"phone\":");
        let mid_body = raw_exchange(addr, partial.as_bytes());
        // A byte of body now and then, each gap under the body-read timeout: the whole
        // request's timeout ends it.
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(PATIENCE)).unwrap();
        s.write_all(format!("{head}Content-Length: 400\r\n\r\n").as_bytes())
            .unwrap();
        let mut sent = 0;
        while sent < 400 && s.write_all(b" ").is_ok() {
            sent += 1;
            std::thread::sleep(Duration::from_millis(300));
            let mut probe = [0u8; 1];
            s.set_nonblocking(true).unwrap();
            let answered = matches!(s.peek(&mut probe), Ok(n) if n > 0);
            s.set_nonblocking(false).unwrap();
            if answered {
                break;
            }
        }
        let drip = read_until_closed(&mut s);
        (mid_headers, idle, mid_body, (drip, sent))
    })
    .await
    .unwrap();
    assert!(
        mid_headers.1,
        "a client stalled mid-headers stays connected"
    );
    assert!(idle.1, "a silent client stays connected");
    assert!(mid_body.1, "a client stalled mid-body stays connected");
    let line = status_line(&mid_body.0);
    assert!(line.contains(" 408 "), "{line}");
    let ((drip_bytes, drip_closed), sent) = drip;
    assert!(drip_closed, "a dripping client stays connected");
    assert!(sent < 400, "the whole body was accepted at a drip");
    assert!(
        status_line(&drip_bytes).contains(" 408 "),
        "{}",
        status_line(&drip_bytes)
    );
    // The server still serves everyone else.
    let (s, _) = h.get(HEALTHZ.path, None).await;
    assert_eq!(s, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_client_cannot_hold_shutdown() {
    let mut h = start(|e| e.header_read_timeout = Duration::from_secs(1)).await;
    let addr = h.handle().addr();
    let stalled = tokio::task::spawn_blocking(move || {
        let mut s = TcpStream::connect(addr).unwrap();
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            .unwrap();
        s
    })
    .await
    .unwrap();
    let handle = h.handle.take().unwrap();
    tokio::time::timeout(PATIENCE, handle.shutdown())
        .await
        .expect("shutdown waited for a stalled client")
        .unwrap();
    drop(stalled);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_cap_are_closed() {
    let h = start(|e| {
        e.max_connections = 2;
        e.header_read_timeout = PATIENCE;
    })
    .await;
    let addr = h.handle().addr();
    let (held, third) = tokio::task::spawn_blocking(move || {
        let held: Vec<TcpStream> = (0..2).map(|_| TcpStream::connect(addr).unwrap()).collect();
        // accepted after the two (one accept loop, in order), and closed at once
        let third = raw_exchange(addr, b"");
        (held, third)
    })
    .await
    .unwrap();
    assert!(third.1, "a connection over the cap stayed open");
    assert!(third.0.is_empty());
    drop(held);
    // Once they are gone the server takes new connections again.
    let start = Instant::now();
    loop {
        match h.http.get(h.u(HEALTHZ.path)).send().await {
            Ok(r) if r.status() == StatusCode::OK => break,
            _ => {
                assert!(start.elapsed() < PATIENCE, "no connection accepted again");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

/// A batch upload (streamed to its handler, not read before admission) whose body never
/// ends: its handler waits for it and holds a slot.
fn streaming_holder(addr: SocketAddr) -> TcpStream {
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(
        b"POST /v1/validator/batches HTTP/1.1\r\nHost: x\r\n\
          Content-Type: application/octet-stream\r\nContent-Length: 1000\r\n\r\nMCB",
    )
    .unwrap();
    s
}

/// A batch upload that holds its lane: it asks `Expect: 100-continue`, and the server says
/// continue only once the upload's handler reads the body, which is after it took a lane.
/// The body never comes; dropping the connection ends the upload.
fn lane_holder(addr: SocketAddr) -> TcpStream {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    s.write_all(
        b"POST /v1/validator/batches HTTP/1.1\r\nHost: x\r\n\
          Content-Type: application/octet-stream\r\nContent-Length: 1000\r\n\
          Expect: 100-continue\r\n\r\n",
    )
    .unwrap();
    let mut seen = Vec::new();
    let mut buf = [0u8; 256];
    while !String::from_utf8_lossy(&seen).contains("100 Continue\r\n\r\n") {
        let n = s.read(&mut buf).unwrap();
        assert!(
            n > 0,
            "closed before continue: {}",
            String::from_utf8_lossy(&seen)
        );
        seen.extend_from_slice(&buf[..n]);
    }
    s
}

/// A server with one upload lane (`per_address`: each address's share of uploads) and
/// patient waits, and a [`lane_holder`] on that lane.
async fn one_lane_held(per_address: Option<usize>) -> (Harness, TcpStream) {
    let h = start(|e| {
        e.max_uploads_in_flight = 1;
        e.max_uploads_per_address = per_address;
        e.upload_queue_wait = PATIENCE;
        e.body_read_timeout = PATIENCE;
        e.request_timeout = PATIENCE;
    })
    .await;
    let addr = h.handle().addr();
    let held = tokio::task::spawn_blocking(move || lane_holder(addr))
        .await
        .unwrap();
    (h, held)
}

/// A garbage batch upload (64 zero bytes): its answer.
async fn upload_garbage(h: &Harness) -> reqwest::Response {
    h.http
        .post(h.u("/v1/validator/batches"))
        .header("content-type", "application/octet-stream")
        .body(vec![0u8; 64])
        .send()
        .await
        .unwrap()
}

/// A JSON request whose body starts and then stops: announced small, announced large
/// (70,000 bytes), or chunked.
fn dribbling_holder(addr: SocketAddr, kind: usize) -> TcpStream {
    let framing = match kind % 3 {
        0 => "Content-Length: 100\r\n\r\n{\"phone\":".to_string(),
        1 => "Content-Length: 70000\r\n\r\n{\"phone\":".to_string(),
        _ => "Transfer-Encoding: chunked\r\n\r\n9\r\n{\"phone\":\r\n".to_string(),
    };
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(
        format!(
            "POST /v1/auth/otp HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n{framing}"
        )
        .as_bytes(),
    )
    .unwrap();
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_bodies_do_not_hold_in_flight_slots() {
    let h = start(|e| {
        e.max_in_flight = 2;
        e.body_read_timeout = PATIENCE;
        e.request_timeout = PATIENCE;
    })
    .await;
    let addr = h.handle().addr();
    // Nine clients start JSON bodies (small, large, chunked) and stop: each holds only its
    // own connection, since a body is read whole before its request takes a slot.
    let held = tokio::task::spawn_blocking(move || {
        (0..9)
            .map(|i| dribbling_holder(addr, i))
            .collect::<Vec<_>>()
    })
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    for i in 0..5 {
        let (s, v) = h.get(HEALTHZ.path, None).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let r = request_code(&h, 40 + i, None).await;
        assert_eq!(r.status(), StatusCode::ACCEPTED);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(held);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_uploads_run_in_their_own_lane() {
    const QUEUE: Duration = Duration::from_millis(400);
    let h = start(|e| {
        e.max_uploads_in_flight = 2;
        e.upload_queue_wait = QUEUE;
        e.max_in_flight = 8;
        e.body_read_timeout = PATIENCE;
        e.request_timeout = PATIENCE;
    })
    .await;
    let addr = h.handle().addr();
    let held = tokio::task::spawn_blocking(move || {
        (0..2).map(|_| streaming_holder(addr)).collect::<Vec<_>>()
    })
    .await
    .unwrap();
    // a third upload waits its queue time for a lane, then is 503 + Retry-After
    let t0 = Instant::now();
    let refused = loop {
        let asked = Instant::now();
        let r = upload_garbage(&h).await;
        if r.status() == StatusCode::SERVICE_UNAVAILABLE {
            assert!(asked.elapsed() >= QUEUE, "refused without waiting in line");
            break r;
        }
        assert!(
            t0.elapsed() < PATIENCE,
            "the two uploads never filled the lane"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(refused.headers().contains_key("retry-after"));
    let v: Value = refused.json().await.unwrap();
    assert_eq!(v["code"], "overloaded", "{v}");
    // everything else is served
    let (s, _) = h.get(HEALTHZ.path, None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        request_code(&h, 77, None).await.status(),
        StatusCode::ACCEPTED
    );
    drop(held);
}

/// A burst of uploads over the lanes waits in line (buses docking together) instead of
/// being bounced: the one that waits gets the lane as soon as a running upload ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_over_the_lanes_waits_for_one() {
    let (h, held) = one_lane_held(None).await;
    let h = Arc::new(h);
    let waiting = tokio::spawn({
        let h = Arc::clone(&h);
        async move { upload_garbage(&h).await.status() }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !waiting.is_finished(),
        "the second upload did not wait for the lane"
    );
    drop(held);
    let status = tokio::time::timeout(PATIENCE, waiting)
        .await
        .expect("the freed lane went to the waiting upload")
        .unwrap();
    // not refused for load: its (garbage) batch was read and judged
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

/// An upload whose answer the server gave up on (its request timed out, or its client went
/// away) still holds its lane while its ingest runs: otherwise a validator that sends and
/// disconnects could run any number of ingests at once, each holding its batch in memory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_holds_its_lane_until_its_ingest_ends() {
    let h = start(|e| {
        e.max_uploads_in_flight = 1;
        e.upload_queue_wait = Duration::from_millis(300);
        e.request_timeout = Duration::from_secs(1);
    })
    .await;
    // set up on the engine: a request over HTTP may take only 1 s here
    let engine = Arc::clone(h.handle().engine());
    let (batch, account) = tokio::task::spawn_blocking(move || {
        let v = Validator::register_on(&engine, 17);
        let mut rider = EngineRider::setup(&engine, &phone(9), 0);
        let time = ride_base(engine.now());
        let record = rider.nfc_record(&v, 1, 20_000, time);
        (v.batch(vec![record]), AccountId(rider.account_id))
    })
    .await
    .unwrap();
    // the ingest blocks: its rider's account is held (on SQLite, so is every write)
    let engine = Arc::clone(h.handle().engine());
    let (release, released) = std::sync::mpsc::channel::<()>();
    let (holding, held) = std::sync::mpsc::channel::<()>();
    let blocker = std::thread::spawn(move || {
        engine
            .store()
            .write_for([account], |_| -> Result<(), mancard_backend::StoreError> {
                holding.send(()).unwrap();
                released.recv().unwrap();
                Ok(())
            })
            .unwrap();
    });
    held.recv().unwrap();
    let (s, _) = h.upload(&batch).await;
    assert_eq!(s, StatusCode::REQUEST_TIMEOUT, "the ingest was not blocked");
    // the answer is gone; the ingest is not, and neither is its lane
    let r = upload_garbage(&h).await;
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    release.send(()).unwrap();
    blocker.join().unwrap();
    let t0 = Instant::now();
    while upload_garbage(&h).await.status() != StatusCode::BAD_REQUEST {
        assert!(t0.elapsed() < PATIENCE, "the lane never came back");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// One address (a rogue validator, or anyone: uploads are admitted before their signature is
/// read) cannot hold every lane and queue for each that frees up: past its share it is 429 at
/// once; and when as many wait as there are lanes, one more is 503 at once, not after a wait
/// it could never win.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_cannot_hold_the_upload_lanes_or_the_line() {
    let (h, held) = one_lane_held(Some(1)).await;
    let r = upload_garbage(&h).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(r.headers().contains_key("retry-after"));
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["code"], "rate_limited", "{v}");
    drop(held);

    // no per-address share: one lane and one place in line
    let (h, held) = one_lane_held(None).await;
    let h = Arc::new(h);
    // two more at once: one gets the place in line, the other finds it full and is 503 at
    // once, not after PATIENCE (which of the two is up to the scheduler)
    let answer = |h: Arc<Harness>| async move {
        let r = upload_garbage(&h).await;
        let (status, retry) = (r.status(), r.headers().contains_key("retry-after"));
        let v: Value = r.json().await.unwrap();
        (status, retry, v)
    };
    let mut two = vec![
        tokio::spawn(answer(Arc::clone(&h))),
        tokio::spawn(answer(Arc::clone(&h))),
    ];
    let t0 = Instant::now();
    let first = loop {
        if let Some(i) = two.iter().position(|t| t.is_finished()) {
            break two.remove(i);
        }
        assert!(
            t0.elapsed() < PATIENCE / 2,
            "a full line did not answer at once"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let (status, retry, v) = first.await.unwrap();
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{v}");
    assert!(retry);
    assert_eq!(v["code"], "overloaded", "{v}");
    let in_line = two.remove(0);
    assert!(!in_line.is_finished(), "the other did not wait in line");
    drop(held);
    let (status, _, v) = in_line.await.unwrap();
    assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_read_ahead_are_bounded_server_wide() {
    let h = start(|e| e.prebuffer_budget = 8 * 1024).await;
    // a 12 KiB body (valid JSON, padded) does not fit the read-ahead budget: 503, not a crash
    // and not a buffer without bound
    let padded = format!("{{\"phone\": \"{}\"{}}}", phone(78), " ".repeat(12 * 1024));
    let r = h
        .http
        .post(h.u(REQUEST_OTP.path))
        .header("content-type", "application/json")
        .body(padded)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(r.headers().contains_key("retry-after"));
    // a body over the JSON limit is refused as too large before it is read
    let h2 = Harness::start_with_config(|cfg| cfg.policy.json_body_limit = 1024).await;
    let r = h2
        .http
        .post(h2.u(REQUEST_OTP.path))
        .header("content-type", "application/json")
        .body(format!(
            "{{\"phone\": \"{}\"{}}}",
            phone(79),
            " ".repeat(4096)
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    // and small bodies still go through
    assert_eq!(
        request_code(&h, 79, None).await.status(),
        StatusCode::ACCEPTED
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_cannot_take_every_slot_or_connection() {
    // Requests at once: two per address. Loopback is a trusted proxy so that other
    // addresses can be named in X-Forwarded-For; the holders come without one (loopback).
    let h = start(|e| {
        e.max_in_flight_per_address = Some(2);
        e.body_read_timeout = PATIENCE;
        e.request_timeout = PATIENCE;
        e.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
    })
    .await;
    let addr = h.handle().addr();
    let held = tokio::task::spawn_blocking(move || {
        (0..2).map(|_| streaming_holder(addr)).collect::<Vec<_>>()
    })
    .await
    .unwrap();
    let t0 = Instant::now();
    loop {
        let r = h.http.get(h.u(HEALTHZ.path)).send().await.unwrap();
        if r.status() == StatusCode::TOO_MANY_REQUESTS {
            assert_rate_limited(r).await;
            break;
        }
        assert_eq!(r.status(), StatusCode::OK);
        assert!(
            t0.elapsed() < PATIENCE,
            "the two holders never filled the address's share"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Everyone else is served.
    let r = h
        .http
        .get(h.u(HEALTHZ.path))
        .header("x-forwarded-for", "198.51.100.7")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    drop(held);
    let t0 = Instant::now();
    while h.http.get(h.u(HEALTHZ.path)).send().await.unwrap().status() != StatusCode::OK {
        assert!(
            t0.elapsed() < PATIENCE,
            "the address's share was never freed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Connections at once: three per address; the fourth is closed as soon as it is
    // accepted, and the cap frees as connections close.
    let h = start(|e| {
        e.max_connections_per_address = Some(3);
        e.header_read_timeout = PATIENCE;
    })
    .await;
    let addr = h.handle().addr();
    let (held, fourth) = tokio::task::spawn_blocking(move || {
        let held: Vec<TcpStream> = (0..3).map(|_| TcpStream::connect(addr).unwrap()).collect();
        let fourth = raw_exchange(addr, b"");
        (held, fourth)
    })
    .await
    .unwrap();
    assert!(fourth.1, "a fourth connection from one address stayed open");
    assert!(fourth.0.is_empty());
    drop(held);
    let t0 = Instant::now();
    loop {
        match h.http.get(h.u(HEALTHZ.path)).send().await {
            Ok(r) if r.status() == StatusCode::OK => break,
            _ => {
                assert!(t0.elapsed() < PATIENCE, "no connection accepted again");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_edge_configuration_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = backend_config(&dir);
    cfg.edge.otp_global = Some(Rate::new(0, 1));
    let err = Backend::start(cfg).await.unwrap_err();
    assert!(err.to_string().contains("otp_global"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_is_shed_with_503_and_retry_after() {
    let h = start(|e| {
        e.max_in_flight = 1;
        e.shed_retry_after_secs = 3;
        e.body_read_timeout = PATIENCE;
        e.request_timeout = PATIENCE;
    })
    .await;
    let addr = h.handle().addr();
    // Holds the only slot: a streamed (chunked) body, which is not read before admission,
    // and its handler waits for the rest, which does not come.
    let holder = tokio::task::spawn_blocking(move || streaming_holder(addr))
        .await
        .unwrap();
    let start = Instant::now();
    loop {
        let resp = h.http.get(h.u(HEALTHZ.path)).send().await.unwrap();
        match resp.status() {
            StatusCode::OK => {
                assert!(start.elapsed() < PATIENCE, "the held slot never filled");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            StatusCode::SERVICE_UNAVAILABLE => {
                assert_eq!(resp.headers()["retry-after"], "3");
                assert_eq!(
                    resp.headers()["content-type"].to_str().unwrap(),
                    "application/problem+json"
                );
                let v: Value = resp.json().await.unwrap();
                assert_eq!(v["code"], "overloaded", "{v}");
                break;
            }
            other => panic!("load answered {other}"),
        }
    }
    // The slot frees when its client goes: the server serves again.
    drop(holder);
    let start = Instant::now();
    loop {
        let resp = h.http.get(h.u(HEALTHZ.path)).send().await.unwrap();
        match resp.status() {
            StatusCode::OK => break,
            StatusCode::SERVICE_UNAVAILABLE => {
                assert!(start.elapsed() < PATIENCE, "the slot was never freed");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            other => panic!("load answered {other}"),
        }
    }
}

async fn sync_empty(h: &Harness, token: &str, pseudonym: &str) -> reqwest::Response {
    let body = SyncRequest {
        pseudonym: pseudonym.into(),
        cursor: 0,
        entries: Vec::new(),
        verdict_cursor: 0,
    };
    h.http
        .post(h.u(WALLET_SYNC.path))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_flood_is_throttled_per_account() {
    let h = start(|e| {
        e.sync_per_account = Some(Rate::new(3, 3_600));
        e.credential_per_account = Some(Rate::new(4, 3_600));
    })
    .await;
    let a = h.login(&phone(1)).await;
    let b = h.login(&phone(2)).await;
    let (wa, _) = Wallet::provision(&h, &a).await; // 2 of a's 4 issuance calls
    let (wb, _) = Wallet::provision(&h, &b).await;
    // Strangers with made-up tokens are refused as strangers and burn nobody's budget.
    for _ in 0..10 {
        let r = sync_empty(&h, "not-a-session-token", &wa.pseudonym).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    }
    for _ in 0..3 {
        let r = sync_empty(&h, &a, &wa.pseudonym).await;
        assert_eq!(r.status(), StatusCode::OK);
    }
    for _ in 0..20 {
        assert_rate_limited(sync_empty(&h, &a, &wa.pseudonym).await).await;
    }
    // Another account is not affected.
    let r = sync_empty(&h, &b, &wb.pseudonym).await;
    assert_eq!(r.status(), StatusCode::OK);
    // Issuance: two more nonces, then refused.
    for _ in 0..2 {
        let r = h
            .http
            .post(h.u(CREDENTIAL_NONCE.path))
            .bearer_auth(&a)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
    }
    let r = h
        .http
        .post(h.u(CREDENTIAL_NONCE.path))
        .bearer_auth(&a)
        .send()
        .await
        .unwrap();
    assert_rate_limited(r).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn already_settled_entries_cost_no_signature_work() {
    let h = start(|_| {}).await;
    let token = h.login(&phone(7)).await;
    let (mut w, _) = Wallet::provision(&h, &token).await;
    let t0 = w.server_time;
    let entries: Vec<_> = (0..1_000i64)
        .map(|i| {
            let t = t0 + 60 * i;
            let pass = w.pass(t, 60, 0);
            w.log(t, 0, pass)
        })
        .collect();
    let engine = std::sync::Arc::clone(h.handle().engine());
    let before = engine.signature_checks();
    let first = w.sync_ok(&h, &entries).await;
    assert_eq!(first.taps.len(), 1_000);
    assert!(first.taps.iter().all(|t| t.status != TapStatus::Rejected));
    let checked = engine.signature_checks();
    assert_eq!(checked - before, 1_000, "each new entry is checked once");

    // The whole log again: answered in full, every entry a duplicate, no signature work.
    let (s, v) = w.sync_now(&h, &entries).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let again: SyncResponse = serde_json::from_value(v).unwrap();
    assert_eq!(again.taps.len(), 1_000);
    assert!(again.taps.iter().all(|t| t.status == TapStatus::Duplicate));
    assert_eq!(engine.signature_checks(), checked);

    // The log plus one new entry: exactly one check.
    let t = t0 + 60 * 1_000;
    let pass = w.pass(t, 60, 0);
    let mut more = entries.clone();
    more.push(w.log(t, 0, pass));
    let third = w.sync_ok(&h, &more[1..]).await;
    assert_eq!(third.taps.len(), 1_000);
    assert_eq!(engine.signature_checks(), checked + 1);

    // An old entry resent with other unsigned bytes (its time changed) but the stored tap's
    // proof byte for byte: what it signs, signature included, was verified when stored, so
    // it is a duplicate without signature work.
    let mut altered = entries[0].clone();
    altered.time += 1;
    let (s, v) = w.sync_now(&h, &[altered]).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let r: SyncResponse = serde_json::from_value(v).unwrap();
    assert_eq!(r.taps[0].status, TapStatus::Duplicate);
    assert_eq!(engine.signature_checks(), checked + 1);

    // The same signed tap under another signature (the malleated twin, which the curve
    // accepts) is not taken for the stored one: its evidence is checked, and refused.
    let mut twin = entries[1].clone();
    match &mut twin.proof {
        mancard_protocol::TapProof::Qr { pass } => {
            *pass = mancard_testkit::protocol::with_flipped_s(pass);
        }
        other => panic!("a pass was logged, not {other:?}"),
    }
    let (s, v) = w.sync_now(&h, &[twin]).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let r: SyncResponse = serde_json::from_value(v).unwrap();
    assert_eq!(r.taps[0].status, TapStatus::Rejected, "{r:?}");
    assert_eq!(engine.signature_checks(), checked + 2);
    assert!(h.audit().await.ok);
}

/// A tap its validator reported first costs its wallet's upload no signature work: the
/// stored proof is the entry's byte for byte. The same tap under the malleated twin of the
/// phone's signature is checked, and refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn taps_a_validator_reported_cost_the_wallet_s_upload_no_signature_work() {
    let h = start(|_| {}).await;
    let token = h.login(&phone(8)).await;
    h.topup(&token, 200_000, "edge-validator-first").await;
    let (mut w, _) = Wallet::provision(&h, &token).await;
    let v = Validator::register(&h, 4).await;
    let base = ride_base(w.server_time);
    let (r0, e0) = w.nfc_tap(&v, 1, 20_000, base);
    let (r1, e1) = w.nfc_tap(&v, 1, 20_000, base + 3_600);
    let b = h.upload_ok(&v.batch(vec![r0, r1])).await;
    assert!(
        b.records.iter().all(|r| r.status == TapStatus::Settled),
        "{b:?}"
    );
    let engine = std::sync::Arc::clone(h.handle().engine());
    let before = engine.signature_checks();
    let (_, e2) = w.nfc_tap(&v, 1, 20_000, base + 7_200);
    let synced = w.sync_ok(&h, &[e0.clone(), e1, e2]).await;
    let statuses: Vec<TapStatus> = synced.taps.iter().map(|t| t.status).collect();
    assert_eq!(
        statuses,
        [
            TapStatus::Duplicate,
            TapStatus::Duplicate,
            TapStatus::Settled
        ]
    );
    assert_eq!(synced.taps[0].fare, Some(20_000));
    assert_eq!(
        synced.chain.next_seq, 3,
        "the entries joined the stored chain"
    );
    assert_eq!(
        engine.signature_checks() - before,
        1,
        "only the new tap was verified"
    );

    let mut twin = e0;
    match &mut twin.proof {
        mancard_protocol::TapProof::Nfc { authorization, .. } => {
            authorization.signature = mancard_testkit::protocol::flip_s(&authorization.signature);
        }
        other => panic!("an NFC tap was logged, not {other:?}"),
    }
    let (s, body) = w.sync_now(&h, &[twin]).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let r: SyncResponse = serde_json::from_value(body).unwrap();
    assert_eq!(r.taps[0].status, TapStatus::Rejected, "{r:?}");
    assert_eq!(engine.signature_checks() - before, 2);
    assert!(h.audit().await.ok);
}

/// The global code budget pays for SMS: requests that send none (a malformed number, a
/// number still paced) must not spend it, or a few addresses sending garbage would keep every
/// rider from getting a code (attack review of #15).
#[tokio::test]
async fn requests_that_send_no_code_do_not_spend_the_global_budget() {
    let h = start(|e| e.otp_global = Some(Rate::new(3, 3_600))).await;
    let send = |phone: &'static str| {
        h.http
            .post(h.u(REQUEST_OTP.path))
            .json(&OtpRequest {
                phone: phone.into(),
            })
            .send()
    };
    for _ in 0..50 {
        assert_eq!(
            send("not a phone").await.unwrap().status(),
            StatusCode::BAD_REQUEST
        );
    }
    // one number's pacing: a burst of 3 sends, then refusals that send nothing
    let mut sent = 0;
    for _ in 0..10 {
        if send("09121112001").await.unwrap().status() == StatusCode::ACCEPTED {
            sent += 1;
        }
    }
    assert_eq!(sent, 3, "the number's own burst");
    // the budget (3) is spent by those 3 real sends; the next code sent finds it empty and
    // closes code requests, with Retry-After
    assert_eq!(
        send("09121112002").await.unwrap().status(),
        StatusCode::ACCEPTED
    );
    let r = send("09121112004").await.unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(r.headers().contains_key(reqwest::header::RETRY_AFTER));
}

/// ...and a budget that garbage could not drain still lets a rider in.
#[tokio::test]
async fn garbage_code_requests_leave_room_for_a_rider() {
    let h = start(|e| e.otp_global = Some(Rate::new(2, 3_600))).await;
    for _ in 0..100 {
        let r = h
            .http
            .post(h.u(REQUEST_OTP.path))
            .json(&OtpRequest {
                phone: "+1 415 555 0100".into(),
            })
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    }
    let r = h
        .http
        .post(h.u(REQUEST_OTP.path))
        .json(&OtpRequest {
            phone: "09121112003".into(),
        })
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
}
