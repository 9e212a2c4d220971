//! The credentials: each gets tokens from one kind of identity endpoint and is usable alone.
//!
//! None of them caches; wrap one in a [`TokenCache`](crate::TokenCache).

pub(crate) mod azure_cli;
pub(crate) mod certificate;
pub(crate) mod client_secret;
pub(crate) mod entra;
pub(crate) mod environment;
pub(crate) mod managed_identity;
pub(crate) mod workload_identity;
