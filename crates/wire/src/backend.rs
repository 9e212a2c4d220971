//! Messages a server sends: encoders for what the proxy says to clients, and small parsers for
//! the few upstream messages the proxy must understand (authentication requests, errors, keys).
//! No I/O; everything else from upstream is relayed as opaque frames.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::WireError;

/// Severity of an `ErrorResponse` / `NoticeResponse`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// Ends the session.
    Fatal,
    /// Ends the current command.
    Error,
    /// Informational.
    Notice,
}

impl Severity {
    /// The non-localised text (`V` field).
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Fatal => "FATAL",
            Severity::Error => "ERROR",
            Severity::Notice => "NOTICE",
        }
    }
}

/// The fields of an `ErrorResponse` this crate writes and reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorFields {
    /// `S` and `V`.
    pub severity: String,
    /// `C`, a SQLSTATE.
    pub code: String,
    /// `M`, the primary message.
    pub message: String,
    /// `D`, optional detail.
    pub detail: Option<String>,
    /// `H`, optional hint.
    pub hint: Option<String>,
}

impl ErrorFields {
    /// A FATAL error with `code` and `message`.
    pub fn fatal(code: &str, message: impl Into<String>) -> Self {
        ErrorFields {
            severity: Severity::Fatal.as_str().to_owned(),
            code: code.to_owned(),
            message: message.into(),
            detail: None,
            hint: None,
        }
    }
}

/// `AuthenticationCleartextPassword` (`R`, code 3).
pub fn auth_cleartext_password(out: &mut BytesMut) {
    out.put_u8(b'R');
    out.put_i32(8);
    out.put_i32(3);
}

/// `AuthenticationOk` (`R`, code 0).
pub fn auth_ok(out: &mut BytesMut) {
    out.put_u8(b'R');
    out.put_i32(8);
    out.put_i32(0);
}

/// `ErrorResponse` (`E`) with `S`, `V`, `C`, `M` and optional `D`, `H` fields.
pub fn error_response(out: &mut BytesMut, fields: &ErrorFields) {
    fields_message(out, b'E', fields);
}

/// `NoticeResponse` (`N`) with the same field layout as [`error_response`].
pub fn notice_response(out: &mut BytesMut, fields: &ErrorFields) {
    fields_message(out, b'N', fields);
}

fn fields_message(out: &mut BytesMut, tag: u8, fields: &ErrorFields) {
    let start = begin(out, tag);
    let mut field = |code: u8, value: &str| {
        out.put_u8(code);
        // A NUL would end the field early; never let text truncate or smuggle fields.
        out.put_slice(value.replace('\0', "").as_bytes());
        out.put_u8(0);
    };
    field(b'S', &fields.severity);
    field(b'V', &fields.severity);
    field(b'C', &fields.code);
    field(b'M', &fields.message);
    if let Some(d) = &fields.detail {
        field(b'D', d);
    }
    if let Some(h) = &fields.hint {
        field(b'H', h);
    }
    out.put_u8(0);
    finish(out, start);
}

/// `NegotiateProtocolVersion` (`v`): the newest minor version served and the protocol options
/// (`_pq_.*`) that were not recognised.
pub fn negotiate_protocol_version<'a>(
    out: &mut BytesMut,
    newest_minor: i32,
    unrecognized: impl IntoIterator<Item = &'a str>,
) {
    let start = begin(out, b'v');
    out.put_i32(newest_minor);
    let count_at = out.len();
    out.put_i32(0);
    let mut n = 0i32;
    for opt in unrecognized {
        out.put_slice(opt.as_bytes());
        out.put_u8(0);
        n += 1;
    }
    out[count_at..count_at + 4].copy_from_slice(&n.to_be_bytes());
    finish(out, start);
}

/// `ParameterStatus` (`S`).
pub fn parameter_status(out: &mut BytesMut, name: &str, value: &str) {
    let start = begin(out, b'S');
    out.put_slice(name.as_bytes());
    out.put_u8(0);
    out.put_slice(value.as_bytes());
    out.put_u8(0);
    finish(out, start);
}

/// `BackendKeyData` (`K`).
pub fn backend_key_data(out: &mut BytesMut, process_id: i32, secret: &[u8]) {
    let start = begin(out, b'K');
    out.put_i32(process_id);
    out.put_slice(secret);
    finish(out, start);
}

/// `ReadyForQuery` (`Z`) with transaction status `I`, `T` or `E`.
pub fn ready_for_query(out: &mut BytesMut, status: u8) {
    out.put_u8(b'Z');
    out.put_i32(5);
    out.put_u8(status);
}

/// The one-byte answer to `SSLRequest`/`GSSENCRequest`: `S` (go ahead) or `N` (declined).
pub fn encryption_response(out: &mut BytesMut, accept: bool) {
    out.put_u8(if accept { b'S' } else { b'N' });
}

fn begin(out: &mut BytesMut, tag: u8) -> usize {
    out.put_u8(tag);
    let at = out.len();
    out.put_i32(0);
    at
}

fn finish(out: &mut BytesMut, len_at: usize) {
    let len = (out.len() - len_at) as i32;
    out[len_at..len_at + 4].copy_from_slice(&len.to_be_bytes());
}

/// An authentication request from a server (`R` message body).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthRequest {
    /// Code 0.
    Ok,
    /// Code 3.
    CleartextPassword,
    /// Code 5 with its 4-byte salt.
    Md5Password([u8; 4]),
    /// Code 10 with the offered mechanisms.
    Sasl(Vec<String>),
    /// Code 11 with the server-first message.
    SaslContinue(Bytes),
    /// Code 12 with the server-final message.
    SaslFinal(Bytes),
    /// Any other code (Kerberos, GSS, SSPI): not supported by the proxy.
    Other(i32),
}

/// Parses the body of an `R` message.
pub fn parse_auth_request(mut body: Bytes) -> Result<AuthRequest, WireError> {
    if body.len() < 4 {
        return Err(WireError::Malformed("Authentication"));
    }
    let code = body.get_i32();
    Ok(match code {
        0 => AuthRequest::Ok,
        3 => AuthRequest::CleartextPassword,
        5 => {
            if body.len() != 4 {
                return Err(WireError::Malformed("AuthenticationMD5Password"));
            }
            let mut salt = [0u8; 4];
            body.copy_to_slice(&mut salt);
            AuthRequest::Md5Password(salt)
        }
        10 => {
            let mut mechs = Vec::new();
            loop {
                let nul = body
                    .iter()
                    .position(|&b| b == 0)
                    .ok_or(WireError::Malformed("AuthenticationSASL"))?;
                if nul == 0 {
                    break;
                }
                let m = body.split_to(nul);
                body.advance(1);
                mechs.push(String::from_utf8_lossy(&m).into_owned());
            }
            AuthRequest::Sasl(mechs)
        }
        11 => AuthRequest::SaslContinue(body),
        12 => AuthRequest::SaslFinal(body),
        other => AuthRequest::Other(other),
    })
}

/// Parses an `ErrorResponse`/`NoticeResponse` body. Unknown fields are skipped.
pub fn parse_error_fields(body: &[u8]) -> Result<ErrorFields, WireError> {
    let mut fields = ErrorFields {
        severity: String::new(),
        code: String::new(),
        message: String::new(),
        detail: None,
        hint: None,
    };
    let mut rest = body;
    loop {
        let (&code, tail) = rest
            .split_first()
            .ok_or(WireError::Malformed("ErrorResponse"))?;
        if code == 0 {
            break;
        }
        let nul = tail
            .iter()
            .position(|&b| b == 0)
            .ok_or(WireError::Malformed("ErrorResponse"))?;
        let value = String::from_utf8_lossy(&tail[..nul]).into_owned();
        rest = &tail[nul + 1..];
        match code {
            b'V' => fields.severity = value,
            b'S' if fields.severity.is_empty() => fields.severity = value,
            b'C' => fields.code = value,
            b'M' => fields.message = value,
            b'D' => fields.detail = Some(value),
            b'H' => fields.hint = Some(value),
            _ => {}
        }
    }
    Ok(fields)
}

/// Parses a `BackendKeyData` body into process id and secret.
pub fn parse_backend_key_data(mut body: Bytes) -> Result<(i32, Bytes), WireError> {
    if body.len() < 8 || body.len() > 4 + crate::frontend::MAX_CANCEL_SECRET_LEN {
        return Err(WireError::Malformed("BackendKeyData"));
    }
    let pid = body.get_i32();
    Ok((pid, body))
}
