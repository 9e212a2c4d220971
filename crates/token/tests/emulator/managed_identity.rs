//! Managed identity against the emulator: App Service and IMDS, system- and user-assigned,
//! documented failures, IMDS retries.

use std::time::{Duration, Instant};

use pgentra_emulator::{EndpointKind, Fault, dev};
use pgentra_token::{
    ErrorKind, ManagedIdentityCredential, OSSRDBMS_SCOPE, RetryPolicy, TokenSource, UserAssignedId,
};

use crate::common::*;

fn app_service(
    emu: &pgentra_emulator::RunningEmulator,
    id: Option<UserAssignedId>,
) -> ManagedIdentityCredential {
    let mut o = mi(emu);
    o.user_assigned = id;
    ManagedIdentityCredential::app_service(&emu.identity_endpoint(), emu.identity_header(), o)
        .unwrap()
}

fn imds(
    emu: &pgentra_emulator::RunningEmulator,
    id: Option<UserAssignedId>,
) -> ManagedIdentityCredential {
    let mut o = mi(emu).with_imds_host(emu.imds_host());
    o.user_assigned = id;
    ManagedIdentityCredential::imds(o).unwrap()
}

#[tokio::test]
async fn both_endpoints_serve_system_and_user_assigned_identities() {
    let emu = emulator().await;
    let cases: Vec<(Option<UserAssignedId>, &str, &str, &str)> = vec![
        (None, dev::SYSTEM_MI_OBJECT_ID, "", ""),
        (
            Some(UserAssignedId::ClientId(dev::USER_MI_CLIENT_ID.into())),
            dev::USER_MI_OBJECT_ID,
            "client_id=",
            "client_id=",
        ),
        (
            Some(UserAssignedId::ObjectId(dev::USER_MI_OBJECT_ID.into())),
            dev::USER_MI_OBJECT_ID,
            "object_id=",
            "object_id=",
        ),
        (
            Some(UserAssignedId::ResourceId(dev::USER_MI_RESOURCE_ID.into())),
            dev::USER_MI_OBJECT_ID,
            "mi_res_id=",
            "msi_res_id=",
        ),
    ];
    for (id, oid, app_param, imds_param) in cases {
        for (cred, kind, param) in [
            (
                app_service(&emu, id.clone()),
                EndpointKind::AppService,
                app_param,
            ),
            (imds(&emu, id.clone()), EndpointKind::Imds, imds_param),
        ] {
            emu.clear_requests();
            let tok = cred
                .get_token(OSSRDBMS_SCOPE)
                .await
                .unwrap_or_else(|e| panic!("{id:?} {kind:?}: {e}"));
            let claims = tok.claims().unwrap();
            assert_eq!(claims.oid.as_deref(), Some(oid), "{id:?} {kind:?}");
            assert_eq!(claims.aud.as_deref(), Some(dev::OSSRDBMS_RESOURCE));
            assert!(tok.expires_in(std::time::SystemTime::now()) > Duration::from_secs(23 * 3600));
            let reqs = emu.requests();
            assert_eq!(reqs.len(), 1, "{reqs:?}");
            assert_eq!(reqs[0].endpoint, kind);
            assert_eq!(reqs[0].status, 200);
            assert_eq!(
                reqs[0].resource.as_deref(),
                Some(dev::OSSRDBMS_RESOURCE),
                "scope's /.default stripped"
            );
            assert!(reqs[0].query.contains(param), "{kind:?} {}", reqs[0].query);
        }
    }
}

#[tokio::test]
async fn unknown_identity_is_reported_as_not_found() {
    let emu = emulator().await;
    let id = UserAssignedId::ClientId("99999999-9999-4999-8999-999999999999".into());
    for cred in [
        app_service(&emu, Some(id.clone())),
        imds(&emu, Some(id.clone())),
    ] {
        let e = cred.get_token(OSSRDBMS_SCOPE).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Authentication, "{e}");
        assert!(!e.is_retryable());
        assert_eq!(e.credential(), Some("ManagedIdentityCredential"));
        assert_eq!(e.http_status(), Some(400));
        let text = e.to_string();
        assert!(text.contains("identity not found"), "{text}");
        assert!(
            text.contains("99999999-9999-4999-8999-999999999999"),
            "names the identity: {text}"
        );
    }
}

#[tokio::test]
async fn wrong_identity_header_is_explained_and_never_echoed() {
    let emu = emulator().await;
    let cred = ManagedIdentityCredential::app_service(
        &emu.identity_endpoint(),
        "wrong-header-value",
        mi(&emu),
    )
    .unwrap();
    let e = cred.get_token(OSSRDBMS_SCOPE).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Authentication);
    assert_eq!(e.http_status(), Some(403));
    let text = e.to_string();
    assert!(text.contains("IDENTITY_HEADER"), "{text}");
    assert!(!text.contains("wrong-header-value"), "{text}");
    assert!(!format!("{e:?}").contains("wrong-header-value"));
}

#[tokio::test]
async fn unknown_resource_carries_the_aadsts_code() {
    let emu = emulator().await;
    let e = imds(&emu, None)
        .get_token("https://unknown.example.com/.default")
        .await
        .unwrap_err();
    assert_eq!(e.aadsts(), Some(500011), "{e}");
    assert!(e.to_string().contains("resource"), "{e}");
}

#[tokio::test]
async fn imds_retries_transient_statuses_then_succeeds() {
    let emu = emulator().await;
    emu.faults().inject(
        EndpointKind::Imds,
        Fault::Status {
            status: 500,
            retry_after: None,
        },
        Some(1),
    );
    emu.faults().inject(
        EndpointKind::Imds,
        Fault::Status {
            status: 410,
            retry_after: None,
        },
        Some(1),
    );
    emu.faults().inject(
        EndpointKind::Imds,
        Fault::Status {
            status: 404,
            retry_after: None,
        },
        Some(1),
    );
    let tok = imds(&emu, None).get_token(OSSRDBMS_SCOPE).await.unwrap();
    assert!(!tok.secret().is_empty());
    let statuses: Vec<u16> = emu.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, vec![500, 410, 404, 200]);
}

#[tokio::test]
async fn imds_honours_retry_after() {
    let emu = emulator().await;
    emu.faults().inject(
        EndpointKind::Imds,
        Fault::Status {
            status: 429,
            retry_after: Some(1),
        },
        Some(1),
    );
    let mut o = mi(&emu).with_imds_host(emu.imds_host());
    o.http = o.http.with_imds_retry(RetryPolicy::new(
        2,
        Duration::from_millis(1),
        Duration::from_secs(5),
    ));
    let cred = ManagedIdentityCredential::imds(o).unwrap();
    let started = Instant::now();
    cred.get_token(OSSRDBMS_SCOPE).await.unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(950),
        "waited {:?}",
        started.elapsed()
    );
    assert_eq!(count(&emu, EndpointKind::Imds), 2);
}

#[tokio::test]
async fn imds_retries_are_bounded() {
    let emu = emulator().await;
    emu.faults().inject(
        EndpointKind::Imds,
        Fault::Status {
            status: 503,
            retry_after: None,
        },
        None,
    );
    let e = imds(&emu, None)
        .get_token(OSSRDBMS_SCOPE)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Upstream);
    assert!(e.is_retryable());
    assert_eq!(e.http_status(), Some(503));
    assert_eq!(count(&emu, EndpointKind::Imds), 4, "1 attempt + 3 retries");
}

#[tokio::test]
async fn throttling_and_timeouts_have_their_own_kinds() {
    let emu = emulator().await;
    emu.faults().inject(
        EndpointKind::AppService,
        Fault::Status {
            status: 429,
            retry_after: None,
        },
        None,
    );
    let e = app_service(&emu, None)
        .get_token(OSSRDBMS_SCOPE)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Throttled);
    assert!(e.is_retryable());
    emu.faults().clear();

    emu.faults().inject(
        EndpointKind::AppService,
        Fault::Delay(Duration::from_secs(3)),
        None,
    );
    let mut o = mi(&emu);
    o.http = o.http.with_timeout(Duration::from_millis(200));
    let cred =
        ManagedIdentityCredential::app_service(&emu.identity_endpoint(), emu.identity_header(), o)
            .unwrap();
    let e = cred.get_token(OSSRDBMS_SCOPE).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
    assert!(e.is_retryable());
    assert!(
        e.to_string().contains(&emu.identity_endpoint()),
        "names the URL: {e}"
    );
}

#[tokio::test]
async fn unreachable_endpoint_names_the_url() {
    let url = closed_url();
    let cred = ManagedIdentityCredential::imds(
        pgentra_token::ManagedIdentityOptions::default().with_imds_host(url.clone()),
    )
    .unwrap();
    let e = cred.get_token(OSSRDBMS_SCOPE).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unreachable, "{e}");
    assert!(e.is_retryable());
    assert!(
        e.to_string()
            .contains(&format!("{url}/metadata/identity/oauth2/token")),
        "{e}"
    );
}
