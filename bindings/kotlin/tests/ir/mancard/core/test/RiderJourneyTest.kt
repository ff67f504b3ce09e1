package ir.mancard.core.test

import ir.mancard.core.CredentialState
import ir.mancard.core.HistoryKind
import ir.mancard.core.HistoryStatus
import ir.mancard.core.ManCardException
import ir.mancard.core.TopUpStatus
import ir.mancard.core.Wallet
import kotlinx.coroutines.runBlocking
import org.junit.Assert.assertEquals
import org.junit.Assert.assertFalse
import org.junit.Assert.assertNotNull
import org.junit.Assert.assertNull
import org.junit.Assert.assertTrue
import org.junit.Assert.fail
import org.junit.Test

/**
 * A whole rider journey through the Kotlin bindings against the real backend and the real
 * validator: register, provision with a JCA keystore, top up through the sandbox gateway, tap
 * through pcscd + vpcd (the mutually authenticated v2 tap), show a boarding pass, sync, read
 * history.
 */
class RiderJourneyTest {
    private companion object {
        /** Rials: the backend's default cap of an offline allowance, so the credential is
         *  comfortably ACTIVE (not REPLENISH_DUE) after provisioning. */
        const val TOP_UP = 500_000L
    }

    @Test
    fun riderJourney() = runBlocking {
        val keystore = JcaKeystore()
        val wallet = Wallet(Env.newDir("journey"), Env.backendUrl, keystore)

        // Fresh wallet: nothing installed, nothing to tap with.
        assertEquals(CredentialState.NO_CREDENTIAL, wallet.status().state)
        assertFalse(wallet.onlineState().loggedIn)

        // Register with the one-time code (suspend functions).
        val phone = Env.newPhone()
        val sent = wallet.register(phone)
        assertEquals(phone, sent.phone)
        val session = wallet.verify(phone, Http.otp(phone))
        assertEquals(phone, session.phone)
        assertTrue(wallet.onlineState().loggedIn)
        assertEquals(0L, wallet.account().balance)

        // Top up 500,000 rials (the offline cap) through the sandbox gateway (the rider "pays" on the bank page).
        val intent = wallet.startTopUp(TOP_UP)
        assertEquals(TopUpStatus.PENDING, intent.status)
        assertEquals(1, wallet.openTopUps().size)
        assertEquals(303, Http.post(intent.paymentUrl))
        val credited = wallet.completeTopUp(intent.intentId)
        assertEquals(TopUpStatus.CREDITED, credited.status)
        assertNotNull(credited.ledgerEntryId)
        assertEquals(0, wallet.openTopUps().size)
        assertEquals(TOP_UP, wallet.account().balance)

        // Provision: the binding key signs the server nonce (JCA DER → r‖s), the tap key is
        // sealed by the Kotlin keystore.
        val report = wallet.provision()
        assertEquals(TOP_UP, report.maxAmount)
        assertTrue((keystore.calls["signWithBindingKey"] ?: 0) >= 1)
        assertTrue((keystore.calls["seal"] ?: 0) >= 1)
        val status = wallet.status()
        assertEquals(CredentialState.ACTIVE, status.state)
        assertEquals(report.certificateHash, status.certHashHex)
        // Persian by default: "۵ سفر / ۵۰٬۰۰۰ تومان اعتبار آفلاین تا ۱۲ آذر ۱۴۰۵، ..."
        assertTrue(status.summary, status.summary.contains("اعتبار آفلاین تا"))
        assertEquals("فعال", status.stateText)
        assertEquals(TOP_UP, wallet.ledger().offlineAllowanceRemaining)
        // ... and the backend's config bundle: the readers the phone answers, the time rules
        assertNotNull("config bundle installed at provisioning", wallet.configVersion())

        // Tap: the real validator (mancard validator run --reader pcsc --once) through pcscd,
        // the card side answered by wallet.processApdu over vpcd. Protocol v2: the validator
        // proves itself first (its backend-issued certificate and a challenge signed for this
        // SELECT's session), then the phone signs.
        val outcome = VpcdCard(wallet).use { card ->
            val o = Validator.tapOnce()
            assertNull("card side failed: ${card.failure}", card.failure)
            assertTrue("APDUs exchanged: ${card.apdus.get()}", card.apdus.get() >= 2)
            o
        }
        assertEquals("validator said: ${outcome.output}", 0, outcome.exitCode)
        val afterTap = wallet.ledger()
        assertEquals(1UL, afterTap.pendingTaps)
        assertTrue(afterTap.pendingAmount > 0)
        val tap = wallet.history(null, 10u).entries.first()
        assertEquals(HistoryKind.TAP, tap.kind)
        assertEquals(0x9000.toUShort(), tap.statusWord)
        assertNotNull(tap.validatorId)
        assertEquals(1u, tap.lineId)
        // Not judged by the backend yet: shown with what the phone authorized.
        assertEquals(HistoryStatus.NOT_SETTLED, tap.status)
        assertEquals("not_settled", tap.statusCode)
        assertEquals(tap.authorized, tap.amount)
        assertNull(tap.charged)

        // Sync: the tap log goes up, the backend settles the fare, the balance comes back.
        val sync = wallet.sync()
        assertEquals(1UL, sync.uploaded)
        assertEquals(1UL, sync.settled)
        assertFalse(sync.revoked)
        val ledger = wallet.ledger()
        assertEquals(sync.balance, ledger.confirmedBalance)
        assertEquals(0UL, ledger.pendingTaps)
        assertEquals(TOP_UP - tap.amount, sync.balance)
        assertEquals(sync.balance, wallet.account().balance)

        // Boarding pass: text, module matrix, SVG, PNG and refresh time; the same pass until
        // its refresh time.
        val pass = wallet.boardingPass()
        assertTrue(pass.text, pass.text.startsWith("MC2:"))
        val m = pass.matrix
        assertEquals((m.width * m.width).toInt(), m.modules.size)
        assertTrue(m.modules.any { it } && m.modules.any { !it })
        assertTrue(pass.svg.startsWith("<svg") || pass.svg.startsWith("<?xml"))
        assertEquals(listOf<Byte>(0x89.toByte(), 'P'.code.toByte(), 'N'.code.toByte(), 'G'.code.toByte()),
            pass.png.take(4))
        assertTrue(pass.refreshAt > pass.issuedAt - 5 && pass.refreshAt <= pass.expiresAt + 5)
        assertEquals(pass.text, wallet.boardingPass().text)
        // ... which the real validator accepts.
        val qr = Validator.verifyQr(pass.text)
        assertEquals("validator said: ${qr.output}", 0, qr.exitCode)

        // History, newest first, read in pages of 2: pass, tap, top-up (sync may add notes).
        val all = mutableListOf<ir.mancard.core.HistoryEntry>()
        var cursor: String? = null
        var pages = 0
        do {
            val page = wallet.history(cursor, 2u)
            all += page.entries
            cursor = page.nextCursor
            pages++
        } while (cursor != null)
        assertTrue("pages: $pages", pages >= 2)
        assertEquals(all.map { it.id }.distinct(), all.map { it.id })
        val main = all.filter { it.kind != HistoryKind.REFUSAL }
        assertEquals(listOf(HistoryKind.PASS, HistoryKind.TAP, HistoryKind.TOP_UP), main.map { it.kind })
        assertEquals(TOP_UP, main.last().amount)
        assertEquals(pass.counter, main.first().counter)
        // What the backend charged for the tap; the pass, not scanned, is not charged.
        assertEquals(tap.amount, main[1].charged)
        assertEquals(main[1].charged, main[1].amount)
        assertEquals(HistoryStatus.PASS_SHOWN, main.first().status)
        assertEquals("کد QR نشان داده شد", main.first().statusText)
        assertEquals(2UL, wallet.verifyTapLog())

        // Lock: no pass, and the reason reaches Kotlin as a sentence.
        wallet.setLocked(true)
        try {
            wallet.boardingPass()
            fail("a locked wallet made a pass")
        } catch (e: ManCardException.Locked) {
            assertEquals("the wallet is locked", e.message)
        }
        wallet.setLocked(false)
        assertFalse(wallet.isLocked())
        wallet.close()
    }
}
