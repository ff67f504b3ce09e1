#![no_main]
//! CredentialCertificate::decode never panics; whatever it accepts re-encodes to the same bytes,
//! and its id is the same for the signature and its malleated twin.

use libfuzzer_sys::fuzz_target;
use mancard_protocol::*;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = CredentialCertificate::decode(data) {
        assert_eq!(m.encode(), data, "non-canonical encoding accepted");
        let twin = Signed {
            body: m.body.clone(),
            signature: Signature(m.signature.malleated()),
        };
        assert_eq!(twin.id(), m.id(), "the id covers the signature");
        let _ = m.signature_valid(&m.body.tap_public_key);
    }
});
