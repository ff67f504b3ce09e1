package ir.mancard.app

import android.app.Activity
import android.content.Context
import android.content.res.Configuration
import android.view.View
import android.widget.TextView
import ir.mancard.core.ManCardException
import ir.mancard.core.Wallet
import kotlinx.coroutines.CoroutineScope
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.SupervisorJob
import kotlinx.coroutines.cancel
import kotlinx.coroutines.launch
import kotlinx.coroutines.withContext
import java.util.Locale

/**
 * What every screen shares: the rider's language (chosen in Settings, Persian by default,
 * applied to the activity's resources and layout direction), and wallet work off the main
 * thread with its answer back on it. Framework classes only (no AndroidX).
 */
abstract class BaseActivity : Activity() {
    protected val app: ManCardApplication get() = application as ManCardApplication
    protected val scope = CoroutineScope(SupervisorJob() + Dispatchers.Main)
    private var createdIn: String = "fa"
    private val onWallet: (WalletHolder.State) -> Unit = { walletChanged(it) }

    /** The language the core formats in: "fa", "azb" or "en". */
    protected val lang: String get() = app.settings.language

    override fun attachBaseContext(base: Context) {
        val tag = Settings.language(base)
        createdIn = tag
        val locale = Locale.forLanguageTag(tag)
        val config = Configuration(base.resources.configuration)
        config.setLocale(locale)
        config.setLayoutDirection(locale)
        // Views resolving "locale" directions and java.text read the process default
        Locale.setDefault(locale)
        super.attachBaseContext(base.createConfigurationContext(config))
    }

    /** Right to left for Persian and South Azerbaijani, whatever the phone's own language. */
    override fun setContentView(layoutResID: Int) {
        super.setContentView(layoutResID)
        val direction = resources.configuration.layoutDirection
        window.decorView.layoutDirection = direction
        requireViewById<android.view.ViewGroup>(android.R.id.content).let { content ->
            content.layoutDirection = direction
            for (i in 0 until content.childCount) content.getChildAt(i).layoutDirection = direction
        }
    }

    override fun onStart() {
        super.onStart()
        app.holder.observe(onWallet)
    }

    override fun onResume() {
        super.onResume()
        if (createdIn != lang) recreate() // the language changed in Settings
    }

    override fun onStop() {
        app.holder.forget(onWallet)
        super.onStop()
    }

    override fun onDestroy() {
        scope.cancel()
        super.onDestroy()
    }

    /** Called on the main thread when the wallet opens, or fails to. */
    protected open fun walletChanged(state: WalletHolder.State) {}

    /** Runs [work] with the open wallet on a background thread, then [done] on this screen's
     *  thread (not at all once the screen is gone). A failure is shown in [errorView]. */
    protected fun <T> withWallet(
        errorView: TextView?,
        work: suspend (Wallet) -> T,
        done: (T) -> Unit,
    ) {
        val wallet = app.holder.wallet() ?: run {
            errorView?.show(getString(R.string.wallet_opening))
            return
        }
        scope.launch {
            val result = withContext(Dispatchers.IO) { runCatching { work(wallet) } }
            result.fold(done) { e -> errorView?.show(getString(R.string.failed, describe(e))) }
        }
    }

    /** The core's sentence for a failure (its messages never hold secrets). */
    protected fun describe(e: Throwable): String = when (e) {
        is ManCardException -> e.message ?: e.javaClass.simpleName
        else -> e.message ?: e.javaClass.simpleName
    }

    protected fun TextView.show(text: CharSequence) {
        this.text = text
        visibility = View.VISIBLE
    }

    protected fun <T : View> view(id: Int): T = requireViewById(id)
}
