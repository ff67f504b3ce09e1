"""Fixtures for the Python binding tests (run by bindings/test-bindings.sh, which starts the
backend and the validator and copies libmancard.so next to the generated mancard.py)."""

import itertools
import json
import os
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request

import pytest

# The bindings generated from the test build (with its test hooks) that test-bindings.sh made;
# the committed ones next to this directory otherwise.
sys.path.insert(
    0,
    os.environ.get("MANCARD_TEST_PYTHON_BINDINGS")
    or os.path.join(os.path.dirname(__file__), ".."),
)


def _env(name):
    value = os.environ.get(name)
    if not value:
        pytest.fail(f"{name} is not set: run bindings/test-bindings.sh")
    return value


@pytest.fixture(scope="session")
def backend_url():
    return _env("MANCARD_TEST_BACKEND_URL")


_phones = itertools.count(int(time.time() * 1000) % 4_000_000)


@pytest.fixture
def phone():
    """A fresh Iranian mobile number (the backend rate-limits codes per number)."""
    return "+98935" + str(5_000_000 + next(_phones) % 4_000_000)


def otp(backend_url, phone):
    """The sandbox SMS: the one-time code the backend sent to `phone`."""
    url = f"{backend_url}/sandbox/otp?phone=" + urllib.parse.quote(phone)
    with urllib.request.urlopen(url) as r:
        return json.loads(r.read())["code"]


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def pay(payment_url):
    """The rider presses Pay on the sandbox gateway page: 303 back to the callback."""
    opener = urllib.request.build_opener(_NoRedirect)
    req = urllib.request.Request(payment_url, data=b"", method="POST")
    try:
        with opener.open(req) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def validator(*args):
    """Runs the real validator binary on the test's validator data directory."""
    cmd = [_env("MANCARD_TEST_BIN"), "validator", "--data-dir", _env("MANCARD_TEST_VALIDATOR_DIR"), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60)


class VpcdCard:
    """The phone as a contactless card on vsmartcard's virtual reader: a vpcd client (TCP;
    frames are a 2-byte big-endian length + payload; 1-byte payloads are control messages).
    Every C-APDU is answered by `wallet.process_apdu`, exactly as a HostApduService would; a
    field drop calls `wallet.deactivated()`. Holds the cross-process reader lock the other
    PC/SC tests use (a bound loopback port) while presented."""

    ATR = bytes([0x3B, 0x80, 0x80, 0x01, 0x01])

    def __init__(self, wallet, port=None):
        self.wallet = wallet
        self.apdus = 0
        self.failure = None
        self._closing = False
        self._lock = self._take_lock()
        port = port or int(os.environ.get("MANCARD_TEST_VPCD_PORT", "35963"))
        self._sock = self._connect(port)
        self._thread = threading.Thread(target=self._serve, name="vpcd-card", daemon=True)
        self._thread.start()

    @staticmethod
    def _take_lock():
        deadline = time.time() + 60
        while True:
            s = socket.socket()
            try:
                s.bind(("127.0.0.1", 35969))
                return s
            except OSError:
                s.close()
                if time.time() > deadline:
                    raise
                time.sleep(0.05)

    @staticmethod
    def _connect(port):
        for _ in range(50):
            try:
                s = socket.create_connection(("127.0.0.1", port))
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                return s
            except OSError:
                time.sleep(0.1)
        pytest.fail(f"vpcd is not listening on 127.0.0.1:{port} (is pcscd up? scripts/pcsc-up.sh)")

    def _read(self, n):
        b = b""
        while len(b) < n:
            chunk = self._sock.recv(n - len(b))
            if not chunk:
                raise EOFError
            b += chunk
        return b

    def _send(self, payload):
        self._sock.sendall(struct.pack(">H", len(payload)) + payload)

    def _serve(self):
        try:
            while True:
                if hasattr(socket, "TCP_QUICKACK"):
                    self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
                (n,) = struct.unpack(">H", self._read(2))
                payload = self._read(n)
                if n == 1:
                    if payload[0] == 0x00:
                        self.wallet.deactivated()
                    elif payload[0] == 0x04:
                        self._send(self.ATR)
                else:
                    self.apdus += 1
                    self._send(self.wallet.process_apdu(payload))
        except (EOFError, OSError) as e:
            if not self._closing:
                self.failure = e
        except Exception as e:  # noqa: BLE001 - reported by the test
            self.failure = e

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._closing = True
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._sock.close()
        self._thread.join(10)
        self._lock.close()
        return False
