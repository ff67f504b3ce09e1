package ir.mancard.app

import android.content.ComponentName
import android.content.pm.ApplicationInfo
import android.content.pm.PackageManager
import android.nfc.cardemulation.HostApduService
import android.widget.TextView
import ir.mancard.core.HistoryKind
import ir.mancard.core.test.Validator
import ir.mancard.core.test.VpcdCard
import kotlinx.coroutines.runBlocking
import org.junit.After
import org.junit.Assert.assertArrayEquals
import org.junit.Assert.assertEquals
import org.junit.Assert.assertNotEquals
import org.junit.Assert.assertTrue
import org.junit.Test
import org.junit.runner.RunWith
import org.robolectric.Robolectric
import org.robolectric.RobolectricTestRunner
import org.robolectric.RuntimeEnvironment
import org.xmlpull.v1.XmlPullParser
import java.util.concurrent.CountDownLatch

/**
 * The NFC service on the JVM: "not ready" until the wallet is open, never an exception on the
 * main thread, `onDeactivated` forwarded, and a real tap by the Rust validator through pcscd and
 * vpcd into this service and the real core. Also what the manifest promises: the AID group
 * resolves, and backups and device transfers carry none of the wallet's files.
 */
@RunWith(RobolectricTestRunner::class)
class HceServiceTest {
    private val app get() = RuntimeEnvironment.getApplication() as TestApp
    private val select = byteArrayOf(0x00, 0xA4.toByte(), 0x04, 0x00, 0x09) +
        hex("F04D414E4341524401") + byteArrayOf(0x00)

    @After
    fun close() = app.holder.close()

    private fun sw(r: ByteArray) = ((r[r.size - 2].toInt() and 0xff) shl 8) or (r[r.size - 1].toInt() and 0xff)

    @Test
    fun answersNotReadyUntilTheWalletIsOpenAndNeverThrows() {
        waitUntil("the first open") { app.holder.wallet() != null }
        val gate = CountDownLatch(1)
        app.reopen { gate.await(); app.openNow() } // a slow first open (keystore, SQLite)
        val service = Robolectric.setupService(ManCardApduService::class.java)
        for (apdu in listOf(select, null, ByteArray(0), byteArrayOf(0x00), ByteArray(300) { 0xFF.toByte() })) {
            assertArrayEquals(byteArrayOf(0x64, 0x00), service.processCommandApdu(apdu, null))
        }
        service.onDeactivated(HostApduService.DEACTIVATION_LINK_LOSS) // nothing open: no-op
        gate.countDown()
        waitUntil("the wallet opens") { app.holder.wallet() != null }
        val answer = service.processCommandApdu(select, null)
        assertNotEquals(0x6400, sw(answer))
        // garbage gets a well-formed ISO status word from the core, and nothing is thrown
        for (apdu in listOf(null, ByteArray(0), byteArrayOf(0x00), byteArrayOf(0x80.toByte(), 0x12, 0, 0))) {
            val r = service.processCommandApdu(apdu, null)
            assertTrue(r.size >= 2)
            assertNotEquals(0x9000, sw(r))
        }
        service.onDeactivated(HostApduService.DEACTIVATION_DESELECTED)
    }

    @Test
    fun aWalletThatCannotOpenIsAMessageNotACrash() {
        app.reopen { throw IllegalStateException("no space left on device") }
        waitUntil("the open fails") { app.holder.state is WalletHolder.State.Failed }
        val service = Robolectric.setupService(ManCardApduService::class.java)
        // not "tap again" for ever: an error status word
        assertArrayEquals(byteArrayOf(0x6F, 0x00), service.processCommandApdu(select, null))
        val home = Robolectric.buildActivity(HomeActivity::class.java).setup().get()
        val message = home.requireViewById<TextView>(R.id.message)
        // in the rider's words, by the failure's kind (the exception's text goes to the log)
        val expected = home.getString(R.string.wallet_failed, home.getString(R.string.error_internal))
        waitUntil("the failure is shown") { message.text.toString() == expected }
        assertTrue(message.text.startsWith("کیف پول باز نشد"))
    }

    @Test
    fun theRustValidatorTapsThroughTheServiceIntoTheCore() = runBlocking {
        waitUntil("the wallet opens") { app.holder.wallet() != null }
        val wallet = app.holder.wallet()!!
        wallet.signUp(100_000L)

        val service = Robolectric.setupService(ManCardApduService::class.java)
        val outcome = VpcdCard(
            { apdu -> service.processCommandApdu(apdu, null) },
            { service.onDeactivated(HostApduService.DEACTIVATION_LINK_LOSS) },
        ).use { card ->
            Validator.tapOnce().also { assertEquals(null, card.failure) }
        }
        assertEquals("validator said: ${outcome.output}", 0, outcome.exitCode)
        assertTrue(outcome.output, outcome.output.contains("پذیرفته شد"))
        val tap = wallet.history(null, 10u).entries.first { it.kind == HistoryKind.TAP }
        assertEquals("هنوز تسویه نشده", tap.statusText)
    }

    @Test
    fun theManifestKeepsItsPromises() {
        val pm = app.packageManager
        // the service's AID group resolves: AID F0 "MANCARD" 01, category other
        val info = pm.getServiceInfo(ComponentName(app, ManCardApduService::class.java), PackageManager.GET_META_DATA)
        assertEquals("android.permission.BIND_NFC_SERVICE", info.permission)
        val xmlId = info.metaData.getInt("android.nfc.cardemulation.host_apdu_service")
        assertEquals(R.xml.apduservice, xmlId)
        val aids = mutableListOf<String>()
        var category: String? = null
        app.resources.getXml(xmlId).use { p ->
            while (p.next() != XmlPullParser.END_DOCUMENT) {
                if (p.eventType != XmlPullParser.START_TAG) continue
                val ns = "http://schemas.android.com/apk/res/android"
                when (p.name) {
                    "aid-group" -> {
                        category = p.getAttributeValue(ns, "category")
                        val desc = p.getAttributeResourceValue(ns, "description", 0)
                        assertEquals(R.string.mancard_service, desc) // resolves (en by default here)
                        assertEquals("ManCard transit card", app.getString(desc))
                    }
                    "aid-filter" -> aids += p.getAttributeValue(ns, "name")
                }
            }
        }
        assertEquals(listOf("F04D414E4341524401"), aids)
        assertEquals("other", category)
        // no backup of anything; the wallet lives where neither backup nor transfer looks
        val flags = pm.getApplicationInfo(app.packageName, 0).flags
        assertEquals(0, flags and ApplicationInfo.FLAG_ALLOW_BACKUP)
        assertTrue(app.walletDir().canonicalPath.startsWith(app.noBackupFilesDir.canonicalPath))
        for (rules in listOf(R.xml.data_extraction_rules, R.xml.backup_rules)) {
            val excluded = mutableListOf<String>()
            app.resources.getXml(rules).use { p ->
                while (p.next() != XmlPullParser.END_DOCUMENT) {
                    if (p.eventType == XmlPullParser.START_TAG && p.name == "exclude") {
                        excluded += p.getAttributeValue(null, "domain") + ":" + p.getAttributeValue(null, "path")
                    }
                }
            }
            assertTrue(excluded.toString(), excluded.contains("root:."))
            assertTrue(excluded.toString(), excluded.contains("file:."))
        }
    }

    private fun hex(s: String) = ByteArray(s.length / 2) { s.substring(2 * it, 2 * it + 2).toInt(16).toByte() }
}
