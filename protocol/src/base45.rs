//! Base45 (RFC 9285): binary to the QR alphanumeric alphabet.

use crate::codec::DecodeError;

const ALPHABET: &[u8; 45] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:";

fn value_of(c: u8) -> Option<u16> {
    ALPHABET.iter().position(|&a| a == c).map(|p| p as u16)
}

fn ch(v: u32) -> char {
    char::from(ALPHABET.get(v as usize).copied().unwrap_or(b'0'))
}

pub fn encode(input: &[u8]) -> String {
    let mut out = String::with_capacity(input.len().div_ceil(2) * 3);
    for chunk in input.chunks(2) {
        match *chunk {
            [a, b] => {
                let n = u32::from(a) * 256 + u32::from(b);
                out.push(ch(n % 45));
                out.push(ch((n / 45) % 45));
                out.push(ch(n / 2025));
            }
            [a] => {
                let n = u32::from(a);
                out.push(ch(n % 45));
                out.push(ch(n / 45));
            }
            _ => {}
        }
    }
    out
}

pub fn decode(input: &str) -> Result<Vec<u8>, DecodeError> {
    let bytes = input.as_bytes();
    if bytes.len() % 3 == 1 {
        return Err(DecodeError::InvalidText {
            reason: "Base45 length leaves a dangling character",
        });
    }
    let mut out = Vec::with_capacity(bytes.len() / 3 * 2 + 1);
    for chunk in bytes.chunks(3) {
        let mut vals = [0u32; 3];
        for (v, &c) in vals.iter_mut().zip(chunk) {
            *v = u32::from(value_of(c).ok_or(DecodeError::InvalidText {
                reason: "character outside the Base45 alphabet",
            })?);
        }
        match chunk.len() {
            3 => {
                let n = vals[0] + vals[1] * 45 + vals[2] * 2025;
                if n > 0xFFFF {
                    return Err(DecodeError::InvalidText {
                        reason: "Base45 triplet out of range",
                    });
                }
                out.push((n >> 8) as u8);
                out.push((n & 0xFF) as u8);
            }
            2 => {
                let n = vals[0] + vals[1] * 45;
                if n > 0xFF {
                    return Err(DecodeError::InvalidText {
                        reason: "Base45 pair out of range",
                    });
                }
                out.push(n as u8);
            }
            _ => {
                return Err(DecodeError::InvalidText {
                    reason: "Base45 length leaves a dangling character",
                })
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc9285_examples() {
        assert_eq!(encode(b"AB"), "BB8");
        assert_eq!(encode(b"Hello!!"), "%69 VD92EX0");
        assert_eq!(encode(b"base-45"), "UJCLQE7W581");
        assert_eq!(decode("QED8WEX0").unwrap(), b"ietf!");
        assert!(decode("GGW").is_err()); // 65535+ out of range per RFC
        assert!(decode("ab").is_err());
        assert!(decode("A").is_err());
    }
}
