//! Which worker runs what: every worker of a group computes the same
//! assignment from the same inputs — the member ids of the group (sorted)
//! and the config topic's connectors and committed task configs — so no
//! leader has to hand it out. Connectors (by name) and then tasks (by
//! connector and number) are dealt round robin over the members, as
//! Kafka Connect's eager protocol does.

use std::collections::BTreeSet;

use crate::storage::ConfigState;

/// What one worker owns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Owned {
    pub connectors: BTreeSet<String>,
    pub tasks: BTreeSet<(String, i32)>,
}

/// The share of member `me` among `members` (any order; `me` should be
/// one of them — when it is not, it owns nothing).
pub fn assign(state: &ConfigState, members: &[String], me: &str) -> Owned {
    let mut sorted: Vec<&String> = members.iter().collect();
    sorted.sort();
    sorted.dedup();
    let mut owned = Owned::default();
    let Some(index) = sorted.iter().position(|m| m.as_str() == me) else {
        return owned;
    };
    let n = sorted.len();
    let mut k = 0usize;
    for name in state.connectors.keys() {
        if k % n == index {
            owned.connectors.insert(name.clone());
        }
        k += 1;
    }
    for (name, tasks) in &state.tasks {
        if !state.connectors.contains_key(name) {
            continue;
        }
        for i in 0..tasks.len() {
            if k % n == index {
                owned
                    .tasks
                    .insert((name.clone(), i32::try_from(i).unwrap_or(i32::MAX)));
            }
            k += 1;
        }
    }
    owned
}

/// Everything (a worker alone in its group).
pub fn everything(state: &ConfigState) -> Owned {
    assign(state, &["me".to_string()], "me")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::ConfigRecord;
    use runnel_connect_api::Config;

    fn state(connectors: &[(&str, usize)]) -> ConfigState {
        let mut s = ConfigState::default();
        for (name, tasks) in connectors {
            s.apply(ConfigRecord::Connector(
                name.to_string(),
                Some(Config::new()),
            ));
            for i in 0..*tasks {
                s.apply(ConfigRecord::Task(
                    name.to_string(),
                    i as i32,
                    Some(Config::new()),
                ));
            }
            s.apply(ConfigRecord::Commit(name.to_string(), *tasks as i32));
        }
        s
    }

    #[test]
    fn every_item_has_exactly_one_owner_and_all_agree() {
        let s = state(&[("a", 3), ("b", 1), ("c", 4)]);
        let members: Vec<String> = ["w2", "w0", "w1"].iter().map(|m| m.to_string()).collect();
        let shares: Vec<Owned> = members.iter().map(|m| assign(&s, &members, m)).collect();
        let all = everything(&s);
        assert_eq!(all.connectors.len(), 3);
        assert_eq!(all.tasks.len(), 8);
        for c in &all.connectors {
            assert_eq!(
                shares.iter().filter(|o| o.connectors.contains(c)).count(),
                1
            );
        }
        for t in &all.tasks {
            assert_eq!(shares.iter().filter(|o| o.tasks.contains(t)).count(), 1);
        }
        // Balanced: 11 items over 3 members.
        let sizes: Vec<usize> = shares
            .iter()
            .map(|o| o.connectors.len() + o.tasks.len())
            .collect();
        assert!(sizes.iter().all(|n| (3..=4).contains(n)), "{sizes:?}");
        // The order members are listed in does not matter.
        let mut reversed = members.clone();
        reversed.reverse();
        assert_eq!(assign(&s, &reversed, "w1"), shares[2]);
        // A member that left owns nothing; the others take its share.
        let two: Vec<String> = vec!["w0".into(), "w2".into()];
        let a = assign(&s, &two, "w0");
        let b = assign(&s, &two, "w2");
        assert_eq!(a.tasks.len() + b.tasks.len(), 8);
        assert!(assign(&s, &two, "w1").tasks.is_empty());
    }
}
