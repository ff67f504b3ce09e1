package ir.mancard.app

import android.os.Build
import android.security.keystore.KeyGenParameterSpec
import android.security.keystore.KeyPermanentlyInvalidatedException
import android.security.keystore.KeyProperties
import android.security.keystore.UserNotAuthenticatedException
import ir.mancard.core.KeystoreException
import ir.mancard.core.PlatformKeystore
import java.math.BigInteger
import java.security.GeneralSecurityException
import java.security.KeyPairGenerator
import java.security.KeyStore
import java.security.ProviderException
import java.security.Signature
import java.security.interfaces.ECPublicKey
import java.security.spec.ECGenParameterSpec
import javax.crypto.AEADBadTagException
import javax.crypto.Cipher
import javax.crypto.KeyGenerator
import javax.crypto.SecretKey
import javax.crypto.spec.GCMParameterSpec

/**
 * The wallet's keys in the Android Keystore (StrongBox when the phone has one, Android 9+): a
 * P-256 binding
 * key that never leaves the secure hardware, and an AES-256-GCM key sealing the wallet's tap
 * keys at rest. Same formats as the JVM test keystore (`JcaKeystore`), which the binding tests
 * run against the real backend.
 */
class AndroidPlatformKeystore(prefix: String = "ir.mancard") : PlatformKeystore {
    private val bindingAlias = "$prefix.binding"
    private val sealingAlias = "$prefix.sealing"
    private val keyStore: KeyStore = KeyStore.getInstance(PROVIDER).apply { load(null) }

    override fun bindingPublicKey(): ByteArray = guard {
        val w = (bindingEntry().certificate.publicKey as ECPublicKey).w
        byteArrayOf(0x04) + fixed32(w.affineX) + fixed32(w.affineY)
    }

    override fun signWithBindingKey(message: ByteArray): ByteArray = guard {
        val der = Signature.getInstance("SHA256withECDSA").run {
            initSign(bindingEntry().privateKey)
            update(message)
            sign()
        }
        derToRaw(der)
    }

    override fun seal(plaintext: ByteArray): ByteArray = guard {
        val cipher = Cipher.getInstance("AES/GCM/NoPadding")
        cipher.init(Cipher.ENCRYPT_MODE, sealingKey()) // the Keystore picks the IV
        cipher.updateAAD(AAD)
        val iv = cipher.iv
        byteArrayOf(VERSION, iv.size.toByte()) + iv + cipher.doFinal(plaintext)
    }

    override fun unseal(sealed: ByteArray): ByteArray = guard {
        if (sealed.size < 2 || sealed[0] != VERSION) throw KeystoreException.SealedDataInvalid()
        val ivLen = sealed[1].toInt() and 0xff
        if (sealed.size < 2 + ivLen + 16) throw KeystoreException.SealedDataInvalid()
        val cipher = Cipher.getInstance("AES/GCM/NoPadding")
        cipher.init(Cipher.DECRYPT_MODE, sealingKey(), GCMParameterSpec(128, sealed, 2, ivLen))
        cipher.updateAAD(AAD)
        try {
            cipher.doFinal(sealed, 2 + ivLen, sealed.size - 2 - ivLen)
        } catch (e: AEADBadTagException) {
            throw KeystoreException.SealedDataInvalid()
        }
    }

    private fun bindingEntry(): KeyStore.PrivateKeyEntry {
        if (!keyStore.containsAlias(bindingAlias)) {
            val spec = { strongBox: Boolean ->
                KeyGenParameterSpec.Builder(bindingAlias, KeyProperties.PURPOSE_SIGN)
                    .setAlgorithmParameterSpec(ECGenParameterSpec("secp256r1"))
                    .setDigests(KeyProperties.DIGEST_SHA256)
                    .apply { if (strongBox) setIsStrongBoxBacked(true) }
                    .build()
            }
            val gen = KeyPairGenerator.getInstance(KeyProperties.KEY_ALGORITHM_EC, PROVIDER)
            withStrongBoxIfAny { strongBox -> gen.initialize(spec(strongBox)); gen.generateKeyPair() }
        }
        return keyStore.getEntry(bindingAlias, null) as KeyStore.PrivateKeyEntry
    }

    private fun sealingKey(): SecretKey {
        if (!keyStore.containsAlias(sealingAlias)) {
            val spec = { strongBox: Boolean ->
                KeyGenParameterSpec.Builder(
                    sealingAlias, KeyProperties.PURPOSE_ENCRYPT or KeyProperties.PURPOSE_DECRYPT,
                )
                    .setBlockModes(KeyProperties.BLOCK_MODE_GCM)
                    .setEncryptionPaddings(KeyProperties.ENCRYPTION_PADDING_NONE)
                    .setKeySize(256)
                    .apply { if (strongBox) setIsStrongBoxBacked(true) }
                    .build()
            }
            val gen = KeyGenerator.getInstance(KeyProperties.KEY_ALGORITHM_AES, PROVIDER)
            withStrongBoxIfAny { strongBox -> gen.init(spec(strongBox)); gen.generateKey() }
        }
        return (keyStore.getEntry(sealingAlias, null) as KeyStore.SecretKeyEntry).secretKey
    }

    /** StrongBox exists from Android 9 (API 28); a phone without it throws
     *  StrongBoxUnavailableException (a ProviderException, named by its base class so that
     *  older Androids never load the class): then the TEE-backed Keystore. */
    private inline fun withStrongBoxIfAny(generate: (Boolean) -> Unit) {
        if (Build.VERSION.SDK_INT >= Build.VERSION_CODES.P) {
            try {
                generate(true)
                return
            } catch (e: ProviderException) {
                // no StrongBox on this phone
            }
        }
        generate(false)
    }

    /** Platform exceptions → the typed errors the wallet core acts on. */
    private inline fun <T> guard(block: () -> T): T = try {
        block()
    } catch (e: KeystoreException) {
        throw e
    } catch (e: UserNotAuthenticatedException) {
        throw KeystoreException.AuthenticationRequired(e.message ?: "user authentication required")
    } catch (e: KeyPermanentlyInvalidatedException) {
        // The lock screen changed (or was removed): the key is gone for good. Delete it so the
        // next seal makes a new one; the wallet reports its card as unusable and the app offers
        // a new card (re-provisioning), never a crash.
        runCatching { keyStore.deleteEntry(sealingAlias) }
        throw KeystoreException.Unavailable("the key was invalidated (the screen lock changed)")
    } catch (e: GeneralSecurityException) {
        throw KeystoreException.Failed("${e.javaClass.simpleName}: ${e.message}")
    } catch (e: ProviderException) {
        throw KeystoreException.Failed("${e.javaClass.simpleName}: ${e.message}")
    }

    companion object {
        private const val PROVIDER = "AndroidKeyStore"
        private const val VERSION: Byte = 1
        private val AAD = "MANCARD-SEAL-v1".toByteArray()

        fun fixed32(n: BigInteger): ByteArray {
            val b = n.toByteArray()
            val src = if (b.size > 32) b.copyOfRange(b.size - 32, b.size) else b
            return ByteArray(32 - src.size) + src
        }

        /** DER `SEQUENCE { INTEGER r, INTEGER s }` → 64-byte `r ‖ s` (what the core expects). */
        fun derToRaw(der: ByteArray): ByteArray {
            var i = 0
            fun byte() = der[i++].toInt() and 0xff
            fun length(): Int {
                val first = byte()
                if (first < 0x80) return first
                var len = 0
                repeat(first and 0x7f) { len = (len shl 8) or byte() }
                return len
            }
            fun integer(): BigInteger {
                if (byte() != 0x02) throw KeystoreException.Failed("signature is not DER")
                val len = length()
                return BigInteger(1, der.copyOfRange(i, i + len)).also { i += len }
            }
            if (byte() != 0x30) throw KeystoreException.Failed("signature is not DER")
            length()
            val r = integer()
            val s = integer()
            return fixed32(r) + fixed32(s)
        }
    }
}
