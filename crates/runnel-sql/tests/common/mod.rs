//! What both data-driven harnesses share: running one case (in the JSON
//! form of `tests/cases/README.md`) against the real engine on an
//! in-process broker, with Runnel's own schema registry when the case
//! needs one. `qtt.rs` runs our own cases with it, `qtt_ksql.rs` ksqlDB's
//! QTT files translated to that form.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)] // tests may stop at the first surprise

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use runnel_broker::{Broker, BrokerConfig};
use runnel_embed::{LocalBackend, LocalCluster};
use runnel_sql::catalog::SourceInfo;
use runnel_sql::format::{from_json, to_json, Format, RowSerde};
use runnel_sql::schema::WindowType;
use runnel_sql::{Engine, EngineConfig, QueryEvent};
use runnel_streams::{Backend, Guarantee, ProducedRecord, TopicPartition};
use serde_json::{json, Value as Json};

/// Runnel's schema registry on the case's broker, serving its REST API on
/// a loopback port until dropped (runnel-testkit's), with what cases need.
pub struct TestRegistry {
    pub url: String,
    _served: runnel_testkit::TestRegistry,
}

impl TestRegistry {
    pub fn start(cluster: Arc<dyn runnel_cluster::Cluster>) -> Result<TestRegistry, String> {
        let served = runnel_testkit::TestRegistry::start_on(cluster);
        Ok(TestRegistry {
            url: served.url().to_string(),
            _served: served,
        })
    }

    /// Registers `{"subject", "schema" (text or JSON), "schemaType",
    /// "references", "id"}`.
    pub fn register(&self, s: &Json) -> Result<(), String> {
        let subject = s["subject"].as_str().ok_or("schema without subject")?;
        let text = match &s["schema"] {
            Json::String(t) => t.clone(),
            other => other.to_string(),
        };
        let mut body = json!({"schema": text});
        if let Some(t) = s.get("schemaType") {
            body["schemaType"] = t.clone();
        }
        if let Some(r) = s.get("references") {
            body["references"] = r.clone();
        }
        // A given `id`: registered in IMPORT mode with that id.
        let mode = |m: &str| {
            ureq::put(&format!("{}/mode/{subject}?force=true", self.url))
                .set("Content-Type", "application/vnd.schemaregistry.v1+json")
                .send_string(&json!({ "mode": m }).to_string())
                .map_err(|e| format!("mode of {subject}: {e}"))
        };
        if let Some(id) = s.get("id").and_then(Json::as_i64) {
            mode("IMPORT")?;
            body["id"] = json!(id);
            body["version"] = json!(1);
        }
        ureq::post(&format!("{}/subjects/{subject}/versions", self.url))
            .set("Content-Type", "application/vnd.schemaregistry.v1+json")
            .send_string(&body.to_string())
            .map_err(|e| format!("registering {subject}: {e}"))?;
        if s.get("id").is_some() {
            mode("READWRITE")?;
        }
        Ok(())
    }

    /// The latest version of a subject, its schema text parsed as JSON
    /// when it is JSON.
    pub fn latest(&self, subject: &str) -> Result<Json, String> {
        let mut v: Json = ureq::get(&format!("{}/subjects/{subject}/versions/latest", self.url))
            .call()
            .map_err(|e| format!("subject {subject}: {e}"))?
            .into_json()
            .map_err(|e| e.to_string())?;
        if let Some(parsed) = v["schema"]
            .as_str()
            .and_then(|t| serde_json::from_str::<Json>(t).ok())
        {
            v["schema"] = parsed;
        }
        Ok(v)
    }
}

pub fn cases_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cases")
}

/// Numbers compare numerically; objects ignore field order.
pub fn json_eq(a: &Json, b: &Json) -> bool {
    match (a, b) {
        (Json::Number(x), Json::Number(y)) => match (x.as_f64(), y.as_f64()) {
            (Some(x), Some(y)) => (x - y).abs() <= 1e-9 * x.abs().max(y.abs()).max(1.0),
            _ => x == y,
        },
        (Json::Array(x), Json::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| json_eq(a, b))
        }
        (Json::Object(x), Json::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_eq(v, w)))
        }
        _ => a == b,
    }
}

/// ksqlDB's QTT driver's comparison (its `ExpectedRecordComparator`): an
/// expected object field is looked up by its name, then by its name in
/// upper case (missing reads as null), and objects have as many fields; numbers compare within
/// 1e-6; an expected string matches a number it spells (decimals).
pub fn qtt_matches(actual: &Json, want: &Json) -> bool {
    match (want, actual) {
        (Json::Object(w), Json::Object(a)) => {
            w.len() == a.len()
                && w.iter().all(|(k, v)| {
                    // (A field it lacks reads as null there, as in Java.)
                    a.get(k)
                        .or_else(|| a.get(&k.to_uppercase()))
                        .map_or(v.is_null(), |x| qtt_matches(x, v))
                })
        }
        (Json::Array(w), Json::Array(a)) => {
            w.len() == a.len() && w.iter().zip(a).all(|(w, a)| qtt_matches(a, w))
        }
        (Json::Number(w), Json::Number(a)) => match (w.as_i64(), a.as_i64()) {
            (Some(x), Some(y)) => x == y,
            _ => match (w.as_f64(), a.as_f64()) {
                (Some(x), Some(y)) => (x - y).abs() < 1e-6,
                _ => false,
            },
        },
        (Json::String(w), Json::Number(a)) => match (w.parse::<f64>(), a.as_f64()) {
            (Ok(x), Some(y)) => (x - y).abs() < 1e-9 * x.abs().max(1.0),
            _ => false,
        },
        _ => want == actual,
    }
}

/// Whether `actual` holds everything in `want`: every field of an object
/// (recursively), and for an array every element in some element of the
/// actual array; scalars as [`json_eq`].
pub fn json_contains(actual: &Json, want: &Json) -> bool {
    match (actual, want) {
        (Json::Object(a), Json::Object(w)) => w
            .iter()
            .all(|(k, v)| a.get(k).is_some_and(|x| json_contains(x, v))),
        (Json::Array(a), Json::Array(w)) => w.iter().all(|v| a.iter().any(|x| json_contains(x, v))),
        _ => json_eq(actual, want),
    }
}

/// Checks the case's `responses` against what each statement returned.
pub fn check_responses(case: &Json, returned: &[Vec<Json>]) -> Result<(), String> {
    for r in case["responses"].as_array().into_iter().flatten() {
        let i = r["statement"]
            .as_u64()
            .ok_or("response without statement")? as usize;
        let got = returned
            .get(i)
            .ok_or_else(|| format!("response for statement {i}, which did not run"))?;
        let got = Json::Array(got.clone());
        if !json_contains(&got, &Json::Array(vec![r["entity"].clone()])) {
            return Err(format!(
                "statement {i}: expected a response containing {}, got {got}",
                r["entity"]
            ));
        }
        if let Some(absent) = r.get("absent") {
            if json_contains(&got, &Json::Array(vec![absent.clone()])) {
                return Err(format!(
                    "statement {i}: the response should not contain {absent}, got {got}"
                ));
            }
        }
    }
    Ok(())
}

/// Encodes an input key for a source's key format.
pub fn encode_key(info: Option<&SourceInfo>, key: &Json) -> Result<Option<Vec<u8>>, String> {
    if key.is_null() {
        return Ok(None);
    }
    let Some(info) = info else {
        return Ok(Some(match key {
            Json::String(s) => s.clone().into_bytes(),
            other => other.to_string().into_bytes(),
        }));
    };
    match info.key_format.name() {
        "JSON" => Ok(Some(key.to_string().into_bytes())),
        // As ksqlDB's QTT driver writes it: the text is the record's key.
        "DELIMITED" if key.is_string() => Ok(Some(key.as_str().unwrap_or("").as_bytes().to_vec())),
        _ if info.key_format.get().needs_schema_registry() => Ok(info
            .key_serde()
            .encode(&row_of(&info.schema.key, key, false)?)?),
        _ => {
            let cols = &info.schema.key;
            let Some(c) = cols.first() else {
                return Ok(None);
            };
            let v = from_json(&c.ty, key)?;
            Ok(info.key_serde().encode(&[v])?)
        }
    }
}

pub fn encode_value(info: Option<&SourceInfo>, value: &Json) -> Result<Option<Vec<u8>>, String> {
    if value.is_null() {
        return Ok(None);
    }
    let format = info.map_or(Format::JSON, |i| i.value_format);
    if let Some(info) = info.filter(|_| schemaful(format)) {
        let wrap = info.schema.value.len() != 1 || info.wrap_single_value;
        let row = row_of(&info.schema.value, value, wrap)?;
        return Ok(info.value_serde().encode(&row)?);
    }
    match (format.name(), value) {
        ("JSON", v) => Ok(Some(v.to_string().into_bytes())),
        ("DELIMITED", Json::String(s)) => Ok(Some(s.clone().into_bytes())),
        ("KAFKA", v) => {
            let Some(info) = info else {
                return Ok(Some(v.to_string().into_bytes()));
            };
            let c = info.schema.value.first().ok_or("no value column")?;
            let val = from_json(&c.ty, v)?;
            Ok(RowSerde::new(Format::KAFKA, info.schema.value.clone(), false).encode(&[val])?)
        }
        (_, v) => Ok(Some(v.to_string().into_bytes())),
    }
}

/// Formats whose records the harness writes and reads through the
/// source's own serde (Avro, Protobuf, JSON Schema).
pub fn schemaful(format: Format) -> bool {
    format.get().needs_schema_registry() || format.name() == "PROTOBUF_NOSR"
}

/// A JSON record as a row of `columns`: an object of them (names in any
/// case) when `wrapped`, else the one column's value.
pub fn row_of(
    columns: &[runnel_sql::schema::Column],
    j: &Json,
    wrapped: bool,
) -> Result<Vec<runnel_sql::types::Value>, String> {
    if !wrapped {
        let c = columns.first().ok_or("no column")?;
        return Ok(vec![from_json(&c.ty, j)?]);
    }
    columns
        .iter()
        .map(|c| {
            let v = j.as_object().and_then(|o| {
                o.iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(&c.name))
                    .map(|(_, v)| v)
            });
            Ok(v.map_or(Ok(runnel_sql::types::Value::Null), |v| from_json(&c.ty, v))?)
        })
        .collect()
}

/// Decodes a sink record's key to JSON, with its window.
/// With `raw_delimited`, a DELIMITED key is its text (as ksqlDB's QTT
/// driver reads it), else its columns' values.
pub fn decode_key(
    info: &SourceInfo,
    key: Option<&[u8]>,
    raw_delimited: bool,
) -> Result<(Json, Option<Json>), String> {
    let Some(bytes) = key else {
        return Ok((Json::Null, None));
    };
    let (inner, window) = match info.window {
        Some(WindowType::Time { size_ms }) if bytes.len() >= 8 => {
            let (k, w) = bytes.split_at(bytes.len() - 8);
            let start = i64::from_be_bytes(w.try_into().map_err(|_| "bad window")?);
            (
                k,
                Some(json!({"start": start, "end": start + size_ms, "type": "time"})),
            )
        }
        Some(WindowType::Session) if bytes.len() >= 16 => {
            let (k, w) = bytes.split_at(bytes.len() - 16);
            let end = i64::from_be_bytes(w[..8].try_into().map_err(|_| "bad window")?);
            let start = i64::from_be_bytes(w[8..].try_into().map_err(|_| "bad window")?);
            (
                k,
                Some(json!({"start": start, "end": end, "type": "session"})),
            )
        }
        _ => (bytes, None),
    };
    if raw_delimited && info.key_format.name() == "DELIMITED" {
        return Ok((
            Json::String(String::from_utf8_lossy(inner).into_owned()),
            window,
        ));
    }
    let row = info.key_serde().decode(inner)?;
    let key = if row.len() == 1 {
        to_json(&row[0])
    } else if row.is_empty() {
        Json::Null
    } else {
        Json::Object(
            info.schema
                .key
                .iter()
                .zip(&row)
                .map(|(c, v)| (c.name.clone(), to_json(v)))
                .collect(),
        )
    };
    Ok((key, window))
}

pub fn decode_value(info: &SourceInfo, value: Option<&[u8]>) -> Result<Json, String> {
    let Some(bytes) = value else {
        return Ok(Json::Null);
    };
    if schemaful(info.value_format) {
        let row = info.value_serde().decode(bytes)?;
        if info.schema.value.len() == 1 && !info.wrap_single_value {
            return Ok(row.first().map_or(Json::Null, to_json));
        }
        return Ok(Json::Object(
            info.schema
                .value
                .iter()
                .zip(&row)
                .map(|(c, v)| (c.name.clone(), to_json(v)))
                .collect(),
        ));
    }
    match info.value_format.name() {
        "JSON" => serde_json::from_slice(bytes).map_err(|e| e.to_string()),
        "DELIMITED" => Ok(Json::String(String::from_utf8_lossy(bytes).into_owned())),
        _ => {
            let row = info.value_serde().decode(bytes)?;
            Ok(row.first().map_or(Json::Null, to_json))
        }
    }
}

/// Whether statement `i` (`stmt`) failed as the case expects. The message
/// is compared as ksqlDB's statement exceptions carry it: the error, then
/// `Statement: ` and the statement's text.
pub fn check_error(
    case: &Json,
    i: usize,
    stmt: &str,
    e: &runnel_sql::SqlError,
) -> Result<(), String> {
    let Some(exp) = case.get("expectedError") else {
        return Err(format!("statement {i} failed: {e}"));
    };
    // Without `statement`, any statement may fail (ksqlDB's QTT cases).
    if let Some(want) = exp["statement"].as_u64() {
        if want as usize != i {
            return Err(format!(
                "statement {i} failed but the error was expected at {want}: {e}"
            ));
        }
    }
    let msg = exp["message"].as_str().unwrap_or("");
    let text = format!("{e}\nStatement: {stmt}");
    let mentions = if exp["caseSensitive"].as_bool() == Some(true) {
        text.contains(msg)
    } else {
        text.to_ascii_lowercase()
            .contains(&msg.to_ascii_lowercase())
    };
    if !mentions {
        return Err(format!(
            "error does not mention {msg:?}: statement {i} failed with: {e}"
        ));
    }
    if let (Some(line), Some(col)) = (exp["line"].as_u64(), exp["col"].as_u64()) {
        match e.pos {
            Some(p) if u64::from(p.line) == line && u64::from(p.col) == col => {}
            other => {
                return Err(format!(
                    "error at {other:?}, expected line {line} col {col}: {e}"
                ))
            }
        }
    }
    Ok(())
}

pub fn run_case(case: &Json) -> Result<(), String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let broker = Broker::open(dir.path(), BrokerConfig::default()).map_err(|e| e.to_string())?;
    let local = broker.local();
    // Topics a case declares (`{"name", "partitions"}`), e.g. those its
    // CREATE statements read without making them; then the other input
    // topics, with one partition.
    for t in case["topics"].as_array().into_iter().flatten() {
        let topic = t["name"].as_str().ok_or("topic without name")?;
        let partitions = t["partitions"].as_i64().unwrap_or(1) as i32;
        local
            .create_topic(topic, partitions, BTreeMap::new())
            .map_err(|e| e.to_string())?;
    }
    let empty = Vec::new();
    let inputs = case["inputs"].as_array().unwrap_or(&empty);
    for r in inputs {
        let topic = r["topic"].as_str().ok_or("input without topic")?;
        if local.partition_count(topic).is_none() {
            local
                .create_topic(topic, 1, BTreeMap::new())
                .map_err(|e| e.to_string())?;
        }
    }
    let cluster: Arc<dyn runnel_cluster::Cluster> = Arc::new(LocalCluster::new(local.clone()));
    // Cases of the schema-registry formats get a real registry (Runnel's
    // own) on the same broker, over HTTP.
    let registry = if case.get("registry").and_then(Json::as_bool) == Some(true) {
        Some(TestRegistry::start(cluster.clone())?)
    } else {
        None
    };
    if let Some(r) = &registry {
        for s in case["schemas"].as_array().into_iter().flatten() {
            r.register(s)?;
        }
    }
    let engine = Engine::start(
        cluster,
        EngineConfig {
            schema_registry_url: registry.as_ref().map(|r| r.url.clone()),
            ..EngineConfig::default()
        },
    )
    .map_err(|e| e.to_string())?;
    let result = (|| {
        // `properties`: as a client's `streamsProperties`.
        let props: BTreeMap<String, String> = case["properties"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| {
                let v = match v {
                    Json::String(s) => s.clone(),
                    other => other.to_string(),
                };
                (k.clone(), v)
            })
            .collect();
        // One request of the statements joined by line breaks, as
        // ksqlDB's test executor runs them: positions in errors are
        // relative to that whole text ("Line: 3, Col: 70: …").
        let statements: Vec<&str> = case["statements"]
            .as_array()
            .ok_or("no statements")?
            .iter()
            .map(|s| s.as_str().ok_or("statement is not a string"))
            .collect::<Result<_, _>>()?;
        let script = statements.join("\n");
        let returned: Vec<Vec<Json>> = match engine.execute(&script, &props) {
            // As the REST API answers: ksqlDB's entities.
            Ok(executed) => executed
                .iter()
                .map(|e| vec![runnel_sql_http::entity::to_json(e)])
                .collect(),
            Err((e, executed)) => {
                // A syntax error stops the request before anything runs:
                // the failed statement is the one on the error's line.
                let i = match (e.kind, e.pos) {
                    (runnel_sql::error::ErrorKind::Syntax, Some(p)) => {
                        let mut line = 1;
                        let starts: Vec<u32> = statements
                            .iter()
                            .map(|s| {
                                let start = line;
                                line += u32::try_from(s.matches('\n').count()).unwrap_or(0) + 1;
                                start
                            })
                            .collect();
                        starts.iter().rposition(|l| *l <= p.line).unwrap_or(0)
                    }
                    _ => executed.len(),
                };
                let text = statements.get(i).copied().unwrap_or_default();
                check_error(case, i, text, &e)?;
                return Ok(());
            }
        };
        if case.get("expectedError").is_some() {
            return Err("every statement succeeded but an error was expected".to_string());
        }
        check_responses(case, &returned)?;
        let catalog = engine.catalog();
        let source_of = |topic: &str| -> Option<SourceInfo> {
            catalog
                .sources
                .values()
                .find(|s| s.topic == topic && s.writer.is_none())
                .or_else(|| catalog.sources.values().find(|s| s.topic == topic))
                .cloned()
        };
        let mut producer = LocalBackend::new(local.clone(), "qtt-producer", Guarantee::AtLeastOnce)
            .map_err(|e| e.to_string())?;
        // When a query reads another query's output, their records only
        // interleave in input order if each input is processed through the
        // whole chain before the next is produced.
        // The same holds for inputs on several topics: a task takes records
        // of its partitions in timestamp order only among those already
        // written, so a record produced a moment later could be overtaken.
        let topics: BTreeSet<&str> = inputs.iter().filter_map(|r| r["topic"].as_str()).collect();
        let chained = topics.len() > 1
            || catalog.queries.values().any(|q| {
                q.sources
                    .iter()
                    .any(|s| catalog.source(s).is_some_and(|i| i.writer.is_some()))
            });
        for r in inputs {
            if chained && !engine.wait_idle(Duration::from_secs(20)) {
                return Err("queries did not become idle".to_string());
            }
            let topic = r["topic"].as_str().unwrap_or_default();
            let info = source_of(topic);
            let mut key = encode_key(info.as_ref(), &r["key"])?;
            // A windowed key (`"window": {"start", "end", "type"}`): the
            // key, then the start ("time") or the end and start ("session").
            if let (Some(k), Some(w)) = (key.as_mut(), r.get("window")) {
                let (start, end) = (w["start"].as_i64(), w["end"].as_i64());
                let (Some(start), Some(end)) = (start, end) else {
                    return Err(format!("input window without start and end: {w}"));
                };
                if w["type"].as_str() == Some("session") {
                    k.extend_from_slice(&end.to_be_bytes());
                }
                k.extend_from_slice(&start.to_be_bytes());
            }
            let value = encode_value(info.as_ref(), &r["value"])?;
            producer
                .send(vec![ProducedRecord {
                    topic: topic.to_string(),
                    partition: 0,
                    timestamp: r["timestamp"].as_i64().unwrap_or(0),
                    key,
                    value,
                    headers: input_headers(&r["headers"])?,
                }])
                .and_then(|_| producer.commit(&[]))
                .map_err(|e| e.to_string())?;
        }
        if !engine.wait_idle(Duration::from_secs(20)) {
            return Err("queries did not become idle".to_string());
        }
        // Outputs per sink topic.
        let empty = Vec::new();
        let expected = case["outputs"].as_array().unwrap_or(&empty);
        // ksqlDB's QTT driver checks only the topics its outputs name.
        let only_listed = case["onlyListedTopics"].as_bool() == Some(true);
        // ksqlDB's QTT comparison rules (see `qtt_matches`).
        let qtt_compare = case["qttCompare"].as_bool() == Some(true);
        let matches = |want: &Json, got: &Json| {
            if qtt_compare {
                qtt_matches(got, want)
            } else {
                json_eq(want, got)
            }
        };
        let mut topics: BTreeSet<String> = catalog
            .sources
            .values()
            .filter(|s| s.writer.is_some() && !only_listed)
            .map(|s| s.topic.clone())
            .collect();
        topics.extend(
            expected
                .iter()
                .filter_map(|o| o["topic"].as_str().map(String::from)),
        );
        for topic in topics {
            let info = catalog
                .sources
                .values()
                .find(|s| s.topic == topic)
                .cloned()
                .ok_or_else(|| format!("no stream or table writes topic {topic}"))?;
            let mut actual = Vec::new();
            let mut failure = None;
            let mut headers = Vec::new();
            let partitions = local.partition_count(&topic).unwrap_or(1);
            for p in 0..partitions {
                producer
                    .read_partition(&TopicPartition::new(&topic, p), 0, &mut |r| match (
                        decode_key(&info, r.key.as_deref(), qtt_compare),
                        decode_value(&info, r.value.as_deref()),
                    ) {
                        (Ok((k, w)), Ok(v)) => {
                            actual.push((k, w, v, r.timestamp));
                            headers.push(output_headers(&r.headers));
                        }
                        (Err(e), _) | (_, Err(e)) => failure = Some(e),
                    })
                    .map_err(|e| e.to_string())?;
            }
            if partitions > 1 {
                // Several partitions: in timestamp order (stable).
                let mut both: Vec<_> = actual.into_iter().zip(headers).collect();
                both.sort_by_key(|((_, _, _, t), _)| *t);
                (actual, headers) = both.into_iter().unzip();
            }
            if let Some(e) = failure {
                return Err(format!("{topic}: cannot decode an output: {e}"));
            }
            let want: Vec<&Json> = expected
                .iter()
                .filter(|o| o["topic"].as_str() == Some(topic.as_str()))
                .collect();
            let show = |a: &[(Json, Option<Json>, Json, i64)]| -> String {
                a.iter()
                    .map(|(k, w, v, t)| {
                        format!(
                            "  key={k} value={v} ts={t}{}",
                            w.as_ref().map_or(String::new(), |w| format!(" window={w}"))
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            };
            if want.len() != actual.len() {
                return Err(format!(
                    "{topic}: expected {} records, got {}:\n{}",
                    want.len(),
                    actual.len(),
                    show(&actual)
                ));
            }
            // Several queries writing one sink (INSERT INTO … SELECT) run
            // independently: their records interleave in any order, so
            // such a sink compares as a multiset.
            let writers = catalog
                .queries
                .values()
                .filter(|q| q.sink_topic == topic)
                .count();
            let mut actual = actual;
            let mut want = want;
            if writers > 1 {
                let order = |k: &Json, v: &Json, t: i64| format!("{t:020}{k}{v}");
                actual.sort_by_key(|(k, _, v, t)| order(k, v, *t));
                want.sort_by_key(|w| {
                    order(&w["key"], &w["value"], w["timestamp"].as_i64().unwrap_or(0))
                });
            }
            for (i, (w, (k, win, v, ts))) in want.iter().zip(&actual).enumerate() {
                let mut ok = matches(&w["key"], k) && matches(&w["value"], v);
                if let Some(t) = w.get("timestamp").and_then(Json::as_i64) {
                    ok &= t == *ts;
                }
                if let Some(ww) = w.get("window") {
                    ok &= win.as_ref().is_some_and(|x| json_eq(ww, x));
                }
                if let Some(wh) = w.get("headers") {
                    ok &= writers > 1 || json_eq(wh, &headers[i]);
                }
                if !ok {
                    return Err(format!(
                        "{topic}: record {i} differs: expected {w}, got:\n{}",
                        show(&actual)
                    ));
                }
            }
        }
        // Schemas the statements registered.
        if let Some(r) = &registry {
            for want in case["subjects"].as_array().into_iter().flatten() {
                let subject = want["subject"].as_str().ok_or("subject without name")?;
                let got = r.latest(subject)?;
                if !json_contains(&got, want) {
                    return Err(format!(
                        "subject {subject}: expected {want}, registered {got}"
                    ));
                }
            }
        }
        // Subjects nothing may have registered.
        if let Some(r) = &registry {
            for subject in case["noSubjects"].as_array().into_iter().flatten() {
                let subject = subject.as_str().ok_or("noSubjects holds names")?;
                if let Ok(got) = r.latest(subject) {
                    return Err(format!("subject {subject} should not exist, got {got}"));
                }
            }
        }
        check_post(case, &engine.catalog(), &local)?;
        // Pull queries.
        for p in case["pull"].as_array().unwrap_or(&empty) {
            let q = p["query"].as_str().ok_or("pull without query")?;
            let stream = engine
                .query(q, &BTreeMap::new())
                .map_err(|e| format!("pull query {q}: {e}"))?;
            let mut got: Vec<Json> = Vec::new();
            let mut lines: Vec<Json> = Vec::new();
            while let Ok(ev) = stream.rows.recv_timeout(Duration::from_secs(5)) {
                match ev {
                    QueryEvent::Row(r) => got.push(Json::Array(r.iter().map(to_json).collect())),
                    QueryEvent::Text(t) => lines.push(Json::String(t)),
                    QueryEvent::Error(e) => return Err(format!("pull query {q}: {e}")),
                    _ => {}
                }
            }
            // PRINT: its text lines, in order.
            if let Some(want) = p.get("lines") {
                let lines = Json::Array(lines);
                if *want != lines {
                    return Err(format!("{q}: expected lines {want}, got {lines}"));
                }
                continue;
            }
            let want = p["rows"].as_array().cloned().unwrap_or_default();
            let mut remaining = got.clone();
            let all_found =
                want.iter()
                    .all(|w| match remaining.iter().position(|g| json_eq(w, g)) {
                        Some(i) => {
                            remaining.remove(i);
                            true
                        }
                        None => false,
                    });
            if !all_found || !remaining.is_empty() {
                return Err(format!(
                    "pull query {q}: expected rows {}, got {}",
                    Json::Array(want),
                    Json::Array(got)
                ));
            }
        }
        Ok(())
    })();
    engine.shutdown();
    result
}

/// Input `headers`: `[{"KEY": name, "VALUE": base64 or null}]`.
pub fn input_headers(h: &Json) -> Result<runnel_streams::Headers, String> {
    let mut out = Vec::new();
    for x in h.as_array().into_iter().flatten() {
        let k = x["KEY"].as_str().ok_or("header without KEY")?;
        let v = match &x["VALUE"] {
            Json::Null => None,
            Json::String(b) => Some(base64_decode(b)?),
            other => return Err(format!("header value {other} is not base64")),
        };
        out.push((k.to_string(), v));
    }
    Ok(out)
}

/// A record's headers as the cases write them.
pub fn output_headers(h: &runnel_streams::Headers) -> Json {
    Json::Array(
        h.iter()
            .map(|(k, v)| json!({"KEY": k, "VALUE": v.as_ref().map(|b| base64_encode(b))}))
            .collect(),
    )
}

const B64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

pub fn base64_encode(b: &[u8]) -> String {
    let mut out = String::new();
    for chunk in b.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &c)| n | (u32::from(c) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(B64[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

pub fn base64_decode(s: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    let (mut n, mut bits) = (0u32, 0);
    for c in s.bytes().filter(|c| *c != b'=') {
        let v = B64
            .iter()
            .position(|x| *x == c)
            .ok_or_else(|| format!("not base64: {s}"))? as u32;
        n = (n << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((n >> bits) as u8);
        }
    }
    Ok(out)
}

/// A column list as ksqlDB writes it ("`K` STRING KEY, V INT"), reduced
/// to compare: key and value columns, names upper case unless quoted,
/// types in Runnel's spelling.
pub fn normalize_schema(text: &str) -> (Vec<String>, Vec<String>) {
    let (mut key, mut value) = (Vec::new(), Vec::new());
    let mut depth = 0;
    let mut cur = String::new();
    let mut parts = Vec::new();
    for ch in text.chars() {
        match ch {
            '<' | '(' => depth += 1,
            '>' | ')' => depth -= 1,
            _ => {}
        }
        if ch == ',' && depth == 0 {
            parts.push(std::mem::take(&mut cur));
        } else {
            cur.push(ch);
        }
    }
    if !cur.trim().is_empty() {
        parts.push(cur);
    }
    let words = regex::Regex::new(r"`([^`]*)`|([A-Za-z_][A-Za-z0-9_]*)").unwrap();
    let numbers = regex::Regex::new(r"\d+").unwrap();
    for p in parts {
        let mut toks: Vec<String> = words
            .captures_iter(p.trim())
            .map(|c| match (c.get(1), c.get(2)) {
                (Some(q), _) => q.as_str().to_string(),
                (_, Some(w)) => match w.as_str().to_ascii_uppercase().as_str() {
                    "INT" => "INTEGER".to_string(),
                    "VARCHAR" => "STRING".to_string(),
                    u => u.to_string(),
                },
                _ => String::new(),
            })
            .collect();
        // Numbers (DECIMAL's precision and scale) are not words.
        let digits: Vec<String> = numbers
            .find_iter(&p)
            .map(|m| m.as_str().to_string())
            .collect();
        let is_key = toks.last().is_some_and(|t| t == "KEY");
        if is_key {
            toks.pop();
            if toks.last().is_some_and(|t| t == "PRIMARY") {
                toks.pop();
            }
        }
        let line = format!("{} {}", toks.join(" "), digits.join(","));
        if is_key {
            key.push(line);
        } else {
            value.push(line);
        }
    }
    (key, value)
}

/// Post-conditions: `sources` (`{"name", "type", "schema", "keyFormat",
/// "valueFormat"}`, each given field checked), `topicsAbsent` (regexes
/// no topic may match) and `topicsPresent` (names that must exist).
pub fn check_post(
    case: &Json,
    catalog: &runnel_sql::catalog::Catalog,
    local: &runnel_broker::local::Local,
) -> Result<(), String> {
    for want in case["sources"].as_array().into_iter().flatten() {
        let name = want["name"].as_str().ok_or("source without name")?;
        let info = catalog
            .sources
            .values()
            .find(|s| s.name == name || s.name.eq_ignore_ascii_case(name) && !name.contains('`'))
            .ok_or_else(|| format!("post: no source {name}"))?;
        if let Some(kind) = want["type"].as_str() {
            let actual = match info.kind {
                runnel_sql::ast::SourceKind::Stream => "stream",
                runnel_sql::ast::SourceKind::Table => "table",
            };
            if !kind.eq_ignore_ascii_case(actual) {
                return Err(format!("post: {name} is a {actual}, expected a {kind}"));
            }
        }
        if let Some(schema) = want["schema"].as_str() {
            let mut text: Vec<String> = info
                .schema
                .key
                .iter()
                .map(|c| format!("`{}` {} KEY", c.name, c.ty))
                .collect();
            text.extend(
                info.schema
                    .value
                    .iter()
                    .map(|c| format!("`{}` {}", c.name, c.ty)),
            );
            let text = text.join(", ");
            if normalize_schema(schema) != normalize_schema(&text) {
                return Err(format!("post: {name} has schema {text}, expected {schema}"));
            }
        }
        for (field, actual) in [
            ("keyFormat", info.key_format.name()),
            ("valueFormat", info.value_format.name()),
        ] {
            let want = match &want[field] {
                Json::String(s) => Some(s.clone()),
                Json::Object(o) => o.get("format").and_then(Json::as_str).map(String::from),
                _ => None,
            };
            if let Some(w) = want {
                if !w.eq_ignore_ascii_case(actual) {
                    return Err(format!("post: {name} has {field} {actual}, expected {w}"));
                }
            }
        }
    }
    let topics = local.topics();
    for pattern in case["topicsAbsent"].as_array().into_iter().flatten() {
        let p = pattern.as_str().ok_or("topicsAbsent holds regexes")?;
        let re = regex::Regex::new(&format!("^(?:{p})$")).map_err(|e| e.to_string())?;
        if let Some((t, _)) = topics.iter().find(|(t, _)| re.is_match(t)) {
            return Err(format!("post: topic {t} exists, matching {p}"));
        }
    }
    for name in case["topicsPresent"].as_array().into_iter().flatten() {
        let n = name.as_str().ok_or("topicsPresent holds names")?;
        if !topics.iter().any(|(t, _)| t == n) {
            return Err(format!("post: no topic {n}"));
        }
    }
    Ok(())
}
