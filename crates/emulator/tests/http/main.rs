//! Integration tests of every emulated endpoint over real sockets.

mod support;

mod assertions;
mod config;
mod control;
mod discovery;
mod entra;
mod imds;
mod managed_identity;
mod robustness;
