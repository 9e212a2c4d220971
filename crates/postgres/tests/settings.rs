//! Table tests for Service Connector settings: every client type × identity kind rendered
//! exactly as the documentation (spec §9.1) shows, parsed back, and malformed inputs rejected
//! with an error naming the variable.

use std::collections::BTreeMap;

use pgentra_postgres::settings::{
    ClientSecret, ClientType, ConnectionSettings, Identity, SettingsError, SslMode,
};
use proptest::prelude::*;

const HOST: &str = "srv.postgres.database.azure.com";
const CLIENT_ID: &str = "2f9a6f0b-1111-4c1e-9d5a-0c5f3f3c1a01";
const TENANT_ID: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
const SECRET: &str = "s3cr3t~Value.With_Chars";

fn identities() -> [Identity; 3] {
    [
        Identity::SystemAssigned,
        Identity::UserAssigned {
            client_id: CLIENT_ID.into(),
        },
        Identity::ServicePrincipal {
            tenant_id: TENANT_ID.into(),
            client_id: CLIENT_ID.into(),
            secret: ClientSecret::new(SECRET),
        },
    ]
}

fn documented(client_type: ClientType, identity: Identity) -> ConnectionSettings {
    ConnectionSettings {
        host: HOST.into(),
        port: 5432,
        database: "db".into(),
        user: Some("aad_conn".into()),
        ssl_mode: SslMode::Require,
        client_type,
        identity,
    }
}

/// The system-assigned variables of spec §9.1, verbatim (placeholders filled in).
fn expected_base(ct: ClientType) -> Vec<(&'static str, String)> {
    let cs = "AZURE_POSTGRESQL_CONNECTIONSTRING";
    match ct {
        ClientType::Dotnet => vec![(
            cs,
            format!("Server={HOST};Database=db;Port=5432;Ssl Mode=Require;User Id=aad_conn;"),
        )],
        ClientType::Java => vec![(
            cs,
            format!("jdbc:postgresql://{HOST}:5432/db?sslmode=require&user=aad_conn"),
        )],
        ClientType::SpringBoot => vec![
            (
                "spring.datasource.azure.passwordless-enabled",
                "true".into(),
            ),
            (
                "spring.datasource.url",
                format!("jdbc:postgresql://{HOST}:5432/db?sslmode=require"),
            ),
            ("spring.datasource.username", "aad_conn".into()),
        ],
        ClientType::Python => vec![(
            cs,
            format!("dbname=db host={HOST} port=5432 sslmode=require user=aad_conn"),
        )],
        ClientType::Django => vec![
            ("AZURE_POSTGRESQL_NAME", "db".into()),
            ("AZURE_POSTGRESQL_HOST", HOST.into()),
            ("AZURE_POSTGRESQL_USER", "aad_conn".into()),
        ],
        ClientType::Go => vec![(
            cs,
            format!("host={HOST} dbname=db sslmode=require user=aad_conn"),
        )],
        ClientType::Nodejs => vec![
            ("AZURE_POSTGRESQL_HOST", HOST.into()),
            ("AZURE_POSTGRESQL_USER", "aad_conn".into()),
            ("AZURE_POSTGRESQL_DATABASE", "db".into()),
            ("AZURE_POSTGRESQL_PORT", "5432".into()),
            ("AZURE_POSTGRESQL_SSL", "true".into()),
        ],
        ClientType::Php | ClientType::Ruby => vec![(
            cs,
            format!("host={HOST} port=5432 dbname=db sslmode=require user=aad_conn"),
        )],
        ClientType::None => vec![
            ("AZURE_POSTGRESQL_HOST", HOST.into()),
            ("AZURE_POSTGRESQL_USERNAME", "aad_conn".into()),
            ("AZURE_POSTGRESQL_DATABASE", "db".into()),
            ("AZURE_POSTGRESQL_PORT", "5432".into()),
            ("AZURE_POSTGRESQL_SSL", "true".into()),
        ],
    }
}

/// The identity variables of spec §9.1 for user-assigned MI and service principal.
fn expected_identity(ct: ClientType, identity: &Identity) -> Vec<(&'static str, String)> {
    let spring = ct == ClientType::SpringBoot;
    match identity {
        Identity::SystemAssigned => vec![],
        Identity::UserAssigned { .. } if spring => vec![
            ("spring.cloud.azure.credential.client-id", CLIENT_ID.into()),
            (
                "spring.cloud.azure.credential.client-managed-identity-enabled",
                "true".into(),
            ),
        ],
        Identity::UserAssigned { .. } => vec![("AZURE_POSTGRESQL_CLIENTID", CLIENT_ID.into())],
        Identity::ServicePrincipal { .. } if spring => vec![
            ("spring.cloud.azure.credential.client-id", CLIENT_ID.into()),
            ("spring.cloud.azure.credential.client-secret", SECRET.into()),
            ("spring.cloud.azure.credential.tenant-id", TENANT_ID.into()),
        ],
        Identity::ServicePrincipal { .. } => vec![
            ("AZURE_POSTGRESQL_CLIENTID", CLIENT_ID.into()),
            ("AZURE_POSTGRESQL_CLIENTSECRET", SECRET.into()),
            ("AZURE_POSTGRESQL_TENANTID", TENANT_ID.into()),
        ],
    }
}

/// What auto-detection reports for variables rendered as `ct`.
fn detected(ct: ClientType) -> ClientType {
    // PHP and Ruby are documented with byte-identical variables.
    if ct == ClientType::Ruby {
        ClientType::Php
    } else {
        ct
    }
}

#[test]
fn every_client_type_and_identity_renders_as_documented_and_parses_back() {
    let mut cases = 0;
    for ct in ClientType::ALL {
        for identity in identities() {
            let settings = documented(ct, identity.clone());
            let rendered = settings.render();
            let mut want = expected_base(ct);
            want.extend(expected_identity(ct, &identity));
            let got: Vec<(&str, &str)> = rendered.iter().collect();
            let want: Vec<(&str, &str)> = want.iter().map(|(k, v)| (*k, v.as_str())).collect();
            assert_eq!(got, want, "{ct} / {}", identity.kind());

            let strict = ConnectionSettings::from_env_as(ct, &rendered)
                .unwrap_or_else(|e| panic!("{ct} / {}: {e}", identity.kind()));
            assert_eq!(strict, settings, "{ct} / {}", identity.kind());

            let auto = ConnectionSettings::from_env(&rendered)
                .unwrap_or_else(|e| panic!("{ct} / {}: {e}", identity.kind()));
            assert_eq!(auto.client_type, detected(ct), "{ct} / {}", identity.kind());
            assert_eq!(
                ConnectionSettings {
                    client_type: ct,
                    ..auto
                },
                settings
            );
            cases += 1;
        }
    }
    assert_eq!(cases, 30);
}

#[test]
fn unrelated_variables_are_ignored() {
    for ct in ClientType::ALL {
        let mut env: BTreeMap<String, String> = documented(ct, Identity::SystemAssigned)
            .render()
            .into_vec()
            .into_iter()
            .collect();
        env.insert("PATH".into(), "/usr/bin".into());
        env.insert("AZURE_CLIENT_ID".into(), "someone-else".into());
        env.insert("IDENTITY_ENDPOINT".into(), "http://127.0.0.1:1/msi".into());
        env.insert(
            "spring.datasource.hikari.maximum-pool-size".into(),
            "5".into(),
        );
        if ct != ClientType::SpringBoot {
            env.retain(|k, _| !k.starts_with("spring."));
        }
        let s = ConnectionSettings::from_env(&env).unwrap();
        assert_eq!(s.client_type, detected(ct));
    }
}

#[test]
fn unusual_values_round_trip_through_every_client_type() {
    let hosts = ["127.0.0.1", "::1", "pg.internal", "/var/run/postgresql"];
    let dbs = ["db", "my db", "it's", "a;b\"c", "ünïcödé", "x=y&z?"];
    let users = [
        None,
        Some("aad_conn"),
        Some("user@server"),
        Some("it's me; \"quoted\""),
    ];
    let modes = [
        SslMode::Disable,
        SslMode::Prefer,
        SslMode::Require,
        SslMode::VerifyCa,
        SslMode::VerifyFull,
    ];
    let mut n = 0;
    for ct in ClientType::ALL {
        for (i, host) in hosts.iter().enumerate() {
            for (j, db) in dbs.iter().enumerate() {
                let s = ConnectionSettings {
                    host: (*host).into(),
                    port: [5432, 6432, 1, 65535][(i + j) % 4],
                    database: (*db).into(),
                    user: users[(i + j) % users.len()].map(Into::into),
                    ssl_mode: modes[(i * 3 + j) % modes.len()],
                    client_type: ct,
                    identity: identities()[(i + j) % 3].clone(),
                };
                let vars = s.render();
                let back = ConnectionSettings::from_env_as(ct, &vars)
                    .unwrap_or_else(|e| panic!("{ct}: {vars:?}: {e}"));
                assert_eq!(back, s, "{ct}: {vars:?}");
                let auto = ConnectionSettings::from_env(&vars)
                    .unwrap_or_else(|e| panic!("{ct}: {vars:?}: {e}"));
                assert_eq!(
                    ConnectionSettings {
                        client_type: ct,
                        ..auto
                    },
                    s,
                    "{ct}: {vars:?}"
                );
                n += 1;
            }
        }
    }
    assert_eq!(n, 10 * 4 * 6);
}

#[test]
fn legacy_mixed_case_names_and_single_server_user_are_read() {
    let env = [
        (
            "Azure_POSTGRESQL_CONNECTIONSTRING",
            "Server=srv.postgres.database.azure.com;Database=db;Port=5432;Ssl Mode=Require;User Id=me@srv;",
        ),
        ("Azure_POSTGRESQL_CLIENTID", CLIENT_ID),
    ];
    let s = ConnectionSettings::from_env(env).unwrap();
    assert_eq!(s.client_type, ClientType::Dotnet);
    assert_eq!(s.user.as_deref(), Some("me@srv"));
    assert_eq!(
        s.identity,
        Identity::UserAssigned {
            client_id: CLIENT_ID.into()
        }
    );
    // Rendering writes the current names.
    assert!(
        s.render()
            .get("AZURE_POSTGRESQL_CONNECTIONSTRING")
            .is_some()
    );
}

/// Connection string, detected type, host, port, database, user, sslmode.
type VariantCase = (
    &'static str,
    ClientType,
    &'static str,
    u16,
    &'static str,
    Option<&'static str>,
    SslMode,
);

/// Environment, variable named by the error, phrase in the reason.
type FuzzyCase = (
    Vec<(&'static str, &'static str)>,
    &'static str,
    &'static str,
);

#[test]
fn native_format_variants_parse() {
    let cases: &[VariantCase] = &[
        // .NET: synonyms, odd spacing and case, quoting, no trailing semicolon.
        (
            "host = h ; DB='my db';User ID=\"u;1\";SSLMODE=verifyfull",
            ClientType::Dotnet,
            "h",
            5432,
            "my db",
            Some("u;1"),
            SslMode::VerifyFull,
        ),
        (
            "Server=h;Database=d;Username=u;Port=6432;SslMode=Prefer;",
            ClientType::Dotnet,
            "h",
            6432,
            "d",
            Some("u"),
            SslMode::Prefer,
        ),
        // .NET without Ssl Mode: Npgsql's default is prefer.
        (
            "Server=h;Database=d;",
            ClientType::Dotnet,
            "h",
            5432,
            "d",
            None,
            SslMode::Prefer,
        ),
        // JDBC: ssl=true without sslmode means verify-full; the documented plugin is accepted.
        (
            "jdbc:postgresql://h/d?ssl=true&user=u&authenticationPluginClassName=com.azure.identity.extensions.jdbc.postgresql.AzurePostgresqlAuthenticationPlugin",
            ClientType::Java,
            "h",
            5432,
            "d",
            Some("u"),
            SslMode::VerifyFull,
        ),
        (
            "jdbc:postgresql://h:1/d?ssl=false&sslmode=require",
            ClientType::Java,
            "h",
            1,
            "d",
            None,
            SslMode::Require,
        ),
        // libpq: quoting and escapes, keywords in an undocumented order read as python.
        (
            r"user='a b' sslmode=verify-ca dbname=d\ x host=h",
            ClientType::Python,
            "h",
            5432,
            "d x",
            Some("a b"),
            SslMode::VerifyCa,
        ),
        (
            "host=h dbname=d",
            ClientType::Go,
            "h",
            5432,
            "d",
            None,
            SslMode::Prefer,
        ),
        (
            "host=h port=7 dbname=d user=u sslmode=disable",
            ClientType::Php,
            "h",
            7,
            "d",
            Some("u"),
            SslMode::Disable,
        ),
    ];
    for (cs, ct, host, port, db, user, mode) in cases {
        let s = ConnectionSettings::from_env([("AZURE_POSTGRESQL_CONNECTIONSTRING", *cs)])
            .unwrap_or_else(|e| panic!("{cs}: {e}"));
        assert_eq!(s.client_type, *ct, "{cs}");
        assert_eq!(
            (
                s.host.as_str(),
                s.port,
                s.database.as_str(),
                s.user.as_deref(),
                s.ssl_mode
            ),
            (*host, *port, *db, *user, *mode),
            "{cs}"
        );
    }
}

#[test]
fn separate_variable_variants_parse() {
    // Node: SSL=false is disable; an sslmode name is accepted as well.
    let s = ConnectionSettings::from_env([
        ("AZURE_POSTGRESQL_HOST", "h"),
        ("AZURE_POSTGRESQL_DATABASE", "d"),
        ("AZURE_POSTGRESQL_PORT", "6432"),
        ("AZURE_POSTGRESQL_SSL", "FALSE"),
    ])
    .unwrap();
    assert_eq!(s.client_type, ClientType::Nodejs);
    assert_eq!((s.port, s.ssl_mode, s.user), (6432, SslMode::Disable, None));
    // Django without PORT/SSL: settings.py's documented 5432 and require.
    let s = ConnectionSettings::from_env([
        ("AZURE_POSTGRESQL_HOST", "h"),
        ("AZURE_POSTGRESQL_NAME", "d"),
    ])
    .unwrap();
    assert_eq!(s.client_type, ClientType::Django);
    assert_eq!((s.port, s.ssl_mode), (5432, SslMode::Require));
    // Spring: relaxed environment names and Spring Cloud Azure's own MI flag spelling.
    let s = ConnectionSettings::from_env([
        ("SPRING_DATASOURCE_AZURE_PASSWORDLESSENABLED", "TRUE"),
        (
            "SPRING_DATASOURCE_URL",
            "jdbc:postgresql://h:5432/d?sslmode=require&user=u",
        ),
        ("spring.cloud.azure.credential.client-id", CLIENT_ID),
        (
            "spring.cloud.azure.credential.managed-identity-enabled",
            "true",
        ),
    ])
    .unwrap();
    assert_eq!(s.client_type, ClientType::SpringBoot);
    assert_eq!(s.user.as_deref(), Some("u"));
    assert_eq!(
        s.identity,
        Identity::UserAssigned {
            client_id: CLIENT_ID.into()
        }
    );
}

fn missing(var: &str, by: Option<&str>) -> SettingsError {
    SettingsError::Missing {
        variable: var.into(),
        needed_by: by.map(Into::into),
    }
}

fn unexpected(var: &str, ct: ClientType) -> SettingsError {
    SettingsError::Unexpected {
        variable: var.into(),
        client_type: ct,
    }
}

fn password(var: &str, what: &str) -> SettingsError {
    SettingsError::PasswordAuth {
        variable: var.into(),
        what: what.into(),
    }
}

/// An `Invalid` error whose reason contains the needle.
fn invalid_with(err: &SettingsError, var: &str, needle: &str) -> bool {
    matches!(err, SettingsError::Invalid { variable, reason } if variable == var && reason.contains(needle))
}

const CS: &str = "AZURE_POSTGRESQL_CONNECTIONSTRING";
const GO_CS: &str = "host=h dbname=d sslmode=require user=u";

#[test]
fn malformed_inputs_give_errors_naming_the_variable() {
    use ClientType as C;
    let exact: Vec<(Vec<(&str, &str)>, SettingsError)> = vec![
        (vec![], SettingsError::NotConfigured),
        (vec![("PATH", "/bin")], SettingsError::NotConfigured),
        (
            vec![("AZURE_POSTGRESQL_CLIENTID", CLIENT_ID)],
            SettingsError::NotConfigured,
        ),
        (
            vec![("AZURE_POSTGRESQL_FOO", "x")],
            SettingsError::Unknown {
                variable: "AZURE_POSTGRESQL_FOO".into(),
            },
        ),
        (
            vec![("spring.datasource.azure.mystery", "x")],
            SettingsError::Unknown {
                variable: "spring.datasource.azure.mystery".into(),
            },
        ),
        // Password authentication, in every place one can hide.
        (
            vec![(CS, GO_CS), ("AZURE_POSTGRESQL_PASSWORD", "pw")],
            password("AZURE_POSTGRESQL_PASSWORD", "a password variable"),
        ),
        (
            vec![(CS, "host=h dbname=d password=pw")],
            password(CS, "keyword `password`"),
        ),
        (
            vec![(CS, "Server=h;Database=d;Pwd=pw;")],
            password(CS, "keyword `Password`"),
        ),
        (
            vec![(CS, "jdbc:postgresql://h/d?password=pw")],
            password(CS, "parameter `password`"),
        ),
        (
            vec![
                ("spring.datasource.url", "jdbc:postgresql://h/d"),
                ("spring.datasource.password", "pw"),
            ],
            password("spring.datasource.password", "a password property"),
        ),
        // Identity: Service Connector's three shapes only.
        (
            vec![(CS, GO_CS), ("AZURE_POSTGRESQL_CLIENTSECRET", SECRET)],
            missing(
                "AZURE_POSTGRESQL_CLIENTID",
                Some("AZURE_POSTGRESQL_CLIENTSECRET"),
            ),
        ),
        (
            vec![(CS, GO_CS), ("AZURE_POSTGRESQL_TENANTID", TENANT_ID)],
            missing(
                "AZURE_POSTGRESQL_CLIENTID",
                Some("AZURE_POSTGRESQL_TENANTID"),
            ),
        ),
        (
            vec![
                (CS, GO_CS),
                ("AZURE_POSTGRESQL_CLIENTID", CLIENT_ID),
                ("AZURE_POSTGRESQL_CLIENTSECRET", SECRET),
            ],
            missing(
                "AZURE_POSTGRESQL_TENANTID",
                Some("AZURE_POSTGRESQL_CLIENTSECRET"),
            ),
        ),
        (
            vec![
                (CS, GO_CS),
                ("AZURE_POSTGRESQL_CLIENTID", CLIENT_ID),
                ("AZURE_POSTGRESQL_TENANTID", TENANT_ID),
            ],
            missing(
                "AZURE_POSTGRESQL_CLIENTSECRET",
                Some("AZURE_POSTGRESQL_TENANTID"),
            ),
        ),
        // Variables of another client type.
        (
            vec![(CS, GO_CS), ("AZURE_POSTGRESQL_HOST", "h")],
            unexpected("AZURE_POSTGRESQL_HOST", C::Go),
        ),
        (
            vec![
                ("AZURE_POSTGRESQL_HOST", "h"),
                ("AZURE_POSTGRESQL_NAME", "d"),
                ("AZURE_POSTGRESQL_DATABASE", "d"),
            ],
            unexpected("AZURE_POSTGRESQL_DATABASE", C::Django),
        ),
        (
            vec![
                ("AZURE_POSTGRESQL_HOST", "h"),
                ("AZURE_POSTGRESQL_DATABASE", "d"),
                ("AZURE_POSTGRESQL_USER", "u"),
                ("AZURE_POSTGRESQL_USERNAME", "u"),
                ("AZURE_POSTGRESQL_PORT", "5432"),
                ("AZURE_POSTGRESQL_SSL", "true"),
            ],
            unexpected("AZURE_POSTGRESQL_USER", C::None),
        ),
        // Missing pieces of the separate-variable types.
        (
            vec![
                ("AZURE_POSTGRESQL_DATABASE", "d"),
                ("AZURE_POSTGRESQL_PORT", "5432"),
                ("AZURE_POSTGRESQL_SSL", "true"),
            ],
            missing("AZURE_POSTGRESQL_HOST", None),
        ),
        (
            vec![
                ("AZURE_POSTGRESQL_HOST", "h"),
                ("AZURE_POSTGRESQL_PORT", "5432"),
                ("AZURE_POSTGRESQL_SSL", "true"),
            ],
            missing("AZURE_POSTGRESQL_DATABASE", None),
        ),
        (
            vec![
                ("AZURE_POSTGRESQL_HOST", "h"),
                ("AZURE_POSTGRESQL_DATABASE", "d"),
                ("AZURE_POSTGRESQL_SSL", "true"),
            ],
            missing("AZURE_POSTGRESQL_PORT", None),
        ),
        (
            vec![
                ("AZURE_POSTGRESQL_HOST", "h"),
                ("AZURE_POSTGRESQL_DATABASE", "d"),
                ("AZURE_POSTGRESQL_PORT", "5432"),
            ],
            missing("AZURE_POSTGRESQL_SSL", None),
        ),
        // Spring.
        (
            vec![("spring.datasource.url", "jdbc:postgresql://h/d")],
            missing(
                "spring.datasource.azure.passwordless-enabled",
                Some("spring.datasource.url"),
            ),
        ),
        (
            vec![("spring.datasource.azure.passwordless-enabled", "true")],
            missing("spring.datasource.url", None),
        ),
        (
            vec![
                ("spring.datasource.azure.passwordless-enabled", "true"),
                ("spring.datasource.url", "jdbc:postgresql://h/d?user=a"),
                ("spring.datasource.username", "b"),
            ],
            SettingsError::Conflict {
                variable: "spring.datasource.username".into(),
                other: "spring.datasource.url".into(),
                reason: "the URL's `user` parameter names another role".into(),
            },
        ),
        (
            vec![
                ("spring.datasource.azure.passwordless-enabled", "true"),
                ("spring.datasource.url", "jdbc:postgresql://h/d"),
                ("spring.cloud.azure.credential.client-secret", SECRET),
            ],
            missing(
                "spring.cloud.azure.credential.client-id",
                Some("spring.cloud.azure.credential.client-secret"),
            ),
        ),
        (
            vec![
                ("spring.datasource.azure.passwordless-enabled", "true"),
                ("spring.datasource.url", "jdbc:postgresql://h/d"),
                ("spring.cloud.azure.credential.client-id", CLIENT_ID),
                ("spring.cloud.azure.credential.client-secret", SECRET),
            ],
            missing(
                "spring.cloud.azure.credential.tenant-id",
                Some("spring.cloud.azure.credential.client-secret"),
            ),
        ),
        (
            vec![
                ("spring.datasource.azure.passwordless-enabled", "true"),
                ("spring.datasource.url", "jdbc:postgresql://h/d"),
                ("spring.cloud.azure.credential.client-id", CLIENT_ID),
                ("spring.cloud.azure.credential.client-secret", SECRET),
                ("spring.cloud.azure.credential.tenant-id", TENANT_ID),
                (
                    "spring.cloud.azure.credential.client-managed-identity-enabled",
                    "true",
                ),
            ],
            SettingsError::Conflict {
                variable: "spring.cloud.azure.credential.client-managed-identity-enabled".into(),
                other: "spring.cloud.azure.credential.client-secret".into(),
                reason: "a client secret means a service principal, not a managed identity".into(),
            },
        ),
        (
            vec![
                ("spring.datasource.azure.passwordless-enabled", "true"),
                ("spring.datasource.url", "jdbc:postgresql://h/d"),
                ("spring.cloud.azure.credential.client-id", CLIENT_ID),
                (
                    "spring.cloud.azure.credential.managed-identity-enabled",
                    "false",
                ),
            ],
            SettingsError::Conflict {
                variable: "spring.cloud.azure.credential.managed-identity-enabled".into(),
                other: "spring.cloud.azure.credential.client-id".into(),
                reason: "a client id without a secret is a managed identity".into(),
            },
        ),
        (
            vec![
                (CS, GO_CS),
                ("spring.datasource.url", "jdbc:postgresql://h/d"),
            ],
            SettingsError::Conflict {
                variable: CS.into(),
                other: "spring.datasource.url".into(),
                reason: "Service Connector sets either AZURE_POSTGRESQL_* variables or Spring \
                         properties for a connection, never both"
                    .into(),
            },
        ),
    ];
    for (env, want) in &exact {
        let got = ConnectionSettings::from_env(env.iter().copied()).expect_err(&format!("{env:?}"));
        assert_eq!(&got, want, "{env:?}");
        if let Some(v) = want.variable() {
            assert!(got.to_string().contains(v), "{got}");
        }
    }

    // Errors whose reason is checked by a phrase.
    let fuzzy: Vec<FuzzyCase> = vec![
        (
            vec![(CS, "host=h dbname=d colour=blue")],
            CS,
            "unknown keyword `colour`",
        ),
        (
            vec![(CS, "host=h host=i dbname=d")],
            CS,
            "sets `host` twice",
        ),
        (vec![(CS, "dbname=d user=u")], CS, "has no host"),
        (vec![(CS, "host=h user=u")], CS, "has no database"),
        (
            vec![(CS, "host=h dbname=d sslmode=allow")],
            CS,
            "unsupported `sslmode` `allow`",
        ),
        (
            vec![(CS, "host=h dbname=d sslmode=")],
            CS,
            "unsupported `sslmode`",
        ),
        (vec![(CS, "host=a,b dbname=d")], CS, "several hosts"),
        (
            vec![(CS, "host=h dbname=d port=0")],
            CS,
            "not a port number",
        ),
        (
            vec![(CS, "host=h dbname=d port=65536")],
            CS,
            "not a port number",
        ),
        (vec![(CS, "host=h dbname='d")], CS, "unterminated"),
        (vec![(CS, "host=h dbname=''")], CS, "empty `dbname`"),
        (
            vec![(CS, "Server=h;Host=i;Database=d;")],
            CS,
            "sets `Server` twice",
        ),
        (
            vec![(CS, "Server=h;Database=d;Pooling=true;")],
            CS,
            "unknown keyword `pooling`",
        ),
        (vec![(CS, "Server=h;Database=\"d;")], CS, "unterminated"),
        (
            vec![(CS, "Server=h;Database=d;Port=x;")],
            CS,
            "not a port number",
        ),
        (
            vec![(CS, "jdbc:postgresql://h/d?currentSchema=x")],
            CS,
            "unknown parameter `currentSchema`",
        ),
        (
            vec![(
                CS,
                "jdbc:postgresql://h/d?authenticationPluginClassName=com.example.Other",
            )],
            CS,
            "other than",
        ),
        (vec![(CS, "jdbc:postgresql://h1,h2/d")], CS, "several hosts"),
        (
            vec![(CS, "jdbc:postgresql://h/d?ssl=maybe")],
            CS,
            "neither true nor false",
        ),
        (
            vec![(CS, "jdbc:postgresql://h/d?user=a&user=b")],
            CS,
            "sets `user` twice",
        ),
        (
            vec![(CS, GO_CS), ("AZURE_POSTGRESQL_CLIENTID", "")],
            "AZURE_POSTGRESQL_CLIENTID",
            "is empty",
        ),
        (
            vec![(CS, GO_CS), ("AZURE_POSTGRESQL_CLIENTID", "not an id")],
            "AZURE_POSTGRESQL_CLIENTID",
            "is not an id",
        ),
        (
            vec![
                (CS, GO_CS),
                ("AZURE_POSTGRESQL_CLIENTID", CLIENT_ID),
                ("AZURE_POSTGRESQL_CLIENTSECRET", ""),
                ("AZURE_POSTGRESQL_TENANTID", TENANT_ID),
            ],
            "AZURE_POSTGRESQL_CLIENTSECRET",
            "is empty",
        ),
        (
            vec![
                ("AZURE_POSTGRESQL_HOST", "h"),
                ("AZURE_POSTGRESQL_DATABASE", "d"),
                ("AZURE_POSTGRESQL_PORT", "99999"),
                ("AZURE_POSTGRESQL_SSL", "true"),
            ],
            "AZURE_POSTGRESQL_PORT",
            "not a port number",
        ),
        (
            vec![
                ("AZURE_POSTGRESQL_HOST", "h"),
                ("AZURE_POSTGRESQL_DATABASE", "d"),
                ("AZURE_POSTGRESQL_PORT", "5432"),
                ("AZURE_POSTGRESQL_SSL", "yes"),
            ],
            "AZURE_POSTGRESQL_SSL",
            "neither true, false nor an sslmode",
        ),
        (
            vec![
                ("AZURE_POSTGRESQL_HOST", " "),
                ("AZURE_POSTGRESQL_NAME", "d"),
            ],
            "AZURE_POSTGRESQL_HOST",
            "is empty",
        ),
        (
            vec![
                ("AZURE_POSTGRESQL_HOST", "h"),
                ("AZURE_POSTGRESQL_NAME", ""),
            ],
            "AZURE_POSTGRESQL_NAME",
            "is empty",
        ),
        (
            vec![
                ("spring.datasource.azure.passwordless-enabled", "false"),
                ("spring.datasource.url", "jdbc:postgresql://h/d"),
            ],
            "spring.datasource.azure.passwordless-enabled",
            "not passwordless",
        ),
        (
            vec![
                ("spring.datasource.azure.passwordless-enabled", "yes"),
                ("spring.datasource.url", "jdbc:postgresql://h/d"),
            ],
            "spring.datasource.azure.passwordless-enabled",
            "neither true nor false",
        ),
        (
            vec![
                ("spring.datasource.azure.passwordless-enabled", "true"),
                ("spring.datasource.url", "postgresql://h/d"),
            ],
            "spring.datasource.url",
            "not a `jdbc:postgresql://` URL",
        ),
    ];
    for (env, var, needle) in &fuzzy {
        let got = ConnectionSettings::from_env(env.iter().copied()).expect_err(&format!("{env:?}"));
        assert!(invalid_with(&got, var, needle), "{env:?}: {got:?}");
        assert_eq!(got.variable(), Some(*var));
    }
}

#[test]
fn strict_parsing_rejects_variables_of_another_client_type() {
    let go = [(CS, GO_CS)];
    let err = ConnectionSettings::from_env_as(ClientType::Java, go).unwrap_err();
    assert!(
        invalid_with(&err, CS, "not a `jdbc:postgresql://` URL"),
        "{err:?}"
    );
    let err = ConnectionSettings::from_env_as(ClientType::Nodejs, go).unwrap_err();
    assert_eq!(err, unexpected(CS, ClientType::Nodejs));
    let err = ConnectionSettings::from_env_as(ClientType::Dotnet, [("AZURE_POSTGRESQL_HOST", "h")])
        .unwrap_err();
    assert_eq!(err, unexpected("AZURE_POSTGRESQL_HOST", ClientType::Dotnet));
    let err = ConnectionSettings::from_env_as(ClientType::Python, [("PATH", "/bin")]).unwrap_err();
    assert_eq!(err, missing(CS, None));
    let err = ConnectionSettings::from_env_as(
        ClientType::Go,
        [
            (CS, GO_CS),
            ("spring.datasource.url", "jdbc:postgresql://h/d"),
        ],
    )
    .unwrap_err();
    assert_eq!(err, unexpected("spring.datasource.url", ClientType::Go));
}

#[test]
fn secrets_never_appear_in_debug_display_or_errors() {
    for ct in ClientType::ALL {
        let s = documented(ct, identities()[2].clone());
        assert!(!format!("{s:?}").contains(SECRET));
        assert!(!s.to_string().contains(SECRET));
        let vars = s.render();
        assert!(!format!("{vars:?}").contains(SECRET), "{ct}");
        // ...but the rendered variables do carry it, for the application to use.
        assert!(vars.iter().any(|(_, v)| v == SECRET), "{ct}");
        // An error elsewhere in the same environment does not echo the secret.
        let mut env = vars.into_vec();
        for (k, v) in env.iter_mut() {
            if k.ends_with("TENANTID") || k.ends_with("tenant-id") {
                *v = "bad tenant".into();
            }
        }
        let err = ConnectionSettings::from_env(env).unwrap_err();
        assert!(!format!("{err} {err:?}").contains(SECRET), "{ct}: {err}");
    }
    // A password inside a connection string is refused without echoing it.
    let err = ConnectionSettings::from_env([(CS, "host=h dbname=d password=hunter2")]).unwrap_err();
    assert!(!format!("{err} {err:?}").contains("hunter2"));
}

#[test]
fn client_type_names_parse_and_display() {
    for ct in ClientType::ALL {
        assert_eq!(ct.to_string().parse::<ClientType>().unwrap(), ct);
        assert_eq!(
            ct.as_str().to_uppercase().parse::<ClientType>().unwrap(),
            ct
        );
    }
    assert_eq!(
        "springBoot".parse::<ClientType>().unwrap(),
        ClientType::SpringBoot
    );
    assert_eq!(
        "spring-boot".parse::<ClientType>().unwrap(),
        ClientType::SpringBoot
    );
    let err = "cobol".parse::<ClientType>().unwrap_err();
    assert_eq!(
        err,
        SettingsError::UnknownClientType {
            value: "cobol".into()
        }
    );
    assert_eq!(
        "verify-full".parse::<SslMode>().unwrap(),
        SslMode::VerifyFull
    );
    assert_eq!("VerifyCA".parse::<SslMode>().unwrap(), SslMode::VerifyCa);
    assert!("allow".parse::<SslMode>().is_err());
}

#[test]
fn display_summarises_without_secrets() {
    let s = documented(ClientType::Python, identities()[2].clone());
    assert_eq!(
        s.to_string(),
        format!(
            "aad_conn@{HOST}:5432/db (sslmode=require, service-principal {CLIENT_ID} in tenant {TENANT_ID})"
        )
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Any printable database and role name survives render → parse in every client type.
    #[test]
    fn arbitrary_names_round_trip(
        db in "[^\\s\\x00-\\x1f][ -~\\u{a0}-\\u{17f}]{0,16}",
        user in proptest::option::of("[^\\s\\x00-\\x1f][ -~\\u{a0}-\\u{17f}]{0,16}"),
        host in "[a-z0-9]([a-z0-9.-]{0,20}[a-z0-9])?",
        port in 1u16..,
    ) {
        for ct in ClientType::ALL {
            let s = ConnectionSettings {
                host: host.clone(),
                port,
                database: db.clone(),
                user: user.clone(),
                ssl_mode: SslMode::VerifyFull,
                client_type: ct,
                identity: Identity::SystemAssigned,
            };
            let vars = s.render();
            let back = ConnectionSettings::from_env_as(ct, &vars);
            prop_assert_eq!(back.as_ref(), Ok(&s), "{} {:?}", ct, vars);
        }
    }

    /// Arbitrary connection strings never panic the parser, and errors name a variable.
    #[test]
    fn arbitrary_strings_never_panic(s in "\\PC{0,80}") {
        match ConnectionSettings::from_env([(CS, s.as_str())]) {
            Ok(settings) => prop_assert!(!settings.host.is_empty()),
            Err(e) => prop_assert_eq!(e.variable(), Some(CS)),
        }
    }
}
