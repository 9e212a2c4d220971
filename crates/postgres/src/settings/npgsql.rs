//! Npgsql (.NET) connection strings (`Server=…;Database=…;Ssl Mode=Require;`): split and quote,
//! with the `DbConnectionStringBuilder` quoting rules. Errors never quote a value.

use std::borrow::Cow;

/// Splits an Npgsql connection string into `(normalized keyword, value)` pairs in order.
///
/// Keywords are case-insensitive and Npgsql ignores spaces inside them (`Ssl Mode` = `SslMode`),
/// so they come back lower-cased without spaces. Values may be wrapped in `"` or `'`; inside, the
/// quote character is written twice. Unquoted values end at `;` and are trimmed.
pub(crate) fn split(s: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    let mut it = s.char_indices().peekable();
    loop {
        while it
            .next_if(|&(_, c)| c.is_whitespace() || c == ';')
            .is_some()
        {}
        let Some(&(start, _)) = it.peek() else { break };
        let mut key = String::new();
        while let Some((_, c)) = it.next_if(|&(_, c)| c != '=' && c != ';') {
            key.push(c);
        }
        if it.next_if(|&(_, c)| c == '=').is_none() {
            return Err(format!("expected `=` after the keyword at byte {start}"));
        }
        let key: String = key
            .chars()
            .filter(|c| !c.is_whitespace())
            .flat_map(char::to_lowercase)
            .collect();
        if key.is_empty() {
            return Err(format!("empty keyword at byte {start}"));
        }
        while it.next_if(|&(_, c)| c.is_whitespace()).is_some() {}
        let mut value = String::new();
        if let Some((_, q)) = it.next_if(|&(_, c)| c == '"' || c == '\'') {
            loop {
                match it.next() {
                    None => return Err(format!("unterminated quoted value for `{key}`")),
                    Some((_, c)) if c == q => {
                        if it.next_if(|&(_, c)| c == q).is_some() {
                            value.push(q);
                        } else {
                            break;
                        }
                    }
                    Some((_, c)) => value.push(c),
                }
            }
            while it.next_if(|&(_, c)| c.is_whitespace()).is_some() {}
            if it.next_if(|&(_, c)| c == ';').is_none() && it.peek().is_some() {
                return Err(format!("unexpected text after the quoted value of `{key}`"));
            }
        } else {
            while let Some((_, c)) = it.next_if(|&(_, c)| c != ';') {
                value.push(c);
            }
            value.truncate(value.trim_end().len());
        }
        out.push((key, value));
    }
    Ok(out)
}

/// Quotes a value when `DbConnectionStringBuilder` would otherwise misread it.
pub(crate) fn quote(value: &str) -> Cow<'_, str> {
    let needs = value.is_empty()
        || value.contains([';', '"', '\''])
        || value.starts_with(char::is_whitespace)
        || value.ends_with(char::is_whitespace);
    if !needs {
        return Cow::Borrowed(value);
    }
    // Prefer the quote character that does not occur, as .NET does; double it otherwise.
    let q = if value.contains('"') && !value.contains('\'') {
        '\''
    } else {
        '"'
    };
    let mut out = String::with_capacity(value.len() + 2);
    out.push(q);
    for c in value.chars() {
        if c == q {
            out.push(q);
        }
        out.push(c);
    }
    out.push(q);
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_the_service_connector_string() {
        let got = split(
            "Server=srv.postgres.database.azure.com;Database=db;Port=5432;Ssl Mode=Require;User Id=aad_x;",
        )
        .unwrap();
        let keys: Vec<&str> = got.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["server", "database", "port", "sslmode", "userid"]);
        assert_eq!(got[0].1, "srv.postgres.database.azure.com");
        assert_eq!(got[4].1, "aad_x");
    }

    #[test]
    fn quoted_values_keep_semicolons_and_doubled_quotes() {
        let got = split(r#"  database = "a;b""c" ; user id='it''s' ;HOST=  h  "#).unwrap();
        assert_eq!(got[0], ("database".into(), r#"a;b"c"#.into()));
        assert_eq!(got[1], ("userid".into(), "it's".into()));
        assert_eq!(got[2], ("host".into(), "h".into()));
    }

    #[test]
    fn malformed_strings_are_errors_without_values() {
        for (s, needle) in [
            ("Server", "expected `=`"),
            ("Server=h;Database", "expected `=`"),
            ("=h", "empty keyword"),
            ("Database=\"abc", "unterminated"),
            ("Database=\"abc\" x;", "unexpected text"),
        ] {
            let err = split(s).expect_err(s);
            assert!(err.contains(needle), "{s:?}: {err}");
            assert!(!err.contains("abc"), "{s:?} leaked a value: {err}");
        }
    }

    #[test]
    fn quote_round_trips_through_split() {
        for v in [
            "plain",
            "",
            "a;b",
            "say \"hi\"",
            "it's",
            "both ' and \"",
            " padded ",
            "a=b",
        ] {
            let s = format!("A={};B=1;", quote(v));
            let got = split(&s).unwrap();
            assert_eq!(got[0].1, v, "{s}");
            assert_eq!(got[1], ("b".into(), "1".into()));
        }
    }
}
