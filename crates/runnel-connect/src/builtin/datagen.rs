//! A datagen source compatible with Confluent's
//! `io.confluent.kafka.connect.datagen.DatagenConnector` quickstarts
//! (`orders`, `users`, `pageviews`): random records of the quickstart's
//! schema (`ksql.<name>` structs), keyed by its key field, at most one per
//! `max.interval` ms, `iterations` in all per task (-1: forever). The
//! source offset counts records (`{"current.iteration":N}` under
//! `{"task.id":n}`), so a restart continues the count.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use runnel_connect_api::{
    Config, ConfigDef, ConfigKey, ConfigType, ConnectError, ConnectorContext, ConnectorKind,
    ConnectorPlugin, Importance, OffsetReader, Schema, SourceOffset, SourcePartition, SourceRecord,
    SourceTask, Struct, Validator, Value,
};

pub const CLASS: &str = "io.confluent.kafka.connect.datagen.DatagenConnector";

fn def() -> ConfigDef {
    ConfigDef::new()
        .define(
            ConfigKey::new(
                "kafka.topic",
                ConfigType::String,
                None,
                Importance::High,
                "Topic to write to",
            )
            .validator(Validator::NonEmpty),
        )
        .define(
            ConfigKey::new(
                "quickstart",
                ConfigType::String,
                None,
                Importance::High,
                "Name of the quickstart schema to use",
            )
            .validator(Validator::one_of(&["orders", "users", "pageviews"])),
        )
        .define(
            ConfigKey::new(
                "max.interval",
                ConfigType::Long,
                Some("500"),
                Importance::Low,
                "Max interval between messages (ms)",
            )
            .validator(Validator::Range {
                min: Some(0),
                max: None,
            }),
        )
        .define(ConfigKey::new(
            "iterations",
            ConfigType::Int,
            Some("-1"),
            Importance::Low,
            "Number of messages to send from each task, or less than 1 for unlimited",
        ))
        .define(ConfigKey::new(
            "random.seed",
            ConfigType::Long,
            Some(""),
            Importance::Low,
            "Seed for the random generator (empty: the time)",
        ))
}

/// `DatagenConnector`.
#[derive(Debug, Default)]
pub struct Datagen;

impl ConnectorPlugin for Datagen {
    fn class(&self) -> &str {
        CLASS
    }
    fn aliases(&self) -> Vec<String> {
        vec!["DatagenConnector".into(), "Datagen".into()]
    }
    fn kind(&self) -> ConnectorKind {
        ConnectorKind::Source
    }
    fn version(&self) -> &str {
        env!("CARGO_PKG_VERSION")
    }
    fn config_def(&self) -> ConfigDef {
        def()
    }
    fn validate(&self, config: &Config) -> Vec<runnel_connect_api::ConfigValue> {
        let mut out = def().validate(config);
        // An empty seed is the default: no number check.
        if let Some(v) = out.iter_mut().find(|v| v.name == "random.seed") {
            if config.get("random.seed").is_none_or(|s| s.is_empty()) {
                v.errors.clear();
            }
        }
        out
    }
    fn task_configs(&self, config: &Config, max: usize) -> Result<Vec<Config>, ConnectError> {
        Ok((0..max.max(1))
            .map(|i| {
                let mut c = config.clone();
                c.insert("task.id".into(), i.to_string());
                c
            })
            .collect())
    }
    fn source_task(&self) -> Result<Box<dyn SourceTask>, ConnectError> {
        Ok(Box::new(DatagenTask::default()))
    }
}

#[derive(Default)]
struct DatagenTask {
    topic: String,
    quickstart: String,
    interval: u64,
    iterations: i64,
    count: i64,
    task: i64,
    rng: u64,
    schema: Option<Arc<Schema>>,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(0))
}

impl DatagenTask {
    fn next(&mut self) -> u64 {
        // xorshift64*
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        let i = self.below(items.len() as u64) as usize;
        items.get(i).copied().unwrap_or("")
    }
    fn partition(&self) -> SourcePartition {
        let mut p = SourcePartition::new();
        p.insert("task.id".into(), self.task.into());
        p
    }

    fn record(&mut self) -> Result<SourceRecord, ConnectError> {
        let schema = self
            .schema
            .clone()
            .ok_or_else(|| ConnectError::Fatal("not started".into()))?;
        let data = |e: runnel_connect_api::DataError| ConnectError::Fatal(e.to_string());
        let mut s = Struct::new(schema.clone());
        let n = self.count;
        let (key_field, _) = match self.quickstart.as_str() {
            "orders" => {
                let units = (self.below(10_000) as f64) / 1000.0;
                let item = format!("Item_{}", self.below(1000));
                let city = format!("City_{}", self.below(100));
                let state = format!("State_{}", self.below(100));
                let zip = 10_000 + self.below(89_999) as i64;
                let addr_schema = schema
                    .field_named("address")
                    .map(|f| Arc::new(f.schema.clone()))
                    .ok_or_else(|| ConnectError::Fatal("no address".into()))?;
                let addr = Struct::new(addr_schema)
                    .with("city", Value::String(city))
                    .map_err(data)?
                    .with("state", Value::String(state))
                    .map_err(data)?
                    .with("zipcode", Value::Int64(zip))
                    .map_err(data)?;
                s.put(
                    "ordertime",
                    Value::Int64(now_ms() - self.below(86_400_000) as i64),
                )
                .map_err(data)?;
                s.put(
                    "orderid",
                    Value::Int32(i32::try_from(n).unwrap_or(i32::MAX)),
                )
                .map_err(data)?;
                s.put("itemid", Value::String(item)).map_err(data)?;
                s.put("orderunits", Value::Float64(units)).map_err(data)?;
                s.put("address", Value::Struct(addr)).map_err(data)?;
                ("orderid", ())
            }
            "users" => {
                let user = format!("User_{}", 1 + self.below(9));
                let region = format!("Region_{}", 1 + self.below(9));
                let gender = self.pick(&["MALE", "FEMALE", "OTHER"]).to_string();
                s.put(
                    "registertime",
                    Value::Int64(now_ms() - self.below(10_000_000_000) as i64),
                )
                .map_err(data)?;
                s.put("userid", Value::String(user)).map_err(data)?;
                s.put("regionid", Value::String(region)).map_err(data)?;
                s.put("gender", Value::String(gender)).map_err(data)?;
                ("userid", ())
            }
            _ => {
                let user = format!("User_{}", 1 + self.below(9));
                let page = format!("Page_{}", 1 + self.below(99));
                s.put("viewtime", Value::Int64(now_ms())).map_err(data)?;
                s.put("userid", Value::String(user)).map_err(data)?;
                s.put("pageid", Value::String(page)).map_err(data)?;
                ("viewtime", ())
            }
        };
        let key_schema = schema.field_named(key_field).map(|f| f.schema.clone());
        let key = s.get(key_field).cloned().unwrap_or(Value::Null);
        self.count += 1;
        let mut offset = SourceOffset::new();
        offset.insert("current.iteration".into(), self.count.into());
        offset.insert("task.id".into(), self.task.into());
        Ok(SourceRecord::new(
            self.partition(),
            offset,
            self.topic.clone(),
            key_schema,
            key,
            Some((*schema).clone()),
            Value::Struct(s),
        ))
    }
}

/// The schema of a quickstart.
pub fn quickstart_schema(name: &str) -> Option<Schema> {
    Some(match name {
        "orders" => Schema::struct_named("ksql.orders")
            .field("ordertime", Schema::int64())
            .field("orderid", Schema::int32())
            .field("itemid", Schema::string())
            .field("orderunits", Schema::float64())
            .field(
                "address",
                Schema::struct_named("ksql.address")
                    .field("city", Schema::string())
                    .field("state", Schema::string())
                    .field("zipcode", Schema::int64()),
            ),
        "users" => Schema::struct_named("ksql.users")
            .field("registertime", Schema::int64())
            .field("userid", Schema::string())
            .field("regionid", Schema::string())
            .field("gender", Schema::string()),
        "pageviews" => Schema::struct_named("ksql.pageviews")
            .field("viewtime", Schema::int64())
            .field("userid", Schema::string())
            .field("pageid", Schema::string()),
        _ => return None,
    })
}

impl SourceTask for DatagenTask {
    fn start(
        &mut self,
        config: &Config,
        context: &ConnectorContext,
        offsets: &dyn OffsetReader,
    ) -> Result<(), ConnectError> {
        let d = def();
        let e =
            |e: runnel_connect_api::ConfigError| ConnectError::config(e.name, e.value, e.message);
        self.topic = d.string(config, "kafka.topic").map_err(e)?;
        self.quickstart = d
            .string(config, "quickstart")
            .map_err(e)?
            .to_ascii_lowercase();
        self.schema = Some(Arc::new(quickstart_schema(&self.quickstart).ok_or_else(
            || ConnectError::config("quickstart", self.quickstart.clone(), "unknown quickstart"),
        )?));
        self.interval = u64::try_from(d.long(config, "max.interval").map_err(e)?).unwrap_or(0);
        self.iterations = i64::from(d.int(config, "iterations").map_err(e)?);
        self.task = i64::from(context.task);
        self.count = offsets
            .offset(&self.partition())
            .and_then(|o| o.get("current.iteration").and_then(|v| v.as_i64()))
            .unwrap_or(0);
        let seed = config
            .get("random.seed")
            .and_then(|s| s.trim().parse::<u64>().ok())
            .unwrap_or_else(|| now_ms() as u64 ^ (self.task as u64).wrapping_mul(0x9e37_79b9));
        self.rng = seed | 1;
        Ok(())
    }

    fn poll(&mut self) -> Result<Vec<SourceRecord>, ConnectError> {
        if self.iterations > 0 && self.count >= self.iterations {
            std::thread::sleep(Duration::from_millis(200));
            return Ok(Vec::new());
        }
        if self.interval > 0 {
            let wait = self.below(self.interval + 1);
            std::thread::sleep(Duration::from_millis(wait));
        }
        Ok(vec![self.record()?])
    }

    fn stop(&mut self) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    struct NoOffsets;
    impl OffsetReader for NoOffsets {
        fn offset(&self, _: &SourcePartition) -> Option<SourceOffset> {
            None
        }
    }

    #[test]
    fn quickstarts_make_valid_records_up_to_iterations() {
        for q in ["orders", "users", "pageviews"] {
            let mut c = Config::new();
            c.insert("kafka.topic".into(), "t".into());
            c.insert("quickstart".into(), q.into());
            c.insert("max.interval".into(), "0".into());
            c.insert("iterations".into(), "3".into());
            assert!(
                Datagen.validate(&c).iter().all(|v| v.errors.is_empty()),
                "{q}"
            );
            let mut t = Datagen.source_task().unwrap();
            let cx = ConnectorContext {
                connector: "d".into(),
                task: 0,
            };
            t.start(&c, &cx, &NoOffsets).unwrap();
            let mut n = 0;
            for _ in 0..5 {
                for r in t.poll().unwrap() {
                    r.value_schema.as_ref().unwrap().validate(&r.value).unwrap();
                    assert!(!r.key.is_null());
                    n += 1;
                }
            }
            assert_eq!(n, 3, "{q}");
        }
        let mut bad = Config::new();
        bad.insert("kafka.topic".into(), "t".into());
        bad.insert("quickstart".into(), "nope".into());
        assert!(Datagen.validate(&bad).iter().any(|v| !v.errors.is_empty()));
    }
}
