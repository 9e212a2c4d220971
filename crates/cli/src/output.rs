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
        OutputFormat::Table | OutputFormat::Tsv => {
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

/// Query results: column names and rows of text values (`None` is SQL NULL).
pub fn print_rows(format: OutputFormat, columns: &[String], rows: &[Vec<Option<String>>]) {
    match format {
        OutputFormat::Json => {
            let items: Vec<serde_json::Value> = rows
                .iter()
                .map(|row| {
                    let map: serde_json::Map<String, serde_json::Value> = columns
                        .iter()
                        .zip(row)
                        .map(|(c, v)| {
                            (
                                c.clone(),
                                v.clone()
                                    .map_or(serde_json::Value::Null, serde_json::Value::String),
                            )
                        })
                        .collect();
                    serde_json::Value::Object(map)
                })
                .collect();
            println!("{}", serde_json::Value::Array(items));
        }
        OutputFormat::Tsv => {
            println!("{}", columns.join("\t"));
            for row in rows {
                let cells: Vec<&str> = row.iter().map(|v| v.as_deref().unwrap_or("")).collect();
                println!("{}", cells.join("\t"));
            }
        }
        OutputFormat::Table => {
            let mut widths: Vec<usize> = columns.iter().map(|c| c.chars().count()).collect();
            for row in rows {
                for (w, v) in widths.iter_mut().zip(row) {
                    *w = (*w).max(v.as_deref().unwrap_or("").chars().count());
                }
            }
            let line = |cells: Vec<&str>| {
                let padded: Vec<String> = cells
                    .iter()
                    .zip(&widths)
                    .map(|(c, w)| format!("{c:<w$}"))
                    .collect();
                println!("{}", padded.join("  ").trim_end());
            };
            line(columns.iter().map(String::as_str).collect());
            let dashes: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
            line(dashes.iter().map(String::as_str).collect());
            for row in rows {
                line(row.iter().map(|v| v.as_deref().unwrap_or("")).collect());
            }
        }
    }
}
