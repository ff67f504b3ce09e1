package ir.mancard.app

import android.graphics.BitmapFactory
import android.os.Bundle
import android.os.Handler
import android.os.Looper
import android.view.WindowManager
import android.widget.ImageView
import android.widget.TextView
import ir.mancard.core.BoardingPass
import ir.mancard.core.formatAmount
import ir.mancard.core.formatNumber

/**
 * The QR boarding pass (for iPhones and phones without NFC, and any validator's camera): full
 * brightness, the screen kept on and kept out of screenshots and screen recordings (a pass is
 * short-lived, but a bystander's camera or another app should not get one), refreshed before
 * it expires, with a countdown.
 */
class PassActivity : BaseActivity() {
    private val ticker = Handler(Looper.getMainLooper())
    var pass: BoardingPass? = null
        private set

    override fun onCreate(savedInstanceState: Bundle?) {
        super.onCreate(savedInstanceState)
        window.addFlags(WindowManager.LayoutParams.FLAG_KEEP_SCREEN_ON or WindowManager.LayoutParams.FLAG_SECURE)
        window.attributes = window.attributes.apply {
            screenBrightness = WindowManager.LayoutParams.BRIGHTNESS_OVERRIDE_FULL
        }
        setContentView(R.layout.activity_pass)
    }

    override fun onResume() {
        super.onResume()
        refreshPass()
    }

    override fun walletChanged(state: WalletHolder.State) {
        if (state is WalletHolder.State.Ready && pass == null) refreshPass()
    }

    override fun onPause() {
        ticker.removeCallbacksAndMessages(null)
        super.onPause()
    }

    private fun refreshPass() {
        ticker.removeCallbacksAndMessages(null)
        withWallet(view(R.id.message), { w -> w.boardingPass() }) { p ->
            pass = p
            view<ImageView>(R.id.qr).setImageBitmap(BitmapFactory.decodeByteArray(p.png, 0, p.png.size))
            view<TextView>(R.id.max_amount).text = getString(R.string.pass_max, formatAmount(p.maxAmount, lang))
            tick()
        }
    }

    /** Once a second: the countdown, and a new pass when the current one is due for refresh. */
    private fun tick() {
        val p = pass ?: return
        val left = p.refreshAt - app.nowSeconds()
        if (left <= 0) {
            refreshPass()
            return
        }
        view<TextView>(R.id.countdown).text = getString(R.string.pass_expires_in, formatNumber(left, lang))
        ticker.postDelayed({ tick() }, 1_000)
    }
}
