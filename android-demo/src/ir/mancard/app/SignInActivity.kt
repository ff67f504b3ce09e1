package ir.mancard.app

import android.os.Bundle
import android.widget.Button
import android.widget.EditText
import android.widget.TextView

/** Sign in with the phone number and the SMS code; then this phone gets its card. */
class SignInActivity : BaseActivity() {
    private var phone: String? = null

    override fun onCreate(savedInstanceState: Bundle?) {
        super.onCreate(savedInstanceState)
        setContentView(R.layout.activity_sign_in)
        val message = view<TextView>(R.id.message)
        view<Button>(R.id.send_code).setOnClickListener {
            val number = view<EditText>(R.id.phone).text.toString().trim()
            withWallet(message, { w -> w.register(number) }) { sent ->
                phone = sent.phone
                message.show(getString(R.string.code_sent, sent.phone))
            }
        }
        view<Button>(R.id.verify).setOnClickListener {
            val number = phone ?: view<EditText>(R.id.phone).text.toString().trim()
            val code = view<EditText>(R.id.code).text.toString().trim()
            message.show(getString(R.string.signing_in))
            withWallet(message, { w ->
                w.verify(number, code)
                w.provision() // the certificate and the config bundle: the card works offline now
            }) {
                app.settings.lastSync = app.nowSeconds()
                finish()
            }
        }
    }
}
