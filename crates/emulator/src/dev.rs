//! Identifiers of the default development configuration ([`crate::Config::default`]).
//!
//! Tests and demos refer to these constants instead of hard-coding GUIDs. Nothing here is a real
//! Azure identifier or a real secret.

/// The default tenant.
pub const TENANT_ID: &str = "11111111-1111-4111-8111-111111111111";
/// A verified domain of the default tenant (accepted wherever a tenant id is).
pub const TENANT_DOMAIN: &str = "pgentra.onmicrosoft.com";

/// Client (application) id of the system-assigned managed identity.
pub const SYSTEM_MI_CLIENT_ID: &str = "22222222-2222-4222-8222-000000000001";
/// Object (principal) id of the system-assigned managed identity.
pub const SYSTEM_MI_OBJECT_ID: &str = "22222222-2222-4222-8222-000000000002";
/// ARM id of the resource that owns the system-assigned identity (its `xms_mirid`).
pub const SYSTEM_MI_RESOURCE_ID: &str = "/subscriptions/00000000-0000-4000-8000-000000000000/resourcegroups/pgentra-dev/providers/Microsoft.Web/sites/pgentra-dev-app";

/// Client id of the user-assigned managed identity.
pub const USER_MI_CLIENT_ID: &str = "33333333-3333-4333-8333-000000000001";
/// Object (principal) id of the user-assigned managed identity.
pub const USER_MI_OBJECT_ID: &str = "33333333-3333-4333-8333-000000000002";
/// ARM id of the user-assigned managed identity (`mi_res_id` / `msi_res_id`, `xms_mirid`).
pub const USER_MI_RESOURCE_ID: &str = "/subscriptions/00000000-0000-4000-8000-000000000000/resourcegroups/pgentra-dev/providers/Microsoft.ManagedIdentity/userAssignedIdentities/pgentra-dev-uami";

/// Application (client) id of the service principal.
pub const SP_CLIENT_ID: &str = "44444444-4444-4444-8444-000000000001";
/// Object id of the service principal (what PostgreSQL role labels hold).
pub const SP_OBJECT_ID: &str = "44444444-4444-4444-8444-000000000002";
/// Client secret of the service principal (development only).
pub const SP_SECRET: &str = "pgentra-dev-secret~NOT-A-REAL-SECRET";

/// A public client id accepted for the password (ROPC) grant: the Azure CLI's well-known id.
pub const PUBLIC_CLIENT_ID: &str = "04b07795-8ddb-461a-bbee-02f9e1bf7b46";

/// UPN of the test user (password grant). Its tokens carry `amr: ["pwd"]`.
pub const USER_UPN: &str = "alice@pgentra.onmicrosoft.com";
/// Object id of [`USER_UPN`].
pub const USER_OBJECT_ID: &str = "55555555-5555-4555-8555-000000000001";
/// Password of every development user.
pub const USER_PASSWORD: &str = "pgentra-dev-password";
/// A group [`USER_UPN`] and [`MFA_USER_UPN`] belong to (appears in their `groups` claim).
pub const GROUP_OBJECT_ID: &str = "66666666-6666-4666-8666-000000000001";

/// UPN of a second test user whose tokens carry `amr: ["pwd", "mfa"]`.
pub const MFA_USER_UPN: &str = "bob@pgentra.onmicrosoft.com";
/// Object id of [`MFA_USER_UPN`].
pub const MFA_USER_OBJECT_ID: &str = "55555555-5555-4555-8555-000000000002";

/// The Azure Database for PostgreSQL resource (token audience).
pub const OSSRDBMS_RESOURCE: &str = "https://ossrdbms-aad.database.windows.net";
/// The scope a client asks for to get an [`OSSRDBMS_RESOURCE`] token.
pub const OSSRDBMS_SCOPE: &str = "https://ossrdbms-aad.database.windows.net/.default";
