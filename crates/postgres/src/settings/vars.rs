//! Which environment variables belong to a Service Connector PostgreSQL connection, and how their
//! names are spelled (current `AZURE_POSTGRESQL_*`, legacy `Azure_POSTGRESQL_*`, Spring properties
//! and their relaxed environment form). Collects them from an injected map; never reads the
//! process environment.

use std::collections::BTreeMap;

use super::SettingsError;

/// The `AZURE_POSTGRESQL_*` variables, by suffix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum AzVar {
    ConnectionString,
    Host,
    Port,
    Database,
    Name,
    User,
    Username,
    Ssl,
    ClientId,
    ClientSecret,
    TenantId,
    Password,
}

pub(crate) const AZURE_PREFIX: &str = "AZURE_POSTGRESQL_";
/// The 2022 documentation spelled the prefix this way; Service Connector may still set it on old
/// connections.
pub(crate) const LEGACY_PREFIX: &str = "Azure_POSTGRESQL_";

impl AzVar {
    const ALL: [AzVar; 12] = [
        AzVar::ConnectionString,
        AzVar::Host,
        AzVar::Port,
        AzVar::Database,
        AzVar::Name,
        AzVar::User,
        AzVar::Username,
        AzVar::Ssl,
        AzVar::ClientId,
        AzVar::ClientSecret,
        AzVar::TenantId,
        AzVar::Password,
    ];

    fn suffix(self) -> &'static str {
        match self {
            AzVar::ConnectionString => "CONNECTIONSTRING",
            AzVar::Host => "HOST",
            AzVar::Port => "PORT",
            AzVar::Database => "DATABASE",
            AzVar::Name => "NAME",
            AzVar::User => "USER",
            AzVar::Username => "USERNAME",
            AzVar::Ssl => "SSL",
            AzVar::ClientId => "CLIENTID",
            AzVar::ClientSecret => "CLIENTSECRET",
            AzVar::TenantId => "TENANTID",
            AzVar::Password => "PASSWORD",
        }
    }

    /// The current (upper-case) name, as rendered.
    pub(crate) fn name(self) -> String {
        format!("{AZURE_PREFIX}{}", self.suffix())
    }

    fn from_suffix(s: &str) -> Option<AzVar> {
        AzVar::ALL.into_iter().find(|v| v.suffix() == s)
    }
}

/// The Spring properties Service Connector sets for `--client-type springboot`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum SpringKey {
    PasswordlessEnabled,
    Url,
    Username,
    Password,
    ClientId,
    ClientSecret,
    TenantId,
    ManagedIdentityEnabled,
}

/// Spring namespaces owned by the passwordless connection: an unknown key inside them is an error.
/// Other `spring.datasource.*` keys (Hikari settings, driver class) belong to the application.
const SPRING_OWNED: [&str; 2] = ["spring.datasource.azure.", "spring.cloud.azure.credential."];

impl SpringKey {
    /// The property name as rendered.
    pub(crate) fn name(self) -> &'static str {
        match self {
            SpringKey::PasswordlessEnabled => "spring.datasource.azure.passwordless-enabled",
            SpringKey::Url => "spring.datasource.url",
            SpringKey::Username => "spring.datasource.username",
            SpringKey::Password => "spring.datasource.password",
            SpringKey::ClientId => "spring.cloud.azure.credential.client-id",
            SpringKey::ClientSecret => "spring.cloud.azure.credential.client-secret",
            SpringKey::TenantId => "spring.cloud.azure.credential.tenant-id",
            // §9.1 lists this spelling; Spring Cloud Azure's own property is
            // `managed-identity-enabled`, which is accepted too.
            SpringKey::ManagedIdentityEnabled => {
                "spring.cloud.azure.credential.client-managed-identity-enabled"
            }
        }
    }

    /// Looks up a key already normalized by [`normalize_spring`].
    fn from_normalized(k: &str) -> Option<SpringKey> {
        Some(match k {
            "spring.datasource.azure.passwordlessenabled" => SpringKey::PasswordlessEnabled,
            "spring.datasource.url" => SpringKey::Url,
            "spring.datasource.username" => SpringKey::Username,
            "spring.datasource.password" => SpringKey::Password,
            "spring.cloud.azure.credential.clientid" => SpringKey::ClientId,
            "spring.cloud.azure.credential.clientsecret" => SpringKey::ClientSecret,
            "spring.cloud.azure.credential.tenantid" => SpringKey::TenantId,
            "spring.cloud.azure.credential.clientmanagedidentityenabled"
            | "spring.cloud.azure.credential.managedidentityenabled" => {
                SpringKey::ManagedIdentityEnabled
            }
            _ => return None,
        })
    }
}

/// Spring's relaxed binding: `spring.datasource.azure.passwordless-enabled` and
/// `SPRING_DATASOURCE_AZURE_PASSWORDLESSENABLED` name the same property. Returns the dotted,
/// lower-case, dash-less form, or `None` for keys that are not Spring properties.
fn normalize_spring(key: &str) -> Option<String> {
    let dotted = if key.starts_with("spring.") {
        key.to_ascii_lowercase()
    } else if key.starts_with("SPRING_") {
        key.to_ascii_lowercase().replace('_', ".")
    } else {
        return None;
    };
    Some(dotted.replace('-', ""))
}

/// One variable as found: the name exactly as spelled (for error messages) and its value.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub name: String,
    pub value: String,
}

/// The connection's variables picked out of a whole environment.
#[derive(Debug, Default)]
pub(crate) struct Collected {
    pub azure: BTreeMap<AzVar, Entry>,
    pub spring: BTreeMap<SpringKey, Entry>,
}

/// Picks the connection's variables out of `vars`, ignoring everything else. Fails on an unknown
/// `AZURE_POSTGRESQL_*` name or unknown key in an owned Spring namespace, and on two spellings of
/// one variable with different values.
pub(crate) fn collect<I, K, V>(vars: I) -> Result<Collected, SettingsError>
where
    I: IntoIterator<Item = (K, V)>,
    K: AsRef<str>,
    V: AsRef<str>,
{
    // Sorted so that which spelling is reported as "first" does not depend on map order.
    let mut sorted: Vec<(String, String)> = vars
        .into_iter()
        .map(|(k, v)| (k.as_ref().to_owned(), v.as_ref().to_owned()))
        .collect();
    sorted.sort();
    let mut out = Collected::default();
    for (name, value) in sorted {
        if let Some(suffix) = name
            .strip_prefix(AZURE_PREFIX)
            .or_else(|| name.strip_prefix(LEGACY_PREFIX))
        {
            let var = AzVar::from_suffix(suffix).ok_or_else(|| SettingsError::Unknown {
                variable: name.clone(),
            })?;
            insert(&mut out.azure, var, Entry { name, value })?;
        } else if let Some(norm) = normalize_spring(&name) {
            match SpringKey::from_normalized(&norm) {
                Some(key) => insert(&mut out.spring, key, Entry { name, value })?,
                None if SPRING_OWNED
                    .iter()
                    .any(|p| norm.starts_with(&p.replace('-', ""))) =>
                {
                    return Err(SettingsError::Unknown { variable: name });
                }
                None => {}
            }
        }
    }
    Ok(out)
}

fn insert<T: Ord + Copy>(
    map: &mut BTreeMap<T, Entry>,
    key: T,
    entry: Entry,
) -> Result<(), SettingsError> {
    match map.get(&key) {
        Some(first) if first.value != entry.value => Err(SettingsError::Conflict {
            variable: entry.name,
            other: first.name.clone(),
            reason: "both name the same setting with different values".into(),
        }),
        Some(_) => Ok(()),
        None => {
            map.insert(key, entry);
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spring_relaxed_names_match_dotted_names() {
        for (a, b) in [
            (
                "spring.datasource.azure.passwordless-enabled",
                "SPRING_DATASOURCE_AZURE_PASSWORDLESSENABLED",
            ),
            (
                "spring.cloud.azure.credential.client-id",
                "SPRING_CLOUD_AZURE_CREDENTIAL_CLIENTID",
            ),
        ] {
            assert_eq!(normalize_spring(a), normalize_spring(b));
            assert!(SpringKey::from_normalized(&normalize_spring(a).unwrap()).is_some());
        }
        assert_eq!(normalize_spring("PATH"), None);
        // Every rendered name is recognised again.
        for key in [
            SpringKey::PasswordlessEnabled,
            SpringKey::Url,
            SpringKey::Username,
            SpringKey::Password,
            SpringKey::ClientId,
            SpringKey::ClientSecret,
            SpringKey::TenantId,
            SpringKey::ManagedIdentityEnabled,
        ] {
            let norm = normalize_spring(key.name()).unwrap();
            assert_eq!(SpringKey::from_normalized(&norm), Some(key));
        }
    }

    #[test]
    fn every_azure_name_is_recognised_in_both_spellings() {
        for var in AzVar::ALL {
            for prefix in [AZURE_PREFIX, LEGACY_PREFIX] {
                let name = format!("{prefix}{}", var.suffix());
                let c = collect([(name.as_str(), "x")]).unwrap();
                assert_eq!(c.azure[&var].name, name);
            }
        }
    }

    #[test]
    fn same_value_in_two_spellings_is_fine_different_values_conflict() {
        let c = collect([
            ("AZURE_POSTGRESQL_HOST", "h"),
            ("Azure_POSTGRESQL_HOST", "h"),
        ])
        .unwrap();
        assert_eq!(c.azure[&AzVar::Host].value, "h");
        let err = collect([
            ("Azure_POSTGRESQL_HOST", "h2"),
            ("AZURE_POSTGRESQL_HOST", "h"),
        ])
        .unwrap_err();
        assert_eq!(
            err,
            SettingsError::Conflict {
                variable: "Azure_POSTGRESQL_HOST".into(),
                other: "AZURE_POSTGRESQL_HOST".into(),
                reason: "both name the same setting with different values".into(),
            }
        );
    }

    #[test]
    fn unknown_names_in_owned_namespaces_are_errors_others_ignored() {
        for name in [
            "AZURE_POSTGRESQL_HOSTNAME",
            "Azure_POSTGRESQL_",
            "spring.datasource.azure.scopes",
            "SPRING_CLOUD_AZURE_CREDENTIAL_CLIENTCERTIFICATEPATH",
        ] {
            let err = collect([(name, "x")]).unwrap_err();
            assert_eq!(
                err,
                SettingsError::Unknown {
                    variable: name.into()
                }
            );
        }
        let c = collect([
            ("PATH", "/bin"),
            ("spring.datasource.hikari.maximum-pool-size", "10"),
            ("AZURE_CLIENT_ID", "x"),
            (
                "azure_postgresql_host",
                "lower-case is not Service Connector's",
            ),
        ])
        .unwrap();
        assert!(c.azure.is_empty() && c.spring.is_empty());
    }
}
