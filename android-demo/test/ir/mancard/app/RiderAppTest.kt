package ir.mancard.app

import android.app.Activity
import android.content.Intent
import android.net.Uri
import android.os.Looper
import android.view.View
import android.view.WindowManager
import android.widget.Button
import android.widget.EditText
import android.widget.ImageView
import android.widget.LinearLayout
import android.widget.RadioGroup
import android.widget.TextView
import ir.mancard.core.formatAmount
import ir.mancard.core.test.Env
import ir.mancard.core.test.Http
import org.junit.After
import org.junit.Assert.assertEquals
import org.junit.Assert.assertNotEquals
import org.junit.Assert.assertNotNull
import org.junit.Assert.assertTrue
import org.junit.Test
import org.junit.runner.RunWith
import org.robolectric.Robolectric
import org.robolectric.RobolectricTestRunner
import org.robolectric.RuntimeEnvironment
import org.robolectric.Shadows.shadowOf
import org.robolectric.android.controller.ActivityController
import org.robolectric.annotation.GraphicsMode
import java.time.Duration

/**
 * Every screen against the real core and the real backend, as a rider uses them: sign in with
 * the SMS code, top up through the gateway and back by deep link, home, history, the QR pass
 * refreshed before it expires, settings and a language switch; each screen drawn to
 * screenshots/ in Persian (the default), English and South Azerbaijani.
 */
@RunWith(RobolectricTestRunner::class)
@GraphicsMode(GraphicsMode.Mode.NATIVE)
class RiderAppTest {
    private val app get() = RuntimeEnvironment.getApplication() as TestApp

    @After
    fun close() = app.holder.close()

    private fun <T : Activity> start(cls: Class<T>, intent: Intent? = null): ActivityController<T> =
        Robolectric.buildActivity(cls, intent).setup()

    private fun Activity.text(id: Int): String = requireViewById<TextView>(id).text.toString()
    private fun Activity.click(id: Int) = check(requireViewById<View>(id).performClick())
    private fun Activity.shot(name: String) = screenshot(requireViewById(R.id.root), name)

    /** The status line of every history row shown. */
    private fun LinearLayout.statuses(): List<String> =
        (0 until childCount).map { getChildAt(it).requireViewById<TextView>(R.id.status).text.toString() }

    /** Types [phone] and asks for the SMS code, which the screen says was sent. */
    private fun SignInActivity.sendCode(phone: String) {
        requireViewById<EditText>(R.id.phone).setText(phone)
        click(R.id.send_code)
        waitUntil("the code is sent") { text(R.id.message) == "کد به $phone فرستاده شد." }
    }

    /** Types [code] and signs in: the screen closes once this phone has its card. */
    private fun SignInActivity.signInWith(code: String) {
        requireViewById<EditText>(R.id.code).setText(code)
        click(R.id.verify)
        waitUntil("signed in and provisioned") { isFinishing }
    }

    @Test
    fun aRiderSignsInTopsUpRidesShowsAPassAndSwitchesLanguage() {
        waitUntil("the wallet opens") { app.holder.wallet() != null }

        // Home on a new phone sends the rider to sign in
        val home = start(HomeActivity::class.java).get()
        waitUntil("sign-in is opened") { shadowOf(home).peekNextStartedActivity() != null }
        val toSignIn = shadowOf(home).nextStartedActivity
        assertEquals(SignInActivity::class.java.name, toSignIn.component?.className)
        assertEquals("sign-in is opened once", null, shadowOf(home).nextStartedActivity)
        val signIn = start(SignInActivity::class.java, toSignIn).get()
        assertEquals(View.LAYOUT_DIRECTION_RTL, signIn.requireViewById<View>(R.id.root).layoutDirection)
        signIn.shot("sign_in_fa")
        val phone = Env.newPhone()
        signIn.sendCode(phone)
        // a wrong code: told in Persian, by the error's kind
        val realCode = Http.otp(phone)
        signIn.requireViewById<EditText>(R.id.code).setText(if (realCode == "000000") "111111" else "000000")
        signIn.click(R.id.verify)
        waitUntil("the wrong code is refused") { signIn.text(R.id.message) == "ورودی پذیرفته نشد؛ شماره یا کد را بررسی کنید." }
        signIn.signInWith(realCode)

        // Top up 50,000 toman: the gateway's page in the browser, back by the deep link
        val topUpCtl = start(TopUpActivity::class.java)
        val topUp = topUpCtl.get()
        assertEquals("پرداخت ۵۰٬۰۰۰ تومان", topUp.requireViewById<Button>(R.id.amount_2).text.toString())
        topUp.shot("top_up_fa")
        topUp.click(R.id.amount_2)
        waitUntil("the browser is opened") { shadowOf(topUp).peekNextStartedActivity() != null }
        val browser = shadowOf(topUp).nextStartedActivity
        assertEquals(Intent.ACTION_VIEW, browser.action)
        assertEquals(303, Http.post(browser.dataString!!)) // the rider pays on the bank's page
        // the return link names an intent the phone never started: ignored, the real one polled
        topUpCtl.newIntent(Intent(Intent.ACTION_VIEW, Uri.parse("mancard://topup/return?intent=forged")))
        waitUntil("the top-up is credited") { topUp.text(R.id.message) == "۵۰٬۰۰۰ تومان به حساب شما افزوده شد." }

        // Home: balance in toman, rides left, valid until (Solar Hijri), synced
        val home2 = start(HomeActivity::class.java).get()
        waitUntil("home shows the balance") { home2.text(R.id.balance) == "۵۰٬۰۰۰ تومان" }
        assertEquals("فعال", home2.text(R.id.card_state))
        assertTrue(home2.text(R.id.rides_left).all { it in '۰'..'۹' || it == '٬' })
        assertTrue(home2.text(R.id.valid_until), Regex("^[۰-۹]+ [آ-ی]+ ۱۴[۰-۹]{2}$").matches(home2.text(R.id.valid_until)))
        assertTrue(home2.text(R.id.sync_state).startsWith("همگام‌شده در "))
        home2.shot("home_fa")

        // The QR pass: full brightness, out of screenshots, a countdown, refreshed before expiry
        val passCtl = start(PassActivity::class.java)
        val pass = passCtl.get()
        waitUntil("the pass is shown") { pass.pass != null && pass.text(R.id.countdown).isNotEmpty() }
        assertEquals(WindowManager.LayoutParams.BRIGHTNESS_OVERRIDE_FULL, pass.window.attributes.screenBrightness)
        assertTrue(pass.window.attributes.flags and WindowManager.LayoutParams.FLAG_SECURE != 0)
        assertNotNull(pass.requireViewById<ImageView>(R.id.qr).drawable)
        assertTrue(pass.text(R.id.countdown).endsWith("ثانیه تا کد تازه"))
        pass.shot("pass_fa")
        val first = pass.pass!!
        app.clockOffset += first.refreshAt - app.nowSeconds() + 1 // the refresh time has come
        shadowOf(Looper.getMainLooper()).idleFor(Duration.ofSeconds(2))
        waitUntil("a new pass") { pass.pass!!.counter != first.counter }
        assertTrue(pass.pass!!.expiresAt >= first.expiresAt)
        passCtl.pause().stop().destroy()
        app.clockOffset = 0

        // History: the top-up and the pass, worded in Persian with Solar Hijri times
        val history = start(HistoryActivity::class.java).get()
        val list = history.requireViewById<LinearLayout>(R.id.list)
        waitUntil("history rows") { list.childCount >= 2 }
        val statuses = list.statuses()
        assertTrue(statuses.toString(), statuses.contains("۵۰٬۰۰۰ تومان افزوده شد"))
        assertTrue(statuses.toString(), statuses.contains("کد QR نشان داده شد"))
        history.shot("history_fa")

        // Settings: language, lock; switching to English re-words every screen
        val settings = start(SettingsActivity::class.java).get()
        settings.shot("settings_fa")
        settings.requireViewById<RadioGroup>(R.id.language).check(R.id.lang_en)
        assertEquals("en", app.settings.language)
        assertEquals("en", app.holder.wallet()!!.locale())
        shoot("en")

        app.settings.language = "azb"
        app.holder.wallet()!!.setLocale("azb")
        shoot("azb")
    }

    /** Every screen again in [lang], checked for its words and direction, and drawn. */
    private fun shoot(lang: String) {
        val home = start(HomeActivity::class.java).get()
        // the passes shown count against the balance until the backend has judged them
        val amount = formatAmount(app.holder.wallet()!!.ledger().availableBalance, lang)
        waitUntil("home in $lang") { home.text(R.id.balance) == amount }
        val rtl = lang != "en"
        assertEquals(rtl, home.requireViewById<View>(R.id.root).layoutDirection == View.LAYOUT_DIRECTION_RTL)
        when (lang) {
            "en" -> {
                assertTrue(amount, Regex("^[0-9,]+ toman \\([0-9,]+ rials\\)$").matches(amount))
                assertEquals("Active", home.text(R.id.card_state))
                assertEquals("Top up", home.requireViewById<Button>(R.id.top_up).text.toString())
                assertTrue(home.text(R.id.valid_until), home.text(R.id.valid_until).endsWith(" AP"))
            }
            "azb" -> {
                assertTrue(amount, Regex("^[۰-۹٬]+ تومن$").matches(amount))
                assertEquals("اعتبار آرتیر", home.requireViewById<Button>(R.id.top_up).text.toString())
            }
        }
        home.shot("home_$lang")
        start(SignInActivity::class.java).get().shot("sign_in_$lang")
        start(TopUpActivity::class.java).get().shot("top_up_$lang")
        val history = start(HistoryActivity::class.java).get()
        val list = history.requireViewById<LinearLayout>(R.id.list)
        waitUntil("history in $lang") { list.childCount >= 2 }
        if (lang == "en") {
            val statuses = list.statuses()
            assertTrue(statuses.toString(), statuses.contains("credited 50,000 toman (500,000 rials)"))
        }
        history.shot("history_$lang")
        val passCtl = start(PassActivity::class.java)
        waitUntil("the pass in $lang") { passCtl.get().pass != null }
        passCtl.get().shot("pass_$lang")
        passCtl.pause().stop().destroy()
        start(SettingsActivity::class.java).get().shot("settings_$lang")
    }

    @Test
    fun aLostKeyOffersANewCardNotACrash() = kotlinx.coroutines.runBlocking {
        waitUntil("the wallet opens") { app.holder.wallet() != null }
        val wallet = app.holder.wallet()!!
        val phone = wallet.signUp(500_000L) // enough rides that the new card is "active"

        // the screen lock changed: the sealing key is gone; the app opens again
        app.keys.invalidate()
        app.reopen { app.openNow() }
        waitUntil("the wallet opens again") { app.holder.wallet() != null }
        val home = start(HomeActivity::class.java).get()
        waitUntil("the message") { home.requireViewById<View>(R.id.get_new_card).visibility == View.VISIBLE }
        assertEquals(home.getString(R.string.key_invalidated), home.text(R.id.message))
        assertEquals("کارت تازه لازم است", home.text(R.id.card_state))
        home.shot("key_invalidated_fa")
        home.click(R.id.get_new_card) // signing in again provisions a new card
        val toSignIn = shadowOf(home).nextStartedActivity
        assertEquals(SignInActivity::class.java.name, toSignIn.component?.className)
        val signIn = start(SignInActivity::class.java, toSignIn).get()
        signIn.sendCode(phone)
        signIn.signInWith(Http.otp(phone))
        val home2 = start(HomeActivity::class.java).get()
        waitUntil("a new card") { home2.text(R.id.card_state) == "فعال" }
        assertEquals(View.GONE, home2.requireViewById<View>(R.id.get_new_card).visibility)
        assertNotEquals(0, app.holder.wallet()!!.status().ridesAvailable.toInt())
    }
}
