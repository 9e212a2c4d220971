//! Discovery documents: OpenID configuration (v1 and v2), JWKS (v1 and v2) and instance
//! discovery, with every URL pointing at the emulator as the client reached it.
//!
//! Read-only views of the config and key ring; issues no token.

use serde_json::{Value, json};

use super::Req;
use super::reply::{self, Reply};
use crate::claims::v1_issuer;
use crate::server::State;

/// Resolves a tenant path segment: `Ok(None)` for common/organizations/consumers.
fn tenant<'a>(state: &'a State, req: &Req, segment: &str) -> Result<Option<&'a str>, Reply> {
    if ["common", "organizations", "consumers"]
        .iter()
        .any(|s| s.eq_ignore_ascii_case(segment))
    {
        return Ok(None);
    }
    state
        .dir
        .tenant_id(segment)
        .map(Some)
        .ok_or_else(|| reply::unknown_tenant(req, &segment.chars().take(200).collect::<String>()))
}

pub(crate) fn openid_configuration(state: &State, req: &Req, segment: &str, v2: bool) -> Reply {
    let tid = match tenant(state, req, segment) {
        Ok(t) => t,
        Err(r) => return r,
    };
    let base = &req.base;
    // Multi-tenant documents use the literal "{tenantid}" placeholder in the issuer, like Entra.
    let path_tenant = tid.unwrap_or(segment);
    let issuer_tenant = tid.unwrap_or("{tenantid}");
    let body = if v2 {
        json!({
            "token_endpoint": format!("{base}/{path_tenant}/oauth2/v2.0/token"),
            "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
            "jwks_uri": format!("{base}/{path_tenant}/discovery/v2.0/keys"),
            "response_modes_supported": ["query", "fragment", "form_post"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "issuer": format!("{base}/{issuer_tenant}/v2.0"),
            "request_uri_parameter_supported": false,
            "userinfo_endpoint": "https://graph.microsoft.com/oidc/userinfo",
            "authorization_endpoint": format!("{base}/{path_tenant}/oauth2/v2.0/authorize"),
            "device_authorization_endpoint": format!("{base}/{path_tenant}/oauth2/v2.0/devicecode"),
            "http_logout_supported": true,
            "frontchannel_logout_supported": true,
            "end_session_endpoint": format!("{base}/{path_tenant}/oauth2/v2.0/logout"),
            "claims_supported": ["sub", "iss", "cloud_instance_name", "cloud_instance_host_name", "cloud_graph_host_name", "msgraph_host", "aud", "exp", "iat", "auth_time", "acr", "nonce", "preferred_username", "name", "tid", "ver", "at_hash", "c_hash", "email"],
            "kerberos_endpoint": format!("{base}/{path_tenant}/kerberos"),
            "tenant_region_scope": "NA",
            "cloud_instance_name": "microsoftonline.com",
            "cloud_graph_host_name": "graph.windows.net",
            "msgraph_host": "graph.microsoft.com",
            "rbac_url": "https://pas.windows.net",
        })
    } else {
        let issuer = match tid {
            Some(t) => v1_issuer(t),
            None => "https://sts.windows.net/{tenantid}/".to_string(),
        };
        json!({
            "token_endpoint": format!("{base}/{path_tenant}/oauth2/token"),
            "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
            "jwks_uri": format!("{base}/common/discovery/keys"),
            "response_modes_supported": ["query", "fragment", "form_post"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "response_types_supported": ["code", "id_token", "code id_token", "token id_token", "token"],
            "scopes_supported": ["openid"],
            "issuer": issuer,
            "microsoft_multi_refresh_token": true,
            "authorization_endpoint": format!("{base}/{path_tenant}/oauth2/authorize"),
            "device_authorization_endpoint": format!("{base}/{path_tenant}/oauth2/devicecode"),
            "http_logout_supported": true,
            "frontchannel_logout_supported": true,
            "end_session_endpoint": format!("{base}/{path_tenant}/oauth2/logout"),
            "claims_supported": ["sub", "iss", "cloud_instance_name", "cloud_instance_host_name", "cloud_graph_host_name", "msgraph_host", "aud", "exp", "iat", "auth_time", "acr", "amr", "nonce", "email", "given_name", "family_name", "nickname"],
            "check_session_iframe": format!("{base}/{path_tenant}/oauth2/checksession"),
            "userinfo_endpoint": format!("{base}/{path_tenant}/openid/userinfo"),
            "kerberos_endpoint": format!("{base}/{path_tenant}/kerberos"),
            "tenant_region_scope": "NA",
            "cloud_instance_name": "microsoftonline.com",
            "cloud_graph_host_name": "graph.windows.net",
            "msgraph_host": "graph.microsoft.com",
            "rbac_url": "https://pas.windows.net",
        })
    };
    Reply::ok(body)
}

pub(crate) fn jwks(state: &State, req: &Req, segment: &str, v2: bool) -> Reply {
    let tid = match tenant(state, req, segment) {
        Ok(t) => t,
        Err(r) => return r,
    };
    let issuer = v2.then(|| format!("{}/{}/v2.0", req.base, tid.unwrap_or("{tenantid}")));
    Reply::ok(state.keys.jwks(issuer.as_deref()))
}

/// Host (with port) of a URL.
fn host_port(url: &url::Url) -> Option<String> {
    let host = url.host_str()?;
    Some(match url.port() {
        Some(p) => format!("{host}:{p}"),
        None => host.to_string(),
    })
}

pub(crate) fn instance(state: &State, req: &Req) -> Reply {
    let endpoint = req
        .query
        .non_empty("authorization_endpoint")
        .and_then(|e| url::Url::parse(e).ok());
    let Some(endpoint) = endpoint else {
        return reply::entra(
            req,
            400,
            "invalid_instance",
            50049,
            "Unknown or invalid instance.",
        );
    };
    let Some(host) = host_port(&endpoint) else {
        return reply::entra(
            req,
            400,
            "invalid_instance",
            50049,
            "Unknown or invalid instance.",
        );
    };
    let tenant = endpoint
        .path_segments()
        .and_then(|mut s| s.next())
        .filter(|s| !s.is_empty())
        .unwrap_or("common");
    let mut aliases = vec![Value::String(host.clone())];
    for base in [&state.https_base, &state.http_base, &req.base] {
        if let Some(h) = url::Url::parse(base).ok().as_ref().and_then(host_port)
            && !aliases.contains(&Value::String(h.clone()))
        {
            aliases.push(Value::String(h));
        }
    }
    Reply::ok(json!({
        "tenant_discovery_endpoint": format!(
            "{}://{host}/{tenant}/v2.0/.well-known/openid-configuration",
            endpoint.scheme()
        ),
        "api-version": "1.1",
        "metadata": [
            {"preferred_network": host, "preferred_cache": host, "aliases": aliases},
            {
                "preferred_network": "login.microsoftonline.com",
                "preferred_cache": "login.windows.net",
                "aliases": ["login.microsoftonline.com", "login.windows.net", "login.microsoft.com", "sts.windows.net"]
            }
        ],
    }))
}
