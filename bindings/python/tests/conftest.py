"""Fixtures for the Python binding tests (run by bindings/test-bindings.sh, which starts the
backend and the validator and copies libmancard.so next to the generated mancard.py)."""

import itertools
import json
import os
import subprocess
import sys
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
