//! Taps for the online tests: the phone's clock agreeing with the validator's, whatever time
//! the test rides at (the phone refuses a validator clock more than the bundle's tap window
//! away from its own, so a test that rides hours ahead moves the phone's clock with it, then
//! puts it back).

use mancard::Wallet;
use mancard_protocol::StatusWord;
use mancard_testkit::online::{tap, Validator};
use mancard_testkit::wallet::set_clock;

/// One tap at `v` on `line` at `time`, the phone's clock at `time` for it.
pub fn tap_at(w: &Wallet, v: &mut Validator, line: u32, time: i64) -> StatusWord {
    let offset = w.server_time_offset();
    set_clock(w, time);
    let sw = tap(w, v, line, time);
    w.set_server_time_offset(offset).unwrap();
    sw
}

/// `n` taps over lines 1/2/10, `spacing` seconds apart from `start`, each with the phone's
/// clock agreeing; all must succeed.
pub fn clocked_taps(w: &Wallet, v: &mut Validator, n: usize, start: i64, spacing: i64) {
    for i in 0..n {
        let t = start + i as i64 * spacing;
        let sw = tap_at(w, v, [1, 2, 10][i % 3], t);
        assert_eq!(sw, StatusWord::Ok, "tap {i} refused");
    }
}

/// Every history item, newest first, through every page.
pub fn whole_history(w: &Wallet) -> Vec<mancard::HistoryItem> {
    let (mut items, mut cursor) = (Vec::new(), None);
    loop {
        let page = w.history(cursor, 500).unwrap();
        items.extend(page.items);
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => return items,
        }
    }
}
