#![no_main]
//! ValidatorCertificate::decode never panics; whatever it accepts re-encodes to the same bytes,
//! keeps at most 3 strictly increasing lines, and its id ignores the signature.

use libfuzzer_sys::fuzz_target;
use mancard_protocol::*;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = ValidatorCertificate::decode(data) {
        assert_eq!(m.encode(), data, "non-canonical encoding accepted");
        assert!(m.body.lines.len() <= ValidatorCertBody::MAX_LINES);
        assert!(m.body.lines.windows(2).all(|w| w[0] < w[1]));
        assert!(m.body.valid_from < m.body.valid_until);
        let twin = Signed {
            body: m.body.clone(),
            signature: Signature(m.signature.malleated()),
        };
        assert_eq!(twin.id(), m.id(), "the id covers the signature");
        // A signature check on arbitrary bytes never panics.
        let _ = m.verify(&m.body.public_key);
    }
});
