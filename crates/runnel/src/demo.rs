//! `runnel demo unstable-apps`: the talk's slide-8 pipeline, runnable
//! against any Kafka-compatible broker (`runnel serve` included).
//!
//! * `generate` creates the topics and writes deterministic app-open and
//!   app-crash events;
//! * `run` runs the stream-processing application (one instance; start
//!   several with different `--instance-id`s to share the work);
//! * `show` prints the current tables.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use runnel_streams::backend::{Backend, ProducedRecord};
use runnel_streams::serdes::partition_for;
use runnel_streams::talk;
use runnel_streams::{Guarantee, KafkaBackend, KafkaBackendConfig, Streams, StreamsConfig};

use crate::config::parse_kv;

#[derive(Args, Debug)]
pub struct DemoArgs {
    #[command(subcommand)]
    demo: Demo,
}

#[derive(Subcommand, Debug)]
enum Demo {
    /// Slide 8: apps opened and app crashes per app and day, and the apps
    /// whose crash ratio passes a threshold.
    #[command(name = "unstable-apps", subcommand)]
    UnstableApps(UnstableApps),
}

#[derive(Args, Debug, Clone)]
struct Common {
    /// Broker address(es), comma separated.
    #[arg(
        short,
        long,
        env = "RUNNEL_BOOTSTRAP",
        default_value = "localhost:9092"
    )]
    bootstrap: String,
    /// Extra librdkafka property, KEY=VALUE (repeatable).
    #[arg(short = 'X', value_name = "KEY=VALUE")]
    properties: Vec<String>,
    /// Prefix of the pipeline's five topic names (several copies of the
    /// pipeline on one cluster).
    #[arg(long, default_value = "")]
    topic_prefix: String,
}

impl Common {
    fn topics(&self) -> talk::Topics {
        talk::Topics::prefixed(&self.topic_prefix)
    }
}

#[derive(Args, Debug)]
struct RunArgs {
    #[command(flatten)]
    common: Common,
    /// Application id (consumer group and internal topic prefix).
    #[arg(long, default_value = "unstable-apps")]
    application_id: String,
    /// Distinguishes instances of the application (and their
    /// transactional ids); keep it stable across restarts.
    #[arg(long, default_value = "0")]
    instance_id: String,
    /// Commit results, state and input offsets in transactions.
    #[arg(long)]
    exactly_once: bool,
    /// Crashes per open above which an app is unstable.
    #[arg(long, default_value_t = 0.1)]
    threshold: f64,
    /// Grace period for late events, in seconds.
    #[arg(long, default_value_t = 3600)]
    grace_secs: u64,
    /// Commit interval in ms [default: 100 with --exactly-once, else 1000].
    #[arg(long)]
    commit_ms: Option<u64>,
    /// Keep state stores on disk here (restarts resume from their
    /// checkpoints) [default: in memory, restored from the changelogs].
    #[arg(long)]
    state_dir: Option<std::path::PathBuf>,
    /// Record cache of each count, in bytes: updates are held back until
    /// the next commit and only each window's latest goes to the output
    /// topics and the join (Kafka Streams' statestore.cache.max.bytes);
    /// 0 writes every update.
    #[arg(long, default_value_t = runnel_streams::DEFAULT_CACHE_MAX_BYTES)]
    cache_max_bytes: usize,
}

#[derive(Subcommand, Debug)]
enum UnstableApps {
    /// Create the topics and write generated events.
    Generate {
        #[command(flatten)]
        common: Common,
        /// App-open events to write (crashes come on top).
        #[arg(long, default_value_t = 100_000)]
        events: usize,
        /// Days the events span: the whole days before today (UTC), so no
        /// event lies in the future (Kafka 4 refuses timestamps more than
        /// an hour ahead).
        #[arg(long, default_value_t = 7)]
        days: i64,
        /// Seed of the generator: the same seed writes the same events.
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Partitions of the input and output topics.
        #[arg(long, default_value_t = 3)]
        partitions: i32,
        /// First day of the events, as ms since the epoch [default: DAYS days before today].
        #[arg(long)]
        start_ms: Option<i64>,
    },
    /// Run the stream-processing application until interrupted.
    Run(RunArgs),
    /// Print the output tables (latest row per app and day).
    Show {
        #[command(flatten)]
        common: Common,
    },
}

pub async fn run(args: DemoArgs) -> Result<()> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    tokio::spawn(async move {
        let term = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term => {}
        }
        flag.store(true, Ordering::SeqCst);
    });
    tokio::task::spawn_blocking(move || run_blocking(args, &stop)).await?
}

fn run_blocking(args: DemoArgs, stop: &AtomicBool) -> Result<()> {
    match args.demo {
        Demo::UnstableApps(UnstableApps::Generate {
            common,
            events,
            days,
            seed,
            partitions,
            start_ms,
        }) => generate(&common, events, days, seed, partitions, start_ms),
        Demo::UnstableApps(UnstableApps::Run(r)) => run_app(&r, stop),
        Demo::UnstableApps(UnstableApps::Show { common }) => show(&common),
    }
}

fn backend(common: &Common, app: &str, instance: &str, g: Guarantee) -> Result<KafkaBackend> {
    let mut cfg = KafkaBackendConfig::new(common.bootstrap.clone(), app)
        .with_instance_id(instance)
        .with_guarantee(g);
    for kv in &common.properties {
        let (k, v) = parse_kv(kv)?;
        cfg = cfg.with_property(k, v);
    }
    KafkaBackend::new(cfg).context("cannot connect to the broker")
}

fn generate(
    common: &Common,
    events: usize,
    days: i64,
    seed: u64,
    partitions: i32,
    start_ms: Option<i64>,
) -> Result<()> {
    let mut b = backend(common, "runnel-demo-generator", "0", Guarantee::AtLeastOnce)?;
    let topics = common.topics();
    // Topics that exist are left alone: asking to create them would need
    // the cluster's controller, which may be moving (a broker down).
    for t in topics.inputs().into_iter().chain(topics.outputs()) {
        if b.partition_count(t)?.is_none() {
            b.create_topic(t, partitions, &[])?;
        }
    }
    for t in topics.inputs() {
        let n = b.partition_count(t)?.unwrap_or(0);
        if n != partitions {
            bail!("topic {t} has {n} partitions, not {partitions}: input topics must be co-partitioned");
        }
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let today = now - now.rem_euclid(talk::DAY_MS);
    let start = start_ms.unwrap_or(today - days * talk::DAY_MS);
    let all = talk::generate(seed, events, days, start);
    let total = all.len();
    let started = Instant::now();
    for (i, chunk) in all.chunks(10_000).enumerate() {
        let recs = chunk
            .iter()
            .map(|g| ProducedRecord {
                topic: topics.of(g).to_string(),
                partition: partition_for(g.app_id.as_bytes(), partitions),
                timestamp: g.timestamp,
                key: Some(g.app_id.as_bytes().to_vec()),
                value: Some(g.value()),
                headers: Vec::new(),
            })
            .collect();
        b.send(recs)?;
        b.commit(&[])?;
        eprintln!(
            "generated {} of {total} events",
            ((i + 1) * 10_000).min(total)
        );
    }
    eprintln!(
        "wrote {total} events to {} and {} in {:.1} s",
        topics.apps_opened,
        topics.app_crashes,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn run_app(r: &RunArgs, stop: &AtomicBool) -> Result<()> {
    let (common, app, instance) = (&r.common, r.application_id.as_str(), r.instance_id.as_str());
    let (exactly_once, threshold, grace_secs, commit_ms) =
        (r.exactly_once, r.threshold, r.grace_secs, r.commit_ms);
    let g = if exactly_once {
        Guarantee::ExactlyOnce
    } else {
        Guarantee::AtLeastOnce
    };
    let topology =
        talk::unstable_apps_on(&common.topics(), threshold, Duration::from_secs(grace_secs))?;
    let mut cfg = StreamsConfig::new(app);
    if exactly_once {
        cfg = cfg.exactly_once();
    } else {
        cfg = cfg.commit_interval(Duration::from_secs(1));
    }
    if let Some(ms) = commit_ms {
        cfg = cfg.commit_interval(Duration::from_millis(ms));
    }
    cfg = cfg.cache_max_bytes(r.cache_max_bytes);
    if let Some(dir) = &r.state_dir {
        let stores = runnel_streams::state::DiskStores::new(dir).lock()?;
        cfg = cfg.stores(Arc::new(stores));
    }
    let backend = backend(common, app, instance, g)?;
    let mut streams = Streams::new(topology, cfg, Box::new(backend))?;
    eprintln!("{app} instance {instance} running ({g:?}); Ctrl-C stops it");
    let mut last_report = Instant::now();
    let mut last_processed = 0;
    while !stop.load(Ordering::SeqCst) {
        streams.poll_once()?;
        if last_report.elapsed() >= Duration::from_secs(2) {
            let m = streams.metrics();
            if m.processed != last_processed {
                eprintln!(
                    "processed {} records ({} tasks, {} commits, {} late dropped)",
                    m.processed, m.tasks, m.commits, m.late_dropped
                );
                last_processed = m.processed;
            }
            last_report = Instant::now();
        }
    }
    streams.close()?;
    eprintln!("stopped after committing");
    Ok(())
}

/// Latest row per (day, app).
type Rows = BTreeMap<(i64, String), serde_json::Value>;

fn show(common: &Common) -> Result<()> {
    let mut b = backend(common, "runnel-demo-show", "0", Guarantee::AtLeastOnce)?;
    let mut tables: Vec<(&str, Rows)> = Vec::new();
    let topics = common.topics();
    for t in topics.outputs() {
        let mut rows = BTreeMap::new();
        let n = b.partition_count(t)?.unwrap_or(0);
        for p in 0..n {
            b.read_partition(&runnel_streams::TopicPartition::new(t, p), 0, &mut |r| {
                let Some(k) = r.key else { return };
                if k.len() < 8 {
                    return;
                }
                let (app, start) = k.split_at(k.len() - 8);
                let mut s = [0u8; 8];
                s.copy_from_slice(start);
                let key = (
                    i64::from_be_bytes(s),
                    String::from_utf8_lossy(app).into_owned(),
                );
                match r.value.and_then(|v| serde_json::from_slice(&v).ok()) {
                    Some(v) => {
                        rows.insert(key, v);
                    }
                    None => {
                        rows.remove(&key);
                    }
                }
            })?;
        }
        tables.push((t, rows));
    }
    for (t, rows) in tables {
        println!("{t} ({} rows)", rows.len());
        for ((day, app), v) in rows {
            println!("  {}  {app:<10} {v}", day_string(day));
        }
    }
    Ok(())
}

/// `YYYY-MM-DD` of a UTC day start.
fn day_string(ms: i64) -> String {
    // Civil date from days since the epoch (Howard Hinnant's algorithm).
    let z = ms.div_euclid(talk::DAY_MS) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

#[cfg(test)]
mod tests {
    #[test]
    fn day_strings() {
        assert_eq!(super::day_string(0), "1970-01-01");
        assert_eq!(super::day_string(1_700_000_000_000), "2023-11-14");
    }
}
