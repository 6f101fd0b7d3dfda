//! The deterministic simulation.
