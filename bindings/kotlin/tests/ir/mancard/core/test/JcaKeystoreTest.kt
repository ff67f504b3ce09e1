package ir.mancard.core.test

import org.junit.Assert.assertArrayEquals
import org.junit.Assert.assertEquals
import org.junit.Assert.assertTrue
import org.junit.Test
import java.math.BigInteger
import java.security.KeyFactory
import java.security.Signature
import java.security.spec.ECPoint
import java.security.spec.ECPublicKeySpec

/** The Kotlin keystore's formats: what the core and the backend expect from any platform. */
class JcaKeystoreTest {
    private fun derInt(v: BigInteger): ByteArray {
        val b = v.toByteArray() // minimal two's complement, as DER wants
        return byteArrayOf(0x02, b.size.toByte()) + b
    }

    private fun rawToDer(raw: ByteArray): ByteArray {
        val body = derInt(BigInteger(1, raw.copyOfRange(0, 32))) + derInt(BigInteger(1, raw.copyOfRange(32, 64)))
        return byteArrayOf(0x30, body.size.toByte()) + body
    }

    @Test
    fun derToRawHandlesPaddedAndShortIntegers() {
        val r = BigInteger("80" + "11".repeat(31), 16) // high bit set: DER adds a 0x00 (33 bytes)
        val s = BigInteger("22".repeat(30), 16)         // 30 bytes: must be left-padded
        val raw = JcaKeystore.derToRaw(rawToDer(JcaKeystore.fixed32(r) + JcaKeystore.fixed32(s)))
        assertEquals(64, raw.size)
        assertEquals(r, BigInteger(1, raw.copyOfRange(0, 32)))
        assertEquals(s, BigInteger(1, raw.copyOfRange(32, 64)))
        assertArrayEquals(ByteArray(2), raw.copyOfRange(32, 34))
    }

    @Test
    fun signaturesAreRawAndVerifyUnderTheSec1PublicKey() {
        val ks = JcaKeystore()
        val pk = ks.bindingPublicKey()
        assertEquals(65, pk.size)
        assertEquals(0x04.toByte(), pk[0])
        // Rebuild a JCA key from the 65-byte point, as the backend does from the hex.
        val params = (java.security.KeyPairGenerator.getInstance("EC").run {
            initialize(java.security.spec.ECGenParameterSpec("secp256r1"))
            generateKeyPair().public as java.security.interfaces.ECPublicKey
        }).params
        val point = ECPoint(BigInteger(1, pk.copyOfRange(1, 33)), BigInteger(1, pk.copyOfRange(33, 65)))
        val pub = KeyFactory.getInstance("EC").generatePublic(ECPublicKeySpec(point, params))
        repeat(64) { i ->
            val msg = "transcript $i".toByteArray()
            val raw = ks.signWithBindingKey(msg)
            assertEquals(64, raw.size)
            val ok = Signature.getInstance("SHA256withECDSA").run {
                initVerify(pub)
                update(msg)
                verify(rawToDer(raw))
            }
            assertTrue("signature $i", ok)
        }
    }
}
