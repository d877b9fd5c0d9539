//! Group configs (config resource type GROUP, Kafka's `GroupConfig`): one
//! set of overrides per group id, whatever kind of group it is —
//! `consumer.*` for KIP-848 consumer groups, `share.*` for share groups.
//! Set with IncrementalAlterConfigs, shown by DescribeConfigs, forgotten
//! with the group. Each kind validates and reads its own keys
//! ([`super::consumer`], [`super::share`]); the overrides are written to
//! `__share_group_state` with the share state (see
//! [`super::share_store`]) and replayed from it.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard};

/// Overrides of one group: config name → value.
pub type Overrides = BTreeMap<String, String>;

/// Every group's overrides.
#[derive(Debug, Default)]
pub struct GroupConfigs {
    map: Mutex<HashMap<String, Overrides>>,
}

impl GroupConfigs {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Overrides>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The overrides of `group` (`None`: none was ever set).
    pub fn get(&self, group: &str) -> Option<Overrides> {
        self.lock().get(group).cloned()
    }

    /// One override of `group`.
    pub fn value(&self, group: &str, key: &str) -> Option<String> {
        self.lock().get(group).and_then(|o| o.get(key).cloned())
    }

    /// Sets (`Some`) or deletes (`None`) overrides of `group`; returns the
    /// group's overrides after the change.
    pub fn apply(&self, group: &str, changes: &[(String, Option<String>)]) -> Overrides {
        let mut map = self.lock();
        let o = map.entry(group.to_string()).or_default();
        for (k, v) in changes {
            match v {
                Some(v) => {
                    o.insert(k.clone(), v.clone());
                }
                None => {
                    o.remove(k);
                }
            }
        }
        o.clone()
    }

    /// Replaces a group's overrides (a replay), or forgets them (`None`).
    pub fn replace(&self, group: &str, overrides: Option<Overrides>) {
        let mut map = self.lock();
        match overrides {
            Some(o) => {
                map.insert(group.to_string(), o);
            }
            None => {
                map.remove(group);
            }
        }
    }
}
