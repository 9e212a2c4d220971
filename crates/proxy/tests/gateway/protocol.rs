//! Raw bytes on a socket: negotiation, limits, garbage. Nothing may panic, and the gateway keeps
//! serving real clients afterwards.

use std::time::Duration;

use bytes::{BufMut, BytesMut};
use pgentra_emulator::Principal;
use pgentra_proxy::PlaintextPolicy;
use pgentra_wire::backend::parse_error_fields;
use pgentra_wire::frame::decode_frame;
use pgentra_wire::frontend::encode;
use pgentra_wire::{Frame, ProtocolVersion};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::*;

async fn plaintext_fixture(tweak: impl FnOnce(&mut pgentra_proxy::GatewayConfig)) -> Fixture {
    Fixture::start_with(Options::default(), |c, _| {
        c.plaintext = PlaintextPolicy::Loopback;
        tweak(c);
    })
    .await
}

/// Reads frames until EOF (or 5 s); returns them.
async fn read_all(s: &mut TcpStream) -> Vec<Frame> {
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            while let Ok(Some(f)) = decode_frame(&mut buf, 1 << 20) {
                frames.push(f);
            }
            match s.read_buf(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    })
    .await;
    frames
}

fn error_of(frames: &[Frame]) -> (String, String) {
    let e = frames
        .iter()
        .find(|f| f.tag == b'E')
        .unwrap_or_else(|| panic!("no ErrorResponse in {frames:?}"));
    let f = parse_error_fields(&e.body).unwrap();
    assert_eq!(f.severity, "FATAL");
    (f.code, f.message)
}

async fn send(fx: &Fixture, bytes: &[u8]) -> Vec<Frame> {
    let mut s = TcpStream::connect(fx.addr()).await.unwrap();
    let _ = s.write_all(bytes).await;
    read_all(&mut s).await
}

fn startup(version: ProtocolVersion, params: &[(&str, &str)]) -> BytesMut {
    let mut b = BytesMut::new();
    encode::startup(&mut b, version, params.iter().copied());
    b
}

#[tokio::test]
async fn startup_phase_limits_and_negotiation() {
    let fx = plaintext_fixture(|c| c.startup_timeout_ms = 700).await;

    // Oversized startup packet: refused from its length field alone.
    let mut b = BytesMut::new();
    b.put_i32(1_000_000);
    b.put_i32(196_608);
    let (code, msg) = error_of(&send(&fx, &b).await);
    assert_eq!(
        (code.as_str(), msg.as_str()),
        ("08P01", "invalid length of startup packet")
    );

    // Protocol 2.
    let b = startup(ProtocolVersion { major: 2, minor: 0 }, &[("user", "x")]);
    let (code, msg) = error_of(&send(&fx, &b).await);
    assert_eq!(
        (code.as_str(), msg.as_str()),
        (
            "0A000",
            "unsupported frontend protocol 2.0: server supports 3.0 to 3.0"
        )
    );

    // No user.
    let b = startup(ProtocolVersion::V3_0, &[("database", "postgres")]);
    let (code, msg) = error_of(&send(&fx, &b).await);
    assert_eq!(
        (code.as_str(), msg.as_str()),
        (
            "28000",
            "no PostgreSQL user name specified in startup packet"
        )
    );

    // Protocol 3.2 with an unknown protocol option: negotiated down to 3.0, then the password
    // request follows.
    let b = startup(
        ProtocolVersion { major: 3, minor: 2 },
        &[("user", SYSTEM_MI_ROLE), ("_pq_.shiny", "on")],
    );
    let mut s = TcpStream::connect(fx.addr()).await.unwrap();
    s.write_all(&b).await.unwrap();
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    while frames.len() < 2 {
        s.read_buf(&mut buf).await.unwrap();
        while let Some(f) = decode_frame(&mut buf, 1 << 16).unwrap() {
            frames.push(f);
        }
    }
    assert_eq!(frames[0].tag, b'v');
    assert_eq!(&frames[0].body[..], b"\0\0\0\0\0\0\0\x01_pq_.shiny\0");
    assert_eq!(frames[1].tag, b'R');
    assert_eq!(&frames[1].body[..], &3i32.to_be_bytes());

    // A password message far above the limit is refused from its header.
    let mut p = BytesMut::new();
    p.put_u8(b'p');
    p.put_i32(1_000_000);
    s.write_all(&p).await.unwrap();
    let (code, msg) = error_of(&read_all(&mut s).await);
    assert_eq!(code, "08P01");
    assert_eq!(
        msg,
        "message of type 'p' is too long (999996 bytes, limit 65537)"
    );

    // GSSENCRequest is declined with 'N'; SSLRequest then gets 'S'.
    let mut s = TcpStream::connect(fx.addr()).await.unwrap();
    let mut b = BytesMut::new();
    encode::gssenc_request(&mut b);
    s.write_all(&b).await.unwrap();
    assert_eq!(s.read_u8().await.unwrap(), b'N');
    let mut b = BytesMut::new();
    encode::ssl_request(&mut b);
    s.write_all(&b).await.unwrap();
    assert_eq!(s.read_u8().await.unwrap(), b'S');
    drop(s);

    // Bytes pipelined behind SSLRequest are never treated as encrypted: no 'S', just a close.
    let mut b = BytesMut::new();
    encode::ssl_request(&mut b);
    b.extend_from_slice(&startup(ProtocolVersion::V3_0, &[("user", "x")]));
    let mut s = TcpStream::connect(fx.addr()).await.unwrap();
    s.write_all(&b).await.unwrap();
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut rest)).await;
    assert!(rest.is_empty(), "got {rest:?}");
    assert!(fx.handle.failures_for("protocol_violation") >= 1);

    // A silent client is dropped at the startup deadline.
    let before = fx.handle.failures_for("startup_timeout");
    let mut s = TcpStream::connect(fx.addr()).await.unwrap();
    let mut rest = Vec::new();
    let t = std::time::Instant::now();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut rest)).await;
    assert!(t.elapsed() < Duration::from_secs(4));
    assert_eq!(fx.handle.failures_for("startup_timeout"), before + 1);

    assert_eq!(
        fx.whoami(SYSTEM_MI_ROLE, &fx.token(Principal::SystemMi))
            .await
            .unwrap(),
        SYSTEM_MI_ROLE
    );
    fx.stop().await;
}

#[tokio::test]
async fn garbage_never_takes_the_gateway_down() {
    let fx = plaintext_fixture(|c| c.startup_timeout_ms = 1000).await;
    // Deterministic pseudo-random blobs (xorshift), some with plausible headers.
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut tasks = Vec::new();
    for i in 0..120 {
        let len = (next() % 300) as usize;
        let mut blob: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        if i % 3 == 0 && blob.len() >= 8 {
            // A valid-looking length and a random code.
            let len = blob.len() as i32;
            blob[..4].copy_from_slice(&len.to_be_bytes());
        }
        if i % 5 == 0 {
            // A real startup followed by a garbage "password".
            let mut b = startup(ProtocolVersion::V3_0, &[("user", SYSTEM_MI_ROLE)]);
            b.extend_from_slice(&blob);
            blob = b.to_vec();
        }
        let addr = fx.addr();
        tasks.push(tokio::spawn(async move {
            let mut s = TcpStream::connect(addr).await.unwrap();
            let _ = s.write_all(&blob).await;
            let mut sink = Vec::new();
            let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut sink)).await;
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    // 64 KB of junk as the password of a real startup.
    let mut b = startup(ProtocolVersion::V3_0, &[("user", SYSTEM_MI_ROLE)]);
    encode::password(&mut b, &vec![b'#'; 64 * 1024]);
    let (code, msg) = error_of(&send(&fx, &b).await);
    assert_eq!((code.as_str(), msg.as_str()), ("28000", INVALID_FORMAT));

    assert_eq!(
        fx.whoami(SYSTEM_MI_ROLE, &fx.token(Principal::SystemMi))
            .await
            .unwrap(),
        SYSTEM_MI_ROLE
    );
    // Every garbage session ended: none leaked.
    let mut active = String::new();
    for _ in 0..100 {
        active = fx
            .handle
            .metrics_text()
            .lines()
            .find(|l| l.starts_with("pgentra_gateway_connections_active "))
            .unwrap()
            .to_owned();
        if active.ends_with(" 0") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(active, "pgentra_gateway_connections_active 0");
    fx.stop().await;
}
