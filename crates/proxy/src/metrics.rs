//! Prometheus metrics kept in atomics and rendered as text exposition format. No HTTP here
//! (see `health`), and no label ever carries a user name or token.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

/// Latency buckets in seconds, from 50 µs (cached validation) to 10 s (slow upstream).
const BUCKETS: [f64; 14] = [
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0, 10.0,
];

/// A cumulative histogram with fixed buckets.
#[derive(Debug, Default)]
pub struct Histogram {
    counts: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_nanos: AtomicU64,
}

impl Histogram {
    /// Records one observation.
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        for (i, b) in BUCKETS.iter().enumerate() {
            if secs <= *b {
                self.counts[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_nanos
            .fetch_add(d.as_nanos().min(u64::MAX as u128) as u64, Ordering::Relaxed);
    }

    /// Number of observations.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// Appends this histogram as Prometheus text under `name`.
    pub fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        for (i, b) in BUCKETS.iter().enumerate() {
            let _ = writeln!(
                out,
                "{name}_bucket{{le=\"{b}\"}} {}",
                self.counts[i].load(Ordering::Relaxed)
            );
        }
        let count = self.count();
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let sum = self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
        let _ = writeln!(out, "{name}_sum {sum}\n{name}_count {count}");
    }
}

/// All gateway metrics.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Client connections accepted.
    pub connections_total: AtomicU64,
    /// Client connections open now.
    pub connections_active: AtomicI64,
    /// Connections refused because `max_connections` was reached.
    pub connections_refused_total: AtomicU64,
    /// Sessions that reached the splice phase.
    pub sessions_total: AtomicU64,
    /// Cancel requests received.
    pub cancel_requests_total: AtomicU64,
    /// Successful logins by method (`entra`, `entra_cached`, `password`).
    logins: Mutex<BTreeMap<&'static str, u64>>,
    /// Failed startups by reason.
    failures: Mutex<BTreeMap<&'static str, u64>>,
    /// Token validation latency (cached and uncached).
    pub validation_seconds: Histogram,
    /// Upstream connect + login latency.
    pub upstream_connect_seconds: Histogram,
}

impl Metrics {
    /// Counts a successful login.
    pub fn login(&self, method: &'static str) {
        *self
            .logins
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(method)
            .or_default() += 1;
    }

    /// Counts a failed startup.
    pub fn failure(&self, reason: &'static str) {
        *self
            .failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(reason)
            .or_default() += 1;
    }

    /// Failures recorded for `reason` so far.
    pub fn failures_for(&self, reason: &str) -> u64 {
        self.failures
            .lock()
            .map(|m| m.get(reason).copied().unwrap_or(0))
            .unwrap_or(0)
    }

    /// The exposition text.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
        let counter = |out: &mut String, name: &str, help: &str, v: u64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}"
            );
        };
        counter(
            &mut out,
            "pgentra_gateway_connections_total",
            "Client connections accepted.",
            self.connections_total.load(Ordering::Relaxed),
        );
        let _ = writeln!(
            out,
            "# HELP pgentra_gateway_connections_active Client connections open now.\n# TYPE pgentra_gateway_connections_active gauge\npgentra_gateway_connections_active {}",
            self.connections_active.load(Ordering::Relaxed)
        );
        counter(
            &mut out,
            "pgentra_gateway_connections_refused_total",
            "Connections refused at max_connections.",
            self.connections_refused_total.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "pgentra_gateway_sessions_total",
            "Sessions that reached the relay phase.",
            self.sessions_total.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "pgentra_gateway_cancel_requests_total",
            "Cancel requests received.",
            self.cancel_requests_total.load(Ordering::Relaxed),
        );
        let labelled = |out: &mut String,
                        name: &str,
                        help: &str,
                        label: &str,
                        m: &Mutex<BTreeMap<&'static str, u64>>| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            if let Ok(m) = m.lock() {
                for (k, v) in m.iter() {
                    let _ = writeln!(out, "{name}{{{label}=\"{k}\"}} {v}");
                }
            }
        };
        labelled(
            &mut out,
            "pgentra_gateway_logins_total",
            "Successful logins by method.",
            "method",
            &self.logins,
        );
        labelled(
            &mut out,
            "pgentra_gateway_auth_failures_total",
            "Refused or failed session starts by reason.",
            "reason",
            &self.failures,
        );
        self.validation_seconds.render(
            &mut out,
            "pgentra_gateway_token_validation_seconds",
            "Token validation latency.",
        );
        self.upstream_connect_seconds.render(
            &mut out,
            "pgentra_gateway_upstream_connect_seconds",
            "Upstream connect and login latency.",
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_labels_and_histograms() {
        let m = Metrics::default();
        m.failure("expired");
        m.failure("expired");
        m.login("entra");
        m.validation_seconds.observe(Duration::from_micros(30));
        m.validation_seconds.observe(Duration::from_millis(2));
        let text = m.render();
        assert!(text.contains("pgentra_gateway_auth_failures_total{reason=\"expired\"} 2"));
        assert!(text.contains("pgentra_gateway_logins_total{method=\"entra\"} 1"));
        assert!(text.contains("pgentra_gateway_token_validation_seconds_bucket{le=\"0.00005\"} 1"));
        assert!(text.contains("pgentra_gateway_token_validation_seconds_bucket{le=\"0.0025\"} 2"));
        assert!(text.contains("pgentra_gateway_token_validation_seconds_count 2"));
        assert_eq!(m.failures_for("expired"), 2);
    }
}
