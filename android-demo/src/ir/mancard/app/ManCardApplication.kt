package ir.mancard.app

import android.app.Application
import android.content.Context
import android.os.Handler
import android.os.Looper
import android.util.Log
import ir.mancard.core.LogLevel
import ir.mancard.core.LogRecord
import ir.mancard.core.Logger
import ir.mancard.core.PlatformKeystore
import ir.mancard.core.Wallet
import ir.mancard.core.setLogger
import java.io.File
import java.util.concurrent.CopyOnWriteArrayList

/**
 * The process's one wallet, shared by the NFC service, the screens and sync (it is
 * thread-safe). It is opened on a background thread as soon as the process starts, so neither
 * the first tap nor the first screen pays for the keystore unseal and the SQLite open on the
 * main thread; until it is open the NFC service answers "not ready" (6400).
 */
open class ManCardApplication : Application() {
    lateinit var holder: WalletHolder
        private set
    val settings: Settings by lazy { Settings(this) }

    override fun onCreate() {
        super.onCreate()
        runCatching { setLogger(LogcatLogger(), LogLevel.INFO) } // the library may be missing
        holder = WalletHolder(::openWallet)
        holder.start()
    }

    /** Closes the wallet and opens it again through [open], in the background (after a new
     *  keystore key; tests: a slow or failing open). Screens opened afterwards see the new one. */
    fun reopen(open: () -> Wallet = ::openWallet) {
        val old = holder
        old.close()
        old.awaitOpened() // an open still running holds the directory's lock until it ends
        holder = WalletHolder(open)
        holder.start()
    }

    /** Going to the background, or trimmed before a kill: record the next tap counter now so
     *  the kill skips none (the core also does it a second after each tap or pass). */
    override fun onTrimMemory(level: Int) {
        super.onTrimMemory(level)
        // an fsync: never on the main thread
        holder.wallet()?.let { w -> Thread { runCatching { w.parkCounter() } }.start() }
    }

    /** noBackupFilesDir: never in cloud backups or device transfers (a restored copy would read
     *  as a rollback, and the database holds the rider's history). */
    open fun walletDir(): File = noBackupFilesDir.resolve("wallet")

    open fun backendUrl(): String = getString(R.string.backend_url)

    /** Android Keystore (StrongBox where the phone has it). Tests give a JCA one. */
    open fun keystore(): PlatformKeystore = AndroidPlatformKeystore()

    /** Wall-clock seconds (tests move it). */
    open fun nowSeconds(): Long = System.currentTimeMillis() / 1000

    protected open fun openWallet(): Wallet {
        val w = Wallet(walletDir().path, backendUrl(), keystore())
        try {
            w.setLocale(settings.language)
        } catch (t: Throwable) {
            w.close() // never leave the directory locked by a wallet nobody holds
            throw t
        }
        return w
    }
}

/** Where the wallet's opening stands, and who wants to know. Listeners run on the main thread. */
class WalletHolder(private val open: () -> Wallet) {
    sealed interface State {
        object Opening : State
        class Ready(val wallet: Wallet) : State
        class Failed(val cause: Throwable) : State
    }

    @Volatile var state: State = State.Opening
        private set
    private var closed = false
    private val listeners = CopyOnWriteArrayList<(State) -> Unit>()
    private val main = Handler(Looper.getMainLooper())
    private var thread: Thread? = null

    fun start() {
        thread = Thread({
            val s = try {
                State.Ready(open())
            } catch (t: Throwable) { // never crash the process: the screens show it
                Log.e("mancard", "the wallet could not be opened", t)
                State.Failed(t)
            }
            synchronized(this) {
                if (closed) { // closed while it opened: nobody may keep the directory locked
                    (s as? State.Ready)?.wallet?.close()
                    return@Thread
                }
                state = s
            }
            main.post { listeners.forEach { it(s) } }
        }, "mancard-open").apply { isDaemon = true; start() }
    }

    /** Waits (bounded) for the open started by [start] to end, whatever its outcome. */
    fun awaitOpened() {
        thread?.join(30_000)
    }

    /** The open wallet, or null while it opens (or if it failed). */
    fun wallet(): Wallet? = (state as? State.Ready)?.wallet

    /** Calls [l] with the current state now (on the main thread) and on every change. */
    fun observe(l: (State) -> Unit) {
        listeners.add(l)
        main.post { if (listeners.contains(l)) l(state) }
    }

    fun forget(l: (State) -> Unit) {
        listeners.remove(l)
    }

    /** Closes the wallet (tests; a process simply dies). */
    fun close() {
        val w = synchronized(this) {
            closed = true
            wallet().also { state = State.Failed(IllegalStateException("closed")) }
        }
        w?.close()
    }
}

/** The rider's settings: language, last sync. Not secrets (the wallet seals its own). */
class Settings(context: Context) {
    private val prefs = context.getSharedPreferences(NAME, Context.MODE_PRIVATE)

    var language: String
        get() = prefs.getString(LANGUAGE, "fa") ?: "fa"
        set(v) { prefs.edit().putString(LANGUAGE, v).apply() }

    var lastSync: Long
        get() = prefs.getLong(LAST_SYNC, 0)
        set(v) { prefs.edit().putLong(LAST_SYNC, v).apply() }

    companion object {
        private const val NAME = "mancard"
        private const val LANGUAGE = "language"
        private const val LAST_SYNC = "last_sync"

        /** The language before the application object exists (an activity's base context). */
        fun language(context: Context): String =
            context.getSharedPreferences(NAME, Context.MODE_PRIVATE).getString(LANGUAGE, "fa") ?: "fa"
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
