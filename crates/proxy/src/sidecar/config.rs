//! Sidecar configuration: one typed value whose keys are the `pgentra proxy` flag names (TOML
//! `max-connections = 100`, flag `--max-connections`, env `PGENTRA_PROXY_MAX_CONNECTIONS`),
//! validated once into per-instance settings. It reads no file and no environment itself.
//!
//! Top-level upstream keys (`host`, `port`, `database`, `user`, `sslmode`, `ca-file`, `scope`)
//! describe the single upstream of the common case and are the defaults of every `[[instance]]`
//! table; an instance table overrides any of them plus its own `listen` and `unix-socket-dir`.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use pgentra_token::{CacheOptions, OSSRDBMS_SCOPE, RefreshMode};
use serde::{Deserialize, Serialize};

use crate::config::Endpoint;

/// Everything the sidecar needs. The defaults are the safe local ones: listen on
/// `127.0.0.1:5432` only, no password from the app, verify the server's certificate fully.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct SidecarConfig {
    /// TCP address (`host:port`) of the first instance's listener. An instance without its own
    /// `listen` gets this host and this port plus its index (5432, 5433, …), like the Cloud SQL
    /// proxy. Port 0 picks free ports.
    pub listen: String,
    /// Directory for unix sockets `<dir>/.s.PGSQL.<port>` (port = the instance's TCP port), so
    /// `psql -h <dir> -p <port>` works.
    pub unix_socket_dir: Option<PathBuf>,
    /// Allow TCP listeners on addresses other than loopback. Off by default: whoever can reach
    /// the listener logs in as the sidecar's identity.
    pub allow_non_loopback: bool,
    /// Password the app must present (cleartext, compared in constant time). Unset: no password.
    pub client_password: Option<String>,
    /// TLS certificate chain (PEM) offered to apps that send SSLRequest. Unset: TLS is declined
    /// with 'N' (plaintext on loopback or a unix socket).
    pub client_tls_cert: Option<PathBuf>,
    /// TLS private key (PEM) for `client-tls-cert`.
    pub client_tls_key: Option<PathBuf>,
    /// Refuse apps that do not use TLS (needs `client-tls-cert`).
    pub require_client_tls: bool,

    /// Upstream server host name or IP (or a unix socket directory starting with `/`).
    pub host: Option<String>,
    /// Upstream port.
    pub port: u16,
    /// Database to connect to; unset: the one the app asks for.
    pub database: Option<String>,
    /// PostgreSQL role to log in as. Precedence: this key, else the app's `user`, else (when
    /// the app sends `*`, or this key is `*`) the principal name in the token's claims.
    pub user: Option<String>,
    /// TLS to the upstream server.
    pub sslmode: SslMode,
    /// Extra CA certificates (PEM) trusted for the upstream server, besides the system roots.
    pub ca_file: Option<PathBuf>,
    /// Token scope (sovereign clouds use their own `ossrdbms-aad` resource).
    pub scope: String,

    /// Refresh tokens when a connection needs one instead of in the background, for hosts that
    /// throttle the CPU of idle containers.
    pub lazy_refresh: bool,
    /// Most client connections open at once over all instances (0: no limit); more are refused
    /// with SQLSTATE 53300.
    pub max_connections: usize,
    /// Deadline for connecting and logging in to the upstream server.
    #[serde(with = "duration_text")]
    pub connect_timeout: Duration,
    /// Deadline for the app's startup phase (SSLRequest, startup packet, local password).
    #[serde(with = "duration_text")]
    pub startup_timeout: Duration,
    /// After a shutdown signal, keep accepting new connections this long.
    #[serde(with = "duration_text")]
    pub min_sigterm_delay: Duration,
    /// After a shutdown signal, cut sessions still open at this point (measured from the
    /// signal; never less than `min-sigterm-delay`).
    #[serde(with = "duration_text")]
    pub max_sigterm_delay: Duration,
    /// HTTP address for `/metrics`, `/startup`, `/readiness`, `/liveness`.
    pub admin_listen: Option<String>,
    /// Serve `/quitquitquit` (GET or POST) on the admin address to start a graceful shutdown.
    pub quitquitquit: bool,
    /// At start-up, log in to every instance once and fail if any login fails.
    pub run_connection_test: bool,
    /// Upstream instances (TOML `[[instance]]`). Empty: one instance from the top-level keys.
    pub instance: Vec<InstanceConfig>,
}

impl Default for SidecarConfig {
    fn default() -> Self {
        SidecarConfig {
            listen: "127.0.0.1:5432".to_owned(),
            unix_socket_dir: None,
            allow_non_loopback: false,
            client_password: None,
            client_tls_cert: None,
            client_tls_key: None,
            require_client_tls: false,
            host: None,
            port: 5432,
            database: None,
            user: None,
            sslmode: SslMode::VerifyFull,
            ca_file: None,
            scope: OSSRDBMS_SCOPE.to_owned(),
            lazy_refresh: false,
            max_connections: 0,
            connect_timeout: Duration::from_secs(10),
            startup_timeout: Duration::from_secs(30),
            min_sigterm_delay: Duration::ZERO,
            max_sigterm_delay: Duration::from_secs(30),
            admin_listen: None,
            quitquitquit: false,
            run_connection_test: false,
            instance: Vec::new(),
        }
    }
}

impl fmt::Debug for SidecarConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SidecarConfig")
            .field("listen", &self.listen)
            .field("unix_socket_dir", &self.unix_socket_dir)
            .field("allow_non_loopback", &self.allow_non_loopback)
            .field(
                "client_password",
                &self.client_password.as_ref().map(|_| "<redacted>"),
            )
            .field("client_tls_cert", &self.client_tls_cert)
            .field("require_client_tls", &self.require_client_tls)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("database", &self.database)
            .field("user", &self.user)
            .field("sslmode", &self.sslmode)
            .field("ca_file", &self.ca_file)
            .field("scope", &self.scope)
            .field("lazy_refresh", &self.lazy_refresh)
            .field("max_connections", &self.max_connections)
            .field("connect_timeout", &self.connect_timeout)
            .field("min_sigterm_delay", &self.min_sigterm_delay)
            .field("max_sigterm_delay", &self.max_sigterm_delay)
            .field("admin_listen", &self.admin_listen)
            .field("run_connection_test", &self.run_connection_test)
            .field("instance", &self.instance)
            .finish()
    }
}

/// One upstream instance; every key left out falls back to the top-level key of that name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct InstanceConfig {
    /// Name in logs and metrics labels; default `host:port`.
    pub name: Option<String>,
    /// Upstream host.
    pub host: Option<String>,
    /// Upstream port.
    pub port: Option<u16>,
    /// Database override.
    pub database: Option<String>,
    /// Role override (see [`SidecarConfig::user`]).
    pub user: Option<String>,
    /// TLS mode to the upstream server.
    pub sslmode: Option<SslMode>,
    /// Extra CA file for the upstream server.
    pub ca_file: Option<PathBuf>,
    /// Token scope.
    pub scope: Option<String>,
    /// This instance's TCP listener (`host:port`).
    pub listen: Option<String>,
    /// This instance's unix socket directory.
    pub unix_socket_dir: Option<PathBuf>,
}

/// How the sidecar secures the leg to the upstream server (libpq's `sslmode` names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SslMode {
    /// No TLS (tests, or a server on this host). The token then crosses the wire in clear.
    Disable,
    /// TLS without checking the certificate.
    Require,
    /// TLS; the certificate must chain to a trusted root (any host name).
    VerifyCa,
    /// TLS; chain and host name are checked (the default).
    #[default]
    VerifyFull,
}

impl SslMode {
    /// The libpq spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

impl fmt::Display for SslMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SslMode {
    type Err = ConfigError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "disable" => Ok(SslMode::Disable),
            "require" => Ok(SslMode::Require),
            "verify-ca" => Ok(SslMode::VerifyCa),
            "verify-full" => Ok(SslMode::VerifyFull),
            other => Err(ConfigError(format!(
                "sslmode {other:?} is not supported: use disable, require, verify-ca or verify-full"
            ))),
        }
    }
}

/// A configuration that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid proxy configuration: {0}")]
pub struct ConfigError(pub String);

/// One instance with every default applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    /// Name in logs and metrics.
    pub name: String,
    /// Upstream address.
    pub upstream: Endpoint,
    /// Database override.
    pub database: Option<String>,
    /// Role override (`*`: from the token).
    pub user: Option<String>,
    /// TLS mode to the upstream (always `disable` for a unix socket upstream).
    pub sslmode: SslMode,
    /// Extra CA file.
    pub ca_file: Option<PathBuf>,
    /// Token scope.
    pub scope: String,
    /// TCP listener address.
    pub listen: String,
    /// Unix socket directory.
    pub unix_socket_dir: Option<PathBuf>,
}

impl SidecarConfig {
    /// Parses TOML text (keys as the flags, `[[instance]]` tables).
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError(e.to_string()))
    }

    /// Token cache options matching `lazy-refresh`.
    pub fn cache_options(&self) -> CacheOptions {
        let mode = if self.lazy_refresh {
            RefreshMode::Lazy
        } else {
            RefreshMode::Background
        };
        CacheOptions::default().with_mode(mode)
    }

    /// Validates the configuration and returns the instances with defaults applied.
    pub fn instances(&self) -> Result<Vec<Instance>, ConfigError> {
        let err = |m: String| Err(ConfigError(m));
        if self.client_tls_cert.is_some() != self.client_tls_key.is_some() {
            return err("set both `client-tls-cert` and `client-tls-key`, or neither".into());
        }
        if self.require_client_tls && self.client_tls_cert.is_none() {
            return err("`require-client-tls` needs `client-tls-cert` and `client-tls-key`".into());
        }
        if self.client_password.as_deref() == Some("") {
            return err("`client-password` is empty; leave it unset for no password".into());
        }
        if self.max_sigterm_delay < self.min_sigterm_delay {
            return err(format!(
                "`max-sigterm-delay` ({:?}) is shorter than `min-sigterm-delay` ({:?})",
                self.max_sigterm_delay, self.min_sigterm_delay
            ));
        }
        let (base_host, base_port) = split_listen(&self.listen)?;
        let tables: Vec<InstanceConfig> = if self.instance.is_empty() {
            vec![InstanceConfig::default()]
        } else {
            self.instance.clone()
        };
        let mut out: Vec<Instance> = Vec::with_capacity(tables.len());
        for (i, t) in tables.iter().enumerate() {
            let host = t
                .host
                .clone()
                .or_else(|| self.host.clone())
                .filter(|h| !h.trim().is_empty());
            let Some(host) = host else {
                return err(if self.instance.is_empty() {
                    "no upstream server: set `host` (or add `[[instance]]` tables)".into()
                } else {
                    format!(
                        "instance {} has no `host` and there is no top-level `host`",
                        i + 1
                    )
                });
            };
            let port = t.port.unwrap_or(self.port);
            let upstream = Endpoint {
                host: host.clone(),
                port,
            };
            let scope = t.scope.clone().unwrap_or_else(|| self.scope.clone());
            if scope.trim().is_empty() {
                return err("`scope` is empty".into());
            }
            let listen = match &t.listen {
                Some(l) => {
                    split_listen(l)?;
                    l.clone()
                }
                None => {
                    let p = if base_port == 0 {
                        0
                    } else {
                        let p = u32::from(base_port) + i as u32;
                        u16::try_from(p).map_err(|_| {
                            ConfigError(format!("instance {} would listen on port {p}", i + 1))
                        })?
                    };
                    join_host_port(&base_host, p)
                }
            };
            let (lhost, _) = split_listen(&listen)?;
            if !self.allow_non_loopback && !is_loopback_host(&lhost) {
                return err(format!(
                    "listen address {listen:?} is not a loopback address; anyone who can reach it \
                     logs in as this identity. Set `allow-non-loopback` to bind it anyway"
                ));
            }
            let sslmode = if upstream.is_unix() {
                // PostgreSQL never offers TLS on a unix socket; the socket is local anyway.
                SslMode::Disable
            } else {
                t.sslmode.unwrap_or(self.sslmode)
            };
            let name = t.name.clone().unwrap_or_else(|| upstream.to_string());
            if out.iter().any(|o| o.name == name) {
                return err(format!(
                    "two instances are named {name:?}; give them distinct `name`s"
                ));
            }
            out.push(Instance {
                name,
                upstream,
                database: t.database.clone().or_else(|| self.database.clone()),
                user: t.user.clone().or_else(|| self.user.clone()),
                sslmode,
                ca_file: t.ca_file.clone().or_else(|| self.ca_file.clone()),
                scope,
                listen,
                unix_socket_dir: t
                    .unix_socket_dir
                    .clone()
                    .or_else(|| self.unix_socket_dir.clone()),
            });
        }
        Ok(out)
    }
}

/// `host:port`, `[v6]:port`.
fn split_listen(listen: &str) -> Result<(String, u16), ConfigError> {
    if let Ok(addr) = listen.parse::<SocketAddr>() {
        return Ok((addr.ip().to_string(), addr.port()));
    }
    let bad = || {
        ConfigError(format!(
            "listen address {listen:?} is not host:port (e.g. 127.0.0.1:5432)"
        ))
    };
    let (host, port) = listen.rsplit_once(':').ok_or_else(bad)?;
    if host.is_empty() || host.contains(':') {
        return Err(bad());
    }
    let port = port.parse::<u16>().map_err(|_| bad())?;
    Ok((host.to_owned(), port))
}

fn join_host_port(host: &str, port: u16) -> String {
    match host.parse::<IpAddr>() {
        Ok(IpAddr::V6(v6)) => SocketAddr::from((v6, port)).to_string(),
        _ => format!("{host}:{port}"),
    }
}

fn is_loopback_host(host: &str) -> bool {
    match host.parse::<IpAddr>() {
        Ok(ip) => ip.is_loopback(),
        Err(_) => host.eq_ignore_ascii_case("localhost"),
    }
}

/// Parses `500ms`, `30s`, `2m`, `1h` or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, ConfigError> {
    let t = text.trim();
    let bad = || {
        ConfigError(format!(
            "{text:?} is not a duration (use e.g. 500ms, 30s, 2m, 1h or a number of seconds)"
        ))
    };
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().map_err(|_| bad())?;
    let d = match unit {
        "" | "s" => Duration::from_secs(n),
        "ms" => Duration::from_millis(n),
        "m" => Duration::from_secs(n.checked_mul(60).ok_or_else(bad)?),
        "h" => Duration::from_secs(n.checked_mul(3600).ok_or_else(bad)?),
        _ => return Err(bad()),
    };
    Ok(d)
}

/// Renders a duration the way [`parse_duration`] reads it.
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if !ms.is_multiple_of(1000) {
        format!("{ms}ms")
    } else {
        format!("{}s", d.as_secs())
    }
}

mod duration_text {
    use std::time::Duration;

    use serde::de::{self, Visitor};
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::format_duration(*d))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Duration;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a duration such as \"30s\", \"500ms\" or a number of seconds")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Duration, E> {
                Ok(Duration::from_secs(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Duration, E> {
                u64::try_from(v)
                    .map(Duration::from_secs)
                    .map_err(|_| E::custom("a duration cannot be negative"))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Duration, E> {
                super::parse_duration(v).map_err(|e| E::custom(e.0))
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_host() -> SidecarConfig {
        SidecarConfig {
            host: Some("db.example.com".into()),
            ..SidecarConfig::default()
        }
    }

    #[test]
    fn defaults_make_one_loopback_instance_verifying_the_server() {
        let i = with_host().instances().unwrap();
        assert_eq!(i.len(), 1);
        assert_eq!(i[0].listen, "127.0.0.1:5432");
        assert_eq!(i[0].sslmode, SslMode::VerifyFull);
        assert_eq!(i[0].name, "db.example.com:5432");
        assert_eq!(i[0].scope, OSSRDBMS_SCOPE);
    }

    #[test]
    fn no_host_is_an_error() {
        let e = SidecarConfig::default().instances().unwrap_err();
        assert!(e.0.contains("set `host`"), "{e}");
    }

    #[test]
    fn instance_tables_override_top_level_keys_and_get_consecutive_ports() {
        let c = SidecarConfig::from_toml(
            r#"
            host = "a.example.com"
            user = "aad_app"
            sslmode = "require"
            max-connections = 10
            min-sigterm-delay = "2s"
            max-sigterm-delay = 60
            [[instance]]
            name = "a"
            [[instance]]
            name = "b"
            host = "b.example.com"
            port = 6432
            user = "other"
            sslmode = "verify-ca"
            database = "sales"
            [[instance]]
            name = "c"
            listen = "127.0.0.1:7000"
            unix-socket-dir = "/tmp/x"
            "#,
        )
        .unwrap();
        assert_eq!(c.max_connections, 10);
        assert_eq!(c.min_sigterm_delay, Duration::from_secs(2));
        assert_eq!(c.max_sigterm_delay, Duration::from_secs(60));
        let i = c.instances().unwrap();
        assert_eq!(
            i.iter().map(|x| x.listen.as_str()).collect::<Vec<_>>(),
            ["127.0.0.1:5432", "127.0.0.1:5433", "127.0.0.1:7000"]
        );
        assert_eq!(i[0].upstream.host, "a.example.com");
        assert_eq!(i[0].user.as_deref(), Some("aad_app"));
        assert_eq!(i[0].sslmode, SslMode::Require);
        assert_eq!(i[1].upstream.port, 6432);
        assert_eq!(i[1].user.as_deref(), Some("other"));
        assert_eq!(i[1].sslmode, SslMode::VerifyCa);
        assert_eq!(i[1].database.as_deref(), Some("sales"));
        assert_eq!(i[2].unix_socket_dir, Some(PathBuf::from("/tmp/x")));
    }

    #[test]
    fn unknown_keys_and_bad_values_are_refused() {
        let table = [
            ("hots = \"x\"", "unknown field"),
            ("sslmode = \"prefer\"", "unknown variant"),
            ("connect-timeout = \"ten\"", "not a duration"),
            ("[[instance]]\nlisten-port = 1", "unknown field"),
        ];
        for (text, want) in table {
            let e = SidecarConfig::from_toml(text).unwrap_err();
            assert!(e.0.contains(want), "{text}: {e}");
        }
    }

    #[test]
    fn non_loopback_listeners_need_an_explicit_opt_in() {
        for listen in [
            "0.0.0.0:5432",
            "10.1.2.3:5432",
            "[::]:5432",
            "db.internal:5432",
        ] {
            let mut c = with_host();
            c.listen = listen.into();
            let e = c.instances().unwrap_err();
            assert!(e.0.contains("allow-non-loopback"), "{listen}: {e}");
            c.allow_non_loopback = true;
            assert!(c.instances().is_ok(), "{listen}");
        }
        for listen in ["127.0.0.1:0", "[::1]:5432", "localhost:5432", "127.0.0.2:1"] {
            let mut c = with_host();
            c.listen = listen.into();
            assert!(c.instances().is_ok(), "{listen}");
        }
    }

    #[test]
    fn inconsistent_settings_are_refused() {
        type Tweak = Box<dyn Fn(&mut SidecarConfig)>;
        let cases: Vec<(Tweak, &str)> = vec![
            (
                Box::new(|c| c.client_tls_cert = Some("c.pem".into())),
                "client-tls-key",
            ),
            (
                Box::new(|c| c.require_client_tls = true),
                "require-client-tls",
            ),
            (
                Box::new(|c| c.client_password = Some(String::new())),
                "client-password",
            ),
            (
                Box::new(|c| {
                    c.min_sigterm_delay = Duration::from_secs(5);
                    c.max_sigterm_delay = Duration::from_secs(1);
                }),
                "max-sigterm-delay",
            ),
            (Box::new(|c| c.listen = "5432".into()), "host:port"),
            (
                Box::new(|c| {
                    c.instance = vec![
                        InstanceConfig {
                            name: Some("x".into()),
                            ..Default::default()
                        },
                        InstanceConfig {
                            name: Some("x".into()),
                            ..Default::default()
                        },
                    ]
                }),
                "distinct",
            ),
        ];
        for (tweak, want) in cases {
            let mut c = with_host();
            tweak(&mut c);
            let e = c.instances().unwrap_err();
            assert!(e.0.contains(want), "want {want}: {e}");
        }
    }

    #[test]
    fn unix_socket_upstreams_never_use_tls() {
        let mut c = with_host();
        c.host = Some("/var/run/postgresql".into());
        assert_eq!(c.instances().unwrap()[0].sslmode, SslMode::Disable);
    }

    #[test]
    fn durations_parse_and_print() {
        for (text, d) in [
            ("500ms", Duration::from_millis(500)),
            ("30s", Duration::from_secs(30)),
            ("30", Duration::from_secs(30)),
            ("2m", Duration::from_secs(120)),
            ("1h", Duration::from_secs(3600)),
        ] {
            assert_eq!(parse_duration(text).unwrap(), d, "{text}");
            assert_eq!(parse_duration(&format_duration(d)).unwrap(), d);
        }
        for bad in ["", "s", "-1s", "1.5s", "3d", "99999999999999999999h"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn toml_roundtrip_and_redacted_debug() {
        let mut c = with_host();
        c.client_password = Some("hunter2".into());
        c.min_sigterm_delay = Duration::from_millis(1500);
        let text = toml::to_string(&c).unwrap();
        assert!(text.contains("min-sigterm-delay = \"1500ms\""), "{text}");
        assert_eq!(SidecarConfig::from_toml(&text).unwrap(), c);
        assert!(!format!("{c:?}").contains("hunter2"));
    }

    #[test]
    fn lazy_refresh_selects_the_lazy_cache_mode() {
        let mut c = with_host();
        assert_eq!(c.cache_options().mode, RefreshMode::Background);
        c.lazy_refresh = true;
        assert_eq!(c.cache_options().mode, RefreshMode::Lazy);
    }
}
