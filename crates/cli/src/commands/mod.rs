//! One module per subcommand; each turns typed arguments into library calls.

mod completions;
mod connection;
mod demo;
mod doctor;
pub mod emulator;
mod exec;
mod gateway;
mod grant;
mod proxy;
mod token;
mod up;

use std::process::ExitCode;

use crate::cli::{Cli, Command};

pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Emulator(args) => emulator::run(&cli.global, args).await,
        Command::Gateway(args) => gateway::run(&cli.global, args).await,
        Command::Up(args) => up::run(&cli.global, args).await,
        Command::Connection(cmd) => connection::run(cmd).await,
        Command::Doctor(args) => doctor::run(&cli.global, args).await,
        Command::Demo(args) => demo::run(args).await,
        Command::Exec(args) => exec::run(&cli.global, args).await,
        Command::Grant(args) => grant::run(&cli.global, args).await,
        Command::Proxy(args) => proxy::run(args).await,
        Command::Token(args) => token::run(&cli.global, args).await,
        Command::Completions(args) => completions::run(args),
    }
}

/// Resolves on Ctrl-C or SIGTERM: the signal long-running commands shut down on.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
