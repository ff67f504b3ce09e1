"""The rider journey and the error paths through the Python bindings (asyncio for the
network operations), against the real backend and the real validator: an NFC tap through
pcscd + vpcd (the mutually authenticated v2 tap: the validator shows its backend-issued
certificate and signs a challenge for the phone's session before the phone signs) and a QR
pass."""

import asyncio

import pytest

import mancard
from conftest import VpcdCard, otp, pay, validator


def open_wallet(tmp_path, url, name="wallet"):
    keystore = mancard.open_file_keystore(str(tmp_path / f"{name}-keys"))
    return mancard.Wallet(str(tmp_path / name), url, keystore)


def test_journey(tmp_path, backend_url, phone):
    async def journey():
        w = open_wallet(tmp_path, backend_url)
        assert w.status().state == mancard.CredentialState.NO_CREDENTIAL
        await w.register(phone)
        session = await w.verify(phone, otp(backend_url, phone))
        assert session.phone == phone

        intent = await w.start_top_up(400_000)
        assert pay(intent.payment_url) == 303
        done = await w.complete_top_up(intent.intent_id)
        assert done.status == mancard.TopUpStatus.CREDITED

        report = await w.provision()
        assert report.max_amount == 400_000
        assert w.status().state == mancard.CredentialState.ACTIVE
        assert w.config_version() is not None, "the config bundle comes with the certificate"

        with VpcdCard(w) as card:
            tapped = validator("run", "--reader", "pcsc", "--once")
            assert card.failure is None, card.failure
            assert card.apdus >= 2
        assert tapped.returncode == 0, tapped.stdout + tapped.stderr
        tap = w.history(None, 1).entries[0]
        assert tap.kind == mancard.HistoryKind.TAP
        assert tap.status_word == 0x9000
        assert tap.line_id == 1 and tap.validator_id == 17
        # not judged by the backend yet: shown with what the phone authorized
        assert tap.status == mancard.HistoryStatus.NOT_SETTLED
        assert tap.status_code == "not_settled"
        assert tap.amount == tap.authorized and tap.charged is None

        p = w.boarding_pass()
        assert p.text.startswith("MC2:")
        assert len(p.matrix.modules) == p.matrix.width ** 2
        assert p.png[:4] == b"\x89PNG"
        assert "<svg" in p.svg
        checked = validator("verify-qr", p.text)
        assert checked.returncode == 0, checked.stdout + checked.stderr

        assert w.ledger().pending_taps == 2
        sync = await w.sync()
        assert sync.uploaded == 2
        assert w.verify_tap_log() == 2
        assert w.ledger().pending_taps == 0
        assert w.ledger().confirmed_balance == sync.balance == (await w.account()).balance
        assert sync.balance < 400_000

        main = [e for e in w.history(None, 50).entries if e.kind != mancard.HistoryKind.REFUSAL]
        kinds = [e.kind for e in main]
        assert kinds == [mancard.HistoryKind.PASS, mancard.HistoryKind.TAP, mancard.HistoryKind.TOP_UP]
        # what the backend charged for the tap; the pass, never scanned, is not charged
        assert main[1].charged == main[1].amount == 400_000 - sync.balance
        assert main[0].status_code == "pass_shown" and main[0].charged is None

    asyncio.run(journey())


def test_no_credential_message_is_human(tmp_path, backend_url):
    w = open_wallet(tmp_path, backend_url)
    with pytest.raises(mancard.ManCardError.NoCredential) as e:
        w.boarding_pass()
    assert str(e.value) == "no credential is installed on this phone"


def test_an_unreadable_config_bundle_is_refused(tmp_path, backend_url):
    w = open_wallet(tmp_path, backend_url)
    assert w.config_version() is None
    with pytest.raises(mancard.ManCardError.Validation) as e:
        w.install_config(b"V\x01\x02\x03")
    assert str(e.value).startswith("config bundle refused: unreadable")
    assert w.config_version() is None


def test_backend_down_is_offline(tmp_path):
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    w = open_wallet(tmp_path, f"http://127.0.0.1:{port}")
    with pytest.raises(mancard.ManCardError.Offline):
        asyncio.run(w.register("+989121234567"))


def test_panic_is_an_internal_error():
    with pytest.raises(mancard.InternalError) as e:
        mancard.debug_panic_for_tests("python boom")
    assert "python boom" in str(e.value)


def test_process_apdu_never_raises(tmp_path, backend_url):
    w = open_wallet(tmp_path, backend_url)
    for apdu in (b"", b"\x00", b"\x80\x20\x00\x00", bytes(range(256)) * 4):
        r = w.process_apdu(apdu)
        assert len(r) >= 2 and r[-2:] != b"\x90\x00"
    w.deactivated()


def test_a_lost_database_is_data_missing_not_a_new_wallet(tmp_path, backend_url):
    w = open_wallet(tmp_path, backend_url)
    assert w.status().state == mancard.CredentialState.NO_CREDENTIAL
    del w  # closes the wallet (CPython frees it here)
    db = tmp_path / "wallet" / "wallet.sqlite3"
    db.unlink()
    with pytest.raises(mancard.ManCardError.DataMissing) as e:
        open_wallet(tmp_path, backend_url)
    assert "counters.bin" in str(e.value) and "Restore" in str(e.value)
    assert not db.exists()
