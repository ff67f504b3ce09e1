package ir.mancard.app

import android.os.Looper
import android.view.View
import android.graphics.Bitmap
import android.graphics.Canvas
import ir.mancard.core.KeystoreException
import ir.mancard.core.PlatformKeystore
import ir.mancard.core.Wallet
import ir.mancard.core.test.Env
import ir.mancard.core.test.Http
import ir.mancard.core.test.JcaKeystore
import org.junit.Assert.assertEquals
import org.robolectric.Shadows.shadowOf
import java.io.File

/**
 * The app as the tests run it (robolectric.properties): the real core through JNA (the host
 * build of libmancard.so), the real test backend (MANCARD_TEST_BACKEND_URL, started by
 * bindings/test-bindings.sh), a JCA keystore in place of the Android Keystore (which the JVM
 * does not have) that can lose its key like a phone whose screen lock changed, and a clock the
 * tests can move.
 */
class TestApp : ManCardApplication() {
    val keys = GenerationalKeystore(JcaKeystore())
    @Volatile var clockOffset = 0L

    override fun backendUrl(): String = Env.backendUrl
    override fun keystore(): PlatformKeystore = keys
    override fun nowSeconds(): Long = super.nowSeconds() + clockOffset

    /** The real open, for tests that wrap it. */
    fun openNow(): Wallet = openWallet()
}

/**
 * A keystore whose sealing key can be lost, as KeyPermanentlyInvalidatedException loses it on
 * a phone: what was sealed before [invalidate] no longer unseals; new seals work.
 */
class GenerationalKeystore(private val inner: PlatformKeystore) : PlatformKeystore {
    @Volatile private var generation: Byte = 1

    fun invalidate() {
        generation = (generation + 1).toByte()
    }

    override fun bindingPublicKey(): ByteArray = inner.bindingPublicKey()
    override fun signWithBindingKey(message: ByteArray): ByteArray = inner.signWithBindingKey(message)
    override fun seal(plaintext: ByteArray): ByteArray = byteArrayOf(generation) + inner.seal(plaintext)
    override fun unseal(sealed: ByteArray): ByteArray {
        if (sealed.isEmpty()) throw KeystoreException.SealedDataInvalid()
        if (sealed[0] != generation) {
            throw KeystoreException.Unavailable("the key was invalidated (the screen lock changed)")
        }
        return inner.unseal(sealed.copyOfRange(1, sealed.size))
    }
}

/**
 * A rider signed in with the sandbox's SMS code, topped up with [rials] through the sandbox
 * gateway and provisioned, through the wallet's API (not the screens). Returns the phone number.
 */
suspend fun Wallet.signUp(rials: Long): String {
    val phone = Env.newPhone()
    register(phone)
    verify(phone, Http.otp(phone))
    val intent = startTopUp(rials)
    assertEquals(303, Http.post(intent.paymentUrl)) // the rider pays on the bank's page
    completeTopUp(intent.intentId)
    provision()
    return phone
}

/** Runs the main looper until [cond] holds: work finishes on background threads and posts its
 *  answer to the main thread. A hang guard, not a timing assertion. */
fun waitUntil(what: String, timeoutMs: Long = 90_000, cond: () -> Boolean) {
    val end = System.currentTimeMillis() + timeoutMs
    while (true) {
        shadowOf(Looper.getMainLooper()).idle()
        if (cond()) return
        if (System.currentTimeMillis() > end) throw AssertionError("timed out waiting for $what")
        Thread.sleep(20)
    }
}

/** Draws [root] 720 px wide (its own height) into screenshots/NAME.png for README.md. */
fun screenshot(root: View, name: String): File {
    root.measure(
        View.MeasureSpec.makeMeasureSpec(720, View.MeasureSpec.EXACTLY),
        View.MeasureSpec.makeMeasureSpec(0, View.MeasureSpec.UNSPECIFIED),
    )
    root.layout(0, 0, root.measuredWidth, root.measuredHeight)
    val bmp = Bitmap.createBitmap(root.measuredWidth, maxOf(1, root.measuredHeight), Bitmap.Config.ARGB_8888)
    bmp.eraseColor(android.graphics.Color.WHITE)
    root.draw(Canvas(bmp))
    val dir = File(System.getProperty("screens.dir", "screenshots")).apply { mkdirs() }
    val out = File(dir, "$name.png")
    out.outputStream().use { bmp.compress(Bitmap.CompressFormat.PNG, 100, it) }
    return out
}
