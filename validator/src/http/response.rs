//! HTTP/1.1 responses: status, Content-Length or chunked body, and whether the response
//! carried its own framing.

use super::{HttpError, MAX_BODY};

/// A response: status and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
}

impl Response {
    /// The body if the status is 2xx, an error with the body's text otherwise.
    pub fn ok(self) -> Result<Vec<u8>, HttpError> {
        if (200..300).contains(&self.status) {
            Ok(self.body)
        } else {
            Err(HttpError::Status {
                status: self.status,
                body: String::from_utf8_lossy(&self.body)
                    .chars()
                    .take(500)
                    .collect(),
            })
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Parses a complete HTTP/1.1 response (the connection was closed by the server).
pub fn parse_response(raw: &[u8]) -> Result<Response, HttpError> {
    parse_response_framed(raw).map(|(r, _)| r)
}

/// As [`parse_response`]; also tells whether the body's end was given by the response itself
/// (Content-Length or chunked) rather than by the end of the connection.
pub(super) fn parse_response_framed(raw: &[u8]) -> Result<(Response, bool), HttpError> {
    let end =
        find(raw, b"\r\n\r\n").ok_or_else(|| HttpError::Protocol("no end of headers".into()))?;
    let (head, rest) = raw.split_at(end);
    let body = rest.get(4..).unwrap_or(&[]);
    let head =
        std::str::from_utf8(head).map_err(|_| HttpError::Protocol("headers not UTF-8".into()))?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| HttpError::Protocol(format!("bad status line {status_line:?}")))?;
    let mut content_length = None;
    let mut chunked = false;
    for l in lines {
        if let Some((k, v)) = l.split_once(':') {
            let k = k.trim().to_ascii_lowercase();
            let v = v.trim();
            if k == "content-length" {
                content_length = Some(
                    v.parse::<usize>()
                        .map_err(|_| HttpError::Protocol("bad Content-Length".into()))?,
                );
            } else if k == "transfer-encoding" && v.to_ascii_lowercase().contains("chunked") {
                chunked = true;
            }
        }
    }
    let framed = chunked || content_length.is_some() || status == 204 || status == 304;
    let body = if chunked {
        dechunk(body)?
    } else if let Some(n) = content_length {
        body.get(..n)
            .ok_or_else(|| HttpError::Protocol("body shorter than Content-Length".into()))?
            .to_vec()
    } else {
        body.to_vec()
    };
    Ok((Response { status, body }, framed))
}

fn dechunk(mut b: &[u8]) -> Result<Vec<u8>, HttpError> {
    let mut out = Vec::new();
    loop {
        let eol = find(b, b"\r\n").ok_or_else(|| HttpError::Protocol("bad chunk".into()))?;
        let (size_line, rest) = b.split_at(eol);
        let size_txt = std::str::from_utf8(size_line)
            .map_err(|_| HttpError::Protocol("bad chunk size".into()))?;
        let size_txt = size_txt.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_txt, 16)
            .map_err(|_| HttpError::Protocol("bad chunk size".into()))?;
        let rest = rest.get(2..).unwrap_or(&[]);
        if size == 0 {
            return Ok(out);
        }
        if out.len().saturating_add(size) > MAX_BODY {
            return Err(HttpError::Protocol("body too large".into()));
        }
        let chunk = rest
            .get(..size)
            .ok_or_else(|| HttpError::Protocol("truncated chunk".into()))?;
        out.extend_from_slice(chunk);
        b = rest.get(size + 2..).unwrap_or(&[]);
    }
}
