//! `mancard wallet apdu-session`: the wallet as a card held in a scripted NFC field.
//!
//! The wallet is opened once; each line of stdin is a command APDU in hex, answered by one line
//! of hex on stdout, and the NFC session (`SELECT` … `AUTHORIZE TAP` … `READ CERTIFICATE`) is
//! kept from line to line until `deactivate` or EOF, so a whole tap can be scripted (the
//! one-shot `apdu` can only ever answer the first command of a tap). The protocol of the
//! stream is [`PROTOCOL`], shown by `--help`.

use super::open;
use crate::CliResult;
use mancard::Wallet;
use mancard_protocol::{ResponseApdu, StatusWord};
use std::io::{self, BufRead, Write};
use std::path::Path;
use std::process::ExitCode;

/// The stream's protocol, for `--help` (and the README's CLI table).
pub(super) const PROTOCOL: &str = "\
The stream, line by line (stdin → stdout):

  <hex>         a command APDU, e.g. `00A4040009F04D414E434152440100` (SELECT). Upper- or
                lowercase digits, spaces and tabs between them allowed (`00 a4 04 00 …`).
                Answered by exactly one line on stdout, flushed at once: the response APDU
                (data ‖ SW1 SW2) in UPPERCASE hex without spaces, e.g. `…9000`. The wallet
                answers every byte string with a status word: a truncated or inconsistent
                APDU gets 6700, an unknown instruction 6D00, a command out of order 6985.
  deactivate    the NFC field drops (the wallet's `deactivated()`): the session ends and the
                next command must begin with SELECT. No answer line.
  (blank), #…   ignored, no answer line; `#` starts a comment anywhere on a line.
  anything else not hex (a stray character, an odd number of digits, a line over 4096
                bytes): answered `6700` (wrong length: no well-formed command arrived, as for a
                truncated APDU; 6F00 is kept for the wallet's own internal failure) with a
                message on stderr. The session goes on unchanged, as when a reader's garbled
                frame never reaches the card.

The session is kept between lines, as in one field: a whole tap (SELECT, AUTHORIZE TAP, READ
CERTIFICATE) and any number of taps can be sent through one process. EOF (Ctrl-D) drops the
field, closes the wallet cleanly (the counter is recorded) and exits 0; killing the process
(Ctrl-C) is a crash to the wallet (the rest of its reserved counter block is skipped). Exit 2
with a message when the wallet cannot be opened, or stdin or stdout fails. Only the answers a
reader in the field would receive are printed, never a key. One summary line on stderr at
the end. PC/SC tools drive the wallet through `mancard phone` instead.

Example:  printf '00A4040009F04D414E434152440100\\n' | mancard wallet --data-dir DIR apdu-session";

/// The longest line read (bytes, without its newline): a short APDU is at most 261 bytes (522
/// hex digits); the rest leaves room for spaces and a comment.
const MAX_LINE: usize = 4096;

/// The answer to a line that is not a command APDU in hex: wrong length, as the wallet answers
/// any byte string that is not a well-formed command (6F00 would read as the wallet's own
/// internal failure).
const NOT_HEX: StatusWord = StatusWord::WrongLength;

/// What one line of the stream asks for.
#[derive(Debug, PartialEq, Eq)]
enum Line {
    /// A blank line or a comment: nothing, no answer.
    Nothing,
    /// `deactivate`: the field drops.
    Deactivate,
    /// A command APDU.
    Apdu(Vec<u8>),
    /// Not a command APDU in hex: why.
    Bad(String),
}

/// Reads what one line means (`raw` without its newline).
fn parse_line(raw: &[u8]) -> Line {
    let Ok(text) = std::str::from_utf8(raw) else {
        return Line::Bad("not text (invalid UTF-8)".into());
    };
    let text = text
        .split_once('#')
        .map_or(text, |(before, _)| before)
        .trim();
    if text.is_empty() {
        return Line::Nothing;
    }
    if text.eq_ignore_ascii_case("deactivate") {
        return Line::Deactivate;
    }
    let digits: String = text.split_whitespace().collect();
    match hex::decode(&digits) {
        Ok(bytes) => Line::Apdu(bytes),
        Err(e) => Line::Bad(format!("not a command APDU in hex ({e})")),
    }
}

/// Reads one line into `buf` (without its newline or carriage return), keeping at most
/// [`MAX_LINE`] bytes of it: `None` at EOF, `Some(true)` when the line was longer (the rest
/// is read and dropped).
fn next_line(input: &mut impl BufRead, buf: &mut Vec<u8>) -> io::Result<Option<bool>> {
    buf.clear();
    let (mut seen, mut overlong) = (false, false);
    loop {
        let chunk = match input.fill_buf() {
            Ok(c) => c,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if chunk.is_empty() {
            return Ok(seen.then_some(overlong));
        }
        seen = true;
        let end = chunk.iter().position(|&b| b == b'\n');
        let part = chunk.get(..end.unwrap_or(chunk.len())).unwrap_or_default();
        let keep = part.len().min(MAX_LINE.saturating_sub(buf.len()));
        overlong |= keep < part.len();
        buf.extend_from_slice(part.get(..keep).unwrap_or_default());
        let used = end.map_or(chunk.len(), |i| i.saturating_add(1));
        input.consume(used);
        if end.is_some() {
            if buf.last() == Some(&b'\r') {
                buf.pop();
            }
            return Ok(Some(overlong));
        }
    }
}

/// What a session did, for the summary line.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Tally {
    apdus: u64,
    bad: u64,
    deactivations: u64,
}

/// The card a session serves: its answer to a command, and the field drop.
trait Card {
    fn process(&mut self, command: Vec<u8>) -> Vec<u8>;
    fn deactivated(&mut self);
}

impl Card for &Wallet {
    fn process(&mut self, command: Vec<u8>) -> Vec<u8> {
        self.process_apdu(command)
    }

    fn deactivated(&mut self) {
        Wallet::deactivated(self);
    }
}

/// Serves the stream until EOF: one answer line per APDU line, flushed at once; a message on
/// `err` for each line that is not hex. An error when `input` or `out` fails.
fn serve(
    card: &mut impl Card,
    input: &mut impl BufRead,
    out: &mut impl Write,
    err: &mut impl Write,
) -> io::Result<Tally> {
    let mut tally = Tally::default();
    let mut buf = Vec::with_capacity(MAX_LINE);
    let mut number = 0u64;
    while let Some(overlong) = next_line(input, &mut buf)? {
        number = number.saturating_add(1);
        let line = if overlong {
            Line::Bad(format!("a line over {MAX_LINE} bytes"))
        } else {
            parse_line(&buf)
        };
        let answer = match line {
            Line::Nothing => continue,
            Line::Deactivate => {
                card.deactivated();
                tally.deactivations = tally.deactivations.saturating_add(1);
                continue;
            }
            Line::Apdu(command) => {
                tally.apdus = tally.apdus.saturating_add(1);
                card.process(command)
            }
            Line::Bad(why) => {
                tally.bad = tally.bad.saturating_add(1);
                // stderr is for humans: a failure to write there does not end the session.
                let _ = writeln!(
                    err,
                    "apdu-session: line {number}: {why}: answered {:04X}",
                    NOT_HEX.code()
                );
                ResponseApdu::status(NOT_HEX).encode()
            }
        };
        writeln!(out, "{}", hex::encode_upper(answer))?;
        out.flush()?;
    }
    Ok(tally)
}

/// `apdu-session`: opens the wallet in `dir`, serves stdin until EOF, then drops the field and
/// closes the wallet.
pub(super) fn run(dir: &Path) -> CliResult {
    let wallet = open(dir).map_err(|e| format!("apdu-session: {e}"))?;
    if wallet.config_version().is_none() {
        eprintln!(
            "apdu-session: warning: this wallet has no config bundle: it answers no reader \
             (69C1) until it syncs or `mancard wallet install-config`"
        );
    }
    let served = serve(
        &mut &wallet,
        &mut io::stdin().lock(),
        &mut io::stdout().lock(),
        &mut io::stderr(),
    );
    // The field drops and the wallet closes cleanly whatever ended the stream: the next
    // counter is recorded, so the next process resumes there.
    wallet.deactivated();
    let closed = wallet.close();
    let tally = served.map_err(|e| format!("apdu-session: the stream failed: {e}"))?;
    closed.map_err(|e| format!("apdu-session: the wallet did not close cleanly: {e}"))?;
    eprintln!(
        "apdu-session: {} APDU(s) answered, {} line(s) not hex, {} deactivation(s)",
        tally.apdus, tally.bad, tally.deactivations
    );
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A card that answers each command with its own bytes and 9000, and counts field drops.
    #[derive(Default)]
    struct Echo {
        seen: Vec<Vec<u8>>,
        drops: u32,
    }

    impl Card for Echo {
        fn process(&mut self, command: Vec<u8>) -> Vec<u8> {
            self.seen.push(command.clone());
            ResponseApdu::ok(command).encode()
        }

        fn deactivated(&mut self) {
            self.drops += 1;
        }
    }

    fn run_on(input: &[u8]) -> (Echo, Tally, String, String) {
        let mut card = Echo::default();
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let tally = serve(&mut card, &mut &input[..], &mut out, &mut err).unwrap();
        let text = |b: Vec<u8>| String::from_utf8(b).unwrap();
        (card, tally, text(out), text(err))
    }

    #[test]
    fn lines_mean_what_the_protocol_says() {
        assert_eq!(parse_line(b""), Line::Nothing);
        assert_eq!(parse_line(b"  \t "), Line::Nothing);
        assert_eq!(parse_line(b"# SELECT 00A4"), Line::Nothing);
        assert_eq!(parse_line(b"  DeActivate  # field off"), Line::Deactivate);
        assert_eq!(
            parse_line(b"00 a4\t04 00 # select"),
            Line::Apdu(vec![0x00, 0xA4, 0x04, 0x00])
        );
        assert!(matches!(parse_line(b"00A"), Line::Bad(m) if m.contains("not a command APDU")));
        assert!(matches!(parse_line(b"zz"), Line::Bad(_)));
        assert!(matches!(parse_line(b"deactivated"), Line::Bad(_)));
        assert!(matches!(parse_line(&[0xFF, 0xFE]), Line::Bad(m) if m.contains("UTF-8")));
    }

    #[test]
    fn one_answer_per_apdu_line_and_none_for_the_rest() {
        let (card, tally, out, err) =
            run_on(b"# a tap\n\n00a4 0400\r\nzz\ndeactivate\n80 10 00 00");
        assert_eq!(out, "00A404009000\n6700\n801000009000\n");
        assert_eq!(
            card.seen,
            vec![vec![0x00, 0xA4, 0x04, 0x00], vec![0x80, 0x10, 0x00, 0x00]]
        );
        assert_eq!(card.drops, 1);
        assert_eq!(
            tally,
            Tally {
                apdus: 2,
                bad: 1,
                deactivations: 1
            }
        );
        assert_eq!(err, "apdu-session: line 4: not a command APDU in hex (Invalid character 'z' at position 0): answered 6700\n");
    }

    #[test]
    fn an_overlong_line_is_answered_once_and_the_stream_goes_on() {
        let mut input = vec![b'0'; MAX_LINE * 3 + 2];
        input.extend_from_slice(b"\n00B0\n");
        let (card, tally, out, err) = run_on(&input);
        assert_eq!(out, "6700\n00B09000\n");
        assert_eq!(card.seen, vec![vec![0x00, 0xB0]]);
        assert_eq!((tally.apdus, tally.bad), (1, 1));
        assert!(err.contains("line 1: a line over 4096 bytes"), "{err}");
    }
}
