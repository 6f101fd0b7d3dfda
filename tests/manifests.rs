//! Manifest validation through the real binary.
