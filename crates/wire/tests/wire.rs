//! Decoder/encoder tests: fixed cases, roundtrips, an independent oracle (postgres-protocol) and
//! garbage that must never panic.

use bytes::{BufMut, BytesMut};
use pgentra_wire::backend::{self, AuthRequest, ErrorFields};
use pgentra_wire::frontend::encode;
use pgentra_wire::{
    MAX_PASSWORD_LEN, ProtocolVersion, StartupMessage, WireError, decode_password, decode_startup,
    frame,
};
use postgres_protocol::message::backend::Message;
use proptest::prelude::*;

fn startup_bytes(params: &[(&str, &str)]) -> BytesMut {
    let mut b = BytesMut::new();
    encode::startup(&mut b, ProtocolVersion::V3_0, params.iter().copied());
    b
}

#[test]
fn startup_decodes_like_postgres_protocol_encodes() {
    let mut b = BytesMut::new();
    postgres_protocol::message::frontend::startup_message(
        [("user", "alice@example.com"), ("database", "postgres")],
        &mut b,
    )
    .unwrap();
    let Some(StartupMessage::Startup(s)) = decode_startup(&mut b).unwrap() else {
        panic!("not a startup");
    };
    assert_eq!(s.version, ProtocolVersion::V3_0);
    assert_eq!(s.user(), Some("alice@example.com"));
    assert_eq!(s.database(), Some("postgres"));
    assert!(b.is_empty());
}

#[test]
fn database_defaults_to_user() {
    let mut b = startup_bytes(&[("user", "bob")]);
    let Some(StartupMessage::Startup(s)) = decode_startup(&mut b).unwrap() else {
        panic!()
    };
    assert_eq!(s.database(), Some("bob"));
}

#[test]
fn every_prefix_is_incomplete_not_error() {
    let full = startup_bytes(&[("user", "u"), ("application_name", "x")]);
    for cut in 0..full.len() {
        let mut b = BytesMut::from(&full[..cut]);
        assert_eq!(decode_startup(&mut b).unwrap(), None, "cut at {cut}");
        assert_eq!(b.len(), cut, "nothing consumed");
    }
}

#[test]
fn ssl_gss_cancel_requests() {
    let mut b = BytesMut::new();
    encode::ssl_request(&mut b);
    encode::gssenc_request(&mut b);
    encode::cancel_request(&mut b, 4242, &[1, 2, 3, 4]);
    assert_eq!(
        decode_startup(&mut b).unwrap(),
        Some(StartupMessage::SslRequest)
    );
    assert_eq!(
        decode_startup(&mut b).unwrap(),
        Some(StartupMessage::GssEncRequest)
    );
    match decode_startup(&mut b).unwrap() {
        Some(StartupMessage::Cancel(c)) => {
            assert_eq!(c.process_id, 4242);
            assert_eq!(&c.secret[..], &[1, 2, 3, 4]);
            assert!(!format!("{c:?}").contains("[1, 2"));
        }
        other => panic!("{other:?}"),
    }
    // postgres-protocol as an independent encoder of CancelRequest.
    let mut b = BytesMut::new();
    postgres_protocol::message::frontend::cancel_request(7, 99, &mut b);
    let Some(StartupMessage::Cancel(c)) = decode_startup(&mut b).unwrap() else {
        panic!()
    };
    assert_eq!((c.process_id, &c.secret[..]), (7, &99i32.to_be_bytes()[..]));
}

#[test]
fn oversized_startup_is_refused_before_the_body_arrives() {
    let mut b = BytesMut::new();
    b.put_i32(10_001);
    assert_eq!(decode_startup(&mut b), Err(WireError::StartupLength));
    let mut b = BytesMut::new();
    b.put_i32(7);
    assert_eq!(decode_startup(&mut b), Err(WireError::StartupLength));
    let mut b = BytesMut::new();
    b.put_i32(-1);
    assert_eq!(decode_startup(&mut b), Err(WireError::StartupLength));
}

#[test]
fn protocol_versions() {
    let mut b = BytesMut::new();
    encode::startup(
        &mut b,
        ProtocolVersion { major: 2, minor: 0 },
        [("user", "u")],
    );
    assert_eq!(
        decode_startup(&mut b),
        Err(WireError::UnsupportedProtocol { major: 2, minor: 0 })
    );
    let mut b = BytesMut::new();
    encode::startup(
        &mut b,
        ProtocolVersion { major: 3, minor: 2 },
        [("user", "u"), ("_pq_.foo", "1")],
    );
    let Some(StartupMessage::Startup(s)) = decode_startup(&mut b).unwrap() else {
        panic!()
    };
    assert_eq!(s.version.minor, 2);
    assert_eq!(s.protocol_options().collect::<Vec<_>>(), ["_pq_.foo"]);
}

#[test]
fn malformed_parameter_lists() {
    // Missing final terminator.
    let mut b = BytesMut::new();
    b.put_i32(4 + 4 + 2);
    b.put_i32(196_608);
    b.put_slice(b"u\0");
    assert!(matches!(
        decode_startup(&mut b),
        Err(WireError::StartupLayout(_))
    ));
    // Bytes after the terminator.
    let mut b = BytesMut::new();
    b.put_i32(4 + 4 + 2);
    b.put_i32(196_608);
    b.put_slice(b"\0x");
    assert!(matches!(
        decode_startup(&mut b),
        Err(WireError::StartupLayout(_))
    ));
}

#[test]
fn password_of_16k_and_64k_pass_and_larger_is_refused_early() {
    for len in [16 * 1024, MAX_PASSWORD_LEN - 1] {
        let token = "a".repeat(len);
        let mut b = BytesMut::new();
        encode::password(&mut b, token.as_bytes());
        let p = decode_password(&mut b, MAX_PASSWORD_LEN).unwrap().unwrap();
        assert_eq!(p.as_str(), Some(token.as_str()));
        assert!(!format!("{p:?}").contains("aaaa"));
    }
    // Header of a 100 KB message: refused from the 5-byte header alone.
    let mut b = BytesMut::new();
    b.put_u8(b'p');
    b.put_i32(100_000);
    assert!(matches!(
        decode_password(&mut b, MAX_PASSWORD_LEN),
        Err(WireError::TooLong { .. })
    ));
}

#[test]
fn password_rejects_other_messages_and_bad_layout() {
    let mut b = BytesMut::from(&b"Q\0\0\0\x05\0"[..]);
    assert_eq!(
        decode_password(&mut b, 100),
        Err(WireError::UnexpectedMessage {
            expected: 'p',
            got: 'Q'
        })
    );
    let mut b = BytesMut::from(&b"p\0\0\0\x07a\0b"[..]);
    assert_eq!(decode_password(&mut b, 100), Err(WireError::PasswordLayout));
    let mut b = BytesMut::from(&b"p\0\0\0\x05a"[..]);
    assert_eq!(decode_password(&mut b, 100), Err(WireError::PasswordLayout));
    let mut b = BytesMut::from(&b"p\0\0\0\x03"[..]);
    assert_eq!(decode_password(&mut b, 100), Err(WireError::BadLength));
}

fn parse_one(b: &mut BytesMut) -> Message {
    Message::parse(b).unwrap().expect("complete message")
}

#[test]
fn backend_encoders_parse_with_postgres_protocol() {
    let mut b = BytesMut::new();
    backend::auth_cleartext_password(&mut b);
    backend::auth_ok(&mut b);
    backend::parameter_status(&mut b, "server_version", "15.0");
    backend::backend_key_data(&mut b, 77, &88i32.to_be_bytes());
    backend::ready_for_query(&mut b, b'I');
    backend::error_response(
        &mut b,
        &ErrorFields::fatal("28P01", "password authentication failed for user \"x\""),
    );
    assert!(matches!(
        parse_one(&mut b),
        Message::AuthenticationCleartextPassword
    ));
    assert!(matches!(parse_one(&mut b), Message::AuthenticationOk));
    match parse_one(&mut b) {
        Message::ParameterStatus(p) => {
            assert_eq!(p.name().unwrap(), "server_version");
            assert_eq!(p.value().unwrap(), "15.0");
        }
        _ => panic!("ParameterStatus"),
    }
    match parse_one(&mut b) {
        Message::BackendKeyData(k) => assert_eq!((k.process_id(), k.secret_key()), (77, 88)),
        _ => panic!("BackendKeyData"),
    }
    match parse_one(&mut b) {
        Message::ReadyForQuery(r) => assert_eq!(r.status(), b'I'),
        _ => panic!("ReadyForQuery"),
    }
    match parse_one(&mut b) {
        Message::ErrorResponse(e) => {
            use fallible_iterator_shim::collect_fields;
            let f = collect_fields(&e);
            assert!(f.contains(&(b'S', "FATAL".to_owned())));
            assert!(f.contains(&(b'V', "FATAL".to_owned())));
            assert!(f.contains(&(b'C', "28P01".to_owned())));
            assert!(f.contains(&(
                b'M',
                "password authentication failed for user \"x\"".to_owned()
            )));
        }
        _ => panic!("ErrorResponse"),
    }
    assert!(b.is_empty());
}

mod fallible_iterator_shim {
    use fallible_iterator::FallibleIterator;
    use postgres_protocol::message::backend::ErrorResponseBody;
    pub fn collect_fields(e: &ErrorResponseBody) -> Vec<(u8, String)> {
        let mut out = Vec::new();
        let mut it = e.fields();
        while let Ok(Some(f)) = it.next() {
            out.push((
                f.type_(),
                String::from_utf8_lossy(f.value_bytes()).into_owned(),
            ));
        }
        out
    }
}

#[test]
fn negotiate_protocol_version_layout() {
    let mut b = BytesMut::new();
    backend::negotiate_protocol_version(&mut b, 0, ["_pq_.a", "_pq_.b"]);
    let f = frame::decode_frame(&mut b, 1000).unwrap().unwrap();
    assert_eq!(f.tag, b'v');
    assert_eq!(&f.body[..], b"\0\0\0\0\0\0\0\x02_pq_.a\0_pq_.b\0");
}

#[test]
fn error_fields_roundtrip_and_nul_cannot_smuggle() {
    let mut fields = ErrorFields::fatal("08006", "bad\0Mevil");
    fields.detail = Some("d".into());
    fields.hint = Some("h".into());
    let mut b = BytesMut::new();
    backend::error_response(&mut b, &fields);
    let f = frame::decode_frame(&mut b, 1000).unwrap().unwrap();
    let parsed = backend::parse_error_fields(&f.body).unwrap();
    assert_eq!(parsed.message, "badMevil");
    assert_eq!(parsed.detail.as_deref(), Some("d"));
    assert_eq!(parsed.hint.as_deref(), Some("h"));
    assert_eq!(parsed.code, "08006");
}

#[test]
fn auth_requests_parse() {
    let body = |code: i32, extra: &[u8]| {
        let mut b = BytesMut::new();
        b.put_i32(code);
        b.put_slice(extra);
        b.freeze()
    };
    assert_eq!(
        backend::parse_auth_request(body(0, b"")).unwrap(),
        AuthRequest::Ok
    );
    assert_eq!(
        backend::parse_auth_request(body(5, b"salt")).unwrap(),
        AuthRequest::Md5Password(*b"salt")
    );
    assert_eq!(
        backend::parse_auth_request(body(10, b"SCRAM-SHA-256-PLUS\0SCRAM-SHA-256\0\0")).unwrap(),
        AuthRequest::Sasl(vec!["SCRAM-SHA-256-PLUS".into(), "SCRAM-SHA-256".into()])
    );
    assert!(backend::parse_auth_request(body(5, b"xx")).is_err());
    assert!(backend::parse_auth_request(body(10, b"nonul")).is_err());
    assert_eq!(
        backend::parse_auth_request(body(7, b"")).unwrap(),
        AuthRequest::Other(7)
    );
}

proptest! {
    #[test]
    fn startup_roundtrip(params in proptest::collection::vec(("[a-z_]{1,12}", "[^\u{0}]{0,40}"), 0..8), minor in 0u16..4) {
        let mut b = BytesMut::new();
        let version = ProtocolVersion { major: 3, minor };
        encode::startup(&mut b, version, params.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        prop_assume!(b.len() <= pgentra_wire::MAX_STARTUP_PACKET_LEN);
        let decoded = decode_startup(&mut b).unwrap().unwrap();
        prop_assert_eq!(decoded, StartupMessage::Startup(pgentra_wire::Startup { version, params }));
        prop_assert!(b.is_empty());
    }

    #[test]
    fn password_roundtrip(pw in proptest::collection::vec(1u8..=255, 0..3000)) {
        let mut b = BytesMut::new();
        encode::password(&mut b, &pw);
        encode::terminate(&mut b);
        let decoded = decode_password(&mut b, MAX_PASSWORD_LEN).unwrap().unwrap();
        prop_assert_eq!(decoded.as_bytes(), &pw[..]);
        prop_assert_eq!(&b[..], b"X\0\0\0\x04");
    }

    #[test]
    fn garbage_never_panics(data in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let mut b = BytesMut::from(&data[..]);
        let _ = decode_startup(&mut b);
        let mut b = BytesMut::from(&data[..]);
        let _ = decode_password(&mut b, MAX_PASSWORD_LEN);
        let mut b = BytesMut::from(&data[..]);
        if let Ok(Some(f)) = frame::decode_frame(&mut b, MAX_PASSWORD_LEN) {
            let _ = backend::parse_error_fields(&f.body);
            let _ = backend::parse_auth_request(f.body.clone());
            let _ = backend::parse_backend_key_data(f.body);
        }
        let _ = backend::parse_error_fields(&data);
    }

    #[test]
    fn garbage_with_plausible_header_never_panics(len in 0i32..12_000, code in any::<i32>(), body in proptest::collection::vec(any::<u8>(), 0..256)) {
        let mut b = BytesMut::new();
        b.put_i32(len);
        b.put_i32(code);
        b.put_slice(&body);
        let before = b.len();
        match decode_startup(&mut b) {
            Ok(None) => prop_assert_eq!(b.len(), before),
            Ok(Some(_)) => prop_assert_eq!(b.len(), before - len as usize),
            Err(_) => {}
        }
    }
}
