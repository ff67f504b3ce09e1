//! The uniffi surface (Kotlin, Swift, Python): the only place FFI concerns live.
