//! End-to-end tests of connect and the pools against real PostgreSQL: directly (roles whose
//! password is the token) and through the gateway with real emulator tokens.

mod support;

mod connect;
mod gateway;
mod pools;
mod tls;
