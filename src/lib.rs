//! ManCard wallet core.
