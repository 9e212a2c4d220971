//! Fault injection: make the next N requests to an endpoint slow, fail with a status, or lose
//! their connection, to exercise client retry and timeout paths.
//!
//! Rules only; the server applies them. Nothing here touches a socket.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::record::EndpointKind;

/// What happens to a request that matches a fault rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Wait this long, then answer normally.
    Delay(Duration),
    /// Answer with this status and the endpoint's error body shape (plus `Retry-After` if set).
    Status {
        /// HTTP status, e.g. 429, 500, 503, 404, 410.
        status: u16,
        /// `Retry-After` header value in seconds.
        retry_after: Option<u64>,
    },
    /// Close the connection without answering.
    Drop,
}

#[derive(Debug)]
struct Rule {
    endpoint: EndpointKind,
    fault: Fault,
    remaining: Option<u32>,
}

/// Handle on the emulator's fault rules (cheap to clone; clones share the rules).
#[derive(Debug, Clone, Default)]
pub struct Faults {
    rules: Arc<Mutex<Vec<Rule>>>,
}

impl Faults {
    /// Applies `fault` to the next `times` requests to `endpoint` (`None`: until cleared).
    /// Rules apply in the order they were injected; an exhausted rule is removed.
    pub fn inject(&self, endpoint: EndpointKind, fault: Fault, times: Option<u32>) {
        if times == Some(0) {
            return;
        }
        self.lock().push(Rule {
            endpoint,
            fault,
            remaining: times,
        });
    }

    /// Removes every rule.
    pub fn clear(&self) {
        self.lock().clear();
    }

    /// Number of active rules.
    pub fn active(&self) -> usize {
        self.lock().len()
    }

    /// Takes the fault for one request to `endpoint`, consuming one use of the rule.
    pub(crate) fn take(&self, endpoint: EndpointKind) -> Option<Fault> {
        let mut rules = self.lock();
        let index = rules.iter().position(|r| r.endpoint == endpoint)?;
        let rule = &mut rules[index];
        let fault = rule.fault.clone();
        if let Some(n) = rule.remaining.as_mut() {
            *n -= 1;
            if *n == 0 {
                rules.remove(index);
            }
        }
        Some(fault)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Rule>> {
        // A panic while holding this lock cannot leave the Vec inconsistent, so poison is ignored.
        self.rules.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counted_rules_are_consumed_in_order() {
        let faults = Faults::default();
        faults.inject(EndpointKind::Imds, Fault::Drop, Some(1));
        faults.inject(
            EndpointKind::Imds,
            Fault::Status {
                status: 500,
                retry_after: None,
            },
            Some(2),
        );
        assert_eq!(faults.take(EndpointKind::AppService), None);
        assert_eq!(faults.take(EndpointKind::Imds), Some(Fault::Drop));
        assert!(matches!(
            faults.take(EndpointKind::Imds),
            Some(Fault::Status { status: 500, .. })
        ));
        assert!(matches!(
            faults.take(EndpointKind::Imds),
            Some(Fault::Status { status: 500, .. })
        ));
        assert_eq!(faults.take(EndpointKind::Imds), None);
        faults.inject(EndpointKind::Jwks, Fault::Drop, None);
        assert_eq!(faults.take(EndpointKind::Jwks), Some(Fault::Drop));
        assert_eq!(faults.take(EndpointKind::Jwks), Some(Fault::Drop));
        faults.clear();
        assert_eq!(faults.active(), 0);
    }
}
