//! `runnel produce`: records from stdin, one per line, through librdkafka.

use std::io::BufRead;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Args;
use rdkafka::config::ClientConfig;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};

use crate::config::parse_kv;

#[derive(Args, Debug)]
pub struct ProduceArgs {
    /// Topic to produce to.
    topic: String,
    /// Broker address(es), comma separated.
    #[arg(
        short,
        long,
        env = "RUNNEL_BOOTSTRAP",
        default_value = "localhost:9092"
    )]
    bootstrap: String,
    /// Partition to write to [default: chosen by the key's hash].
    #[arg(short, long)]
    partition: Option<i32>,
    /// Split each line into key and value at this delimiter (kcat -K).
    #[arg(short = 'K', long = "key-delimiter")]
    key_delimiter: Option<String>,
    /// Header added to every record, KEY=VALUE (repeatable).
    #[arg(short = 'H', long = "header", value_name = "KEY=VALUE")]
    headers: Vec<String>,
    /// Compression: none, gzip, snappy, lz4, zstd.
    #[arg(short = 'z', long, default_value = "none")]
    compression: String,
    /// Acknowledgements: 0, 1 or all.
    #[arg(long, default_value = "all")]
    acks: String,
    /// Record timestamp in ms since the epoch [default: now].
    #[arg(long)]
    timestamp: Option<i64>,
    /// Extra librdkafka property, KEY=VALUE (repeatable).
    #[arg(short = 'X', value_name = "KEY=VALUE")]
    properties: Vec<String>,
    /// Encode each value (a JSON line) with this schema file, registered
    /// under <topic>-value first (Confluent's value.schema).
    #[arg(long, value_name = "FILE", conflicts_with = "value_schema_id")]
    value_schema: Option<std::path::PathBuf>,
    /// Encode each value (a JSON line) with the registered schema of this id.
    #[arg(long, value_name = "ID")]
    value_schema_id: Option<i32>,
    /// Encode each key (JSON, with -K) with this schema file, registered
    /// under <topic>-key first.
    #[arg(long, value_name = "FILE", conflicts_with = "key_schema_id")]
    key_schema: Option<std::path::PathBuf>,
    /// Encode each key (JSON, with -K) with the registered schema of this id.
    #[arg(long, value_name = "ID")]
    key_schema_id: Option<i32>,
    /// Type of the schema files: avro, protobuf or json [default: protobuf
    /// for .proto files, json for .json files that are JSON Schemas, else avro].
    #[arg(long, value_name = "TYPE")]
    schema_type: Option<String>,
    /// Schema registry URL for the schema options.
    #[arg(
        short = 'r',
        long = "schema-registry",
        env = "RUNNEL_SCHEMA_REGISTRY",
        default_value = "http://localhost:8081"
    )]
    schema_registry: String,
}

/// A schema records are encoded with: its id and parsed form.
struct Encoder {
    id: i32,
    schema: std::sync::Arc<runnel_schema::ParsedSchema>,
}

impl Encoder {
    fn encode(&self, line: &str, what: &str, n: u64) -> Result<Vec<u8>> {
        let value: serde_json::Value = serde_json::from_str(line)
            .with_context(|| format!("line {n}: the {what} is not JSON"))?;
        runnel_registry_client::json::encode(&self.schema, self.id, &value)
            .with_context(|| format!("line {n}: cannot encode the {what}"))
    }
}

/// The schema type of a schema file: `--schema-type`, else guessed.
pub(crate) fn schema_type_of(
    path: &std::path::Path,
    text: &str,
    given: Option<&str>,
) -> Result<runnel_schema::SchemaType> {
    use runnel_schema::SchemaType;
    if let Some(t) = given {
        return t
            .parse()
            .map_err(|_| anyhow::anyhow!("unknown schema type {t:?} (avro, protobuf or json)"));
    }
    if path.extension().is_some_and(|e| e == "proto") {
        return Ok(SchemaType::Protobuf);
    }
    // A JSON Schema says so ($schema) or describes an object by
    // `properties`; an Avro schema has `type` "record" and `fields`.
    let json: Option<serde_json::Value> = serde_json::from_str(text).ok();
    let is_json_schema = json.as_ref().is_some_and(|j| {
        j.get("$schema").is_some() || (j.get("properties").is_some() && j.get("fields").is_none())
    });
    Ok(if is_json_schema {
        SchemaType::Json
    } else {
        SchemaType::Avro
    })
}

/// The encoder a pair of schema options asks for, if any.
fn encoder(
    client: &runnel_registry_client::RegistryClient,
    subject: &str,
    file: Option<&std::path::Path>,
    id: Option<i32>,
    schema_type: Option<&str>,
) -> Result<Option<Encoder>> {
    let id = match (file, id) {
        (Some(path), _) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            let ty = schema_type_of(path, &text, schema_type)?;
            client
                .register(subject, ty, &text, &[], false)
                .with_context(|| format!("cannot register {} under {subject}", path.display()))?
        }
        (None, Some(id)) => id,
        (None, None) => return Ok(None),
    };
    let schema = client
        .schema_by_id(id)
        .with_context(|| format!("cannot fetch schema {id}"))?;
    Ok(Some(Encoder { id, schema }))
}

pub async fn run(args: ProduceArgs) -> Result<()> {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &args.bootstrap)
        .set("compression.codec", &args.compression)
        .set("acks", &args.acks)
        .set("linger.ms", "5")
        // The Java client's partitioner, as Kafka Streams, ksqlDB and every
        // other Runnel path use: a key lands on one partition whichever
        // way it was written (librdkafka's default, consistent_random,
        // hashes with CRC32). Keyless records still spread randomly.
        .set("partitioner", "murmur2_random");
    for kv in &args.properties {
        let (k, v) = parse_kv(kv)?;
        config.set(k, v);
    }
    let producer: FutureProducer = config.create().context("cannot create the producer")?;
    // Fail within seconds when no broker answers, as kcat does, instead of
    // queueing records until their delivery times out minutes later.
    let bootstrap = args.bootstrap.clone();
    let client = producer.clone();
    tokio::task::spawn_blocking(move || {
        client
            .client()
            .fetch_metadata(None, std::time::Duration::from_secs(10))
            .map(|_| ())
    })
    .await?
    .with_context(|| format!("cannot reach a broker at {bootstrap}"))?;
    let headers: Vec<(String, String)> = args
        .headers
        .iter()
        .map(|h| parse_kv(h))
        .collect::<Result<_>>()?;

    let registry = runnel_registry_client::RegistryClient::new(&args.schema_registry);
    let client = registry.clone();
    let (topic, schema_type) = (args.topic.clone(), args.schema_type.clone());
    let (value_file, value_id) = (args.value_schema.clone(), args.value_schema_id);
    let (key_file, key_id) = (args.key_schema.clone(), args.key_schema_id);
    let (key_encoder, value_encoder) = tokio::task::spawn_blocking(move || -> Result<_> {
        Ok((
            encoder(
                &client,
                &format!("{topic}-key"),
                key_file.as_deref(),
                key_id,
                schema_type.as_deref(),
            )?,
            encoder(
                &client,
                &format!("{topic}-value"),
                value_file.as_deref(),
                value_id,
                schema_type.as_deref(),
            )?,
        ))
    })
    .await??;
    if key_encoder.is_some() && args.key_delimiter.is_none() {
        bail!("a key schema needs keys: split lines into key and value with -K");
    }

    let stdin = std::io::stdin();
    let mut pending = Vec::new();
    let mut sent = 0u64;
    for line in stdin.lock().lines() {
        let line = line.context("cannot read stdin")?;
        let n = sent + 1;
        let (key, value) = match &args.key_delimiter {
            Some(d) => match line.split_once(d.as_str()) {
                Some((k, v)) => (Some(k.to_string()), v.to_string()),
                None => (None, line),
            },
            None => (None, line),
        };
        let key: Option<Vec<u8>> = match (&key_encoder, key) {
            (Some(e), Some(k)) => Some(e.encode(&k, "key", n)?),
            (_, k) => k.map(String::into_bytes),
        };
        let value: Vec<u8> = match &value_encoder {
            Some(e) => e.encode(&value, "value", n)?,
            None => value.into_bytes(),
        };
        let mut owned = OwnedHeaders::new_with_capacity(headers.len());
        for (k, v) in &headers {
            owned = owned.insert(Header {
                key: k,
                value: Some(v.as_bytes()),
            });
        }
        let mut record = FutureRecord::<Vec<u8>, Vec<u8>>::to(&args.topic)
            .payload(&value)
            .headers(owned);
        if let Some(k) = &key {
            record = record.key(k);
        }
        if let Some(p) = args.partition {
            record = record.partition(p);
        }
        if let Some(ts) = args.timestamp {
            record = record.timestamp(ts);
        }
        let delivery = producer
            .send_result(record)
            .map_err(|(e, _)| anyhow::anyhow!("cannot enqueue record: {e}"))?;
        pending.push(delivery);
        sent += 1;
        if pending.len() >= 10_000 {
            wait_all(&mut pending).await?;
        }
    }
    wait_all(&mut pending).await?;
    producer
        .flush(Duration::from_secs(30))
        .context("cannot flush the producer")?;
    eprintln!("produced {sent} record(s) to {}", args.topic);
    Ok(())
}

async fn wait_all(pending: &mut Vec<rdkafka::producer::DeliveryFuture>) -> Result<()> {
    for delivery in pending.drain(..) {
        match delivery.await {
            Ok(Ok(_)) => {}
            Ok(Err((e, _))) => bail!("delivery failed: {e}"),
            Err(_) => bail!("delivery was cancelled"),
        }
    }
    Ok(())
}
