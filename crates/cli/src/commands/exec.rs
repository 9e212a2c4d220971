//! `pgentra exec`: run SQL with a passwordless connection and print the result.

use std::process::ExitCode;

use anyhow::Context;

use crate::cli::{ExecArgs, Global};
use crate::{db, output};

pub async fn run(global: &Global, args: ExecArgs) -> anyhow::Result<ExitCode> {
    let sql = match (&args.querytext, &args.file) {
        (Some(q), _) => q.clone(),
        (None, Some(path)) => {
            std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))?
        }
        (None, None) => unreachable!("clap requires --querytext or --file"),
    };
    let client = db::connect(&args.conn).await?;
    let (columns, rows) = db::query(&client, &sql).await?;
    if !columns.is_empty() {
        output::print_rows(global.output, &columns, &rows);
    }
    Ok(ExitCode::SUCCESS)
}
