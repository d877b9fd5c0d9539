//! Load generator for any Kafka-compatible broker: produce/consume throughput
//! and end-to-end latency, through librdkafka (the `rdkafka` crate).
//!
//! Each run prints progress every second on stderr and one JSON summary line
//! on stdout, so BENCHMARKS.md figures can be reproduced and compared.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use tracing::info;

#[derive(Parser)]
#[command(name = "runnel-load", about)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Produce N records as fast as possible.
    Produce(ProduceArgs),
    /// Consume N records from the beginning as fast as possible.
    Consume(ConsumeArgs),
    /// Produce at a fixed rate and measure produce-to-consume latency.
    Latency(LatencyArgs),
    /// The BENCHMARKS.md set: produce (100 B and 1 KiB, acks=1 and all),
    /// consume, and latency at a fixed rate, one JSON line each.
    Suite(SuiteArgs),
}

#[derive(Args)]
struct SuiteArgs {
    /// Bootstrap address of any Kafka-compatible broker.
    #[arg(short, long, default_value = "localhost:9092")]
    bootstrap: String,
    /// Run against librdkafka's in-process mock broker (in memory, not
    /// durable) instead, as a same-run baseline for the client's own cost.
    #[arg(long)]
    mock: bool,
    /// Records per 100-byte produce run (1 KiB runs use a quarter).
    #[arg(short = 'n', long, default_value_t = 2_000_000)]
    records: u64,
    /// Rate of the latency run, records per second.
    #[arg(long, default_value_t = 10_000)]
    rate: u64,
    /// Seconds of the latency run.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Prefix of the topics the suite creates.
    #[arg(long, default_value = "load")]
    prefix: String,
}

#[derive(Args, Clone)]
struct Common {
    /// Bootstrap address of any Kafka-compatible broker.
    #[arg(short, long, default_value = "localhost:9092")]
    bootstrap: String,
    /// Topic to use (auto-created by the broker if allowed).
    #[arg(short, long)]
    topic: String,
    /// Extra librdkafka property KEY=VALUE (repeatable).
    #[arg(short = 'X')]
    properties: Vec<String>,
}

#[derive(Args)]
struct ProduceArgs {
    #[command(flatten)]
    common: Common,
    /// Number of records.
    #[arg(short = 'n', long, default_value_t = 1_000_000)]
    records: u64,
    /// Record value size in bytes.
    #[arg(short, long, default_value_t = 100)]
    size: usize,
    /// acks: 0, 1 or all.
    #[arg(long, default_value = "1")]
    acks: String,
    /// linger.ms of the producer.
    #[arg(long, default_value_t = 5)]
    linger_ms: u64,
}

#[derive(Args)]
struct ConsumeArgs {
    #[command(flatten)]
    common: Common,
    /// Number of records to read.
    #[arg(short = 'n', long, default_value_t = 1_000_000)]
    records: u64,
}

#[derive(Args)]
struct LatencyArgs {
    #[command(flatten)]
    common: Common,
    /// Records per second.
    #[arg(long, default_value_t = 10_000)]
    rate: u64,
    /// Seconds to run.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Record value size in bytes (at least 8).
    #[arg(short, long, default_value_t = 100)]
    size: usize,
    /// acks: 0, 1 or all.
    #[arg(long, default_value = "all")]
    acks: String,
}

fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("RUNNEL_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .init();
    match Cli::parse().command {
        Cmd::Produce(a) => produce(a),
        Cmd::Consume(a) => consume(a),
        Cmd::Latency(a) => latency(a),
        Cmd::Suite(a) => suite(a),
    }
}

fn suite(a: SuiteArgs) -> Result<()> {
    let run = format!("{}-{}", a.prefix, now_nanos() / 1_000_000);
    let mock = if a.mock {
        let cluster =
            rdkafka::mocking::MockCluster::new(1).context("cannot start the mock cluster")?;
        for t in [
            "p100-acks1",
            "p100-acksall",
            "p1k-acks1",
            "p1k-acksall",
            "latency",
        ] {
            cluster.create_topic(&format!("{run}-{t}"), 1, 1)?;
        }
        Some(cluster)
    } else {
        None
    };
    let bootstrap = mock
        .as_ref()
        .map(|c| c.bootstrap_servers())
        .unwrap_or(a.bootstrap);
    let common = |t: &str| Common {
        bootstrap: bootstrap.clone(),
        topic: format!("{run}-{t}"),
        properties: Vec::new(),
    };
    for (t, size, acks, n) in [
        ("p100-acks1", 100, "1", a.records),
        ("p100-acksall", 100, "all", a.records),
        ("p1k-acks1", 1024, "1", a.records / 4),
        ("p1k-acksall", 1024, "all", a.records / 4),
    ] {
        info!(test = t, records = n, "starting");
        produce(ProduceArgs {
            common: common(t),
            records: n,
            size,
            acks: acks.to_string(),
            linger_ms: 5,
        })?;
    }
    if mock.is_some() {
        // librdkafka's mock cluster stops serving a consumer after some tens
        // of thousands of records, so the mock baseline covers produce only.
        info!("mock baseline: produce runs only");
        return Ok(());
    }
    info!("consuming the 100-byte acks=1 topic");
    consume(ConsumeArgs {
        common: common("p100-acks1"),
        records: a.records,
    })?;
    info!("consuming the 1 KiB acks=1 topic");
    consume(ConsumeArgs {
        common: common("p1k-acks1"),
        records: a.records / 4,
    })?;
    info!(rate = a.rate, seconds = a.seconds, "latency run");
    latency(LatencyArgs {
        common: common("latency"),
        rate: a.rate,
        seconds: a.seconds,
        size: 100,
        acks: "all".into(),
    })?;
    drop(mock);
    Ok(())
}

fn config(common: &Common) -> Result<ClientConfig> {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &common.bootstrap);
    for kv in &common.properties {
        let (k, v) = kv
            .split_once('=')
            .with_context(|| format!("{kv:?} is not KEY=VALUE"))?;
        c.set(k, v);
    }
    Ok(c)
}

/// Counts delivery reports.
#[derive(Default)]
struct Counting {
    ok: AtomicU64,
    failed: AtomicU64,
}

/// The producer context: delivery reports go to shared counters.
#[derive(Clone)]
struct Ctx(Arc<Counting>);

impl ClientContext for Ctx {}

impl ProducerContext for Ctx {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(_) => self.0.ok.fetch_add(1, Ordering::Relaxed),
            Err(_) => self.0.failed.fetch_add(1, Ordering::Relaxed),
        };
    }
}

fn producer(
    common: &Common,
    acks: &str,
    linger_ms: u64,
) -> Result<(BaseProducer<Ctx>, Arc<Counting>)> {
    let counts = Arc::new(Counting::default());
    let mut c = config(common)?;
    c.set("acks", acks)
        .set("linger.ms", linger_ms.to_string())
        .set("queue.buffering.max.messages", "2000000")
        .set("queue.buffering.max.kbytes", "2097151")
        .set("batch.size", "1000000")
        .set("message.timeout.ms", "120000");
    // Command-line -X settings win over the defaults above.
    for kv in &common.properties {
        if let Some((k, v)) = kv.split_once('=') {
            c.set(k, v);
        }
    }
    let p: BaseProducer<Ctx> = c
        .create_with_context(Ctx(counts.clone()))
        .context("cannot create producer")?;
    Ok((p, counts))
}

/// Sends one record, polling while librdkafka's queue is full.
fn send(p: &BaseProducer<Ctx>, topic: &str, value: &[u8]) -> Result<()> {
    let mut record = BaseRecord::<(), [u8]>::to(topic).payload(value);
    loop {
        match p.send(record) {
            Ok(()) => return Ok(()),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                record = r;
                p.poll(Duration::from_millis(1));
            }
            Err((e, _)) => bail!("send failed: {e}"),
        }
    }
}

fn produce(a: ProduceArgs) -> Result<()> {
    let (p, counts) = producer(&a.common, &a.acks, a.linger_ms)?;
    let value = vec![b'r'; a.size];
    let start = Instant::now();
    let mut last_report = Instant::now();
    for _ in 0..a.records {
        send(&p, &a.common.topic, &value)?;
        if last_report.elapsed() >= Duration::from_secs(1) {
            p.poll(Duration::ZERO);
            let done = counts.ok.load(Ordering::Relaxed);
            info!(
                acked = done,
                rate = (done as f64 / start.elapsed().as_secs_f64()) as u64,
                "producing"
            );
            last_report = Instant::now();
        }
    }
    while counts.ok.load(Ordering::Relaxed) + counts.failed.load(Ordering::Relaxed) < a.records {
        p.poll(Duration::from_millis(10));
    }
    let secs = start.elapsed().as_secs_f64();
    let ok = counts.ok.load(Ordering::Relaxed);
    let summary = serde_json::json!({
        "test": "produce", "records": a.records, "acked": ok,
        "failed": counts.failed.load(Ordering::Relaxed), "size": a.size, "acks": a.acks,
        "seconds": secs, "records_per_sec": ok as f64 / secs,
        "mb_per_sec": ok as f64 * a.size as f64 / secs / 1e6,
    });
    println!("{summary}");
    Ok(())
}

fn assign_all(c: &BaseConsumer, topic: &str) -> Result<()> {
    let meta = c.fetch_metadata(Some(topic), Duration::from_secs(10))?;
    let mut tpl = TopicPartitionList::new();
    for t in meta.topics().iter().filter(|t| t.name() == topic) {
        for p in t.partitions() {
            tpl.add_partition_offset(topic, p.id(), Offset::Beginning)?;
        }
    }
    if tpl.count() == 0 {
        bail!("topic {topic} has no partitions");
    }
    c.assign(&tpl)?;
    Ok(())
}

fn consumer(common: &Common, group: &str) -> Result<BaseConsumer> {
    let mut c = config(common)?;
    c.set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", "100")
        .set("queued.min.messages", "1000000");
    for kv in &common.properties {
        if let Some((k, v)) = kv.split_once('=') {
            c.set(k, v);
        }
    }
    Ok(c.create()?)
}

fn consume(a: ConsumeArgs) -> Result<()> {
    let c = consumer(&a.common, "runnel-load-consume")?;
    assign_all(&c, &a.common.topic)?;
    let start = Instant::now();
    let mut last_report = Instant::now();
    let (mut n, mut bytes) = (0u64, 0u64);
    while n < a.records {
        if start.elapsed() > Duration::from_secs(600) {
            bail!("only {n} of {} records consumed in 600 s", a.records);
        }
        match c.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                n += 1;
                bytes += m.payload_len() as u64;
            }
            Some(Err(e)) => bail!("consume failed: {e}"),
            None => {}
        }
        if last_report.elapsed() >= Duration::from_secs(1) {
            info!(
                consumed = n,
                rate = (n as f64 / start.elapsed().as_secs_f64()) as u64,
                "consuming"
            );
            last_report = Instant::now();
        }
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{}",
        serde_json::json!({"test": "consume", "records": n, "seconds": secs,
            "records_per_sec": n as f64 / secs, "mb_per_sec": bytes as f64 / secs / 1e6})
    );
    Ok(())
}

fn now_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

fn latency(a: LatencyArgs) -> Result<()> {
    if a.size < 8 {
        bail!("--size must be at least 8 bytes");
    }
    let (p, counts) = producer(&a.common, &a.acks, 0)?;
    // Make sure the topic exists and the consumer starts at its end.
    send(&p, &a.common.topic, &[0u8; 8])?;
    p.flush(Duration::from_secs(30))?;
    let c = consumer(&a.common, "runnel-load-latency")?;
    let meta = c.fetch_metadata(Some(&a.common.topic), Duration::from_secs(10))?;
    let mut tpl = TopicPartitionList::new();
    for t in meta.topics().iter().filter(|t| t.name() == a.common.topic) {
        for part in t.partitions() {
            // Resolve the end now: a lazily resolved Offset::End could land
            // after the first measured records.
            let (_, high) =
                c.fetch_watermarks(&a.common.topic, part.id(), Duration::from_secs(10))?;
            tpl.add_partition_offset(&a.common.topic, part.id(), Offset::Offset(high))?;
        }
    }
    c.assign(&tpl)?;
    let total = a.rate * a.seconds;
    let topic = a.common.topic.clone();
    let size = a.size;
    let rate = a.rate;
    let sender = std::thread::spawn(move || -> Result<()> {
        let start = Instant::now();
        let mut value = vec![b'l'; size];
        let mut sent = 0u64;
        while sent < total {
            let due = (start.elapsed().as_secs_f64() * rate as f64) as u64;
            while sent < due.min(total) {
                value[..8].copy_from_slice(&now_nanos().to_be_bytes());
                send(&p, &topic, &value)?;
                sent += 1;
            }
            p.poll(Duration::ZERO);
            std::thread::sleep(Duration::from_micros(50));
        }
        p.flush(Duration::from_secs(30))?;
        Ok(())
    });
    let mut samples: Vec<u64> = Vec::with_capacity(total as usize);
    let start = Instant::now();
    let mut last_report = Instant::now();
    while (samples.len() as u64) < total && start.elapsed() < Duration::from_secs(a.seconds + 30) {
        match c.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                if let Some(v) = m.payload().filter(|v| v.len() >= 8) {
                    let mut ts = [0u8; 8];
                    ts.copy_from_slice(&v[..8]);
                    let sent = u64::from_be_bytes(ts);
                    if sent > 0 {
                        samples.push(now_nanos().saturating_sub(sent));
                    }
                }
            }
            Some(Err(e)) => bail!("consume failed: {e}"),
            None => {}
        }
        if last_report.elapsed() >= Duration::from_secs(1) {
            info!(received = samples.len(), "measuring latency");
            last_report = Instant::now();
        }
    }
    sender
        .join()
        .map_err(|_| anyhow::anyhow!("sender thread panicked"))??;
    samples.sort_unstable();
    let pct = |q: f64| -> f64 {
        if samples.is_empty() {
            return f64::NAN;
        }
        let i = ((samples.len() as f64 * q).ceil() as usize).clamp(1, samples.len()) - 1;
        samples[i] as f64 / 1e6
    };
    println!(
        "{}",
        serde_json::json!({"test": "latency", "rate": a.rate, "seconds": a.seconds, "acks": a.acks,
            "size": a.size, "sent": total, "received": samples.len(),
            "delivery_failures": counts.failed.load(Ordering::Relaxed),
            "p50_ms": pct(0.5), "p99_ms": pct(0.99), "p999_ms": pct(0.999), "max_ms": pct(1.0)})
    );
    Ok(())
}
