//! PostgreSQL JDBC URLs (`jdbc:postgresql://host:port/db?sslmode=require&user=…`): split and
//! build. Knows nothing of which parameters mean what; errors never quote a value.

/// The parts of a `jdbc:postgresql://` URL, percent-decoded.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct JdbcUrl {
    pub host: String,
    pub port: Option<u16>,
    pub database: String,
    /// Query parameters in order, names as written.
    pub params: Vec<(String, String)>,
}

const PREFIX: &str = "jdbc:postgresql:";

/// Whether `s` looks like a PostgreSQL JDBC URL at all.
pub(crate) fn is_jdbc(s: &str) -> bool {
    s.trim_start()
        .get(..PREFIX.len())
        .is_some_and(|p| p.eq_ignore_ascii_case(PREFIX))
}

/// Splits a PostgreSQL JDBC URL. Only the single-host form is accepted: Service Connector never
/// writes multi-host URLs, and picking one host silently would hide a misconfiguration.
pub(crate) fn split(s: &str) -> Result<JdbcUrl, String> {
    let s = s.trim();
    if !is_jdbc(s) {
        return Err("is not a `jdbc:postgresql://` URL".into());
    }
    let rest = &s[PREFIX.len()..];
    let Some(rest) = rest.strip_prefix("//") else {
        return Err("has no host (expected `jdbc:postgresql://host:port/database`)".into());
    };
    let (before_query, query) = match rest.split_once('?') {
        Some((a, q)) => (a, Some(q)),
        None => (rest, None),
    };
    let (authority, path) = match before_query.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (before_query, None),
    };
    if authority.contains(',') {
        return Err("names several hosts; only one is supported".into());
    }
    if authority.contains('@') {
        return Err("has user information before the host; put `user=` in the query".into());
    }
    let (host, port) = split_host_port(authority)?;
    let database = match path {
        Some(p) if !p.is_empty() => {
            percent_decode(p, true).ok_or("has a malformed percent-escape in the database name")?
        }
        _ => return Err("has no database name".into()),
    };
    let mut params = Vec::new();
    for part in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (k, v) = part.split_once('=').unwrap_or((part, ""));
        let k =
            percent_decode(k, true).ok_or("has a malformed percent-escape in a parameter name")?;
        let v = percent_decode(v, true)
            .ok_or_else(|| format!("has a malformed percent-escape in parameter `{k}`"))?;
        params.push((k, v));
    }
    Ok(JdbcUrl {
        host,
        port,
        database,
        params,
    })
}

fn split_host_port(authority: &str) -> Result<(String, Option<u16>), String> {
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let (h, after) = rest
            .split_once(']')
            .ok_or("has an unclosed `[` in the host")?;
        match after {
            "" => (h, None),
            _ => match after.strip_prefix(':') {
                Some(p) => (h, Some(p)),
                None => return Err("has text after the bracketed host".into()),
            },
        }
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return Err("has an empty host".into());
    }
    let host = percent_decode(host, false).ok_or("has a malformed percent-escape in the host")?;
    let port = match port {
        None | Some("") => None,
        Some(p) => Some(parse_port(p).ok_or("has an invalid port")?),
    };
    Ok((host, port))
}

/// A TCP port: 1–65535, digits only.
pub(crate) fn parse_port(s: &str) -> Option<u16> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse::<u16>().ok().filter(|&p| p != 0)
}

/// Builds `jdbc:postgresql://host:port/database?k=v&…`.
pub(crate) fn build(host: &str, port: u16, database: &str, params: &[(&str, &str)]) -> String {
    // An IPv6 address goes in brackets. Anything else outside a plain host name (a unix socket
    // directory, which pgjdbc cannot use but the other client types can) is percent-encoded so
    // the URL still splits back to the same host.
    let host = if host.contains(':') && !host.contains('/') {
        format!("[{host}]")
    } else {
        percent_encode(host)
    };
    let mut url = format!("{PREFIX}//{host}:{port}/{}", percent_encode(database));
    for (i, (k, v)) in params.iter().enumerate() {
        url.push(if i == 0 { '?' } else { '&' });
        url.push_str(&percent_encode(k));
        url.push('=');
        url.push_str(&percent_encode(v));
    }
    url
}

/// Escapes everything but RFC 3986 unreserved characters, so the result decodes the same way
/// with pgjdbc's `URLDecoder` and with plain percent-decoding.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Percent-decodes `s`; with `plus_as_space`, `+` means a space, as pgjdbc's `URLDecoder` reads
/// both the database name and the query parameters.
/// `None` for a broken escape or invalid UTF-8.
fn percent_decode(s: &str, plus_as_space: bool) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = bytes.get(i + 1..i + 3)?;
                let hex = std::str::from_utf8(hex).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' if plus_as_space => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_the_service_connector_url() {
        let u = split(
            "jdbc:postgresql://srv.postgres.database.azure.com:5432/db?sslmode=require&user=aad_x",
        )
        .unwrap();
        assert_eq!(u.host, "srv.postgres.database.azure.com");
        assert_eq!(u.port, Some(5432));
        assert_eq!(u.database, "db");
        assert_eq!(
            u.params,
            [
                ("sslmode".into(), "require".into()),
                ("user".into(), "aad_x".into())
            ]
        );
    }

    #[test]
    fn ipv6_default_port_and_escapes() {
        let u = split("JDBC:PostgreSQL://[::1]/my%20db?user=a%40b+c").unwrap();
        assert_eq!(u.host, "::1");
        assert_eq!(u.port, None);
        assert_eq!(u.database, "my db");
        assert_eq!(u.params, [("user".into(), "a@b c".into())]);
        let u = split("jdbc:postgresql://[::1]:6432/d").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("::1", Some(6432)));
    }

    #[test]
    fn malformed_urls_are_errors() {
        for (s, needle) in [
            ("postgresql://h/db", "not a `jdbc:postgresql://`"),
            ("jdbc:postgresql:db", "no host"),
            ("jdbc:postgresql://h1:5432,h2:5432/db", "several hosts"),
            ("jdbc:postgresql://u@h/db", "user information"),
            ("jdbc:postgresql://h:99999/db", "invalid port"),
            ("jdbc:postgresql://h:0/db", "invalid port"),
            ("jdbc:postgresql://h:x/db", "invalid port"),
            ("jdbc:postgresql://h:5432", "no database"),
            ("jdbc:postgresql://h:5432/?user=x", "no database"),
            ("jdbc:postgresql://:5432/db", "empty host"),
            ("jdbc:postgresql://[::1/db", "unclosed"),
            ("jdbc:postgresql://[::1]x/db", "after the bracketed"),
            ("jdbc:postgresql://h/d%zz", "percent-escape"),
            (
                "jdbc:postgresql://h/d?user=%e2%82",
                "percent-escape in parameter `user`",
            ),
        ] {
            let err = split(s).expect_err(s);
            assert!(err.contains(needle), "{s:?}: {err}");
        }
    }

    #[test]
    fn build_round_trips_through_split() {
        for (host, db, user) in [
            ("h.example", "db", "aad_conn"),
            ("::1", "my db/x?", "user@server"),
            ("127.0.0.1", "ünï", "a+b&c=d"),
        ] {
            let url = build(
                host,
                6543,
                db,
                &[("sslmode", "verify-full"), ("user", user)],
            );
            let u = split(&url).unwrap();
            assert_eq!(u.host, host, "{url}");
            assert_eq!(u.port, Some(6543));
            assert_eq!(u.database, db, "{url}");
            assert_eq!(u.params[1].1, user, "{url}");
        }
    }
}
