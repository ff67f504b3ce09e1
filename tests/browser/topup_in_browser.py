"""The rider's part of a top-up, in a real headless Chromium (Debian's chromium and
chromium-driver, driven by Selenium):

1. pay: the wallet (`mancard wallet`) starts a top-up and gets a payment URL; the browser opens
   it on the sandbox gateway (`mancard gateway-sandbox serve`, its own process), presses Pay,
   follows the redirect back to the backend's return page; the wallet then sees exactly one
   credit, the gateway shows the payment settled, the ledger audits clean;
2. cancel: the Cancel button: nothing credited, the intent is cancelled;
3. closed tab: the page is opened and the tab closed without paying; the intent stays
   pending, then expires (the gateway's clock is moved past the token's lifetime), and
   reconciliation credits nothing.

Usage: topup_in_browser.py MANCARD_BINARY WORK_DIR (scripts/browser-test.sh runs it).
Exits non-zero on the first failed check.
"""

import json
import os
import re
import subprocess
import sys
import time
import urllib.request

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

MANCARD, WORK = sys.argv[1], sys.argv[2]
PHONE = "+989127771234"
AMOUNT = 50000
CHILDREN = []


def check(cond, what):
    if not cond:
        raise AssertionError(what)
    print(f"ok: {what}")


def spawn(args, log, pattern):
    """Starts a child, returns (process, the URL its log announces)."""
    f = open(log, "w+")
    p = subprocess.Popen(args, stdout=f, stderr=subprocess.STDOUT, env={**os.environ, "RUST_LOG": "info"})
    CHILDREN.append(p)
    deadline = time.time() + 60
    while time.time() < deadline:
        f.seek(0)
        m = re.search(pattern, f.read())
        if m:
            return p, m.group(1)
        if p.poll() is not None:
            break
        time.sleep(0.1)
    f.seek(0)
    raise RuntimeError(f"{args[1]} did not start: {f.read()}")


def http(method, url, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        text = r.read().decode()
        return json.loads(text) if text.strip().startswith(("{", "[")) else text


def wallet(backend, *args):
    out = subprocess.run(
        # English: this script reads the wallet's lines (riders get Persian by default)
        [MANCARD, "wallet", "--lang", "en", "--data-dir", os.path.join(WORK, "wallet"), "--backend", backend,
         *args],
        capture_output=True, text=True, timeout=120,
    )
    if out.returncode != 0:
        raise RuntimeError(f"wallet {args}: {out.stdout}{out.stderr}")
    return out.stdout


def field(text, name):
    m = re.search(rf"^{name}:\s+(\S+)", text, re.M)
    check(m is not None, f"the wallet printed its {name}")
    return m.group(1)


def browser():
    o = webdriver.ChromeOptions()
    o.binary_location = "/usr/bin/chromium"
    for a in ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
              "--disable-background-networking", "--disable-component-update", "--disable-sync",
              "--disable-dev-shm-usage", f"--user-data-dir={os.path.join(WORK, 'chromium-profile')}"]:
        o.add_argument(a)
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=o)


def backend_balance(backend):
    m = re.search(r"backend balance:[^(\n]*\(([\d,]+) rials\)", wallet(backend, "balance"))
    check(m is not None, "the wallet read the backend balance")
    return int(m.group(1).replace(",", ""))


def main():
    gw_proc, gateway = spawn([MANCARD, "gateway-sandbox", "serve", "--listen", "127.0.0.1:0"],
                             os.path.join(WORK, "gateway.log"), r"listening on (http://\S+)")
    db = os.path.join(WORK, "backend.sqlite")
    be_proc, backend = spawn([MANCARD, "backend", "serve", "--sandbox", "--db", db, "--listen", "127.0.0.1:0",
                              "--sandbox-gateway-url", gateway],
                             os.path.join(WORK, "backend.log"), r"listening on (http://\S+)")
    wallet(backend, "register", PHONE)
    code = http("GET", f"{backend}/sandbox/otp?phone=%2B989127771234")["code"]
    wallet(backend, "verify", PHONE, code)
    d = browser()
    try:
        # 1. pay in the browser
        out = wallet(backend, "topup", str(AMOUNT))
        intent, url = field(out, "top-up"), field(out, "payment URL")
        check(url.startswith(gateway + "/pay/"), "the payment URL is the sandbox gateway's page")
        token = url.rsplit("/", 1)[1]
        d.get(url)
        check(d.find_element(By.ID, "amount").text == str(AMOUNT), "the page shows the amount")
        d.find_element(By.ID, "pay").click()
        WebDriverWait(d, 30).until(EC.url_contains("/v1/topups/callback"))
        check(d.current_url.startswith(backend), "the browser is back on the app's return page")
        status = WebDriverWait(d, 30).until(EC.presence_of_element_located((By.ID, "status"))).text
        check(status == "credited", f"the return page says credited ({status})")
        check(field(wallet(backend, "topup-status", intent), "status") == "credited", "the wallet sees the credit")
        check(http("GET", f"{gateway}/admin/payments/{token}")["state"] == "settled", "the gateway settled it")
        d.back()
        d.back()
        check(backend_balance(backend) == AMOUNT, "exactly one credit")

        # 2. the cancel button
        out = wallet(backend, "topup", "20000")
        intent2, url2 = field(out, "top-up"), field(out, "payment URL")
        d.get(url2)
        d.find_element(By.ID, "cancel").click()
        WebDriverWait(d, 30).until(EC.url_contains("/v1/topups/callback"))
        check(d.find_element(By.ID, "status").text == "cancelled", "the return page says cancelled")
        check(field(wallet(backend, "topup-status", intent2), "status") == "cancelled", "the wallet sees it cancelled")
        check(backend_balance(backend) == AMOUNT, "nothing credited for the cancelled top-up")

        # 3. the tab is closed before paying
        out = wallet(backend, "topup", "30000")
        intent3, url3 = field(out, "top-up"), field(out, "payment URL")
        token3 = url3.rsplit("/", 1)[1]
        first = d.current_window_handle
        d.switch_to.new_window("tab")
        d.get(url3)
        check(d.find_element(By.ID, "pay").is_displayed(), "the page waits for the rider")
        d.close()
        d.switch_to.window(first)
        check(field(wallet(backend, "topup-status", intent3), "status") == "pending", "the closed tab leaves it pending")
        http("POST", f"{gateway}/admin/clock", {"advance_secs": 901})
        check(http("GET", f"{gateway}/admin/payments/{token3}")["state"] == "expired", "the gateway expired the token")
        check(field(wallet(backend, "topup-status", intent3), "status") == "expired", "the wallet sees it expired")
        d.get(url3)
        check(d.find_element(By.ID, "status").text == "expired", "the page shows the payment expired")
        check(not d.find_elements(By.ID, "pay"), "the expired page has no Pay button")
        check(backend_balance(backend) == AMOUNT, "nothing credited for the closed tab")
    finally:
        d.quit()
    # the backend stops gracefully; its ledger audits clean (reconciliation ran on shutdown's way)
    be_proc.terminate()
    be_proc.wait(timeout=60)
    audit = subprocess.run([MANCARD, "backend", "audit", "--db", db], capture_output=True, text=True)
    check(audit.returncode == 0 and json.loads(audit.stdout)["ok"], "the ledger audits clean")
    gw_proc.terminate()
    print("browser test: all checks passed")


if __name__ == "__main__":
    try:
        main()
    finally:
        for c in CHILDREN:
            if c.poll() is None:
                c.kill()
                c.wait()
