//! Errors for input that can never become a valid message. Incomplete input is not an error.

/// A protocol violation found while decoding. The `Display` text is safe to show to the peer:
/// it never echoes message contents (which may be a password).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// The startup packet's length field is below the minimum or above the limit.
    #[error("invalid length of startup packet")]
    StartupLength,
    /// The client asked for a protocol major version other than 3.
    #[error("unsupported frontend protocol {major}.{minor}: server supports 3.0 to 3.0")]
    UnsupportedProtocol {
        /// Major version requested.
        major: u16,
        /// Minor version requested.
        minor: u16,
    },
    /// The startup packet's body does not follow the documented layout.
    #[error("invalid startup packet layout: {0}")]
    StartupLayout(&'static str),
    /// A regular message's length field is negative or below 4.
    #[error("invalid message length")]
    BadLength,
    /// A regular message is longer than the caller's limit.
    #[error("message of type {tag:?} is too long ({len} bytes, limit {limit})")]
    TooLong {
        /// Message type byte, as a character.
        tag: char,
        /// Declared body length.
        len: usize,
        /// The limit it exceeded.
        limit: usize,
    },
    /// A different message type arrived than the protocol allows at this point.
    #[error("expected {expected:?} message, received message type {got:?}")]
    UnexpectedMessage {
        /// The type byte that was expected.
        expected: char,
        /// The type byte received.
        got: char,
    },
    /// A password message whose body lacks the terminating NUL or contains an inner NUL.
    #[error("invalid password packet")]
    PasswordLayout,
    /// A backend message body that does not follow its documented layout.
    #[error("malformed {0} message")]
    Malformed(&'static str),
}
