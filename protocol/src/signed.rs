//! "Body ‖ signature", written once: the certificate, the tap batch, the config bundle and the
//! boarding pass are each a [`Signed`] body.
//!
//! The signature covers the body's whole encoding (its header included) after the body's
//! domain-separation tag, and every check of such a signature goes through
//! [`Signed::verify`], so a rule about signatures (such as refusing non-canonical ones) is
//! added in one place.

use crate::codec::{DecodeError, Message, Reader, Writer};
use crate::crypto::{BadSignature, KeyError, PublicKey, Signature, SigningKey};

/// A message body that is signed as a whole. Its [`Message`] encoding is exactly the bytes the
/// signature covers; the signed message has the same tag, version and name.
pub trait SignedBody: Message {
    /// Domain-separation tag the signature is made under (see [`crate::crypto::tags`]).
    const DOMAIN: &'static [u8];

    /// Checks (and may canonicalize) the body before it is signed. By default: as it is.
    fn prepare(self) -> Result<Self, KeyError> {
        Ok(self)
    }
}

/// A body and the signature over it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signed<B> {
    pub body: B,
    pub signature: Signature,
}

impl<B: SignedBody> Signed<B> {
    /// Prepares `body` (see [`SignedBody::prepare`]) and signs it with `key`.
    pub fn sign(body: B, key: &SigningKey) -> Result<Self, KeyError> {
        let body = body.prepare()?;
        let signature = key.sign(B::DOMAIN, &body.encode())?;
        Ok(Self { body, signature })
    }

    /// The bytes the signature covers (after the domain tag).
    pub fn signed_bytes(&self) -> Vec<u8> {
        self.body.encode()
    }

    /// The one check of a body's signature.
    pub fn verify(&self, key: &PublicKey) -> Result<(), BadSignature> {
        key.verify(B::DOMAIN, &self.signed_bytes(), &self.signature)
    }

    /// The message on the wire: body, then signature.
    pub fn encode(&self) -> Vec<u8> {
        Message::encode(self)
    }

    /// Decodes exactly one signed message (the signature is not checked here).
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        <Self as Message>::decode(bytes)
    }
}

impl<B: SignedBody> Message for Signed<B> {
    const NAME: &'static str = B::NAME;
    const TAG: u8 = B::TAG;
    const VERSION: u8 = B::VERSION;

    fn size_hint(&self) -> usize {
        self.body.size_hint().saturating_add(Signature::LEN)
    }

    fn write_body(&self, w: &mut Writer) {
        self.body.write_body(w);
        w.bytes(self.signature.as_bytes());
    }

    fn read_body(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let body = B::read_body(r)?;
        let signature = Signature(r.array()?);
        Ok(Self { body, signature })
    }
}
