//! The talk's running example (slide 8) as a topology, with a generator of
//! input data: apps opened and app crashes, counted per app and day, joined
//! into the apps whose crash ratio passes a threshold.
//!
//! ```text
//! apps_opened ──count per app, 1-day tumbling──► opened_per_day ─┐
//!                                                                 ├─join─► unstable_apps
//! app_crashes ──count per app, 1-day tumbling──► crashed_per_day ┘  (crashes/opens > threshold)
//! ```
//!
//! Keys are app ids (UTF-8); input values are JSON objects with a
//! `user_id`. Output keys are windowed app ids (the key bytes followed by
//! the 8-byte window start, Kafka Streams' layout); output values are JSON
//! objects named like the ksqlDB version's columns: `{"OPENS": n}`,
//! `{"CRASHES": n}` and `{"OPENS": o, "CRASHES": c, "RATIO": r}`.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::record::Windowed;
use crate::serdes::{JsonSerde, OptionSerde, StringSerde, WindowedSerde};
use crate::{StreamsBuilder, TimeWindows, Topology, TopologyError};

pub const APPS_OPENED: &str = "apps_opened";
pub const APP_CRASHES: &str = "app_crashes";
pub const OPENED_PER_DAY: &str = "opened_per_day";
pub const CRASHED_PER_DAY: &str = "crashed_per_day";
pub const UNSTABLE_APPS: &str = "unstable_apps";
pub const DAY_MS: i64 = 86_400_000;

/// An input event's value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub user_id: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Opens {
    #[serde(rename = "OPENS")]
    pub opens: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Crashes {
    #[serde(rename = "CRASHES")]
    pub crashes: i64,
}

/// A row of `unstable_apps`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Unstable {
    #[serde(rename = "OPENS")]
    pub opens: i64,
    #[serde(rename = "CRASHES")]
    pub crashes: i64,
    #[serde(rename = "RATIO")]
    pub ratio: f64,
}

/// Builds the slide-8 pipeline. `threshold` is the crashes/opens ratio an
/// app must exceed (per day) to be listed as unstable; `grace` is how late
/// an event may arrive and still count.
pub fn unstable_apps(threshold: f64, grace: Duration) -> Result<Topology, TopologyError> {
    unstable_apps_on(&Topics::prefixed(""), threshold, grace)
}

/// The pipeline's topics: the constants above, behind a prefix (several
/// copies of the pipeline on one cluster, as tests run them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topics {
    pub apps_opened: String,
    pub app_crashes: String,
    pub opened_per_day: String,
    pub crashed_per_day: String,
    pub unstable_apps: String,
}

impl Topics {
    pub fn prefixed(prefix: &str) -> Topics {
        Topics {
            apps_opened: format!("{prefix}{APPS_OPENED}"),
            app_crashes: format!("{prefix}{APP_CRASHES}"),
            opened_per_day: format!("{prefix}{OPENED_PER_DAY}"),
            crashed_per_day: format!("{prefix}{CRASHED_PER_DAY}"),
            unstable_apps: format!("{prefix}{UNSTABLE_APPS}"),
        }
    }

    /// The two input topics.
    pub fn inputs(&self) -> [&str; 2] {
        [&self.apps_opened, &self.app_crashes]
    }

    /// The three output topics.
    pub fn outputs(&self) -> [&str; 3] {
        [
            &self.opened_per_day,
            &self.crashed_per_day,
            &self.unstable_apps,
        ]
    }

    /// Where a generated record goes.
    pub fn of(&self, g: &Generated) -> &str {
        if g.topic == APP_CRASHES {
            &self.app_crashes
        } else {
            &self.apps_opened
        }
    }
}

/// [`unstable_apps`] on the given topics.
pub fn unstable_apps_on(
    topics: &Topics,
    threshold: f64,
    grace: Duration,
) -> Result<Topology, TopologyError> {
    let b = StreamsBuilder::new();
    let windows = TimeWindows::of(Duration::from_millis(DAY_MS as u64)).grace(grace);
    let wkey = || WindowedSerde::time(StringSerde, DAY_MS);
    let opened = b
        .stream(&topics.apps_opened, StringSerde, JsonSerde::<Event>::new())
        .group_by_key()
        .windowed_by(windows)
        .count("opened_per_day_store");
    let crashed = b
        .stream(&topics.app_crashes, StringSerde, JsonSerde::<Event>::new())
        .group_by_key()
        .windowed_by(windows)
        .count("crashed_per_day_store");
    opened
        .map_values(|_, n: &i64| Opens { opens: *n })
        .to_stream()
        .to_with(
            &topics.opened_per_day,
            wkey(),
            OptionSerde(JsonSerde::<Opens>::new()),
        );
    crashed
        .map_values(|_, n: &i64| Crashes { crashes: *n })
        .to_stream()
        .to_with(
            &topics.crashed_per_day,
            wkey(),
            OptionSerde(JsonSerde::<Crashes>::new()),
        );
    opened
        .join(&crashed, |o: &i64, c: &i64| Unstable {
            opens: *o,
            crashes: *c,
            ratio: *c as f64 / (*o).max(1) as f64,
        })
        .filter(move |_: &Windowed<String>, u: &Unstable| u.ratio > threshold)
        .to_stream()
        .to_with(
            &topics.unstable_apps,
            wkey(),
            OptionSerde(JsonSerde::<Unstable>::new()),
        );
    b.build()
}

/// One generated input record.
#[derive(Debug, Clone, PartialEq)]
pub struct Generated {
    pub topic: &'static str,
    pub app_id: String,
    pub user_id: String,
    pub timestamp: i64,
}

impl Generated {
    /// The JSON value bytes.
    pub fn value(&self) -> Vec<u8> {
        serde_json::to_vec(&Event {
            user_id: self.user_id.clone(),
        })
        .unwrap_or_default()
    }
}

/// Apps of the generator; the later ones crash more.
pub const APPS: &[&str] = &[
    "maps", "mail", "camera", "chat", "music", "news", "notes", "weather",
];

/// Deterministic input: `opens` app-open events spread over `days` days
/// from `start_ms`, each followed by a crash with a per-app probability
/// (1% for `maps` up to 30% for `weather`), timestamps slightly out of
/// order. The same `seed` gives the same events.
pub fn generate(seed: u64, opens: usize, days: i64, start_ms: i64) -> Vec<Generated> {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407)
        | 1;
    let mut next = move || {
        // xorshift64*
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    };
    let span = days.max(1) * DAY_MS;
    let step = span / opens.max(1) as i64;
    let mut out = Vec::with_capacity(opens + opens / 8);
    for i in 0..opens {
        let app_i = (next() % APPS.len() as u64) as usize;
        let app = APPS[app_i];
        let user = format!("user-{}", next() % 1000);
        let jitter = (next() % 60_000) as i64 - 30_000;
        let ts = (start_ms + i as i64 * step + jitter).max(start_ms);
        out.push(Generated {
            topic: APPS_OPENED,
            app_id: app.to_string(),
            user_id: user.clone(),
            timestamp: ts,
        });
        let crash_permille = 10 + 290 * app_i as u64 / (APPS.len() as u64 - 1);
        if next() % 1000 < crash_permille {
            out.push(Generated {
                topic: APP_CRASHES,
                app_id: app.to_string(),
                user_id: user,
                timestamp: ts + (next() % 5_000) as i64,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generator_is_deterministic_and_mixed() {
        let a = generate(7, 2000, 3, 0);
        assert_eq!(a, generate(7, 2000, 3, 0));
        let crashes = a.iter().filter(|g| g.topic == APP_CRASHES).count();
        assert!(crashes > 50 && crashes < 600, "{crashes}");
        assert!(a
            .iter()
            .all(|g| g.timestamp >= 0 && g.timestamp < 3 * DAY_MS + 60_000));
        assert!(unstable_apps(0.1, Duration::from_secs(3600)).is_ok());
    }
}
