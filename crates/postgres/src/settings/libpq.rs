//! libpq keyword/value connection strings (`host=… dbname='my db' user=…`): split and quote.
//! Knows nothing of which keywords mean what; errors never quote a value, since one may be a
//! password.

use std::borrow::Cow;

/// Splits a libpq conninfo string into `(keyword, value)` pairs in order, following libpq's
/// `conninfo_parse`: values may be single-quoted; inside and outside quotes a backslash escapes
/// the next character. The error text names a byte offset or keyword, never a value.
pub(crate) fn split(s: &str) -> Result<Vec<(String, String)>, String> {
    Ok(split_marking_quotes(s)?
        .into_iter()
        .map(|(k, v, _)| (k, v))
        .collect())
}

/// [`split`], also telling for each value whether it was single-quoted.
pub(crate) fn split_marking_quotes(s: &str) -> Result<Vec<(String, String, bool)>, String> {
    let mut out = Vec::new();
    let mut it = s.char_indices().peekable();
    loop {
        while it.next_if(|&(_, c)| c.is_whitespace()).is_some() {}
        let Some(&(start, _)) = it.peek() else { break };
        let mut key = String::new();
        while let Some((_, c)) = it.next_if(|&(_, c)| c != '=' && !c.is_whitespace()) {
            key.push(c);
        }
        while it.next_if(|&(_, c)| c.is_whitespace()).is_some() {}
        if it.next_if(|&(_, c)| c == '=').is_none() {
            return Err(format!("expected `=` after the keyword at byte {start}"));
        }
        if key.is_empty() {
            return Err(format!("empty keyword at byte {start}"));
        }
        while it.next_if(|&(_, c)| c.is_whitespace()).is_some() {}
        let mut value = String::new();
        let quoted = it.next_if(|&(_, c)| c == '\'').is_some();
        if quoted {
            loop {
                match it.next() {
                    None => return Err(format!("unterminated quoted value for `{key}`")),
                    Some((_, '\\')) => match it.next() {
                        Some((_, c)) => value.push(c),
                        None => return Err(format!("unterminated quoted value for `{key}`")),
                    },
                    Some((_, '\'')) => break,
                    Some((_, c)) => value.push(c),
                }
            }
            // libpq requires a separator after a closing quote; "a='x'b=…" is an error there too.
            if it.next_if(|&(_, c)| !c.is_whitespace()).is_some() {
                return Err(format!("missing space after the quoted value of `{key}`"));
            }
        } else {
            while let Some((_, c)) = it.next_if(|&(_, c)| !c.is_whitespace()) {
                if c == '\\' {
                    if let Some((_, escaped)) = it.next() {
                        value.push(escaped);
                    }
                } else {
                    value.push(c);
                }
            }
        }
        out.push((key, value, quoted));
    }
    Ok(out)
}

/// Quotes a value for a conninfo string when libpq would otherwise misread it. A `;` is quoted
/// too: libpq would not need it, but an unquoted `;` is how an Npgsql string is told apart.
pub(crate) fn quote(value: &str) -> Cow<'_, str> {
    let plain = !value.is_empty()
        && !value
            .chars()
            .any(|c| c.is_whitespace() || matches!(c, '\'' | '\\' | ';'));
    if plain {
        return Cow::Borrowed(value);
    }
    let mut out = String::with_capacity(value.len() + 2);
    out.push('\'');
    for c in value.chars() {
        if c == '\'' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('\'');
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(s: &str) -> Vec<(String, String)> {
        split(s).unwrap_or_else(|e| panic!("{s:?}: {e}"))
    }

    #[test]
    fn splits_plain_quoted_and_escaped_values() {
        let got = pairs(r"host=h  dbname = 'my db' user=a\ b app='it\'s \\ ok' x=''");
        let want = [
            ("host", "h"),
            ("dbname", "my db"),
            ("user", "a b"),
            ("app", r"it's \ ok"),
            ("x", ""),
        ];
        assert_eq!(got.len(), want.len());
        for ((k, v), (wk, wv)) in got.iter().zip(want) {
            assert_eq!((k.as_str(), v.as_str()), (wk, wv));
        }
    }

    #[test]
    fn empty_and_blank_strings_have_no_pairs() {
        assert!(pairs("").is_empty());
        assert!(pairs(" \t\n ").is_empty());
    }

    #[test]
    fn malformed_strings_are_errors_without_values() {
        for (s, needle) in [
            ("host", "expected `=`"),
            ("host=a dbname", "expected `=`"),
            ("=x", "empty keyword"),
            ("dbname='abc", "unterminated"),
            (r"dbname='abc\", "unterminated"),
            ("dbname='a'host=b", "missing space"),
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
            "a b",
            "it's",
            r"back\slash",
            "tab\there",
            "naïve ünïcode",
            "a=b",
        ] {
            let s = format!("k={} z=1", quote(v));
            let got = pairs(&s);
            assert_eq!(got[0].1, v, "{s}");
            assert_eq!(got[1], ("z".into(), "1".into()));
        }
        assert!(matches!(quote("simple"), Cow::Borrowed(_)));
    }
}
