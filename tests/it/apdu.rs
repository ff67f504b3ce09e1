//! Malformed and random APDUs: the right status words, and a well-formed answer for any bytes.

use mancard_protocol::{CommandApdu, FareClass, ResponseApdu, StatusWord, TapAuthorization};
use mancard_testkit::wallet::*;
use mancard_testkit::{CertSpec, Issuer, T0};
use proptest::prelude::*;

fn sw(w: &mancard::Wallet, bytes: &[u8]) -> u16 {
    let r = w.process_apdu(bytes.to_vec());
    assert!(r.len() >= 2);
    u16::from_be_bytes([r[r.len() - 2], r[r.len() - 1]])
}

fn selected_wallet(d: &std::path::Path) -> mancard::Wallet {
    let w = open(d);
    provision(&w, &Issuer::new(1), CertSpec::default());
    set_clock(&w, T0);
    w
}

#[test]
fn header_and_length_errors() {
    let d = tempfile::tempdir().unwrap();
    let w = open(d.path());
    let issuer = Issuer::new(1);
    provision(&w, &issuer, CertSpec::default());
    set_clock(&w, T0);
    let reader = Reader::new(&issuer, READER_ID);
    let session = select(&w);
    let challenge = |fare| reader.challenge(session, T0, 1, fare, FareClass::Adult);
    let ch = challenge(100).encode();
    let auth = CommandApdu::authorize_tap(&challenge(100), Some(&reader.cert))
        .encode()
        .unwrap();
    let cached = CommandApdu::authorize_tap(&challenge(100), None)
        .encode()
        .unwrap();

    // truncated headers
    for n in 0..4 {
        assert_eq!(sw(&w, &auth[..n]), 0x6700, "{n} bytes");
    }
    // Lc larger or smaller than the data
    let mut short = auth.clone();
    short.truncate(auth.len() - 5);
    assert_eq!(sw(&w, &short), 0x6700);
    let mut long = auth.clone();
    long.extend_from_slice(&[0, 0]);
    assert_eq!(sw(&w, &long), 0x6700);
    // extended length
    let mut ext = vec![0x80, 0x20, 0, 0, 0, 0, ch.len() as u8];
    ext.extend_from_slice(&ch);
    assert_eq!(sw(&w, &ext), 0x6700);
    // oversized: more than 255 + 6 bytes can never be a short APDU
    assert_eq!(sw(&w, &vec![0x80; 300]), 0x6700);
    let mut big = vec![0x80, 0x20, 0, 0, 255];
    big.extend_from_slice(&[0u8; 255]);
    assert_eq!(sw(&w, &big), 0x6700, "data of the wrong size for P1=00");
    let mut mid = vec![0x80, 0x20, 1, 0, 200];
    mid.extend_from_slice(&[0u8; 200]);
    assert_eq!(sw(&w, &mid), 0x6700, "data of the wrong size for P1=01");
    // P1=00 with a certificate appended, P1=01 without one
    let mut p0 = CommandApdu::authorize_tap(&challenge(100), Some(&reader.cert));
    p0.p1 = 0;
    assert_eq!(sw(&w, &p0.encode().unwrap()), 0x6700);
    let mut p1 = CommandApdu::authorize_tap(&challenge(100), None);
    p1.p1 = 1;
    assert_eq!(sw(&w, &p1.encode().unwrap()), 0x6700);
    // Le too small for the answer
    let mut small_le = CommandApdu::authorize_tap(&challenge(100), Some(&reader.cert));
    small_le.le = Some(16);
    assert_eq!(sw(&w, &small_le.encode().unwrap()), 0x6700);
    small_le.le = Some(TapAuthorization::LEN as u16 - 1);
    assert_eq!(sw(&w, &small_le.encode().unwrap()), 0x6700);
    let mut rc = CommandApdu::read_certificate();
    rc.le = Some(100);
    assert_eq!(sw(&w, &rc.encode().unwrap()), 0x6700);
    rc.le = Some(256);
    rc.data = vec![1];
    assert_eq!(sw(&w, &rc.encode().unwrap()), 0x6700);
    // class, instruction, parameters
    let mut bad = auth.clone();
    bad[0] = 0x84;
    assert_eq!(sw(&w, &bad), 0x6E00);
    bad[0] = 0x00;
    assert_eq!(sw(&w, &bad), 0x6D00, "AUTHORIZE under the ISO class");
    let mut ins = auth.clone();
    ins[1] = 0xB0;
    assert_eq!(sw(&w, &ins), 0x6D00);
    let mut p = auth.clone();
    p[2] = 3;
    assert_eq!(sw(&w, &p), 0x6A86, "P1 other than 00, 01, 02");
    // P1 02 (recover) with a challenge this phone never signed: 6A88, and nothing written
    p[2] = 2;
    assert_eq!(sw(&w, &p), 0x6A88);
    let mut p2 = auth.clone();
    p2[3] = 1;
    assert_eq!(sw(&w, &p2), 0x6A86);
    let select_bytes = CommandApdu::select_mancard().encode().unwrap();
    let mut sp = select_bytes.clone();
    sp[3] = 0x0C;
    assert_eq!(sw(&w, &sp), 0x6A86);
    // still selected after all this: nothing was refused past the ISO checks
    assert_eq!(w.history(None, 10).unwrap().items.len(), 0);
    // malformed challenge data of the right size (bad tag, negative fare), a malformed
    // validator certificate (its lines out of order)
    let mut bad_tag = ch.clone();
    bad_tag[0] ^= 0xFF;
    let mut c = CommandApdu::authorize_tap(&challenge(100), None);
    c.data = bad_tag;
    assert_eq!(sw(&w, &c.encode().unwrap()), 0x6A80);
    let mut neg_bytes = challenge(100).encode();
    // the fare field sits 8 bytes before the class byte and the signature
    let at = neg_bytes.len() - 64 - 1 - 8;
    neg_bytes[at..at + 8].copy_from_slice(&(-1i64).to_be_bytes());
    c.data = neg_bytes;
    assert_eq!(sw(&w, &c.encode().unwrap()), 0x6A80);
    let lines = issuer.validator_cert_with(8, &reader.key.public_key(), vec![1, 2], T0 - 1, T0 + 1);
    let mut bytes = challenge(100).encode();
    let mut cert = lines.encode();
    let n = cert.len();
    cert[n - 64 - 8..n - 64].copy_from_slice(&[0, 0, 0, 2, 0, 0, 0, 1]);
    bytes.extend_from_slice(&cert);
    let mut c1 = CommandApdu::authorize_tap(&challenge(100), Some(&reader.cert));
    c1.data = bytes;
    assert_eq!(sw(&w, &c1.encode().unwrap()), 0x6A80);
    assert_eq!(
        w.history(None, 10).unwrap().items.len(),
        3,
        "each is in the history"
    );
    // the well-formed ones go through: inline, then cached
    assert_eq!(sw(&w, &auth), 0x9000);
    assert_eq!(sw(&w, &cached), 0x9000);
    assert_eq!(w.verify_tap_log().unwrap(), 2);
    w.deactivated();
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2_000, ..ProptestConfig::default() })]

    /// Any byte string gets a response: data ≤ 256 bytes then a status word; data only with 9000.
    #[test]
    fn any_bytes_get_a_well_formed_response(
        prefix in prop::sample::select(vec![
            vec![], vec![0x00, 0xA4, 0x04, 0x00], vec![0x80, 0x10, 0x00, 0x00],
            vec![0x80, 0x20, 0x00, 0x00], vec![0x80, 0x20, 0x01, 0x00],
        ]),
        body in prop::collection::vec(any::<u8>(), 0..300),
        select_first in any::<bool>(),
    ) {
        let w = WALLET.with(|w| w.clone());
        if select_first {
            w.process_apdu(CommandApdu::select_mancard().encode().unwrap());
        }
        let mut bytes = prefix;
        bytes.extend_from_slice(&body);
        let resp = w.process_apdu(bytes.clone());
        let r = ResponseApdu::parse(&resp).unwrap();
        prop_assert!(r.data.len() <= 256);
        prop_assert!(!matches!(r.sw, StatusWord::Other(_)), "unknown status {:04X}", r.sw.code());
        if r.sw != StatusWord::Ok {
            prop_assert!(r.data.is_empty());
        }
        if CommandApdu::parse(&bytes).is_err() {
            prop_assert_eq!(r.sw, StatusWord::WrongLength);
        }
        w.deactivated();
    }
}

thread_local! {
    static DIR: tempfile::TempDir = tempfile::tempdir().unwrap();
    static WALLET: std::sync::Arc<mancard::Wallet> =
        DIR.with(|d| std::sync::Arc::new(selected_wallet(d.path())));
}
