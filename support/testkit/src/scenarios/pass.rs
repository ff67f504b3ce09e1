//! The boarding pass as the app gets it: `Wallet::boarding_pass` (sign on the tap chain, log,
//! QR matrix of the `MC2:` text; lifetime bounded by the issuer's config bundle, which
//! [`provisioned_wallet`] installs) and the SVG and PNG the FFI's `BoardingPass` record carries
//! (`src/ffi/types.rs` renders both on every call), a new pass each time (a new minute, no
//! reuse).

use super::peers::RawSigner;
use super::wallet::provisioned_wallet;
use super::Res;
use crate::issuer::Issuer;
use crate::time::T0;
use mancard::{QrMatrix, Wallet};
use std::hint::black_box;
use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

/// Pixels per module of the PNG the app's pass carries (the FFI's `PASS_PNG_MODULE_PX`).
pub const PASS_PNG_MODULE_PX: u32 = 8;

/// What one pass was, for the table's note.
#[derive(Debug, Clone)]
pub struct PassShown {
    pub text: String,
    pub version: u8,
    pub width: u32,
    pub svg_bytes: usize,
    pub png_bytes: usize,
}

/// The boarding-pass scenario.
pub struct PassScenario {
    wallet: Arc<Wallet>,
    minute: AtomicI64,
    signer: RawSigner,
}

impl PassScenario {
    pub fn new(dir: &Path, issuer: &Issuer) -> Res<Self> {
        Ok(Self {
            wallet: provisioned_wallet(dir, issuer)?,
            minute: AtomicI64::new(0),
            signer: RawSigner::new()?,
        })
    }

    /// One new pass with its renders.
    pub fn run_once(&self) -> Res<PassShown> {
        let k = self.minute.fetch_add(1, Ordering::Relaxed);
        let p = self.wallet.boarding_pass(T0 + k * 60)?;
        let svg = p.svg();
        let png = p.png(PASS_PNG_MODULE_PX)?;
        let shown = PassShown {
            version: p.matrix.version,
            width: p.matrix.width,
            svg_bytes: svg.len(),
            png_bytes: png.len(),
            text: p.text,
        };
        black_box((svg, png));
        Ok(shown)
    }

    /// The peer: what any pass costs without the wallet: one raw P-256 sign, the QR matrix
    /// of the same text and the same two renders.
    pub fn peer_once(&self, text: &str) -> Res<()> {
        self.signer.run_once()?;
        let m = QrMatrix::encode(black_box(text))?;
        black_box((m.to_svg(8), m.to_png(PASS_PNG_MODULE_PX)?));
        Ok(())
    }

    pub fn wallet(&self) -> &Arc<Wallet> {
        &self.wallet
    }
}
