package ir.mancard.core.test

import ir.mancard.core.CredentialState
import ir.mancard.core.HistoryKind
import ir.mancard.core.TopUpStatus
import ir.mancard.core.KeystoreException
import ir.mancard.core.ManCardException
import ir.mancard.core.PlatformKeystore
import ir.mancard.core.Wallet
import ir.mancard.core.formatAmount
import ir.mancard.core.formatDate
import ir.mancard.core.formatDateTime
import ir.mancard.core.formatNumber
import kotlinx.coroutines.runBlocking
import org.junit.Assert.assertEquals
import org.junit.Assert.assertNull
import org.junit.Assert.assertTrue
import org.junit.Assert.fail
import org.junit.Test
import java.net.ServerSocket

/** Errors the app must act on arrive as typed exceptions with a human message. */
class ErrorPathsTest {
    private inline fun <reified E : Throwable> expect(block: () -> Unit): E {
        try {
            block()
        } catch (e: Throwable) {
            if (e is E) return e
            throw AssertionError("expected ${E::class.simpleName}, got $e", e)
        }
        fail("expected ${E::class.simpleName}, nothing was thrown")
        throw IllegalStateException()
    }

    @Test
    fun noCredentialHasAHumanMessage() {
        val wallet = Wallet(Env.newDir("nocred"), Env.backendUrl, JcaKeystore())
        val e = expect<ManCardException.NoCredential> { wallet.boardingPass() }
        assertEquals("no credential is installed on this phone", e.message)
        assertEquals(CredentialState.NO_CREDENTIAL, wallet.status().state)
        // Persian until the app says otherwise; the locale is a BCP 47 tag
        assertEquals("fa", wallet.locale())
        assertEquals("هنوز بلیتی روی این گوشی نیست", wallet.status().summary)
        assertEquals("en", wallet.setLocale("en-US"))
        assertEquals("No ticket on this phone yet", wallet.status().summary)
        assertEquals("No card yet", wallet.status().stateText)
        assertEquals("azb", wallet.setLocale("az_IR"))
        assertEquals("هله کارتینیز یوخدور", wallet.status().stateText)
        assertEquals("fa", wallet.setLocale("de-DE"))
        wallet.close()
    }

    @Test
    fun amountsAndDatesAreFormattedForTheRider() {
        assertEquals("۲٬۰۰۰ تومان", formatAmount(20_000L, "fa"))
        assertEquals("2,000 toman (20,000 rials)", formatAmount(20_000L, "en"))
        // 2026-03-21T09:00Z is 12:30 on 1 Farvardin 1405 in Tehran
        assertEquals("۱ فروردین ۱۴۰۵", formatDate(1_774_083_600L, "fa-IR"))
        assertEquals("۱ فروردین ۱۴۰۵، ۱۲:۳۰", formatDateTime(1_774_083_600L, "azb"))
        assertEquals("Farvardin 1, 1405 AP", formatDate(1_774_083_600L, "en"))
        assertEquals("۱۲٬۳۴۵", formatNumber(12_345L, "fa"))
    }

    @Test
    fun badHistoryCursorIsAValidationError() {
        val wallet = Wallet(Env.newDir("cursor"), Env.backendUrl, JcaKeystore())
        val e = expect<ManCardException.Validation> { wallet.history("not-a-cursor", 10u) }
        assertTrue(e.message, e.message!!.startsWith("invalid input: not a history cursor"))
        wallet.close()
    }

    @Test
    fun anUnreadableConfigBundleIsRefusedAndChangesNothing() {
        val wallet = Wallet(Env.newDir("bundle"), Env.backendUrl, JcaKeystore())
        assertNull(wallet.configVersion())
        val e = expect<ManCardException.Validation> { wallet.installConfig(byteArrayOf(0x56, 0x01, 2, 3)) }
        assertTrue(e.message, e.message!!.startsWith("config bundle refused: unreadable"))
        assertNull(wallet.configVersion())
        wallet.close()
    }

    @Test
    fun backendDownIsOffline() = runBlocking {
        // A loopback port nobody listens on.
        val port = ServerSocket(0, 1, java.net.InetAddress.getLoopbackAddress()).use { it.localPort }
        val wallet = Wallet(Env.newDir("down"), "http://127.0.0.1:$port", JcaKeystore())
        val e = expect<ManCardException.Offline> { runBlocking { wallet.register(Env.newPhone()) } }
        assertTrue(e.message, e.message!!.startsWith("the ManCard service cannot be reached"))
        // Everything offline keeps working.
        assertEquals(CredentialState.NO_CREDENTIAL, wallet.status().state)
        wallet.close()
    }

    @Test
    fun notLoggedInIsSessionExpired() = runBlocking {
        val wallet = Wallet(Env.newDir("nosession"), Env.backendUrl, JcaKeystore())
        val e = expect<ManCardException.SessionExpired> { runBlocking { wallet.account() } }
        assertTrue(e.message, e.message!!.contains("session"))
        wallet.close()
    }

    @Test
    fun wrongCodeIsRefused() = runBlocking {
        val wallet = Wallet(Env.newDir("wrongcode"), Env.backendUrl, JcaKeystore())
        val phone = Env.newPhone()
        wallet.register(phone)
        val right = Http.otp(phone)
        val wrong = if (right == "00000000") "11111111" else "00000000"
        val e = expect<ManCardException> { runBlocking { wallet.verify(phone, wrong) } }
        assertTrue("$e", e is ManCardException.SessionExpired || e is ManCardException.Validation)
        assertTrue(e.message!!.isNotBlank() && !e.message!!.contains("detail="))
        wallet.close()
    }

    @Test
    fun provisioningAnotherPhoneRevokesThisOne() = runBlocking {
        val phone = Env.newPhone()
        suspend fun signedIn(tag: String): Wallet {
            val w = Wallet(Env.newDir(tag), Env.backendUrl, JcaKeystore())
            w.register(phone)
            w.verify(phone, Http.otp(phone))
            return w
        }
        val old = signedIn("oldphone")
        val topUp = old.startTopUp(100_000)
        assertEquals(303, Http.post(topUp.paymentUrl))
        assertEquals(TopUpStatus.CREDITED, old.completeTopUp(topUp.intentId).status)
        old.provision()
        val usable = setOf(CredentialState.ACTIVE, CredentialState.REPLENISH_DUE) // few rides: due
        assertTrue("${old.status()}", old.status().state in usable)

        // The rider sets up a new phone (new binding key): the old phone's credential is revoked.
        val new = signedIn("newphone")
        val report = new.provision()
        // the old phone's live pseudonyms (a fresh one in every certificate)
        assertTrue("${report.revokedPseudonyms}", report.revokedPseudonyms.isNotEmpty())
        assertTrue(report.pseudonym !in report.revokedPseudonyms)

        // The new phone's provisioning ended the old phone's session: found again, it logs in.
        expect<ManCardException.SessionExpired> { runBlocking { old.sync() } }
        old.register(phone)
        old.verify(phone, Http.otp(phone))
        val sync = old.sync()
        assertTrue("sync report: $sync", sync.revoked)
        assertEquals(CredentialState.REVOKED, old.status().state)
        val e = expect<ManCardException.CredentialRevoked> { old.boardingPass() }
        assertTrue(e.message, e.message!!.contains("revoked"))
        val r = expect<ManCardException.CredentialRevoked> { runBlocking { old.replenish() } }
        assertTrue(r.message, r.message!!.contains("revoked"))

        // At the gate, the revoked phone refuses to authorize: the validator (whose deny list
        // predates the revocation) refuses the tap, and the refusal is in the phone's history.
        val tap = VpcdCard(old).use { card ->
            Validator.tapOnce().also { assertNull("card side failed: ${card.failure}", card.failure) }
        }
        assertEquals("validator said: ${tap.output}", 1, tap.exitCode)
        val refusal = old.history(null, 1u).entries.first()
        assertEquals(HistoryKind.REFUSAL, refusal.kind)
        assertEquals("گوشی نپذیرفت: بلیت اکنون معتبر نیست", refusal.detail)
        old.setLocale("en")
        assertEquals(
            "the ticket has been revoked: this card was moved to another phone",
            old.history(null, 1u).entries.first().detail,
        )
        old.close()
        new.close()
    }

    /** A keystore whose every operation fails the way a platform keystore can. */
    private class FailingKeystore(private val failure: () -> Exception) : PlatformKeystore {
        override fun bindingPublicKey(): ByteArray = throw failure()
        override fun signWithBindingKey(message: ByteArray): ByteArray = throw failure()
        override fun seal(plaintext: ByteArray): ByteArray = throw failure()
        override fun unseal(sealed: ByteArray): ByteArray = throw failure()
    }

    @Test
    fun keystoreErrorsThrownInKotlinComeBackTyped() {
        val locked = Wallet(Env.newDir("ks1"), Env.backendUrl,
            FailingKeystore { KeystoreException.AuthenticationRequired("fingerprint needed") })
        val a = expect<ManCardException.AuthenticationRequired> { locked.bindingPublicKey() }
        assertEquals("platform keystore error: keystore requires user authentication: fingerprint needed", a.message)
        locked.close()

        val gone = Wallet(Env.newDir("ks2"), Env.backendUrl,
            FailingKeystore { KeystoreException.Unavailable("key invalidated") })
        val u = expect<ManCardException.Keystore> { gone.bindingPublicKey() }
        assertEquals("platform keystore error: keystore unavailable: key invalidated", u.message)
        gone.close()

        // Not a KeystoreException at all: still a typed error, not a crash.
        val buggy = Wallet(Env.newDir("ks3"), Env.backendUrl,
            FailingKeystore { IllegalStateException("Android Keystore exploded") })
        val b = expect<ManCardException.Keystore> { buggy.bindingPublicKey() }
        assertTrue(b.message, b.message!!.contains("unexpected exception"))
        assertTrue(b.message, b.message!!.contains("Android Keystore exploded"))
        buggy.close()
    }

    @Test
    fun sealedKeyOfAnotherKeystoreIsRefused() {
        val ks = JcaKeystore()
        val sealed = ks.seal("tap key".toByteArray())
        assertEquals("tap key", ks.unseal(sealed).decodeToString())
        expect<KeystoreException.SealedDataInvalid> { JcaKeystore().unseal(sealed) }
        sealed[sealed.size - 1] = (sealed[sealed.size - 1].toInt() xor 1).toByte()
        expect<KeystoreException.SealedDataInvalid> { ks.unseal(sealed) }
    }
}
