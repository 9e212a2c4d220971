//! The slice of the PostgreSQL v3 wire protocol a proxy needs: decoding what a client sends during
//! the startup phase, and encoding what a server answers. This crate never touches a socket.
//!
//! Decoders take a `&mut BytesMut` holding whatever has been read so far. They return
//! `Ok(None)` when more bytes are needed (a normal outcome, nothing is consumed), `Ok(Some(_))`
//! after consuming exactly one message, and `Err(_)` for input that can never become valid. Every
//! length read from the wire is checked against a limit before anything is allocated.

pub mod backend;
mod error;
pub mod frame;
pub mod frontend;
pub mod sqlstate;

pub use error::WireError;
pub use frame::Frame;
pub use frontend::{
    CancelRequest, PasswordMessage, ProtocolVersion, Startup, StartupMessage, decode_password,
    decode_startup,
};

/// Largest startup packet accepted, as in PostgreSQL's `MAX_STARTUP_PACKET_LENGTH`.
pub const MAX_STARTUP_PACKET_LEN: usize = 10_000;
/// Largest password message body accepted: a 64 KiB password plus its terminating NUL. Entra
/// tokens are 1.5–7 KB; 64 KiB leaves headroom for tokens of users in many groups while bounding
/// what an unauthenticated peer can make us buffer.
pub const MAX_PASSWORD_LEN: usize = 64 * 1024 + 1;

/// Request codes carried in the "protocol version" slot of a startup packet.
pub mod codes {
    /// `SSLRequest`.
    pub const SSL_REQUEST: i32 = 80_877_103;
    /// `GSSENCRequest`.
    pub const GSSENC_REQUEST: i32 = 80_877_104;
    /// `CancelRequest`.
    pub const CANCEL_REQUEST: i32 = 80_877_102;
    /// Protocol 3.0, the version every current client speaks and the only one this crate serves.
    pub const PROTOCOL_3_0: i32 = 196_608;
}
