//! The table: one row per figure, its peer measured in the same run, the ratio and the goal;
//! or one JSON object per row.

use serde_json::json;
use std::time::Duration;

/// How a row ended.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Status {
    Measured,
    /// Not measurable here (no pcscd): said, not failed.
    Skipped,
    /// The scenario or its peer failed: the run exits 1.
    Failed,
}

/// Which of the figure's values its ratio compares with the peer's.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Stat {
    Median,
    P99,
}

/// One row of the table.
pub(super) struct Row {
    pub(super) figure: &'static str,
    /// Microseconds.
    pub(super) median_us: Option<f64>,
    pub(super) p99_us: Option<f64>,
    pub(super) peer: String,
    pub(super) peer_us: Option<f64>,
    /// What `peer_us` is compared with (the peer is the same statistic of its samples).
    pub(super) ratio_of: Stat,
    pub(super) goal: &'static str,
    /// None when there is no pass/fail goal.
    pub(super) ok: Option<bool>,
    pub(super) samples: usize,
    pub(super) note: String,
    pub(super) status: Status,
}

impl Row {
    /// A row whose figure and peer were both measured: `subject` and `peer` samples in µs.
    pub(super) fn measured(
        figure: &'static str,
        subject: Vec<f64>,
        peer: (String, Vec<f64>),
        goal: &'static str,
    ) -> Self {
        let (subject, peer_samples) = (sorted(subject), sorted(peer.1));
        Self {
            figure,
            median_us: Some(pct(&subject, 0.5)),
            p99_us: (subject.len() >= 10).then(|| pct(&subject, 0.99)),
            peer: peer.0,
            peer_us: Some(pct(&peer_samples, 0.5)),
            ratio_of: Stat::Median,
            goal,
            ok: None,
            samples: subject.len(),
            note: String::new(),
            status: Status::Measured,
        }
    }

    /// A row whose figure is one value derived from samples of the same run (a difference
    /// of medians) against the peer's median, `samples` of each.
    pub(super) fn derived(
        figure: &'static str,
        value_us: f64,
        peer: (String, f64),
        goal: &'static str,
        samples: usize,
    ) -> Self {
        Self {
            figure,
            median_us: Some(value_us),
            p99_us: None,
            peer: peer.0,
            peer_us: Some(peer.1),
            ratio_of: Stat::Median,
            goal,
            ok: None,
            samples,
            note: String::new(),
            status: Status::Measured,
        }
    }

    /// [`Row::measured`] whose ratio is of the p99s: the figure's p99 against the peer
    /// samples' p99.
    pub(super) fn measured_p99(
        figure: &'static str,
        subject: Vec<f64>,
        peer: (String, Vec<f64>),
        goal: &'static str,
    ) -> Self {
        let peer_p99 = quantile(&peer.1, 0.99);
        Self {
            peer_us: Some(peer_p99),
            ratio_of: Stat::P99,
            ..Self::measured(figure, subject, (peer.0, peer.1), goal)
        }
    }

    /// figure / peer (of the medians, or of the p99s: `ratio_of`).
    pub(super) fn ratio(&self) -> Option<f64> {
        let figure = match self.ratio_of {
            Stat::Median => self.median_us,
            Stat::P99 => self.p99_us,
        };
        match (figure, self.peer_us) {
            (Some(m), Some(p)) if p > 0.0 => Some(m / p),
            _ => None,
        }
    }

    pub(super) fn judged(mut self, ok: Option<bool>, note: String) -> Self {
        self.ok = ok;
        self.note = note;
        self
    }

    fn unmeasured(figure: &'static str, peer: &str, goal: &'static str, note: String) -> Self {
        Self {
            figure,
            median_us: None,
            p99_us: None,
            peer: peer.into(),
            peer_us: None,
            ratio_of: Stat::Median,
            goal,
            ok: None,
            samples: 0,
            note,
            status: Status::Skipped,
        }
    }

    pub(super) fn skipped(figure: &'static str, peer: &str, goal: &'static str, why: &str) -> Self {
        Self::unmeasured(figure, peer, goal, format!("skipped: {why}"))
    }

    pub(super) fn failed(
        figure: &'static str,
        peer: &str,
        goal: &'static str,
        why: String,
    ) -> Self {
        let mut r = Self::unmeasured(figure, peer, goal, format!("FAILED: {why}"));
        r.status = Status::Failed;
        r.ok = Some(false);
        r
    }
}

pub(super) fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(i.min(sorted.len() - 1)).copied().unwrap_or(0.0)
}

/// The `p` quantile of unsorted samples.
pub(super) fn quantile(v: &[f64], p: f64) -> f64 {
    pct(&sorted(v.to_vec()), p)
}

fn sorted(mut v: Vec<f64>) -> Vec<f64> {
    v.sort_by(|a, b| a.total_cmp(b));
    v
}

pub(super) fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn fmt_us(v: Option<f64>) -> String {
    match v {
        None => "—".into(),
        Some(x) if x < 1_000.0 => format!("{x:.1} µs"),
        Some(x) if x < 1_000_000.0 => format!("{:.2} ms", x / 1000.0),
        Some(x) => format!("{:.2} s", x / 1e6),
    }
}

pub(super) fn print_rows(rows: &[Row], as_json: bool) {
    if as_json {
        for r in rows {
            println!(
                "{}",
                json!({"figure": r.figure, "median_us": r.median_us, "p99_us": r.p99_us,
                       "peer": r.peer, "peer_median_us": r.peer_us, "ratio": r.ratio(),
                       "ratio_of": match r.ratio_of { Stat::Median => "median", Stat::P99 => "p99" },
                       "goal": r.goal, "ok": r.ok, "samples": r.samples, "note": r.note,
                       "skipped": r.status == Status::Skipped,
                       "failed": r.status == Status::Failed})
            );
        }
        return;
    }
    println!();
    println!(
        "{:<50} {:>10} {:>10}  {:<34} {:>10} {:>7}  goal",
        "figure", "median", "p99", "peer (measured, same run)", "peer", "ratio"
    );
    for r in rows {
        println!(
            "{:<50} {:>10} {:>10}  {:<34} {:>10} {:>7}  {:<13} {}",
            r.figure,
            fmt_us(r.median_us),
            fmt_us(r.p99_us),
            r.peer,
            fmt_us(r.peer_us),
            r.ratio()
                .map(|x| format!("{x:.2}×"))
                .unwrap_or_else(|| "—".into()),
            r.goal,
            match (r.status, r.ok) {
                (Status::Failed, _) => "FAILED",
                (Status::Skipped, _) => "skipped",
                (_, Some(true)) => "ok",
                (_, Some(false)) if cfg!(debug_assertions) => "over (debug: not judged)",
                (_, Some(false)) => "OVER",
                (_, None) => "",
            }
        );
        if !r.note.is_empty() {
            println!("{:<50}   {}", "", r.note);
        }
    }
}
