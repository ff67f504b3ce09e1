//! Rating a fare day from its kept state (schema version 13): whatever order a day's rides
//! arrive in, and however the batches cut them, the account is charged what the rides cost
//! rated in time order from scratch.

use mancard_backend::settle::rate;
use mancard_protocol::{FareClass, RideState, Tariff};
use mancard_testkit::backend::{ride_base, Harness, Validator, Wallet};

/// A ride of the scenario: line, signed amount, time, counter.
type Ride = (u32, i64, i64, u32);

/// What `rides` cost rated in order (time, then counter) from scratch, as the tariff rates
/// them (the oracle).
fn cost_in_order(tariff: &Tariff, rides: &[Ride]) -> i64 {
    let mut sorted = rides.to_vec();
    sorted.sort_by_key(|r| (r.2, r.3));
    let mut state = RideState {
        fare_day: 0,
        spent_today: 0,
        last_ride: None,
    };
    sorted
        .iter()
        .map(|&(line, amount, time, _)| {
            let (fare, _, next) = rate(tariff, FareClass::Adult, Some(line), time, amount, &state);
            state = next;
            fare
        })
        .sum()
}

/// splitmix64: a fixed, reproducible order.
fn next(seed: &mut u64) -> u64 {
    *seed = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *seed;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Two fare days of rides (transfers, the daily cap, a line the tariff does not know), sent
/// in batches of one to four rides: first mostly in time order (the kept state is used), then
/// late rides that land before rides already rated (it is not, and is rebuilt). After every
/// batch the balance must be what the rides sent so far cost in time order. Fails if the kept
/// state stood for rides it does not cover, or kept a wrong total or transfer origin.
#[tokio::test]
async fn a_fare_day_in_any_arrival_order_costs_what_its_rides_cost_in_order() {
    let h = Harness::start().await;
    let v = Validator::register(&h, 1).await;
    for (rider, seed) in [16u64, 17, 18, 19].into_iter().enumerate() {
        rider_day(&h, &v, rider, seed).await;
    }
    same_second(&h, &v).await;
    h.audit().await;
}

/// Rides of one second are rated in counter order: the later counter's ride arrives first,
/// then the earlier one, which lands before the day's kept state although not before its
/// time.
async fn same_second(h: &Harness, v: &Validator) {
    let (token, mut w) = Wallet::funded(h, "+989120000069", 500_000).await;
    let tariff = Tariff::urmia_default();
    let t = ride_base(w.server_time);
    let (first, _) = w.nfc_tap(v, 1, 12_000, t);
    let (second, _) = w.nfc_tap(v, 2, 11_000, t);
    let (third, _) = w.nfc_tap(v, 10, 16_000, t + 600);
    let mut sent = Vec::new();
    for (ride, rec) in [
        ((2, 11_000, t, second.counter), second),
        ((1, 12_000, t, first.counter), first),
        ((10, 16_000, t + 600, third.counter), third),
    ] {
        assert_eq!(h.upload_ok(&v.batch(vec![rec])).await.settled, 1);
        sent.push(ride);
        let cost = cost_in_order(&tariff, &sent);
        assert_eq!(h.balance(&token).await, 500_000 - cost, "after {sent:?}");
    }
}

/// One rider's two days of rides, sent in the order `seed` draws.
async fn rider_day(h: &Harness, v: &Validator, rider: usize, mut seed: u64) {
    let phone = format!("+98912000006{rider}");
    let (token, mut w) = Wallet::funded(h, &phone, 500_000).await;
    let tariff = Tariff::urmia_default();
    let base = ride_base(w.server_time);
    // the amounts are below the fares, so the daily cap is reached after the sixth ride or
    // so: the rides before it and after it both count
    let lines = [(1, 12_000), (2, 11_000), (10, 16_000), (77, 9_000)];
    let mut rides: Vec<(Ride, mancard_protocol::TapRecord)> = Vec::new();
    for day in 0..2i64 {
        let mut time = base + day * 86_400;
        for _ in 0..9 {
            // 5 to 60 minutes apart (some within the transfer window, some not), or in the
            // same second (rides of one time are rated in counter order)
            let r = next(&mut seed);
            if !r.is_multiple_of(5) {
                time += 300 + i64::try_from(r % 3_300).unwrap();
            }
            let (line, amount) = lines[usize::try_from(next(&mut seed) % 4).unwrap()];
            let (rec, _) = w.nfc_tap(v, line, amount, time);
            rides.push(((line, amount, time, rec.counter), rec));
        }
    }
    // arrival order: the rides in time order with every third one held back, then the held
    // ones in reverse (each lands before rides already rated)
    let (mut order, mut held) = (Vec::new(), Vec::new());
    for (i, r) in rides.into_iter().enumerate() {
        if i % 3 == 1 {
            held.push(r);
        } else {
            order.push(r);
        }
    }
    order.extend(held.into_iter().rev());
    let mut sent: Vec<Ride> = Vec::new();
    let mut rest = order.as_slice();
    while !rest.is_empty() {
        let n = (1 + usize::try_from(next(&mut seed) % 4).unwrap()).min(rest.len());
        let (batch, tail) = rest.split_at(n);
        rest = tail;
        let b = h
            .upload_ok(&v.batch(batch.iter().map(|(_, r)| r.clone()).collect()))
            .await;
        assert_eq!(b.settled, n, "{b:?}");
        sent.extend(batch.iter().map(|(ride, _)| *ride));
        let by_day = |d: i64| -> Vec<Ride> {
            sent.iter()
                .copied()
                .filter(|r| tariff.fare_day(r.2) == tariff.fare_day(base) + d)
                .collect()
        };
        let cost = cost_in_order(&tariff, &by_day(0)) + cost_in_order(&tariff, &by_day(1));
        assert_eq!(
            h.balance(&token).await,
            500_000 - cost,
            "rider {rider}, after {} rides",
            sent.len()
        );
    }
    assert_eq!(sent.len(), 18);
    // each day's state is kept, up to its last ride in rating order (the rides above were
    // rated from it whenever they came after it)
    let engine = std::sync::Arc::clone(h.handle().engine());
    let day = tariff.fare_day(base);
    let kept = tokio::task::spawn_blocking(move || {
        let store = engine.store();
        let account = store
            .read(|tx| tx.account_by_phone(&phone))
            .unwrap()
            .unwrap();
        store
            .read(|tx| tx.day_states(&[(account.id, day), (account.id, day + 1)]))
            .unwrap()
            .into_values()
            .map(|k| (k.through.time, k.through.tap.counter))
            .collect::<std::collections::BTreeSet<_>>()
    })
    .await
    .unwrap();
    let last = |d: i64| {
        sent.iter()
            .filter(|r| tariff.fare_day(r.2) == day + d)
            .map(|r| (r.2, r.3))
            .max()
            .unwrap()
    };
    assert_eq!(kept, [last(0), last(1)].into_iter().collect());
}

/// A validator's report of taps their wallet reported first changes nothing rating reads: no
/// new verdict, and the transfer keeps its reason. Fails when the report queues the taps for
/// a verdict without re-rating their day (the reason goes, a verdict the rider did not need
/// is added).
#[tokio::test]
async fn a_validator_confirming_wallet_first_taps_adds_no_verdict() {
    let h = Harness::start().await;
    let v = Validator::register(&h, 1).await;
    let (token, mut w) = Wallet::funded(&h, "+989120000070", 500_000).await;
    let t = ride_base(w.server_time);
    let (r0, e0) = w.nfc_tap(&v, 1, 20_000, t);
    let (r1, e1) = w.nfc_tap(&v, 2, 20_000, t + 600);
    h.clock_past(t + 600);
    let s = w.sync_ok(&h, &[e0, e1]).await;
    let reasons: Vec<Option<String>> = s.verdicts.iter().map(|v| v.reason.clone()).collect();
    assert_eq!(reasons, [None, Some("transfer".to_string())], "{s:?}");
    let seen = s.verdicts.iter().map(|v| v.id).max().unwrap();
    assert_eq!(h.balance(&token).await, 500_000 - 25_000);
    let b = h.upload_ok(&v.batch(vec![r0, r1])).await;
    assert_eq!(b.duplicates, 2, "{b:?}");
    assert_eq!(
        b.records.iter().map(|r| r.fare).collect::<Vec<_>>(),
        [Some(20_000), Some(5_000)]
    );
    let s = w.sync_ok(&h, &[]).await;
    let new: Vec<_> = s.verdicts.iter().filter(|v| v.id > seen).collect();
    assert!(new.is_empty(), "{new:?}");
    assert_eq!(s.balance, 500_000 - 25_000);
    h.audit().await;
}

/// A ride after a day's kept state is rated from that state, not from the day's rides: with
/// the state saying the daily cap is spent, the next ride costs nothing. Fails if the state
/// is kept but never read (every ride rated from all of its day, which the other tests here
/// cannot tell from reading it).
#[tokio::test]
async fn a_ride_after_the_kept_state_is_rated_from_it() {
    let h = Harness::start().await;
    let v = Validator::register(&h, 1).await;
    let phone = "+989120000071".to_string();
    let (_, mut w) = Wallet::funded(&h, &phone, 500_000).await;
    let t = ride_base(w.server_time);
    let (r0, _) = w.nfc_tap(&v, 1, 20_000, t);
    let (r1, _) = w.nfc_tap(&v, 10, 30_000, t + 3_600);
    assert_eq!(
        h.upload_ok(&v.batch(vec![r0])).await.records[0].fare,
        Some(20_000)
    );
    // the state as kept, but with the day's cap spent (a state no honest rating keeps here)
    let engine = std::sync::Arc::clone(h.handle().engine());
    let day = Tariff::urmia_default().fare_day(t);
    tokio::task::spawn_blocking(move || {
        let store = engine.store();
        let account = store
            .read(|tx| tx.account_by_phone(&phone))
            .unwrap()
            .unwrap()
            .id;
        let mut kept = store.read(|tx| tx.day_states(&[(account, day)])).unwrap();
        let mut state = kept
            .remove(&(account, day))
            .expect("the day's state is kept");
        assert_eq!(state.spent, 20_000);
        state.spent = 60_000;
        store
            .write(|tx| tx.put_day_states(&[((account, day), state)]))
            .unwrap();
    })
    .await
    .unwrap();
    let b = h.upload_ok(&v.batch(vec![r1])).await;
    assert_eq!(b.records[0].fare, Some(0), "{b:?}");
}

/// A ride late in the evening reported after the next morning's first ride (its bus came
/// back online later): that ride is the morning ride's transfer origin, so the morning ride
/// is rated again. The rider pays what the two rides cost in time order, whichever bus
/// uploaded first. Fails when a change of a fare day never re-rates the next one.
#[tokio::test]
async fn a_late_ride_of_the_evening_before_is_the_next_morning_s_transfer_origin() {
    let h = Harness::start().await;
    let v = Validator::register(&h, 1).await;
    let (token, mut w) = Wallet::funded(&h, "+989120000072", 500_000).await;
    let tariff = Tariff::urmia_default();
    let base = ride_base(w.server_time);
    // 04:00 local, when the next fare day starts (ride_base is 10:00 local)
    let morning = base + 18 * 3600;
    assert_eq!(tariff.fare_day(morning), tariff.fare_day(base) + 1);
    assert_eq!(tariff.fare_day(morning - 1), tariff.fare_day(base));
    let (evening, _) = w.nfc_tap(&v, 1, 12_000, morning - 600);
    let (first, _) = w.nfc_tap(&v, 2, 11_000, morning + 600);
    let (second, _) = w.nfc_tap(&v, 10, 16_000, morning + 900);
    let rides = [
        (1, 12_000, morning - 600, evening.counter),
        (2, 11_000, morning + 600, first.counter),
        (10, 16_000, morning + 900, second.counter),
    ];
    // the morning's rides first (the first one then has no origin: full fare)
    let b = h.upload_ok(&v.batch(vec![first, second])).await;
    assert_eq!(b.settled, 2);
    assert_eq!(
        h.balance(&token).await,
        500_000 - cost_in_order(&tariff, &rides[1..])
    );
    // then the evening's: the first morning ride becomes a transfer
    assert_eq!(h.upload_ok(&v.batch(vec![evening])).await.settled, 1);
    let cost = cost_in_order(&tariff, &rides);
    assert!(
        cost < 12_000 + cost_in_order(&tariff, &rides[1..]),
        "a transfer"
    );
    assert_eq!(h.balance(&token).await, 500_000 - cost);
    h.audit().await;
}

/// The next morning's transfer origin is the evening's last ride in rating order whose line
/// the tariff knows, as rating the rides in order finds it:
/// - two rides of one second: the later counter is the later ride, though it was stored first;
/// - a ride on a line the tariff does not know is no origin (rating skips it within a day).
///
/// Each rider's evening is sent first, then the morning's ride on its own (the morning day
/// then reads its origin from the evening). Fails when the origin is the newest by time only
/// (on PostgreSQL, whose index gives ties in heap order), on any line, or never found.
#[tokio::test]
async fn the_next_morning_s_transfer_origin_is_the_evening_s_last_rated_ride() {
    let h = Harness::start().await;
    let v = Validator::register(&h, 1).await;
    // (line, amount, seconds before 04:00) of the evening, in the order sent; then the
    // morning's ride on line 2, 10 minutes after 04:00: a transfer unless the origin is on
    // line 2
    let cases: [&[(u32, i64, i64)]; 4] = [
        // one second: the later counter (line 2) is the origin, though stored first
        &[(2, 11_000, 600), (1, 12_000, 600)],
        // the lines swapped: line 1 is the origin, a transfer
        &[(1, 12_000, 600), (2, 11_000, 600)],
        // a line the tariff does not know is no origin: line 2 is
        &[(2, 11_000, 1_200), (77, 9_000, 600)],
        // line 1 before it: a transfer
        &[(1, 12_000, 1_200), (77, 9_000, 600)],
    ];
    let mut transfers = 0;
    for (i, evening) in cases.into_iter().enumerate() {
        let (token, mut w) = Wallet::funded(&h, &format!("+98912000008{i}"), 500_000).await;
        let tariff = Tariff::urmia_default();
        let morning = ride_base(w.server_time) + 18 * 3600;
        // signed last-sent first: the same-second rides get their counters in rating order,
        // and are sent later counter first
        let mut signed: Vec<(Ride, mancard_protocol::TapRecord)> = evening
            .iter()
            .rev()
            .map(|&(line, amount, before)| {
                let time = morning - before;
                let (rec, _) = w.nfc_tap(&v, line, amount, time);
                ((line, amount, time, rec.counter), rec)
            })
            .collect();
        signed.reverse();
        for (_, rec) in &signed {
            assert_eq!(h.upload_ok(&v.batch(vec![rec.clone()])).await.settled, 1);
        }
        let (first, _) = w.nfc_tap(&v, 2, 11_000, morning + 600);
        let mut rides: Vec<Ride> = signed.iter().map(|(r, _)| *r).collect();
        let evening_cost = cost_in_order(&tariff, &rides);
        rides.push((2, 11_000, morning + 600, first.counter));
        assert_eq!(h.upload_ok(&v.batch(vec![first])).await.settled, 1);
        let cost = cost_in_order(&tariff, &rides);
        assert_eq!(h.balance(&token).await, 500_000 - cost, "{rides:?}");
        transfers += usize::from(cost - evening_cost < 11_000);
    }
    assert_eq!(
        transfers, 2,
        "the oracle: two of the four mornings are transfers"
    );
    h.audit().await;
}

/// The evening's ride, reported by its wallet only, is the morning ride's transfer origin
/// until the validator reports its challenge torn (the gate stayed closed): the evening ride
/// is then not charged, and the morning ride goes back to its full fare. Fails when taking a
/// charge away near the end of a day does not re-rate the next one.
#[tokio::test]
async fn an_evening_ride_whose_gate_stayed_closed_is_no_transfer_origin() {
    let h = Harness::start().await;
    let v = Validator::register(&h, 1).await;
    let (token, mut w) = Wallet::funded(&h, "+989120000090", 500_000).await;
    let tariff = Tariff::urmia_default();
    let morning = ride_base(w.server_time) + 18 * 3600;
    let (evening, entry) = w.nfc_tap(&v, 1, 12_000, morning - 600);
    let (first, _) = w.nfc_tap(&v, 2, 11_000, morning + 600);
    let both = [
        (1, 12_000, morning - 600, evening.counter),
        (2, 11_000, morning + 600, first.counter),
    ];
    w.sync_ok(&h, &[entry]).await;
    assert_eq!(h.upload_ok(&v.batch(vec![first])).await.settled, 1);
    assert_eq!(
        h.balance(&token).await,
        500_000 - cost_in_order(&tariff, &both),
        "a transfer"
    );
    assert_eq!(h.upload_ok(&v.torn_batch(&[&evening], 10)).await.torn, 1);
    let full = cost_in_order(&tariff, &both[1..]);
    assert_eq!(full, 11_000);
    assert_eq!(
        h.balance(&token).await,
        500_000 - full,
        "the morning at full fare"
    );
    h.audit().await;
}
