//! A broker in a temp dir, driven in-process, with helpers to produce
//! inputs, run a topology until it is idle, and read outputs.
#![allow(dead_code, unused_macros)]

/// Runs each case once per backend: in-process and over the Kafka protocol.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        $(mod $name {
            #[test]
            fn local() {
                super::$name(super::Env::with(super::Via::Local))
            }
            #[test]
            fn kafka() {
                super::$name(super::Env::with(super::Via::Kafka))
            }
        })*
    };
}

use std::sync::Arc;
use std::time::Duration;

use runnel_broker::local::Local;
use runnel_broker::Broker;
use runnel_embed::LocalBackend;
use runnel_log::batch::build::{build_batch_with, TestRecord};
use runnel_log::batch::BatchIter;
use runnel_log::codec;
use runnel_streams::{
    Backend, Guarantee, KafkaBackend, KafkaBackendConfig, Streams, StreamsConfig, StreamsError,
    StreamsMetrics, Topology,
};

/// (key, value, timestamp) as stored.
pub type RawRec = (Option<Vec<u8>>, Option<Vec<u8>>, i64);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Out {
    pub key: Option<String>,
    pub value: Option<String>,
    pub ts: i64,
}

impl Out {
    pub fn new(key: Option<String>, value: Option<String>, ts: i64) -> Self {
        Out { key, value, ts }
    }
}

/// Which backend the engine runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// In-process calls into the broker.
    Local,
    /// librdkafka over TCP to the same broker.
    Kafka,
}

pub struct Env {
    pub via: Via,
    pub broker: Arc<Broker>,
    pub local: Local,
    bootstrap: String,
    /// Storage for state stores of instances started from now on
    /// (in memory when unset).
    stores: std::cell::RefCell<Option<Arc<dyn runnel_streams::StoreSupplier>>>,
    /// Where instances started from now on begin without committed offsets.
    offset_reset: std::cell::Cell<runnel_streams::OffsetReset>,
    /// Record cache size of instances started from now on: 0 (every
    /// update forwarded, what these tests spell out), unless a test asks
    /// for the cache.
    cache_max_bytes: std::cell::Cell<usize>,
    /// Serves the Kafka protocol for `Via::Kafka`; stops when dropped.
    _server: runnel_testkit::TestBroker,
}

impl Env {
    /// A broker driven in-process only.
    pub fn new() -> Env {
        Env::with(Via::Local)
    }

    pub fn with(via: Via) -> Env {
        let server = runnel_testkit::TestBroker::start();
        Env {
            via,
            broker: server.broker().clone(),
            local: server.local(),
            bootstrap: server.bootstrap(),
            stores: std::cell::RefCell::new(None),
            offset_reset: std::cell::Cell::new(runnel_streams::OffsetReset::Earliest),
            cache_max_bytes: std::cell::Cell::new(0),
            _server: server,
        }
    }

    pub fn topic(&self, name: &str, partitions: i32) {
        self.local
            .create_topic(name, partitions, Default::default())
            .unwrap();
    }

    pub fn topics(&self) -> Vec<String> {
        self.broker
            .log()
            .topics()
            .iter()
            .map(|t| t.name().to_string())
            .collect()
    }

    pub fn partitions(&self, topic: &str) -> i32 {
        self.local.partition_count(topic).unwrap_or(0)
    }

    pub fn produce_raw(&self, topic: &str, partition: i32, recs: &[RawRec]) {
        for (k, v, ts) in recs {
            let r = TestRecord {
                timestamp_delta: 0,
                key: k.clone(),
                value: v.clone(),
                headers: Vec::new(),
            };
            self.local
                .append(topic, partition, build_batch_with(*ts, &[r], -1, -1, -1, 0))
                .unwrap();
        }
    }

    /// Records into partition 0.
    pub fn produce_str(&self, topic: &str, recs: &[(&str, &str, i64)]) {
        self.produce_keyed(topic, 0, recs)
    }

    pub fn produce_keyed(&self, topic: &str, partition: i32, recs: &[(&str, &str, i64)]) {
        let raw: Vec<_> = recs
            .iter()
            .map(|(k, v, ts)| {
                (
                    Some(k.as_bytes().to_vec()),
                    Some(v.as_bytes().to_vec()),
                    *ts,
                )
            })
            .collect();
        self.produce_raw(topic, partition, &raw)
    }

    /// Records with optional values (None = tombstone) into partition 0.
    pub fn produce_opt(&self, topic: &str, recs: &[(&str, Option<&str>, i64)]) {
        let raw: Vec<_> = recs
            .iter()
            .map(|(k, v, ts)| {
                (
                    Some(k.as_bytes().to_vec()),
                    v.map(|v| v.as_bytes().to_vec()),
                    *ts,
                )
            })
            .collect();
        self.produce_raw(topic, 0, &raw)
    }

    /// Every committed record of every partition (partition order, then
    /// offset order).
    pub fn read_raw(&self, topic: &str) -> Vec<RawRec> {
        self.read_with(topic, true)
    }

    fn read_with(&self, topic: &str, committed: bool) -> Vec<RawRec> {
        let mut out = Vec::new();
        for p in 0..self.partitions(topic) {
            let mut pos = 0;
            loop {
                let r = self.local.read(topic, p, pos, 1 << 20, committed).unwrap();
                if r.bytes.is_empty() {
                    break;
                }
                for h in BatchIter::unchecked_crc(&r.bytes).flatten() {
                    pos = h.next_offset();
                    let aborted = r.aborted.iter().any(|(pid, first, last)| {
                        *pid == h.producer_id()
                            && *first <= h.base_offset()
                            && h.base_offset() <= *last
                    });
                    if h.is_control() || (committed && aborted) {
                        continue;
                    }
                    for rec in codec::decode_records(&h, 1 << 26).unwrap() {
                        out.push((rec.key, rec.value, rec.timestamp));
                    }
                }
            }
        }
        out
    }

    /// (partition, key) of every committed record of `topic`.
    pub fn keys_by_partition(&self, topic: &str) -> Vec<(i32, Option<Vec<u8>>)> {
        let mut out = Vec::new();
        for p in 0..self.partitions(topic) {
            let mut pos = 0;
            loop {
                let r = self.local.read(topic, p, pos, 1 << 20, true).unwrap();
                if r.bytes.is_empty() {
                    break;
                }
                for h in BatchIter::unchecked_crc(&r.bytes).flatten() {
                    pos = h.next_offset();
                    if h.is_control() {
                        continue;
                    }
                    for rec in codec::decode_records(&h, 1 << 26).unwrap() {
                        out.push((p, rec.key));
                    }
                }
            }
        }
        out
    }

    pub fn read_uncommitted_count(&self, topic: &str) -> usize {
        self.read_with(topic, false).len()
    }

    pub fn read_str(&self, topic: &str) -> Vec<Out> {
        self.read_raw(topic)
            .into_iter()
            .map(|(k, v, ts)| Out {
                key: k.map(|k| String::from_utf8(k).unwrap()),
                value: v.map(|v| String::from_utf8(v).unwrap()),
                ts,
            })
            .collect()
    }

    pub fn read_i64(&self, topic: &str) -> Vec<(Option<String>, Option<i64>, i64)> {
        self.read_raw(topic)
            .into_iter()
            .map(|(k, v, ts)| {
                (
                    k.map(|k| String::from_utf8(k).unwrap()),
                    v.map(|v| i64::from_be_bytes(v.try_into().unwrap())),
                    ts,
                )
            })
            .collect()
    }

    /// (key, window start, window end, count, timestamp).
    pub fn read_windowed(&self, topic: &str, size: i64) -> Vec<(String, i64, i64, i64, i64)> {
        self.read_raw(topic)
            .into_iter()
            .map(|(k, v, ts)| {
                let k = k.unwrap();
                let (key, start) = k.split_at(k.len() - 8);
                let start = i64::from_be_bytes(start.try_into().unwrap());
                let count = i64::from_be_bytes(v.unwrap().try_into().unwrap());
                (
                    String::from_utf8(key.to_vec()).unwrap(),
                    start,
                    start + size,
                    count,
                    ts,
                )
            })
            .collect()
    }

    /// Instances started from now on keep their stores in `s`.
    pub fn use_offset_reset(&self, r: runnel_streams::OffsetReset) {
        self.offset_reset.set(r);
    }

    /// Instances started from now on hold table updates back in a record
    /// cache of this size until they commit.
    pub fn use_cache(&self, bytes: usize) {
        self.cache_max_bytes.set(bytes);
    }

    pub fn use_stores(&self, s: Arc<dyn runnel_streams::StoreSupplier>) {
        *self.stores.borrow_mut() = Some(s);
    }

    pub fn try_start(&self, topology: Topology, app: &str) -> Result<Streams, StreamsError> {
        self.start(topology, app, Guarantee::AtLeastOnce)
    }

    pub fn start(
        &self,
        topology: Topology,
        app: &str,
        g: Guarantee,
    ) -> Result<Streams, StreamsError> {
        let backend = self.backend(app, g)?;
        self.start_on(topology, app, g, backend)
    }

    /// A backend of this environment's kind for `app`.
    pub fn backend(&self, app: &str, g: Guarantee) -> Result<Box<dyn Backend>, StreamsError> {
        Ok(match self.via {
            Via::Local => Box::new(LocalBackend::new(self.local.clone(), app, g)?),
            Via::Kafka => Box::new(KafkaBackend::new(
                KafkaBackendConfig::new(self.bootstrap.clone(), app)
                    .with_guarantee(g)
                    .with_property("fetch.wait.max.ms", "10")
                    .with_property("session.timeout.ms", "6000")
                    .with_property("heartbeat.interval.ms", "500"),
            )?),
        })
    }

    /// Starts `topology` on a given backend (a wrapper of [`Env::backend`]'s).
    pub fn start_on(
        &self,
        topology: Topology,
        app: &str,
        g: Guarantee,
        backend: Box<dyn Backend>,
    ) -> Result<Streams, StreamsError> {
        let mut cfg = StreamsConfig::new(app);
        if g == Guarantee::ExactlyOnce {
            cfg = cfg.exactly_once();
        }
        cfg.commit_interval = Duration::from_secs(3600);
        cfg.poll_timeout = Duration::from_millis(5);
        cfg.offset_reset = self.offset_reset.get();
        cfg.cache_max_bytes = self.cache_max_bytes.get();
        if let Some(s) = self.stores.borrow().clone() {
            cfg = cfg.stores(s);
        }
        Streams::new(topology, cfg, backend)
    }

    /// Polls until the instance has been caught up for several rounds in
    /// a row (repartitioned records come back through the log).
    pub fn drain(&self, app: &mut Streams) {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        let mut idle = 0;
        while idle < 4 {
            assert!(
                std::time::Instant::now() < deadline,
                "input not consumed within 60 s"
            );
            let n = app.poll_once().unwrap();
            if n == 0 && app.is_idle() {
                idle += 1;
            } else {
                idle = 0;
            }
        }
    }

    /// Runs until no input is left, commits, and closes.
    pub fn run(&self, topology: Topology, app: &str, g: Guarantee) -> StreamsMetrics {
        let mut a = self.start(topology, app, g).unwrap();
        self.drain(&mut a);
        a.commit().unwrap();
        let m = a.metrics();
        a.close().unwrap();
        m
    }

    /// Runs until no input is left and drops the instance uncommitted.
    pub fn run_without_commit(
        &self,
        topology: Topology,
        app: &str,
        g: Guarantee,
    ) -> StreamsMetrics {
        let mut a = self.start(topology, app, g).unwrap();
        self.drain(&mut a);
        let m = a.metrics();
        drop(a);
        m
    }
}
