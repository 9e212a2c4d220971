//! The credential Service Connector intends for a connection's [`Identity`]: managed identity
//! (system- or user-assigned) or a service principal with a secret. Builds token sources from
//! the token crate; reads the environment only through the [`Env`] it is given.

use pgentra_token::{
    CacheOptions, ClientSecretCredential, EntraOptions, Env, ManagedIdentityCredential,
    ManagedIdentityOptions, TokenCache, TokenSource, UserAssignedId, vars,
};

use crate::settings::Identity;

/// The token source for `identity`:
///
/// * system-assigned → [`ManagedIdentityCredential`] (App Service endpoint when
///   `IDENTITY_ENDPOINT`/`IDENTITY_HEADER` are in `env`, IMDS otherwise);
/// * user-assigned → the same with the identity's client id;
/// * service principal → [`ClientSecretCredential`] at `entra`'s authority host, else
///   `AZURE_AUTHORITY_HOST` from `env`, else the public cloud's.
pub fn token_source_for(
    identity: &Identity,
    env: &Env,
    entra: EntraOptions,
) -> Result<Box<dyn TokenSource>, pgentra_token::Error> {
    Ok(match identity {
        Identity::SystemAssigned => Box::new(ManagedIdentityCredential::from_env(
            env,
            ManagedIdentityOptions::default().with_http(entra.http),
        )?),
        Identity::UserAssigned { client_id } => Box::new(ManagedIdentityCredential::from_env(
            env,
            ManagedIdentityOptions::default()
                .with_http(entra.http)
                .with_user_assigned(UserAssignedId::ClientId(client_id.clone())),
        )?),
        Identity::ServicePrincipal {
            tenant_id,
            client_id,
            secret,
        } => {
            let entra = match (&entra.authority_host, env.get(vars::AZURE_AUTHORITY_HOST)) {
                (None, Some(host)) => entra.with_authority_host(host),
                _ => entra,
            };
            Box::new(ClientSecretCredential::new(
                tenant_id,
                client_id,
                secret.expose_secret(),
                entra,
            )?)
        }
    })
}

/// A [`TokenCache`] (default options: background refresh-ahead) over [`token_source_for`].
pub fn token_cache_for(
    identity: &Identity,
    env: &Env,
    entra: EntraOptions,
) -> Result<TokenCache, pgentra_token::Error> {
    Ok(TokenCache::from_arc(
        token_source_for(identity, env, entra)?.into(),
        CacheOptions::default(),
    ))
}
