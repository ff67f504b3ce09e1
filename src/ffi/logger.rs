//! Routes the core's `tracing` events to a logger the app implements (Logcat on Android,
//! `os_log` on iOS). The core never logs secrets (keys, tokens, sealed blobs, signatures), so
//! whatever reaches the app's logger is safe to write to the system log.
//!
//! A minimal `tracing::Subscriber` is installed as the global default on the first
//! [`set_logger`] call; later calls swap the logger or the level. If the host process already
//! installed another global subscriber (a Rust host), events keep going there.

use std::cell::Cell;
use std::fmt::Write as _;
use std::sync::{Arc, Once, RwLock};
use tracing::field::{Field, Visit};
use tracing::span;
use tracing::subscriber::Interest;
use tracing::{Event, Metadata};

/// Severity, most severe first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, uniffi::Enum)]
pub enum LogLevel {
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

impl From<&tracing::Level> for LogLevel {
    fn from(l: &tracing::Level) -> Self {
        match *l {
            tracing::Level::ERROR => Self::Error,
            tracing::Level::WARN => Self::Warn,
            tracing::Level::INFO => Self::Info,
            tracing::Level::DEBUG => Self::Debug,
            _ => Self::Trace,
        }
    }
}

/// One log event.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct LogRecord {
    pub level: LogLevel,
    /// Rust module that logged it ("mancard::wallet"): a Logcat tag or an os_log category.
    pub target: String,
    /// The message, with any structured fields appended as ` key=value`.
    pub message: String,
}

/// Implemented by the app. Called on whichever thread logged (the NFC binder thread, a tokio
/// worker...): it must be quick and thread-safe and must not call back into the wallet.
#[uniffi::export(with_foreign)]
pub trait Logger: Send + Sync {
    fn log(&self, record: LogRecord);
}

struct Installed {
    logger: Arc<dyn Logger>,
    max_level: LogLevel,
}

static LOGGER: RwLock<Option<Installed>> = RwLock::new(None);
static INSTALL: Once = Once::new();

thread_local! {
    /// Set while this thread is inside the app's logger (no re-entry).
    static IN_LOGGER: Cell<bool> = const { Cell::new(false) };
}

/// Sends ManCard's events at `max_level` and more severe to `logger` (other crates' events:
/// warnings and errors only); `None` stops forwarding.
#[uniffi::export]
pub fn set_logger(logger: Option<Arc<dyn Logger>>, max_level: LogLevel) {
    INSTALL.call_once(|| {
        if tracing::subscriber::set_global_default(Bridge).is_err() {
            // Another subscriber owns the process (a Rust host app); leave it in charge.
        }
    });
    let mut slot = LOGGER.write().unwrap_or_else(|p| p.into_inner());
    *slot = logger.map(|logger| Installed { logger, max_level });
    drop(slot);
    tracing::callsite::rebuild_interest_cache();
}

/// The most verbose level forwarded for `target`: the app's choice for ManCard's own events;
/// at most warnings from dependencies (an HTTP stack's debug and trace events are noise, and
/// only ManCard's own log points are reviewed for secrets).
fn limit(target: &str, max_level: LogLevel) -> LogLevel {
    if target.starts_with("mancard") {
        max_level
    } else {
        max_level.min(LogLevel::Warn)
    }
}

fn wanted(target: &str, level: LogLevel) -> bool {
    let slot = LOGGER.read().unwrap_or_else(|p| p.into_inner());
    slot.as_ref()
        .is_some_and(|i| level <= limit(target, i.max_level))
}

struct Bridge;

#[derive(Default)]
struct MessageVisitor {
    message: String,
    fields: String,
}

impl Visit for MessageVisitor {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            let _ = write!(self.fields, " {}={}", field.name(), value);
        }
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            let _ = write!(self.fields, " {}={:?}", field.name(), value);
        }
    }
}

impl tracing::Subscriber for Bridge {
    fn register_callsite(&self, _: &'static Metadata<'static>) -> Interest {
        // The level can change at runtime: ask `enabled` every time.
        Interest::sometimes()
    }
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.is_event() && wanted(metadata.target(), metadata.level().into())
    }
    fn new_span(&self, _: &span::Attributes<'_>) -> span::Id {
        span::Id::from_u64(1)
    }
    fn record(&self, _: &span::Id, _: &span::Record<'_>) {}
    fn record_follows_from(&self, _: &span::Id, _: &span::Id) {}
    fn event(&self, event: &Event<'_>) {
        if IN_LOGGER.with(Cell::get) {
            return;
        }
        let meta = event.metadata();
        let logger = {
            let slot = LOGGER.read().unwrap_or_else(|p| p.into_inner());
            match slot.as_ref() {
                Some(i) if LogLevel::from(meta.level()) <= limit(meta.target(), i.max_level) => {
                    Arc::clone(&i.logger)
                }
                _ => return,
            }
        };
        let mut v = MessageVisitor::default();
        event.record(&mut v);
        v.message.push_str(&v.fields);
        let record = LogRecord {
            level: meta.level().into(),
            target: meta.target().to_string(),
            message: v.message,
        };
        IN_LOGGER.with(|f| f.set(true));
        // A logger that throws must not take the wallet down with it.
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| logger.log(record)));
        IN_LOGGER.with(|f| f.set(false));
    }
    fn enter(&self, _: &span::Id) {}
    fn exit(&self, _: &span::Id) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dependencies_are_capped_at_warnings() {
        assert_eq!(limit("mancard::wallet", LogLevel::Trace), LogLevel::Trace);
        assert_eq!(limit("mancard", LogLevel::Debug), LogLevel::Debug);
        assert_eq!(limit("hyper::proto", LogLevel::Trace), LogLevel::Warn);
        assert_eq!(limit("reqwest", LogLevel::Error), LogLevel::Error);
    }
}
