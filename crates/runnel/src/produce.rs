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

    let stdin = std::io::stdin();
    let mut pending = Vec::new();
    let mut sent = 0u64;
    for line in stdin.lock().lines() {
        let line = line.context("cannot read stdin")?;
        let (key, value) = match &args.key_delimiter {
            Some(d) => match line.split_once(d.as_str()) {
                Some((k, v)) => (Some(k.to_string()), v.to_string()),
                None => (None, line),
            },
            None => (None, line),
        };
        let mut owned = OwnedHeaders::new_with_capacity(headers.len());
        for (k, v) in &headers {
            owned = owned.insert(Header {
                key: k,
                value: Some(v.as_bytes()),
            });
        }
        let mut record = FutureRecord::<String, String>::to(&args.topic)
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
