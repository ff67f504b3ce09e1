//! The demo's voice: the story as numbered text steps, or the same events as JSON lines, and
//! the formatters the sentences use (money, local times, durations).

use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// Iran Standard Time, for display.
const IRST: i32 = 12_600;

/// Writes the story (text) or the events (JSON lines).
pub(super) struct Out {
    pub(super) json: bool,
    step: u32,
    pub(super) started: Instant,
}

impl Out {
    pub(super) fn new(json: bool) -> Self {
        Self {
            json,
            step: 0,
            started: Instant::now(),
        }
    }

    /// A numbered step: a title, its duration, narrative lines and the event's data.
    pub(super) fn step(
        &mut self,
        name: &str,
        title: &str,
        took: Duration,
        lines: &[String],
        data: Value,
    ) {
        self.step += 1;
        let ms = took.as_secs_f64() * 1000.0;
        if self.json {
            let mut ev = json!({"event": "step", "n": self.step, "step": name, "title": title,
                                "ms": round3(ms)});
            merge(&mut ev, data);
            println!("{ev}");
        } else {
            println!("\n{:>2}. {title}  [{}]", self.step, fmt_ms(ms));
            for l in lines {
                println!("    {l}");
            }
        }
    }

    /// A free-form note (text only; JSON gets it as a `note` event).
    pub(super) fn note(&self, text: &str) {
        if self.json {
            println!("{}", json!({"event": "note", "text": text}));
        } else {
            println!("    {text}");
        }
    }

    /// Raw text (the QR drawing); JSON mode skips it.
    pub(super) fn raw(&self, text: &str) {
        if !self.json {
            println!("{text}");
        }
    }
}

fn merge(into: &mut Value, from: Value) {
    if let (Value::Object(a), Value::Object(b)) = (into, from) {
        for (k, v) in b {
            a.insert(k, v);
        }
    }
}

pub(super) fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

pub(super) fn fmt_ms(ms: f64) -> String {
    if ms < 1.0 {
        format!("{:.0} µs", ms * 1000.0)
    } else if ms < 100.0 {
        format!("{ms:.1} ms")
    } else {
        format!("{ms:.0} ms")
    }
}

/// `20,000 rials (2,000 toman)`.
pub(super) fn money(rials: i64) -> String {
    mancard_validator::money(rials)
}

/// `20,000 rials` (the statement's columns).
pub(super) fn rials(a: i64) -> String {
    let m = money(a);
    m.split(" (").next().map(str::to_string).unwrap_or(m)
}

pub(super) fn local(t: i64) -> String {
    mancard::format_local_time(t, IRST)
}

pub(super) fn hhmm(t: i64) -> String {
    chrono::DateTime::from_timestamp(t + i64::from(IRST), 0)
        .map(|d| d.format("%H:%M").to_string())
        .unwrap_or_else(|| t.to_string())
}

/// "entry" or "entries".
pub(super) fn ies(n: u64) -> &'static str {
    if n == 1 {
        "y"
    } else {
        "ies"
    }
}

/// "" or "s".
pub(super) fn plural(n: impl Into<u64>) -> &'static str {
    if n.into() == 1 {
        ""
    } else {
        "s"
    }
}
