//! `mancard backend serve` without `--sandbox` refuses to start without real providers, with
//! a message that says what to configure; provider flags are checked; the sandbox gateway
//! process refuses unknown failure switches and serves its page over HTTP.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

fn mancard() -> Command {
    Command::new(env!("CARGO_BIN_EXE_mancard"))
}

fn fails_with(args: &[&str], env: &[(&str, &str)], needle: &str) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("b.sqlite");
    let mut c = mancard();
    c.args(["backend", "serve", "--db"])
        .arg(&db)
        .args(["--listen", "127.0.0.1:0"]);
    c.args(args)
        .env_remove("MANCARD_SMS_API_KEY")
        .env_remove("MANCARD_GATEWAY_API_KEY");
    for (k, v) in env {
        c.env(k, v);
    }
    let out = c.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
    assert!(stderr.contains(needle), "{args:?}: {stderr}");
}

#[test]
fn production_mode_refuses_to_start_without_real_providers() {
    fails_with(&[], &[], "no SMS provider configured");
    let sms = [
        "--sms-url",
        "https://api.kavenegar.example/v1",
        "--sms-template",
        "otp",
    ];
    fails_with(&sms, &[], "MANCARD_SMS_API_KEY");
    let key = [("MANCARD_SMS_API_KEY", "0123456789abcdef")];
    fails_with(&sms, &key, "no payment gateway configured");
    let mut plain_http = sms.to_vec();
    plain_http.extend([
        "--gateway-url",
        "http://ipg.example.ir",
        "--gateway-terminal",
        "T1",
    ]);
    fails_with(&plain_http, &key, "must be an https:// URL");
    fails_with(&["--sms-url", "https://x.example"], &[], "go together");
}

#[test]
fn the_sandbox_gateway_process_serves_and_checks_its_switches() {
    let out = mancard()
        .args([
            "gateway-sandbox",
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--fail",
            "verify-never",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown gateway failure switch"));

    let mut child = mancard()
        .args([
            "gateway-sandbox",
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--fail",
            "settle-fails",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line.trim().rsplit(' ').next().unwrap().to_string();
    assert!(url.starts_with("http://127.0.0.1:"), "{line}");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let http = reqwest::Client::builder().no_proxy().build().unwrap();
        let a: serde_json::Value = http
            .post(format!("{url}/ipg/v1/token"))
            .json(
                &serde_json::json!({"terminal_id": "T1", "amount": 10000, "order_id": "o1",
                                      "callback_url": "http://127.0.0.1:9/cb"}),
            )
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(a["result"], 0);
        let token = a["token"].as_str().unwrap();
        let page = http
            .get(format!("{url}/pay/{token}"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(page.contains("10000") && page.contains("id=\"pay\""));
    });
    child.kill().unwrap();
    child.wait().unwrap();
}
