#![no_main]
//! BoardingPass::from_text and Base45 never panic; accepted text round-trips.

use libfuzzer_sys::fuzz_target;
use mancard_protocol::{base45, BoardingPass};

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(b) = base45::decode(s) {
        assert_eq!(base45::encode(&b), s, "non-canonical Base45 accepted");
    }
    // Also behind the right prefix, so the fuzzer need not find it (and behind v1's, refused).
    for text in [s.to_string(), format!("MC2:{s}")] {
        if let Ok(p) = BoardingPass::from_text(&text) {
            assert_eq!(p.to_text(), text.trim_matches(['\r', '\n', '\t']));
        }
    }
    assert!(BoardingPass::from_text(&format!("MC1:{s}")).is_err());
});
