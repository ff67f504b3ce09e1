#![no_main]
//! `mancard inspect`'s decoder: any bytes, as bytes, as hex text and as pass text, never panic,
//! and describing a decoded message never panics.

use libfuzzer_sys::fuzz_target;
use mancard_protocol::inspect::{decode_any, decode_bytes};

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = decode_bytes(data) {
        let _ = m.describe();
        let _ = m.issuer_key_id();
    }
    if let Ok(s) = std::str::from_utf8(data) {
        if let Ok(m) = decode_any(s) {
            let _ = m.describe();
        }
    }
    let _ = decode_any(&hex_upper(data));
});

fn hex_upper(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02X} ")).collect()
}
