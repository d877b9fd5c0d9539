//! Engine benchmark: events per second, and per CPU-second ("per core"),
//! of three topologies run by `runnel-streams` on a Runnel broker, in-process
//! ([`LocalBackend`]) and over the Kafka protocol ([`KafkaBackend`] →
//! librdkafka → the same broker served on loopback TCP).
//!
//! ```text
//! cargo run --release -p runnel-embed --example engine_bench -- \
//!     [--events N] [--backend local|kafka|both] \
//!     [--query all|filter|windowed-count|stream-table-join|poll] \
//!     [--keys K] [--partitions P] [--days D] [--kafka-prop KEY=VALUE]... \
//!     [--value-format json|avro|protobuf]
//! ```
//!
//! `--value-format avro|protobuf` encodes the events (and the filter's
//! outputs) with `runnel-serdes` through a schema registry (Runnel's, in
//! process) instead of JSON; only `filter` and `poll` run then.
//!
//! Setup, before any clock starts: a broker in a temp dir; the input topic
//! `events` (`P` partitions, default 1) is preloaded with `N` events
//! (default 1M) in 500-record batches: key `k00000`..`k{K-1}` (default 10k
//! keys, pseudo-random), a ~30-byte JSON value `{"user":..,"amount":..}`,
//! timestamps increasing over `D` days (default 7). For the join, the table
//! topic `profiles` gets one row per key, timestamped before every event.
//!
//! Queries (at-least-once, 30 s commit interval as in Kafka Streams; the
//! run always ends with a commit):
//! * `filter`: JSON values, `filter(amount >= 50).map_values(..)` to a
//!   topic (about half the events pass).
//! * `windowed-count`: `group_by_key().windowed_by(TimeWindows::of(1 day))
//!   .count()`, every update written to a topic (windowed key, i64 count).
//! * `stream-table-join`: string values joined with the `profiles` table
//!   (K rows, all matching) to a topic. Table rows count as processed.
//! * `poll`: the backend alone (subscribe + poll every input record, no
//!   topology): the floor of each backend.
//!
//! Each run is timed from the moment its tasks exist (group joined) until
//! every input record is processed, the instance is idle and the final
//! commit returned (outputs written, and acknowledged over Kafka). CPU time
//! is this process's (`/proc/self/stat`), which holds the broker as well as
//! the engine for both backends; the engine thread's own share is printed
//! too. The baseline, measured in the same run, is a plain read of the
//! input through `Local::read` + record decoding (repeated for at least a
//! second): the cost floor of the in-process path. Outputs are counted and
//! checked after each run.
//!
//! The broker runs with a zero initial rebalance delay; the Kafka backend
//! uses librdkafka's defaults plus `session.timeout.ms=6000` and
//! `heartbeat.interval.ms=500`, and whatever `--kafka-prop` adds (e.g.
//! `fetch.queue.backoff.ms=10`: librdkafka's default of 1 s stalls a
//! consumer that drains its 100k-message prefetch queue faster than that).
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may stop at the first surprise

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use runnel_broker::local::Local;
use runnel_broker::{Broker, BrokerConfig};
use runnel_embed::LocalBackend;
use runnel_log::batch::build::{build_batch_with, TestRecord};
use runnel_log::batch::BatchIter;
use runnel_log::codec;
use runnel_streams::serdes::{
    partition_for, I64Serde, JsonSerde, OptionSerde, SerdeRef, StringSerde, WindowedSerde,
};
use runnel_streams::{
    Backend, Guarantee, KafkaBackend, KafkaBackendConfig, PollEvent, Streams, StreamsBuilder,
    StreamsConfig, TimeWindows, Topology,
};
use serde::{Deserialize, Serialize};

/// The allocator `runnel serve` uses (see ARCHITECTURE.md).
#[global_allocator]
static GLOBAL: runnel_alloc::MiMalloc = runnel_alloc::MiMalloc;

type Error = Box<dyn std::error::Error>;

const DAY_MS: i64 = 86_400_000;
/// A day boundary (2023-11-15 00:00 UTC).
const T0: i64 = 1_700_006_400_000;
const INPUT: &str = "events";
const TABLE: &str = "profiles";
const BATCH: usize = 500;
/// Linux's USER_HZ: the unit of utime/stime in /proc/*/stat.
const TICKS_PER_SEC: f64 = 100.0;
/// A run that makes no progress for this long fails.
const STALL: Duration = Duration::from_secs(120);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Via {
    Local,
    Kafka,
}

impl Via {
    fn name(self) -> &'static str {
        match self {
            Via::Local => "local",
            Via::Kafka => "kafka",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Query {
    Poll,
    Filter,
    WindowedCount,
    Join,
}

impl Query {
    fn name(self) -> &'static str {
        match self {
            Query::Poll => "poll",
            Query::Filter => "filter",
            Query::WindowedCount => "windowed-count",
            Query::Join => "stream-table-join",
        }
    }
    fn label(self) -> &'static str {
        match self {
            Query::Poll => "backend poll only (floor)",
            Query::Filter => "filter + map_values (JSON)",
            Query::WindowedCount => "windowed count (1 day)",
            Query::Join => "stream-table join",
        }
    }
}

struct Opts {
    events: u64,
    keys: u64,
    partitions: i32,
    days: i64,
    backends: Vec<Via>,
    queries: Vec<Query>,
    /// Extra librdkafka properties for the Kafka backend.
    kafka_props: Vec<(String, String)>,
    format: ValueFormat,
}

fn usage() -> ! {
    eprintln!(
        "usage: engine_bench [--events N] [--backend local|kafka|both] \
         [--query all|filter|windowed-count|stream-table-join|poll] \
         [--keys K] [--partitions P] [--days D] [--kafka-prop KEY=VALUE]... \
         [--value-format json|avro|protobuf]"
    );
    std::process::exit(2)
}

fn parse_args() -> Opts {
    let mut o = Opts {
        events: 1_000_000,
        keys: 10_000,
        partitions: 1,
        days: 7,
        backends: vec![Via::Local, Via::Kafka],
        queries: vec![Query::Filter, Query::WindowedCount, Query::Join],
        kafka_props: Vec::new(),
        format: ValueFormat::Json,
    };
    let mut all = true;
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < args.len() {
        let flag = args[i].as_str();
        let Some(val) = args.get(i + 1) else { usage() };
        let num = || -> u64 { val.replace('_', "").parse().unwrap_or_else(|_| usage()) };
        match flag {
            "--events" => o.events = num().max(1),
            "--keys" => o.keys = num().max(1),
            "--partitions" => {
                o.partitions = i32::try_from(num().max(1)).unwrap_or_else(|_| usage())
            }
            "--days" => o.days = i64::try_from(num().max(1)).unwrap_or_else(|_| usage()),
            "--kafka-prop" => {
                let Some((k, v)) = val.split_once('=') else {
                    usage()
                };
                o.kafka_props.push((k.to_string(), v.to_string()));
            }
            "--value-format" => {
                o.format = match val.as_str() {
                    "json" => ValueFormat::Json,
                    "avro" => ValueFormat::Avro,
                    "protobuf" => ValueFormat::Protobuf,
                    _ => usage(),
                }
            }
            "--backend" => {
                o.backends = match val.as_str() {
                    "local" => vec![Via::Local],
                    "kafka" => vec![Via::Kafka],
                    "both" => vec![Via::Local, Via::Kafka],
                    _ => usage(),
                }
            }
            "--query" => {
                all = val == "all";
                o.queries = match val.as_str() {
                    "all" => vec![Query::Filter, Query::WindowedCount, Query::Join],
                    "filter" => vec![Query::Filter],
                    "windowed-count" => vec![Query::WindowedCount],
                    "stream-table-join" => vec![Query::Join],
                    "poll" => vec![Query::Poll],
                    _ => usage(),
                }
            }
            _ => usage(),
        }
        i += 2;
    }
    if o.format != ValueFormat::Json {
        // The other queries read values as JSON text.
        o.queries
            .retain(|q| matches!(q, Query::Filter | Query::Poll));
        if o.queries.is_empty() {
            usage()
        }
    }
    if all {
        o.queries.insert(0, Query::Poll);
    }
    o
}

// ---------------------------------------------------------------- CPU time

/// utime + stime of a /proc stat file, in seconds.
fn stat_cpu(path: &str) -> f64 {
    let Ok(s) = std::fs::read_to_string(path) else {
        return 0.0;
    };
    // Fields after the parenthesised command name start at field 3 (state);
    // utime and stime are fields 14 and 15.
    let Some(rest) = s.rfind(')').map(|i| &s[i + 1..]) else {
        return 0.0;
    };
    let f: Vec<&str> = rest.split_whitespace().collect();
    let tick = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    (tick(11) + tick(12)) as f64 / TICKS_PER_SEC
}

#[derive(Clone, Copy)]
struct Cpu {
    process: f64,
    /// The main thread, which runs the engine (and, in-process, the broker
    /// calls it makes).
    main: f64,
}

fn cpu_now() -> Cpu {
    Cpu {
        process: stat_cpu("/proc/self/stat"),
        main: stat_cpu(&format!("/proc/self/task/{}/stat", std::process::id())),
    }
}

// ------------------------------------------------------------- the broker

struct Env {
    local: Local,
    bootstrap: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<std::thread::JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

impl Drop for Env {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(h) = self.server.take() {
            let _ = h.join();
        }
    }
}

impl Env {
    /// A broker in a temp dir, also served on loopback TCP when `tcp`.
    fn open(tcp: bool) -> Result<Env, Error> {
        let dir = tempfile::tempdir()?;
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        let mut config = BrokerConfig {
            advertised_host: "127.0.0.1".into(),
            advertised_port: i32::from(port),
            ..BrokerConfig::default()
        };
        config.group.initial_rebalance_delay = Duration::ZERO;
        let broker: Arc<Broker> = Broker::open(dir.path(), config)?;
        let local = broker.local();
        let (stop, server) = if tcp {
            let (tx, rx) = tokio::sync::oneshot::channel::<()>();
            listener.set_nonblocking(true)?;
            let h = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .expect("tokio runtime");
                rt.block_on(async move {
                    let l = tokio::net::TcpListener::from_std(listener).expect("listener");
                    let shutdown = async {
                        let _ = rx.await;
                    };
                    if let Err(e) = runnel_broker::serve(broker, l, shutdown).await {
                        eprintln!("broker server failed: {e}");
                    }
                });
            });
            (Some(tx), Some(h))
        } else {
            (None, None)
        };
        Ok(Env {
            local,
            bootstrap: format!("127.0.0.1:{port}"),
            stop,
            server,
            _dir: dir,
        })
    }

    /// Every committed record of `topic`, decoded, passed to `f`.
    fn scan(
        &self,
        topic: &str,
        mut f: impl FnMut(Option<&[u8]>, Option<&[u8]>),
    ) -> Result<u64, Error> {
        let mut n = 0;
        let parts = self.local.partition_count(topic).unwrap_or(0);
        for p in 0..parts {
            let mut pos = 0;
            loop {
                let r = self.local.read(topic, p, pos, 1 << 20, true)?;
                if r.bytes.is_empty() || pos >= r.last_stable_offset {
                    break;
                }
                for h in BatchIter::unchecked_crc(&r.bytes) {
                    let h = h?;
                    pos = h.next_offset();
                    if h.is_control() {
                        continue;
                    }
                    for rec in codec::decode_records(&h, 64 << 20)? {
                        f(rec.key.as_deref(), rec.value.as_deref());
                        n += 1;
                    }
                }
            }
        }
        Ok(n)
    }
}

// ------------------------------------------------------------------ input

/// An event: JSON (serde), Avro (serde) or Protobuf (prost) alike.
#[derive(Clone, PartialEq, Serialize, Deserialize, prost::Message)]
struct Event {
    #[prost(string, tag = "1")]
    user: String,
    #[prost(uint32, tag = "2")]
    amount: u32,
}

#[derive(Clone, PartialEq, Serialize, Deserialize, prost::Message)]
struct Enriched {
    #[prost(string, tag = "1")]
    user: String,
    #[prost(uint64, tag = "2")]
    cents: u64,
    #[prost(bool, tag = "3")]
    big: bool,
}

const EVENT_AVSC: &str = r#"{"type":"record","name":"Event","namespace":"bench","fields":[{"name":"user","type":"string"},{"name":"amount","type":"long"}]}"#;
const ENRICHED_AVSC: &str = r#"{"type":"record","name":"Enriched","namespace":"bench","fields":[{"name":"user","type":"string"},{"name":"cents","type":"long"},{"name":"big","type":"boolean"}]}"#;
const BENCH_PROTO: &str = "syntax = \"proto3\";\npackage bench;\nmessage Event { string user = 1; uint32 amount = 2; }\nmessage Enriched { string user = 1; uint64 cents = 2; bool big = 3; }\n";

/// How event values are encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ValueFormat {
    Json,
    Avro,
    Protobuf,
}

impl ValueFormat {
    fn name(self) -> &'static str {
        match self {
            ValueFormat::Json => "JSON",
            ValueFormat::Avro => "Avro",
            ValueFormat::Protobuf => "Protobuf",
        }
    }
}

/// The serdes of the events and the filter's outputs, and the registry
/// they use (kept alive for the run).
struct ValueSerdes {
    event: SerdeRef<Event>,
    enriched: SerdeRef<Enriched>,
    _registry: Option<runnel_testkit::TestRegistry>,
}

fn value_serdes(f: ValueFormat) -> Result<ValueSerdes, Error> {
    use runnel_serdes::{AvroSerde, ProtobufSerde, Registration};
    if f == ValueFormat::Json {
        return Ok(ValueSerdes {
            event: Arc::new(JsonSerde::<Event>::new()),
            enriched: Arc::new(JsonSerde::<Enriched>::new()),
            _registry: None,
        });
    }
    let registry = runnel_testkit::TestRegistry::start();
    let client = runnel_registry_client::RegistryClient::new(registry.url());
    let (event, enriched): (SerdeRef<Event>, SerdeRef<Enriched>) = match f {
        ValueFormat::Avro => (
            Arc::new(AvroSerde::new(
                client.clone(),
                "events-value",
                EVENT_AVSC,
                Registration::Auto,
            )?),
            Arc::new(AvroSerde::new(
                client,
                "out-value",
                ENRICHED_AVSC,
                Registration::Auto,
            )?),
        ),
        _ => (
            Arc::new(ProtobufSerde::new(
                client.clone(),
                "events-value",
                BENCH_PROTO,
                Some("bench.Event"),
                Registration::Auto,
            )?),
            Arc::new(ProtobufSerde::new(
                client,
                "out-value",
                BENCH_PROTO,
                Some("bench.Enriched"),
                Registration::Auto,
            )?),
        ),
    };
    Ok(ValueSerdes {
        event,
        enriched,
        _registry: Some(registry),
    })
}

fn key_of(i: u64) -> String {
    format!("k{i:05}")
}

/// A deterministic pseudo-random sequence (xorshift64*).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// Appends records to one topic in `BATCH`-record batches per partition.
struct Loader<'a> {
    local: &'a Local,
    topic: &'a str,
    partitions: i32,
    pending: BTreeMap<i32, (i64, Vec<TestRecord>)>,
}

impl Loader<'_> {
    fn push(&mut self, key: String, value: Vec<u8>, ts: i64) -> Result<(), Error> {
        let p = partition_for(key.as_bytes(), self.partitions);
        let (base, recs) = self.pending.entry(p).or_insert((ts, Vec::new()));
        if recs.is_empty() {
            *base = ts;
        }
        recs.push(TestRecord {
            timestamp_delta: ts - *base,
            key: Some(key.into_bytes()),
            value: Some(value),
            headers: Vec::new(),
        });
        if recs.len() >= BATCH {
            self.flush_one(p)?;
        }
        Ok(())
    }
    fn flush_one(&mut self, p: i32) -> Result<(), Error> {
        if let Some((base, recs)) = self.pending.get_mut(&p) {
            if !recs.is_empty() {
                let batch = build_batch_with(*base, recs, -1, -1, -1, 0);
                self.local.append(self.topic, p, batch)?;
                recs.clear();
            }
        }
        Ok(())
    }
    fn finish(mut self) -> Result<(), Error> {
        let ps: Vec<i32> = self.pending.keys().copied().collect();
        for p in ps {
            self.flush_one(p)?;
        }
        Ok(())
    }
}

/// Preloads the input (and the table when needed); returns how many
/// events pass the filter.
fn preload(env: &Env, o: &Opts, table: bool, serdes: &ValueSerdes) -> Result<u64, Error> {
    env.local
        .create_topic(INPUT, o.partitions, Default::default())?;
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut loader = Loader {
        local: &env.local,
        topic: INPUT,
        partitions: o.partitions,
        pending: BTreeMap::new(),
    };
    let span = o.days * DAY_MS;
    let mut passing = 0;
    let started = Instant::now();
    for i in 0..o.events {
        let key = key_of(rng.next() % o.keys);
        let amount = (rng.next() % 100) as u32;
        if amount >= 50 {
            passing += 1;
        }
        let ev = Event {
            user: format!("u{:07}", rng.next() % 1_000_000),
            amount,
        };
        let ts = T0 + (i as i128 * span as i128 / o.events as i128) as i64;
        let value = serdes
            .event
            .serialize(&ev)?
            .ok_or("an event encoded as null")?;
        loader.push(key, value, ts)?;
        if i % 250_000 == 249_999 {
            eprintln!("preload: {} of {} events", i + 1, o.events);
        }
    }
    loader.finish()?;
    eprintln!(
        "preload: {} events in {:.1} s",
        o.events,
        started.elapsed().as_secs_f64()
    );
    if table {
        env.local
            .create_topic(TABLE, o.partitions, Default::default())?;
        let mut loader = Loader {
            local: &env.local,
            topic: TABLE,
            partitions: o.partitions,
            pending: BTreeMap::new(),
        };
        for k in 0..o.keys {
            let v = format!(
                "{{\"region\":\"eu-{}\",\"tier\":\"{}\"}}",
                k % 7,
                ["free", "pro", "team"][(k % 3) as usize]
            );
            loader.push(key_of(k), v.into_bytes(), T0 - DAY_MS)?;
        }
        loader.finish()?;
    }
    Ok(passing)
}

// --------------------------------------------------------------- results

struct Row {
    query: String,
    backend: &'static str,
    records: u64,
    wall: f64,
    cpu: Cpu,
    startup: f64,
    outputs: Option<u64>,
    commits: Option<u64>,
}

impl Row {
    fn rate(&self) -> f64 {
        self.records as f64 / self.wall.max(1e-9)
    }
    fn per_cpu(&self) -> f64 {
        self.records as f64 / self.cpu.process.max(0.01)
    }
    fn json(&self, base: &Row) -> String {
        format!(
            "{{\"query\":\"{}\",\"backend\":\"{}\",\"records\":{},\"wall_s\":{:.3},\
             \"cpu_s\":{:.2},\"engine_thread_cpu_s\":{:.2},\"startup_s\":{:.3},\
             \"events_per_s\":{:.0},\"events_per_cpu_s\":{:.0},\
             \"ratio_wall\":{:.4},\"ratio_cpu\":{:.4},\"outputs\":{},\"commits\":{}}}",
            self.query,
            self.backend,
            self.records,
            self.wall,
            self.cpu.process,
            self.cpu.main,
            self.startup,
            self.rate(),
            self.per_cpu(),
            self.rate() / base.rate(),
            self.per_cpu() / base.per_cpu(),
            self.outputs.map_or("null".to_string(), |n| n.to_string()),
            self.commits.map_or("null".to_string(), |n| n.to_string()),
        )
    }
}

fn k(x: f64) -> String {
    if x >= 10_000.0 {
        let k = (x / 1000.0).round() as u64;
        let (a, b) = (k / 1000, k % 1000);
        if a > 0 {
            format!("{a},{b:03}k")
        } else {
            format!("{b}k")
        }
    } else {
        format!("{x:.0}")
    }
}

/// The baseline: every input record read with `Local::read` and decoded,
/// repeated until at least a second was spent.
fn baseline(env: &Env, events: u64) -> Result<Row, Error> {
    let (w0, c0) = (Instant::now(), cpu_now());
    let mut records = 0;
    let mut bytes = 0usize;
    loop {
        let n = env.scan(INPUT, |k, v| {
            bytes += k.map_or(0, <[u8]>::len) + v.map_or(0, <[u8]>::len);
        })?;
        if n != events {
            return Err(format!("baseline read {n} records, expected {events}").into());
        }
        records += n;
        if w0.elapsed() >= Duration::from_secs(1) {
            break;
        }
    }
    std::hint::black_box(bytes);
    let c1 = cpu_now();
    Ok(Row {
        query: "baseline: Local::read + decode".into(),
        backend: "-",
        records,
        wall: w0.elapsed().as_secs_f64(),
        cpu: Cpu {
            process: c1.process - c0.process,
            main: c1.main - c0.main,
        },
        startup: 0.0,
        outputs: None,
        commits: None,
    })
}

/// Every input value decoded with the events' serde (as the filter's
/// first step does), repeated until at least a second was spent: what the
/// value format alone costs.
fn value_decoding(
    env: &Env,
    events: u64,
    f: ValueFormat,
    serdes: &ValueSerdes,
) -> Result<Row, Error> {
    let (w0, c0) = (Instant::now(), cpu_now());
    let mut records = 0;
    let mut amounts = 0u64;
    let mut failed = None;
    loop {
        let n = env.scan(INPUT, |_, v| match serdes.event.deserialize(v) {
            Ok(e) => amounts += u64::from(e.amount),
            Err(e) => failed = Some(e.to_string()),
        })?;
        if let Some(e) = failed.take() {
            return Err(format!("a value did not decode: {e}").into());
        }
        if n != events {
            return Err(format!("decoding read {n} records, expected {events}").into());
        }
        records += n;
        if w0.elapsed() >= Duration::from_secs(1) {
            break;
        }
    }
    std::hint::black_box(amounts);
    let c1 = cpu_now();
    Ok(Row {
        query: format!("values decoded ({})", f.name()),
        backend: "-",
        records,
        wall: w0.elapsed().as_secs_f64(),
        cpu: Cpu {
            process: c1.process - c0.process,
            main: c1.main - c0.main,
        },
        startup: 0.0,
        outputs: None,
        commits: None,
    })
}

fn make_backend(
    env: &Env,
    via: Via,
    app: &str,
    props: &[(String, String)],
) -> Result<Box<dyn Backend>, Error> {
    Ok(match via {
        Via::Local => Box::new(LocalBackend::new(
            env.local.clone(),
            app,
            Guarantee::AtLeastOnce,
        )?),
        Via::Kafka => {
            let mut c = KafkaBackendConfig::new(env.bootstrap.clone(), app)
                .with_property("session.timeout.ms", "6000")
                .with_property("heartbeat.interval.ms", "500");
            for (k, v) in props {
                c = c.with_property(k.clone(), v.clone());
            }
            Box::new(KafkaBackend::new(c)?)
        }
    })
}

/// The backend alone: subscribe and poll every input record.
fn poll_floor(env: &Env, o: &Opts, via: Via) -> Result<Row, Error> {
    let events = o.events;
    let app = format!("bench-poll-{}", via.name());
    let mut backend = make_backend(env, via, &app, &o.kafka_props)?;
    let t = Instant::now();
    backend.subscribe(&[INPUT.to_string()])?;
    let mut started: Option<(Instant, Cpu, f64)> = None;
    let mut records = 0u64;
    let mut last = Instant::now();
    while records < events {
        for e in backend.poll(Duration::from_millis(100))? {
            match e {
                PollEvent::Assigned(_) => {
                    started.get_or_insert((Instant::now(), cpu_now(), t.elapsed().as_secs_f64()));
                }
                PollEvent::Records(r) => {
                    records += r.len() as u64;
                    last = Instant::now();
                }
                PollEvent::Revoked(_) => {}
            }
        }
        if last.elapsed() > STALL {
            return Err(format!("poll/{}: stalled at {records} records", via.name()).into());
        }
    }
    let (w0, c0, startup) = started.ok_or("records before assignment")?;
    let (wall, c1) = (w0.elapsed().as_secs_f64(), cpu_now());
    drop(backend);
    Ok(Row {
        query: Query::Poll.label().into(),
        backend: via.name(),
        records,
        wall,
        cpu: Cpu {
            process: c1.process - c0.process,
            main: c1.main - c0.main,
        },
        startup,
        outputs: None,
        commits: None,
    })
}

fn topology(q: Query, out: &str, serdes: &ValueSerdes) -> Result<Topology, Error> {
    let b = StreamsBuilder::new();
    match q {
        Query::Poll => return Err("no topology for poll".into()),
        Query::Filter => {
            b.stream(INPUT, StringSerde, serdes.event.clone())
                .filter(|_, e: &Event| e.amount >= 50)
                .map_values(|_, e: Event| Enriched {
                    cents: u64::from(e.amount) * 100,
                    big: e.amount >= 90,
                    user: e.user,
                })
                .to_with(out, StringSerde, serdes.enriched.clone());
        }
        Query::WindowedCount => {
            b.stream(INPUT, StringSerde, StringSerde)
                .group_by_key()
                .windowed_by(TimeWindows::of(Duration::from_millis(DAY_MS as u64)))
                .count("bench-counts")
                .to_stream()
                .to_with(
                    out,
                    WindowedSerde::time(StringSerde, DAY_MS),
                    OptionSerde(I64Serde),
                );
        }
        Query::Join => {
            // The table first: its topic is subscribed (and read) first, and
            // its rows are older than every event, so they are processed
            // before the events they join.
            let profiles = b.table(TABLE, StringSerde, StringSerde, "bench-profiles");
            b.stream(INPUT, StringSerde, StringSerde)
                .join(&profiles, |e: &String, p: &String| {
                    let mut s = String::with_capacity(e.len() + p.len() + 24);
                    s.push_str("{\"event\":");
                    s.push_str(e);
                    s.push_str(",\"profile\":");
                    s.push_str(p);
                    s.push('}');
                    s
                })
                .to_with(out, StringSerde, StringSerde);
        }
    }
    Ok(b.build()?)
}

fn run_query(
    env: &Env,
    o: &Opts,
    q: Query,
    via: Via,
    expected_out: u64,
    serdes: &ValueSerdes,
) -> Result<Row, Error> {
    if q == Query::Poll {
        return poll_floor(env, o, via);
    }
    let tag = format!("{}/{}", q.name(), via.name());
    let app = format!("bench-{}-{}", q.name(), via.name());
    let out = format!("out-{}-{}", q.name(), via.name());
    env.local
        .create_topic(&out, o.partitions, Default::default())?;
    let target = o.events + if q == Query::Join { o.keys } else { 0 };
    let backend = make_backend(env, via, &app, &o.kafka_props)?;
    // Kafka Streams' at-least-once default; the run ends with a commit.
    let config = StreamsConfig::new(app).commit_interval(Duration::from_secs(30));
    let t = Instant::now();
    let mut streams = Streams::new(topology(q, &out, serdes)?, config, backend)?;
    while streams.metrics().tasks == 0 {
        streams.poll_once()?;
        if t.elapsed() > STALL {
            return Err(format!("{tag}: no tasks assigned").into());
        }
    }
    let startup = t.elapsed().as_secs_f64();
    let p0 = streams.metrics().processed;
    let (w0, c0) = (Instant::now(), cpu_now());
    let (mut last_n, mut last_progress, mut last_print) = (p0, Instant::now(), Instant::now());
    loop {
        streams.poll_once()?;
        let n = streams.metrics().processed;
        if n >= target && streams.is_idle() {
            break;
        }
        if n != last_n {
            last_n = n;
            last_progress = Instant::now();
        } else if last_progress.elapsed() > STALL {
            return Err(format!("{tag}: stalled at {n} of {target} records").into());
        }
        if last_print.elapsed() >= Duration::from_secs(2) {
            last_print = Instant::now();
            let s = w0.elapsed().as_secs_f64();
            eprintln!(
                "{tag}: {n} of {target} records, {:.0}/s",
                (n - p0) as f64 / s
            );
        }
    }
    streams.commit()?;
    let (wall, c1) = (w0.elapsed().as_secs_f64(), cpu_now());
    let m = streams.metrics();
    streams.close()?;
    let outputs = env.scan(&out, |_, _| {})?;
    if outputs != expected_out || m.late_dropped != 0 || m.undecodable != 0 {
        return Err(format!(
            "{tag}: {outputs} outputs (expected {expected_out}), {} late, {} undecodable",
            m.late_dropped, m.undecodable
        )
        .into());
    }
    eprintln!("{tag}: done, {outputs} outputs checked");
    Ok(Row {
        query: q.label().into(),
        backend: via.name(),
        records: m.processed - p0,
        wall,
        cpu: Cpu {
            process: c1.process - c0.process,
            main: c1.main - c0.main,
        },
        startup,
        outputs: Some(outputs),
        commits: Some(m.commits),
    })
}

fn main() -> Result<(), Error> {
    let o = parse_args();
    let tcp = o.backends.contains(&Via::Kafka);
    let env = Env::open(tcp)?;
    let join = o.queries.contains(&Query::Join);
    let serdes = value_serdes(o.format)?;
    let passing = preload(&env, &o, join, &serdes)?;
    let base = baseline(&env, o.events)?;
    println!("{}", base.json(&base));
    let decoded = value_decoding(&env, o.events, o.format, &serdes)?;
    println!("{}", decoded.json(&base));
    let mut rows = Vec::new();
    for &via in &o.backends {
        for &q in &o.queries {
            let expected = match q {
                Query::Filter => passing,
                _ => o.events,
            };
            let mut row = run_query(&env, &o, q, via, expected, &serdes)?;
            if q == Query::Filter {
                row.query = format!("filter + map_values ({})", o.format.name());
            }
            println!("{}", row.json(&base));
            rows.push(row);
        }
    }
    println!();
    println!(
        "{} events, {} keys, {} partition(s), {} days; CPU = whole process \
         (engine + broker{})",
        o.events,
        o.keys,
        o.partitions,
        o.days,
        if tcp { " + librdkafka" } else { "" }
    );
    println!();
    println!(
        "| query | backend | events/s (wall) | events/CPU-s | engine thread CPU-s | \
         ÷ baseline (wall) | ÷ baseline (CPU) |"
    );
    println!("|---|---|---|---|---|---|---|");
    for r in std::iter::once(&base).chain(rows.iter()) {
        println!(
            "| {} | {} | {} | {} | {:.2} of {:.2} | {:.3} | {:.3} |",
            r.query,
            r.backend,
            k(r.rate()),
            k(r.per_cpu()),
            r.cpu.main,
            r.cpu.process,
            r.rate() / base.rate(),
            r.per_cpu() / base.per_cpu(),
        );
    }
    Ok(())
}
