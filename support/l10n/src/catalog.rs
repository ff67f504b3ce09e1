//! The message catalogs: one Fluent file per language, compiled into the library.

use crate::format::{amount_args, format_date, format_date_time, format_int, toman_number};
use crate::lang::PerLang;
use crate::Lang;
use fluent_bundle::concurrent::FluentBundle;
use fluent_bundle::{FluentArgs, FluentError, FluentResource, FluentValue};

/// A message's argument. Numbers and dates are formatted for the message's language here, so
/// that a catalog never sees Latin digits in a Persian sentence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Arg {
    /// An integer in the language's digits with grouping.
    Int(i64),
    /// A count: the number itself (for the catalog's plural selector) under the argument's
    /// name, and its text in the language's digits under `NAME_text`.
    Count(i64),
    /// Rials shown as a number of toman (the catalog adds the unit).
    Toman(i64),
    /// Rials as a whole amount, the catalog's `amount` message (`۲٬۰۰۰ تومان`).
    Amount(i64),
    /// Rials as the validator's display shows them (`validator-amount`).
    ValidatorAmount(i64),
    /// A Solar Hijri date and time: Unix seconds and the offset east of UTC.
    DateTime(i64, i32),
    /// A Solar Hijri date: Unix seconds and the offset east of UTC.
    Date(i64, i32),
    /// Text already in the message's language (another message, a name, a hex code).
    Text(String),
}

fn source(lang: Lang) -> &'static str {
    match lang {
        Lang::Fa => include_str!("../catalogs/fa.ftl"),
        Lang::Azb => include_str!("../catalogs/azb.ftl"),
        Lang::En => include_str!("../catalogs/en.ftl"),
    }
}

/// A catalog's parsed resource; a resource with syntax errors keeps what parsed (the tests
/// keep the catalogs free of errors).
fn resource(lang: Lang) -> FluentResource {
    FluentResource::try_new(source(lang).to_string()).unwrap_or_else(|(partial, _)| partial)
}

fn bundle(lang: Lang) -> &'static FluentBundle<FluentResource> {
    static BUNDLES: PerLang<FluentBundle<FluentResource>> = PerLang::new();
    BUNDLES.get(lang, || {
        let id =
            unic_langid::LanguageIdentifier::from_bytes(lang.code().as_bytes()).unwrap_or_default();
        let mut b = FluentBundle::new_concurrent(vec![id]);
        // Arguments are numbers and words of the same language: no isolation marks needed,
        // and none end up in a validator's display or a log line.
        b.set_use_isolating(false);
        // Duplicate ids keep the first message (the tests forbid duplicates).
        let _ = b.add_resource(resource(lang));
        b
    })
}

fn fluent_args<'a>(lang: Lang, args: &'a [(&'a str, Arg)]) -> FluentArgs<'a> {
    let mut out = FluentArgs::with_capacity(args.len());
    for (name, arg) in args {
        let value: FluentValue<'a> = match arg {
            Arg::Int(n) => format_int(lang, *n).into(),
            Arg::Count(n) => {
                out.set(format!("{name}_text"), format_int(lang, *n));
                FluentValue::from(*n)
            }
            Arg::Toman(r) => toman_number(lang, *r).into(),
            Arg::Amount(r) => text(lang, "amount", &amount_args(*r)).into(),
            Arg::ValidatorAmount(r) => text(lang, "validator-amount", &amount_args(*r)).into(),
            Arg::DateTime(t, off) => format_date_time(lang, *t, *off).into(),
            Arg::Date(t, off) => format_date(lang, *t, *off).into(),
            Arg::Text(s) => FluentValue::from(s.as_str()),
        };
        out.set(*name, value);
    }
    out
}

/// The message `id` in `lang` with `args`, and the references the arguments did not satisfy;
/// `None` when `lang`'s catalog has no such message.
fn format(lang: Lang, id: &str, args: &[(&str, Arg)]) -> Option<(String, Vec<FluentError>)> {
    let b = bundle(lang);
    let pattern = b.get_message(id).and_then(|m| m.value())?;
    let fargs = fluent_args(lang, args);
    let mut errors = Vec::new();
    let s = b.format_pattern(pattern, Some(&fargs), &mut errors);
    Some((s.into_owned(), errors))
}

/// The message `id` in `lang` with `args`, or why not: no such message, or a reference the
/// arguments do not satisfy.
pub fn text_checked(lang: Lang, id: &str, args: &[(&str, Arg)]) -> Result<String, String> {
    match format(lang, id, args) {
        None => Err(format!("no message {id:?} in the {lang} catalog")),
        Some((s, errors)) if errors.is_empty() => Ok(s),
        Some((_, errors)) => Err(format!("{lang} {id}: {errors:?}")),
    }
}

/// The message `id` in `lang` with `args`. A message missing in `lang` comes from English,
/// and a message missing there too is its id: the rider always sees something.
pub fn text(lang: Lang, id: &str, args: &[(&str, Arg)]) -> String {
    format(lang, id, args)
        .or_else(|| format(Lang::En, id, args))
        .map_or_else(|| id.to_string(), |(s, _)| s)
}

/// Whether `lang`'s catalog has the message `id`.
pub fn has_message(lang: Lang, id: &str) -> bool {
    bundle(lang).has_message(id)
}

/// Every message id of `lang`'s catalog, in file order, with any syntax errors of the file.
pub fn message_ids(lang: Lang) -> (Vec<String>, usize) {
    let (res, errors) = match FluentResource::try_new(source(lang).to_string()) {
        Ok(r) => (r, 0),
        Err((r, e)) => (r, e.len()),
    };
    let ids = res
        .entries()
        .filter_map(|e| match e {
            fluent_syntax::ast::Entry::Message(m) => Some(m.id.name.to_string()),
            _ => None,
        })
        .collect();
    (ids, errors)
}
