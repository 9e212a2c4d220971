//! The default chain, selected from injected environments (a table), against the emulator.

use std::time::{Duration, SystemTime};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use pgentra_emulator::{Config, EndpointKind, FederatedCredential, Principal, dev};
use pgentra_token::{
    AzureCliOptions, DefaultCredential, DefaultCredentialOptions, EntraOptions, Env, ErrorKind,
    OSSRDBMS_SCOPE, TokenSource, vars,
};
use rcgen::{KeyPair, PKCS_RSA_SHA256, RsaKeySize};

use crate::common::*;

enum Expect {
    Selected(&'static str, &'static str),
    Fails(ErrorKind, &'static [&'static str], &'static [&'static str]),
}

struct Case {
    name: &'static str,
    env: Vec<(&'static str, String)>,
    az_works: bool,
    expect: Expect,
}

#[tokio::test]
async fn chain_selection_table() {
    let issuer_key = KeyPair::generate_rsa_for(&PKCS_RSA_SHA256, RsaKeySize::_2048).unwrap();
    let mut config = Config::default();
    config.federated_credentials.push(FederatedCredential {
        client_id: dev::USER_MI_CLIENT_ID.into(),
        issuer: "https://oidc.test".into(),
        subject: "system:serviceaccount:ns:sa".into(),
        audience: "api://AzureADTokenExchange".into(),
        public_key_pem: Some(issuer_key.public_key_pem()),
        public_key_path: None,
        jwks_url: None,
    });
    let emu = emulator_with(config).await;
    let dir = tempfile::tempdir().unwrap();

    let now = epoch(SystemTime::now());
    let fed = jsonwebtoken::encode(
        &Header::new(Algorithm::RS256),
        &serde_json::json!({"iss": "https://oidc.test", "sub": "system:serviceaccount:ns:sa",
            "aud": "api://AzureADTokenExchange", "iat": now, "exp": now + 3600}),
        &EncodingKey::from_rsa_pem(issuer_key.serialize_pem().as_bytes()).unwrap(),
    )
    .unwrap();
    let fed_file = dir.path().join("fed-token");
    std::fs::write(&fed_file, fed).unwrap();

    let user_jwt = emu.mint_for(
        Principal::User { upn: dev::USER_UPN },
        dev::OSSRDBMS_RESOURCE,
        Duration::from_secs(3600),
    );
    let az_ok = fake_az_ok(dir.path(), &user_jwt, now + 3600);

    let sp = || {
        vec![
            (vars::AZURE_TENANT_ID, emu.tenant_id()),
            (vars::AZURE_CLIENT_ID, dev::SP_CLIENT_ID.to_owned()),
            (vars::AZURE_CLIENT_SECRET, dev::SP_SECRET.to_owned()),
            (vars::AZURE_AUTHORITY_HOST, emu.authority_host()),
        ]
    };
    let app_service = || {
        vec![
            (vars::IDENTITY_ENDPOINT, emu.identity_endpoint()),
            (vars::IDENTITY_HEADER, emu.identity_header()),
        ]
    };
    let wi = vec![
        (vars::AZURE_TENANT_ID, emu.tenant_id()),
        (vars::AZURE_CLIENT_ID, dev::USER_MI_CLIENT_ID.to_owned()),
        (
            vars::AZURE_FEDERATED_TOKEN_FILE,
            fed_file.display().to_string(),
        ),
        (vars::AZURE_AUTHORITY_HOST, emu.authority_host()),
    ];
    let with = |mut a: Vec<(&'static str, String)>, b: Vec<(&'static str, String)>| {
        a.extend(b);
        a
    };
    let one = |k: &'static str, v: &str| vec![(k, v.to_owned())];

    let cases = vec![
        Case {
            name: "service principal from env",
            env: sp(),
            az_works: true,
            expect: Expect::Selected("EnvironmentCredential", dev::SP_OBJECT_ID),
        },
        Case {
            name: "environment comes before managed identity",
            env: with(sp(), app_service()),
            az_works: true,
            expect: Expect::Selected("EnvironmentCredential", dev::SP_OBJECT_ID),
        },
        Case {
            name: "workload identity",
            env: with(wi.clone(), app_service()),
            az_works: true,
            expect: Expect::Selected("WorkloadIdentityCredential", dev::USER_MI_OBJECT_ID),
        },
        Case {
            name: "app service, system-assigned",
            env: app_service(),
            az_works: true,
            expect: Expect::Selected("ManagedIdentityCredential", dev::SYSTEM_MI_OBJECT_ID),
        },
        Case {
            name: "app service, AZURE_CLIENT_ID picks the user-assigned identity",
            env: with(
                app_service(),
                one(vars::AZURE_CLIENT_ID, dev::USER_MI_CLIENT_ID),
            ),
            az_works: true,
            expect: Expect::Selected("ManagedIdentityCredential", dev::USER_MI_OBJECT_ID),
        },
        Case {
            name: "IMDS at the pod identity host",
            env: one(vars::AZURE_POD_IDENTITY_AUTHORITY_HOST, &emu.imds_host()),
            az_works: true,
            expect: Expect::Selected("ManagedIdentityCredential", dev::SYSTEM_MI_OBJECT_ID),
        },
        Case {
            name: "only the Azure CLI",
            env: vec![],
            az_works: true,
            expect: Expect::Selected("AzureCliCredential", dev::USER_OBJECT_ID),
        },
        Case {
            name: "pinned to the CLI despite service principal variables",
            env: with(
                sp(),
                one(vars::AZURE_TOKEN_CREDENTIALS, "AzureCliCredential"),
            ),
            az_works: true,
            expect: Expect::Selected("AzureCliCredential", dev::USER_OBJECT_ID),
        },
        Case {
            name: "dev means developer tools only",
            env: with(app_service(), one(vars::AZURE_TOKEN_CREDENTIALS, "dev")),
            az_works: true,
            expect: Expect::Selected("AzureCliCredential", dev::USER_OBJECT_ID),
        },
        Case {
            name: "prod leaves the CLI out",
            env: one(vars::AZURE_TOKEN_CREDENTIALS, "prod"),
            az_works: true,
            expect: Expect::Fails(
                ErrorKind::ChainExhausted,
                &[
                    "EnvironmentCredential",
                    "WorkloadIdentityCredential",
                    "ManagedIdentityCredential: no managed identity endpoint",
                ],
                &["AzureCliCredential"],
            ),
        },
        Case {
            name: "nothing configured lists every reason",
            env: vec![],
            az_works: false,
            expect: Expect::Fails(
                ErrorKind::ChainExhausted,
                &[
                    "EnvironmentCredential: not configured: AZURE_TENANT_ID, AZURE_CLIENT_ID",
                    "WorkloadIdentityCredential: not configured: AZURE_FEDERATED_TOKEN_FILE",
                    "ManagedIdentityCredential: no managed identity endpoint",
                    "AzureCliCredential: the Azure CLI",
                ],
                &[],
            ),
        },
        Case {
            name: "a credential that reached its endpoint and failed stops the chain",
            env: with(
                app_service(),
                vec![
                    (vars::AZURE_TENANT_ID, emu.tenant_id()),
                    (vars::AZURE_CLIENT_ID, dev::SP_CLIENT_ID.to_owned()),
                    (vars::AZURE_CLIENT_SECRET, "wrong".to_owned()),
                    (vars::AZURE_AUTHORITY_HOST, emu.authority_host()),
                ],
            ),
            az_works: true,
            expect: Expect::Fails(
                ErrorKind::Authentication,
                &["EnvironmentCredential", "AADSTS7000215"],
                &["ManagedIdentityCredential"],
            ),
        },
        Case {
            name: "a broken certificate path stops the chain",
            env: with(
                app_service(),
                vec![
                    (vars::AZURE_TENANT_ID, emu.tenant_id()),
                    (vars::AZURE_CLIENT_ID, dev::SP_CLIENT_ID.to_owned()),
                    (
                        vars::AZURE_CLIENT_CERTIFICATE_PATH,
                        "/nonexistent/sp.pem".to_owned(),
                    ),
                ],
            ),
            az_works: true,
            expect: Expect::Fails(
                ErrorKind::Config,
                &["EnvironmentCredential", "/nonexistent/sp.pem"],
                &[],
            ),
        },
        Case {
            name: "a pinned managed identity reports an absent IMDS as unreachable",
            env: one(vars::AZURE_TOKEN_CREDENTIALS, "ManagedIdentityCredential"),
            az_works: true,
            expect: Expect::Fails(
                ErrorKind::Unreachable,
                &[
                    "ManagedIdentityCredential",
                    "/metadata/identity/oauth2/token",
                ],
                &[],
            ),
        },
    ];

    let closed = closed_url();
    for case in cases {
        // IMDS must never be the real 169.254.169.254: default it to a closed loopback port.
        let mut env: Env = [(
            vars::AZURE_POD_IDENTITY_AUTHORITY_HOST.to_owned(),
            closed.clone(),
        )]
        .into_iter()
        .collect();
        env.extend(case.env.iter().map(|(k, v)| (k.to_string(), v.clone())));
        let az = if case.az_works {
            az_ok.clone()
        } else {
            dir.path().join("no-az-here")
        };
        let mut options = DefaultCredentialOptions::default()
            .with_entra(EntraOptions::default().with_http(http(&emu)))
            .with_cli(AzureCliOptions::default().with_program(az));
        options.entra.http.connect_timeout = Duration::from_secs(2);
        let cred = DefaultCredential::from_env(&env, options)
            .unwrap_or_else(|e| panic!("{}: {e}", case.name));
        emu.clear_requests();
        let result = cred.get_token(OSSRDBMS_SCOPE).await;
        match case.expect {
            Expect::Selected(name, oid) => {
                let tok = result.unwrap_or_else(|e| panic!("{}: {e}", case.name));
                assert_eq!(cred.chain().selected(), Some(name), "{}", case.name);
                assert_eq!(
                    tok.claims().unwrap().oid.as_deref(),
                    Some(oid),
                    "{}",
                    case.name
                );
            }
            Expect::Fails(kind, contains, absent) => {
                let e = result
                    .err()
                    .unwrap_or_else(|| panic!("{}: expected an error", case.name));
                let text = e.to_string();
                assert_eq!(e.kind(), kind, "{}: {text}", case.name);
                for c in contains {
                    assert!(text.contains(c), "{}: missing {c:?} in:\n{text}", case.name);
                }
                for a in absent {
                    assert!(
                        !text.contains(a),
                        "{}: unexpected {a:?} in:\n{text}",
                        case.name
                    );
                }
                assert!(!text.contains(dev::SP_SECRET), "{}", case.name);
                if case.name.contains("stops the chain") {
                    assert_eq!(count(&emu, EndpointKind::AppService), 0, "{}", case.name);
                }
            }
        }
    }
}

#[test]
fn invalid_token_credentials_value_fails_construction() {
    let env = Env::new().with(vars::AZURE_TOKEN_CREDENTIALS, "BrowserPlease");
    let e = DefaultCredential::from_env(&env, DefaultCredentialOptions::default()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Config);
    assert!(e.to_string().contains("AZURE_TOKEN_CREDENTIALS"), "{e}");
}

#[tokio::test]
async fn the_first_credential_that_worked_is_remembered() {
    let emu = emulator().await;
    let env = Env::new()
        .with(vars::IDENTITY_ENDPOINT, emu.identity_endpoint())
        .with(vars::IDENTITY_HEADER, emu.identity_header());
    let cred = DefaultCredential::from_env(
        &env,
        DefaultCredentialOptions::default()
            .with_entra(EntraOptions::default().with_http(http(&emu))),
    )
    .unwrap();
    assert_eq!(
        cred.chain().credential_names(),
        vec!["ManagedIdentityCredential", "AzureCliCredential"]
    );
    assert_eq!(cred.chain().skipped().len(), 2);
    assert_eq!(cred.chain().selected(), None);
    cred.get_token(OSSRDBMS_SCOPE).await.unwrap();
    assert_eq!(cred.chain().selected(), Some("ManagedIdentityCredential"));
    // Once selected, a failure is that credential's own error (no fall-through to the CLI).
    emu.faults().inject(
        EndpointKind::AppService,
        pgentra_emulator::Fault::Status {
            status: 500,
            retry_after: None,
        },
        None,
    );
    let e = cred.get_token(OSSRDBMS_SCOPE).await.unwrap_err();
    assert_eq!(e.credential(), Some("ManagedIdentityCredential"));
    assert_eq!(e.kind(), ErrorKind::Upstream);
}

#[tokio::test]
async fn a_metadata_service_answering_404_is_skipped_without_retries() {
    // What another cloud's metadata service at 169.254.169.254 looks like to the chain.
    let emu = emulator().await;
    emu.faults().inject(
        EndpointKind::Imds,
        pgentra_emulator::Fault::Status {
            status: 404,
            retry_after: None,
        },
        None,
    );
    let dir = tempfile::tempdir().unwrap();
    let az = fake_az_ok(dir.path(), "a.b.c", epoch(SystemTime::now()) + 3600);
    let env = Env::new().with(vars::AZURE_POD_IDENTITY_AUTHORITY_HOST, emu.imds_host());
    let cred = DefaultCredential::from_env(
        &env,
        DefaultCredentialOptions::default()
            .with_entra(EntraOptions::default().with_http(http(&emu)))
            .with_cli(AzureCliOptions::default().with_program(az)),
    )
    .unwrap();
    let tok = cred.get_token(OSSRDBMS_SCOPE).await.unwrap();
    assert_eq!(tok.secret(), "a.b.c");
    assert_eq!(cred.chain().selected(), Some("AzureCliCredential"));
    assert_eq!(
        count(&emu, EndpointKind::Imds),
        1,
        "no retries while probing"
    );
}
