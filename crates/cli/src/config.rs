//! Configuration layering: defaults < config file < environment < flags, with the same key
//! names everywhere. Parsed once into the typed `Cli`; nothing reads env or files afterwards.
//!
//! The file's values become clap defaults before parsing, so clap's own `env` and flag handling
//! put them in the right place and every value is validated by the same parser.

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use clap::{CommandFactory, FromArgMatches};

use crate::cli::Cli;

/// The process environment, captured once.
pub fn process_env() -> HashMap<String, String> {
    std::env::vars().collect()
}

/// Why the command line could not become a `Cli`.
#[derive(Debug)]
pub enum ParseError {
    Clap(clap::Error),
    Config(anyhow::Error),
}

/// Parses argv with env and the config file layered under it.
///
/// `env` is consulted only to find the config file; clap reads `PGENTRA_*` variables itself.
pub fn parse(argv: Vec<OsString>, env: &HashMap<String, String>) -> Result<Cli, ParseError> {
    let mut command = Cli::command();
    if let Some(path) = config_path(&argv, env) {
        let table = load(&path).map_err(ParseError::Config)?;
        command = apply_file(command, &table, &path).map_err(ParseError::Config)?;
    }
    let matches = command
        .try_get_matches_from(argv)
        .map_err(ParseError::Clap)?;
    Cli::from_arg_matches(&matches).map_err(ParseError::Clap)
}

/// `--config FILE`, `--config=FILE`, else `PGENTRA_CONFIG`.
fn config_path(argv: &[OsString], env: &HashMap<String, String>) -> Option<PathBuf> {
    let mut args = argv.iter().skip(1);
    while let Some(arg) = args.next() {
        let arg = arg.to_string_lossy();
        if arg == "--" {
            break;
        }
        if arg == "--config" {
            return args.next().map(PathBuf::from);
        }
        if let Some(v) = arg.strip_prefix("--config=") {
            return Some(PathBuf::from(v));
        }
    }
    env.get("PGENTRA_CONFIG").map(PathBuf::from)
}

fn load(path: &Path) -> anyhow::Result<toml::Table> {
    use anyhow::Context;
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("read config file {}", path.display()))?;
    text.parse::<toml::Table>()
        .with_context(|| format!("parse config file {}", path.display()))
}

/// Turns file keys into argument defaults: top-level keys for global flags, `[command]` tables
/// for a command's flags (nested for nested commands). Unknown keys are errors, so a typo
/// never silently does nothing.
fn apply_file(
    mut command: clap::Command,
    table: &toml::Table,
    path: &Path,
) -> anyhow::Result<clap::Command> {
    for (key, value) in table {
        if let toml::Value::Table(sub) = value {
            let Some(found) = command
                .find_subcommand(key)
                .map(|c| c.get_name().to_string())
            else {
                anyhow::bail!("{}: unknown section [{key}]", path.display());
            };
            let mut err = None;
            command =
                command.mut_subcommand(&found, |sc| match apply_file(sc.clone(), sub, path) {
                    Ok(sc) => sc,
                    Err(e) => {
                        err = Some(e);
                        sc
                    }
                });
            if let Some(e) = err {
                return Err(e);
            }
            continue;
        }
        let id = key.replace('-', "_");
        if key == "config" || !command.get_arguments().any(|a| a.get_id() == id.as_str()) {
            anyhow::bail!(
                "{}: unknown key `{key}`{}",
                path.display(),
                in_command(&command)
            );
        }
        let text = scalar(value).ok_or_else(|| {
            anyhow::anyhow!(
                "{}: key `{key}` must be a string, number or boolean",
                path.display()
            )
        })?;
        command = command.mut_arg(id, |a| a.default_value(text));
    }
    Ok(command)
}

fn in_command(command: &clap::Command) -> String {
    if command.get_name() == "pgentra" {
        String::new()
    } else {
        format!(" in [{}]", command.get_name())
    }
}

fn scalar(value: &toml::Value) -> Option<String> {
    match value {
        toml::Value::String(s) => Some(s.clone()),
        toml::Value::Integer(i) => Some(i.to_string()),
        toml::Value::Float(f) => Some(f.to_string()),
        toml::Value::Boolean(b) => Some(b.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Command, OutputFormat};

    // clap reads `PGENTRA_*` variables from the process environment, which unit tests must not
    // mutate; the env layer is tested by running the binary (tests/cli.rs).
    fn run(args: &[&str], env: &[(&str, &str)], file: Option<&str>) -> Result<Cli, ParseError> {
        let dir = tempfile::tempdir().unwrap();
        let mut argv: Vec<OsString> = vec!["pgentra".into()];
        if let Some(text) = file {
            let path = dir.path().join("pgentra.toml");
            std::fs::write(&path, text).unwrap();
            argv.push("--config".into());
            argv.push(path.into());
        }
        argv.extend(args.iter().map(OsString::from));
        let env: HashMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        parse(argv, &env)
    }

    fn http_addr(cli: &Cli) -> String {
        match &cli.command {
            Command::Emulator(a) => a.http_addr.to_string(),
            other => panic!("unexpected command {other:?}"),
        }
    }

    #[test]
    fn layering_table() {
        struct Case {
            name: &'static str,
            file: Option<&'static str>,
            args: &'static [&'static str],
            want: &'static str,
        }
        let cases = [
            Case {
                name: "default",
                file: None,
                args: &["emulator"],
                want: "127.0.0.1:8080",
            },
            Case {
                name: "file beats default",
                file: Some("[emulator]\nhttp-addr = \"127.0.0.1:9000\"\n"),
                args: &["emulator"],
                want: "127.0.0.1:9000",
            },
            Case {
                name: "flag beats file",
                file: Some("[emulator]\nhttp-addr = \"127.0.0.1:9000\"\n"),
                args: &["emulator", "--http-addr", "127.0.0.1:9001"],
                want: "127.0.0.1:9001",
            },
            Case {
                name: "underscore key works too",
                file: Some("[emulator]\nhttp_addr = \"127.0.0.1:9002\"\n"),
                args: &["emulator"],
                want: "127.0.0.1:9002",
            },
        ];
        for c in cases {
            let cli = run(c.args, &[], c.file).unwrap_or_else(|e| panic!("{}: {e:?}", c.name));
            assert_eq!(http_addr(&cli), c.want, "case {}", c.name);
        }
    }

    #[test]
    fn global_keys_come_from_the_top_level() {
        let cli = run(&["emulator"], &[], Some("output = \"json\"\n")).unwrap();
        assert_eq!(cli.global.output, OutputFormat::Json);
        let cli = run(
            &["--output", "table", "emulator"],
            &[],
            Some("output = \"json\"\n"),
        )
        .unwrap();
        assert_eq!(cli.global.output, OutputFormat::Table);
    }

    #[test]
    fn unknown_keys_and_sections_are_errors_naming_them() {
        let err = run(&["emulator"], &[], Some("[emulator]\nhttp-adr = \"x\"\n")).unwrap_err();
        let ParseError::Config(e) = err else {
            panic!("want config error")
        };
        assert!(
            e.to_string()
                .contains("unknown key `http-adr` in [emulator]"),
            "{e}"
        );

        let err = run(&["emulator"], &[], Some("[emulatr]\n")).unwrap_err();
        let ParseError::Config(e) = err else {
            panic!("want config error")
        };
        assert!(e.to_string().contains("unknown section [emulatr]"), "{e}");
    }

    #[test]
    fn invalid_file_values_are_rejected_by_the_same_parser_as_flags() {
        let err = run(
            &["emulator"],
            &[],
            Some("[emulator]\nhttp-addr = \"not an addr\"\n"),
        )
        .unwrap_err();
        assert!(matches!(err, ParseError::Clap(_)));
    }

    #[test]
    fn config_path_from_env_when_no_flag() {
        let env: HashMap<String, String> =
            [("PGENTRA_CONFIG".to_string(), "/x.toml".to_string())].into();
        assert_eq!(
            config_path(&["pgentra".into()], &env),
            Some("/x.toml".into())
        );
        assert_eq!(
            config_path(&["pgentra".into(), "--config=/y.toml".into()], &env),
            Some("/y.toml".into())
        );
    }
}
