//! What the tap path remembers about readers, in memory only: the NFC session opened by
//! SELECT, the validator certificates it has verified, and the recent authorizations that the
//! rate limit counts.

use mancard_protocol::{AuthorizeCommand, DecodeError, ValidatorCertificate};
use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

/// Most validator certificates kept verified in memory.
pub(crate) const READER_CACHE_SIZE: usize = 64;

/// The window the authorization rate limit counts over.
const RATE_WINDOW: Duration = Duration::from_secs(60);

/// One NFC session: from a SELECT of the ManCard application to the field dropping or the
/// next SELECT.
pub(crate) struct NfcSession {
    /// The fresh random value SELECT answered; a challenge must repeat it.
    pub(crate) value: [u8; 16],
    /// A challenge signed by a verified validator was received in this session (READ
    /// CERTIFICATE is answered only then).
    pub(crate) reader_authenticated: bool,
}

impl NfcSession {
    /// A session with a fresh random value, or None if the system RNG failed.
    pub(crate) fn fresh() -> Option<Self> {
        use ring::rand::SecureRandom;
        let mut value = [0u8; 16];
        ring::rand::SystemRandom::new().fill(&mut value).ok()?;
        Some(Self {
            value,
            reader_authenticated: false,
        })
    }
}

/// A verified validator certificate.
pub(crate) struct CachedReader {
    pub(crate) cert: ValidatorCertificate,
}

/// Validator certificates of readers that authenticated (certificate, challenge signature,
/// session and clock all verified), by validator id (bounded; the oldest is dropped first).
/// Validity and the deny list are checked again at every tap; the cache only saves the
/// certificate's signature check. A reader that failed to authenticate never enters it (so no
/// rogue reader can plant or probe entries), and it is cleared when another config bundle or
/// another certificate is installed (it must not link the phone's certificates).
#[derive(Default)]
pub(crate) struct ReaderCache {
    by_validator: HashMap<u32, CachedReader>,
    order: VecDeque<u32>,
}

impl ReaderCache {
    pub(crate) fn get(&self, validator_id: u32) -> Option<&CachedReader> {
        self.by_validator.get(&validator_id)
    }

    /// True if `cert` is, byte for byte (its signature included), the verified certificate
    /// cached for its validator: only then may its signature check be skipped (a copy with a
    /// garbled signature is verified, and refused, like an unknown one).
    pub(crate) fn holds_exactly(&self, cert: &ValidatorCertificate) -> bool {
        self.get(cert.body.validator_id)
            .is_some_and(|c| c.cert == *cert)
    }

    /// AUTHORIZE TAP's command data, as `AuthorizeCommand::parse` reads it; an inline
    /// certificate byte for byte the one cached for its validator is taken from the cache
    /// rather than decoded again (decoding decompresses the validator key: about a third of a
    /// signature's time, at every tap of a reader met before). The answer is the same either
    /// way; only a reader that authenticated is in the cache, so a hit tells a reader nothing
    /// the skipped certificate check (`holds_exactly`) did not already.
    pub(crate) fn parse_authorize(
        &self,
        p1: u8,
        data: &[u8],
    ) -> Result<AuthorizeCommand, DecodeError> {
        AuthorizeCommand::parse_with_known(p1, data, |id| self.get(id).map(|c| &c.cert))
    }

    /// Remembers a verified certificate (replacing the validator's previous one).
    pub(crate) fn insert(&mut self, cert: ValidatorCertificate) {
        let id = cert.body.validator_id;
        if self
            .by_validator
            .insert(id, CachedReader { cert })
            .is_none()
        {
            self.order.push_back(id);
        }
        while self.order.len() > READER_CACHE_SIZE {
            if let Some(old) = self.order.pop_front() {
                self.by_validator.remove(&old);
            }
        }
    }

    pub(crate) fn clear(&mut self) {
        self.by_validator.clear();
        self.order.clear();
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.by_validator.len()
    }
}

/// The instants of the recent signed authorizations (monotonic clock: the rider's or a
/// reader's idea of the time cannot widen the window).
#[derive(Default)]
pub(crate) struct RateWindow {
    recent: VecDeque<Instant>,
}

impl RateWindow {
    /// True if `limit` authorizations were already signed in the last minute.
    pub(crate) fn full(&mut self, limit: u32, now: Instant) -> bool {
        while self
            .recent
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= RATE_WINDOW)
        {
            self.recent.pop_front();
        }
        self.recent.len() >= usize::try_from(limit).unwrap_or(usize::MAX)
    }

    /// Counts one signed authorization at `now`.
    pub(crate) fn record(&mut self, now: Instant) {
        self.recent.push_back(now);
        // bounded whatever the limit: only the last minute matters
        if self.recent.len() > 4096 {
            self.recent.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mancard_protocol::{SigningKey, ValidatorCertBody};

    fn cert(id: u32, key: &SigningKey) -> ValidatorCertificate {
        ValidatorCertBody {
            issuer_key_id: 1,
            validator_id: id,
            operator_id: 1,
            public_key: key.public_key(),
            valid_from: 1,
            valid_until: 2,
            lines: Vec::new(),
        }
        .sign(key)
        .unwrap()
    }

    #[test]
    fn the_reader_cache_is_bounded_and_drops_the_oldest() {
        let key = SigningKey::generate().unwrap().0;
        let mut c = ReaderCache::default();
        let mut last = None;
        for id in 0..(READER_CACHE_SIZE as u32 + 10) {
            let vc = cert(id, &key);
            c.insert(vc.clone());
            last = Some(vc);
        }
        assert_eq!(c.len(), READER_CACHE_SIZE);
        assert!(c.get(0).is_none());
        let vc = last.unwrap();
        assert!(c.holds_exactly(&vc));
        // the same body under another signature (or a garbled one) is not the cached one
        let mut other = vc.clone();
        other.signature.0[5] ^= 1;
        assert!(!c.holds_exactly(&other));
        let resigned = cert(vc.body.validator_id, &key);
        assert_eq!(resigned.id(), vc.id());
        assert!(!c.holds_exactly(&resigned));
        c.clear();
        assert_eq!(c.len(), 0);
    }

    #[test]
    fn the_rate_window_counts_the_last_minute_only() {
        let mut r = RateWindow::default();
        let t0 = Instant::now();
        for _ in 0..6 {
            assert!(!r.full(6, t0));
            r.record(t0);
        }
        assert!(r.full(6, t0));
        assert!(r.full(6, t0 + Duration::from_secs(59)));
        assert!(!r.full(6, t0 + Duration::from_secs(60)));
    }
}
