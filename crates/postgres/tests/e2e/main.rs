//! End-to-end tests of connect and the pools against real PostgreSQL: directly (roles whose
//! password is the token) and through the gateway with real emulator tokens.

// Fixtures shared with the pool tests are unused when the pool features are off.
#![cfg_attr(
    not(all(feature = "deadpool", feature = "bb8", feature = "sqlx")),
    allow(dead_code, unused_imports)
)]

mod support;

mod connect;
mod examples;
mod gateway;
mod pools;
mod tls;
