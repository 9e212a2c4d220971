//! Azure Instance Metadata Service identity endpoint (`/metadata/identity/oauth2/token`,
//! api-version 2018-02-01, `Metadata: true`), every number answered as a string.
//!
//! Shares the managed-identity token cache with App Service; never echoes a token in an error.

use serde_json::json;

use super::Req;
use super::managed_identity::{self, Selection, select};
use super::reply::{self, Reply};
use crate::directory::IdentitySelector;
use crate::server::State;

fn looks_like_api_version(v: &str) -> bool {
    let b = v.as_bytes();
    b.len() >= 10
        && b[..10].iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            _ => c.is_ascii_digit(),
        })
}

pub(crate) fn token(state: &State, req: &Req) -> Reply {
    // The metadata check comes first: header-less probes (azure-identity, @azure/identity) must
    // get exactly this 400 to conclude that IMDS is reachable.
    if !req
        .header("metadata")
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
    {
        return reply::imds(
            400,
            "bad_request_102",
            "Required metadata header not specified",
        );
    }
    if req.method != axum::http::Method::GET {
        return reply::imds(
            405,
            "invalid_request",
            "The requested HTTP method is not supported. Use GET.",
        );
    }
    match req.query.non_empty("api-version") {
        None => {
            return reply::imds(
                400,
                "invalid_request",
                "Required query variable 'api-version' is missing",
            );
        }
        Some(v) if !looks_like_api_version(v) => {
            return reply::imds(400, "invalid_request", "Invalid api-version specified");
        }
        Some(_) => {}
    }
    let Some(resource) = req.query.non_empty("resource") else {
        return reply::imds(
            400,
            "invalid_request",
            "Required audience parameter not specified",
        );
    };
    let given = [
        req.query
            .non_empty("client_id")
            .map(IdentitySelector::ClientId),
        req.query
            .non_empty("object_id")
            .map(IdentitySelector::ObjectId),
        req.query
            .non_empty("msi_res_id")
            .map(IdentitySelector::ResourceId),
    ];
    let app = match select(state, &given) {
        Ok(app) => app,
        Err(Selection::TooMany) => {
            return reply::imds(
                400,
                "invalid_request",
                "Only one of client_id, object_id or msi_res_id may be specified",
            );
        }
        Err(Selection::NotFound) => {
            return reply::imds(400, "invalid_request", "Identity not found");
        }
    };
    if !state.dir.resource_known(resource) {
        let text = format!(
            "AADSTS500011: {}\r\nTrace ID: {}\r\nCorrelation ID: {}\r\nTimestamp: {}",
            reply::unknown_resource_text(resource, app.tenant),
            uuid::Uuid::new_v4(),
            uuid::Uuid::new_v4(),
            req.now
        );
        return reply::imds(400, "invalid_resource", &text);
    }
    let token = managed_identity::issue(state, &app, resource, req.now);
    let expires_in = token.exp.saturating_sub(req.now).max(0).to_string();
    Reply::ok(json!({
        "access_token": token.access_token,
        "refresh_token": "",
        "expires_in": expires_in,
        "expires_on": token.exp.to_string(),
        "ext_expires_in": expires_in,
        "not_before": token.not_before.to_string(),
        "resource": resource,
        "token_type": "Bearer",
        "client_id": app.client_id,
    }))
}
