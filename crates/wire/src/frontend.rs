//! Messages a client sends before authentication completes: the untagged startup packets
//! (`SSLRequest`, `GSSENCRequest`, `CancelRequest`, `StartupMessage`) and the `PasswordMessage`.
//! Decoders for the proxy side, encoders for the upstream leg and for tests. No I/O.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::{MAX_STARTUP_PACKET_LEN, WireError, codes, frame};

/// Longest cancel secret accepted (protocol 3.2 allows up to 256 bytes).
pub const MAX_CANCEL_SECRET_LEN: usize = 256;

/// A protocol version as `major.minor`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ProtocolVersion {
    /// Major version; only 3 is served.
    pub major: u16,
    /// Minor version; 3.0 is served and later minors are negotiated down.
    pub minor: u16,
}

impl ProtocolVersion {
    /// Protocol 3.0.
    pub const V3_0: ProtocolVersion = ProtocolVersion { major: 3, minor: 0 };

    fn from_code(code: i32) -> Self {
        ProtocolVersion {
            major: (code as u32 >> 16) as u16,
            minor: (code as u32 & 0xffff) as u16,
        }
    }

    /// The Int32 carried on the wire.
    pub fn code(self) -> i32 {
        ((self.major as u32) << 16 | self.minor as u32) as i32
    }
}

/// A `CancelRequest`: the key the server handed out in `BackendKeyData`.
#[derive(Clone, PartialEq, Eq)]
pub struct CancelRequest {
    /// Process id from `BackendKeyData`.
    pub process_id: i32,
    /// Secret key (4 bytes in protocol 3.0, up to 256 in 3.2).
    pub secret: Bytes,
}

impl std::fmt::Debug for CancelRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CancelRequest")
            .field("process_id", &self.process_id)
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// A `StartupMessage`: protocol version plus `name=value` parameters in the order sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Startup {
    /// Requested protocol version (major is always 3 after decoding).
    pub version: ProtocolVersion,
    /// Parameters such as `user`, `database`, `application_name`, `options`, `_pq_.*`.
    pub params: Vec<(String, String)>,
}

impl Startup {
    /// The value of the first parameter called `name`.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The `user` parameter (required by the protocol; `None` when a client omitted it).
    pub fn user(&self) -> Option<&str> {
        self.param("user").filter(|u| !u.is_empty())
    }

    /// The `database` parameter, defaulting to the user name as PostgreSQL does.
    pub fn database(&self) -> Option<&str> {
        self.param("database")
            .filter(|d| !d.is_empty())
            .or_else(|| self.user())
    }

    /// Protocol options (`_pq_.*`) this server does not recognise (it recognises none).
    pub fn protocol_options(&self) -> impl Iterator<Item = &str> {
        self.params
            .iter()
            .map(|(k, _)| k.as_str())
            .filter(|k| k.starts_with("_pq_."))
    }
}

/// One decoded startup-phase packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartupMessage {
    /// The client asks for TLS; answer one byte `S` or `N`.
    SslRequest,
    /// The client asks for GSSAPI encryption; answer one byte `G` or `N`.
    GssEncRequest,
    /// Out-of-band cancellation of a running query.
    Cancel(CancelRequest),
    /// Start a session.
    Startup(Startup),
}

/// Decodes the untagged startup packet at the front of `buf`.
///
/// `Ok(None)` means more bytes are needed; nothing was consumed. Lengths outside 8..=10 000 are
/// refused before waiting for the body.
pub fn decode_startup(buf: &mut BytesMut) -> Result<Option<StartupMessage>, WireError> {
    if buf.len() < 4 {
        return Ok(None);
    }
    let len = i32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
    if len < 8 || len as usize > MAX_STARTUP_PACKET_LEN {
        return Err(WireError::StartupLength);
    }
    let len = len as usize;
    if buf.len() < len {
        buf.reserve(len - buf.len());
        return Ok(None);
    }
    let mut packet = buf.split_to(len).freeze();
    packet.advance(4);
    let code = packet.get_i32();
    let msg = match code {
        codes::SSL_REQUEST | codes::GSSENC_REQUEST => {
            if !packet.is_empty() {
                return Err(WireError::StartupLayout(
                    "unexpected bytes after request code",
                ));
            }
            if code == codes::SSL_REQUEST {
                StartupMessage::SslRequest
            } else {
                StartupMessage::GssEncRequest
            }
        }
        codes::CANCEL_REQUEST => {
            if packet.len() < 8 || packet.len() > 4 + MAX_CANCEL_SECRET_LEN {
                return Err(WireError::StartupLayout("invalid cancel request length"));
            }
            let process_id = packet.get_i32();
            StartupMessage::Cancel(CancelRequest {
                process_id,
                secret: packet,
            })
        }
        _ => {
            let version = ProtocolVersion::from_code(code);
            if version.major != 3 {
                return Err(WireError::UnsupportedProtocol {
                    major: version.major,
                    minor: version.minor,
                });
            }
            StartupMessage::Startup(Startup {
                version,
                params: decode_params(packet)?,
            })
        }
    };
    Ok(Some(msg))
}

fn decode_params(mut body: Bytes) -> Result<Vec<(String, String)>, WireError> {
    let mut params = Vec::new();
    loop {
        let name = take_cstr(&mut body)?;
        if name.is_empty() {
            if !body.is_empty() {
                return Err(WireError::StartupLayout(
                    "bytes after parameter list terminator",
                ));
            }
            return Ok(params);
        }
        let value = take_cstr(&mut body)?;
        params.push((name, value));
    }
}

fn take_cstr(body: &mut Bytes) -> Result<String, WireError> {
    let nul = body
        .iter()
        .position(|&b| b == 0)
        .ok_or(WireError::StartupLayout("missing terminator"))?;
    let raw = body.split_to(nul);
    body.advance(1);
    String::from_utf8(raw.to_vec()).map_err(|_| WireError::StartupLayout("parameter is not UTF-8"))
}

/// A `PasswordMessage` body. `Debug` never prints the contents: it is usually a token.
#[derive(Clone, PartialEq, Eq)]
pub struct PasswordMessage {
    bytes: Bytes,
}

impl std::fmt::Debug for PasswordMessage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PasswordMessage(<redacted {} bytes>)", self.bytes.len())
    }
}

impl PasswordMessage {
    /// Wraps a password (without the terminating NUL).
    pub fn new(bytes: impl Into<Bytes>) -> Self {
        PasswordMessage {
            bytes: bytes.into(),
        }
    }

    /// The password bytes without the terminating NUL.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The password as text, when it is UTF-8.
    pub fn as_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.bytes).ok()
    }

    /// The password bytes, consuming the message.
    pub fn into_bytes(self) -> Bytes {
        self.bytes
    }
}

/// Decodes a `PasswordMessage` (`'p'`) at the front of `buf`, with a body of at most `max_len`
/// bytes. Any other message type is an error: during authentication nothing else is allowed.
pub fn decode_password(
    buf: &mut BytesMut,
    max_len: usize,
) -> Result<Option<PasswordMessage>, WireError> {
    if let Some(&tag) = buf.first()
        && tag != b'p'
    {
        return Err(WireError::UnexpectedMessage {
            expected: 'p',
            got: tag as char,
        });
    }
    let Some(frame) = frame::decode_frame(buf, max_len)? else {
        return Ok(None);
    };
    let mut body = frame.body;
    match body.iter().position(|&b| b == 0) {
        Some(nul) if nul + 1 == body.len() => {
            body.truncate(nul);
            Ok(Some(PasswordMessage { bytes: body }))
        }
        _ => Err(WireError::PasswordLayout),
    }
}

/// Encoders for the client side of the startup phase (upstream leg and tests).
pub mod encode {
    use super::*;

    /// `SSLRequest`.
    pub fn ssl_request(out: &mut BytesMut) {
        out.put_i32(8);
        out.put_i32(codes::SSL_REQUEST);
    }

    /// `GSSENCRequest`.
    pub fn gssenc_request(out: &mut BytesMut) {
        out.put_i32(8);
        out.put_i32(codes::GSSENC_REQUEST);
    }

    /// `CancelRequest`.
    pub fn cancel_request(out: &mut BytesMut, process_id: i32, secret: &[u8]) {
        out.put_i32(12 + secret.len() as i32);
        out.put_i32(codes::CANCEL_REQUEST);
        out.put_i32(process_id);
        out.put_slice(secret);
    }

    /// `StartupMessage` with parameters in the given order. Names and values must not contain NUL.
    pub fn startup<'a>(
        out: &mut BytesMut,
        version: ProtocolVersion,
        params: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) {
        let start = out.len();
        out.put_i32(0);
        out.put_i32(version.code());
        for (k, v) in params {
            out.put_slice(k.as_bytes());
            out.put_u8(0);
            out.put_slice(v.as_bytes());
            out.put_u8(0);
        }
        out.put_u8(0);
        let len = (out.len() - start) as i32;
        out[start..start + 4].copy_from_slice(&len.to_be_bytes());
    }

    /// `PasswordMessage` (`'p'`), also used for SASL responses' framing.
    pub fn password(out: &mut BytesMut, password: &[u8]) {
        out.put_u8(b'p');
        out.put_i32(4 + password.len() as i32 + 1);
        out.put_slice(password);
        out.put_u8(0);
    }

    /// `Terminate` (`'X'`).
    pub fn terminate(out: &mut BytesMut) {
        out.put_u8(b'X');
        out.put_i32(4);
    }
}
