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
    /// Decode with the schema registry (kcat -s): key=FMT, value=FMT or
    /// FMT for both; FMT is avro, protobuf or json_sr. Decoded records print
    /// as JSON.
    #[arg(short = 's', long = "serdes", value_name = "[key=|value=]FMT")]
    serdes: Vec<String>,
    /// Schema registry URL for -s (kcat -r).
    #[arg(
        short = 'r',
        long = "schema-registry",
        env = "RUNNEL_SCHEMA_REGISTRY",
        default_value = "http://localhost:8081"
    )]
    schema_registry: String,
}

/// How the key and value of each record are decoded (`-s`).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Serdes {
    key: Option<runnel_schema::SchemaType>,
    value: Option<runnel_schema::SchemaType>,
}

fn parse_serdes(specs: &[String]) -> Result<Serdes> {
    let mut s = Serdes::default();
    for spec in specs {
        let (field, fmt) = match spec.split_once('=') {
            Some((f, v)) => (Some(f), v),
            None => (None, spec.as_str()),
        };
        let ty = match fmt.to_ascii_lowercase().as_str() {
            "avro" => runnel_schema::SchemaType::Avro,
            "protobuf" => runnel_schema::SchemaType::Protobuf,
            "json_sr" | "json-sr" | "jsonschema" => runnel_schema::SchemaType::Json,
            other => bail!("unknown serdes {other:?} in -s {spec} (avro, protobuf or json_sr)"),
        };
        match field {
            None => {
                s.key = Some(ty);
                s.value = Some(ty);
            }
            Some("key") => s.key = Some(ty),
            Some("value") => s.value = Some(ty),
            Some(other) => bail!("-s {spec}: {other} is neither key nor value"),
        }
    }
    Ok(s)
}

/// Decodes `bytes` written with a registry schema of type `ty` to JSON text.
fn decode_field(
    client: &runnel_registry_client::RegistryClient,
    ty: runnel_schema::SchemaType,
    bytes: &[u8],
) -> Result<Vec<u8>> {
    let (id, value) = runnel_registry_client::json::decode(client, bytes)?;
    let actual = client.schema_by_id(id)?.schema_type();
    if actual != ty {
        bail!(
            "written with {} schema {id}, not {}",
            actual.name(),
            ty.name()
        );
    }
    Ok(value.to_string().into_bytes())
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
    let serdes = parse_serdes(&args.serdes)?;
    let registry = (serdes != Serdes::default())
        .then(|| runnel_registry_client::RegistryClient::new(&args.schema_registry));
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
                let decode = |ty: Option<runnel_schema::SchemaType>,
                              bytes: Option<&[u8]>,
                              what: &str|
                 -> Result<Option<Vec<u8>>> {
                    match (ty, bytes, &registry) {
                        (Some(ty), Some(b), Some(client)) => {
                            decode_field(client, ty, b).map(Some).with_context(|| {
                                format!(
                                    "cannot decode the {what} of {}-{} offset {}",
                                    msg.topic(),
                                    msg.partition(),
                                    msg.offset()
                                )
                            })
                        }
                        (_, b, _) => Ok(b.map(<[u8]>::to_vec)),
                    }
                };
                let key = decode(serdes.key, msg.key(), "key")?;
                let value = decode(serdes.value, msg.payload(), "value")?;
                let fields = Fields {
                    key: key.as_deref(),
                    value: value.as_deref(),
                };
                if args.json {
                    writeln!(out, "{}", to_json(&msg, &fields))?;
                } else {
                    out.write_all(&render(&format, &msg, &fields))?;
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

/// A record's key and value as printed (decoded with `-s`, or as read).
struct Fields<'a> {
    key: Option<&'a [u8]>,
    value: Option<&'a [u8]>,
}

fn to_json<M: Message>(msg: &M, fields: &Fields<'_>) -> serde_json::Value {
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
        "key": text(fields.key),
        "payload": text(fields.value),
        "headers": headers,
    })
}

/// Renders a record with kcat-style format tokens.
fn render<M: Message>(format: &str, msg: &M, fields: &Fields<'_>) -> Vec<u8> {
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
                    'k' => out.extend_from_slice(fields.key.unwrap_or_default()),
                    's' => out.extend_from_slice(fields.value.unwrap_or_default()),
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

    #[test]
    fn serdes_like_kcat() {
        use runnel_schema::SchemaType;
        let s = parse_serdes(&["avro".into()]).unwrap();
        assert_eq!(
            (s.key, s.value),
            (Some(SchemaType::Avro), Some(SchemaType::Avro))
        );
        let s = parse_serdes(&["value=protobuf".into()]).unwrap();
        assert_eq!((s.key, s.value), (None, Some(SchemaType::Protobuf)));
        let s = parse_serdes(&["key=json_sr".into(), "value=avro".into()]).unwrap();
        assert_eq!(
            (s.key, s.value),
            (Some(SchemaType::Json), Some(SchemaType::Avro))
        );
        assert!(parse_serdes(&["thrift".into()]).is_err());
        assert!(parse_serdes(&["header=avro".into()]).is_err());
    }
}
