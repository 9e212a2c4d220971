//! Integration tests of pgentra-token against the in-process identity emulator, over real HTTP.
//!
//! One test binary (one link step) with a module per area; helpers live in `common`.

mod cache;
mod chain;
mod cli;
mod common;
mod entra;
mod managed_identity;
