//! Bounded in-memory caches: verified certificates by hash, and seen (pseudonym, counter) pairs.

use mancard_protocol::{Pseudonym, VerifiedCertificate};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

/// Verified certificates by their hash, bounded: when full, the least recently used half is
/// dropped (amortised O(1) per insert, no allocation per lookup).
#[derive(Debug)]
pub struct CertCache {
    map: HashMap<[u8; 32], (Arc<VerifiedCertificate>, u64)>,
    capacity: usize,
    clock: u64,
}

impl CertCache {
    pub fn new(capacity: usize) -> Self {
        Self {
            map: HashMap::with_capacity(capacity.min(65_536)),
            capacity: capacity.max(2),
            clock: 0,
        }
    }

    pub fn get(&mut self, hash: &[u8; 32]) -> Option<Arc<VerifiedCertificate>> {
        self.clock = self.clock.wrapping_add(1);
        let now = self.clock;
        self.map.get_mut(hash).map(|(vc, used)| {
            *used = now;
            Arc::clone(vc)
        })
    }

    pub fn contains(&self, hash: &[u8; 32]) -> bool {
        self.map.contains_key(hash)
    }

    pub fn insert(&mut self, vc: VerifiedCertificate) -> Arc<VerifiedCertificate> {
        if self.map.len() >= self.capacity {
            self.evict_half();
        }
        self.clock = self.clock.wrapping_add(1);
        let hash = vc.hash;
        let arc = Arc::new(vc);
        self.map.insert(hash, (Arc::clone(&arc), self.clock));
        arc
    }

    fn evict_half(&mut self) {
        let mut uses: Vec<u64> = self.map.values().map(|(_, u)| *u).collect();
        let mid = uses.len() / 2;
        if mid == 0 {
            return;
        }
        let (_, median, _) = uses.select_nth_unstable(mid);
        let cut = *median;
        self.map.retain(|_, (_, u)| *u >= cut);
    }

    pub fn clear(&mut self) {
        self.map.clear();
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

/// (pseudonym, counter) pairs already accepted, bounded by count: the oldest are forgotten first.
/// Rebuilt from the journal at open, so it survives restarts.
#[derive(Debug)]
pub struct ReplayCache {
    seen: HashMap<(Pseudonym, u32), i64>,
    order: VecDeque<(Pseudonym, u32)>,
    capacity: usize,
}

impl ReplayCache {
    pub fn new(capacity: usize) -> Self {
        Self {
            seen: HashMap::new(),
            order: VecDeque::new(),
            capacity: capacity.max(1),
        }
    }

    pub fn contains(&self, p: &Pseudonym, counter: u32) -> bool {
        self.seen.contains_key(&(*p, counter))
    }

    /// Records a pair; returns false if it was already there.
    pub fn insert(&mut self, p: Pseudonym, counter: u32, time: i64) -> bool {
        if self.seen.contains_key(&(p, counter)) {
            return false;
        }
        while self.seen.len() >= self.capacity {
            match self.order.pop_front() {
                Some(k) => {
                    self.seen.remove(&k);
                }
                None => break,
            }
        }
        self.seen.insert((p, counter), time);
        self.order.push_back((p, counter));
        true
    }

    pub fn len(&self) -> usize {
        self.seen.len()
    }

    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::ReplayCache;
    use mancard_protocol::Pseudonym;

    #[test]
    fn replay_cache_is_bounded_fifo() {
        let mut c = ReplayCache::new(3);
        let p = Pseudonym([1; 16]);
        for i in 0..5 {
            assert!(c.insert(p, i, 0));
        }
        assert!(!c.insert(p, 4, 0));
        assert_eq!(c.len(), 3);
        assert!(!c.contains(&p, 0));
        assert!(c.contains(&p, 2));
    }
}
