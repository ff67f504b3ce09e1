#![no_main]
//! ValidatorConfig::decode never panics; whatever it accepts re-encodes to the same bytes, its
//! lists are searchable and its time rules usable.

use libfuzzer_sys::fuzz_target;
use mancard_protocol::*;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = ValidatorConfig::decode(data) {
        assert_eq!(m.encode(), data, "non-canonical encoding accepted");
        for p in &m.body.deny_list {
            assert!(m.is_denied(p));
        }
        for v in &m.body.validator_deny_list {
            assert!(m.is_validator_denied(v.0));
        }
        assert!(m.body.time_rules.max_pass_lifetime_secs >= 1);
    }
});
