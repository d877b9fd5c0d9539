//! `header.converter` on an in-process broker: what a source's typed
//! headers become in the topic, and what a sink gets back, under Kafka's
//! SimpleHeaderConverter (the default), JsonConverter and StringConverter.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use runnel_broker::{Broker, BrokerConfig};
use runnel_cluster::{Cluster, Guarantee, TopicPartition};
use runnel_connect::{Worker, WorkerConfig};
use runnel_connect_api::{
    Config, ConfigDef, ConnectError, ConnectorContext, ConnectorKind, ConnectorPlugin, Header,
    OffsetReader, Schema, SinkRecord, SinkTask, SourceOffset, SourcePartition, SourceRecord,
    SourceTask, Value,
};
use runnel_embed::LocalCluster;

fn cfg(pairs: &[(&str, &str)]) -> Config {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A source writing one record with four typed headers, then nothing.
struct HeaderSource;
struct HeaderSourceTask {
    topic: String,
    done: bool,
}

impl ConnectorPlugin for HeaderSource {
    fn class(&self) -> &str {
        "com.example.HeaderSource"
    }
    fn kind(&self) -> ConnectorKind {
        ConnectorKind::Source
    }
    fn version(&self) -> &str {
        "1"
    }
    fn config_def(&self) -> ConfigDef {
        ConfigDef::new()
    }
    fn task_configs(&self, config: &Config, _: usize) -> Result<Vec<Config>, ConnectError> {
        Ok(vec![config.clone()])
    }
    fn source_task(&self) -> Result<Box<dyn SourceTask>, ConnectError> {
        Ok(Box::new(HeaderSourceTask {
            topic: String::new(),
            done: false,
        }))
    }
}

impl SourceTask for HeaderSourceTask {
    fn start(
        &mut self,
        config: &Config,
        _: &ConnectorContext,
        _: &dyn OffsetReader,
    ) -> Result<(), ConnectError> {
        self.topic = config.get("topic").cloned().unwrap_or_default();
        Ok(())
    }
    fn poll(&mut self) -> Result<Vec<SourceRecord>, ConnectError> {
        if self.done {
            std::thread::sleep(Duration::from_millis(50));
            return Ok(Vec::new());
        }
        self.done = true;
        let mut r = SourceRecord::new(
            SourcePartition::new(),
            SourceOffset::new(),
            self.topic.clone(),
            None,
            Value::Null,
            Some(Schema::string()),
            Value::String("v".into()),
        );
        let h = |key: &str, schema: Schema, value: Value| Header {
            key: key.into(),
            schema: Some(schema),
            value,
        };
        r.headers = vec![
            h("i", Schema::int32(), Value::Int32(7)),
            h("s", Schema::string(), Value::String("x y".into())),
            h("b", Schema::boolean(), Value::Boolean(true)),
            h("f", Schema::float64(), Value::Float64(1.5)),
        ];
        Ok(vec![r])
    }
    fn stop(&mut self) {}
}

/// A sink remembering each header it is given, as `key=Type(value)`.
struct HeaderSink {
    seen: Arc<Mutex<Vec<String>>>,
}
struct HeaderSinkTask {
    seen: Arc<Mutex<Vec<String>>>,
}

impl ConnectorPlugin for HeaderSink {
    fn class(&self) -> &str {
        "com.example.HeaderSink"
    }
    fn kind(&self) -> ConnectorKind {
        ConnectorKind::Sink
    }
    fn version(&self) -> &str {
        "1"
    }
    fn config_def(&self) -> ConfigDef {
        ConfigDef::new()
    }
    fn task_configs(&self, config: &Config, _: usize) -> Result<Vec<Config>, ConnectError> {
        Ok(vec![config.clone()])
    }
    fn sink_task(&self) -> Result<Box<dyn SinkTask>, ConnectError> {
        Ok(Box::new(HeaderSinkTask {
            seen: self.seen.clone(),
        }))
    }
}

impl SinkTask for HeaderSinkTask {
    fn start(&mut self, _: &Config, _: &ConnectorContext) -> Result<(), ConnectError> {
        Ok(())
    }
    fn put(&mut self, records: Vec<SinkRecord>) -> Result<(), ConnectError> {
        let mut seen = self.seen.lock().unwrap();
        for r in records {
            for h in r.headers {
                seen.push(format!("{}={:?}", h.key, h.value));
            }
        }
        Ok(())
    }
    fn flush(&mut self) -> Result<(), ConnectError> {
        Ok(())
    }
    fn stop(&mut self) {}
}

/// The raw headers of the first record of `topic`.
fn raw_headers(cluster: &Arc<dyn Cluster>, topic: &str) -> Vec<(String, String)> {
    let mut b = cluster.backend("reader", Guarantee::AtLeastOnce).unwrap();
    let mut out = Vec::new();
    // Not there yet: no headers.
    let _ = b.read_partition(&TopicPartition::new(topic, 0), 0, &mut |r| {
        if out.is_empty() {
            out = r
                .headers
                .iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        String::from_utf8(v.clone().unwrap_or_default()).unwrap(),
                    )
                })
                .collect();
        }
    });
    out
}

fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
    p.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn header_converters_write_and_read_headers_as_kafkas_do() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::open(&dir.path().join("log"), BrokerConfig::default()).unwrap();
    let cluster: Arc<dyn Cluster> = Arc::new(LocalCluster::new(broker.local()));
    let simple_seen = Arc::new(Mutex::new(Vec::new()));
    let string_seen = Arc::new(Mutex::new(Vec::new()));
    let make = |seen: &Arc<Mutex<Vec<String>>>, class: &str| -> Arc<dyn ConnectorPlugin> {
        struct Named(HeaderSink, String);
        impl ConnectorPlugin for Named {
            fn class(&self) -> &str {
                &self.1
            }
            fn kind(&self) -> ConnectorKind {
                ConnectorKind::Sink
            }
            fn version(&self) -> &str {
                "1"
            }
            fn config_def(&self) -> ConfigDef {
                ConfigDef::new()
            }
            fn task_configs(&self, c: &Config, n: usize) -> Result<Vec<Config>, ConnectError> {
                self.0.task_configs(c, n)
            }
            fn sink_task(&self) -> Result<Box<dyn SinkTask>, ConnectError> {
                self.0.sink_task()
            }
        }
        Arc::new(Named(HeaderSink { seen: seen.clone() }, class.to_string()))
    };
    let mut plugins = runnel_connect::builtin::plugins();
    plugins.push(Arc::new(HeaderSource));
    plugins.push(make(&simple_seen, "com.example.SimpleSink"));
    plugins.push(make(&string_seen, "com.example.StringSink"));
    let config = WorkerConfig {
        poll: Duration::from_millis(50),
        commit_interval: Duration::from_millis(100),
        ..WorkerConfig::default()
    };
    let w = Worker::start(cluster.clone(), config, plugins).unwrap();
    let string = "org.apache.kafka.connect.storage.StringConverter";
    // The default: SimpleHeaderConverter.
    w.create(
        "simple",
        cfg(&[
            ("connector.class", "com.example.HeaderSource"),
            ("topic", "hs"),
            ("value.converter", string),
        ]),
        None,
    )
    .unwrap();
    // JsonConverter without schemas.
    w.create(
        "json",
        cfg(&[
            ("connector.class", "com.example.HeaderSource"),
            ("topic", "hj"),
            ("value.converter", string),
            (
                "header.converter",
                "org.apache.kafka.connect.json.JsonConverter",
            ),
            ("header.converter.schemas.enable", "false"),
        ]),
        None,
    )
    .unwrap();
    wait_for("both topics", Duration::from_secs(20), || {
        raw_headers(&cluster, "hs").len() == 4 && raw_headers(&cluster, "hj").len() == 4
    });
    assert_eq!(
        raw_headers(&cluster, "hs"),
        pairs(&[("i", "7"), ("s", "x y"), ("b", "true"), ("f", "1.5")])
    );
    assert_eq!(
        raw_headers(&cluster, "hj"),
        pairs(&[("i", "7"), ("s", "\"x y\""), ("b", "true"), ("f", "1.5")])
    );
    // A bad class is refused at creation.
    assert!(w
        .create(
            "bad",
            cfg(&[
                ("connector.class", "com.example.HeaderSource"),
                ("topic", "hb"),
                ("header.converter", "com.example.Nope"),
            ]),
            None,
        )
        .is_err());

    // Sinks read `hs` back: typed by SimpleHeaderConverter, strings by
    // StringConverter.
    for (name, class, header) in [
        ("simple-sink", "com.example.SimpleSink", None),
        ("string-sink", "com.example.StringSink", Some(string)),
    ] {
        let mut c = cfg(&[
            ("connector.class", class),
            ("topics", "hs"),
            ("value.converter", string),
        ]);
        if let Some(h) = header {
            c.insert("header.converter".into(), h.into());
        }
        w.create(name, c, None).unwrap();
    }
    wait_for("both sinks", Duration::from_secs(20), || {
        simple_seen.lock().unwrap().len() >= 4 && string_seen.lock().unwrap().len() >= 4
    });
    assert_eq!(
        *simple_seen.lock().unwrap(),
        [
            "i=Int8(7)",
            "s=String(\"x y\")",
            "b=Boolean(true)",
            "f=Float32(1.5)"
        ]
    );
    assert_eq!(
        *string_seen.lock().unwrap(),
        [
            "i=String(\"7\")",
            "s=String(\"x y\")",
            "b=String(\"true\")",
            "f=String(\"1.5\")"
        ]
    );
    w.shutdown();
}
