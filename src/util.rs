//! Small helpers: poison-tolerant locking and the clock.

use std::sync::{Mutex, MutexGuard};

/// Locks a mutex, recovering from poisoning. The wallet never panics while holding a lock,
/// and every guarded state is updated only after its database commit succeeded, so the data
/// behind a poisoned lock is still consistent.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The device clock, UTC seconds.
pub fn now_utc() -> i64 {
    chrono::Utc::now().timestamp()
}
