//! Client assertions: certificate JWTs (RS256/PS256, found by `x5t` / `x5t#S256`, `aud` = the
//! token endpoint) and workload-identity federated tokens (matched by issuer, subject and
//! audience, verified with the issuer's PEM key or JWKS).
//!
//! Verification only; an assertion is never logged or echoed back.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;

use super::Req;
use super::reply::{self, Reply};
use crate::directory::{App, IssuerKey};
use crate::server::State;

/// Accepted clock skew for an assertion's `nbf`.
const NBF_SKEW_SECS: i64 = 300;

struct Parsed<'a> {
    header: Value,
    claims: Value,
    signing_input: &'a str,
    signature: Vec<u8>,
}

fn parse(jwt: &str) -> Option<Parsed<'_>> {
    let (signing_input, sig) = jwt.rsplit_once('.')?;
    let (header, claims) = signing_input.split_once('.')?;
    let decode = |part: &str| -> Option<Value> {
        let bytes = URL_SAFE_NO_PAD.decode(part.trim_end_matches('=')).ok()?;
        serde_json::from_slice::<Value>(&bytes)
            .ok()
            .filter(Value::is_object)
    };
    Some(Parsed {
        header: decode(header)?,
        claims: decode(claims)?,
        signing_input,
        signature: URL_SAFE_NO_PAD.decode(sig.trim_end_matches('=')).ok()?,
    })
}

fn malformed(req: &Req) -> Reply {
    reply::entra(
        req,
        400,
        "invalid_request",
        50027,
        "JWT token is invalid or malformed.",
    )
}

fn bad_signature(req: &Req, reason: Option<&str>) -> Reply {
    let text = match reason {
        Some(r) => format!("Client assertion failed signature validation. [Reason - {r}]"),
        None => "Client assertion failed signature validation.".to_string(),
    };
    reply::entra(req, 401, "invalid_client", 700027, &text)
}

fn iso(epoch: Option<i64>) -> String {
    let fmt =
        time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].0000000Z");
    epoch
        .and_then(|e| time::OffsetDateTime::from_unix_timestamp(e).ok())
        .and_then(|t| t.format(&fmt).ok())
        .unwrap_or_else(|| "(none)".to_string())
}

fn check_times(req: &Req, claims: &Value) -> Result<(), Reply> {
    let exp = claims.get("exp").and_then(Value::as_i64);
    let nbf = claims.get("nbf").and_then(Value::as_i64);
    let expired = exp.is_none_or(|e| req.now >= e);
    let early = nbf.is_some_and(|n| n > req.now.saturating_add(NBF_SKEW_SECS));
    if expired || early {
        return Err(reply::entra(
            req,
            400,
            "invalid_client",
            700024,
            &format!(
                "Client assertion is not within its valid time range. Current time: {}, assertion valid from {}, expiry time of assertion {}. Review the documentation at https://learn.microsoft.com/entra/identity-platform/certificate-credentials .",
                iso(Some(req.now)),
                iso(nbf),
                iso(exp)
            ),
        ));
    }
    Ok(())
}

fn audiences(claims: &Value) -> Vec<&str> {
    match claims.get("aud") {
        Some(Value::String(s)) => vec![s.as_str()],
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

fn hex_thumbprint(b64: &str) -> String {
    URL_SAFE_NO_PAD
        .decode(b64.trim_end_matches('='))
        .map(|bytes| bytes.iter().map(|b| format!("{b:02X}")).collect())
        .unwrap_or_default()
}

fn webpki_alg(alg: &str) -> Option<&'static dyn rustls_pki_types::SignatureVerificationAlgorithm> {
    match alg {
        "RS256" => Some(webpki::aws_lc_rs::RSA_PKCS1_2048_8192_SHA256),
        "RS384" => Some(webpki::aws_lc_rs::RSA_PKCS1_2048_8192_SHA384),
        "RS512" => Some(webpki::aws_lc_rs::RSA_PKCS1_2048_8192_SHA512),
        "PS256" => Some(webpki::aws_lc_rs::RSA_PSS_2048_8192_SHA256_LEGACY_KEY),
        "PS384" => Some(webpki::aws_lc_rs::RSA_PSS_2048_8192_SHA384_LEGACY_KEY),
        "PS512" => Some(webpki::aws_lc_rs::RSA_PSS_2048_8192_SHA512_LEGACY_KEY),
        "ES256" => Some(webpki::aws_lc_rs::ECDSA_P256_SHA256),
        _ => None,
    }
}

fn verify_with_cert(cert_der: &[u8], parsed: &Parsed<'_>) -> Result<(), &'static str> {
    let alg = parsed
        .header
        .get("alg")
        .and_then(Value::as_str)
        .and_then(webpki_alg)
        .ok_or("The signing algorithm is not supported.")?;
    let der = rustls_pki_types::CertificateDer::from(cert_der);
    let cert = webpki::EndEntityCert::try_from(&der).map_err(|_| "The key is not usable.")?;
    let signature =
        if alg.signature_alg_id() == webpki::aws_lc_rs::ECDSA_P256_SHA256.signature_alg_id() {
            // JWS carries raw r||s; webpki expects ASN.1 DER for ECDSA.
            ecdsa_raw_to_der(&parsed.signature).ok_or("The signature is malformed.")?
        } else {
            parsed.signature.clone()
        };
    cert.verify_signature(alg, parsed.signing_input.as_bytes(), &signature)
        .map_err(|_| "The signature does not match.")
}

/// Converts a JWS ECDSA signature (`r || s`, fixed width) to ASN.1 DER.
fn ecdsa_raw_to_der(raw: &[u8]) -> Option<Vec<u8>> {
    if raw.len() != 64 {
        return None;
    }
    let int = |bytes: &[u8]| {
        let trimmed: Vec<u8> = bytes.iter().copied().skip_while(|b| *b == 0).collect();
        let mut v = Vec::with_capacity(trimmed.len() + 3);
        v.push(0x02);
        if trimmed.first().is_none_or(|b| b & 0x80 != 0) {
            v.push(u8::try_from(trimmed.len() + 1).ok()?);
            v.push(0);
        } else {
            v.push(u8::try_from(trimmed.len()).ok()?);
        }
        v.extend_from_slice(&trimmed);
        Some(v)
    };
    let r = int(&raw[..32])?;
    let s = int(&raw[32..])?;
    let mut der = vec![0x30, u8::try_from(r.len() + s.len()).ok()?];
    der.extend(r);
    der.extend(s);
    Some(der)
}

/// Token-endpoint URLs an assertion `aud` may name for this request.
fn accepted_audiences(state: &State, req: &Req, app: &App<'_>, segment: &str) -> Vec<String> {
    let mut bases = vec![
        req.base.clone(),
        state.https_base.clone(),
        state.http_base.clone(),
        "https://login.microsoftonline.com".to_string(),
    ];
    bases.dedup();
    let mut tenants = vec![segment.to_string()];
    tenants.extend(
        state
            .dir
            .tenant_names(app.tenant)
            .iter()
            .map(|s| s.to_string()),
    );
    let mut out = Vec::new();
    for base in &bases {
        for tenant in &tenants {
            for suffix in ["/oauth2/v2.0/token", "/oauth2/token", "/v2.0", ""] {
                let url = format!("{base}/{tenant}{suffix}");
                out.push(format!("{url}/"));
                out.push(url);
            }
        }
    }
    out
}

pub(crate) async fn verify(
    state: &State,
    req: &Req,
    app: &App<'_>,
    segment: &str,
    jwt: &str,
) -> Result<(), Reply> {
    let Some(parsed) = parse(jwt) else {
        return Err(malformed(req));
    };
    let iss = parsed
        .claims
        .get("iss")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let sub = parsed
        .claims
        .get("sub")
        .and_then(Value::as_str)
        .unwrap_or_default();
    // Entra tells the flavours apart by issuer: a certificate assertion is issued by the client
    // itself, a federated token by an external issuer.
    if iss.eq_ignore_ascii_case(app.client_id) && sub.eq_ignore_ascii_case(app.client_id) {
        verify_certificate(state, req, app, segment, &parsed)
    } else {
        verify_federated(state, req, app, &parsed, iss, sub).await
    }
}

fn verify_certificate(
    state: &State,
    req: &Req,
    app: &App<'_>,
    segment: &str,
    parsed: &Parsed<'_>,
) -> Result<(), Reply> {
    let x5t_s256 = parsed.header.get("x5t#S256").and_then(Value::as_str);
    let x5t = parsed.header.get("x5t").and_then(Value::as_str);
    let cert = state
        .dir
        .certs(app.client_id)
        .iter()
        .find(|c| x5t_s256.is_some_and(|t| t == c.x5t_s256) || x5t.is_some_and(|t| t == c.x5t));
    let Some(cert) = cert else {
        let thumb = hex_thumbprint(x5t_s256.or(x5t).unwrap_or_default());
        let reason = format!(
            "The key was not found., Thumbprint of key used by client: '{thumb}', Please visit the Azure Portal, Graph Explorer or directly use MS Graph to see configured keys for app Id '{}'.",
            app.client_id
        );
        return Err(bad_signature(req, Some(&reason)));
    };
    verify_with_cert(&cert.der, parsed).map_err(|reason| bad_signature(req, Some(reason)))?;
    let accepted = accepted_audiences(state, req, app, segment);
    let auds = audiences(&parsed.claims);
    if !auds
        .iter()
        .any(|a| accepted.iter().any(|ok| ok.eq_ignore_ascii_case(a)))
    {
        return Err(reply::entra(
            req,
            401,
            "invalid_client",
            700023,
            "Client assertion audience claim does not match Realm issuer. Review the documentation at https://learn.microsoft.com/entra/identity-platform/certificate-credentials .",
        ));
    }
    check_times(req, &parsed.claims)
}

async fn verify_federated(
    state: &State,
    req: &Req,
    app: &App<'_>,
    parsed: &Parsed<'_>,
    iss: &str,
    sub: &str,
) -> Result<(), Reply> {
    let auds = audiences(&parsed.claims);
    let matched = state
        .dir
        .federated(app.client_id)
        .find(|(f, _)| f.issuer == iss && f.subject == sub && auds.contains(&f.audience.as_str()));
    let Some((_, key)) = matched else {
        return Err(reply::entra(
            req,
            400,
            "invalid_request",
            70021,
            &format!(
                "No matching federated identity record found for presented assertion. Assertion Issuer: '{}'. Assertion Subject: '{}'. Assertion Audience: '{}'. https://learn.microsoft.com/entra/workload-id/workload-identity-federation",
                iss.chars().take(200).collect::<String>(),
                sub.chars().take(200).collect::<String>(),
                auds.join(",").chars().take(200).collect::<String>()
            ),
        ));
    };
    match key {
        IssuerKey::Certificate(der) => {
            verify_with_cert(der, parsed).map_err(|reason| bad_signature(req, Some(reason)))?
        }
        IssuerKey::PublicKeyPem(pem) => {
            let key = jsonwebtoken::DecodingKey::from_rsa_pem(pem.as_bytes())
                .or_else(|_| jsonwebtoken::DecodingKey::from_ec_pem(pem.as_bytes()))
                .map_err(|_| bad_signature(req, Some("The key is not usable.")))?;
            verify_jws(req, parsed, &key)?;
        }
        IssuerKey::JwksUrl(url) => {
            let key = fetch_jwks_key(state, url, parsed).await.map_err(|reason| {
                tracing::warn!(%url, reason, "federated issuer JWKS unusable");
                reply::entra(
                    req,
                    400,
                    "invalid_request",
                    50166,
                    "Request to External OIDC endpoint failed.",
                )
            })?;
            verify_jws(req, parsed, &key)?;
        }
    }
    check_times(req, &parsed.claims)
}

fn verify_jws(
    req: &Req,
    parsed: &Parsed<'_>,
    key: &jsonwebtoken::DecodingKey,
) -> Result<(), Reply> {
    let alg: jsonwebtoken::Algorithm = parsed
        .header
        .get("alg")
        .and_then(Value::as_str)
        .and_then(|a| a.parse().ok())
        .ok_or_else(|| bad_signature(req, Some("The signing algorithm is not supported.")))?;
    let signature = URL_SAFE_NO_PAD.encode(&parsed.signature);
    match jsonwebtoken::crypto::verify(&signature, parsed.signing_input.as_bytes(), key, alg) {
        Ok(true) => Ok(()),
        _ => Err(bad_signature(req, None)),
    }
}

async fn fetch_jwks_key(
    state: &State,
    url: &str,
    parsed: &Parsed<'_>,
) -> Result<jsonwebtoken::DecodingKey, &'static str> {
    let response = state
        .http_client()
        .get(url)
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .map_err(|_| "fetch failed")?;
    if !response.status().is_success() {
        return Err("non-success status");
    }
    let set: jsonwebtoken::jwk::JwkSet = response.json().await.map_err(|_| "not a JWKS")?;
    let kid = parsed.header.get("kid").and_then(Value::as_str);
    let jwk = match kid {
        Some(kid) => set.find(kid),
        None if set.keys.len() == 1 => set.keys.first(),
        None => None,
    }
    .ok_or("no key with that kid")?;
    jsonwebtoken::DecodingKey::from_jwk(jwk).map_err(|_| "unusable key")
}
