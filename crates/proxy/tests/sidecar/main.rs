//! Sidecar integration tests: apps with no password → sidecar → gateway → a throwaway
//! PostgreSQL, tokens from the in-process identity emulator. Nothing leaves 127.0.0.1.

mod support;

mod connect;
mod interop;
mod operations;
mod tokens;
