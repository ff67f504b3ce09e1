package ir.mancard.app

import android.app.Application
import android.nfc.cardemulation.HostApduService
import android.os.Bundle
import android.util.Log
import ir.mancard.core.LogLevel
import ir.mancard.core.LogRecord
import ir.mancard.core.Logger
import ir.mancard.core.Wallet
import ir.mancard.core.setLogger

/** One wallet per process, shared by the NFC service, the UI and sync (it is thread-safe). */
class ManCardApplication : Application() {
    @Volatile private var opened = false

    val wallet: Wallet by lazy {
        // noBackupFilesDir: never in cloud backups or device transfer (a restored copy would
        // read as a rollback, and the database holds the rider's history in clear)
        Wallet(noBackupFilesDir.resolve("wallet").path, BACKEND_URL, AndroidPlatformKeystore())
            .also { opened = true }
    }

    override fun onCreate() {
        super.onCreate()
        setLogger(LogcatLogger(), LogLevel.INFO)
    }

    /** Going to the background, or trimmed before a kill: record the next tap counter now so
     *  the kill skips none (the core also does it a second after each tap or pass). */
    override fun onTrimMemory(level: Int) {
        super.onTrimMemory(level)
        if (opened) runCatching { wallet.parkCounter() }
    }

    companion object {
        const val BACKEND_URL = "https://api.mancard.invalid"
    }
}

/**
 * Host card emulation for the ManCard AID (res/xml/apduservice.xml). The tap path never
 * touches the network or the keystore and takes a few milliseconds, so it answers directly on
 * the main thread.
 */
class ManCardApduService : HostApduService() {
    private val wallet: Wallet get() = (application as ManCardApplication).wallet

    override fun processCommandApdu(commandApdu: ByteArray, extras: Bundle?): ByteArray =
        wallet.processApdu(commandApdu) // never throws: errors are status words

    override fun onDeactivated(reason: Int) {
        wallet.deactivated() // field lost (DEACTIVATION_LINK_LOSS) or another AID selected
    }

    override fun onDestroy() {
        runCatching { wallet.parkCounter() } // the process may be killed next
        super.onDestroy()
    }
}

/** The core's log events into Logcat (the core never logs secrets). */
class LogcatLogger : Logger {
    override fun log(record: LogRecord) {
        val priority = when (record.level) {
            LogLevel.ERROR -> Log.ERROR
            LogLevel.WARN -> Log.WARN
            LogLevel.INFO -> Log.INFO
            LogLevel.DEBUG -> Log.DEBUG
            LogLevel.TRACE -> Log.VERBOSE
        }
        Log.println(priority, record.target.take(23), record.message)
    }
}
