//! The demo's sandbox payment gateway: `mancard gateway-sandbox serve` started as a child
//! process of this very binary on an ephemeral loopback port (the backend talks to it over
//! HTTP, as it would to a bank's gateway). Stopped (killed and reaped) when dropped.

use super::Res;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

pub(super) struct GatewayChild {
    child: Child,
    pub(super) url: String,
}

impl GatewayChild {
    pub(super) fn spawn() -> Res<Self> {
        let exe = std::env::current_exe()?;
        let mut child = Command::new(exe)
            .args(["gateway-sandbox", "serve", "--listen", "127.0.0.1:0"])
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start the sandbox gateway: {e}"))?;
        let line = match child.stdout.take() {
            Some(out) => {
                let mut line = String::new();
                BufReader::new(out).read_line(&mut line)?;
                line
            }
            None => String::new(),
        };
        let url = line
            .trim()
            .rsplit(' ')
            .next()
            .filter(|u| u.starts_with("http://"))
            .map(str::to_string);
        match url {
            Some(url) => Ok(Self { child, url }),
            None => {
                let _ = child.kill();
                let _ = child.wait();
                Err(format!("the sandbox gateway did not start (it said {line:?})").into())
            }
        }
    }
}

impl Drop for GatewayChild {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
