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

/// One row of the table.
pub(super) struct Row {
    pub(super) figure: &'static str,
    /// Microseconds.
    pub(super) median_us: Option<f64>,
    pub(super) p99_us: Option<f64>,
    pub(super) peer: String,
    pub(super) peer_us: Option<f64>,
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
            goal,
            ok: None,
            samples: subject.len(),
            note: String::new(),
            status: Status::Measured,
        }
    }

    /// figure / peer.
    pub(super) fn ratio(&self) -> Option<f64> {
        match (self.median_us, self.peer_us) {
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
