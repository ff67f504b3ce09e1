//! The rider's language of this run (`--lang` of `mancard validator` and `mancard wallet`):
//! set once by the subcommand before it prints anything a rider reads.

use mancard_l10n::Lang;
use std::sync::OnceLock;

static LANG: OnceLock<Lang> = OnceLock::new();

/// Chooses the language (the first call wins: one subcommand per run).
pub fn set(lang: Lang) {
    let _ = LANG.set(lang);
}

/// The chosen language; Persian until one is chosen.
pub fn get() -> Lang {
    LANG.get().copied().unwrap_or_default()
}
