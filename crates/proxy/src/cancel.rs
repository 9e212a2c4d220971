//! Cancel routing: the key handed to a client in `BackendKeyData` is the proxy's own; this map
//! turns it back into the upstream server's key and address. It never opens client sockets.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use rand::Rng;

use crate::config::Endpoint;

#[derive(Debug, Clone)]
struct Target {
    secret: [u8; 4],
    endpoint: Endpoint,
    upstream_pid: i32,
    upstream_secret: Bytes,
}

/// Live sessions' cancel keys.
#[derive(Debug, Default, Clone)]
pub struct CancelMap {
    inner: Arc<Mutex<HashMap<i32, Target>>>,
}

/// Removes its key from the map when the session ends.
#[derive(Debug)]
pub struct CancelKeyGuard {
    map: CancelMap,
    process_id: i32,
}

impl Drop for CancelKeyGuard {
    fn drop(&mut self) {
        if let Ok(mut m) = self.map.inner.lock() {
            m.remove(&self.process_id);
        }
    }
}

/// Where a matched cancel request must go.
#[derive(Debug, Clone)]
pub struct CancelRoute {
    /// Upstream address.
    pub endpoint: Endpoint,
    /// Upstream process id.
    pub process_id: i32,
    /// Upstream secret.
    pub secret: Bytes,
}

impl CancelMap {
    /// Registers an upstream key and returns the client-facing `(process_id, secret)` plus the
    /// guard that unregisters it.
    pub fn register(
        &self,
        endpoint: Endpoint,
        upstream_pid: i32,
        upstream_secret: Bytes,
    ) -> (i32, [u8; 4], CancelKeyGuard) {
        let mut rng = rand::rng();
        let secret: [u8; 4] = rng.random();
        let mut m = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let process_id = loop {
            // Positive like real backend pids; random so keys of other sessions are not guessable.
            let pid = rng.random_range(1..i32::MAX);
            if !m.contains_key(&pid) {
                break pid;
            }
        };
        m.insert(
            process_id,
            Target {
                secret,
                endpoint,
                upstream_pid,
                upstream_secret,
            },
        );
        (
            process_id,
            secret,
            CancelKeyGuard {
                map: self.clone(),
                process_id,
            },
        )
    }

    /// Finds the upstream target of a client's cancel request. Wrong secrets match nothing.
    pub fn route(&self, process_id: i32, secret: &[u8]) -> Option<CancelRoute> {
        let m = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let t = m.get(&process_id)?;
        // Compare without early exit so the secret cannot be guessed byte by byte.
        if secret.len() != t.secret.len()
            || secret
                .iter()
                .zip(t.secret.iter())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                != 0
        {
            return None;
        }
        Some(CancelRoute {
            endpoint: t.endpoint.clone(),
            process_id: t.upstream_pid,
            secret: t.upstream_secret.clone(),
        })
    }

    /// Number of registered sessions.
    pub fn len(&self) -> usize {
        self.inner.lock().map(|m| m.len()).unwrap_or(0)
    }

    /// Whether no session is registered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn register_route_and_unregister() {
        let map = CancelMap::default();
        let ep = Endpoint {
            host: "/tmp".into(),
            port: 5432,
        };
        let (pid, secret, guard) = map.register(ep.clone(), 77, Bytes::from_static(b"abcd"));
        let route = map.route(pid, &secret).expect("routed");
        assert_eq!(route.process_id, 77);
        assert_eq!(&route.secret[..], b"abcd");
        assert_eq!(route.endpoint, ep);
        let mut wrong = secret;
        wrong[0] ^= 1;
        assert!(map.route(pid, &wrong).is_none());
        assert!(map.route(pid, &secret[..3]).is_none());
        drop(guard);
        assert!(map.route(pid, &secret).is_none());
        assert!(map.is_empty());
    }
}
