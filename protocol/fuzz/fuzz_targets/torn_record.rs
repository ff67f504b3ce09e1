#![no_main]
//! TornRecord::decode never panics; whatever it accepts re-encodes to the same bytes, and its
//! challenge id is the challenge's.

use libfuzzer_sys::fuzz_target;
use mancard_protocol::*;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = TornRecord::decode(data) {
        assert_eq!(m.encode(), data, "non-canonical encoding accepted");
        assert_eq!(m.challenge_id(), m.challenge.id());
    }
});
