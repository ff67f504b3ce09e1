//! The edge's configuration in one place: rate limits by client address, globally and by
//! account, the timeouts of a connection and a request, and the concurrency bounds that shed
//! load. The layers that enforce them are in `http/limits.rs` (requests) and `server.rs`
//! (connections). Defaults suit a pilot; tests tighten them here, never by sleeping.

use std::net::IpAddr;
use std::time::Duration;

/// A token bucket: up to `burst` requests at once, then one more every `every`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// Requests allowed back to back (at least 1).
    pub burst: u32,
    /// Time to earn one more request (more than zero).
    pub every: Duration,
}

impl Rate {
    /// `burst` at once, then one every `every_secs` seconds.
    pub const fn new(burst: u32, every_secs: u64) -> Self {
        Self {
            burst,
            every: Duration::from_secs(every_secs),
        }
    }
}

/// Rate limits, timeouts and load shedding of the HTTP edge. A `None` rate turns that limit
/// off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EdgeLimits {
    /// One-time code requests (`POST /v1/auth/otp`) per client address (IPv6: per /64).
    /// Riders behind one carrier NAT share an address, so this is generous; the global cap
    /// is what bounds the SMS bill.
    pub otp_per_address: Option<Rate>,
    /// One-time code requests from everyone together: the SMS budget.
    pub otp_global: Option<Rate>,
    /// Code checks (`POST /v1/auth/session`) per client address.
    pub session_per_address: Option<Rate>,
    /// Wallet syncs (`POST /v1/wallet/sync`) per account (from the bearer token).
    pub sync_per_account: Option<Rate>,
    /// Issuance calls (`/v1/credential/*`) per account.
    pub credential_per_account: Option<Rate>,
    /// Peers whose `X-Forwarded-For` is believed (a reverse proxy in front of the backend).
    /// From any other peer the header is ignored: the client address is the TCP peer.
    pub trusted_proxies: Vec<IpAddr>,
    /// A connection must send a request's whole header within this (also the idle time a
    /// kept-alive connection may wait for its next request).
    pub header_read_timeout: Duration,
    /// Longest pause between two pieces of a request body.
    pub body_read_timeout: Duration,
    /// Longest time from a request's header to its answer, body upload included.
    pub request_timeout: Duration,
    /// Requests handled at once; more are refused at once with 503 and `Retry-After`.
    pub max_in_flight: usize,
    /// Requests handled at once from one client address (IPv6: one /64); one more is
    /// refused at once with 429 and `Retry-After`. Riders behind one carrier NAT share an
    /// address, but their requests take milliseconds.
    pub max_in_flight_per_address: Option<usize>,
    /// Every body but a batch upload is read whole before its request takes an in-flight
    /// slot (so a client that dribbles its body holds only its own connection); this many
    /// bytes may be being read ahead server-wide at once (more: 503 + `Retry-After`).
    pub prebuffer_budget: usize,
    /// Batch uploads (streamed to their handler) running at once; one more waits for a lane
    /// (first come, first served) up to `upload_queue_wait`, then 503 + `Retry-After`.
    pub max_uploads_in_flight: usize,
    /// How long a batch upload waits for a lane when all `max_uploads_in_flight` are taken.
    /// Buses docking together (end of a shift, a depot's Wi-Fi) upload in a burst; a short
    /// queue takes the burst instead of bouncing it. A waiting upload holds only its
    /// connection (capped per address and server-wide), not an in-flight slot.
    pub upload_queue_wait: Duration,
    /// Batch uploads running or waiting for a lane at once from one client address (IPv6:
    /// one /64; a depot's buses behind one NAT share one); one more is refused at once with
    /// 429 and `Retry-After`. Without it, one address could hold every lane and, waiting
    /// first in line, take each lane that frees up.
    pub max_uploads_per_address: Option<usize>,
    /// Open connections at once; a connection over it is closed as soon as it is accepted.
    pub max_connections: usize,
    /// Open connections at once from one client address (IPv6: one /64; a trusted proxy is
    /// not limited); one more is closed as soon as it is accepted.
    pub max_connections_per_address: Option<usize>,
    /// The `Retry-After` of a shed request, seconds.
    pub shed_retry_after_secs: u64,
}

impl Default for EdgeLimits {
    fn default() -> Self {
        Self {
            otp_per_address: Some(Rate::new(10, 30)),
            otp_global: Some(Rate::new(200, 1)),
            session_per_address: Some(Rate::new(20, 6)),
            sync_per_account: Some(Rate::new(60, 1)),
            credential_per_account: Some(Rate::new(60, 2)),
            trusted_proxies: Vec::new(),
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(15),
            request_timeout: Duration::from_secs(60),
            max_in_flight: 512,
            max_in_flight_per_address: Some(64),
            prebuffer_budget: 64 * 1024 * 1024,
            max_uploads_in_flight: 32,
            upload_queue_wait: Duration::from_secs(10),
            max_uploads_per_address: Some(8),
            max_connections: 4_096,
            max_connections_per_address: Some(128),
            shed_retry_after_secs: 2,
        }
    }
}

/// The most requests, uploads or connections at once any limit may allow.
const MAX_AT_ONCE: usize = 1_000_000;

impl EdgeLimits {
    /// The limits of a backend whose clients all connect over loopback (tests, the demo,
    /// [`crate::BackendConfig::sandbox`]): every client is 127.0.0.1 there, so the
    /// per-address limits (rates, requests and connections at once) would make all of them
    /// one client and are off; everything else is the default. `mancard backend serve` always starts from [`EdgeLimits::default`].
    pub fn loopback() -> Self {
        Self {
            otp_per_address: None,
            session_per_address: None,
            max_in_flight_per_address: None,
            max_connections_per_address: None,
            max_uploads_per_address: None,
            ..Self::default()
        }
    }

    /// Sets one rate limit from `NAME=BURST/SECONDS` (or `NAME=off`), the form the CLI takes:
    /// e.g. `otp_global=200/1` allows 200 at once, then one a second.
    pub fn set_rate(&mut self, spec: &str) -> Result<(), String> {
        let (name, value) = spec
            .split_once('=')
            .ok_or_else(|| format!("{spec:?}: expected NAME=BURST/SECONDS or NAME=off"))?;
        let rate = if value.trim() == "off" {
            None
        } else {
            let (burst, secs) = value
                .split_once('/')
                .ok_or_else(|| format!("{spec:?}: expected BURST/SECONDS after '='"))?;
            let burst: u32 = burst
                .trim()
                .parse()
                .map_err(|_| format!("{spec:?}: the burst is not a whole number"))?;
            let secs: u64 = secs
                .trim()
                .parse()
                .map_err(|_| format!("{spec:?}: the period is not a whole number of seconds"))?;
            Some(Rate::new(burst, secs))
        };
        let slot = match name.trim() {
            "otp_per_address" => &mut self.otp_per_address,
            "otp_global" => &mut self.otp_global,
            "session_per_address" => &mut self.session_per_address,
            "sync_per_account" => &mut self.sync_per_account,
            "credential_per_account" => &mut self.credential_per_account,
            other => {
                return Err(format!(
                    "unknown rate limit {other:?} (otp_per_address, otp_global, \
                     session_per_address, sync_per_account, credential_per_account)"
                ))
            }
        };
        *slot = rate;
        Ok(())
    }

    /// Refuses a configuration that would turn a limit off by accident (a zero burst or
    /// period; say `None` to turn a rate limit off) or stop the server from serving (zero
    /// timeouts or capacities).
    pub fn check(&self) -> Result<(), String> {
        let rates = [
            ("otp_per_address", self.otp_per_address),
            ("otp_global", self.otp_global),
            ("session_per_address", self.session_per_address),
            ("sync_per_account", self.sync_per_account),
            ("credential_per_account", self.credential_per_account),
        ];
        for (name, rate) in rates {
            if let Some(r) = rate {
                if r.burst == 0 || r.every.is_zero() {
                    return Err(format!(
                        "edge limit {name}: burst and period must be more than zero"
                    ));
                }
            }
        }
        let timeouts = [
            ("header_read_timeout", self.header_read_timeout),
            ("body_read_timeout", self.body_read_timeout),
            ("request_timeout", self.request_timeout),
        ];
        if let Some((name, _)) = timeouts.iter().find(|(_, t)| t.is_zero()) {
            return Err(format!("edge {name} must be more than zero"));
        }
        if let Some((name, _)) = timeouts.iter().find(|(_, t)| t.as_secs() > 86_400) {
            return Err(format!("edge {name} must be at most a day"));
        }
        if self.max_uploads_in_flight == 0
            || self.max_uploads_per_address == Some(0)
            || self.prebuffer_budget < 1024
        {
            return Err(
                "edge max_uploads_in_flight (also per address) must be more than zero and \
                 prebuffer_budget at least 1 KiB"
                    .into(),
            );
        }
        // semaphores are sized from these (tokio refuses more than `MAX_PERMITS`)
        let counts = [
            ("max_in_flight", self.max_in_flight),
            ("max_uploads_in_flight", self.max_uploads_in_flight),
            ("max_connections", self.max_connections),
        ];
        if let Some((name, _)) = counts.iter().find(|(_, n)| *n > MAX_AT_ONCE) {
            return Err(format!("edge {name} must be at most {MAX_AT_ONCE}"));
        }
        if self.upload_queue_wait.as_secs() > 86_400 {
            return Err("edge upload_queue_wait must be at most a day".into());
        }
        if self.max_in_flight == 0
            || self.max_connections == 0
            || self.max_in_flight_per_address == Some(0)
            || self.max_connections_per_address == Some(0)
        {
            return Err(
                "edge max_in_flight and max_connections (also per address) must be \
                        more than zero"
                    .into(),
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_pass_and_a_zero_is_refused() {
        assert_eq!(EdgeLimits::default().check(), Ok(()));
        let zero_burst = EdgeLimits {
            otp_global: Some(Rate::new(0, 1)),
            ..EdgeLimits::default()
        };
        assert!(zero_burst.check().is_err());
        let zero_period = EdgeLimits {
            sync_per_account: Some(Rate::new(5, 0)),
            ..EdgeLimits::default()
        };
        assert!(zero_period.check().is_err());
        let no_time = EdgeLimits {
            header_read_timeout: Duration::ZERO,
            ..EdgeLimits::default()
        };
        assert!(no_time.check().is_err());
        let forever = EdgeLimits {
            request_timeout: Duration::from_secs(u64::MAX),
            ..EdgeLimits::default()
        };
        assert!(forever.check().is_err());
        let no_uploads = EdgeLimits {
            max_uploads_per_address: Some(0),
            ..EdgeLimits::default()
        };
        assert!(no_uploads.check().is_err());
        let waits_forever = EdgeLimits {
            upload_queue_wait: Duration::from_secs(u64::MAX),
            ..EdgeLimits::default()
        };
        assert!(waits_forever.check().is_err());
        let too_many = EdgeLimits {
            max_uploads_in_flight: usize::MAX,
            ..EdgeLimits::default()
        };
        assert!(too_many.check().is_err());
        let off = EdgeLimits {
            otp_per_address: None,
            ..EdgeLimits::default()
        };
        assert_eq!(off.check(), Ok(()));
    }

    #[test]
    fn rates_are_set_by_name() {
        let mut e = EdgeLimits::default();
        assert_eq!(e.set_rate("otp_global=50/2"), Ok(()));
        assert_eq!(e.otp_global, Some(Rate::new(50, 2)));
        assert_eq!(e.set_rate("sync_per_account=off"), Ok(()));
        assert_eq!(e.sync_per_account, None);
        assert!(e.set_rate("otp_everything=1/1").is_err());
        assert!(e.set_rate("otp_global=many/1").is_err());
        assert!(e.set_rate("otp_global").is_err());
    }
}
