package ir.mancard.app

import android.content.Intent
import android.os.Bundle
import android.view.View
import android.widget.Button
import android.widget.TextView
import ir.mancard.core.CredentialState
import ir.mancard.core.formatAmount
import ir.mancard.core.formatDate
import ir.mancard.core.formatDateTime
import ir.mancard.core.formatNumber

/** Home: balance in toman, offline rides left, card valid until, sync state. */
class HomeActivity : BaseActivity() {
    /** Sign-in was opened in this resume (a refresh after the wallet opens must not open it twice). */
    private var sentToSignIn = false

    override fun onCreate(savedInstanceState: Bundle?) {
        super.onCreate(savedInstanceState)
        setContentView(R.layout.activity_home)
        view<Button>(R.id.show_pass).setOnClickListener { open(PassActivity::class.java) }
        view<Button>(R.id.top_up).setOnClickListener { open(TopUpActivity::class.java) }
        view<Button>(R.id.history).setOnClickListener { open(HistoryActivity::class.java) }
        view<Button>(R.id.settings).setOnClickListener { open(SettingsActivity::class.java) }
        view<Button>(R.id.sync_now).setOnClickListener { sync() }
        // the card's key is gone (the screen lock changed): its session went with it, so the
        // rider signs in again, and signing in provisions a new card for this phone
        view<Button>(R.id.get_new_card).setOnClickListener { open(SignInActivity::class.java) }
    }

    private fun open(screen: Class<*>) = startActivity(Intent(this, screen))

    override fun onResume() {
        super.onResume()
        refresh()
    }

    override fun onPause() {
        sentToSignIn = false
        super.onPause()
    }

    override fun walletChanged(state: WalletHolder.State) {
        when (state) {
            is WalletHolder.State.Opening -> message(getString(R.string.wallet_opening))
            is WalletHolder.State.Failed -> message(getString(R.string.wallet_failed, describe(state.cause)))
            is WalletHolder.State.Ready -> refresh()
        }
    }

    private fun message(text: String?) {
        val m = view<TextView>(R.id.message)
        if (text == null) m.visibility = View.GONE else m.show(text)
    }

    /** Reads the wallet (no network) and shows it; a rider not signed in goes to sign in. */
    fun refresh() {
        val m = view<TextView>(R.id.message)
        withWallet(m, { w -> Triple(w.status(), w.ledger(), w.onlineState().loggedIn) }) { (s, l, loggedIn) ->
            if (!loggedIn && s.state == CredentialState.NO_CREDENTIAL) {
                if (!sentToSignIn) open(SignInActivity::class.java)
                sentToSignIn = true
                return@withWallet
            }
            message(null)
            view<TextView>(R.id.card_state).text = s.stateText
            view<TextView>(R.id.summary).text = s.summary
            view<TextView>(R.id.balance).text = formatAmount(l.availableBalance, lang)
            view<TextView>(R.id.rides_left).text = formatNumber(s.ridesAvailable.toLong(), lang)
            view<TextView>(R.id.valid_until).text =
                s.validUntil?.let { formatDate(it, lang) } ?: getString(R.string.unknown)
            val last = app.settings.lastSync
            view<TextView>(R.id.sync_state).text =
                if (last == 0L) getString(R.string.never_synced)
                else getString(R.string.synced_at, formatDateTime(last, lang))
            val keyLost = s.state == CredentialState.KEY_UNAVAILABLE
            view<Button>(R.id.get_new_card).visibility = if (keyLost) View.VISIBLE else View.GONE
            if (keyLost) message(getString(R.string.key_invalidated))
        }
    }

    private fun sync() {
        view<TextView>(R.id.sync_state).text = getString(R.string.syncing)
        withWallet(view(R.id.message), { w -> w.sync() }) {
            app.settings.lastSync = app.nowSeconds()
            refresh()
        }
    }
}
