package ir.mancard.app

import android.os.Bundle
import android.view.View
import android.widget.LinearLayout
import android.widget.TextView
import ir.mancard.core.HistoryEntry
import ir.mancard.core.HistoryKind
import ir.mancard.core.formatAmount
import ir.mancard.core.formatDateTime

/** History: Solar Hijri dates, fares, corrections and refusals with their reasons (the
 *  core words each row in the rider's language). */
class HistoryActivity : BaseActivity() {
    override fun onCreate(savedInstanceState: Bundle?) {
        super.onCreate(savedInstanceState)
        setContentView(R.layout.activity_history)
    }

    override fun onResume() {
        super.onResume()
        load()
    }

    override fun walletChanged(state: WalletHolder.State) {
        if (state is WalletHolder.State.Ready) load()
    }

    private fun load() {
        withWallet(null, { w -> w.history(null, PAGE) }) { page -> show(page.entries) }
    }

    private fun show(entries: List<HistoryEntry>) {
        val list = view<LinearLayout>(R.id.list)
        list.removeAllViews()
        view<TextView>(R.id.empty).visibility = if (entries.isEmpty()) View.VISIBLE else View.GONE
        for (e in entries) {
            val row = layoutInflater.inflate(R.layout.item_history, list, false)
            row.requireViewById<TextView>(R.id.kind).text = getString(kindLabel(e.kind))
            row.requireViewById<TextView>(R.id.amount).text = formatAmount(e.amount, lang)
            row.requireViewById<TextView>(R.id.status).text = e.statusText
            row.requireViewById<TextView>(R.id.detail).apply {
                text = e.detail
                visibility = if (e.detail.isEmpty()) View.GONE else View.VISIBLE
            }
            row.requireViewById<TextView>(R.id.time).text = formatDateTime(e.time, lang)
            list.addView(row)
        }
    }

    private fun kindLabel(kind: HistoryKind): Int = when (kind) {
        HistoryKind.TAP -> R.string.kind_tap
        HistoryKind.PASS -> R.string.kind_pass
        HistoryKind.REFUSAL -> R.string.kind_refusal
        HistoryKind.TOP_UP -> R.string.kind_top_up
    }

    companion object {
        const val PAGE = 50u
    }
}
