//! App Service / Container Apps managed identity (`IDENTITY_ENDPOINT`, api-version 2019-08-01
//! with `X-IDENTITY-HEADER`, legacy 2017-09-01 with `secret`), and the token cache shared with
//! IMDS.
//!
//! Never echoes the identity header or a token in an error.

use std::collections::HashMap;
use std::sync::Mutex;

use serde_json::json;

use super::Req;
use super::reply::{self, Reply};
use crate::claims::{self, Times};
use crate::directory::{App, IdentitySelector};
use crate::server::State;

/// A managed-identity token as issued, for the cache and the response.
#[derive(Debug, Clone)]
pub(crate) struct MiToken {
    pub(crate) access_token: String,
    pub(crate) exp: i64,
    pub(crate) not_before: i64,
}

#[derive(Debug)]
struct Cached {
    token: MiToken,
    issued_at: i64,
    key_generation: u64,
    clock_generation: u64,
}

/// Repeat requests for the same identity and resource within the cache window get the same token,
/// like Azure's token service. Rotating the signing key or changing the clock empties it.
#[derive(Debug, Default)]
pub(crate) struct MiCache {
    entries: Mutex<HashMap<(String, String), Cached>>,
}

/// Bound on cache entries; a test that asks for many resources cannot grow memory without end.
const MAX_CACHED: usize = 4096;

impl Cached {
    fn reusable(&self, now: i64, window: i64, key_generation: u64, clock_generation: u64) -> bool {
        self.key_generation == key_generation
            && self.clock_generation == clock_generation
            && now >= self.issued_at
            && now.saturating_sub(self.issued_at) < window
            && self.token.exp > now
    }
}

impl MiCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), Cached>> {
        // Poison is ignored: the map holds whole values and is consistent after any panic.
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Issues (or reuses) a managed-identity token for `app` and `resource`.
pub(crate) fn issue(state: &State, app: &App<'_>, resource: &str, now: i64) -> MiToken {
    let lifetimes = &state.dir.config.lifetimes;
    let window = i64::try_from(lifetimes.mi_cache_secs).unwrap_or(i64::MAX);
    let key = (app.client_id.to_ascii_lowercase(), resource.to_string());
    let key_generation = state.keys.generation();
    let clock_generation = state.clock.generation();
    if window > 0
        && let Some(c) = state.mi_cache.lock().get(&key)
        && c.reusable(now, window, key_generation, clock_generation)
    {
        return c.token.clone();
    }
    // Signing happens outside the lock so concurrent requests sign in parallel.
    let lifetime = i64::try_from(lifetimes.managed_identity_secs).unwrap_or(86_400);
    let times = Times::new(now, lifetime);
    let access_token = state
        .keys
        .current()
        .sign(&claims::app_claims(app, resource, "2", times));
    let token = MiToken {
        access_token,
        exp: times.exp,
        not_before: times.iat,
    };
    if window > 0 {
        let mut entries = state.mi_cache.lock();
        // A concurrent request may have cached a token meanwhile: hand out that one, so repeat
        // requests converge on a single token as with the real service.
        if let Some(c) = entries.get(&key)
            && c.reusable(now, window, key_generation, clock_generation)
        {
            return c.token.clone();
        }
        if entries.len() >= MAX_CACHED {
            entries.clear();
        }
        entries.insert(
            key,
            Cached {
                token: token.clone(),
                issued_at: now,
                key_generation,
                clock_generation,
            },
        );
    }
    token
}

/// Why no identity was selected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Selection {
    TooMany,
    NotFound,
}

/// Picks the identity named by at most one selector; none given means system-assigned.
pub(crate) fn select<'a>(
    state: &'a State,
    given: &[Option<IdentitySelector<'_>>],
) -> Result<App<'a>, Selection> {
    let given: Vec<IdentitySelector<'_>> = given.iter().flatten().copied().collect();
    let found = match given.as_slice() {
        [] => state.dir.system_identity(),
        [one] => state.dir.identity_by(*one),
        _ => return Err(Selection::TooMany),
    };
    found.ok_or(Selection::NotFound)
}

const UNABLE_TO_LOAD: &str = "Unable to load the proper Managed Identity.";

pub(crate) fn app_service(state: &State, req: &Req) -> Reply {
    if req.method != axum::http::Method::GET {
        return reply::app_service(405, "The requested HTTP method is not supported. Use GET.");
    }
    let api_version = req.query.non_empty("api-version");
    let (header_name, legacy) = match api_version {
        Some("2019-08-01") => ("X-IDENTITY-HEADER", false),
        Some("2017-09-01") => ("secret", true),
        Some(_) => {
            return reply::app_service(
                400,
                "The api-version is not supported. Supported versions: 2019-08-01, 2017-09-01.",
            );
        }
        None => return reply::app_service(400, "The 'api-version' query parameter is required."),
    };
    let Some(presented) = req.header(header_name) else {
        return reply::app_service(
            401,
            &format!(
                "The '{header_name}' header is required to access the managed identity endpoint."
            ),
        );
    };
    let expected = state.identity_header.as_bytes();
    if aws_lc_rs::constant_time::verify_slices_are_equal(presented.as_bytes(), expected).is_err() {
        return reply::app_service(
            403,
            &format!("The '{header_name}' header value is not valid."),
        );
    }
    let Some(resource) = req.query.non_empty("resource") else {
        return reply::app_service(400, "The 'resource' query parameter is required.");
    };
    let client_id = if legacy {
        req.query
            .non_empty("clientid")
            .or_else(|| req.query.non_empty("client_id"))
    } else {
        req.query.non_empty("client_id")
    };
    let given = [
        client_id.map(IdentitySelector::ClientId),
        req.query
            .non_empty("object_id")
            .map(IdentitySelector::ObjectId),
        req.query
            .non_empty("principal_id")
            .map(IdentitySelector::ObjectId),
        req.query
            .non_empty("mi_res_id")
            .map(IdentitySelector::ResourceId),
    ];
    let app = match select(state, &given) {
        Ok(app) => app,
        Err(Selection::TooMany) => {
            return reply::app_service(
                400,
                "Only one of client_id, object_id, principal_id or mi_res_id may be specified.",
            );
        }
        Err(Selection::NotFound) => return reply::app_service(400, UNABLE_TO_LOAD),
    };
    if !state.dir.resource_known(resource) {
        return reply::app_service(
            400,
            &format!(
                "AADSTS500011: {}",
                reply::unknown_resource_text(resource, app.tenant)
            ),
        );
    }
    let token = issue(state, &app, resource, req.now);
    Reply::ok(json!({
        "access_token": token.access_token,
        "expires_on": token.exp.to_string(),
        "resource": resource,
        "token_type": "Bearer",
        "client_id": app.client_id,
        "not_before": token.not_before.to_string(),
        "expires_in": token.exp.saturating_sub(req.now).max(0).to_string(),
    }))
}
