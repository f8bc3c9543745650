//! The project's developer CLI as a library, so the end-to-end tests (`tests/e2e.rs`) use
//! the same lab runner and suite as `cargo xtask`.

pub mod direct;
pub mod elf;
pub mod guests;
pub mod lab;
pub mod progress;
pub mod setup;
pub mod suite;
pub mod xlcfg;
