//! Exit codes and the one-line error report. The codes are documented in docs/cli.md.

use std::process::ExitCode;

use crate::config::ParseError;

/// Success.
pub const OK: u8 = 0;
/// The command ran and failed (a check failed, a query errored, a token was refused).
pub const FAILURE: u8 = 1;
/// Usage error: bad flags, values or config file.
pub const USAGE: u8 = 2;

/// Prints `error: <message>` (the whole cause chain with `-v`) and picks the exit code.
pub fn report(err: &anyhow::Error, verbose: u8) -> ExitCode {
    if verbose > 0 {
        eprintln!("error: {err:#}");
        for cause in err.chain().skip(1) {
            eprintln!("  caused by: {cause}");
        }
    } else {
        // One readable line: the outermost context plus the root cause.
        let root = err.root_cause().to_string();
        let top = err.to_string();
        if top == root {
            eprintln!("error: {top}");
        } else {
            eprintln!("error: {top}: {root}");
        }
    }
    let code = if err.downcast_ref::<UsageError>().is_some() {
        USAGE
    } else {
        FAILURE
    };
    ExitCode::from(code)
}

pub fn report_parse_error(err: ParseError) -> ExitCode {
    match err {
        ParseError::Clap(e) => {
            let _ = e.print();
            ExitCode::from(if e.use_stderr() { USAGE } else { OK })
        }
        ParseError::Config(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(USAGE)
        }
    }
}

/// Marks an error as the user's input being wrong (exit code 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);
