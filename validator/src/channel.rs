//! The card channel: how the validator exchanges APDUs with whatever is in the field.

use thiserror::Error;

/// Why an APDU exchange failed (the card left the field, the reader failed, ...).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ChannelError {
    #[error("card removed from the field")]
    CardRemoved,
    #[error("reader error: {0}")]
    Reader(String),
    #[error("timed out")]
    Timeout,
}

/// A contactless card channel. One call is one command/response pair.
pub trait CardChannel {
    fn transmit(&mut self, apdu: &[u8]) -> Result<Vec<u8>, ChannelError>;
}

impl<T: CardChannel + ?Sized> CardChannel for &mut T {
    fn transmit(&mut self, apdu: &[u8]) -> Result<Vec<u8>, ChannelError> {
        (**self).transmit(apdu)
    }
}

/// An in-process channel around a closure, e.g. a wallet core's `process_apdu`.
pub struct FnChannel<F>
where
    F: Fn(Vec<u8>) -> Vec<u8>,
{
    f: F,
    /// APDUs exchanged through this channel.
    pub exchanges: u64,
}

impl<F> FnChannel<F>
where
    F: Fn(Vec<u8>) -> Vec<u8>,
{
    pub fn new(f: F) -> Self {
        Self { f, exchanges: 0 }
    }
}

impl<F> CardChannel for FnChannel<F>
where
    F: Fn(Vec<u8>) -> Vec<u8>,
{
    fn transmit(&mut self, apdu: &[u8]) -> Result<Vec<u8>, ChannelError> {
        self.exchanges = self.exchanges.saturating_add(1);
        Ok((self.f)(apdu.to_vec()))
    }
}
