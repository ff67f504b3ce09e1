#![no_main]
//! TapChallenge::decode never panics; whatever it accepts re-encodes to the same bytes, and
//! checking its (validator) signature never panics.

use libfuzzer_sys::fuzz_target;
use mancard_protocol::*;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = TapChallenge::decode(data) {
        assert_eq!(m.encode(), data, "non-canonical encoding accepted");
        assert_eq!(data.len(), TapChallenge::LEN);
        let _ = m.body.digest();
        let _ = m.signature.is_low_s();
    }
});
