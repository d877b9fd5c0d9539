//! SQL benchmark: what SQL costs over the same topology written in the
//! DSL, pull-query latency on a large table, and how many concurrent push
//! queries one process serves.
//!
//! ```text
//! cargo run --release -p runnel-sql --example sql_bench -- \
//!     [--events N] [--keys K] [--pull-keys M] [--pulls Q] [--push P[,P…]] [--only throughput|pull|push]
//!     [--query NAME-SUBSTRING] [--sql-only | --dsl-only] [--rounds R]
//! cargo run --release -p runnel-sql --example sql_bench -- --only formats [--events N] [--rounds R]
//! ```
//!
//! Setup, before any clock starts: a broker in a temp dir; topic `events`
//! (1 partition) preloaded with N events (default 1M): key `k00000`… (K
//! distinct, default 10k), JSON value `{"USER_ID":…,"AMOUNT":…}`,
//! timestamps increasing over 7 days; topic `profiles` with one row per key.
//!
//! Throughput: each query runs once as SQL (through the engine: a
//! persistent query on its own thread) and once as the equivalent
//! `runnel-streams` topology on this thread, at-least-once, timed from its
//! start until all input is processed and committed. CPU time is the
//! process's (`/proc/self/stat`), broker included; the ratio SQL/DSL is the
//! figure that matters. Each query runs R rounds (default 3), DSL then SQL
//! (a fresh persistent query each round); the table shows medians, the
//! ratio being the median of the rounds' ratios.
//!
//! Pull: a CTAS over M distinct keys (default 1M), then Q key lookups
//! (default 20k) through `Engine::query`, p50/p99/max.
//!
//! Push: P push queries (default 100,1000,2000) on one stream, then 100
//! rows inserted; time until every query received every row, and rows
//! delivered per second.
//!
//! Formats (`--only formats`, not part of the default run): the filter +
//! projection query over the same events as JSON, AVRO, PROTOBUF and
//! JSON_SR values (Runnel's schema registry in process), events per CPU
//! second of the query's thread and the ratio to JSON.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may stop at the first surprise

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use runnel_broker::{Broker, BrokerConfig};
use runnel_embed::{LocalBackend, LocalCluster};
use runnel_sql::{Engine, EngineConfig, QueryEvent};
use runnel_streams::serdes::{JsonSerde, OptionSerde, StringSerde, WindowedSerde};
use runnel_streams::{
    Backend, Guarantee, ProducedRecord, Streams, StreamsBuilder, StreamsConfig, TimeWindows,
    Topology,
};
use serde::{Deserialize, Serialize};

/// The allocator `runnel serve` uses.
#[global_allocator]
static GLOBAL: runnel_alloc::MiMalloc = runnel_alloc::MiMalloc;

type Error = Box<dyn std::error::Error>;
/// Builds a benchmark's DSL topology.
type TopologyFn = Box<dyn Fn() -> Result<Topology, Error>>;

const DAY_MS: i64 = 86_400_000;
const T0: i64 = 1_700_006_400_000;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Ev {
    #[serde(rename = "USER_ID")]
    user_id: String,
    #[serde(rename = "AMOUNT")]
    amount: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Filtered {
    #[serde(rename = "USER_ID")]
    user_id: String,
    #[serde(rename = "A2")]
    a2: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Count {
    #[serde(rename = "N")]
    n: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Profile {
    #[serde(rename = "NAME")]
    name: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Joined {
    #[serde(rename = "AMOUNT")]
    amount: i64,
    #[serde(rename = "NAME")]
    name: String,
}

fn cpu_seconds() -> f64 {
    stat_cpu(&std::fs::read_to_string("/proc/self/stat").unwrap_or_default())
}

/// User + system CPU seconds from a `/proc/.../stat` line.
fn stat_cpu(stat: &str) -> f64 {
    let after = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|x| x.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

/// CPU seconds of this process's threads whose name starts with `prefix`,
/// by thread id: the query's own work, without the broker's and the
/// engine's background threads.
fn threads_cpu(prefix: &str) -> HashMap<String, f64> {
    let mut out = HashMap::new();
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return out;
    };
    for task in dir.flatten() {
        let path = task.path();
        let comm = std::fs::read_to_string(path.join("comm")).unwrap_or_default();
        if comm.starts_with(prefix) {
            let stat = std::fs::read_to_string(path.join("stat")).unwrap_or_default();
            out.insert(
                task.file_name().to_string_lossy().into_owned(),
                stat_cpu(&stat),
            );
        }
    }
    out
}

/// CPU the threads named `prefix…` spent between two [`threads_cpu`]s.
fn threads_cpu_since(prefix: &str, before: &HashMap<String, f64>) -> f64 {
    threads_cpu(prefix)
        .iter()
        .map(|(tid, c)| c - before.get(tid).copied().unwrap_or(0.0))
        .sum()
}

struct Args {
    events: usize,
    keys: usize,
    pull_keys: usize,
    pulls: usize,
    push: Vec<usize>,
    only: Option<String>,
    /// Throughput queries whose name contains this.
    query: Option<String>,
    /// Skip the DSL runs (profiling SQL alone).
    sql_only: bool,
    /// Skip the SQL runs (profiling the DSL alone).
    dsl_only: bool,
    /// Rounds per throughput query.
    rounds: usize,
}

fn args() -> Args {
    let mut a = Args {
        events: 1_000_000,
        keys: 10_000,
        pull_keys: 1_000_000,
        pulls: 20_000,
        push: vec![100, 1000, 2000],
        only: None,
        query: None,
        sql_only: false,
        dsl_only: false,
        rounds: 3,
    };
    let v: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < v.len() {
        let next = v.get(i + 1).cloned().unwrap_or_default();
        match v[i].as_str() {
            "--events" => a.events = next.parse().unwrap_or(a.events),
            "--keys" => a.keys = next.parse().unwrap_or(a.keys),
            "--pull-keys" => a.pull_keys = next.parse().unwrap_or(a.pull_keys),
            "--pulls" => a.pulls = next.parse().unwrap_or(a.pulls),
            "--push" => a.push = next.split(',').filter_map(|x| x.parse().ok()).collect(),
            "--only" => a.only = Some(next),
            "--query" => a.query = Some(next),
            "--rounds" => a.rounds = next.parse().unwrap_or(a.rounds).max(1),
            "--sql-only" => {
                a.sql_only = true;
                i += 1;
                continue;
            }
            "--dsl-only" => {
                a.dsl_only = true;
                i += 1;
                continue;
            }
            other => eprintln!("ignoring argument {other}"),
        }
        i += 2;
    }
    a
}

fn produce(
    broker: &Arc<Broker>,
    topic: &str,
    recs: impl Iterator<Item = (String, Vec<u8>, i64)>,
) -> Result<usize, Error> {
    let mut b = LocalBackend::new(broker.local(), "bench-producer", Guarantee::AtLeastOnce)?;
    let mut batch = Vec::with_capacity(500);
    let mut n = 0;
    for (k, v, ts) in recs {
        batch.push(ProducedRecord {
            topic: topic.to_string(),
            partition: 0,
            timestamp: ts,
            key: Some(k.into_bytes()),
            value: Some(v),
            headers: Vec::new(),
        });
        n += 1;
        if batch.len() == 500 {
            b.send(std::mem::take(&mut batch))?;
            b.commit(&[])?;
        }
        if n % 1_000_000 == 0 {
            eprintln!("  preloaded {n} records into {topic}");
        }
    }
    if !batch.is_empty() {
        b.send(batch)?;
        b.commit(&[])?;
    }
    Ok(n)
}

fn events(n: usize, keys: usize) -> impl Iterator<Item = (String, Vec<u8>, i64)> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let step = (7 * DAY_MS) / n.max(1) as i64;
    (0..n).map(move |i| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let k = format!("k{:05}", x % keys as u64);
        let v = format!(
            "{{\"USER_ID\":\"u{}\",\"AMOUNT\":{}}}",
            x % 1000,
            (x >> 20) % 100
        );
        (k, v.into_bytes(), T0 + i as i64 * step)
    })
}

fn run_dsl(broker: &Arc<Broker>, topology: Topology, app: &str) -> Result<(), Error> {
    let backend = LocalBackend::new(broker.local(), app, Guarantee::AtLeastOnce)?;
    let mut config = StreamsConfig::new(app).commit_interval(Duration::from_secs(30));
    config.poll_timeout = Duration::from_millis(20);
    let mut s = Streams::new(topology, config, Box::new(backend))?;
    loop {
        let n = s.poll_once()?;
        if n == 0 && s.is_idle() {
            break;
        }
    }
    s.close()?;
    Ok(())
}

/// The calling thread's CPU seconds.
fn own_thread_cpu() -> f64 {
    stat_cpu(&std::fs::read_to_string("/proc/thread-self/stat").unwrap_or_default())
}

fn measure(f: impl FnOnce() -> Result<(), Error>) -> Result<(f64, f64), Error> {
    let (t, c) = (Instant::now(), cpu_seconds());
    f()?;
    Ok((t.elapsed().as_secs_f64(), cpu_seconds() - c))
}

fn sql(engine: &Engine, text: &str) -> Result<(), Error> {
    engine
        .execute(text, &BTreeMap::new())
        .map(|_| ())
        .map_err(|(e, _)| format!("{text}: {e}").into())
}

fn throughput(a: &Args) -> Result<(), Error> {
    let dir = tempfile::tempdir()?;
    let broker = Broker::open(dir.path(), BrokerConfig::default())?;
    let local = broker.local();
    local.create_topic("events", 1, BTreeMap::new())?;
    local.create_topic("profiles", 1, BTreeMap::new())?;
    eprintln!("preloading {} events, {} keys", a.events, a.keys);
    let n = produce(&broker, "events", events(a.events, a.keys))?;
    produce(
        &broker,
        "profiles",
        (0..a.keys).map(|i| {
            (
                format!("k{i:05}"),
                format!("{{\"NAME\":\"name-{i}\"}}").into_bytes(),
                T0 - 1,
            )
        }),
    )?;
    let engine = Engine::start(
        Arc::new(LocalCluster::new(local.clone())),
        EngineConfig {
            commit_interval: Duration::from_secs(30),
            ..EngineConfig::default()
        },
    )?;
    sql(&engine, "CREATE STREAM events (k STRING KEY, user_id STRING, amount BIGINT) WITH (KAFKA_TOPIC='events', VALUE_FORMAT='JSON');")?;
    sql(&engine, "CREATE TABLE profiles (k STRING PRIMARY KEY, name STRING) WITH (KAFKA_TOPIC='profiles', VALUE_FORMAT='JSON');")?;
    for t in ["dsl_filter", "dsl_count", "dsl_join"] {
        local.create_topic(t, 1, BTreeMap::new())?;
    }
    println!("| query | DSL events/CPU-s | SQL events/CPU-s | SQL ÷ DSL (process CPU per event), median (rounds) | SQL ÷ DSL (query thread CPU), median (rounds) | DSL wall s | SQL wall s |");
    println!("|---|---|---|---|---|---|---|");
    let queries: Vec<(&str, TopologyFn, &str)> = vec![
        (
            "filter + projection",
            Box::new(|| {
                let b = StreamsBuilder::new();
                b.stream("events", StringSerde, JsonSerde::<Ev>::new())
                    .filter(|_, e: &Ev| e.amount >= 50)
                    .map_values(|_, e: Ev| Filtered {
                        user_id: e.user_id,
                        a2: e.amount * 2,
                    })
                    .to_with("dsl_filter", StringSerde, JsonSerde::<Filtered>::new());
                Ok(b.build()?)
            }),
            "CREATE STREAM sql_filter AS SELECT k, user_id, amount * 2 AS a2 FROM events WHERE amount >= 50;",
        ),
        (
            "windowed count (slide 18), 1-day tumbling",
            Box::new(|| {
                let b = StreamsBuilder::new();
                b.stream("events", StringSerde, JsonSerde::<Ev>::new())
                    .group_by_key()
                    .windowed_by(TimeWindows::of(Duration::from_millis(DAY_MS as u64)))
                    .count("dsl-count-store")
                    .map_values(|_, n: &i64| Count { n: *n })
                    .to_stream()
                    .to_with(
                        "dsl_count",
                        WindowedSerde::time(StringSerde, DAY_MS),
                        OptionSerde(JsonSerde::<Count>::new()),
                    );
                Ok(b.build()?)
            }),
            "CREATE TABLE sql_count AS SELECT k, COUNT(*) AS n FROM events WINDOW TUMBLING (SIZE 1 DAY) GROUP BY k;",
        ),
        (
            "stream-table join",
            Box::new(|| {
                let b = StreamsBuilder::new();
                let t = b.table("profiles", StringSerde, JsonSerde::<Profile>::new(), "dsl-profiles");
                b.stream("events", StringSerde, JsonSerde::<Ev>::new())
                    .join(&t, |e: &Ev, p: &Profile| Joined {
                        amount: e.amount,
                        name: p.name.clone(),
                    })
                    .to_with("dsl_join", StringSerde, JsonSerde::<Joined>::new());
                Ok(b.build()?)
            }),
            "CREATE STREAM sql_join AS SELECT e.k AS k, e.amount AS amount, p.name AS name FROM events e JOIN profiles p ON e.k = p.k;",
        ),
    ];
    for (i, (name, dsl, stmt)) in queries.iter().enumerate() {
        if a.query.as_ref().is_some_and(|q| !name.contains(q.as_str())) {
            continue;
        }
        let mut rounds: Vec<(f64, f64, f64, f64)> = Vec::new();
        // Per round: CPU of the DSL query's thread and the SQL query's.
        let mut threads: Vec<(f64, f64)> = Vec::new();
        for r in 0..a.rounds {
            eprintln!("running {name}, round {}/{}", r + 1, a.rounds);
            let run_dsl_round = || -> Result<((f64, f64), f64), Error> {
                if a.sql_only {
                    return Ok(((0.0, 0.0), 0.0));
                }
                // On a thread of its own, as each SQL query runs.
                let topology = dsl()?;
                let (b, app) = (broker.clone(), format!("bench-dsl-{i}-{r}"));
                let mut dt = 0.0;
                let m = measure(|| {
                    dt = std::thread::Builder::new()
                        .name("dsl-query".into())
                        .spawn(move || {
                            run_dsl(&b, topology, &app)
                                .map(|()| own_thread_cpu())
                                .map_err(|e| e.to_string())
                        })?
                        .join()
                        .map_err(|_| "the DSL query panicked")??;
                    Ok(())
                })?;
                Ok((m, dt))
            };
            let run_sql_round = || -> Result<((f64, f64), f64), Error> {
                if a.dsl_only {
                    return Ok(((0.0, 0.0), 0.0));
                }
                let before = threads_cpu("query-");
                let mut st = 0.0;
                let m = measure(|| {
                    // A new sink per round: `… sql_filter AS` → `… sql_filter_r1 AS`.
                    let stmt = stmt.replacen(" AS SELECT", &format!("_r{r} AS SELECT"), 1);
                    sql(&engine, &stmt)?;
                    if !engine.wait_idle(Duration::from_secs(600)) {
                        return Err("the SQL query did not finish".into());
                    }
                    st = threads_cpu_since("query-", &before);
                    Ok(())
                })?;
                // Stopped outside the clock, as each DSL run is closed.
                sql(&engine, "TERMINATE ALL;")?;
                Ok((m, st))
            };
            // Odd rounds run the SQL query first, so neither side always
            // inherits the other's heap and page cache.
            let (((dw, dc), dt), ((sw, sc), st)) = if r % 2 == 0 {
                let d = run_dsl_round()?;
                (d, run_sql_round()?)
            } else {
                let s = run_sql_round()?;
                (run_dsl_round()?, s)
            };
            let rss_mb = std::fs::read_to_string("/proc/self/statm")
                .ok()
                .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
                .map_or(0, |pages| pages * 4096 / (1 << 20));
            eprintln!("  DSL {dt:.2} CPU-s, SQL {st:.2} CPU-s (query threads), RSS {rss_mb} MB");
            rounds.push((dw, dc, sw, sc));
            threads.push((dt, st));
        }
        let median = |mut v: Vec<f64>| -> f64 {
            v.sort_by(f64::total_cmp);
            v.get(v.len() / 2).copied().unwrap_or(0.0)
        };
        let per = |c: f64| if c > 0.0 { n as f64 / c } else { 0.0 };
        let dc = median(rounds.iter().map(|r| r.1).collect());
        let sc = median(rounds.iter().map(|r| r.3).collect());
        let ratio = median(
            rounds
                .iter()
                .map(|r| if r.1 > 0.0 { r.3 / r.1 } else { 0.0 })
                .collect(),
        );
        let ratios: Vec<String> = rounds
            .iter()
            .map(|r| format!("{:.2}", if r.1 > 0.0 { r.3 / r.1 } else { 0.0 }))
            .collect();
        let thread_ratio = |t: &(f64, f64)| if t.0 > 0.0 { t.1 / t.0 } else { 0.0 };
        let thread_ratios: Vec<String> = threads
            .iter()
            .map(|t| format!("{:.2}", thread_ratio(t)))
            .collect();
        println!(
            "| {name} | {:.0}k | {:.0}k | {ratio:.2} ({}) | {:.2} ({}) | {:.2} | {:.2} |",
            per(dc) / 1000.0,
            per(sc) / 1000.0,
            ratios.join(", "),
            median(threads.iter().map(thread_ratio).collect()),
            thread_ratios.join(", "),
            median(rounds.iter().map(|r| r.0).collect()),
            median(rounds.iter().map(|r| r.2).collect()),
        );
    }
    engine.shutdown();
    Ok(())
}

/// The filter + projection query over the same events in each value
/// format, the registry formats through Runnel's schema registry (on the
/// same in-process broker). Each format's input topic is written by a CSAS
/// from the JSON events before any clock starts, so the records are what
/// the SQL engine itself writes; the timed query reads and writes its
/// input's format. Rounds alternate the formats' order.
fn formats(a: &Args) -> Result<(), Error> {
    let dir = tempfile::tempdir()?;
    let broker = Broker::open(dir.path(), BrokerConfig::default())?;
    let local = broker.local();
    local.create_topic("events", 1, BTreeMap::new())?;
    eprintln!("preloading {} events, {} keys", a.events, a.keys);
    let n = produce(&broker, "events", events(a.events, a.keys))?;
    let cluster = Arc::new(LocalCluster::new(local.clone()));
    let registry = runnel_testkit::TestRegistry::start_on(cluster.clone());
    let engine = Engine::start(
        cluster,
        EngineConfig {
            commit_interval: Duration::from_secs(30),
            schema_registry_url: Some(registry.url().to_string()),
            ..EngineConfig::default()
        },
    )?;
    sql(&engine, "CREATE STREAM events (k STRING KEY, user_id STRING, amount BIGINT) WITH (KAFKA_TOPIC='events', VALUE_FORMAT='JSON');")?;
    let formats = ["JSON", "AVRO", "PROTOBUF", "JSON_SR"];
    for f in &formats[1..] {
        eprintln!("writing the events as {f}");
        sql(
            &engine,
            &format!("CREATE STREAM events_{f} WITH (VALUE_FORMAT='{f}') AS SELECT * FROM events;"),
        )?;
        if !engine.wait_idle(Duration::from_secs(600)) {
            return Err(format!("the {f} copy did not finish").into());
        }
    }
    sql(&engine, "TERMINATE ALL;")?;
    // Per format: (wall s, process CPU s, query thread CPU s) per round.
    let mut runs: BTreeMap<&str, Vec<(f64, f64, f64)>> = BTreeMap::new();
    for r in 0..a.rounds {
        let mut order: Vec<&str> = formats.to_vec();
        if r % 2 == 1 {
            order.reverse();
        }
        for f in order {
            eprintln!("filter + projection over {f}, round {}/{}", r + 1, a.rounds);
            let input = if f == "JSON" {
                "events".to_string()
            } else {
                format!("events_{f}")
            };
            let before = threads_cpu("query-");
            let mut st = 0.0;
            let (w, c) = measure(|| {
                sql(&engine, &format!("CREATE STREAM out_{f}_r{r} AS SELECT k, user_id, amount * 2 AS a2 FROM {input} WHERE amount >= 50;"))?;
                if !engine.wait_idle(Duration::from_secs(600)) {
                    return Err("the SQL query did not finish".into());
                }
                st = threads_cpu_since("query-", &before);
                Ok(())
            })?;
            sql(&engine, "TERMINATE ALL;")?;
            eprintln!("  {f}: {w:.2} s wall, {st:.2} CPU-s in the query thread");
            runs.entry(f).or_default().push((w, c, st));
        }
    }
    let median = |mut v: Vec<f64>| -> f64 {
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied().unwrap_or(0.0)
    };
    let json_thread = median(
        runs.get("JSON")
            .map_or_else(Vec::new, |v| v.iter().map(|r| r.2).collect()),
    );
    println!("| value format | events/s (wall) | events per query-thread CPU-s | ÷ JSON (per CPU-s), rounds |");
    println!("|---|---:|---:|---|");
    for f in formats {
        let v = runs.get(f).cloned().unwrap_or_default();
        let per_round: Vec<String> = v
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let j = runs.get("JSON").and_then(|j| j.get(i)).map_or(0.0, |j| j.2);
                format!("{:.2}", if r.2 > 0.0 { j / r.2 } else { 0.0 })
            })
            .collect();
        let wall = median(v.iter().map(|r| r.0).collect());
        let thread = median(v.iter().map(|r| r.2).collect());
        println!(
            "| {f} | {:.0}k | {:.0}k | {:.2} ({}) |",
            n as f64 / wall / 1000.0,
            n as f64 / thread / 1000.0,
            if thread > 0.0 {
                json_thread / thread
            } else {
                0.0
            },
            per_round.join(", ")
        );
    }
    engine.shutdown();
    Ok(())
}

fn pull(a: &Args) -> Result<(), Error> {
    let dir = tempfile::tempdir()?;
    let broker = Broker::open(dir.path(), BrokerConfig::default())?;
    let local = broker.local();
    local.create_topic("keys", 1, BTreeMap::new())?;
    eprintln!("preloading {} distinct keys", a.pull_keys);
    produce(
        &broker,
        "keys",
        (0..a.pull_keys).map(|i| {
            (
                format!("key-{i:07}"),
                format!("{{\"V\":{i}}}").into_bytes(),
                T0 + i as i64,
            )
        }),
    )?;
    let engine = Engine::start(Arc::new(LocalCluster::new(local)), EngineConfig::default())?;
    sql(&engine, "CREATE STREAM keys (id STRING KEY, v BIGINT) WITH (KAFKA_TOPIC='keys', VALUE_FORMAT='JSON');")?;
    let t = Instant::now();
    sql(
        &engine,
        "CREATE TABLE latest AS SELECT id, LATEST_BY_OFFSET(v) AS v FROM keys GROUP BY id;",
    )?;
    if !engine.wait_idle(Duration::from_secs(900)) {
        return Err("the table did not finish building".into());
    }
    eprintln!(
        "table of {} keys built in {:.1}s",
        a.pull_keys,
        t.elapsed().as_secs_f64()
    );
    let mut lat = Vec::with_capacity(a.pulls);
    let mut x: u64 = 88172645463325252;
    for _ in 0..a.pulls {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let k = x % a.pull_keys as u64;
        let q = format!("SELECT * FROM latest WHERE id = 'key-{k:07}';");
        let t = Instant::now();
        let s = engine.query(&q, &BTreeMap::new())?;
        let mut rows = 0;
        while let Ok(ev) = s.rows.recv() {
            if let QueryEvent::Row(_) = ev {
                rows += 1;
            }
        }
        lat.push(t.elapsed());
        if rows != 1 {
            return Err(format!("{q} returned {rows} rows").into());
        }
    }
    lat.sort();
    let pct = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)];
    println!(
        "| pull query by key, table of {} keys | {} queries | p50 {:?} | p99 {:?} | max {:?} |",
        a.pull_keys,
        a.pulls,
        pct(0.5),
        pct(0.99),
        lat[lat.len() - 1]
    );
    engine.shutdown();
    Ok(())
}

fn push(a: &Args) -> Result<(), Error> {
    for &p in &a.push {
        let dir = tempfile::tempdir()?;
        let broker = Broker::open(dir.path(), BrokerConfig::default())?;
        let engine = Engine::start(
            Arc::new(LocalCluster::new(broker.local())),
            EngineConfig::default(),
        )?;
        sql(&engine, "CREATE STREAM ticks (id STRING KEY, v INT) WITH (KAFKA_TOPIC='ticks', VALUE_FORMAT='JSON', PARTITIONS=1);")?;
        let t = Instant::now();
        let queries = (0..p)
            .map(|i| {
                engine.query(
                    &format!("SELECT id, v FROM ticks WHERE v >= {} EMIT CHANGES;", i % 2),
                    &BTreeMap::new(),
                )
            })
            .collect::<Result<Vec<_>, _>>()?;
        let opened = t.elapsed();
        std::thread::sleep(Duration::from_millis(300));
        let rows = 100;
        let t = Instant::now();
        for r in 0..rows {
            sql(
                &engine,
                &format!("INSERT INTO ticks (id, v) VALUES ('t{r}', {});", 1 + r % 10),
            )?;
        }
        let mut delivered = 0usize;
        for q in &queries {
            let mut got = 0;
            let deadline = Instant::now() + Duration::from_secs(60);
            while got < rows && Instant::now() < deadline {
                if let Ok(QueryEvent::Row(_)) = q.rows.recv_timeout(Duration::from_millis(500)) {
                    got += 1;
                }
            }
            delivered += got;
        }
        let took = t.elapsed();
        println!(
            "| {p} concurrent push queries | opened in {:?} | {}/{} rows delivered | all delivered {:?} after the first insert | {:.0} rows/s | taps: {} |",
            opened,
            delivered,
            p * rows,
            took,
            delivered as f64 / took.as_secs_f64(),
            engine.tap_count()
        );
        drop(queries);
        engine.shutdown();
    }
    Ok(())
}

fn main() -> Result<(), Error> {
    let a = args();
    let only = a.only.clone();
    if only.as_deref().is_none_or(|o| o == "throughput") {
        throughput(&a)?;
    }
    if only.as_deref().is_none_or(|o| o == "pull") {
        pull(&a)?;
    }
    if only.as_deref().is_none_or(|o| o == "push") {
        push(&a)?;
    }
    if only.as_deref().is_some_and(|o| o == "formats") {
        formats(&a)?;
    }
    Ok(())
}
