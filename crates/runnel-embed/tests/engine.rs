//! Engine semantics, run on the in-process backend: every operator, window
//! and join with exact expected outputs, including out-of-order and late
//! records, plus restore, rollback and exactly-once behaviour.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may stop at the first surprise

#[macro_use]
mod harness;

use std::time::Duration;

use harness::{Env, Out, Via};
use runnel_streams::serdes::{I64Serde, OptionSerde, StringSerde, WindowedSerde};
use runnel_streams::{Guarantee, StreamsBuilder, TimeWindows};

fn s(v: &str) -> Option<String> {
    Some(v.to_string())
}

fn stateless_operators_keep_timestamps_and_order(env: Env) {
    env.topic("words", 1);
    env.topic("out-long", 1);
    env.topic("out-short", 1);
    env.topic("out-other", 1);
    env.produce_str(
        "words",
        &[
            ("a", "apple pie", 10),
            ("b", "x", 20),
            ("c", "banana split", 30),
            ("d", "", 40),
        ],
    );
    let b = StreamsBuilder::new();
    let words = b.stream("words", StringSerde, StringSerde);
    let split = words
        .filter_not(|_, v: &String| v.is_empty())
        .flat_map_values(|_, v: String| v.split(' ').map(str::to_string).collect::<Vec<_>>())
        .map_values(|_, v: String| v.to_uppercase())
        .split(vec![
            Box::new(|_: &String, v: &String| v.len() > 4),
            Box::new(|_: &String, v: &String| v.len() <= 3),
        ]);
    split[0].to_with("out-long", StringSerde, StringSerde);
    split[1]
        .select_key(|k: &String, v: &String| format!("{k}:{v}"))
        .to_with("out-short", StringSerde, StringSerde);
    split[2]
        .merge(&split[1])
        .map(|k: String, v: String| (v, k))
        .to_with("out-other", StringSerde, StringSerde);
    let app = env.run(b.build().unwrap(), "stateless", Guarantee::AtLeastOnce);
    assert_eq!(app.processed, 4);
    assert_eq!(
        env.read_str("out-long"),
        vec![
            Out::new(s("a"), s("APPLE"), 10),
            Out::new(s("c"), s("BANANA"), 30),
            Out::new(s("c"), s("SPLIT"), 30),
        ]
    );
    assert_eq!(
        env.read_str("out-short"),
        vec![
            Out::new(s("a:PIE"), s("PIE"), 10),
            Out::new(s("b:X"), s("X"), 20)
        ]
    );
    // Branch order is record order; merge interleaves in processing order.
    assert_eq!(
        env.read_str("out-other"),
        vec![Out::new(s("PIE"), s("a"), 10), Out::new(s("X"), s("b"), 20)]
    );
}

fn count_and_reduce_per_key_emit_every_update(env: Env) {
    env.topic("in", 1);
    env.topic("counts", 1);
    env.topic("longest", 1);
    env.produce_str(
        "in",
        &[
            ("k1", "aa", 5),
            ("k2", "b", 3),
            ("k1", "c", 4),
            ("k1", "dddd", 9),
        ],
    );
    let b = StreamsBuilder::new();
    let st = b.stream("in", StringSerde, StringSerde);
    st.group_by_key().count("counts-store").to_stream().to_with(
        "counts",
        StringSerde,
        OptionSerde(I64Serde),
    );
    st.group_by_key()
        .reduce(
            |a: String, b: String| if b.len() > a.len() { b } else { a },
            "longest-store",
        )
        .to_stream()
        .to_with("longest", StringSerde, OptionSerde(StringSerde));
    env.run(b.build().unwrap(), "agg", Guarantee::AtLeastOnce);
    // Aggregation output timestamps are the max of the inputs so far.
    assert_eq!(
        env.read_i64("counts"),
        vec![
            (s("k1"), Some(1), 5),
            (s("k2"), Some(1), 3),
            (s("k1"), Some(2), 5),
            (s("k1"), Some(3), 9),
        ]
    );
    assert_eq!(
        env.read_str("longest"),
        vec![
            Out::new(s("k1"), s("aa"), 5),
            Out::new(s("k2"), s("b"), 3),
            Out::new(s("k1"), s("aa"), 5),
            Out::new(s("k1"), s("dddd"), 9),
        ]
    );
    // The changelog holds the latest count per key.
    let changelog = env.read_raw("agg-counts-store-changelog");
    assert_eq!(
        changelog.len(),
        2,
        "one changelog record per key after one commit"
    );
}

fn group_by_new_key_repartitions_through_an_internal_topic(env: Env) {
    env.topic("clicks", 2);
    env.topic("per-page", 1);
    env.produce_keyed("clicks", 0, &[("u1", "home", 1), ("u2", "cart", 2)]);
    env.produce_keyed("clicks", 1, &[("u3", "home", 3), ("u1", "home", 4)]);
    let b = StreamsBuilder::new();
    b.stream("clicks", StringSerde, StringSerde)
        .group_by(|_, page: &String| page.clone(), StringSerde)
        .count("page-counts")
        .to_stream()
        .to_with("per-page", StringSerde, OptionSerde(I64Serde));
    env.run(b.build().unwrap(), "pages", Guarantee::AtLeastOnce);
    // The two input partitions are processed by independent tasks, so the
    // order in which "home" clicks reach the repartition topic is not fixed
    // (nor in Kafka Streams): the counts per key are, and each output carries
    // the largest timestamp seen so far for its key.
    let mut out = env.read_i64("per-page");
    out.sort_by_key(|o| (o.0.clone(), o.1));
    let counts: Vec<(Option<String>, Option<i64>)> =
        out.iter().map(|o| (o.0.clone(), o.1)).collect();
    assert_eq!(
        counts,
        vec![
            (s("cart"), Some(1)),
            (s("home"), Some(1)),
            (s("home"), Some(2)),
            (s("home"), Some(3)),
        ]
    );
    let home_ts: Vec<i64> = out
        .iter()
        .filter(|o| o.0 == s("home"))
        .map(|o| o.2)
        .collect();
    assert!(home_ts.windows(2).all(|w| w[0] <= w[1]), "{home_ts:?}");
    assert_eq!(home_ts.last(), Some(&4));
    assert_eq!(out[0].2, 2, "cart's only click is at 2");
    let topics = env.topics();
    let repartition: Vec<&String> = topics
        .iter()
        .filter(|t| t.ends_with("-repartition"))
        .collect();
    assert_eq!(repartition.len(), 1, "{topics:?}");
    assert!(repartition[0].starts_with("pages-"));
    assert_eq!(
        env.partitions(repartition[0]),
        2,
        "as many partitions as the upstream topic"
    );
}

fn tumbling_windows_with_grace_drop_late_records(env: Env) {
    env.topic("ev", 1);
    env.topic("wc", 1);
    // Windows of 10 ms, grace 5 ms. Stream time reaches 26: the window
    // [10, 20) closes at 25, so the record at 12 arriving after it is late;
    // the one at 19 arriving at stream time 24 is out of order but in grace.
    env.produce_str(
        "ev",
        &[
            ("a", "", 1),
            ("a", "", 9),
            ("b", "", 12),
            ("a", "", 15),
            ("a", "", 24),
            ("a", "", 19),
            ("a", "", 26),
            ("a", "", 12),
            ("b", "", 3),
        ],
    );
    let b = StreamsBuilder::new();
    b.stream("ev", StringSerde, StringSerde)
        .group_by_key()
        .windowed_by(TimeWindows::of(Duration::from_millis(10)).grace(Duration::from_millis(5)))
        .count("wc-store")
        .to_stream()
        .to_with(
            "wc",
            WindowedSerde::time(StringSerde, 10),
            OptionSerde(I64Serde),
        );
    let app = env.run(b.build().unwrap(), "tumble", Guarantee::AtLeastOnce);
    assert_eq!(
        env.read_windowed("wc", 10),
        vec![
            ("a".into(), 0, 10, 1, 1),
            ("a".into(), 0, 10, 2, 9),
            ("b".into(), 10, 20, 1, 12),
            ("a".into(), 10, 20, 1, 15),
            ("a".into(), 20, 30, 1, 24),
            ("a".into(), 10, 20, 2, 19),
            ("a".into(), 20, 30, 2, 26),
        ]
    );
    assert_eq!(
        app.late_dropped, 2,
        "the record at 12 after stream time 26 and b at 3"
    );
}

fn hopping_windows_count_each_overlapping_window(env: Env) {
    env.topic("ev", 1);
    env.topic("hc", 1);
    env.produce_str("ev", &[("k", "", 7), ("k", "", 12)]);
    let b = StreamsBuilder::new();
    b.stream("ev", StringSerde, StringSerde)
        .group_by_key()
        .windowed_by(
            TimeWindows::of(Duration::from_millis(10))
                .advance_by(Duration::from_millis(5))
                .grace(Duration::from_millis(100)),
        )
        .count("hc-store")
        .to_stream()
        .to_with(
            "hc",
            WindowedSerde::time(StringSerde, 10),
            OptionSerde(I64Serde),
        );
    env.run(b.build().unwrap(), "hop", Guarantee::AtLeastOnce);
    assert_eq!(
        env.read_windowed("hc", 10),
        vec![
            ("k".into(), 0, 10, 1, 7),
            ("k".into(), 5, 15, 1, 7),
            ("k".into(), 5, 15, 2, 12),
            ("k".into(), 10, 20, 1, 12),
        ]
    );
}

fn emit_final_emits_each_window_once_when_it_closes(env: Env) {
    env.topic("ev", 1);
    env.topic("final", 1);
    env.produce_str(
        "ev",
        &[
            ("a", "", 1),
            ("a", "", 4),
            ("b", "", 8),
            ("a", "", 11),
            ("a", "", 13),
            ("b", "", 2),
            ("a", "", 25),
        ],
    );
    let b = StreamsBuilder::new();
    b.stream("ev", StringSerde, StringSerde)
        .group_by_key()
        .windowed_by(TimeWindows::of(Duration::from_millis(10)).grace(Duration::from_millis(2)))
        .emit_final()
        .count("final-store")
        .to_stream()
        .to_with(
            "final",
            WindowedSerde::time(StringSerde, 10),
            OptionSerde(I64Serde),
        );
    env.run(b.build().unwrap(), "final", Guarantee::AtLeastOnce);
    // [0,10) closes at stream time 12 (first reached by the record at 13),
    // with b's late record at 2 (stream time 13 > 12) dropped; [10,20)
    // closes at 22, reached by 25. [20,30) stays open.
    assert_eq!(
        env.read_windowed("final", 10),
        vec![
            ("a".into(), 0, 10, 2, 4),
            ("b".into(), 0, 10, 1, 8),
            ("a".into(), 10, 20, 2, 13),
        ]
    );
}

fn table_table_joins_inner_left_outer(env: Env) {
    for t in ["left", "right", "inner", "leftj", "outer"] {
        env.topic(t, 1);
    }
    let b = StreamsBuilder::new();
    let l = b.table("left", StringSerde, StringSerde, "l-store");
    let r = b.table("right", StringSerde, StringSerde, "r-store");
    l.join(&r, |a: &String, b: &String| format!("{a}+{b}"))
        .to_stream()
        .to_with("inner", StringSerde, OptionSerde(StringSerde));
    l.left_join(&r, |a: &String, b: Option<&String>| {
        format!("{a}+{}", b.map_or("null", |s| s))
    })
    .to_stream()
    .to_with("leftj", StringSerde, OptionSerde(StringSerde));
    l.outer_join(&r, |a: Option<&String>, b: Option<&String>| {
        format!("{}+{}", a.map_or("null", |s| s), b.map_or("null", |s| s))
    })
    .to_stream()
    .to_with("outer", StringSerde, OptionSerde(StringSerde));
    // Interleave by timestamp across the two topics.
    env.produce_opt(
        "left",
        &[("k", Some("A"), 1), ("k", Some("B"), 3), ("k", None, 5)],
    );
    env.produce_opt("right", &[("k", Some("x"), 2), ("k", None, 4)]);
    env.run(b.build().unwrap(), "tt", Guarantee::AtLeastOnce);
    assert_eq!(
        env.read_str("inner"),
        vec![
            Out::new(s("k"), s("A+x"), 2),
            Out::new(s("k"), s("B+x"), 3),
            Out::new(s("k"), None, 4),
        ]
    );
    assert_eq!(
        env.read_str("leftj"),
        vec![
            Out::new(s("k"), s("A+null"), 1),
            Out::new(s("k"), s("A+x"), 2),
            Out::new(s("k"), s("B+x"), 3),
            Out::new(s("k"), s("B+null"), 4),
            Out::new(s("k"), None, 5),
        ]
    );
    assert_eq!(
        env.read_str("outer"),
        vec![
            Out::new(s("k"), s("A+null"), 1),
            Out::new(s("k"), s("A+x"), 2),
            Out::new(s("k"), s("B+x"), 3),
            Out::new(s("k"), s("B+null"), 4),
            Out::new(s("k"), None, 5),
        ]
    );
}

fn stream_table_joins_look_up_the_current_row(env: Env) {
    for t in ["orders", "customers", "enriched", "enriched-left"] {
        env.topic(t, 1);
    }
    env.produce_opt(
        "customers",
        &[("c1", Some("Ann"), 1), ("c1", Some("Anne"), 5)],
    );
    env.produce_opt(
        "orders",
        &[
            ("c1", Some("o1"), 2),
            ("c2", Some("o2"), 3),
            ("c1", Some("o3"), 6),
        ],
    );
    let b = StreamsBuilder::new();
    let customers = b.table("customers", StringSerde, StringSerde, "cust");
    let orders = b.stream("orders", StringSerde, StringSerde);
    orders
        .join(&customers, |o: &String, c: &String| format!("{o}@{c}"))
        .to_with("enriched", StringSerde, StringSerde);
    orders
        .left_join(&customers, |o: &String, c: Option<&String>| {
            format!("{o}@{}", c.map_or("?", |s| s))
        })
        .to_with("enriched-left", StringSerde, StringSerde);
    env.run(b.build().unwrap(), "st", Guarantee::AtLeastOnce);
    assert_eq!(
        env.read_str("enriched"),
        vec![
            Out::new(s("c1"), s("o1@Ann"), 2),
            Out::new(s("c1"), s("o3@Anne"), 6)
        ]
    );
    assert_eq!(
        env.read_str("enriched-left"),
        vec![
            Out::new(s("c1"), s("o1@Ann"), 2),
            Out::new(s("c2"), s("o2@?"), 3),
            Out::new(s("c1"), s("o3@Anne"), 6),
        ]
    );
}

fn state_is_restored_from_the_changelog_after_restart(env: Env) {
    env.topic("in", 2);
    env.topic("counts", 1);
    let topology = || {
        let b = StreamsBuilder::new();
        b.stream("in", StringSerde, StringSerde)
            .group_by_key()
            .count("c")
            .to_stream()
            .to_with("counts", StringSerde, OptionSerde(I64Serde));
        b.build().unwrap()
    };
    env.produce_keyed("in", 0, &[("a", "", 1), ("a", "", 2)]);
    env.produce_keyed("in", 1, &[("b", "", 3)]);
    env.run(topology(), "restore", Guarantee::AtLeastOnce);
    env.produce_keyed("in", 0, &[("a", "", 4)]);
    env.produce_keyed("in", 1, &[("b", "", 5)]);
    let app = env.run(topology(), "restore", Guarantee::AtLeastOnce);
    assert_eq!(app.restored_records, 2, "one changelog record per key");
    assert_eq!(app.processed, 2, "resumes after the committed offsets");
    let mut last: Vec<(Option<String>, Option<i64>, i64)> = env.read_i64("counts");
    last.sort_by_key(|o| (o.0.clone(), o.1));
    assert_eq!(
        last.iter().rfind(|o| o.0 == s("a")).map(|o| o.1),
        Some(Some(3))
    );
    assert_eq!(
        last.iter().rfind(|o| o.0 == s("b")).map(|o| o.1),
        Some(Some(2))
    );
}

fn exactly_once_hides_uncommitted_output_and_resumes_without_duplicates(env: Env) {
    env.topic("in", 1);
    env.topic("counts", 1);
    let topology = || {
        let b = StreamsBuilder::new();
        b.stream("in", StringSerde, StringSerde)
            .group_by_key()
            .count("c")
            .to_stream()
            .to_with("counts", StringSerde, OptionSerde(I64Serde));
        b.build().unwrap()
    };
    env.produce_str("in", &[("a", "", 1), ("a", "", 2)]);
    env.run(topology(), "eos", Guarantee::ExactlyOnce);
    env.produce_str("in", &[("a", "", 3), ("a", "", 4)]);
    // Process without committing, then "crash" (drop the instance) once
    // its open transaction's records are in the log: a client producer
    // sends in the background, and dropping it earlier would discard them
    // unsent (then there would be nothing for the new instance to abort).
    let mut app = env
        .start(topology(), "eos", Guarantee::ExactlyOnce)
        .unwrap();
    env.drain(&mut app);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while env.read_uncommitted_count("counts") < 4 {
        assert!(
            std::time::Instant::now() < deadline,
            "the open transaction's records never reached the log"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let crashed = app.metrics();
    drop(app);
    assert_eq!(crashed.processed, 2);
    assert_eq!(
        env.read_i64("counts").len(),
        2,
        "the open transaction is invisible"
    );
    // A new instance fences the old one, aborting its transaction; the
    // restored count continues from 2.
    env.run(topology(), "eos", Guarantee::ExactlyOnce);
    assert_eq!(
        env.read_i64("counts"),
        vec![
            (s("a"), Some(1), 1),
            (s("a"), Some(2), 2),
            (s("a"), Some(3), 3),
            (s("a"), Some(4), 4),
        ]
    );
    assert!(
        env.read_uncommitted_count("counts") > 4,
        "aborted records exist in the log"
    );
}

fn missing_source_topic_and_missing_serde_are_clear_errors(env: Env) {
    let b = StreamsBuilder::new();
    b.stream("nope", StringSerde, StringSerde)
        .to_with("x", StringSerde, StringSerde);
    let err = env
        .try_start(b.build().unwrap(), "bad")
        .err()
        .map(|e| e.to_string());
    assert_eq!(err.as_deref(), Some("source topic nope does not exist"));
    let b = StreamsBuilder::new();
    b.stream("nope", StringSerde, StringSerde)
        .map(|k: String, v: String| (v, k))
        .to("x");
    let err = b.build().err().map(|e| e.to_string()).unwrap_or_default();
    assert!(err.contains("needs serdes"), "{err}");
}

fn the_talks_unstable_apps_pipeline_matches_an_independent_computation(env: Env) {
    check_the_talks_pipeline(&env);
}

fn check_the_talks_pipeline(env: &Env) {
    use runnel_streams::talk;
    use std::collections::BTreeMap;
    for t in [talk::APPS_OPENED, talk::APP_CRASHES] {
        env.topic(t, 3);
    }
    for t in [
        talk::OPENED_PER_DAY,
        talk::CRASHED_PER_DAY,
        talk::UNSTABLE_APPS,
    ] {
        env.topic(t, 3);
    }
    let events = talk::generate(
        42,
        3000,
        3,
        1_700_000_000_000 - 1_700_000_000_000 % talk::DAY_MS,
    );
    for e in &events {
        let p = runnel_streams::serdes::partition_for(e.app_id.as_bytes(), 3);
        env.produce_raw(
            e.topic,
            p,
            &[(
                Some(e.app_id.as_bytes().to_vec()),
                Some(e.value()),
                e.timestamp,
            )],
        );
    }
    let threshold = 0.1;
    let topology = talk::unstable_apps(threshold, Duration::from_secs(3600)).unwrap();
    env.run(topology, "slide8", Guarantee::AtLeastOnce);
    // Independent computation: counts per (app, day), then the ratio filter.
    let mut opens: BTreeMap<(String, i64), i64> = BTreeMap::new();
    let mut crashes: BTreeMap<(String, i64), i64> = BTreeMap::new();
    for e in &events {
        let day = e.timestamp - e.timestamp.rem_euclid(talk::DAY_MS);
        let m = if e.topic == talk::APPS_OPENED {
            &mut opens
        } else {
            &mut crashes
        };
        *m.entry((e.app_id.clone(), day)).or_default() += 1;
    }
    let latest = |topic: &str| -> BTreeMap<(String, i64), Option<serde_json::Value>> {
        let mut t = BTreeMap::new();
        for (k, v, _) in env.read_raw(topic) {
            let k = k.unwrap();
            let (app, start) = k.split_at(k.len() - 8);
            let key = (
                String::from_utf8(app.to_vec()).unwrap(),
                i64::from_be_bytes(start.try_into().unwrap()),
            );
            t.insert(key, v.map(|v| serde_json::from_slice(&v).unwrap()));
        }
        t
    };
    let got_opens: BTreeMap<_, _> = latest(talk::OPENED_PER_DAY)
        .into_iter()
        .map(|(k, v)| (k, v.unwrap()["OPENS"].as_i64().unwrap()))
        .collect();
    assert_eq!(got_opens, opens);
    let got_crashes: BTreeMap<_, _> = latest(talk::CRASHED_PER_DAY)
        .into_iter()
        .map(|(k, v)| (k, v.unwrap()["CRASHES"].as_i64().unwrap()))
        .collect();
    assert_eq!(got_crashes, crashes);
    let want_unstable: BTreeMap<(String, i64), (i64, i64)> = crashes
        .iter()
        .filter_map(|(k, c)| {
            let o = *opens.get(k)?;
            (*c as f64 / o as f64 > threshold).then(|| (k.clone(), (o, *c)))
        })
        .collect();
    let got_unstable: BTreeMap<_, _> = latest(talk::UNSTABLE_APPS)
        .into_iter()
        .filter_map(|(k, v)| {
            v.map(|v| {
                (
                    k,
                    (v["OPENS"].as_i64().unwrap(), v["CRASHES"].as_i64().unwrap()),
                )
            })
        })
        .collect();
    assert!(!want_unstable.is_empty() && want_unstable.len() < opens.len());
    assert_eq!(got_unstable, want_unstable);
}

/// The talk's pipeline with the record cache on (the default outside
/// these tests): the same final tables, from far fewer output records.
fn the_talks_pipeline_with_the_record_cache_writes_the_same_tables(env: Env) {
    env.use_cache(runnel_streams::DEFAULT_CACHE_MAX_BYTES);
    check_the_talks_pipeline(&env);
    let opens = env.read_raw(runnel_streams::talk::APPS_OPENED).len();
    let written = env.read_raw(runnel_streams::talk::OPENED_PER_DAY).len();
    // One commit: one record per app and day (24 of them), not one per open.
    assert!(
        written > 0 && written * 10 < opens,
        "{written} results of {opens} opens"
    );
}

fn stream_stream_joins_within_a_window(env: Env) {
    use runnel_streams::JoinWindows;
    for t in ["l", "r", "inner", "left", "outer"] {
        env.topic(t, 1);
    }
    env.produce_str(
        "l",
        &[
            ("k", "L1", 10),
            ("k", "L2", 40),
            ("k", "L3", 100),
            ("k", "L5", 300),
            ("k", "L6", 50),
        ],
    );
    env.produce_str(
        "r",
        &[
            ("k", "R1", 5),
            ("k", "R2", 15),
            ("k", "R3", 30),
            ("k", "R4", 200),
        ],
    );
    let b = StreamsBuilder::new();
    let l = b.stream("l", StringSerde, StringSerde);
    let r = b.stream("r", StringSerde, StringSerde);
    let w = JoinWindows::of(Duration::from_millis(10));
    l.join_stream(&r, |a: &String, b: &String| format!("{a}+{b}"), w, "inner")
        .to_with("inner", StringSerde, StringSerde);
    l.left_join_stream(
        &r,
        |a: &String, b: Option<&String>| format!("{a}+{}", b.map_or("null", |s| s)),
        w,
        "left",
    )
    .to_with("left", StringSerde, StringSerde);
    l.outer_join_stream(
        &r,
        |a: Option<&String>, b: Option<&String>| {
            format!("{}+{}", a.map_or("null", |s| s), b.map_or("null", |s| s))
        },
        w,
        "outer",
    )
    .to_with("outer", StringSerde, StringSerde);
    let m = env.run(b.build().unwrap(), "ssj", Guarantee::AtLeastOnce);
    let vals = |t: &str| -> Vec<(String, i64)> {
        env.read_str(t)
            .into_iter()
            .map(|o| (o.value.unwrap(), o.ts))
            .collect()
    };
    let matched = vec![
        ("L1+R1".to_string(), 10),
        ("L1+R2".to_string(), 15),
        ("L2+R3".to_string(), 40),
    ];
    assert_eq!(vals("inner"), matched);
    let mut left = matched.clone();
    // L3 found no partner: emitted once its window closed. L6 (ts 50 at
    // stream time 300) is past the stores' retention: not kept, but as an
    // unmatched left record whose window has passed it goes out at once —
    // Kafka Streams' KStreamKStreamJoin does the same.
    left.push(("L3+null".into(), 100));
    left.push(("L6+null".into(), 50));
    assert_eq!(vals("left"), left);
    // R4's window closes at L5 (stream time 300), before L6 arrives.
    let mut outer = matched.clone();
    outer.push(("L3+null".into(), 100));
    outer.push(("null+R4".into(), 200));
    outer.push(("L6+null".into(), 50));
    assert_eq!(vals("outer"), outer, "L5's window is still open at the end");
    assert_eq!(
        m.late_dropped, 3,
        "L6 is not kept by any of the three joins"
    );
}

fn session_windows_merge_and_emit_deletions_for_replaced_sessions(env: Env) {
    use runnel_streams::SessionWindows;
    env.topic("clicks", 1);
    env.topic("sessions", 1);
    env.produce_str(
        "clicks",
        &[
            ("a", "", 1),
            ("a", "", 5),
            ("a", "", 30),
            ("a", "", 18),
            ("a", "", 25),
            ("a", "", 2),
        ],
    );
    let b = StreamsBuilder::new();
    b.stream("clicks", StringSerde, StringSerde)
        .group_by_key()
        .windowed_by_session(
            SessionWindows::with_inactivity_gap(Duration::from_millis(10))
                .grace(Duration::from_millis(5)),
        )
        .count("sessions-store")
        .to_stream()
        .to_with(
            "sessions",
            WindowedSerde::session(StringSerde),
            OptionSerde(I64Serde),
        );
    let m = env.run(b.build().unwrap(), "sess", Guarantee::AtLeastOnce);
    let got: Vec<(i64, i64, Option<i64>, i64)> = env
        .read_raw("sessions")
        .into_iter()
        .map(|(k, v, ts)| {
            let k = k.unwrap();
            let n = k.len();
            let end = i64::from_be_bytes(k[n - 16..n - 8].try_into().unwrap());
            let start = i64::from_be_bytes(k[n - 8..].try_into().unwrap());
            (
                start,
                end,
                v.map(|v| i64::from_be_bytes(v.try_into().unwrap())),
                ts,
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            // A replaced session's deletion is stamped with its own end,
            // as Kafka Streams stamps session updates.
            (1, 1, Some(1), 1),
            (1, 1, None, 1),
            (1, 5, Some(2), 5),
            (30, 30, Some(1), 30),
            (18, 18, Some(1), 18),
            (18, 18, None, 18),
            (30, 30, None, 30),
            (18, 30, Some(3), 30),
        ]
    );
    assert_eq!(
        m.late_dropped, 1,
        "the record at 2 would extend a closed session"
    );
}

on_both_backends!(
    the_talks_unstable_apps_pipeline_matches_an_independent_computation,
    the_talks_pipeline_with_the_record_cache_writes_the_same_tables,
    stream_stream_joins_within_a_window,
    session_windows_merge_and_emit_deletions_for_replaced_sessions,
    stateless_operators_keep_timestamps_and_order,
    count_and_reduce_per_key_emit_every_update,
    group_by_new_key_repartitions_through_an_internal_topic,
    tumbling_windows_with_grace_drop_late_records,
    hopping_windows_count_each_overlapping_window,
    emit_final_emits_each_window_once_when_it_closes,
    table_table_joins_inner_left_outer,
    stream_table_joins_look_up_the_current_row,
    state_is_restored_from_the_changelog_after_restart,
    exactly_once_hides_uncommitted_output_and_resumes_without_duplicates,
    missing_source_topic_and_missing_serde_are_clear_errors,
);

/// Forwards the first record of each key (remembered in a store) and a
/// "tick" every 10 ms of stream time; counts wall-clock punctuations.
struct Dedupe {
    seen: runnel_streams::StoreHandle<String, i64>,
    wall_ticks: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl runnel_streams::Processor<String, String, String, String> for Dedupe {
    fn init(&mut self, ctx: &mut runnel_streams::ProcessorContext<'_, String, String>) {
        ctx.schedule(
            Duration::from_millis(10),
            runnel_streams::PunctuationType::StreamTime,
        );
        ctx.schedule(
            Duration::from_millis(1),
            runnel_streams::PunctuationType::WallClockTime,
        );
    }
    fn process(
        &mut self,
        ctx: &mut runnel_streams::ProcessorContext<'_, String, String>,
        rec: runnel_streams::Rec<String, String>,
    ) {
        let Some(store) = ctx.kv_store(&self.seen) else {
            return;
        };
        if store.get(&rec.key).unwrap().is_none() {
            store
                .put(&rec.key, Some(&rec.timestamp), rec.timestamp)
                .expect("an i64 always encodes");
            ctx.forward(rec);
        }
    }
    fn punctuate(
        &mut self,
        ctx: &mut runnel_streams::ProcessorContext<'_, String, String>,
        kind: runnel_streams::PunctuationType,
        time: i64,
    ) {
        match kind {
            runnel_streams::PunctuationType::StreamTime => ctx.forward(runnel_streams::Rec::new(
                "tick".into(),
                time.to_string(),
                time,
            )),
            runnel_streams::PunctuationType::WallClockTime => {
                self.wall_ticks
                    .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
        }
    }
}

fn processor_api_with_stores_and_punctuation(env: Env) {
    env.topic("events", 1);
    env.topic("firsts", 1);
    env.produce_str(
        "events",
        &[
            ("a", "1", 1),
            ("b", "2", 5),
            ("a", "3", 12),
            ("c", "4", 25),
            ("b", "5", 26),
        ],
    );
    let b = StreamsBuilder::new();
    let seen = b.kv_store("seen", StringSerde, I64Serde);
    let ticks = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (s2, t2) = (seen.clone(), ticks.clone());
    b.stream("events", StringSerde, StringSerde)
        .process(
            move || Dedupe {
                seen: s2.clone(),
                wall_ticks: t2.clone(),
            },
            &[&seen],
        )
        .to_with("firsts", StringSerde, StringSerde);
    env.run(b.build().unwrap(), "proc", Guarantee::AtLeastOnce);
    assert_eq!(
        env.read_str("firsts"),
        vec![
            Out::new(s("a"), s("1"), 1),
            Out::new(s("b"), s("2"), 5),
            Out::new(s("tick"), s("12"), 12),
            Out::new(s("c"), s("4"), 25),
            Out::new(s("tick"), s("25"), 25),
        ]
    );
    assert!(
        ticks.load(std::sync::atomic::Ordering::SeqCst) > 0,
        "wall-clock punctuation fired"
    );
    assert_eq!(
        env.read_raw("proc-seen-changelog").len(),
        3,
        "the store is changelogged"
    );
}

on_both_backends!(processor_api_with_stores_and_punctuation);

fn global_table_joins_need_no_co_partitioning(env: Env) {
    env.topic("customers", 2);
    env.topic("orders", 1);
    env.topic("enriched", 1);
    env.topic("enriched-left", 1);
    env.produce_keyed("customers", 0, &[("c1", "Ann", 1)]);
    env.produce_keyed("customers", 1, &[("c2", "Bob", 2), ("c2", "Bobby", 3)]);
    env.produce_str(
        "orders",
        &[
            ("o1", "c1:boat", 10),
            ("o2", "c3:car", 11),
            ("o3", "c2:bike", 12),
        ],
    );
    let b = StreamsBuilder::new();
    let customers = b.global_table("customers", StringSerde, StringSerde, "customers-global");
    let orders = b.stream("orders", StringSerde, StringSerde);
    let customer_of = |_: &String, v: &String| v.split(':').next().unwrap_or_default().to_string();
    orders
        .join_global(&customers, customer_of, |o: &String, c: &String| {
            format!("{o}@{c}")
        })
        .to_with("enriched", StringSerde, StringSerde);
    orders
        .left_join_global(&customers, customer_of, |o: &String, c: Option<&String>| {
            format!("{o}@{}", c.map_or("?", |s| s))
        })
        .to_with("enriched-left", StringSerde, StringSerde);
    env.run(b.build().unwrap(), "global", Guarantee::AtLeastOnce);
    assert_eq!(
        env.read_str("enriched"),
        vec![
            Out::new(s("o1"), s("c1:boat@Ann"), 10),
            Out::new(s("o3"), s("c2:bike@Bobby"), 12),
        ]
    );
    assert_eq!(
        env.read_str("enriched-left"),
        vec![
            Out::new(s("o1"), s("c1:boat@Ann"), 10),
            Out::new(s("o2"), s("c3:car@?"), 11),
            Out::new(s("o3"), s("c2:bike@Bobby"), 12),
        ]
    );
}

on_both_backends!(global_table_joins_need_no_co_partitioning);

fn timestamps_can_come_from_the_payload(env: Env) {
    env.topic("readings", 1);
    env.topic("per-window", 1);
    // Values carry their own event time; the record timestamps are wrong.
    env.produce_str(
        "readings",
        &[("s", "5", 1000), ("s", "12", 1001), ("s", "14", 1002)],
    );
    let b = StreamsBuilder::new();
    b.stream("readings", StringSerde, StringSerde)
        .with_timestamps(|_, v: &String, ts| v.parse().unwrap_or(ts))
        .group_by_key()
        .windowed_by(TimeWindows::of(Duration::from_millis(10)).grace(Duration::from_millis(100)))
        .count("pw")
        .to_stream()
        .to_with(
            "per-window",
            WindowedSerde::time(StringSerde, 10),
            OptionSerde(I64Serde),
        );
    env.run(b.build().unwrap(), "tsx", Guarantee::AtLeastOnce);
    assert_eq!(
        env.read_windowed("per-window", 10),
        vec![
            ("s".into(), 0, 10, 1, 5),
            ("s".into(), 10, 20, 1, 12),
            ("s".into(), 10, 20, 2, 14)
        ]
    );
}

on_both_backends!(timestamps_can_come_from_the_payload);

fn joins_of_differently_partitioned_topics_are_refused(env: Env) {
    env.topic("left3", 3);
    env.topic("right2", 2);
    let b = StreamsBuilder::new();
    let l = b.table("left3", StringSerde, StringSerde, "l3");
    let r = b.table("right2", StringSerde, StringSerde, "r2");
    l.join(&r, |a: &String, b: &String| format!("{a}{b}"))
        .to_stream()
        .to_with("out", StringSerde, OptionSerde(StringSerde));
    let err = env
        .start(b.build().unwrap(), "copart", Guarantee::AtLeastOnce)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        err.contains("co-partitioned") && err.contains("left3") && err.contains("right2"),
        "{err}"
    );
}

on_both_backends!(joins_of_differently_partitioned_topics_are_refused);

fn cogroup_folds_streams_of_different_types_into_one_table(env: Env) {
    env.topic("clicks", 1);
    env.topic("purchases", 1);
    env.topic("summary", 1);
    env.produce_str(
        "clicks",
        &[("u1", "home", 1), ("u2", "cart", 3), ("u1", "shop", 5)],
    );
    env.produce_str("purchases", &[("u1", "30", 2), ("u1", "12", 6)]);
    let b = StreamsBuilder::new();
    let clicks = b.stream("clicks", StringSerde, StringSerde).group_by_key();
    let purchases = b
        .stream("purchases", StringSerde, StringSerde)
        .map_values(|_, v: String| v.parse::<i64>().unwrap_or(0))
        .group_by_key();
    clicks
        .cogroup(|_, _page: String, (c, s): (i64, i64)| (c + 1, s))
        .cogroup(&purchases, |_, amount: i64, (c, s): (i64, i64)| {
            (c, s + amount)
        })
        .aggregate(
            || (0i64, 0i64),
            runnel_streams::serdes::JsonSerde::new(),
            "summary-store",
        )
        .map_values(|_, (c, s): &(i64, i64)| format!("clicks={c} spent={s}"))
        .to_stream()
        .to_with("summary", StringSerde, OptionSerde(StringSerde));
    env.run(b.build().unwrap(), "cogroup", Guarantee::AtLeastOnce);
    assert_eq!(
        env.read_str("summary"),
        vec![
            Out::new(s("u1"), s("clicks=1 spent=0"), 1),
            Out::new(s("u1"), s("clicks=1 spent=30"), 2),
            Out::new(s("u2"), s("clicks=1 spent=0"), 3),
            Out::new(s("u1"), s("clicks=2 spent=30"), 5),
            Out::new(s("u1"), s("clicks=2 spent=42"), 6),
        ]
    );
}

on_both_backends!(cogroup_folds_streams_of_different_types_into_one_table);

/// With stores on disk, a restart restores nothing it already has: the
/// store's checkpoint is where its changelog ends. Under exactly-once a
/// crash mid-transaction leaves storage at the last commit (uncommitted
/// writes never reach it), so the restart neither wipes nor replays state.
fn disk_stores_restart_from_their_checkpoint_even_after_a_crash(env: Env) {
    let state = tempfile::tempdir().unwrap();
    env.topic("in", 2);
    env.topic("counts", 1);
    let topology = || {
        let b = StreamsBuilder::new();
        b.stream("in", StringSerde, StringSerde)
            .group_by_key()
            .count("c")
            .to_stream()
            .to_with("counts", StringSerde, OptionSerde(I64Serde));
        b.build().unwrap()
    };
    // A fresh supplier per instance: like a new process on the same disk.
    let disk = || -> std::sync::Arc<dyn runnel_streams::StoreSupplier> {
        std::sync::Arc::new(runnel_streams::state::DiskStores::new(state.path()))
    };
    env.use_stores(disk());
    env.produce_keyed("in", 0, &[("a", "", 1), ("a", "", 2)]);
    env.produce_keyed("in", 1, &[("b", "", 3)]);
    let first = env.run(topology(), "disk", Guarantee::ExactlyOnce);
    assert_eq!(first.restored_records, 0);
    // Crash with an open transaction holding a's third count.
    env.produce_keyed("in", 0, &[("a", "", 4)]);
    env.use_stores(disk());
    let crashed = env.run_without_commit(topology(), "disk", Guarantee::ExactlyOnce);
    assert_eq!(
        crashed.restored_records, 0,
        "checkpoints cover the whole changelog"
    );
    assert_eq!(crashed.processed, 1);
    env.produce_keyed("in", 1, &[("b", "", 5)]);
    env.use_stores(disk());
    let after = env.run(topology(), "disk", Guarantee::ExactlyOnce);
    assert_eq!(
        after.restored_records, 0,
        "the aborted writes never reached storage"
    );
    assert_eq!(
        after.processed, 2,
        "a's record again (its offset was not committed), and b's"
    );
    let mut got = env.read_i64("counts");
    got.sort_by_key(|o| (o.0.clone(), o.1));
    assert_eq!(
        got,
        vec![
            (s("a"), Some(1), 1),
            (s("a"), Some(2), 2),
            (s("a"), Some(3), 4),
            (s("b"), Some(1), 3),
            (s("b"), Some(2), 5),
        ]
    );
}

on_both_backends!(disk_stores_restart_from_their_checkpoint_even_after_a_crash);

/// Every window of a key goes to the key's own partition (the window is
/// not hashed), as Kafka Streams' windowed partitioner does.
fn windowed_results_are_partitioned_by_their_key(env: Env) {
    env.topic("ev", 1);
    env.topic("wc3", 3);
    let recs: Vec<(String, i64)> = (0..60).map(|i| (format!("k{}", i % 6), i * 7)).collect();
    let refs: Vec<(&str, &str, i64)> = recs.iter().map(|(k, t)| (k.as_str(), "", *t)).collect();
    env.produce_str("ev", &refs);
    let b = StreamsBuilder::new();
    b.stream("ev", StringSerde, StringSerde)
        .group_by_key()
        .windowed_by(TimeWindows::of(Duration::from_millis(50)).grace(Duration::from_secs(1)))
        .count("wc3-store")
        .to_stream()
        .to_with(
            "wc3",
            WindowedSerde::time(StringSerde, 50),
            OptionSerde(I64Serde),
        );
    env.run(b.build().unwrap(), "wpart", Guarantee::AtLeastOnce);
    let got = env.keys_by_partition("wc3");
    assert_eq!(got.len(), 60);
    for (p, k) in got {
        let k = k.unwrap();
        let inner = &k[..k.len() - 8];
        assert_eq!(
            p,
            runnel_streams::serdes::partition_for(inner, 3),
            "{:?}",
            String::from_utf8_lossy(inner)
        );
    }
}

on_both_backends!(windowed_results_are_partitioned_by_their_key);

/// A source with a completing step: the step sees each record's
/// timestamp, partition and offset, may rewrite the value or drop the
/// record, and runs before anything downstream (a count here).
fn sources_complete_or_drop_values_as_they_decode(env: Env) {
    env.topic("raw", 1);
    env.topic("completed", 1);
    env.topic("counted", 1);
    env.produce_str(
        "raw",
        &[
            ("a", "x", 10),
            ("b", "", 20),
            ("a", "y", 30),
            ("c", "z", 40),
        ],
    );
    // A value that is not UTF-8 is skipped and counted before the step.
    env.produce_raw(
        "raw",
        0,
        &[(Some(b"d".to_vec()), Some(vec![0xff, 0xfe]), 50)],
    );
    let b = StreamsBuilder::new();
    let completed = b.stream_with_meta(
        "raw",
        StringSerde,
        StringSerde,
        |m: &runnel_streams::RecordMeta, k: &String, v: String| {
            (!v.is_empty()).then(|| format!("{k}{v}@{}/{}/{}", m.timestamp, m.partition, m.offset))
        },
    );
    completed.to_with("completed", StringSerde, StringSerde);
    completed
        .group_by_key()
        .count("completed-count")
        .to_stream()
        .to_with("counted", StringSerde, OptionSerde(I64Serde));
    let app = env.run(b.build().unwrap(), "with-meta", Guarantee::AtLeastOnce);
    assert_eq!(app.processed, 5);
    assert_eq!(app.undecodable, 1);
    assert_eq!(
        env.read_str("completed"),
        vec![
            Out::new(s("a"), s("ax@10/0/0"), 10),
            Out::new(s("a"), s("ay@30/0/2"), 30),
            Out::new(s("c"), s("cz@40/0/3"), 40),
        ]
    );
    assert_eq!(
        env.read_i64("counted"),
        vec![
            (s("a"), Some(1), 10),
            (s("a"), Some(2), 30),
            (s("c"), Some(1), 40)
        ]
    );
}

on_both_backends!(sources_complete_or_drop_values_as_they_decode);

/// `OffsetReset::Latest`: a new application skips what its source held
/// before it started; once it has committed, a restart resumes from the
/// commit; an application starting at the earliest sees everything.
fn latest_offset_reset_starts_new_applications_at_the_end(env: Env) {
    env.topic("feed", 1);
    env.topic("seen", 1);
    env.topic("seen-all", 1);
    env.produce_str("feed", &[("a", "before", 1)]);
    let topology = |out: &str| {
        let b = StreamsBuilder::new();
        b.stream("feed", StringSerde, StringSerde)
            .to_with(out, StringSerde, StringSerde);
        b.build().unwrap()
    };
    env.use_offset_reset(runnel_streams::OffsetReset::Latest);
    let mut app = env
        .start(topology("seen"), "from-latest", Guarantee::AtLeastOnce)
        .unwrap();
    env.drain(&mut app);
    env.produce_str("feed", &[("b", "after", 2)]);
    env.drain(&mut app);
    app.commit().unwrap();
    app.close().unwrap();
    assert_eq!(env.read_str("seen"), vec![Out::new(s("b"), s("after"), 2)]);
    // Written while it was stopped: the committed offset wins.
    env.produce_str("feed", &[("c", "while stopped", 3)]);
    env.run(topology("seen"), "from-latest", Guarantee::AtLeastOnce);
    assert_eq!(
        env.read_str("seen"),
        vec![
            Out::new(s("b"), s("after"), 2),
            Out::new(s("c"), s("while stopped"), 3)
        ]
    );
    env.use_offset_reset(runnel_streams::OffsetReset::Earliest);
    env.run(
        topology("seen-all"),
        "from-earliest",
        Guarantee::AtLeastOnce,
    );
    assert_eq!(env.read_str("seen-all").len(), 3);
}

on_both_backends!(latest_offset_reset_starts_new_applications_at_the_end);

/// Strings that refuse to be written when they contain "bad".
struct PickySerde;
impl runnel_streams::serdes::Serde<String> for PickySerde {
    fn serialize(&self, v: &String) -> runnel_streams::serdes::Serialized {
        if v.contains("bad") {
            Err(runnel_streams::serdes::SerdeError(format!("{v:?} refused")))
        } else {
            Ok(Some(v.as_bytes().to_vec()))
        }
    }
    fn deserialize(&self, b: Option<&[u8]>) -> Result<String, runnel_streams::serdes::SerdeError> {
        StringSerde.deserialize(b)
    }
}

/// A value that cannot be encoded is a processing error: its record is
/// skipped and counted, and nothing — least of all a null, which on a
/// table's topic or changelog is a tombstone — is written for it. The
/// records around it are processed normally.
fn values_that_cannot_be_encoded_are_skipped_never_written_as_tombstones(env: Env) {
    use runnel_streams::serdes::Serde;
    env.topic("in", 1);
    env.topic("latest", 1);
    env.topic("joined", 1);
    env.produce_str(
        "in",
        &[
            ("a", "1", 10),
            ("b", "bad", 20),
            ("a", "bad too", 30),
            ("c", "3", 40),
            ("a", "2", 50),
        ],
    );
    let b = StreamsBuilder::new();
    let st = b.stream("in", StringSerde, StringSerde);
    // The sink's value serde refuses: the table keeps its rows, the topic
    // gets no tombstone for "b" and no record for a's refused update.
    st.group_by_key()
        .reduce(|_, v| v, "latest-store")
        .to_stream()
        .to_with("latest", StringSerde, OptionSerde(PickySerde));
    // The store's own serde refuses: the aggregate keeps its last
    // encodable value; its changelog gets no tombstone.
    st.group_by_key()
        .aggregate(
            String::new,
            |_, v, acc| format!("{acc}{v}"),
            PickySerde,
            "joined-store",
        )
        .to_stream()
        .to_with("joined", StringSerde, OptionSerde(StringSerde));
    let app = env.run(b.build().unwrap(), "picky", Guarantee::AtLeastOnce);
    assert_eq!(app.processed, 5);
    // Refused twice by the sink (b's "bad", a's "bad too") and twice by
    // the store (b's "bad", a's "1bad too"; a's aggregate stays "1").
    assert_eq!(app.unencodable, 4, "{app:?}");
    assert_eq!(
        env.read_str("latest"),
        vec![
            Out::new(s("a"), s("1"), 10),
            Out::new(s("c"), s("3"), 40),
            Out::new(s("a"), s("2"), 50),
        ]
    );
    assert_eq!(
        env.read_str("joined"),
        vec![
            Out::new(s("a"), s("1"), 10),
            Out::new(s("c"), s("3"), 40),
            Out::new(s("a"), s("12"), 50),
        ]
    );
    let changelog = env.read_str("picky-joined-store-changelog");
    assert!(
        changelog.iter().all(|o| o.value.is_some()),
        "no tombstone in the changelog: {changelog:?}"
    );
    assert!(PickySerde.serialize(&"fine".to_string()).is_ok());
}

on_both_backends!(values_that_cannot_be_encoded_are_skipped_never_written_as_tombstones);

/// A backend whose chosen commits are aborted by "the cluster": the
/// transaction is aborted and the commit fails with a retriable error, as
/// when a broker dies with the transaction's coordinator.
struct AbortedCommits {
    inner: Box<dyn runnel_streams::Backend>,
    commits: usize,
    abort: Vec<usize>,
}

impl runnel_streams::Backend for AbortedCommits {
    fn partition_count(&mut self, t: &str) -> Result<Option<i32>, runnel_streams::BackendError> {
        self.inner.partition_count(t)
    }
    fn create_topic(
        &mut self,
        t: &str,
        n: i32,
        c: &[(String, String)],
    ) -> Result<(), runnel_streams::BackendError> {
        self.inner.create_topic(t, n, c)
    }
    fn subscribe(&mut self, t: &[String]) -> Result<(), runnel_streams::BackendError> {
        self.inner.subscribe(t)
    }
    fn poll(
        &mut self,
        d: Duration,
    ) -> Result<Vec<runnel_streams::backend::PollEvent>, runnel_streams::BackendError> {
        self.inner.poll(d)
    }
    fn seek(
        &mut self,
        tp: &runnel_streams::backend::TopicPartition,
        o: i64,
    ) -> Result<(), runnel_streams::BackendError> {
        self.inner.seek(tp, o)
    }
    fn committed(
        &mut self,
        tps: &[runnel_streams::backend::TopicPartition],
    ) -> Result<Vec<Option<i64>>, runnel_streams::BackendError> {
        self.inner.committed(tps)
    }
    fn begin(&mut self) -> Result<(), runnel_streams::BackendError> {
        self.inner.begin()
    }
    fn send(
        &mut self,
        r: Vec<runnel_streams::backend::ProducedRecord>,
    ) -> Result<(), runnel_streams::BackendError> {
        self.inner.send(r)
    }
    fn commit(
        &mut self,
        o: &[(runnel_streams::backend::TopicPartition, i64)],
    ) -> Result<(), runnel_streams::BackendError> {
        self.commits += 1;
        if self.abort.contains(&self.commits) {
            self.inner.abort()?;
            return Err(runnel_streams::BackendError::Retriable(
                "the coordinator went away".into(),
            ));
        }
        self.inner.commit(o)
    }
    fn abort(&mut self) -> Result<(), runnel_streams::BackendError> {
        self.inner.abort()
    }
    fn lag(&mut self, tp: &runnel_streams::backend::TopicPartition) -> Option<i64> {
        self.inner.lag(tp)
    }
    fn end_offsets(
        &mut self,
        tps: &[runnel_streams::backend::TopicPartition],
    ) -> Result<Vec<i64>, runnel_streams::BackendError> {
        self.inner.end_offsets(tps)
    }
    fn read_partition(
        &mut self,
        tp: &runnel_streams::backend::TopicPartition,
        from: i64,
        f: &mut dyn FnMut(runnel_streams::backend::ConsumedRecord),
    ) -> Result<i64, runnel_streams::BackendError> {
        self.inner.read_partition(tp, from, f)
    }
}

fn an_aborted_commit_is_redone_from_the_last_commit(env: Env) {
    env.topic("in", 1);
    env.topic("counts", 1);
    let b = StreamsBuilder::new();
    b.stream("in", StringSerde, StringSerde)
        .group_by_key()
        .count("c")
        .to_stream()
        .to_with("counts", StringSerde, OptionSerde(I64Serde));
    let backend = AbortedCommits {
        inner: env.backend("aborted", Guarantee::ExactlyOnce).unwrap(),
        commits: 0,
        abort: vec![2, 3],
    };
    let mut app = env
        .start_on(
            b.build().unwrap(),
            "aborted",
            Guarantee::ExactlyOnce,
            Box::new(backend),
        )
        .unwrap();
    // Three rounds of input, each committed: the second round's commit is
    // aborted twice; its records are processed again from the first
    // commit's state, never counted twice, and the application goes on.
    for round in 0..3 {
        let ts = 10 * round;
        env.produce_str("in", &[("a", "", ts + 1), ("a", "", ts + 2)]);
        env.drain(&mut app);
        app.commit().unwrap();
        if round == 1 {
            assert_eq!(app.metrics().rollbacks, 1, "{:?}", app.metrics());
            env.drain(&mut app);
            app.commit().unwrap();
            assert_eq!(app.metrics().rollbacks, 2, "{:?}", app.metrics());
            env.drain(&mut app);
            app.commit().unwrap();
        }
    }
    app.close().unwrap();
    let counts: Vec<Option<i64>> = env.read_i64("counts").into_iter().map(|c| c.1).collect();
    assert_eq!(counts, (1..=6).map(Some).collect::<Vec<_>>());
}

on_both_backends!(an_aborted_commit_is_redone_from_the_last_commit);

/// With the record cache, a window's updates between two commits go out
/// as one record, its latest count, in the transaction of that commit; an
/// aborted commit's held-back updates vanish with the rest of its work.
fn the_record_cache_forwards_the_latest_count_per_window_at_commit(env: Env) {
    env.topic("in", 1);
    env.topic("wc", 1);
    env.use_cache(runnel_streams::DEFAULT_CACHE_MAX_BYTES);
    let b = StreamsBuilder::new();
    b.stream("in", StringSerde, StringSerde)
        .group_by_key()
        .windowed_by(TimeWindows::of(Duration::from_millis(100)).grace(Duration::from_secs(1)))
        .count("wc-store")
        .to_stream()
        .to_with(
            "wc",
            WindowedSerde::time(StringSerde, 100),
            OptionSerde(I64Serde),
        );
    let backend = AbortedCommits {
        inner: env.backend("cached", Guarantee::ExactlyOnce).unwrap(),
        commits: 0,
        abort: vec![2, 3],
    };
    let mut app = env
        .start_on(
            b.build().unwrap(),
            "cached",
            Guarantee::ExactlyOnce,
            Box::new(backend),
        )
        .unwrap();
    // Three rounds of three records, each round committed; the second
    // round's commit is aborted twice and redone.
    for round in 0..3 {
        let ts = 10 * round;
        env.produce_str(
            "in",
            &[("a", "", ts + 1), ("b", "", ts + 2), ("a", "", ts + 3)],
        );
        env.drain(&mut app);
        app.commit().unwrap();
        if round == 1 {
            for _ in 0..2 {
                env.drain(&mut app);
                app.commit().unwrap();
            }
            assert_eq!(app.metrics().rollbacks, 2, "{:?}", app.metrics());
        }
    }
    app.close().unwrap();
    assert_eq!(
        env.read_windowed("wc", 100),
        vec![
            ("a".into(), 0, 100, 2, 3),
            ("b".into(), 0, 100, 1, 2),
            ("a".into(), 0, 100, 4, 13),
            ("b".into(), 0, 100, 2, 12),
            ("a".into(), 0, 100, 6, 23),
            ("b".into(), 0, 100, 3, 22),
        ]
    );
}

on_both_backends!(the_record_cache_forwards_the_latest_count_per_window_at_commit);
