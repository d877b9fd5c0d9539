//! `runnel consume`: read a topic from any offset through librdkafka and
//! print records (kcat -C style; no consumer group).

use std::collections::HashSet;
use std::io::Write;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Args;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Headers, Message};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};

use crate::config::parse_kv;

#[derive(Args, Debug)]
pub struct ConsumeArgs {
    /// Topic to read.
    topic: String,
    /// Broker address(es), comma separated.
    #[arg(
        short,
        long,
        env = "RUNNEL_BOOTSTRAP",
        default_value = "localhost:9092"
    )]
    bootstrap: String,
    /// Partition(s) to read [default: all] (repeatable).
    #[arg(short, long)]
    partition: Vec<i32>,
    /// Start: beginning, end, N (absolute), -N (N from the end), s@TIMESTAMP_MS.
    #[arg(short, long, default_value = "end", allow_hyphen_values = true)]
    offset: String,
    /// Exit when the end of every partition is reached.
    #[arg(short = 'e', long)]
    exit: bool,
    /// Stop after this many records.
    #[arg(short = 'c', long)]
    count: Option<u64>,
    /// Print each record as a JSON object.
    #[arg(short = 'J', long)]
    json: bool,
    /// Output format: %t topic, %p partition, %o offset, %k key, %s value,
    /// %T timestamp, %h headers, \n, \t [default: "%s\n"].
    #[arg(short = 'f', long)]
    format: Option<String>,
    /// Extra librdkafka property, KEY=VALUE (repeatable).
    #[arg(short = 'X', value_name = "KEY=VALUE")]
    properties: Vec<String>,
}

/// Where to start reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Start {
    Beginning,
    End,
    At(i64),
    Tail(i64),
    Time(i64),
}

fn parse_start(s: &str) -> Result<Start> {
    Ok(match s {
        "beginning" => Start::Beginning,
        "end" => Start::End,
        _ if s.starts_with("s@") => {
            Start::Time(s[2..].parse().context("invalid timestamp in -o s@TS")?)
        }
        _ if s.starts_with('-') => Start::Tail(s[1..].parse().context("invalid -o -N")?),
        _ => Start::At(s.parse().with_context(|| format!("invalid offset {s:?}"))?),
    })
}

pub async fn run(args: ConsumeArgs) -> Result<()> {
    tokio::task::spawn_blocking(move || consume(args)).await?
}

fn consume(args: ConsumeArgs) -> Result<()> {
    let start = parse_start(&args.offset)?;
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &args.bootstrap)
        .set("enable.partition.eof", "true")
        .set("enable.auto.commit", "false")
        .set("group.id", "runnel-consume")
        .set("auto.offset.reset", "earliest");
    for kv in &args.properties {
        let (k, v) = parse_kv(kv)?;
        config.set(k, v);
    }
    let consumer: BaseConsumer = config.create().context("cannot create the consumer")?;
    let meta = consumer
        .fetch_metadata(Some(&args.topic), Duration::from_secs(10))
        .context("cannot read topic metadata")?;
    let Some(topic) = meta.topics().iter().find(|t| t.name() == args.topic) else {
        bail!("topic {} not found", args.topic);
    };
    if let Some(err) = topic.error() {
        bail!("topic {}: {:?}", args.topic, RDKafkaErrorCode::from(err));
    }
    let partitions: Vec<i32> = if args.partition.is_empty() {
        topic.partitions().iter().map(|p| p.id()).collect()
    } else {
        args.partition.clone()
    };
    let mut tpl = TopicPartitionList::new();
    for p in &partitions {
        let offset = match start {
            Start::Beginning => Offset::Beginning,
            Start::End => Offset::End,
            Start::At(n) => Offset::Offset(n),
            Start::Tail(n) => Offset::OffsetTail(n),
            Start::Time(ts) => Offset::Offset(ts),
        };
        tpl.add_partition_offset(&args.topic, *p, offset)?;
    }
    if matches!(start, Start::Time(_)) {
        tpl = consumer
            .offsets_for_times(tpl, Duration::from_secs(10))
            .context("cannot look up offsets by timestamp")?;
        let none: Vec<i32> = tpl
            .elements()
            .iter()
            .filter(|e| e.offset() == Offset::Invalid || e.offset() == Offset::End)
            .map(|e| e.partition())
            .collect();
        for p in none {
            tpl.set_partition_offset(&args.topic, p, Offset::End)?;
        }
    }
    consumer.assign(&tpl).context("cannot assign partitions")?;

    let format = args.format.clone().unwrap_or_else(|| "%s\\n".to_string());
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut at_end: HashSet<i32> = HashSet::new();
    let mut seen = 0u64;
    loop {
        if args.count.is_some_and(|c| seen >= c) {
            break;
        }
        match consumer.poll(Duration::from_millis(500)) {
            None => continue,
            Some(Err(KafkaError::PartitionEOF(p))) => {
                at_end.insert(p);
                if args.exit && partitions.iter().all(|p| at_end.contains(p)) {
                    break;
                }
            }
            Some(Err(e)) => bail!("consume failed: {e}"),
            Some(Ok(msg)) => {
                at_end.remove(&msg.partition());
                seen += 1;
                if args.json {
                    writeln!(out, "{}", to_json(&msg))?;
                } else {
                    out.write_all(&render(&format, &msg))?;
                }
                out.flush()?;
            }
        }
    }
    out.flush()?;
    Ok(())
}

fn headers_of<M: Message>(msg: &M) -> Vec<(String, Option<Vec<u8>>)> {
    msg.headers()
        .map(|h| {
            h.iter()
                .map(|h| (h.key.to_string(), h.value.map(|v| v.to_vec())))
                .collect()
        })
        .unwrap_or_default()
}

fn to_json<M: Message>(msg: &M) -> serde_json::Value {
    let text = |b: Option<&[u8]>| b.map(|b| String::from_utf8_lossy(b).into_owned());
    let headers: Vec<serde_json::Value> = headers_of(msg)
        .into_iter()
        .flat_map(|(k, v)| [serde_json::Value::from(k), text(v.as_deref()).into()])
        .collect();
    serde_json::json!({
        "topic": msg.topic(),
        "partition": msg.partition(),
        "offset": msg.offset(),
        "ts": msg.timestamp().to_millis(),
        "key": text(msg.key()),
        "payload": text(msg.payload()),
        "headers": headers,
    })
}

/// Renders a record with kcat-style format tokens.
fn render<M: Message>(format: &str, msg: &M) -> Vec<u8> {
    let mut out = Vec::new();
    let mut chars = format.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, chars.peek().copied()) {
            ('%', Some(t)) => {
                chars.next();
                match t {
                    't' => out.extend_from_slice(msg.topic().as_bytes()),
                    'p' => out.extend_from_slice(msg.partition().to_string().as_bytes()),
                    'o' => out.extend_from_slice(msg.offset().to_string().as_bytes()),
                    'k' => out.extend_from_slice(msg.key().unwrap_or_default()),
                    's' => out.extend_from_slice(msg.payload().unwrap_or_default()),
                    'K' => out.extend_from_slice(
                        msg.key()
                            .map_or(-1, |k| k.len() as i64)
                            .to_string()
                            .as_bytes(),
                    ),
                    'S' => out.extend_from_slice(
                        msg.payload()
                            .map_or(-1, |v| v.len() as i64)
                            .to_string()
                            .as_bytes(),
                    ),
                    'T' => out.extend_from_slice(
                        msg.timestamp()
                            .to_millis()
                            .unwrap_or(-1)
                            .to_string()
                            .as_bytes(),
                    ),
                    'h' => {
                        let hs: Vec<String> = headers_of(msg)
                            .into_iter()
                            .map(|(k, v)| {
                                format!(
                                    "{k}={}",
                                    v.map(|v| String::from_utf8_lossy(&v).into_owned())
                                        .unwrap_or_default()
                                )
                            })
                            .collect();
                        out.extend_from_slice(hs.join(",").as_bytes());
                    }
                    '%' => out.push(b'%'),
                    other => {
                        out.push(b'%');
                        out.extend_from_slice(other.to_string().as_bytes());
                    }
                }
            }
            ('\\', Some('n')) => {
                chars.next();
                out.push(b'\n');
            }
            ('\\', Some('t')) => {
                chars.next();
                out.push(b'\t');
            }
            (c, _) => {
                let mut b = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut b).as_bytes());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_offsets() {
        assert_eq!(parse_start("beginning").unwrap(), Start::Beginning);
        assert_eq!(parse_start("end").unwrap(), Start::End);
        assert_eq!(parse_start("42").unwrap(), Start::At(42));
        assert_eq!(parse_start("-3").unwrap(), Start::Tail(3));
        assert_eq!(
            parse_start("s@1700000000000").unwrap(),
            Start::Time(1_700_000_000_000)
        );
        assert!(parse_start("s@x").is_err());
        assert!(parse_start("middle").is_err());
    }
}
