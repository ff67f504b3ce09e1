// One module, laid out for both builds: Gradle (this file, for developers and release builds)
// and Maven (pom.xml, the Robolectric tests that CI runs). The wallet core comes from the
// committed uniffi bindings (../bindings/kotlin) and libmancard.so per ABI, built by
// scripts/build-apk.sh with cargo-ndk into jniLibs/.
plugins {
    id("com.android.application") version "8.7.3"
    id("org.jetbrains.kotlin.android") version "2.2.21"
}

android {
    namespace = "ir.mancard.app"
    compileSdk = 35

    defaultConfig {
        applicationId = "ir.mancard.app"
        // Android 8.0: HCE with AID groups, the Keystore's AES-GCM and EC keys, noBackupFilesDir.
        // StrongBox is used from Android 9 (API 28) where the phone has it (AndroidPlatformKeystore).
        minSdk = 26
        targetSdk = 35
        versionCode = 1
        versionName = "0.1.0"
    }

    sourceSets {
        getByName("main") {
            manifest.srcFile("AndroidManifest.xml")
            java.srcDirs("src", "../bindings/kotlin/ir")
            res.srcDirs("res")
            jniLibs.srcDirs("jniLibs")
        }
        getByName("test") {
            java.srcDirs("test", "../bindings/kotlin/testing")
            resources.srcDirs("test-resources")
        }
        // Android 12+ attributes the CI's aapt cannot compile (dataExtractionRules)
        getByName("debug") { manifest.srcFile("gradle/AndroidManifest-api31.xml") }
        getByName("release") { manifest.srcFile("gradle/AndroidManifest-api31.xml") }
    }

    buildTypes {
        getByName("release") {
            isMinifyEnabled = false // JNA and the bindings are reached by reflection
        }
    }
    compileOptions {
        sourceCompatibility = JavaVersion.VERSION_17
        targetCompatibility = JavaVersion.VERSION_17
    }
    kotlinOptions {
        jvmTarget = "17"
    }
    testOptions {
        unitTests.isIncludeAndroidResources = true
    }
}

dependencies {
    implementation("net.java.dev.jna:jna:5.14.0@aar")
    implementation("org.jetbrains.kotlinx:kotlinx-coroutines-android:1.10.2")
    testImplementation("org.robolectric:robolectric:4.16")
    testImplementation("junit:junit:4.13.2")
    testImplementation("net.java.dev.jna:jna:5.14.0")
}
