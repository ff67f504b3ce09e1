package ir.mancard.core.test

import org.junit.runner.Description
import org.junit.runner.JUnitCore
import org.junit.runner.notification.Failure
import org.junit.runner.notification.RunListener
import kotlin.system.exitProcess

/** Runs every suite and prints `N passed, M failed` on a line of its own (CI parses it). */
fun main() {
    var passed = 0
    var failed = 0
    val failedNow = mutableSetOf<Description>()
    val core = JUnitCore()
    core.addListener(object : RunListener() {
        override fun testStarted(d: Description) { println("RUN  ${d.className}.${d.methodName}") }
        override fun testFailure(f: Failure) {
            failedNow += f.description
            println("FAIL ${f.description.className}.${f.description.methodName}: ${f.message}")
            println(f.trace)
        }
        override fun testFinished(d: Description) {
            if (d in failedNow) failed++ else { passed++; println("ok   ${d.className}.${d.methodName}") }
        }
    })
    core.run(
        BoundaryTest::class.java,
        ErrorPathsTest::class.java,
        JcaKeystoreTest::class.java,
        RiderJourneyTest::class.java,
    )
    println("$passed passed, $failed failed")
    exitProcess(if (failed == 0 && passed > 0) 0 else 1)
}
