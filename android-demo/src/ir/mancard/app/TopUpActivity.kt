package ir.mancard.app

import android.content.Intent
import android.net.Uri
import android.os.Bundle
import android.os.Handler
import android.os.Looper
import android.widget.Button
import android.widget.TextView
import ir.mancard.core.TopUpIntent
import ir.mancard.core.TopUpStatus
import ir.mancard.core.formatAmount

/**
 * Top-up: the bank gateway's page opens in the browser; the gateway returns to
 * `mancard://topup/return?intent=ID`, and the wallet finishes the payment by asking the
 * backend (polling) where it stands. Nothing in the deep link is trusted: only top-ups this
 * phone started are polled, and only the backend says whether one was paid.
 */
class TopUpActivity : BaseActivity() {
    private val poller = Handler(Looper.getMainLooper())
    private var polls = 0
    /** A poll is running or scheduled: a repeated return link starts no second chain. */
    private var polling = false

    override fun onCreate(savedInstanceState: Bundle?) {
        super.onCreate(savedInstanceState)
        setContentView(R.layout.activity_top_up)
        AMOUNTS.zip(listOf(R.id.amount_1, R.id.amount_2, R.id.amount_3)).forEach { (rials, id) ->
            view<Button>(id).apply {
                text = getString(R.string.pay, formatAmount(rials, lang))
                setOnClickListener { start(rials) }
            }
        }
        onReturn(intent)
    }

    /** Back on this screen, or the wallet just opened (the process may have been killed while
     *  the rider was on the bank's page): ask about the top-ups this phone has open. */
    override fun onResume() {
        super.onResume()
        poll(null)
    }

    override fun walletChanged(state: WalletHolder.State) {
        if (state is WalletHolder.State.Ready) poll(null)
    }

    override fun onNewIntent(intent: Intent) {
        super.onNewIntent(intent)
        onReturn(intent)
    }

    override fun onDestroy() {
        poller.removeCallbacksAndMessages(null)
        super.onDestroy()
    }

    private fun start(rials: Long) {
        val message = view<TextView>(R.id.message)
        withWallet(message, { w -> w.startTopUp(rials) }) { i ->
            val page = Uri.parse(i.paymentUrl)
            // only a web page: never a file, an intent: URI or another app's scheme
            val web = page.scheme == "https" || (page.scheme == "http" && page.host in LOOPBACK)
            if (!web) throw IllegalArgumentException("not a payment page")
            message.show(getString(R.string.waiting_for_payment))
            startActivity(Intent(Intent.ACTION_VIEW, page).addCategory(Intent.CATEGORY_BROWSABLE))
        }
    }

    /** Back from the gateway (or opened again): poll the top-ups this phone has open. */
    private fun onReturn(intent: Intent?) {
        val data = intent?.data ?: return
        if (data.scheme != "mancard" || data.host != "topup") return
        view<TextView>(R.id.message).show(getString(R.string.waiting_for_payment))
        polls = 0
        poll(data.getQueryParameter("intent"))
    }

    private fun poll(hint: String?) {
        if (polling) return
        val message = view<TextView>(R.id.message)
        if (app.holder.wallet() == null) return // walletChanged(Ready) polls
        polling = true
        withWallet(message, { w ->
            val open = w.openTopUps().map { it.intentId }
            // the link's id only says which to ask about first; unknown ids are ignored
            val ids = (listOfNotNull(hint).filter { it in open } + open).distinct()
            val results = ids.map { w.completeTopUp(it) }
            // money arrived: a sync renews the card's offline allowance against it
            val synced = results.any { it.status == TopUpStatus.CREDITED } && runCatching { w.sync() }.isSuccess
            results to synced
        }) { (results, synced) ->
            polling = false
            if (synced) app.settings.lastSync = app.nowSeconds()
            show(results)
        }
    }

    private fun show(results: List<TopUpIntent>) {
        val message = view<TextView>(R.id.message)
        val credited = results.firstOrNull { it.status == TopUpStatus.CREDITED }
        val failed = results.firstOrNull { it.status == TopUpStatus.CANCELLED || it.status == TopUpStatus.EXPIRED }
        when {
            credited != null -> message.show(getString(R.string.top_up_credited, formatAmount(credited.amount, lang)))
            failed != null -> message.show(getString(R.string.top_up_failed))
            results.isNotEmpty() && ++polls < MAX_POLLS -> {
                polling = true // the scheduled poll is this chain's: no other starts meanwhile
                poller.postDelayed({ polling = false; poll(null) }, POLL_MS)
            }
        }
    }

    companion object {
        /** Rials: 20,000, 50,000 and 100,000 toman. */
        val AMOUNTS = listOf(200_000L, 500_000L, 1_000_000L)
        const val POLL_MS = 2_000L
        const val MAX_POLLS = 60
        /** The sandbox gateway on a developer's machine; real gateways are https. */
        val LOOPBACK = setOf("127.0.0.1", "localhost", "[::1]", "::1")
    }
}
