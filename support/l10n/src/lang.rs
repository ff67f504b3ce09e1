//! The languages riders read, chosen by a BCP 47 tag.

use icu_locale_core::Locale;
use std::fmt;
use std::str::FromStr;
use std::sync::OnceLock;

/// A language ManCard speaks to riders in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Lang {
    /// Persian, the default.
    #[default]
    Fa,
    /// South Azerbaijani in Arabic script.
    Azb,
    /// English.
    En,
}

/// A language tag that is not one of ManCard's languages (or not a language tag at all).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown language {tag:?}: ManCard speaks fa (Persian), azb (South Azerbaijani) and en (English)")]
pub struct UnknownLanguage {
    /// The tag as given, cut to 32 characters.
    pub tag: String,
}

impl Lang {
    /// Every language, the default first.
    pub const ALL: [Lang; 3] = [Lang::Fa, Lang::Azb, Lang::En];

    /// The BCP 47 tag: `fa`, `azb`, `en`.
    pub const fn code(self) -> &'static str {
        match self {
            Self::Fa => "fa",
            Self::Azb => "azb",
            Self::En => "en",
        }
    }

    /// Whether the language is written right to left.
    pub const fn is_rtl(self) -> bool {
        matches!(self, Self::Fa | Self::Azb)
    }

    /// The language of a BCP 47 tag: `fa`, `fa-IR`, `azb`, `azb-IR`, `az-Arab`, `az-IR`,
    /// `en`, `en-US`, ... (`_` is taken for `-`, as Android and POSIX write it). Any other
    /// language, or a tag that does not parse, is an error.
    pub fn from_tag(tag: &str) -> Result<Lang, UnknownLanguage> {
        let unknown = || UnknownLanguage {
            tag: tag.chars().take(32).collect(),
        };
        if tag.len() > 64 {
            return Err(unknown());
        }
        let locale = Locale::from_str(&tag.replace('_', "-")).map_err(|_| unknown())?;
        let id = &locale.id;
        match id.language.as_str() {
            "fa" => Ok(Self::Fa),
            "azb" => Ok(Self::Azb),
            // Azerbaijani in Arabic script, or as written in Iran, is South Azerbaijani.
            "az" if id.script.is_some_and(|s| s.as_str() == "Arab")
                || id.region.is_some_and(|r| r.as_str() == "IR") =>
            {
                Ok(Self::Azb)
            }
            "en" => Ok(Self::En),
            _ => Err(unknown()),
        }
    }

    /// The language for a device's locale: [`Lang::from_tag`], else Persian (the app's default
    /// for a phone set to any other language).
    pub fn negotiate(tag: &str) -> Lang {
        Self::from_tag(tag).unwrap_or_default()
    }

    /// The ICU locale whose data formats this language's numbers and dates (CLDR has no `azb`
    /// data: South Azerbaijani in Iran reads Persian digits and month names).
    pub(crate) fn icu_locale(self) -> Locale {
        match self {
            Self::Fa | Self::Azb => icu_locale_core::locale!("fa-IR"),
            Self::En => icu_locale_core::locale!("en"),
        }
    }
}

/// One value per language, made on first use (catalog bundles, ICU formatters).
pub(crate) struct PerLang<T> {
    fa: OnceLock<T>,
    azb: OnceLock<T>,
    en: OnceLock<T>,
}

impl<T> PerLang<T> {
    pub(crate) const fn new() -> Self {
        Self {
            fa: OnceLock::new(),
            azb: OnceLock::new(),
            en: OnceLock::new(),
        }
    }

    /// `lang`'s value, made by `make` the first time it is asked for.
    pub(crate) fn get(&self, lang: Lang, make: impl FnOnce() -> T) -> &T {
        match lang {
            Lang::Fa => &self.fa,
            Lang::Azb => &self.azb,
            Lang::En => &self.en,
        }
        .get_or_init(make)
    }
}

impl FromStr for Lang {
    type Err = UnknownLanguage;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::from_tag(s)
    }
}

impl fmt::Display for Lang {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}
