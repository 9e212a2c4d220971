//! The `pgentra` binary: parses argv, env and the config file once, then hands a typed command to
//! the library crates. No protocol, token or database logic lives here.

mod cli;
mod commands;
mod config;
mod db;
mod exit;
mod output;
mod stack;

use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = match config::parse(std::env::args_os().collect(), &config::process_env()) {
        Ok(cli) => cli,
        Err(e) => return exit::report_parse_error(e),
    };
    init_tracing(cli.global.verbose, cli.global.log_format);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            return exit::report(&anyhow::Error::new(e).context("start the async runtime"), 0);
        }
    };
    let verbose = cli.global.verbose;
    match runtime.block_on(commands::run(cli)) {
        Ok(code) => code,
        Err(e) => exit::report(&e, verbose),
    }
}

fn init_tracing(verbose: u8, format: cli::LogFormat) {
    use tracing_subscriber::EnvFilter;
    let default = match verbose {
        0 => "warn,pgentra=info",
        1 => "info",
        _ => "debug",
    };
    let filter = EnvFilter::try_from_env("PGENTRA_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        cli::LogFormat::Json => builder.json().init(),
        cli::LogFormat::Text => builder.init(),
    }
}
