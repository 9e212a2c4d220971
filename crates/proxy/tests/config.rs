//! Configuration: the documented example parses and validates, defaults are safe, and every
//! impossible combination is refused with a message naming the key.

use pgentra_proxy::{AuthMode, Endpoint, GatewayConfig, PlaintextPolicy};

#[test]
fn documented_example_parses_and_validates() {
    let cfg: GatewayConfig = toml::from_str(include_str!("../examples/gateway.toml")).unwrap();
    cfg.validate().unwrap();
    assert_eq!(cfg.plaintext, PlaintextPolicy::Never);
    assert_eq!(cfg.auth.mode, AuthMode::EntraOnly);
    assert_eq!(
        cfg.upstream.trusted,
        Endpoint {
            host: "/var/run/postgresql".into(),
            port: 5432
        }
    );
    assert_eq!(cfg.registry.admins.len(), 1);
    assert_eq!(
        cfg.issuers(),
        [
            "https://sts.windows.net/72f988bf-86f1-41af-91ab-2d7cd011db47/",
            "https://login.microsoftonline.com/72f988bf-86f1-41af-91ab-2d7cd011db47/v2.0"
        ]
    );
}

#[test]
fn defaults_are_safe() {
    let cfg: GatewayConfig = toml::from_str("").unwrap();
    assert_eq!(cfg, GatewayConfig::default());
    assert_eq!(cfg.plaintext, PlaintextPolicy::Never);
    assert_eq!(cfg.auth.mode, AuthMode::EntraOnly);
    assert_eq!(
        cfg.auth.audiences,
        ["https://ossrdbms-aad.database.windows.net"]
    );
    assert_eq!(cfg.registry.database, "postgres");
    // Without TLS material, tenants and keys nothing could ever log in: refused.
    assert!(cfg.validate().is_err());
}

#[test]
fn impossible_combinations_are_refused() {
    let base = || {
        let c: GatewayConfig = toml::from_str(include_str!("../examples/gateway.toml")).unwrap();
        c.validate().unwrap();
        c
    };
    type Tweak = Box<dyn Fn(&mut GatewayConfig)>;
    let cases: Vec<(&str, Tweak)> = vec![
        ("`tls`", Box::new(|c| c.tls = None)),
        ("`auth.tenants`", Box::new(|c| c.auth.tenants.clear())),
        ("`auth.audiences`", Box::new(|c| c.auth.audiences.clear())),
        (
            "`auth.jwks_url` or `auth.discovery_url`",
            Box::new(|c| {
                c.auth.jwks_url = None;
                c.auth.discovery_url = None
            }),
        ),
        (
            "`upstream.password`",
            Box::new(|c| c.auth.mode = AuthMode::Mixed),
        ),
        ("`max_connections`", Box::new(|c| c.max_connections = 0)),
        (
            "object_type",
            Box::new(|c| c.registry.directory[0].object_type = "robot".into()),
        ),
        (
            "no listener",
            Box::new(|c| {
                c.listen.clear();
                c.unix_socket_dir = None
            }),
        ),
    ];
    for (needle, tweak) in cases {
        let mut c = base();
        tweak(&mut c);
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains(needle), "{needle:?} not in {err:?}");
    }
    // Plaintext-only setups need no certificate.
    let mut c = base();
    c.tls = None;
    c.plaintext = PlaintextPolicy::Loopback;
    c.validate().unwrap();
}

#[test]
fn unknown_keys_are_errors() {
    let err = toml::from_str::<GatewayConfig>("listen = []\nlisten_port = 5432\n").unwrap_err();
    assert!(
        err.to_string().contains("unknown field `listen_port`"),
        "{err}"
    );
    let err = toml::from_str::<GatewayConfig>("[auth]\naudience = \"x\"\n").unwrap_err();
    assert!(
        err.to_string().contains("unknown field `audience`"),
        "{err}"
    );
}

#[test]
fn trusted_tls_needs_a_tcp_endpoint() {
    let mut c: GatewayConfig = toml::from_str(include_str!("../examples/gateway.toml")).unwrap();
    c.upstream.trusted_tls = Some(pgentra_proxy::UpstreamTls {
        ca_file: "/ca.pem".into(),
        cert_file: "/gw.crt".into(),
        key_file: "/gw.key".into(),
    });
    let err = c.validate().unwrap_err().to_string();
    assert!(err.contains("`upstream.trusted_tls`"), "{err}");
    c.upstream.trusted = Endpoint {
        host: "db.internal".into(),
        port: 5432,
    };
    c.validate().unwrap();
}
