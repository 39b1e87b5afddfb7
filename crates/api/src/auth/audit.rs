//! The request-path side of the audit log. Lifecycle events (created, rotated, revoked)
//! are written with the change itself; failures, denials and rate limiting are counted
//! here per (event, key, address, reason, minute) and written as one row per group by
//! the flush task, so a flood of bad requests costs one row a minute, not one per request.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use marketd_domain::access::{AuditEntry, AuditEvent};
use marketd_storage::Store;

const MINUTE_MS: i64 = 60_000;
/// Distinct groups held between flushes; further groups fold into one overflow row.
const MAX_GROUPS: usize = 10_000;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Group {
    event: AuditEvent,
    minute: i64,
    key_id: Option<String>,
    ip: Option<IpAddr>,
    reason: Option<String>,
}

#[derive(Debug, Default)]
pub struct AuditBuffer {
    groups: Mutex<HashMap<Group, u64>>,
    overflowed: AtomicU64,
}

impl AuditBuffer {
    pub fn record(
        &self,
        event: AuditEvent,
        now: i64,
        key_id: Option<&str>,
        ip: Option<IpAddr>,
        reason: Option<&str>,
    ) {
        let minute = now - now.rem_euclid(MINUTE_MS);
        let group = Group {
            event,
            minute,
            key_id: key_id.map(str::to_owned),
            ip,
            reason: reason.map(str::to_owned),
        };
        let Ok(mut groups) = self.groups.lock() else {
            return;
        };
        if let Some(count) = groups.get_mut(&group) {
            *count += 1;
        } else if groups.len() < MAX_GROUPS {
            groups.insert(group, 1);
        } else {
            // Under a flood of distinct addresses keep the count, not the detail.
            let overflow = Group {
                event,
                minute,
                key_id: None,
                ip: None,
                reason: Some("overflow".to_owned()),
            };
            *groups.entry(overflow).or_insert(0) += 1;
            self.overflowed.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Groups held now, for a metric.
    pub fn pending(&self) -> usize {
        self.groups.lock().map_or(0, |g| g.len())
    }

    /// Writes the groups whose minute has ended (every group when `all`, at shutdown),
    /// so each group becomes one row per minute.
    pub async fn flush(&self, store: &dyn Store, now: i64, all: bool) {
        let current_minute = now - now.rem_euclid(MINUTE_MS);
        let drained: Vec<(Group, u64)> = match self.groups.lock() {
            Ok(mut groups) => {
                let done: Vec<Group> = groups
                    .keys()
                    .filter(|g| all || g.minute < current_minute)
                    .cloned()
                    .collect();
                done.into_iter()
                    .filter_map(|g| groups.remove_entry(&g))
                    .collect()
            }
            Err(_) => return,
        };
        if drained.is_empty() {
            return;
        }
        let entries: Vec<AuditEntry> = drained
            .iter()
            .map(|(group, count)| AuditEntry {
                id: 0,
                at: group.minute,
                event: group.event,
                key_id: group.key_id.clone(),
                actor_key_id: None,
                ip: group.ip,
                reason: group.reason.clone(),
                count: *count,
            })
            .collect();
        if let Err(err) = store.append_audit(&entries).await {
            tracing::warn!(error = %err, rows = entries.len(), "could not write the audit log; will retry");
            if let Ok(mut groups) = self.groups.lock() {
                for (group, count) in drained {
                    if groups.len() < MAX_GROUPS || groups.contains_key(&group) {
                        *groups.entry(group).or_insert(0) += count;
                    }
                }
            }
        }
    }
}
