//! Rendering results as a table or JSON; commands build rows, never print formats themselves.

use crate::cli::OutputFormat;

/// Key/value results (the common case: one record).
pub fn print_record(format: OutputFormat, rows: &[(&str, String)]) {
    match format {
        OutputFormat::Json => {
            let map: serde_json::Map<String, serde_json::Value> = rows
                .iter()
                .map(|(k, v)| (k.to_string(), serde_json::Value::String(v.clone())))
                .collect();
            println!("{}", serde_json::Value::Object(map));
        }
        OutputFormat::Table => {
            let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
            for (k, v) in rows {
                println!("{k:<width$}  {v}");
            }
        }
    }
}

/// A value as a POSIX shell word, quoted only when it must be.
pub fn shell_quote(v: &str) -> String {
    if !v.is_empty()
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:@%+,".contains(c))
    {
        v.to_string()
    } else {
        format!("'{}'", v.replace('\'', "'\\''"))
    }
}
