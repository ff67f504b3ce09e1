package ir.mancard.core.test

import ir.mancard.core.KeystoreException
import ir.mancard.core.PlatformKeystore
import java.math.BigInteger
import java.security.KeyPair
import java.security.KeyPairGenerator
import java.security.SecureRandom
import java.security.Signature
import java.security.interfaces.ECPublicKey
import java.security.spec.ECGenParameterSpec
import javax.crypto.AEADBadTagException
import javax.crypto.Cipher
import javax.crypto.KeyGenerator
import javax.crypto.SecretKey
import javax.crypto.spec.GCMParameterSpec

/**
 * A [PlatformKeystore] written with plain JCA: the model for the Android one.
 *
 * On Android the two keys live in the Android Keystore instead of memory:
 * - binding key: `KeyPairGenerator.getInstance(KeyProperties.KEY_ALGORITHM_EC, "AndroidKeyStore")`
 *   with `KeyGenParameterSpec.Builder(alias, PURPOSE_SIGN).setAlgorithmParameterSpec(
 *   ECGenParameterSpec("secp256r1")).setDigests(DIGEST_SHA256)` (`setIsStrongBoxBacked(true)` when
 *   available), signing with `Signature.getInstance("SHA256withECDSA")`: DER output, converted
 *   below to the 64-byte `r ‖ s` the core expects;
 * - sealing key: `KeyGenerator.getInstance(KEY_ALGORITHM_AES, "AndroidKeyStore")` with
 *   `PURPOSE_ENCRYPT or PURPOSE_DECRYPT`, `BLOCK_MODE_GCM`, `ENCRYPTION_PADDING_NONE`; the
 *   Keystore picks the IV (`cipher.iv` after `init`), which is stored in the sealed blob.
 * Everything else (formats, error mapping) is the same as here.
 */
class JcaKeystore : PlatformKeystore {
    private val binding: KeyPair = KeyPairGenerator.getInstance("EC").run {
        initialize(ECGenParameterSpec("secp256r1"))
        generateKeyPair()
    }
    private val sealing: SecretKey = KeyGenerator.getInstance("AES").run {
        init(256)
        generateKey()
    }
    private val random = SecureRandom()

    /** Calls per method, so tests can see the core calls the app's keystore. */
    val calls = java.util.concurrent.ConcurrentHashMap<String, Int>()
    private fun count(name: String) { calls.merge(name, 1, Int::plus) }

    override fun bindingPublicKey(): ByteArray {
        count("bindingPublicKey")
        val w = (binding.public as ECPublicKey).w
        return byteArrayOf(0x04) + fixed32(w.affineX) + fixed32(w.affineY)
    }

    override fun signWithBindingKey(message: ByteArray): ByteArray {
        count("signWithBindingKey")
        val der = Signature.getInstance("SHA256withECDSA").run {
            initSign(binding.private)
            update(message)
            sign()
        }
        return derToRaw(der)
    }

    override fun seal(plaintext: ByteArray): ByteArray {
        count("seal")
        val iv = ByteArray(12).also(random::nextBytes)
        val cipher = Cipher.getInstance("AES/GCM/NoPadding")
        cipher.init(Cipher.ENCRYPT_MODE, sealing, GCMParameterSpec(128, iv))
        cipher.updateAAD(AAD)
        return byteArrayOf(VERSION) + iv + cipher.doFinal(plaintext)
    }

    override fun unseal(sealed: ByteArray): ByteArray {
        count("unseal")
        if (sealed.size < 1 + 12 + 16 || sealed[0] != VERSION) throw KeystoreException.SealedDataInvalid()
        val cipher = Cipher.getInstance("AES/GCM/NoPadding")
        cipher.init(Cipher.DECRYPT_MODE, sealing, GCMParameterSpec(128, sealed, 1, 12))
        cipher.updateAAD(AAD)
        try {
            return cipher.doFinal(sealed, 13, sealed.size - 13)
        } catch (e: AEADBadTagException) {
            throw KeystoreException.SealedDataInvalid()
        }
    }

    companion object {
        private const val VERSION: Byte = 1
        private val AAD = "MANCARD-SEAL-v1".toByteArray()

        /** An unsigned big integer as exactly 32 big-endian bytes. */
        fun fixed32(n: BigInteger): ByteArray {
            val b = n.toByteArray() // may have a leading 0x00 sign byte, or be shorter than 32
            val out = ByteArray(32)
            val src = if (b.size > 32) b.copyOfRange(b.size - 32, b.size) else b
            System.arraycopy(src, 0, out, 32 - src.size, src.size)
            return out
        }

        /** DER `SEQUENCE { INTEGER r, INTEGER s }` → 64-byte `r ‖ s`. */
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
            require(byte() == 0x30) { "not a DER sequence" }
            length()
            fun integer(): BigInteger {
                require(byte() == 0x02) { "not a DER integer" }
                val len = length()
                val v = BigInteger(1, der.copyOfRange(i, i + len))
                i += len
                return v
            }
            val r = integer()
            val s = integer()
            return fixed32(r) + fixed32(s)
        }
    }
}
