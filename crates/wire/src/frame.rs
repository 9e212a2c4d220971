//! Tagged message framing (`type byte, Int32 length, body`), shared by both directions.
//! It only splits frames; it never interprets a body.

use bytes::{Buf, Bytes, BytesMut};

use crate::WireError;

/// One complete tagged message.
#[derive(Clone, PartialEq, Eq)]
pub struct Frame {
    /// Message type byte (`b'p'`, `b'E'`, ...).
    pub tag: u8,
    /// Body without the type byte and the length field.
    pub body: Bytes,
}

impl std::fmt::Debug for Frame {
    // Bodies can carry passwords; print only their shape.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Frame")
            .field("tag", &(self.tag as char))
            .field("len", &self.body.len())
            .finish()
    }
}

impl Frame {
    /// The frame re-encoded as it travelled on the wire.
    pub fn to_wire(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(5 + self.body.len());
        self.write_to(&mut out);
        out.freeze()
    }

    /// Appends the wire encoding to `out`.
    pub fn write_to(&self, out: &mut BytesMut) {
        out.extend_from_slice(&[self.tag]);
        out.extend_from_slice(&((self.body.len() + 4) as i32).to_be_bytes());
        out.extend_from_slice(&self.body);
    }
}

/// Length of the frame at the start of `buf` (header included) once its header is there, after
/// checking the declared body length against `max_body`. `Ok(None)`: header incomplete.
pub fn peek_frame_len(buf: &[u8], max_body: usize) -> Result<Option<usize>, WireError> {
    if buf.len() < 5 {
        return Ok(None);
    }
    let declared = i32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]);
    if declared < 4 {
        return Err(WireError::BadLength);
    }
    let body = declared as usize - 4;
    if body > max_body {
        return Err(WireError::TooLong {
            tag: buf[0] as char,
            len: body,
            limit: max_body,
        });
    }
    Ok(Some(body + 5))
}

/// Takes one complete frame off the front of `buf`, refusing bodies longer than `max_body`
/// before waiting for (or allocating) them.
pub fn decode_frame(buf: &mut BytesMut, max_body: usize) -> Result<Option<Frame>, WireError> {
    let Some(total) = peek_frame_len(buf, max_body)? else {
        return Ok(None);
    };
    if buf.len() < total {
        // Reserve only what the already-validated length needs.
        buf.reserve(total - buf.len());
        return Ok(None);
    }
    let tag = buf[0];
    buf.advance(5);
    let body = buf.split_to(total - 5).freeze();
    Ok(Some(Frame { tag, body }))
}
