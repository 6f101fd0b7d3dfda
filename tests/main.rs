//! The one integration-test binary (one link instead of many). Each module covers one area through the real
//! `hactl` binary or the library's public API.
#![allow(clippy::unwrap_used)]

mod manifests;
mod placement;
mod sim;
