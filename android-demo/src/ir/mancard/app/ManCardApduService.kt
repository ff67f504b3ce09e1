package ir.mancard.app

import android.nfc.cardemulation.HostApduService
import android.os.Bundle

/**
 * Host card emulation for the ManCard AID (res/xml/apduservice.xml). `processCommandApdu` runs
 * on the main thread: it never opens anything, never blocks and never throws. Until the
 * wallet is open (the application opens it in the background at process start) every command
 * gets 6400 ("not ready": nothing read or signed), which the validator shows as "tap again".
 */
class ManCardApduService : HostApduService() {
    private fun holder(): WalletHolder? = (application as? ManCardApplication)?.holder

    override fun processCommandApdu(commandApdu: ByteArray?, extras: Bundle?): ByteArray = try {
        val h = holder()
        val wallet = h?.wallet()
        when {
            // opened and failed: not "tap again" for ever, an error (the app says why)
            wallet == null && h?.state is WalletHolder.State.Failed -> INTERNAL.copyOf()
            wallet == null -> NOT_READY.copyOf()
            commandApdu == null -> WRONG_LENGTH.copyOf()
            else -> wallet.processApdu(commandApdu) // never throws: errors are status words
        }
    } catch (t: Throwable) { // a native library that failed to load, an Error: still an answer
        INTERNAL.copyOf()
    }

    /** The field dropped (DEACTIVATION_LINK_LOSS) or another AID was selected. */
    override fun onDeactivated(reason: Int) {
        try {
            holder()?.wallet()?.deactivated()
        } catch (_: Throwable) {
        }
    }

    override fun onDestroy() {
        try {
            holder()?.wallet()?.parkCounter() // the process may be killed next
        } catch (_: Throwable) {
        }
        super.onDestroy()
    }

    companion object {
        /** docs/protocol.md `NotReady`: the wallet is not open yet (still opening). */
        val NOT_READY = byteArrayOf(0x64, 0x00)
        val WRONG_LENGTH = byteArrayOf(0x67, 0x00)
        val INTERNAL = byteArrayOf(0x6F, 0x00)
    }
}
