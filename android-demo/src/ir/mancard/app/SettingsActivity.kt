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
        val lock = view<Switch>(R.id.lock)
        withWallet(null, { w -> w.isLocked() }) { locked ->
            lock.isChecked = locked
            lock.setOnCheckedChangeListener { _, on ->
                withWallet(null, { w -> w.setLocked(on) }) {}
            }
        }
    }
}
