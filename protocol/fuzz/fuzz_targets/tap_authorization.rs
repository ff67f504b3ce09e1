#![no_main]
//! TapAuthorization::decode never panics; whatever it accepts re-encodes to the same bytes. The
//! input's tail, when it is a challenge, is what the authorization is checked against.

use libfuzzer_sys::fuzz_target;
use mancard_protocol::*;

fuzz_target!(|data: &[u8]| {
    let (auth, rest) = data.split_at(data.len().min(TapAuthorization::LEN));
    if let Ok(m) = TapAuthorization::decode(auth) {
        assert_eq!(m.encode(), auth, "non-canonical encoding accepted");
        if let Ok(ch) = TapChallenge::decode(rest) {
            let proof = TapProof::Nfc {
                challenge: ch.clone(),
                authorization: m.clone(),
            };
            assert_eq!(proof.signed_bytes(), m.signed_bytes(&ch.body));
            let _ = proof.id();
        }
    }
    if let Ok(m) = TapAuthorization::decode(data) {
        assert_eq!(m.encode(), data, "non-canonical encoding accepted");
    }
});
