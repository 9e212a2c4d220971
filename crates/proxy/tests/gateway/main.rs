//! Gateway integration tests: real PostgreSQL (testkit), real tokens (emulator), real clients.

mod support;

mod bad_tokens;
mod connect;
mod interop;
mod operations;
mod protocol;
mod registry;
