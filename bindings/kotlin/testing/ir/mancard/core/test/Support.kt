package ir.mancard.core.test

import ir.mancard.core.Wallet
import java.io.BufferedInputStream
import java.io.DataInputStream
import java.io.DataOutputStream
import java.io.EOFException
import java.io.File
import java.net.HttpURLConnection
import java.net.Socket
import java.net.SocketException
import java.net.URI
import java.net.URLEncoder
import java.nio.file.Files
import java.util.concurrent.TimeUnit
import java.util.concurrent.atomic.AtomicInteger

/**
 * What bindings/test-bindings.sh set up: a real backend, a validator, the `mancard` binary.
 * Shared by the binding tests (bindings/kotlin/tests) and the Android app's Robolectric tests
 * (android-demo/test).
 */
object Env {
    private fun need(name: String): String =
        System.getenv(name) ?: throw IllegalStateException("$name is not set: run bindings/test-bindings.sh")

    val backendUrl: String get() = need("MANCARD_TEST_BACKEND_URL")
    val mancardBin: String get() = need("MANCARD_TEST_BIN")
    val validatorDir: String get() = need("MANCARD_TEST_VALIDATOR_DIR")
    val tmpRoot: File get() = File(need("MANCARD_TEST_TMP"))
    val vpcdPort: Int get() = (System.getenv("MANCARD_TEST_VPCD_PORT") ?: "35963").toInt()

    fun newDir(prefix: String): String = Files.createTempDirectory(tmpRoot.toPath(), prefix).toString()

    private val phoneSeq = AtomicInteger((System.nanoTime() % 1_000_000).toInt())
    /** A fresh Iranian mobile number per call (the backend rate-limits codes per number). */
    fun newPhone(): String = "+98912" + (1_000_000 + phoneSeq.incrementAndGet() % 9_000_000).toString()
}

/** Minimal HTTP for what a rider does outside the app: read the SMS, pay on the bank page. */
object Http {
    fun get(url: String): Pair<Int, String> {
        val c = URI(url).toURL().openConnection() as HttpURLConnection
        return try {
            val code = c.responseCode
            val body = (if (code < 400) c.inputStream else c.errorStream)?.readBytes()?.decodeToString() ?: ""
            code to body
        } finally { c.disconnect() }
    }

    fun post(url: String): Int {
        val c = URI(url).toURL().openConnection() as HttpURLConnection
        c.requestMethod = "POST"
        c.instanceFollowRedirects = false
        c.doOutput = true
        c.outputStream.use { }
        return try { c.responseCode } finally { c.disconnect() }
    }

    /** The sandbox SMS: the one-time code the backend "sent" to `phone`. */
    fun otp(phone: String): String {
        val (code, body) = get("${Env.backendUrl}/sandbox/otp?phone=" + URLEncoder.encode(phone, "UTF-8"))
        check(code == 200) { "sandbox otp: HTTP $code $body" }
        return Regex("\"code\"\\s*:\\s*\"(\\d+)\"").find(body)?.groupValues?.get(1)
            ?: throw IllegalStateException("no code in $body")
    }
}

/**
 * The phone as a contactless card on vsmartcard's virtual reader: a vpcd client (TCP; frames
 * are a 2-byte big-endian length + payload; 1-byte payloads are control messages). Every
 * C-APDU is answered by [answer] ([Wallet.processApdu], exactly as a HostApduService would, or
 * the Android app's HostApduService itself), and the field going off calls [fieldOff].
 */
class VpcdCard(
    private val answer: (ByteArray) -> ByteArray,
    private val fieldOff: () -> Unit,
    port: Int = Env.vpcdPort,
) : AutoCloseable {
    constructor(wallet: Wallet, port: Int = Env.vpcdPort) :
        this({ apdu -> wallet.processApdu(apdu) }, { wallet.deactivated() }, port)

    val apdus = AtomicInteger()
    val powerOffs = AtomicInteger()
    @Volatile var failure: Throwable? = null
    @Volatile private var closing = false
    private val lock: java.net.ServerSocket = vpcdLock()
    private val socket: Socket = connect(port)
    private val thread = Thread(::serve, "vpcd-card").apply { isDaemon = true; start() }

    /**
     * The cross-process lock the validator's PC/SC tests use for reader 0 (a bound loopback
     * port): two cards on one virtual reader at once would confuse both tests.
     */
    private fun vpcdLock(): java.net.ServerSocket {
        var last: Exception? = null
        repeat(1200) { // up to ~60 s while another test holds the reader
            try {
                return java.net.ServerSocket().apply {
                    reuseAddress = false
                    bind(java.net.InetSocketAddress("127.0.0.1", 35969))
                }
            } catch (e: java.io.IOException) {
                last = e
                Thread.sleep(50)
            }
        }
        throw IllegalStateException("the vpcd reader lock (127.0.0.1:35969) stayed taken", last)
    }

    private fun connect(port: Int): Socket {
        var last: Exception? = null
        repeat(50) {
            try {
                return Socket("127.0.0.1", port).apply { tcpNoDelay = true }
            } catch (e: java.io.IOException) {
                last = e
                Thread.sleep(100)
            }
        }
        throw IllegalStateException("vpcd is not listening on 127.0.0.1:$port (is pcscd up? scripts/pcsc-up.sh)", last)
    }

    /** Without TCP_QUICKACK every APDU waits ~40 ms for a delayed ACK (Linux only). */
    private fun quickAck() {
        // Throwable: under Robolectric's class loader `jdk.net` may not load at all
        try { socket.setOption(jdk.net.ExtendedSocketOptions.TCP_QUICKACK, true) } catch (_: Throwable) { }
    }

    private fun serve() {
        try {
            val input = DataInputStream(BufferedInputStream(socket.getInputStream()))
            val output = DataOutputStream(socket.getOutputStream())
            fun send(b: ByteArray) { output.writeShort(b.size); output.write(b); output.flush() }
            while (true) {
                quickAck()
                val len = input.readUnsignedShort()
                val payload = ByteArray(len).also(input::readFully)
                if (len == 1) {
                    when (payload[0].toInt()) {
                        0x00 -> { powerOffs.incrementAndGet(); fieldOff() } // field off
                        0x01, 0x02 -> {} // power on, reset: nothing to answer
                        0x04 -> send(ATR)
                    }
                } else {
                    apdus.incrementAndGet()
                    send(answer(payload))
                }
            }
        } catch (e: EOFException) {
            if (!closing) failure = e
        } catch (e: SocketException) {
            if (!closing) failure = e
        } catch (e: Throwable) {
            failure = e
        }
    }

    override fun close() {
        closing = true
        socket.close()
        thread.join(10_000)
        lock.close()
    }

    companion object {
        /** ISO 14443-4 contactless card without historical bytes (PC/SC part 3). */
        val ATR = byteArrayOf(0x3B, 0x80.toByte(), 0x80.toByte(), 0x01, 0x01)
    }
}

/** The real validator binary deciding one tap through pcscd (`validator run --reader pcsc --once`). */
object Validator {
    data class Outcome(val exitCode: Int, val output: String)

    fun tapOnce(): Outcome = run("run", "--reader", "pcsc", "--once")

    fun verifyQr(text: String): Outcome = run("verify-qr", text)

    private fun run(vararg args: String): Outcome {
        val p = ProcessBuilder(listOf(Env.mancardBin, "validator", "--data-dir", Env.validatorDir) + args)
            .redirectErrorStream(true)
            .start()
        val out = StringBuffer()
        val reader = Thread {
            p.inputStream.bufferedReader().forEachLine { out.append(it).append('\n') }
        }.apply { start() }
        // A hang guard, not a timing assertion: a tap takes milliseconds.
        if (!p.waitFor(60, TimeUnit.SECONDS)) {
            p.destroyForcibly()
            reader.join(5_000)
            throw IllegalStateException("validator did not finish; it said: $out")
        }
        reader.join()
        return Outcome(p.exitValue(), out.toString())
    }
}
