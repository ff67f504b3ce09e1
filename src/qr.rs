//! QR rendering of boarding passes: a module matrix for native drawing, SVG, PNG and a
//! terminal string. ECC level M; the pass text is in the QR alphanumeric set, so the encoder
//! uses alphanumeric mode.

use crate::error::WalletError;
use qrcode::canvas::{Canvas, MaskPattern};
use qrcode::{Color, EcLevel, Version};

const MASKS: [MaskPattern; 8] = [
    MaskPattern::Checkerboard,
    MaskPattern::HorizontalLines,
    MaskPattern::VerticalLines,
    MaskPattern::DiagonalLines,
    MaskPattern::LargeCheckerboard,
    MaskPattern::Fields,
    MaskPattern::Diamonds,
    MaskPattern::Meadow,
];

/// ISO/IEC 18004 §7.8.3 mask penalty (N1 runs, N2 blocks, N3 finder-like, N4 balance) of a
/// square row-major matrix.
fn penalty(m: &[bool], w: usize) -> u32 {
    let at = |x: usize, y: usize| m.get(y * w + x).copied().unwrap_or(false);
    let mut score = 0u32;
    // N1 and N3 over rows and columns
    const FINDER_A: [bool; 11] = [
        true, false, true, true, true, false, true, false, false, false, false,
    ];
    const FINDER_B: [bool; 11] = [
        false, false, false, false, true, false, true, true, true, false, true,
    ];
    for horizontal in [true, false] {
        for i in 0..w {
            let get = |j: usize| if horizontal { at(j, i) } else { at(i, j) };
            let mut run = 1usize;
            for j in 1..=w {
                if j < w && get(j) == get(j - 1) {
                    run += 1;
                } else {
                    if run >= 5 {
                        score += 3 + (run as u32 - 5);
                    }
                    run = 1;
                }
            }
            for j in 0..w.saturating_sub(10) {
                let matches = |p: &[bool; 11]| p.iter().enumerate().all(|(k, &d)| get(j + k) == d);
                if matches(&FINDER_A) || matches(&FINDER_B) {
                    score += 40;
                }
            }
        }
    }
    // N2
    for y in 0..w.saturating_sub(1) {
        for x in 0..w.saturating_sub(1) {
            let c = at(x, y);
            if at(x + 1, y) == c && at(x, y + 1) == c && at(x + 1, y + 1) == c {
                score += 3;
            }
        }
    }
    // N4
    let dark = m.iter().filter(|&&d| d).count();
    let total = m.len().max(1);
    let percent = dark * 100 / total;
    let deviation = percent.abs_diff(50) / 5;
    score + 10 * deviation as u32
}

/// Modules of light border the QR specification asks for around the symbol.
pub const QUIET_ZONE: u32 = 4;
/// Largest QR version a pass may need (the design's budget at ECC level M).
pub const MAX_QR_VERSION: u8 = 13;

/// A QR symbol as a square matrix of modules, without the quiet zone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QrMatrix {
    /// Modules per side.
    pub width: u32,
    /// QR version (1–40).
    pub version: u8,
    /// Row-major, `width * width` entries; true = dark.
    pub modules: Vec<bool>,
}

impl QrMatrix {
    /// Encodes `text` at ECC level M, choosing the mask with the lowest ISO/IEC 18004 penalty
    /// (scored here on the finished matrix: the same rules as the `qrcode` crate's
    /// `apply_best_mask`, several times faster).
    pub fn encode(text: &str) -> Result<Self, WalletError> {
        let qr_err =
            |e: qrcode::types::QrError| WalletError::internal(format!("QR encoding failed: {e}"));
        let bits = qrcode::bits::encode_auto(text.as_bytes(), EcLevel::M).map_err(qr_err)?;
        let version = bits.version();
        let data = bits.into_bytes();
        let (codewords, ec) =
            qrcode::ec::construct_codewords(&data, version, EcLevel::M).map_err(qr_err)?;
        let mut canvas = Canvas::new(version, EcLevel::M);
        canvas.draw_all_functional_patterns();
        canvas.draw_data(&codewords, &ec);
        let v = match version {
            Version::Normal(v) => u8::try_from(v).unwrap_or(u8::MAX),
            Version::Micro(_) => 0,
        };
        let width = u32::try_from(version.width())
            .map_err(|_| WalletError::internal("QR width out of range"))?;
        let mut best: Option<(u32, Vec<bool>)> = None;
        for pattern in MASKS {
            let mut c = canvas.clone();
            c.apply_mask(pattern);
            let modules: Vec<bool> = c
                .into_colors()
                .into_iter()
                .map(|c| c == Color::Dark)
                .collect();
            let score = penalty(&modules, width as usize);
            if best.as_ref().is_none_or(|(s, _)| score < *s) {
                best = Some((score, modules));
            }
        }
        let (_, modules) = best.ok_or_else(|| WalletError::internal("no QR mask"))?;
        Ok(Self {
            width,
            version: v,
            modules,
        })
    }

    /// True if the module at column `x`, row `y` is dark (false outside the symbol).
    pub fn is_dark(&self, x: u32, y: u32) -> bool {
        if x >= self.width || y >= self.width {
            return false;
        }
        let i = (y as usize) * (self.width as usize) + x as usize;
        self.modules.get(i).copied().unwrap_or(false)
    }

    /// Same, with the quiet zone: coordinates start at the outer corner of the border.
    fn is_dark_framed(&self, x: u32, y: u32) -> bool {
        match (x.checked_sub(QUIET_ZONE), y.checked_sub(QUIET_ZONE)) {
            (Some(x), Some(y)) => self.is_dark(x, y),
            _ => false,
        }
    }

    fn framed_width(&self) -> u32 {
        self.width.saturating_add(2 * QUIET_ZONE)
    }

    /// A standalone SVG document, `module_px` user units per module, quiet zone included.
    pub fn to_svg(&self, module_px: u32) -> String {
        let m = module_px.max(1);
        let side = self.framed_width().saturating_mul(m);
        let mut path = String::with_capacity(self.modules.len() * 4);
        for y in 0..self.width {
            let mut x = 0;
            while x < self.width {
                if self.is_dark(x, y) {
                    let start = x;
                    while x < self.width && self.is_dark(x, y) {
                        x += 1;
                    }
                    path.push_str(&format!(
                        "M{},{}h{}v1h-{}z",
                        start + QUIET_ZONE,
                        y + QUIET_ZONE,
                        x - start,
                        x - start
                    ));
                } else {
                    x += 1;
                }
            }
        }
        let n = self.framed_width();
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\" \
             version=\"1.1\" width=\"{side}\" height=\"{side}\" viewBox=\"0 0 {n} {n}\" \
             shape-rendering=\"crispEdges\"><rect width=\"{n}\" height=\"{n}\" fill=\"#fff\"/>\
             <path fill=\"#000\" d=\"{path}\"/></svg>\n"
        )
    }

    /// An 8-bit grayscale PNG, `module_px` pixels per module, quiet zone included.
    pub fn to_png(&self, module_px: u32) -> Result<Vec<u8>, WalletError> {
        let m = module_px.clamp(1, 64);
        let side = self.framed_width().saturating_mul(m);
        let mut pixels = Vec::with_capacity((side as usize) * (side as usize));
        for py in 0..side {
            for px in 0..side {
                pixels.push(if self.is_dark_framed(px / m, py / m) {
                    0u8
                } else {
                    255u8
                });
            }
        }
        let mut out = Vec::new();
        {
            let mut enc = png::Encoder::new(&mut out, side, side);
            enc.set_color(png::ColorType::Grayscale);
            enc.set_depth(png::BitDepth::Eight);
            let mut w = enc
                .write_header()
                .map_err(|e| WalletError::internal(format!("PNG encoding failed: {e}")))?;
            w.write_image_data(&pixels)
                .map_err(|e| WalletError::internal(format!("PNG encoding failed: {e}")))?;
            w.finish()
                .map_err(|e| WalletError::internal(format!("PNG encoding failed: {e}")))?;
        }
        Ok(out)
    }

    /// Unicode half blocks, two module rows per text line, quiet zone included. Light modules
    /// are drawn as blocks, so on the usual dark terminal background the symbol has the
    /// polarity scanners expect (dark modules on a light field).
    pub fn to_terminal(&self) -> String {
        let n = self.framed_width();
        let mut s = String::with_capacity(((n as usize) + 1) * (n as usize).div_ceil(2) * 3);
        let mut y = 0;
        while y < n {
            for x in 0..n {
                let top_light = !self.is_dark_framed(x, y);
                let bottom_light = y + 1 < n && !self.is_dark_framed(x, y + 1);
                s.push(match (top_light, bottom_light) {
                    (true, true) => '█',
                    (true, false) => '▀',
                    (false, true) => '▄',
                    (false, false) => ' ',
                });
            }
            s.push('\n');
            y += 2;
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_are_consistent_with_the_matrix() {
        let q = QrMatrix::encode("MC2:HELLO WORLD").unwrap();
        assert_eq!(q.modules.len(), (q.width * q.width) as usize);
        assert_eq!(q.width, 21);
        // finder pattern corner is dark, the module right after the separator is light
        assert!(q.is_dark(0, 0) && !q.is_dark(7, 0) && !q.is_dark(q.width, 0));
        let svg = q.to_svg(4);
        assert!(svg.starts_with("<?xml") && svg.contains("viewBox=\"0 0 29 29\""));
        let png_bytes = q.to_png(2).unwrap();
        let dec = png::Decoder::new(std::io::Cursor::new(png_bytes));
        let mut r = dec.read_info().unwrap();
        let mut buf = vec![0; r.output_buffer_size()];
        let info = r.next_frame(&mut buf).unwrap();
        assert_eq!((info.width, info.height), (58, 58));
        // pixel (8,8) is module (0,0) of the symbol: dark; (0,0) is quiet zone: light
        assert_eq!(buf[8 * 58 + 8], 0);
        assert_eq!(buf[0], 255);
        let t = q.to_terminal();
        assert_eq!(t.lines().count(), 15);
        assert!(t.lines().all(|l| l.chars().count() == 29));
    }
}
