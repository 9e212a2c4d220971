//! The environment as a value: credentials read variables from an [`Env`], never from the process.
//!
//! Only [`Env::from_process`] reads the real environment; nothing here ever writes it, so tests
//! build an `Env` from a map and never call `set_var`.

use std::collections::BTreeMap;
use std::fmt;

/// Names of the environment variables this crate reads.
pub mod vars {
    /// Client (application) id: service principal, workload identity, user-assigned MI in the chain.
    pub const AZURE_CLIENT_ID: &str = "AZURE_CLIENT_ID";
    /// Tenant id.
    pub const AZURE_TENANT_ID: &str = "AZURE_TENANT_ID";
    /// Client secret of a service principal.
    pub const AZURE_CLIENT_SECRET: &str = "AZURE_CLIENT_SECRET";
    /// PEM file holding a certificate and its private key.
    pub const AZURE_CLIENT_CERTIFICATE_PATH: &str = "AZURE_CLIENT_CERTIFICATE_PATH";
    /// Password of a PFX certificate (not supported: PEM only).
    pub const AZURE_CLIENT_CERTIFICATE_PASSWORD: &str = "AZURE_CLIENT_CERTIFICATE_PASSWORD";
    /// `true` to send the certificate (`x5c`) with the assertion (subject-name/issuer auth).
    pub const AZURE_CLIENT_SEND_CERTIFICATE_CHAIN: &str = "AZURE_CLIENT_SEND_CERTIFICATE_CHAIN";
    /// Projected service-account token of AKS workload identity.
    pub const AZURE_FEDERATED_TOKEN_FILE: &str = "AZURE_FEDERATED_TOKEN_FILE";
    /// Authority host (`https://login.microsoftonline.com` by default).
    pub const AZURE_AUTHORITY_HOST: &str = "AZURE_AUTHORITY_HOST";
    /// IMDS base URL override (pod identity, emulators).
    pub const AZURE_POD_IDENTITY_AUTHORITY_HOST: &str = "AZURE_POD_IDENTITY_AUTHORITY_HOST";
    /// Restricts the default chain: `dev`, `prod` or one credential name.
    pub const AZURE_TOKEN_CREDENTIALS: &str = "AZURE_TOKEN_CREDENTIALS";
    /// App Service / Container Apps / Functions identity endpoint.
    pub const IDENTITY_ENDPOINT: &str = "IDENTITY_ENDPOINT";
    /// Shared secret for [`IDENTITY_ENDPOINT`].
    pub const IDENTITY_HEADER: &str = "IDENTITY_HEADER";
    /// Set by Service Fabric (not supported).
    pub const IDENTITY_SERVER_THUMBPRINT: &str = "IDENTITY_SERVER_THUMBPRINT";
    /// Set by Azure Arc (not supported).
    pub const IMDS_ENDPOINT: &str = "IMDS_ENDPOINT";
    /// Set by Azure ML and Cloud Shell (not supported).
    pub const MSI_ENDPOINT: &str = "MSI_ENDPOINT";
    /// Search path for the `az` program.
    pub const PATH: &str = "PATH";
}

/// A set of environment variables.
///
/// `Debug` prints only the names, since values include secrets (`AZURE_CLIENT_SECRET`,
/// `IDENTITY_HEADER`).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Env {
    vars: BTreeMap<String, String>,
}

impl Env {
    /// An empty environment.
    pub fn new() -> Self {
        Env::default()
    }

    /// A snapshot of the process environment (variables whose name or value is not UTF-8 are
    /// left out).
    pub fn from_process() -> Self {
        std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
            .collect()
    }

    /// Adds or replaces a variable, builder style.
    pub fn with(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.set(name, value);
        self
    }

    /// Adds or replaces a variable.
    pub fn set(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.vars.insert(name.into(), value.into());
    }

    /// Removes a variable.
    pub fn remove(&mut self, name: &str) -> Option<String> {
        self.vars.remove(name)
    }

    /// A variable's value; an empty value counts as unset, as in the Azure SDKs.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.trim().is_empty())
    }

    /// True when the variable is set to a non-empty value.
    pub fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// All variables, sorted by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.vars.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for Env {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        let mut env = Env::new();
        env.extend(iter);
        env
    }
}

impl<K: Into<String>, V: Into<String>> Extend<(K, V)> for Env {
    fn extend<I: IntoIterator<Item = (K, V)>>(&mut self, iter: I) {
        for (k, v) in iter {
            self.set(k, v);
        }
    }
}

impl fmt::Debug for Env {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Env")
            .field("names", &self.vars.keys().collect::<Vec<_>>())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_values_are_unset_and_debug_hides_values() {
        let env: Env = [("A", "1"), ("B", ""), ("AZURE_CLIENT_SECRET", "s3cr3t")]
            .into_iter()
            .collect();
        assert_eq!(env.get("A"), Some("1"));
        assert_eq!(env.get("B"), None);
        assert!(!env.has("C"));
        let dbg = format!("{env:?}");
        assert!(
            dbg.contains("AZURE_CLIENT_SECRET") && !dbg.contains("s3cr3t"),
            "{dbg}"
        );
    }
}
