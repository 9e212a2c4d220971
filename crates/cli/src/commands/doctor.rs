//! `pgentra doctor`: one line per check, ✓ or ✗ with the fix, for a passwordless connection
//! described by the Service Connector variables. Exit code 1 when any check fails.

use std::process::ExitCode;
use std::time::SystemTime;

use pgentra_postgres::{ConnectionSettings, SslMode, Tls};
use pgentra_token::{Claims, Cloud, EntraOptions, Env, HttpOptions, TokenSource};

use crate::cli::{DoctorArgs, Global, OutputFormat};
use crate::stack::literal;

struct Report {
    format: OutputFormat,
    checks: Vec<serde_json::Value>,
    failed: bool,
}

impl Report {
    fn pass(&mut self, check: &str, detail: impl Into<String>) {
        self.line(true, check, detail.into(), None);
    }

    fn fail(&mut self, check: &str, detail: impl Into<String>, fix: impl Into<String>) {
        self.failed = true;
        self.line(false, check, detail.into(), Some(fix.into()));
    }

    fn line(&mut self, ok: bool, check: &str, detail: String, fix: Option<String>) {
        if self.format != OutputFormat::Json {
            let mark = if ok { "✓" } else { "✗" };
            match &fix {
                Some(fix) => println!("{mark} {check}: {detail} — {fix}"),
                None => println!("{mark} {check}: {detail}"),
            }
        }
        self.checks
            .push(serde_json::json!({"check": check, "ok": ok, "detail": detail, "fix": fix}));
    }

    fn finish(self) -> ExitCode {
        if self.format == OutputFormat::Json {
            println!(
                "{}",
                serde_json::json!({"ok": !self.failed, "checks": self.checks})
            );
        }
        if self.failed {
            ExitCode::from(1)
        } else {
            ExitCode::SUCCESS
        }
    }
}

pub async fn run(global: &Global, args: DoctorArgs) -> anyhow::Result<ExitCode> {
    let mut r = Report {
        format: global.output,
        checks: Vec::new(),
        failed: false,
    };
    check(&mut r, &args).await;
    Ok(r.finish())
}

async fn check(r: &mut Report, args: &DoctorArgs) {
    let env = Env::from_process();
    // 1. The variables.
    let settings = match ConnectionSettings::from_process_env() {
        Ok(s) => {
            r.pass(
                "settings",
                format!("{s} (client type {})", s.client_type.as_str()),
            );
            s
        }
        Err(e) => {
            return r.fail(
                "settings",
                e.to_string(),
                "set the AZURE_POSTGRESQL_* variables Service Connector sets for your client type",
            );
        }
    };
    if settings.ssl_mode == SslMode::Disable {
        r.fail(
            "tls",
            "sslmode=disable",
            "Azure requires TLS: use sslmode=require",
        );
    }

    // 2. The token.
    let mut http = HttpOptions::default();
    if let Some(ca) = &args.ca_file {
        match http.clone().add_root_pem_file(ca) {
            Ok(h) => http = h,
            Err(e) => return r.fail("ca file", e.to_string(), "pass a readable PEM file"),
        }
    }
    let token = match &args.token_file {
        Some(path) => match std::fs::read_to_string(path) {
            Ok(t) => {
                r.pass("token", format!("read from {}", path.display()));
                t.trim().to_owned()
            }
            Err(e) => {
                return r.fail(
                    "token",
                    format!("{}: {e}", path.display()),
                    "pass a file holding the token",
                );
            }
        },
        None => {
            let source = pgentra_postgres::token_source_for(
                &settings.identity,
                &env,
                EntraOptions::default().with_http(http),
            );
            let fetched = match source {
                Ok(s) => s.get_token(pgentra_token::OSSRDBMS_SCOPE).await,
                Err(e) => Err(e),
            };
            match fetched {
                Ok(t) => {
                    r.pass(
                        "token",
                        format!("issued for the {} identity", settings.identity.kind()),
                    );
                    t.secret().to_owned()
                }
                Err(e) => {
                    return r.fail("token", e.to_string(), "check the identity variables (IDENTITY_ENDPOINT/IDENTITY_HEADER on App Service, AZURE_POSTGRESQL_CLIENTID for a user-assigned identity)");
                }
            }
        }
    };

    // 3. What the token says.
    let claims = match Claims::decode(&token) {
        Ok(c) => c,
        Err(e) => {
            return r.fail(
                "claims",
                e.to_string(),
                "the password must be the access token exactly as issued",
            );
        }
    };
    let audiences =
        [Cloud::Public, Cloud::China, Cloud::UsGovernment].map(|c| c.ossrdbms_resource());
    match claims.aud.as_deref() {
        Some(aud) if audiences.contains(&aud) => r.pass("audience", aud),
        other => r.fail(
            "audience",
            format!("token is for {}", other.unwrap_or("no audience")),
            format!("request the scope {}", pgentra_token::OSSRDBMS_SCOPE),
        ),
    }
    match claims
        .expires_at()
        .map(|e| e.duration_since(SystemTime::now()))
    {
        Some(Ok(left)) => r.pass("expiry", format!("expires in {} min", left.as_secs() / 60)),
        Some(Err(_)) => r.fail(
            "expiry",
            "the token has expired",
            "fetch a fresh token for every new connection (and check this machine's clock)",
        ),
        None => r.fail("expiry", "no exp claim", "use a token issued by Entra ID"),
    }
    let who = format!(
        "{} token, oid {}, appid {}, upn {}, issuer {}",
        if claims.is_app() { "app" } else { "user" },
        claims.oid.as_deref().unwrap_or("-"),
        claims.appid.as_deref().unwrap_or("-"),
        claims.upn.as_deref().unwrap_or("-"),
        claims.iss.as_deref().unwrap_or("-"),
    );
    if claims.oid.is_some() {
        r.pass("identity", who);
    } else {
        r.fail(
            "identity",
            who,
            "the token has no oid claim: use an Entra access token",
        );
    }

    // 4. The connection.
    let user = settings
        .user
        .clone()
        .or_else(|| pgentra_postgres::user_name_from_claims(&claims))
        .unwrap_or_default();
    let tls = match args
        .ca_file
        .as_ref()
        .map_or_else(Tls::system, Tls::with_ca_file)
    {
        Ok(t) => t,
        Err(e) => return r.fail("tls", e.to_string(), "check the CA file"),
    };
    let connector = match tls.make_connect(settings.ssl_mode) {
        Ok(c) => c,
        Err(e) => return r.fail("tls", e.to_string(), "check the CA file and sslmode"),
    };
    let mut config = tokio_postgres::Config::new();
    config
        .host(&settings.host)
        .port(settings.port)
        .dbname(&settings.database)
        .user(&user)
        .password(&token)
        .application_name("pgentra doctor")
        .connect_timeout(std::time::Duration::from_secs(10))
        .ssl_mode(match settings.ssl_mode {
            SslMode::Disable => tokio_postgres::config::SslMode::Disable,
            SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
            _ => tokio_postgres::config::SslMode::Require,
        });
    let client = match config.connect(connector).await {
        Ok((client, conn)) => {
            tokio::spawn(conn);
            r.pass(
                "connect",
                format!("logged in to {}:{} as {user}", settings.host, settings.port),
            );
            client
        }
        Err(e) => {
            let (detail, fix) = explain(&e, &user, &claims);
            return r.fail("connect", detail, fix);
        }
    };

    // 5. Privileges on the schema's tables.
    let sql = format!(
        "select count(*) filter (where has_table_privilege(c.oid, 'SELECT')), count(*), \
         coalesce(string_agg(c.relname, ', ') filter (where not has_table_privilege(c.oid, 'SELECT')), '') \
         from pg_class c join pg_namespace n on n.oid = c.relnamespace \
         where n.nspname = {} and c.relkind in ('r', 'p', 'v')",
        literal(&args.schema)
    );
    match client.query_one(&sql, &[]).await {
        Ok(row) => {
            let (granted, total, missing): (i64, i64, String) =
                (row.get(0), row.get(1), row.get(2));
            if granted == total {
                r.pass(
                    "privileges",
                    format!(
                        "{user} can read all {total} tables in schema {}",
                        args.schema
                    ),
                );
            } else {
                r.fail(
                    "privileges",
                    format!(
                        "{user} cannot read {} of {total} tables in schema {}: {missing}",
                        total - granted,
                        args.schema
                    ),
                    format!(
                        "as the tables' owner run: pgentra grant --role {user} --schema {}",
                        args.schema
                    ),
                );
            }
        }
        Err(e) => r.fail("privileges", e.to_string(), "check that the schema exists"),
    }
}

/// Maps the server's login error to the cause and the fix (texts of Azure's Entra auth, §8.5).
fn explain(e: &tokio_postgres::Error, user: &str, claims: &Claims) -> (String, String) {
    let Some(db) = e.as_db_error() else {
        return (
            e.to_string(),
            "check host, port and that the server (or gateway) is running".into(),
        );
    };
    let msg = db.message();
    let detail = format!("{}: {msg} (SQLSTATE {})", db.severity(), db.code().code());
    let fix = if msg.contains("has expired") {
        "the token expired: fetch a fresh token for every new connection (and check this machine's clock)".to_owned()
    } else if msg.contains("valid audience") {
        format!("request the scope {}", pgentra_token::OSSRDBMS_SCOPE)
    } else if msg.contains("oid mismatch") || msg.contains("does not match") {
        format!(
            "role {user} is bound to another identity: connect with that identity, or re-create the principal with this token's object id {}",
            claims.oid.as_deref().unwrap_or("-")
        )
    } else if msg.contains("AAD_AUTH_TOKENTYPE_APP_USER") {
        format!(
            "{user} is a service principal's role but the token is a user's: sign in with the application's identity"
        )
    } else if msg.contains("neither an AAD_AUTH_TOKENTYPE_APP_USER") {
        format!("{user} is a user's role but the token is an application's: sign in as the user")
    } else if msg.contains("password authentication failed") || msg.contains("does not exist") {
        format!(
            "no Entra principal named {user} accepts this token: create it with pgaadauth_create_principal_with_oid('{user}', '{}', 'service', false, false) or `pgentra connection create`",
            claims.oid.as_deref().unwrap_or("<object id>")
        )
    } else if msg.contains("invalid format") {
        "pass the access token exactly as returned by the identity endpoint".to_owned()
    } else {
        "see the server's message".to_owned()
    };
    (detail, fix)
}
