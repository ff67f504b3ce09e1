package ir.mancard.core.test

import ir.mancard.core.CredentialState
import ir.mancard.core.InternalException
import ir.mancard.core.LogLevel
import ir.mancard.core.LogRecord
import ir.mancard.core.Logger
import ir.mancard.core.ManCardException
import ir.mancard.core.Wallet
import ir.mancard.core.debugPanicForTests
import ir.mancard.core.setLogger
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.async
import kotlinx.coroutines.awaitAll
import kotlinx.coroutines.runBlocking
import org.junit.Assert.assertArrayEquals
import org.junit.Assert.assertEquals
import org.junit.Assert.assertTrue
import org.junit.Assert.fail
import org.junit.Test
import java.util.concurrent.CopyOnWriteArrayList

/** ManCard's application identifier: F0 "MANCARD" 01. */
private val MANCARD_AID = byteArrayOf(0xF0.toByte()) + "MANCARD".toByteArray() + byteArrayOf(0x01)

/** The FFI boundary itself: panics, total functions, threads, foreign callbacks. */
class BoundaryTest {
    @Test
    fun aPanicInRustReachesKotlinAsAnException() {
        try {
            debugPanicForTests("boom from the test")
            fail("no exception")
        } catch (e: InternalException) {
            assertTrue(e.message, e.message!!.contains("boom from the test"))
        }
        // The library is still usable after the panic.
        val w = Wallet(Env.newDir("afterpanic"), Env.backendUrl, JcaKeystore())
        assertEquals(CredentialState.NO_CREDENTIAL, w.status().state)
        w.close()
    }

    @Test
    fun processApduNeverThrows() {
        val w = Wallet(Env.newDir("apdu"), Env.backendUrl, JcaKeystore())
        val inputs = listOf(
            byteArrayOf(),
            byteArrayOf(0x00),
            byteArrayOf(0x00, 0xA4.toByte(), 0x04, 0x00),
            ByteArray(300) { it.toByte() },
            ByteArray(70_000) { 0xFF.toByte() },
        )
        for (input in inputs) {
            val r = w.processApdu(input)
            assertTrue("response to ${input.size} bytes: ${r.size}", r.size >= 2)
            assertTrue("an error status word for garbage", r[r.size - 2] != 0x90.toByte())
        }
        // No credential: AUTHORIZE TAP is refused (not 9000), and nothing throws.
        val authorize = byteArrayOf(0x80.toByte(), 0x20, 0x00, 0x00, 0x04, 1, 2, 3, 4, 0x00)
        val r = w.processApdu(authorize)
        assertTrue(r.size >= 2 && !(r[r.size - 2] == 0x90.toByte() && r[r.size - 1] == 0x00.toByte()))
        w.deactivated()
        w.deactivated()
        w.close()
    }

    @Test
    fun oneWalletServesManyThreads() = runBlocking {
        val w = Wallet(Env.newDir("threads"), Env.backendUrl, JcaKeystore())
        val select = byteArrayOf(0x00, 0xA4.toByte(), 0x04, 0x00, 0x09) + MANCARD_AID + byteArrayOf(0x00)
        val results = (1..8).map { i ->
            async(Dispatchers.Default) {
                repeat(50) {
                    when (i % 4) {
                        0 -> w.status()
                        1 -> w.ledger()
                        2 -> w.history(null, 5u)
                        else -> { w.processApdu(select); w.deactivated() }
                    }
                }
                i
            }
        }.awaitAll()
        assertEquals((1..8).toList(), results)
        w.close()
    }

    @Test
    fun rustLogsReachTheAppLogger() {
        val records = CopyOnWriteArrayList<LogRecord>()
        setLogger(object : Logger {
            override fun log(record: LogRecord) { records.add(record) }
        }, LogLevel.DEBUG)
        try {
            val dir = Env.newDir("logger")
            val w = Wallet(dir, Env.backendUrl, JcaKeystore())
            try { w.boardingPass() } catch (_: ManCardException.NoCredential) { }
            w.close()
            assertTrue("records: $records", records.any { it.level == LogLevel.INFO && it.message.contains("wallet opened") })
            assertTrue("records: $records", records.any {
                // An expected failure (the rider has no ticket yet) is logged at INFO.
                it.level == LogLevel.INFO && it.target.startsWith("mancard") &&
                    it.message.contains("no credential is installed")
            })
            // Above the threshold only.
            records.clear()
            setLogger(object : Logger {
                override fun log(record: LogRecord) { records.add(record) }
            }, LogLevel.WARN)
            Wallet(dir, Env.backendUrl, JcaKeystore()).close()
            assertTrue("records: $records", records.none { it.level == LogLevel.INFO || it.level == LogLevel.DEBUG })
        } finally {
            setLogger(null, LogLevel.ERROR)
        }
    }

    @Test
    fun aThrowingLoggerDoesNotBreakTheWallet() {
        setLogger(object : Logger {
            override fun log(record: LogRecord) = throw IllegalStateException("logger bug")
        }, LogLevel.TRACE)
        try {
            val w = Wallet(Env.newDir("badlogger"), Env.backendUrl, JcaKeystore())
            assertEquals(CredentialState.NO_CREDENTIAL, w.status().state)
            w.close()
        } finally {
            setLogger(null, LogLevel.ERROR)
        }
    }

    /**
     * The app's keystore (the JCA model of the Android one) serves the wallet across reopenings;
     * a wallet whose database is lost while its counter file remains is `DataMissing`, never a
     * new, empty wallet. (The core's file keystore is not in the phone's bindings.)
     */
    @Test
    fun theAppsKeystoreServesTheWalletAndALostDatabaseIsDataMissing() {
        val ks = JcaKeystore()
        val dir = Env.newDir("jcawallet")
        Wallet(dir, Env.backendUrl, ks).use { assertArrayEquals(ks.bindingPublicKey(), it.bindingPublicKey()) }
        Wallet(dir, Env.backendUrl, ks).use { assertEquals(CredentialState.NO_CREDENTIAL, it.status().state) }
        val db = java.io.File(dir, "wallet.sqlite3")
        assertTrue(db.delete())
        try {
            Wallet(dir, Env.backendUrl, ks).close()
            fail("a wallet without its database opened")
        } catch (e: ManCardException.DataMissing) {
            assertTrue(e.message, e.message!!.contains("counters.bin"))
            assertTrue(e.message, e.message!!.contains("Restore"))
        }
        assertTrue("nothing created", !db.exists())
    }
}
