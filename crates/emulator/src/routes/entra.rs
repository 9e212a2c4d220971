//! Entra token endpoints: v2 `/{tenant}/oauth2/v2.0/token` and v1 `/{tenant}/oauth2/token`, for
//! the client-credentials grant (secret, certificate or federated assertion) and the password
//! grant (test user tokens).
//!
//! Validation order and error codes follow Entra's; a secret, password or assertion is never
//! echoed or logged.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

use super::Req;
use super::assertion;
use super::reply::{self, Reply};
use crate::claims::{self, Times};
use crate::config::User;
use crate::directory::App;
use crate::server::State;

const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// Keeps echoed request values (ids, scopes) short.
fn clip(s: &str) -> String {
    s.chars().take(200).collect()
}

fn missing(req: &Req, name: &str) -> Reply {
    reply::entra(
        req,
        400,
        "invalid_request",
        900144,
        &format!("The request body must contain the following parameter: '{name}'."),
    )
}

fn common_endpoint(req: &Req) -> Reply {
    reply::entra(
        req,
        400,
        "invalid_request",
        9001023,
        "The grant type isn't supported over the /common or /consumers endpoints. Please use the /organizations or tenant-specific endpoint.",
    )
}

fn app_not_found(req: &Req, client_id: &str, directory: &str) -> Reply {
    reply::entra(
        req,
        400,
        "unauthorized_client",
        700016,
        &format!(
            "Application with identifier '{}' was not found in the directory '{}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant.",
            clip(client_id),
            clip(directory)
        ),
    )
}

fn bad_secret(req: &Req, client_id: &str) -> Reply {
    reply::entra(
        req,
        401,
        "invalid_client",
        7000215,
        &format!(
            "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '{}'.",
            clip(client_id)
        ),
    )
}

fn no_credential(req: &Req) -> Reply {
    reply::entra(
        req,
        401,
        "invalid_client",
        7000218,
        "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
    )
}

fn invalid_scope(req: &Req, scope: &str) -> Reply {
    reply::entra(
        req,
        400,
        "invalid_scope",
        70011,
        &format!(
            "The provided value for the input parameter 'scope' isn't valid. The scope {} isn't valid.",
            clip(scope)
        ),
    )
}

fn unknown_resource(req: &Req, resource: &str, tenant: &str) -> Reply {
    reply::entra(
        req,
        400,
        "invalid_resource",
        500011,
        &reply::unknown_resource_text(&clip(resource), tenant),
    )
}

/// How the client authenticates.
enum ClientAuth {
    Secret(String),
    Assertion(String),
    Nothing,
}

/// Client id and credential from the form, or from HTTP Basic (`urlenc(id):urlenc(secret)`).
fn client_auth(req: &Req) -> Result<(Option<String>, ClientAuth), Reply> {
    let basic = req
        .header("authorization")
        .and_then(|h| {
            h.strip_prefix("Basic ")
                .or_else(|| h.strip_prefix("basic "))
        })
        .and_then(|b| STANDARD.decode(b.trim()).ok())
        .and_then(|raw| String::from_utf8(raw).ok())
        .and_then(|text| {
            let (id, secret) = text.split_once(':')?;
            let decode = |s: &str| {
                url::form_urlencoded::parse(format!("x={s}").as_bytes())
                    .next()
                    .map(|(_, v)| v.into_owned())
            };
            Some((decode(id)?, decode(secret)?))
        });
    let form = &req.form;
    let client_id = form
        .non_empty("client_id")
        .map(str::to_string)
        .or_else(|| basic.as_ref().map(|(id, _)| id.clone()));
    if let Some(assertion) = form.non_empty("client_assertion") {
        if form.get("client_assertion_type") != Some(JWT_BEARER) {
            return Err(missing(req, "client_assertion_type"));
        }
        return Ok((client_id, ClientAuth::Assertion(assertion.to_string())));
    }
    if let Some(secret) = form.non_empty("client_secret") {
        return Ok((client_id, ClientAuth::Secret(secret.to_string())));
    }
    if let Some((_, secret)) = basic {
        return Ok((client_id, ClientAuth::Secret(secret)));
    }
    Ok((client_id, ClientAuth::Nothing))
}

fn secret_matches(app: &App<'_>, secret: &str) -> bool {
    app.sp.is_some_and(|sp| {
        sp.secrets.iter().any(|s| {
            aws_lc_rs::constant_time::verify_slices_are_equal(s.as_bytes(), secret.as_bytes())
                .is_ok()
        })
    })
}

/// Authenticates `app`; returns the `appidacr` its tokens carry.
async fn authenticate(
    state: &State,
    req: &Req,
    app: &App<'_>,
    tenant_segment: &str,
    auth: &ClientAuth,
) -> Result<&'static str, Reply> {
    match auth {
        ClientAuth::Secret(secret) if secret_matches(app, secret) => Ok("1"),
        ClientAuth::Secret(_) => Err(bad_secret(req, app.client_id)),
        ClientAuth::Assertion(jwt) => {
            assertion::verify(state, req, app, tenant_segment, jwt).await?;
            Ok("2")
        }
        ClientAuth::Nothing => Err(no_credential(req)),
    }
}

fn random_lifetime(min: u64, max: u64) -> i64 {
    let secs = if min >= max {
        min
    } else {
        rand::random_range(min..=max)
    };
    i64::try_from(secs).unwrap_or(3600)
}

pub(crate) async fn token(state: &State, req: &Req, tenant_segment: &str, v2: bool) -> Reply {
    if req.method != axum::http::Method::POST {
        return reply::entra(
            req,
            400,
            "invalid_request",
            900561,
            &format!(
                "The endpoint only accepts POST requests. Received a {} request.",
                req.method
            ),
        );
    }
    let special = ["common", "organizations", "consumers"]
        .iter()
        .find(|s| s.eq_ignore_ascii_case(tenant_segment))
        .copied();
    let tenant_id = match special {
        Some(_) => None,
        None => match state.dir.tenant_id(tenant_segment) {
            Some(t) => Some(t),
            None => return reply::unknown_tenant(req, &clip(tenant_segment)),
        },
    };
    let Some(grant) = req.form.non_empty("grant_type") else {
        return missing(req, "grant_type");
    };
    match grant {
        "client_credentials" => {
            if matches!(special, Some("common" | "consumers")) {
                return common_endpoint(req);
            }
            client_credentials(state, req, tenant_segment, tenant_id, v2).await
        }
        "password" => {
            if special == Some("consumers") {
                return common_endpoint(req);
            }
            password(state, req, tenant_segment, tenant_id, v2)
        }
        other => reply::entra(
            req,
            400,
            "unsupported_grant_type",
            70003,
            &format!(
                "The app requested an unsupported grant type '{}'.",
                clip(other)
            ),
        ),
    }
}

/// The resource a client-credentials request asks for: v2 `scope=<resource>/.default`, v1
/// `resource=`.
fn cc_resource(req: &Req, v2: bool) -> Result<String, Reply> {
    if !v2 {
        return req
            .form
            .non_empty("resource")
            .map(str::to_string)
            .ok_or_else(|| missing(req, "resource"));
    }
    let Some(scope) = req.form.non_empty("scope") else {
        return Err(missing(req, "scope"));
    };
    let mut resources = Vec::new();
    // MSAL Go and MSAL4J append the OIDC scopes to every request, client credentials included;
    // Entra ignores them there, so the emulator must too.
    const OIDC_SCOPES: [&str; 4] = ["openid", "offline_access", "profile", "email"];
    for s in scope
        .split_whitespace()
        .filter(|s| !OIDC_SCOPES.contains(&s.to_ascii_lowercase().as_str()))
    {
        let Some(resource) = s.strip_suffix("/.default") else {
            return Err(reply::entra(
                req,
                400,
                "invalid_scope",
                1002012,
                &format!(
                    "The provided value for scope {} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).",
                    clip(s)
                ),
            ));
        };
        if !resources.contains(&resource) {
            resources.push(resource);
        }
    }
    match resources.as_slice() {
        [one] if !one.is_empty() => Ok(one.to_string()),
        _ => Err(invalid_scope(req, scope)),
    }
}

async fn client_credentials(
    state: &State,
    req: &Req,
    tenant_segment: &str,
    tenant_id: Option<&str>,
    v2: bool,
) -> Reply {
    let (client_id, auth) = match client_auth(req) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let Some(client_id) = client_id else {
        return missing(req, "client_id");
    };
    if v2 && req.form.non_empty("scope").is_none() {
        return missing(req, "scope");
    }
    let app = match state.dir.app(&client_id) {
        Some(app) if tenant_id.is_none_or(|t| t == app.tenant) => app,
        _ => return app_not_found(req, &client_id, tenant_segment),
    };
    let appidacr = match authenticate(state, req, &app, tenant_segment, &auth).await {
        Ok(acr) => acr,
        Err(r) => return r,
    };
    let resource = match cc_resource(req, v2) {
        Ok(r) => r,
        Err(r) => return r,
    };
    if !state.dir.resource_known(&resource) {
        return unknown_resource(req, &resource, app.tenant);
    }
    let l = &state.dir.config.lifetimes;
    let lifetime = random_lifetime(l.service_principal_min_secs, l.service_principal_max_secs);
    let times = Times::new(req.now, lifetime);
    let token = state
        .keys
        .current()
        .sign(&claims::app_claims(&app, &resource, appidacr, times));
    success(req, v2, &token, &resource, times, None)
}

/// The success body: v2 numbers, v1 strings with `expires_on`/`resource`.
fn success(
    req: &Req,
    v2: bool,
    token: &str,
    resource: &str,
    times: Times,
    extra: Option<Value>,
) -> Reply {
    let expires_in = times.exp.saturating_sub(req.now).max(0);
    let mut body = if v2 {
        json!({
            "token_type": "Bearer",
            "expires_in": expires_in,
            "ext_expires_in": expires_in,
            "access_token": token,
        })
    } else {
        json!({
            "token_type": "Bearer",
            "expires_in": expires_in.to_string(),
            "ext_expires_in": expires_in.to_string(),
            "expires_on": times.exp.to_string(),
            "not_before": times.iat.to_string(),
            "resource": resource,
            "access_token": token,
        })
    };
    if let (Some(Value::Object(extra)), Some(map)) = (extra, body.as_object_mut()) {
        map.extend(extra);
    }
    Reply::ok(body)
        .header(axum::http::header::CACHE_CONTROL, "no-store, no-cache")
        .header(axum::http::header::PRAGMA, "no-cache")
}

/// OpenID scopes that do not name a resource.
const OIDC_SCOPES: &[&str] = &["openid", "profile", "offline_access", "email"];

/// Resource and `scp` of a password-grant request.
fn user_resource(req: &Req, v2: bool) -> Result<(String, String), Reply> {
    if !v2 {
        let resource = req
            .form
            .non_empty("resource")
            .ok_or_else(|| missing(req, "resource"))?;
        return Ok((resource.to_string(), "user_impersonation".to_string()));
    }
    let scope = req
        .form
        .non_empty("scope")
        .ok_or_else(|| missing(req, "scope"))?;
    let mut resource: Option<&str> = None;
    let mut permissions = Vec::new();
    for s in scope.split_whitespace() {
        if OIDC_SCOPES.contains(&s) {
            continue;
        }
        let Some((res, perm)) = s.rsplit_once('/') else {
            return Err(invalid_scope(req, scope));
        };
        if res.is_empty() || perm.is_empty() || resource.is_some_and(|r| r != res) {
            return Err(invalid_scope(req, scope));
        }
        resource = Some(res);
        let perm = if perm == ".default" {
            "user_impersonation"
        } else {
            perm
        };
        if !permissions.contains(&perm) {
            permissions.push(perm);
        }
    }
    match resource {
        Some(r) => Ok((r.to_string(), permissions.join(" "))),
        None => Err(invalid_scope(req, scope)),
    }
}

fn password(
    state: &State,
    req: &Req,
    tenant_segment: &str,
    tenant_id: Option<&str>,
    v2: bool,
) -> Reply {
    let (client_id, auth) = match client_auth(req) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let Some(client_id) = client_id else {
        return missing(req, "client_id");
    };
    let Some(username) = req.form.non_empty("username") else {
        return missing(req, "username");
    };
    let Some(password) = req.form.get("password") else {
        return missing(req, "password");
    };
    if !state.dir.is_public_client(&client_id) {
        // A confidential client must also prove itself; an unknown client is not in the tenant.
        let Some(app) = state.dir.app(&client_id).filter(|a| a.sp.is_some()) else {
            return app_not_found(req, &client_id, tenant_segment);
        };
        match auth {
            ClientAuth::Secret(secret) if secret_matches(&app, &secret) => {}
            ClientAuth::Secret(_) => return bad_secret(req, app.client_id),
            _ => return no_credential(req),
        }
    }
    let (user, user_tenant): (&User, &str) = match state.dir.user(username) {
        Some((u, t)) if tenant_id.is_none_or(|id| id == t) => (u, t),
        _ => {
            return reply::entra(
                req,
                400,
                "invalid_grant",
                50034,
                &format!(
                    "The user account {{EUII Hidden}} does not exist in the {} directory. To sign into this application, the account must be added to the directory.",
                    clip(tenant_segment)
                ),
            );
        }
    };
    if aws_lc_rs::constant_time::verify_slices_are_equal(
        user.password.as_bytes(),
        password.as_bytes(),
    )
    .is_err()
    {
        return reply::entra(
            req,
            400,
            "invalid_grant",
            50126,
            "Error validating credentials due to invalid username or password.",
        );
    }
    let (resource, scp) = match user_resource(req, v2) {
        Ok(x) => x,
        Err(r) => return r,
    };
    if !state.dir.resource_known(&resource) {
        return unknown_resource(req, &resource, user_tenant);
    }
    let l = &state.dir.config.lifetimes;
    let times = Times::new(req.now, random_lifetime(l.user_min_secs, l.user_max_secs));
    let key = state.keys.current();
    let token = key.sign(&claims::user_claims(
        user,
        user_tenant,
        &client_id,
        &resource,
        &scp,
        times,
    ));
    let scope_echo: Vec<String> = scp
        .split(' ')
        .map(|p| format!("{}/{p}", resource.trim_end_matches('/')))
        .collect();
    let mut extra = serde_json::Map::new();
    extra.insert("scope".into(), json!(scope_echo.join(" ")));
    let asked = req.form.get("scope").unwrap_or_default();
    if asked.split_whitespace().any(|s| s == "openid") {
        let id_claims = claims::id_token_claims(user, user_tenant, &client_id, &req.base, times);
        extra.insert("id_token".into(), json!(key.sign(&id_claims)));
    }
    if req.form.get("client_info") == Some("1") {
        extra.insert(
            "client_info".into(),
            json!(claims::client_info(&user.object_id, user_tenant)),
        );
    }
    success(
        req,
        v2,
        &token,
        &resource,
        times,
        Some(Value::Object(extra)),
    )
}
