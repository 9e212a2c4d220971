//! `pgentra token`: prints an access token, or its decoded claims, from the credential chain.

use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use pgentra_token::{
    AccessToken, Claims, Cloud, CredentialKind, DefaultCredential, DefaultCredentialOptions,
    EntraOptions, Env, HttpOptions, TokenSource, UserAssignedId,
};

use crate::cli::{CloudChoice, CredentialChoice, Global, OutputFormat, TokenArgs};
use crate::output::print_record;

pub async fn run(global: &Global, args: TokenArgs) -> anyhow::Result<ExitCode> {
    let env = Env::from_process();
    let cloud = cloud(args.cloud);
    let scope = args
        .scope
        .clone()
        .unwrap_or_else(|| cloud.ossrdbms_scope().to_string());
    let token = fetch(&env, &args, cloud, &scope).await?;
    if args.decode {
        print_claims(global.output, &token)?;
    } else {
        match global.output {
            OutputFormat::Table | OutputFormat::Tsv => println!("{}", token.secret()),
            OutputFormat::Json => println!(
                "{}",
                serde_json::json!({
                    "access_token": token.secret(),
                    "expires_on": epoch(token.expires_on()),
                    "scope": scope,
                })
            ),
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// One token from the chosen credential.
pub async fn fetch(
    env: &Env,
    args: &TokenArgs,
    cloud: Cloud,
    scope: &str,
) -> anyhow::Result<AccessToken> {
    let mut http = HttpOptions::default();
    if let Some(path) = &args.ca_file {
        http = http
            .add_root_pem_file(path)
            .with_context(|| format!("read CA file {}", path.display()))?;
    }
    let mut options = DefaultCredentialOptions::default()
        .with_entra(EntraOptions::default().with_cloud(cloud).with_http(http));
    if let Some(id) = &args.client_id {
        options = options.with_managed_identity(UserAssignedId::ClientId(id.clone()));
    }
    if let Some(kind) = kind(args.credential) {
        options = options.with_only(vec![kind]);
    }
    let credential = DefaultCredential::from_env(env, options).context("set up the credential")?;
    credential
        .get_token(scope)
        .await
        .with_context(|| format!("get a token for {scope}"))
}

fn kind(choice: CredentialChoice) -> Option<CredentialKind> {
    match choice {
        CredentialChoice::Default => None,
        CredentialChoice::Environment => Some(CredentialKind::Environment),
        CredentialChoice::WorkloadIdentity => Some(CredentialKind::WorkloadIdentity),
        CredentialChoice::ManagedIdentity => Some(CredentialKind::ManagedIdentity),
        CredentialChoice::AzureCli => Some(CredentialKind::AzureCli),
    }
}

pub fn cloud(choice: CloudChoice) -> Cloud {
    match choice {
        CloudChoice::Public => Cloud::Public,
        CloudChoice::China => Cloud::China,
        CloudChoice::UsGov => Cloud::UsGovernment,
    }
}

fn epoch(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs()
}

/// The claims a user needs to diagnose a login: who, for what, from where, until when.
pub fn claim_rows(claims: &Claims, expires_on: SystemTime) -> Vec<(&'static str, String)> {
    let s = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    let remaining = expires_on
        .duration_since(SystemTime::now())
        .map(|d| format!("{} s", d.as_secs()))
        .unwrap_or_else(|_| "expired".into());
    vec![
        (
            "type",
            if claims.is_app() {
                "app".into()
            } else {
                "user".into()
            },
        ),
        ("aud", s(&claims.aud)),
        ("iss", s(&claims.iss)),
        ("tid", s(&claims.tid)),
        ("oid", s(&claims.oid)),
        ("appid", s(&claims.appid)),
        ("upn", s(&claims.upn)),
        ("idtyp", s(&claims.idtyp)),
        ("xms_mirid", s(&claims.xms_mirid)),
        ("expires_on", epoch(expires_on).to_string()),
        ("expires_in", remaining),
    ]
}

fn print_claims(format: OutputFormat, token: &AccessToken) -> anyhow::Result<()> {
    let claims = token.claims().context("decode the token's claims")?;
    print_record(format, &claim_rows(&claims, token.expires_on()));
    Ok(())
}
