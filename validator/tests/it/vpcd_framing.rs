//! The vpcd card emulator against a fake vpcd (a loopback TcpListener speaking vpcd's framing),
//! so the framing is tested without pcscd; and random bytes into the validator's parsers.

use mancard_testkit::validator::{timeless_issuer, validator_in_memory};
use mancard_testkit::T0;
use mancard_validator::vpcd::{FnCard, ServeEnd, VpcdCard, CONTACTLESS_ATR};
use mancard_validator::TrustAnchor;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn send(s: &mut std::net::TcpStream, payload: &[u8]) {
    let mut f = (payload.len() as u16).to_be_bytes().to_vec();
    f.extend_from_slice(payload);
    s.write_all(&f).unwrap();
}

fn recv(s: &mut std::net::TcpStream) -> Vec<u8> {
    let mut len = [0u8; 2];
    s.read_exact(&mut len).unwrap();
    let mut b = vec![0u8; u16::from_be_bytes(len) as usize];
    s.read_exact(&mut b).unwrap();
    b
}

#[test]
fn emulator_speaks_vpcd_framing() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let log = Arc::new(Mutex::new(Vec::<String>::new()));
    let (l1, l2) = (log.clone(), log.clone());
    let card = std::thread::spawn(move || {
        let mut conn = VpcdCard::connect(&addr).unwrap();
        let mut c = FnCard {
            on_apdu: move |a: &[u8]| {
                l1.lock().unwrap().push(format!("apdu {}", hex::encode(a)));
                if a.len() == 300 {
                    return vec![]; // a broken handler: the emulator still answers a status word
                }
                let mut r = a.to_vec();
                r.extend_from_slice(&[0x90, 0x00]);
                r
            },
            on_deactivated: move || l2.lock().unwrap().push("deactivated".into()),
        };
        let stop = AtomicBool::new(false);
        let end = conn
            .serve(&mut c, &stop, Some(Duration::from_millis(100)))
            .unwrap();
        (end, conn.stats)
    });
    let (mut s, _) = l.accept().unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    send(&mut s, &[0x01]); // power on: no answer
    send(&mut s, &[0x04]); // get ATR
    assert_eq!(recv(&mut s), CONTACTLESS_ATR.to_vec());
    // Two frames in one write, and one split across writes.
    let mut both = vec![0, 4, 0x00, 0xA4, 0x04, 0x00, 0, 5];
    both.extend_from_slice(&[0x80, 0x10, 0x00, 0x00, 0x00]);
    s.write_all(&both).unwrap();
    assert_eq!(recv(&mut s), vec![0x00, 0xA4, 0x04, 0x00, 0x90, 0x00]);
    assert_eq!(recv(&mut s), vec![0x80, 0x10, 0x00, 0x00, 0x00, 0x90, 0x00]);
    s.write_all(&[0, 4, 0x80]).unwrap();
    std::thread::sleep(Duration::from_millis(20));
    s.write_all(&[0x20, 0x00, 0x00]).unwrap();
    assert_eq!(recv(&mut s), vec![0x80, 0x20, 0x00, 0x00, 0x90, 0x00]);
    send(&mut s, &[0xAB; 300]);
    assert_eq!(recv(&mut s), vec![0x6F, 0x00]);
    send(&mut s, &[0x07]); // unknown control byte: ignored
    send(&mut s, &[0x02]); // reset: the field dropped → deactivated, then lifted after 100 ms
    let (end, stats) = card.join().unwrap();
    assert_eq!(end, ServeEnd::Lifted);
    assert_eq!((stats.apdus, stats.resets), (4, 1));
    let log = log.lock().unwrap();
    assert_eq!(log.last().unwrap(), "deactivated");
}

#[test]
fn emulator_reports_vpcd_closing() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let h = std::thread::spawn(move || {
        let mut conn = VpcdCard::connect(&addr).unwrap();
        let mut c = FnCard::new(|_: &[u8]| vec![0x90, 0x00]);
        conn.serve(&mut c, &AtomicBool::new(false), None).unwrap()
    });
    let (mut s, _) = l.accept().unwrap();
    send(&mut s, &[0x00]);
    drop(s);
    assert_eq!(h.join().unwrap(), ServeEnd::Closed);
}

#[test]
fn parsers_never_panic_on_random_bytes() {
    let issuer = timeless_issuer(1);
    let mut v = validator_in_memory(&issuer, T0);
    let mut seed = 0x9E37_79B9_7F4A_7C15_u64;
    let mut rnd = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let good_bundle = issuer.bundle(9, T0, vec![]).encode();
    for i in 0..3_000 {
        let len = (rnd() % 400) as usize;
        let mut b: Vec<u8> = (0..len).map(|_| rnd() as u8).collect();
        if i % 3 == 0 && !good_bundle.is_empty() {
            // Mutate a valid bundle instead.
            b = good_bundle.clone();
            let n = (rnd() % 4 + 1) as usize;
            for _ in 0..n {
                let at = (rnd() as usize) % b.len();
                b[at] ^= (rnd() as u8) | 1;
            }
        }
        assert!(v.install_config(&b).is_err());
        let _ = TrustAnchor::parse(&String::from_utf8_lossy(&b));
        let _ = mancard_validator::http::parse_response(&b);
        let text = format!("MC1:{}", String::from_utf8_lossy(&b));
        assert!(!v.verify_qr(&text).decision.is_accepted());
    }
    assert_eq!(v.config().unwrap().body.bundle_version, 1);
}
