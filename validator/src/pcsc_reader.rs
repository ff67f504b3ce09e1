//! The validator's PC/SC reader (pcscd): waits for a card, connects (retrying until the card
//! is really there), and exchanges APDUs. With vsmartcard's vpcd the reader is
//! `Virtual PCD 00 00` and the phone side is [`crate::vpcd::VpcdCard`].

use crate::channel::{CardChannel, ChannelError};
use pcsc::{Context, Disposition, Protocols, ReaderState, Scope, ShareMode, State};
use std::ffi::CString;
use std::time::{Duration, Instant};
use thiserror::Error;

/// The reader vsmartcard's vpcd exposes on TCP 35963.
pub const VPCD_READER: &str = "Virtual PCD 00 00";

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ReaderError {
    #[error("PC/SC: {0} (is pcscd running? scripts/pcsc-up.sh starts it)")]
    Pcsc(String),
    #[error("no PC/SC reader named {wanted:?} (readers: {found:?})")]
    NoReader { wanted: String, found: Vec<String> },
    #[error("no card presented within {0:?}")]
    NoCard(Duration),
}

fn pcsc_err(e: pcsc::Error) -> ReaderError {
    ReaderError::Pcsc(e.to_string())
}

/// True if pcscd answers and lists at least one reader.
pub fn pcscd_available() -> bool {
    Context::establish(Scope::User)
        .and_then(|c| c.list_readers_owned())
        .map(|r| !r.is_empty())
        .unwrap_or(false)
}

/// One PC/SC reader.
pub struct PcscReader {
    ctx: Context,
    name: CString,
}

impl std::fmt::Debug for PcscReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PcscReader")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl PcscReader {
    /// Opens the first reader whose name starts with `name_prefix` (e.g. [`VPCD_READER`]).
    pub fn open(name_prefix: &str) -> Result<Self, ReaderError> {
        let ctx = Context::establish(Scope::User).map_err(pcsc_err)?;
        let readers = match ctx.list_readers_owned() {
            Ok(r) => r,
            Err(pcsc::Error::NoReadersAvailable) => Vec::new(),
            Err(e) => return Err(pcsc_err(e)),
        };
        let found: Vec<String> = readers
            .iter()
            .map(|r| r.to_string_lossy().into_owned())
            .collect();
        let name = readers
            .into_iter()
            .find(|r| r.to_string_lossy().starts_with(name_prefix))
            .ok_or_else(|| ReaderError::NoReader {
                wanted: name_prefix.into(),
                found,
            })?;
        Ok(Self { ctx, name })
    }

    pub fn name(&self) -> String {
        self.name.to_string_lossy().into_owned()
    }

    fn wait_state(
        &self,
        want_present: bool,
        timeout: Option<Duration>,
    ) -> Result<bool, ReaderError> {
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut rs = [ReaderState::new(self.name.clone(), State::UNAWARE)];
        loop {
            let remaining = match deadline {
                Some(d) => {
                    let now = Instant::now();
                    if rs[0].current_state() != State::UNAWARE && now >= d {
                        return Ok(false);
                    }
                    Some(d.saturating_duration_since(now))
                }
                None => None,
            };
            // First call with UNAWARE returns at once with the current state.
            let t = if rs[0].current_state() == State::UNAWARE {
                Some(Duration::ZERO)
            } else {
                remaining
            };
            match self.ctx.get_status_change(t, &mut rs) {
                Ok(()) => {}
                Err(pcsc::Error::Timeout) => {
                    if rs[0].current_state() == State::UNAWARE {
                        rs[0].sync_current_state();
                    }
                    continue;
                }
                Err(e) => return Err(pcsc_err(e)),
            }
            let ev = rs[0].event_state();
            let present = ev.contains(State::PRESENT) && !ev.contains(State::MUTE);
            if present == want_present {
                return Ok(true);
            }
            rs[0].sync_current_state();
        }
    }

    /// Waits until a card is in the field (None: forever). False on timeout.
    pub fn wait_for_card(&self, timeout: Option<Duration>) -> Result<bool, ReaderError> {
        self.wait_state(true, timeout)
    }

    /// Waits until the field is empty (the phone was taken away). False on timeout.
    pub fn wait_for_removal(&self, timeout: Option<Duration>) -> Result<bool, ReaderError> {
        self.wait_state(false, timeout)
    }

    /// Connects to the card, retrying while it is not (yet) there, for up to `retry_for`.
    pub fn connect(&self, retry_for: Duration) -> Result<PcscCard, ReaderError> {
        let deadline = Instant::now() + retry_for;
        loop {
            match self
                .ctx
                .connect(&self.name, ShareMode::Shared, Protocols::ANY)
            {
                Ok(card) => {
                    return Ok(PcscCard {
                        card: Some(card),
                        buf: vec![0u8; pcsc::MAX_BUFFER_SIZE_EXTENDED],
                    })
                }
                Err(
                    pcsc::Error::NoSmartcard
                    | pcsc::Error::RemovedCard
                    | pcsc::Error::ResetCard
                    | pcsc::Error::UnpoweredCard
                    | pcsc::Error::UnresponsiveCard
                    | pcsc::Error::NotReady
                    | pcsc::Error::SharingViolation
                    | pcsc::Error::Timeout,
                ) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(pcsc::Error::NoSmartcard | pcsc::Error::RemovedCard) => {
                    return Err(ReaderError::NoCard(retry_for))
                }
                Err(e) => return Err(pcsc_err(e)),
            }
        }
    }
}

/// A connected card: a [`CardChannel`]. Dropping it leaves the card as is; [`PcscCard::finish`]
/// resets it (the phone sees the field drop: `deactivated()`).
pub struct PcscCard {
    card: Option<pcsc::Card>,
    buf: Vec<u8>,
}

impl PcscCard {
    /// Disconnects, resetting the card.
    pub fn finish(mut self) {
        if let Some(c) = self.card.take() {
            let _ = c.disconnect(Disposition::ResetCard);
        }
    }

    /// Disconnects, leaving the card powered (fastest; for back-to-back benchmark taps).
    pub fn leave(mut self) {
        if let Some(c) = self.card.take() {
            let _ = c.disconnect(Disposition::LeaveCard);
        }
    }
}

impl CardChannel for PcscCard {
    fn transmit(&mut self, apdu: &[u8]) -> Result<Vec<u8>, ChannelError> {
        let card = self.card.as_ref().ok_or(ChannelError::CardRemoved)?;
        match card.transmit(apdu, &mut self.buf) {
            Ok(r) => Ok(r.to_vec()),
            Err(pcsc::Error::RemovedCard | pcsc::Error::ResetCard | pcsc::Error::NoSmartcard) => {
                Err(ChannelError::CardRemoved)
            }
            Err(pcsc::Error::Timeout) => Err(ChannelError::Timeout),
            Err(e) => Err(ChannelError::Reader(e.to_string())),
        }
    }
}
