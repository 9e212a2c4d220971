//! Sidecar metrics: per-instance connection counters in atomics, token-cache figures read from
//! the cache at scrape time, rendered as Prometheus text. Labels carry instance names, scopes
//! and failure reasons only; never a user name or a token.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use pgentra_token::TokenCache;

use crate::metrics::Histogram;

/// Counters of one instance.
#[derive(Debug, Default)]
pub struct InstanceMetrics {
    /// Client connections accepted.
    pub connections_total: AtomicU64,
    /// Client connections open now.
    pub connections_active: AtomicI64,
    /// Connections refused at `max-connections`.
    pub connections_refused_total: AtomicU64,
    /// Sessions that reached the relay phase.
    pub sessions_total: AtomicU64,
    /// Cancel requests received.
    pub cancel_requests_total: AtomicU64,
    /// Logins retried with a force-refreshed token after the server refused the first one.
    pub auth_retries_total: AtomicU64,
    failures: Mutex<BTreeMap<&'static str, u64>>,
}

impl InstanceMetrics {
    /// Counts a failed session start.
    pub fn failure(&self, reason: &'static str) {
        *self
            .failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(reason)
            .or_default() += 1;
    }

    /// Failures recorded for `reason`.
    pub fn failures_for(&self, reason: &str) -> u64 {
        self.failures
            .lock()
            .map(|m| m.get(reason).copied().unwrap_or(0))
            .unwrap_or(0)
    }
}

/// All sidecar metrics.
#[derive(Debug)]
pub struct SidecarMetrics {
    /// `(instance name, its counters)` in configuration order.
    pub instances: Vec<(String, InstanceMetrics)>,
    /// Upstream connect + TLS + login latency, all instances.
    pub upstream_connect_seconds: Histogram,
    /// Forced token refreshes after a refused login, by scope.
    forced_refreshes: Mutex<BTreeMap<String, u64>>,
    tokens: TokenCache,
    scopes: Vec<String>,
}

impl SidecarMetrics {
    /// Metrics for these instances; token figures come from `tokens` for `scopes`.
    pub fn new(names: Vec<String>, tokens: TokenCache, mut scopes: Vec<String>) -> Self {
        scopes.sort();
        scopes.dedup();
        SidecarMetrics {
            instances: names
                .into_iter()
                .map(|n| (n, InstanceMetrics::default()))
                .collect(),
            upstream_connect_seconds: Histogram::default(),
            forced_refreshes: Mutex::new(BTreeMap::new()),
            tokens,
            scopes,
        }
    }

    /// Counters of instance `i`.
    pub fn instance(&self, i: usize) -> &InstanceMetrics {
        &self.instances[i].1
    }

    /// Counts a forced refresh for `scope`.
    pub fn forced_refresh(&self, scope: &str) {
        *self
            .forced_refreshes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(scope.to_owned())
            .or_default() += 1;
    }

    /// Connections open now over all instances.
    pub fn active(&self) -> i64 {
        self.instances
            .iter()
            .map(|(_, m)| m.connections_active.load(Ordering::Relaxed))
            .sum()
    }

    /// The exposition text.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
        type Pick = fn(&InstanceMetrics) -> u64;
        let per_instance: [(&str, &str, &str, Pick); 6] = [
            (
                "pgentra_proxy_connections_total",
                "counter",
                "Client connections accepted.",
                |m| m.connections_total.load(Ordering::Relaxed),
            ),
            (
                "pgentra_proxy_connections_active",
                "gauge",
                "Client connections open now.",
                |m| m.connections_active.load(Ordering::Relaxed).max(0) as u64,
            ),
            (
                "pgentra_proxy_connections_refused_total",
                "counter",
                "Connections refused at max-connections.",
                |m| m.connections_refused_total.load(Ordering::Relaxed),
            ),
            (
                "pgentra_proxy_sessions_total",
                "counter",
                "Sessions that reached the relay phase.",
                |m| m.sessions_total.load(Ordering::Relaxed),
            ),
            (
                "pgentra_proxy_cancel_requests_total",
                "counter",
                "Cancel requests received.",
                |m| m.cancel_requests_total.load(Ordering::Relaxed),
            ),
            (
                "pgentra_proxy_login_retries_total",
                "counter",
                "Logins retried with a fresh token after the server refused the cached one.",
                |m| m.auth_retries_total.load(Ordering::Relaxed),
            ),
        ];
        for (name, kind, help, pick) in per_instance {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for (inst, m) in &self.instances {
                let _ = writeln!(out, "{name}{{instance=\"{}\"}} {}", escape(inst), pick(m));
            }
        }
        let name = "pgentra_proxy_failures_total";
        let _ = writeln!(
            out,
            "# HELP {name} Failed session starts by reason.\n# TYPE {name} counter"
        );
        for (inst, m) in &self.instances {
            if let Ok(f) = m.failures.lock() {
                for (reason, v) in f.iter() {
                    let _ = writeln!(
                        out,
                        "{name}{{instance=\"{}\",reason=\"{reason}\"}} {v}",
                        escape(inst)
                    );
                }
            }
        }
        self.upstream_connect_seconds.render(
            &mut out,
            "pgentra_proxy_upstream_connect_seconds",
            "Upstream connect, TLS and login latency.",
        );
        self.render_tokens(&mut out);
        out
    }

    fn render_tokens(&self, out: &mut String) {
        let stats: Vec<_> = self
            .scopes
            .iter()
            .map(|s| (s.as_str(), self.tokens.stats(s)))
            .collect();
        let forced = self
            .forced_refreshes
            .lock()
            .map(|m| m.clone())
            .unwrap_or_default();
        type Pick = fn(&pgentra_token::CacheStats) -> u64;
        let rows: [(&str, &str, &str, Pick); 4] = [
            (
                "pgentra_proxy_token_fetches_total",
                "counter",
                "Token requests made to the identity endpoint (refreshes), successful or not.",
                |s| s.fetches,
            ),
            (
                "pgentra_proxy_token_fetch_failures_total",
                "counter",
                "Token requests that failed.",
                |s| s.failures,
            ),
            (
                "pgentra_proxy_token_consecutive_failures",
                "gauge",
                "Token request failures since the last success.",
                |s| u64::from(s.consecutive_failures),
            ),
            (
                "pgentra_proxy_token_seconds_to_expiry",
                "gauge",
                "Seconds until the cached token expires (0 when there is none).",
                |s| s.seconds_to_expiry(),
            ),
        ];
        for (name, kind, help, pick) in rows {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for (scope, st) in &stats {
                let v = st.as_ref().map(pick).unwrap_or(0);
                let _ = writeln!(out, "{name}{{scope=\"{}\"}} {v}", escape(scope));
            }
        }
        let name = "pgentra_proxy_token_forced_refreshes_total";
        let _ = writeln!(
            out,
            "# HELP {name} Refreshes forced because the server refused a token.\n# TYPE {name} counter"
        );
        for scope in &self.scopes {
            let v = forced.get(scope).copied().unwrap_or(0);
            let _ = writeln!(out, "{name}{{scope=\"{}\"}} {v}", escape(scope));
        }
    }
}

/// Escapes a label value (backslash, quote, newline).
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use pgentra_token::{AccessToken, StaticToken};

    use super::*;

    #[tokio::test]
    async fn renders_instance_counters_and_token_figures() {
        let tok = AccessToken::new("a.b.c", SystemTime::now() + Duration::from_secs(3600));
        let cache = TokenCache::new(StaticToken::new(tok));
        let m = SidecarMetrics::new(
            vec!["db\"1".into(), "db2".into()],
            cache.clone(),
            vec!["s".into(), "s".into()],
        );
        m.instance(0)
            .connections_total
            .fetch_add(3, Ordering::Relaxed);
        m.instance(1).failure("upstream_connect");
        m.upstream_connect_seconds.observe(Duration::from_millis(3));
        m.forced_refresh("s");
        let before = m.render();
        assert!(before.contains("pgentra_proxy_token_seconds_to_expiry{scope=\"s\"} 0"));
        cache.get_token("s").await.unwrap();
        let text = m.render();
        assert!(text.contains("pgentra_proxy_connections_total{instance=\"db\\\"1\"} 3"));
        assert!(text.contains(
            "pgentra_proxy_failures_total{instance=\"db2\",reason=\"upstream_connect\"} 1"
        ));
        assert!(text.contains("pgentra_proxy_upstream_connect_seconds_count 1"));
        assert!(text.contains("pgentra_proxy_token_fetches_total{scope=\"s\"} 1"));
        assert!(text.contains("pgentra_proxy_token_forced_refreshes_total{scope=\"s\"} 1"));
        let ttl = text
            .lines()
            .find_map(|l| l.strip_prefix("pgentra_proxy_token_seconds_to_expiry{scope=\"s\"} "))
            .unwrap()
            .parse::<u64>()
            .unwrap();
        assert!((3500..=3600).contains(&ttl), "{ttl}");
        assert_eq!(
            text.matches("# TYPE pgentra_proxy_token_fetches_total")
                .count(),
            1
        );
        assert!(!text.contains("a.b.c"));
    }
}
