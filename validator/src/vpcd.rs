//! A card emulator over vsmartcard's virtual reader (vpcd): the "phone" side of a PC/SC tap.
//!
//! The card connects to vpcd as a TCP client (default `127.0.0.1:35963`, reader
//! `Virtual PCD 00 00`). Frames are a 2-byte big-endian length and a payload; a 1-byte payload
//! is a control message (0x00 power off, 0x01 power on, 0x02 reset, 0x04 get ATR, answered with
//! the ATR), anything longer is a C-APDU, answered with the R-APDU. `TCP_QUICKACK` is set
//! before every read: without it each APDU costs ~40 ms (Nagle + delayed ACK).

use socket2::SockRef;
use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// vpcd's first reader (`Virtual PCD 00 00`).
pub const DEFAULT_VPCD_ADDR: &str = "127.0.0.1:35963";

/// ATR of an ISO 14443-4 contactless card without historical bytes as PC/SC part 3 builds it
/// (3B 80 80 01 01: T=1).
pub const CONTACTLESS_ATR: [u8; 5] = [0x3B, 0x80, 0x80, 0x01, 0x01];

const CTRL_OFF: u8 = 0x00;
const CTRL_ON: u8 = 0x01;
const CTRL_RESET: u8 = 0x02;
const CTRL_ATR: u8 = 0x04;

/// A card the emulator presents.
pub trait EmulatedCard {
    fn atr(&self) -> Vec<u8> {
        CONTACTLESS_ATR.to_vec()
    }
    /// Answers one C-APDU with its R-APDU (data ‖ SW1 SW2).
    fn process_apdu(&mut self, apdu: &[u8]) -> Vec<u8>;
    /// The field dropped (power off or reset): the wallet's `deactivated()`.
    fn deactivated(&mut self) {}
}

/// An [`EmulatedCard`] from closures: APDU handler and field-drop handler.
pub struct FnCard<F, D>
where
    F: FnMut(&[u8]) -> Vec<u8>,
    D: FnMut(),
{
    pub on_apdu: F,
    pub on_deactivated: D,
}

impl<F: FnMut(&[u8]) -> Vec<u8>> FnCard<F, fn()> {
    /// A card that only answers APDUs.
    pub fn new(on_apdu: F) -> Self {
        Self {
            on_apdu,
            on_deactivated: || {},
        }
    }
}

impl<F, D> EmulatedCard for FnCard<F, D>
where
    F: FnMut(&[u8]) -> Vec<u8>,
    D: FnMut(),
{
    fn process_apdu(&mut self, apdu: &[u8]) -> Vec<u8> {
        (self.on_apdu)(apdu)
    }
    fn deactivated(&mut self) {
        (self.on_deactivated)()
    }
}

/// Why [`VpcdCard::serve`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServeEnd {
    /// vpcd closed the connection (pcscd stopped).
    Closed,
    /// The stop flag was set.
    Stopped,
    /// `max_idle` passed after the last APDU exchange had ended with a power-off/reset
    /// (the phone is "lifted" off the reader).
    Lifted,
}

/// Counters of one serving session.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ServeStats {
    pub apdus: u64,
    pub power_offs: u64,
    pub resets: u64,
}

/// A connection to vpcd, as the card.
#[derive(Debug)]
pub struct VpcdCard {
    stream: TcpStream,
    buf: Vec<u8>,
    pub stats: ServeStats,
}

impl VpcdCard {
    /// Connects once.
    pub fn connect(addr: &str) -> io::Result<Self> {
        let sa = addr
            .to_socket_addrs()?
            .next()
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no address"))?;
        let stream = TcpStream::connect_timeout(&sa, Duration::from_secs(2))?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(Duration::from_millis(100)))?;
        Ok(Self {
            stream,
            buf: Vec::with_capacity(512),
            stats: ServeStats::default(),
        })
    }

    /// Connects, retrying for up to `timeout` (vpcd appears when pcscd loads the driver).
    pub fn connect_retry(addr: &str, timeout: Duration) -> io::Result<Self> {
        let deadline = Instant::now() + timeout;
        loop {
            match Self::connect(addr) {
                Ok(c) => return Ok(c),
                Err(e) if Instant::now() >= deadline => return Err(e),
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }

    fn quickack(&self) {
        // Best effort: a failure only costs latency.
        let _ = SockRef::from(&self.stream).set_tcp_quickack(true);
    }

    /// Reads one frame; None on timeout (the stop flag is checked between reads).
    fn read_frame(&mut self) -> io::Result<Option<Vec<u8>>> {
        loop {
            if let Some(frame) = self.take_frame() {
                return Ok(Some(frame));
            }
            self.quickack();
            let mut tmp = [0u8; 1024];
            match self.stream.read(&mut tmp) {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "vpcd closed the connection",
                    ))
                }
                Ok(n) => self.buf.extend_from_slice(tmp.get(..n).unwrap_or(&[])),
                Err(e)
                    if e.kind() == io::ErrorKind::WouldBlock
                        || e.kind() == io::ErrorKind::TimedOut =>
                {
                    return Ok(None)
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    fn take_frame(&mut self) -> Option<Vec<u8>> {
        let (&hi, &lo) = (self.buf.first()?, self.buf.get(1)?);
        let len = usize::from(u16::from_be_bytes([hi, lo]));
        let frame = self.buf.get(2..2 + len)?.to_vec();
        self.buf.drain(..2 + len);
        Some(frame)
    }

    fn write_frame(&mut self, payload: &[u8]) -> io::Result<()> {
        let len = u16::try_from(payload.len())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "frame too long"))?;
        let mut out = Vec::with_capacity(payload.len() + 2);
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(payload);
        self.stream.write_all(&out)
    }

    /// Serves `card` until vpcd closes, `stop` is set, or (with `lift_after`) the card has been
    /// idle that long after a field drop that followed at least one APDU.
    pub fn serve(
        &mut self,
        card: &mut dyn EmulatedCard,
        stop: &AtomicBool,
        lift_after: Option<Duration>,
    ) -> io::Result<ServeEnd> {
        let mut dropped_at: Option<Instant> = None;
        let mut apdus_since_on = 0u64;
        loop {
            if stop.load(Ordering::Relaxed) {
                return Ok(ServeEnd::Stopped);
            }
            if let (Some(t), Some(lift)) = (dropped_at, lift_after) {
                if t.elapsed() >= lift {
                    return Ok(ServeEnd::Lifted);
                }
            }
            let frame = match self.read_frame() {
                Ok(Some(f)) => f,
                Ok(None) => continue,
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(ServeEnd::Closed),
                Err(e) => return Err(e),
            };
            match frame.as_slice() {
                [CTRL_OFF] => {
                    self.stats.power_offs += 1;
                    card.deactivated();
                    if apdus_since_on > 0 {
                        dropped_at = Some(Instant::now());
                    }
                    apdus_since_on = 0;
                }
                [CTRL_ON] => {}
                [CTRL_RESET] => {
                    self.stats.resets += 1;
                    card.deactivated();
                    if apdus_since_on > 0 {
                        dropped_at = Some(Instant::now());
                    }
                    apdus_since_on = 0;
                }
                [CTRL_ATR] => {
                    let atr = card.atr();
                    self.write_frame(&atr)?;
                }
                [_] | [] => {} // unknown control message: ignore
                apdu => {
                    dropped_at = None;
                    apdus_since_on += 1;
                    self.stats.apdus += 1;
                    let r = card.process_apdu(apdu);
                    // Never answer without a status word.
                    let r = if r.len() < 2 { vec![0x6F, 0x00] } else { r };
                    self.write_frame(&r)?;
                }
            }
        }
    }
}

/// Serves `card` on vpcd at `addr` until `stop` is set: reconnects when vpcd closes (pcscd
/// restarted), and, with `lift_after`, lifts the phone (closes the connection) after each tap
/// and presents it again after `lift_after` (so a validator sees one tap per presentation).
pub fn run_card(
    addr: &str,
    card: &mut dyn EmulatedCard,
    stop: &AtomicBool,
    lift_after: Option<Duration>,
    mut on_event: impl FnMut(&str),
) -> io::Result<ServeStats> {
    let mut total = ServeStats::default();
    while !stop.load(Ordering::Relaxed) {
        let mut conn = match VpcdCard::connect(addr) {
            Ok(c) => c,
            Err(e) => {
                on_event(&format!("cannot reach vpcd at {addr}: {e}; retrying"));
                std::thread::sleep(Duration::from_millis(500));
                continue;
            }
        };
        on_event(&format!("card presented on vpcd {addr}"));
        let end = conn.serve(card, stop, lift_after);
        total.apdus += conn.stats.apdus;
        total.power_offs += conn.stats.power_offs;
        total.resets += conn.stats.resets;
        match end? {
            ServeEnd::Stopped => break,
            ServeEnd::Closed => {
                on_event("vpcd closed the connection; reconnecting");
                std::thread::sleep(Duration::from_millis(200));
            }
            ServeEnd::Lifted => {
                card.deactivated();
                on_event("phone lifted from the reader");
                drop(conn);
                if let Some(l) = lift_after {
                    std::thread::sleep(l);
                }
            }
        }
    }
    Ok(total)
}
