//! The pgaadauth functions behave like Azure's, and registry changes reach a running gateway.

use std::time::Duration;

use pgentra_emulator::{Principal, dev};
use pgentra_proxy::DirectoryEntry;

use crate::support::*;

#[tokio::test]
async fn pgaadauth_functions_match_azure() {
    let fx = Fixture::start_with(
        Options {
            register: false,
            ..Options::default()
        },
        |c, _| {
            c.registry.admins = vec![DirectoryEntry {
                name: dev::USER_UPN.into(),
                object_id: dev::USER_OBJECT_ID.into(),
                object_type: "user".into(),
                tenant_id: None,
            }]
        },
    )
    .await;
    // The Entra admin (registered by `init`) logs in through the gateway and manages principals.
    let admin = fx
        .connect(USER_ROLE, &fx.token(Principal::User { upn: dev::USER_UPN }))
        .await
        .expect("admin logs in");
    let one = |sql: &'static str| {
        let admin = &admin;
        async move {
            admin
                .query_one(sql, &[])
                .await
                .map(|r| r.get::<_, String>(0))
        }
    };
    assert_eq!(
        one("select pgaadauth_create_principal('pgentra-dev-app', false, false)")
            .await
            .unwrap(),
        "Created role for \"pgentra-dev-app\""
    );
    assert_eq!(
        one("select pgaadauth_create_principal_with_oid('reporting', '22222222-2222-4222-8222-000000000002', 'service', true, true)")
            .await
            .unwrap(),
        "Created role for \"reporting\""
    );
    let err = one("select pgaadauth_create_principal('nobody@example.com', false, false)")
        .await
        .unwrap_err();
    assert_eq!(
        err.as_db_error().unwrap().message(),
        "Could not validate AAD user nobody@example.com because its name is not found in the tenant."
    );
    let err = one("select pgaadauth_create_principal('duplicate-name', false, false)")
        .await
        .unwrap_err();
    assert_eq!(
        err.as_db_error().unwrap().message(),
        "Cannot validate Microsoft Entra ID user because its name isn't unique"
    );
    let err = one(
        "select pgaadauth_create_principal_with_oid('x', 'not-a-guid', 'service', false, false)",
    )
    .await
    .unwrap_err();
    assert!(
        err.as_db_error()
            .unwrap()
            .message()
            .contains("is not a valid GUID")
    );

    let list = |admins: bool| {
        let admin = &admin;
        async move {
            admin
                .query("select * from pgaadauth_list_principals($1)", &[&admins])
                .await
                .unwrap()
                .iter()
                .map(|r| {
                    (
                        r.get::<_, String>("rolname"),
                        r.get::<_, String>("principaltype"),
                        r.get::<_, String>("objectid"),
                        r.get::<_, String>("tenantid"),
                        r.get::<_, i32>("ismfa"),
                        r.get::<_, i32>("isadmin"),
                    )
                })
                .collect::<Vec<_>>()
        }
    };
    let t = dev::TENANT_ID.to_owned();
    assert_eq!(
        list(true).await,
        vec![
            (
                USER_ROLE.to_owned(),
                "user".to_owned(),
                dev::USER_OBJECT_ID.to_owned(),
                t.clone(),
                0,
                1
            ),
            (
                "reporting".to_owned(),
                "service".to_owned(),
                dev::SYSTEM_MI_OBJECT_ID.to_owned(),
                t.clone(),
                1,
                1
            ),
        ]
    );
    assert_eq!(list(false).await.len(), 3);
    // The column types are Azure's: name, text, text, text, integer, integer.
    let stmt = admin
        .prepare("select * from pgaadauth_list_principals(false)")
        .await
        .unwrap();
    let types: Vec<String> = stmt
        .columns()
        .iter()
        .map(|c| c.type_().name().to_owned())
        .collect();
    assert_eq!(types, ["name", "text", "text", "text", "int4", "int4"]);

    // isAdmin → member of azure_pg_admin with CREATEROLE and CREATEDB; the label mirrors Azure's.
    let out = fx
        .pg
        .psql(
            "postgres",
            "select r.rolcanlogin, r.rolcreaterole, r.rolcreatedb, pg_has_role('reporting', 'azure_pg_admin', 'member'), p.label
             from pg_roles r join pgaadauth.principals p using (rolname) where rolname = 'reporting'",
        )
        .unwrap();
    assert_eq!(
        out.trim(),
        format!(
            "t|t|t|t|aadauth,oid={},type=service,admin",
            dev::SYSTEM_MI_OBJECT_ID
        )
    );
    assert_eq!(
        one("select pgaadauth_drop_principal('reporting')")
            .await
            .unwrap(),
        "Dropped role for \"reporting\""
    );
    assert_eq!(
        fx.pg
            .psql(
                "postgres",
                "select count(*) from pg_roles where rolname = 'reporting'"
            )
            .unwrap()
            .trim(),
        "0"
    );
    // Like Azure, the functions live in the `postgres` database only.
    fx.pg.psql("postgres", "create database appdb").unwrap();
    let err = fx
        .pg
        .psql("appdb", "select * from pgaadauth_list_principals(false)")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("function pgaadauth_list_principals(boolean) does not exist"),
        "{err}"
    );
    // init is idempotent and keeps registered principals.
    pgentra_proxy::init(&fx.config).await.unwrap();
    assert_eq!(list(false).await.len(), 2);
    fx.stop().await;
}

#[tokio::test]
async fn registry_changes_take_effect_without_restart() {
    let fx = Fixture::start().await;
    let token = fx.token(Principal::ServicePrincipal {
        client_id: dev::SP_CLIENT_ID,
    });
    let refused = fx.whoami("late-joiner", &token).await.unwrap_err();
    assert_eq!(
        db_error(&refused).1,
        "password authentication failed for user \"late-joiner\""
    );

    let seen = fx.handle.registry_generation();
    fx.pg
        .psql(
            "postgres",
            &format!(
                "select pgaadauth_create_principal_with_oid('late-joiner', '{}', 'service', false, false)",
                dev::SP_CLIENT_ID
            ),
        )
        .unwrap();
    // The periodic reload is an hour away: only the notification can deliver this in time.
    tokio::time::timeout(
        Duration::from_secs(10),
        fx.handle.registry_changed_since(seen),
    )
    .await
    .expect("registry reloaded after NOTIFY");
    assert!(fx.handle.is_registered("late-joiner"));
    // Registered by client id (appid) rather than object id: Azure accepts either.
    assert_eq!(
        fx.whoami("late-joiner", &token).await.unwrap(),
        "late-joiner"
    );

    let seen = fx.handle.registry_generation();
    fx.pg
        .psql("postgres", "select pgaadauth_drop_principal('late-joiner')")
        .unwrap();
    tokio::time::timeout(
        Duration::from_secs(10),
        fx.handle.registry_changed_since(seen),
    )
    .await
    .expect("registry reloaded after drop");
    let refused = fx.whoami("late-joiner", &token).await.unwrap_err();
    assert_eq!(
        db_error(&refused).1,
        "password authentication failed for user \"late-joiner\""
    );
    fx.stop().await;
}
