//! Connection pools that open every new connection with the current token: deadpool, bb8 and
//! sqlx, each behind its cargo feature. Pools hold no token of their own; they ask a
//! [`Connector`](crate::Connector) (or, for sqlx, a refresher task) each time.

#[cfg(feature = "bb8")]
pub mod bb8;
#[cfg(feature = "deadpool")]
pub mod deadpool;
#[cfg(feature = "sqlx")]
pub mod sqlx;
