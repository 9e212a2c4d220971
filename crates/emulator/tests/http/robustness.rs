//! Hostile and malformed input never panics the emulator: every request gets an answer (or a
//! clean connection close for broken HTTP), and the emulator keeps serving afterwards.

use pgentra_emulator::dev;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::{client, emulator, tls_client};

#[tokio::test]
async fn odd_paths_queries_headers_and_bodies_get_answers() {
    let emu = emulator().await;
    let http = client();
    let long = "x".repeat(8000);
    let paths = [
        format!("/msi/token?{long}"),
        "/msi/token?api-version=2019-08-01&resource=%00%FF&client_id=%E2%82".to_string(),
        "/metadata/identity/oauth2/token?api-version=9999-99-99&resource=\u{1F600}".to_string(),
        format!("/{long}/oauth2/v2.0/token"),
        "/%2e%2e/%2e%2e/etc/passwd".to_string(),
        "/common/discovery/instance?authorization_endpoint=not%20a%20url".to_string(),
        "/common/discovery/instance?authorization_endpoint=file:///etc/passwd".to_string(),
        "/%FF/.well-known/openid-configuration".to_string(),
        "/organizations/discovery/v2.0/keys".to_string(),
    ];
    for path in &paths {
        for method in [
            reqwest::Method::GET,
            reqwest::Method::POST,
            reqwest::Method::DELETE,
        ] {
            let response = http
                .request(method.clone(), format!("{}{path}", emu.http_base()))
                .header("Metadata", "true")
                .header(
                    "X-IDENTITY-HEADER",
                    reqwest::header::HeaderValue::from_bytes(b"\xff\xfe").unwrap(),
                )
                .header(
                    "client-request-id",
                    "not-a-guid\u{7f}".replace('\u{7f}', ""),
                )
                .body(vec![0u8, 0xff, b'=', b'&', b'%'])
                .send()
                .await
                .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
            let status = response.status().as_u16();
            assert!((200..500).contains(&status), "{method} {path} -> {status}");
        }
    }
    // Assertions that are not JWTs, or JWTs with hostile contents.
    let junk_header = base64_url(br#"{"alg":"none","x5t":12,"x5t#S256":null}"#);
    let junk_claims = base64_url(br#"{"iss":[],"sub":{"a":1},"aud":7,"exp":"soon"}"#);
    for assertion in [
        String::new(),
        "....".to_string(),
        format!("{junk_header}.{junk_claims}.sig"),
        format!("{junk_header}.{junk_claims}.%%%"),
        "a".repeat(100_000),
    ] {
        let response = tls_client(&emu)
            .post(format!(
                "{}/{}/oauth2/v2.0/token",
                emu.https_base(),
                dev::TENANT_ID
            ))
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", dev::SP_CLIENT_ID),
                (
                    "client_assertion_type",
                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                ),
                ("client_assertion", assertion.as_str()),
                ("scope", dev::OSSRDBMS_SCOPE),
            ])
            .send()
            .await
            .unwrap();
        assert!(
            matches!(response.status().as_u16(), 400 | 401),
            "{}",
            response.status()
        );
    }
    assert_healthy(&emu).await;
}

fn base64_url(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

async fn assert_healthy(emu: &pgentra_emulator::RunningEmulator) {
    let r = client()
        .get(format!(
            "{}?api-version=2019-08-01&resource={}",
            emu.identity_endpoint(),
            dev::OSSRDBMS_RESOURCE
        ))
        .header("X-IDENTITY-HEADER", emu.identity_header())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "still serving");
}

#[tokio::test]
async fn broken_http_and_tls_are_closed_cleanly() {
    let emu = emulator().await;
    for garbage in [
        &b"GARBAGE\r\n\r\n"[..],
        b"GET / HTTP/1.1\r\nHost: \xff\r\nContent-Length: -1\r\n\r\n",
        b"POST /t/oauth2/v2.0/token HTTP/1.1\r\nContent-Length: 99999999\r\n\r\nshort",
        b"\x16\x03\x01\x00\x05hello",
    ] {
        for addr in [emu.http_addr(), emu.https_addr()] {
            let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
            let _ = s.write_all(garbage).await;
            let _ = s.shutdown().await;
            let mut sink = Vec::new();
            let read =
                tokio::time::timeout(std::time::Duration::from_secs(15), s.read_to_end(&mut sink))
                    .await;
            assert!(
                read.is_ok(),
                "connection closed within the handshake/read timeout"
            );
        }
    }
    assert_healthy(&emu).await;
}
