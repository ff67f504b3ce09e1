// The ManCard rider app for Android Studio (Gradle 8, Android Gradle Plugin 8). Not built on the
// project's CI machine, which cannot reach Google's Maven repository: there the same sources
// are compiled and tested with Maven and Robolectric (pom.xml). See README.md.
pluginManagement {
    repositories {
        google()
        mavenCentral()
        gradlePluginPortal()
    }
}
dependencyResolutionManagement {
    repositories {
        google()
        mavenCentral()
    }
}
rootProject.name = "mancard-android"
