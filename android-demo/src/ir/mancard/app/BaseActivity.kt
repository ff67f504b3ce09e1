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
    /** The holder this screen listens to (the application may reopen the wallet meanwhile). */
    private var observed: WalletHolder? = null

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
        observed = app.holder.also { it.observe(onWallet) }
    }

    override fun onResume() {
        super.onResume()
        if (createdIn != lang) recreate() // the language changed in Settings
    }

    override fun onStop() {
        observed?.forget(onWallet)
        observed = null
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
        failed: (Throwable) -> Unit = {},
        done: (T) -> Unit,
    ) {
        val wallet = app.holder.wallet() ?: run {
            errorView?.show(getString(R.string.wallet_opening))
            return
        }
        scope.launch {
            val result = withContext(Dispatchers.IO) { runCatching { work(wallet) } }
            // a failure of the screen's own step (e.g. no browser) is shown too, not a crash
            result.mapCatching(done).onFailure { e ->
                errorView?.show(describe(e))
                failed(e)
            }
        }
    }

    /** A failure in the rider's language, by its kind (the error's class is the contract; the
     *  core's English sentence goes to the log, never to the rider). */
    protected fun describe(e: Throwable): String {
        android.util.Log.i("mancard", "${e.javaClass.simpleName}: ${e.message}")
        return getString(
            when (e) {
                is ManCardException.NoCredential -> R.string.error_no_credential
                is ManCardException.Locked -> R.string.error_locked
                is ManCardException.CredentialUnusable -> R.string.error_unusable
                is ManCardException.CredentialRevoked -> R.string.error_revoked
                is ManCardException.Offline -> R.string.error_offline
                is ManCardException.SessionExpired -> R.string.error_session
                is ManCardException.AccountBlocked -> R.string.error_blocked
                is ManCardException.RateLimited -> R.string.error_rate_limited
                is ManCardException.Validation -> R.string.error_validation
                is ManCardException.Server -> R.string.error_server
                is ManCardException.Storage -> R.string.error_storage
                is ManCardException.DataMissing -> R.string.error_data_missing
                is ManCardException.AuthenticationRequired -> R.string.error_auth_required
                is ManCardException.Keystore -> R.string.error_keystore
                else -> R.string.error_internal
            },
        )
    }

    protected fun TextView.show(text: CharSequence) {
        this.text = text
        visibility = View.VISIBLE
    }

    protected fun <T : View> view(id: Int): T = requireViewById(id)
}
