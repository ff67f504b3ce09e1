//! The figures of a load run: per request kind (goose's per-request metrics) the count,
//! errors, 5xx answers, rate and p50/p95/p99 latency, and the totals; as a table or one JSON
//! document.

use goose::metrics::GooseMetrics;
use serde::Serialize;
use std::collections::BTreeMap;

/// One request kind's figures.
#[derive(Debug, Clone, Serialize)]
pub(super) struct Kind {
    pub(super) name: String,
    pub(super) count: u64,
    pub(super) errors: u64,
    pub(super) status_5xx: u64,
    pub(super) per_second: f64,
    pub(super) p50_ms: u64,
    pub(super) p95_ms: u64,
    pub(super) p99_ms: u64,
    pub(super) max_ms: u64,
}

/// The whole run's figures.
#[derive(Debug, Clone, Serialize)]
pub(super) struct Figures {
    pub(super) seconds: u64,
    pub(super) kinds: Vec<Kind>,
    pub(super) total: Kind,
}

/// The smallest recorded time (ms) at or below which `p` of the requests answered, from
/// goose's histogram (time → count; times over 100 ms are rounded by goose).
pub(super) fn percentile(times: &BTreeMap<usize, usize>, p: f64) -> u64 {
    let total: usize = times.values().sum();
    if total == 0 {
        return 0;
    }
    // ceil(p × total) as a whole count, without floats touching the count itself
    let want = ((p * total as f64).ceil() as usize).clamp(1, total);
    let mut seen = 0usize;
    for (&ms, &n) in times {
        seen = seen.saturating_add(n);
        if seen >= want {
            return ms as u64;
        }
    }
    times.keys().next_back().map_or(0, |&ms| ms as u64)
}

fn kind(
    name: String,
    times: &BTreeMap<usize, usize>,
    (count, errors, s5xx, max): (u64, u64, u64, u64),
    secs: u64,
) -> Kind {
    Kind {
        name,
        count,
        errors,
        status_5xx: s5xx,
        per_second: (count as f64 / secs.max(1) as f64 * 10.0).round() / 10.0,
        p50_ms: percentile(times, 0.50),
        p95_ms: percentile(times, 0.95),
        p99_ms: percentile(times, 0.99),
        max_ms: max,
    }
}

/// The figures of goose's metrics.
pub(super) fn figures(m: &GooseMetrics) -> Figures {
    let secs = m.duration as u64;
    let mut kinds = Vec::new();
    let mut all_times: BTreeMap<usize, usize> = BTreeMap::new();
    let (mut count, mut errors, mut s5xx, mut max) = (0u64, 0u64, 0u64, 0u64);
    let mut aggregates: Vec<_> = m.requests.values().collect();
    aggregates.sort_by(|a, b| a.path.cmp(&b.path));
    for a in aggregates {
        let c = (a.success_count + a.fail_count) as u64;
        let e = a.fail_count as u64;
        let five: u64 = a
            .status_code_counts
            .iter()
            .filter(|(code, _)| (500..600).contains(*code))
            .map(|(_, n)| *n as u64)
            .sum();
        let mx = a.raw_data.maximum_time as u64;
        for (&ms, &n) in &a.raw_data.times {
            *all_times.entry(ms).or_default() += n;
        }
        count += c;
        errors += e;
        s5xx += five;
        max = max.max(mx);
        kinds.push(kind(
            a.path.clone(),
            &a.raw_data.times,
            (c, e, five, mx),
            secs,
        ));
    }
    let total = kind("total".into(), &all_times, (count, errors, s5xx, max), secs);
    Figures {
        seconds: secs,
        kinds,
        total,
    }
}

/// The table, one line per request kind and the totals.
pub(super) fn table(f: &Figures) -> String {
    let mut out = format!(
        "{:<18} {:>8} {:>7} {:>5} {:>8} {:>7} {:>7} {:>7} {:>7}\n",
        "request", "count", "errors", "5xx", "req/s", "p50 ms", "p95 ms", "p99 ms", "max ms"
    );
    for k in f.kinds.iter().chain(std::iter::once(&f.total)) {
        out.push_str(&format!(
            "{:<18} {:>8} {:>7} {:>5} {:>8.1} {:>7} {:>7} {:>7} {:>7}\n",
            k.name,
            k.count,
            k.errors,
            k.status_5xx,
            k.per_second,
            k.p50_ms,
            k.p95_ms,
            k.p99_ms,
            k.max_ms
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_walk_the_histogram() {
        let times: BTreeMap<usize, usize> =
            [(1, 50), (2, 45), (10, 4), (200, 1)].into_iter().collect();
        assert_eq!(percentile(&times, 0.50), 1);
        assert_eq!(percentile(&times, 0.95), 2);
        assert_eq!(percentile(&times, 0.99), 10);
        assert_eq!(percentile(&times, 1.0), 200);
        assert_eq!(percentile(&BTreeMap::new(), 0.5), 0);
    }
}
