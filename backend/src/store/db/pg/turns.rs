//! Turns: a counting semaphore for blocking threads whose waiters are served first come,
//! first served (a plain condition variable wakes any of them, so under load one write
//! could wait past its deadline while later ones got through, and be answered 503). Each
//! waiter parks its own thread, and only the first as many waiters as there are free turns
//! are woken: a flood of waiters costs a wake-up per turn, not one per waiter per turn.

use super::off_runtime;
use crate::error::StoreError;
use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard};
use std::thread::Thread;
use std::time::{Duration, Instant};

/// How long a turn is waited for before the write is busy (503 + `Retry-After`).
const WAIT: Duration = Duration::from_secs(10);

/// Turns (see the module docs).
pub(super) struct Turns {
    state: Mutex<Line>,
}

/// The free turns and the waiters (ticket and thread), in the order they came.
struct Line {
    free: usize,
    next_ticket: u64,
    waiting: VecDeque<(u64, Thread)>,
}

impl Line {
    /// Wakes the waiters who may take a free turn now: the first `free` in line.
    fn wake_first(&self) {
        for (_, thread) in self.waiting.iter().take(self.free) {
            thread.unpark();
        }
    }
}

/// A turn taken from [`Turns`], given back when dropped.
pub struct Turn<'a>(&'a Turns);

impl Turns {
    pub(super) fn new(n: usize) -> Self {
        Self {
            state: Mutex::new(Line {
                free: n.max(1),
                next_ticket: 0,
                waiting: VecDeque::new(),
            }),
        }
    }

    fn line(&self) -> MutexGuard<'_, Line> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A turn, waited for (without a connection) behind everyone who asked before; busy
    /// (`why`) after 10 s.
    pub(super) fn take(&self, why: &str) -> Result<Turn<'_>, StoreError> {
        self.take_within(why, WAIT)
    }

    fn take_within(&self, why: &str, patience: Duration) -> Result<Turn<'_>, StoreError> {
        {
            // a free turn and nobody in line: taken here, without leaving the runtime
            let mut line = self.line();
            if line.free > 0 && line.waiting.is_empty() {
                line.free -= 1;
                return Ok(Turn(self));
            }
        }
        let deadline = Instant::now().checked_add(patience);
        let got = off_runtime(|| {
            let mut line = self.line();
            let ticket = line.next_ticket;
            line.next_ticket = line.next_ticket.wrapping_add(1);
            line.waiting.push_back((ticket, std::thread::current()));
            loop {
                if line.free > 0 && line.waiting.front().map(|w| w.0) == Some(ticket) {
                    line.waiting.pop_front();
                    line.free -= 1;
                    // the next in line may go too
                    line.wake_first();
                    return true;
                }
                let left =
                    deadline.map_or(patience, |d| d.saturating_duration_since(Instant::now()));
                if left.is_zero() {
                    line.waiting.retain(|w| w.0 != ticket);
                    // whoever was behind may now be first
                    line.wake_first();
                    return false;
                }
                drop(line);
                // an unpark before this park is not lost: the park returns at once
                std::thread::park_timeout(left);
                line = self.line();
            }
        });
        if got {
            Ok(Turn(self))
        } else {
            Err(StoreError::Busy(why.to_string()))
        }
    }

    /// How many turns are free.
    #[cfg(test)]
    pub(super) fn free(&self) -> usize {
        self.line().free
    }

    /// How many wait in line.
    #[cfg(test)]
    pub(super) fn waiting(&self) -> usize {
        self.line().waiting.len()
    }
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        let mut line = self.0.line();
        line.free = line.free.saturating_add(1);
        line.wake_first();
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;
    use std::sync::Arc;

    fn until(what: impl Fn() -> bool) {
        let t0 = Instant::now();
        while !what() {
            assert!(t0.elapsed() < Duration::from_secs(30), "never happened");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn waiters_get_their_turns_in_the_order_they_asked() {
        let turns = Arc::new(Turns::new(1));
        let order = Arc::new(Mutex::new(Vec::new()));
        let held = turns.take("t").unwrap();
        let mut threads = Vec::new();
        for i in 0..6 {
            let (mine, order) = (Arc::clone(&turns), Arc::clone(&order));
            threads.push(std::thread::spawn(move || {
                let _turn = mine.take("t").unwrap();
                order.lock().unwrap().push(i);
                std::thread::sleep(Duration::from_millis(2));
            }));
            // the next one asks only once this one is in line
            until(|| turns.waiting() == i + 1);
        }
        drop(held);
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(*order.lock().unwrap(), vec![0, 1, 2, 3, 4, 5]);
    }

    #[test]
    fn a_newcomer_does_not_take_a_freed_turn_from_one_waiting() {
        let turns = Arc::new(Turns::new(1));
        let held = turns.take("t").unwrap();
        let (checked, check_done) = std::sync::mpsc::channel::<()>();
        let waiter = {
            let turns = Arc::clone(&turns);
            std::thread::spawn(move || {
                // the waiter keeps its turn until the newcomer has tried: a turn taken and
                // given back at once would leave a free turn and an empty line
                let turn = turns.take("t");
                let _ = check_done.recv();
                turn.is_ok()
            })
        };
        until(|| turns.waiting() == 1);
        drop(held);
        // the turn is free, but someone has waited for it: a newcomer gets in line
        assert!(turns.take_within("busy", Duration::ZERO).is_err());
        checked.send(()).unwrap();
        assert!(waiter.join().unwrap());
    }

    #[test]
    fn a_waiter_that_gives_up_leaves_the_line_to_the_next() {
        let turns = Arc::new(Turns::new(2));
        let a = turns.take("t").unwrap();
        let _b = turns.take("t").unwrap();
        let impatient = {
            let turns = Arc::clone(&turns);
            std::thread::spawn(move || turns.take_within("busy", Duration::from_secs(3)).is_err())
        };
        until(|| turns.waiting() == 1);
        let patient = {
            let turns = Arc::clone(&turns);
            std::thread::spawn(move || turns.take("t").is_ok())
        };
        // (on a machine stalled past the impatient one's 3 s, it left before this got in)
        until(|| turns.waiting() == 2 || impatient.is_finished());
        assert!(
            impatient.join().unwrap(),
            "the impatient one timed out busy"
        );
        drop(a);
        assert!(patient.join().unwrap(), "the one behind got the freed turn");
        assert_eq!(turns.waiting(), 0);
    }

    /// Only the first in line are woken: a wake-up lost on the way would leave a waiter
    /// parked until it gives up busy.
    #[test]
    fn many_waiters_on_few_turns_all_get_theirs() {
        let turns = Arc::new(Turns::new(2));
        let in_use = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let threads: Vec<_> = (0..32)
            .map(|_| {
                let (turns, in_use) = (Arc::clone(&turns), Arc::clone(&in_use));
                std::thread::spawn(move || {
                    for _ in 0..50 {
                        let _turn = turns.take("busy").unwrap();
                        let now = in_use.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        assert!(now < 2, "more turns in use than there are");
                        std::thread::yield_now();
                        in_use.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(turns.waiting(), 0);
    }

    #[test]
    fn free_turns_are_taken_at_once_and_given_back() {
        let turns = Turns::new(2);
        let a = turns.take_within("busy", Duration::ZERO).unwrap();
        let b = turns.take_within("busy", Duration::ZERO).unwrap();
        let err = turns
            .take_within("busy", Duration::from_millis(10))
            .err()
            .unwrap();
        assert!(err.is_busy(), "{err}");
        drop((a, b));
        assert!(turns.take_within("busy", Duration::ZERO).is_ok());
        assert_eq!(turns.waiting(), 0);
    }
}
