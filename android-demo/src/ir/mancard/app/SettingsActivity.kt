package ir.mancard.app

import android.os.Bundle
import android.widget.RadioGroup
import android.widget.Switch
import android.widget.TextView

/** Settings: language, lock the card, and what to do about a lost phone. */
class SettingsActivity : BaseActivity() {
    override fun onCreate(savedInstanceState: Bundle?) {
        super.onCreate(savedInstanceState)
        setContentView(R.layout.activity_settings)
        val group = view<RadioGroup>(R.id.language)
        group.check(
            when (lang) {
                "azb" -> R.id.lang_azb
                "en" -> R.id.lang_en
                else -> R.id.lang_fa
            },
        )
        group.setOnCheckedChangeListener { _, id ->
            val tag = when (id) {
                R.id.lang_azb -> "azb"
                R.id.lang_en -> "en"
                else -> "fa"
            }
            if (tag != lang) {
                app.settings.language = tag
                app.holder.wallet()?.setLocale(tag) // the core's sentences follow
                recreate()
            }
        }
        showLock()
    }

    override fun walletChanged(state: WalletHolder.State) {
        if (state is WalletHolder.State.Ready) showLock()
    }

    /** The switch works only once the wallet's state is known, and always shows that state
     *  (a failed change flips it back and says why). */
    private fun showLock() {
        val lock = view<Switch>(R.id.lock)
        val message = view<TextView>(R.id.message)
        lock.isEnabled = false
        withWallet(null, { w -> w.isLocked() }) { locked ->
            lock.setOnCheckedChangeListener(null)
            lock.isChecked = locked
            lock.isEnabled = true
            lock.setOnCheckedChangeListener { _, on ->
                lock.isEnabled = false
                withWallet(message, { w -> w.setLocked(on); w.isLocked() }, { showLock() }) { now ->
                    lock.setOnCheckedChangeListener(null)
                    lock.isChecked = now
                    lock.isEnabled = true
                    showLock()
                }
            }
        }
    }
}
