//! Through the gateway with real emulator tokens: Service Connector variables in, a query out,
//! for every identity kind; pools fill with one identity request; after key rotation and ended
//! sessions, new connections succeed with a new token after exactly one more request.

use std::time::Duration;

use pgentra_emulator::dev;
use pgentra_postgres::token::{CacheOptions, EntraOptions, Env, HttpOptions, TokenCache};
use pgentra_postgres::{
    ClientSecret, ClientType, ConnectionSettings, Connector, Identity, Tls, connect,
    token_cache_for, token_source_for,
};

use crate::support::*;

fn entra(gw: &Gateway) -> EntraOptions {
    // The emulator's Entra endpoint is https with its own CA.
    EntraOptions::default().with_http(
        HttpOptions::default()
            .add_root_pem_file(gw.emu.ca_cert_path())
            .unwrap(),
    )
}

fn env_of(vars: &[(String, String)]) -> Env {
    vars.iter().fold(Env::new(), |env, (k, v)| env.with(k, v))
}

#[tokio::test]
async fn service_connector_variables_to_a_query_for_every_identity_kind() {
    let gw = Gateway::start().await;
    let tls = Tls::with_ca_file(&gw.ca_path).unwrap();
    let identities = [
        (Identity::SystemAssigned, SYSTEM_MI_ROLE),
        (
            Identity::UserAssigned {
                client_id: dev::USER_MI_CLIENT_ID.into(),
            },
            USER_MI_ROLE,
        ),
        (
            Identity::ServicePrincipal {
                tenant_id: dev::TENANT_ID.into(),
                client_id: dev::SP_CLIENT_ID.into(),
                secret: ClientSecret::new(dev::SP_SECRET),
            },
            SP_ROLE,
        ),
    ];
    let mut logins = 0;
    for (identity, role) in &identities {
        for ct in [
            ClientType::Python,
            ClientType::Dotnet,
            ClientType::Nodejs,
            ClientType::SpringBoot,
        ] {
            // With the role named (as Service Connector does) and without (derived from claims).
            for user in [Some(*role), None] {
                let written = ConnectionSettings {
                    client_type: ct,
                    ..gw.settings(user, identity.clone())
                };
                let vars = gw.app_env(&written);
                // What an application does: read the variables, get a credential, connect.
                let settings =
                    ConnectionSettings::from_env(vars.iter().map(|(k, v)| (k, v))).unwrap();
                assert_eq!(settings, written);
                let tokens =
                    token_cache_for(&settings.identity, &env_of(&vars), entra(&gw)).unwrap();
                let (client, _task) = connect(&settings, &tokens, &tls)
                    .await
                    .unwrap_or_else(|e| panic!("{ct} {} {user:?}: {e}", identity.kind()));
                let (who, ssl) = whoami(&client).await;
                assert_eq!(&who, role, "{ct} {}", identity.kind());
                assert!(
                    !ssl,
                    "the gateway terminates TLS; its upstream leg is a unix socket"
                );
                logins += 1;
            }
        }
    }
    assert_eq!(logins, 24);
    // The Service Connector style role bound to the system identity.
    let settings = gw.settings(Some(SC_ROLE), Identity::SystemAssigned);
    let tokens = token_cache_for(
        &settings.identity,
        &env_of(&gw.app_env(&settings)),
        entra(&gw),
    )
    .unwrap();
    let (client, _task) = connect(&settings, &tokens, &tls).await.unwrap();
    assert_eq!(whoami(&client).await.0, SC_ROLE);
    gw.stop().await;
}

const N: usize = 10;

fn system_mi_connector(gw: &Gateway, options: CacheOptions) -> (Connector, TokenCache) {
    let settings = gw.settings(None, Identity::SystemAssigned);
    let env = env_of(&gw.app_env(&settings));
    let source = token_source_for(&settings.identity, &env, entra(gw)).unwrap();
    let tokens = TokenCache::from_arc(source.into(), options);
    let tls = Tls::with_ca_file(&gw.ca_path).unwrap();
    (
        Connector::new(&settings, tokens.clone(), &tls).unwrap(),
        tokens,
    )
}

async fn current_user(c: &tokio_postgres::Client) -> String {
    c.query_one("select current_user::text", &[])
        .await
        .unwrap()
        .get(0)
}

#[cfg(feature = "deadpool")]
#[tokio::test]
async fn deadpool_through_the_gateway_rotation_costs_one_identity_request() {
    use pgentra_postgres::pool::deadpool::{Manager, Recycling, pool};

    let gw = Gateway::start().await;
    // No rate limit on forced refreshes: the rotation below happens seconds after the first fetch.
    let (connector, tokens) = system_mi_connector(
        &gw,
        CacheOptions::default().with_min_refresh_interval(Duration::ZERO),
    );
    let p = pool(Manager::new(connector).recycling(Recycling::Verified), N).unwrap();
    let held = crate::pools::futures_join(N, || p.get()).await;
    for c in &held {
        assert_eq!(current_user(c).await, SYSTEM_MI_ROLE);
    }
    drop(held);
    assert_eq!(
        gw.token_requests(),
        1,
        "{N} connections, one identity request"
    );
    let first = tokens.cached(SCOPE).unwrap();

    // The identity provider rotates its signing key and retires the old one; the server ends
    // every session. The cached token is now refused.
    gw.emu.rotate_signing_key();
    gw.emu.retire_old_keys();
    assert_eq!(terminate_sessions(&gw.pg, SYSTEM_MI_ROLE), N);
    // Refill one at a time so the count below is deterministic.
    let mut held = Vec::new();
    for _ in 0..N {
        let c = p.get().await.expect("connection after rotation");
        assert_eq!(current_user(&c).await, SYSTEM_MI_ROLE);
        held.push(c);
    }
    assert_eq!(gw.token_requests(), 2, "exactly one more identity request");
    assert_ne!(tokens.cached(SCOPE).unwrap().secret(), first.secret());
    drop(held);
    gw.stop().await;
}

#[cfg(feature = "bb8")]
#[tokio::test]
async fn bb8_through_the_gateway_fills_with_one_identity_request() {
    let gw = Gateway::start().await;
    let (connector, _tokens) = system_mi_connector(&gw, CacheOptions::default());
    let p = bb8::Pool::builder()
        .max_size(N as u32)
        .build(pgentra_postgres::pool::bb8::Manager::new(connector))
        .await
        .unwrap();
    let held = crate::pools::futures_join(N, || p.get()).await;
    for c in &held {
        assert_eq!(current_user(c).await, SYSTEM_MI_ROLE);
    }
    assert_eq!(p.state().connections, N as u32);
    assert_eq!(
        gw.token_requests(),
        1,
        "{N} connections, one identity request"
    );
    drop(held);
    gw.stop().await;
}

#[cfg(feature = "sqlx")]
#[tokio::test]
async fn sqlx_through_the_gateway_fills_with_one_identity_request() {
    use pgentra_postgres::pool::sqlx::{Options, pool};
    use sqlx::postgres::PgPoolOptions;

    let gw = Gateway::start().await;
    let settings = gw.settings(None, Identity::SystemAssigned);
    let tokens = token_cache_for(
        &settings.identity,
        &env_of(&gw.app_env(&settings)),
        entra(&gw),
    )
    .unwrap();
    let p = pool(
        &settings,
        tokens,
        Options::default()
            .pool_options(PgPoolOptions::new().max_connections(N as u32))
            .ca_file(&gw.ca_path),
    )
    .await
    .unwrap();
    let held = crate::pools::futures_join(N, || p.acquire()).await;
    for mut c in held {
        let who: String = sqlx::query_scalar("select current_user::text")
            .fetch_one(&mut *c)
            .await
            .unwrap();
        assert_eq!(who, SYSTEM_MI_ROLE);
    }
    assert_eq!(p.size(), N as u32);
    assert_eq!(
        gw.token_requests(),
        1,
        "{N} connections, one identity request"
    );
    p.close().await;
    gw.stop().await;
}
