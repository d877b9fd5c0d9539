//! The data-driven SQL suite: every case of `tests/cases/*.json`
//! (statements in, records in, records and pull-query rows out; see
//! `tests/cases/README.md`) run against the real engine on an in-process
//! broker.
//!
//! `tests/cases/pending.txt` lists cases the engine does not pass yet, one
//! `file.json: case name — reason` per line. A pending case that passes
//! fails the suite, so the list stays true.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may stop at the first surprise

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
/// a loopback port until dropped.
struct TestRegistry {
    url: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    registry: runnel_registry::Registry,
}

impl TestRegistry {
    fn start(cluster: Arc<dyn runnel_cluster::Cluster>) -> Result<TestRegistry, String> {
        let config = runnel_registry::RegistryConfig {
            poll: Duration::from_millis(50),
            ..Default::default()
        };
        let registry =
            runnel_registry::Registry::start(cluster, config).map_err(|e| e.to_string())?;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
        listener.set_nonblocking(true).map_err(|e| e.to_string())?;
        let url = format!(
            "http://{}",
            listener.local_addr().map_err(|e| e.to_string())?
        );
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let routes = runnel_registry::api::routes(registry.clone());
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let l = tokio::net::TcpListener::from_std(listener).unwrap();
                axum::serve(l, routes)
                    .with_graceful_shutdown(async {
                        let _ = rx.await;
                    })
                    .await
                    .unwrap();
            });
        });
        Ok(TestRegistry {
            url,
            stop: Some(tx),
            thread: Some(thread),
            registry,
        })
    }

    /// Registers `{"subject", "schema" (text or JSON), "schemaType"}`.
    fn register(&self, s: &Json) -> Result<(), String> {
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
        ureq::post(&format!("{}/subjects/{subject}/versions", self.url))
            .set("Content-Type", "application/vnd.schemaregistry.v1+json")
            .send_string(&body.to_string())
            .map_err(|e| format!("registering {subject}: {e}"))?;
        Ok(())
    }

    /// The latest version of a subject, its schema text parsed as JSON
    /// when it is JSON.
    fn latest(&self, subject: &str) -> Result<Json, String> {
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

impl Drop for TestRegistry {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.registry.shutdown();
    }
}

fn cases_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cases")
}

/// Numbers compare numerically; objects ignore field order.
fn json_eq(a: &Json, b: &Json) -> bool {
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

/// Whether `actual` holds everything in `want`: every field of an object
/// (recursively), and for an array every element in some element of the
/// actual array; scalars as [`json_eq`].
fn json_contains(actual: &Json, want: &Json) -> bool {
    match (actual, want) {
        (Json::Object(a), Json::Object(w)) => w
            .iter()
            .all(|(k, v)| a.get(k).is_some_and(|x| json_contains(x, v))),
        (Json::Array(a), Json::Array(w)) => w.iter().all(|v| a.iter().any(|x| json_contains(x, v))),
        _ => json_eq(actual, want),
    }
}

/// Checks the case's `responses` against what each statement returned.
fn check_responses(case: &Json, returned: &[Vec<Json>]) -> Result<(), String> {
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
fn encode_key(info: Option<&SourceInfo>, key: &Json) -> Result<Option<Vec<u8>>, String> {
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
        _ if info.key_format.get().needs_schema_registry() => Ok(info
            .key_serde()
            .encode(&row_of(&info.schema.key, key, false)?)?),
        _ => {
            let cols = &info.schema.key;
            let Some(c) = cols.first() else {
                return Ok(None);
            };
            let v = from_json(&c.ty, key)?;
            Ok(RowSerde::new(info.key_format, cols.clone(), false).encode(&[v])?)
        }
    }
}

fn encode_value(info: Option<&SourceInfo>, value: &Json) -> Result<Option<Vec<u8>>, String> {
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
fn schemaful(format: Format) -> bool {
    format.get().needs_schema_registry() || format.name() == "PROTOBUF_NOSR"
}

/// A JSON record as a row of `columns`: an object of them (names in any
/// case) when `wrapped`, else the one column's value.
fn row_of(
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
fn decode_key(info: &SourceInfo, key: Option<&[u8]>) -> Result<(Json, Option<Json>), String> {
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
    let row = RowSerde::new(info.key_format, info.schema.key.clone(), false).decode(inner)?;
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

fn decode_value(info: &SourceInfo, value: Option<&[u8]>) -> Result<Json, String> {
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

fn check_error(case: &Json, i: usize, e: &runnel_sql::SqlError) -> Result<(), String> {
    let Some(exp) = case.get("expectedError") else {
        return Err(format!("statement {i} failed: {e}"));
    };
    let want = exp["statement"].as_u64().unwrap_or(0) as usize;
    if want != i {
        return Err(format!(
            "statement {i} failed but the error was expected at {want}: {e}"
        ));
    }
    let msg = exp["message"].as_str().unwrap_or("");
    if !e
        .to_string()
        .to_ascii_lowercase()
        .contains(&msg.to_ascii_lowercase())
    {
        return Err(format!("error does not mention {msg:?}: {e}"));
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

fn run_case(case: &Json) -> Result<(), String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let broker = Broker::open(dir.path(), BrokerConfig::default()).map_err(|e| e.to_string())?;
    let local = broker.local();
    let empty = Vec::new();
    let inputs = case["inputs"].as_array().unwrap_or(&empty);
    for r in inputs {
        let topic = r["topic"].as_str().ok_or("input without topic")?;
        local
            .create_topic(topic, 1, BTreeMap::new())
            .map_err(|e| e.to_string())?;
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
        let props = BTreeMap::new();
        let statements = case["statements"].as_array().ok_or("no statements")?;
        let mut returned = Vec::new();
        for (i, s) in statements.iter().enumerate() {
            let text = s.as_str().ok_or("statement is not a string")?;
            match engine.execute(text, &props) {
                // As the REST API answers: ksqlDB's entities.
                Ok(executed) => returned.push(
                    executed
                        .iter()
                        .map(runnel_sql_http::entity::to_json)
                        .collect::<Vec<Json>>(),
                ),
                Err((e, _)) => {
                    check_error(case, i, &e)?;
                    return Ok(());
                }
            }
        }
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
            let key = encode_key(info.as_ref(), &r["key"])?;
            let value = encode_value(info.as_ref(), &r["value"])?;
            producer
                .send(vec![ProducedRecord {
                    topic: topic.to_string(),
                    partition: 0,
                    timestamp: r["timestamp"].as_i64().unwrap_or(0),
                    key,
                    value,
                    headers: Vec::new(),
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
        let mut topics: BTreeSet<String> = catalog
            .sources
            .values()
            .filter(|s| s.writer.is_some())
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
            producer
                .read_partition(&TopicPartition::new(&topic, 0), 0, &mut |r| match (
                    decode_key(&info, r.key.as_deref()),
                    decode_value(&info, r.value.as_deref()),
                ) {
                    (Ok((k, w)), Ok(v)) => actual.push((k, w, v, r.timestamp)),
                    (Err(e), _) | (_, Err(e)) => failure = Some(e),
                })
                .map_err(|e| e.to_string())?;
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
                let mut ok = json_eq(&w["key"], k) && json_eq(&w["value"], v);
                if let Some(t) = w.get("timestamp").and_then(Json::as_i64) {
                    ok &= t == *ts;
                }
                if let Some(ww) = w.get("window") {
                    ok &= win.as_ref().is_some_and(|x| json_eq(ww, x));
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

#[test]
fn sql_cases() {
    let pending_text = std::fs::read_to_string(cases_dir().join("pending.txt")).unwrap_or_default();
    let pending: BTreeMap<String, String> = pending_text
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (name, reason) = l.split_once(" — ").unwrap_or((l, ""));
            (name.trim().to_string(), reason.to_string())
        })
        .collect();
    let filter = std::env::var("QTT_FILTER").ok();
    let mut files: Vec<PathBuf> = std::fs::read_dir(cases_dir())
        .expect("cases dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    let (mut passed, mut failed, mut still_pending) = (0, Vec::new(), 0);
    for f in files {
        let text = std::fs::read_to_string(&f).expect("read case file");
        let doc: Json = serde_json::from_str(&text).expect("case file is JSON");
        let fname = f
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();
        for case in doc["tests"].as_array().expect("tests array") {
            let name = format!("{fname}: {}", case["name"].as_str().unwrap_or("?"));
            if filter
                .as_ref()
                .is_some_and(|flt| !name.contains(flt.as_str()))
            {
                continue;
            }
            let outcome = std::panic::catch_unwind(|| run_case(case))
                .unwrap_or_else(|_| Err("panicked".to_string()));
            match (outcome, pending.contains_key(&name)) {
                (Ok(()), false) => passed += 1,
                (Ok(()), true) => {
                    failed.push(format!("{name}\n  passes now: remove it from pending.txt"))
                }
                (Err(_), true) => still_pending += 1,
                (Err(e), false) => failed.push(format!("{name}\n  {e}")),
            }
        }
    }
    eprintln!(
        "sql cases: {passed} passed, {still_pending} pending, {} failed",
        failed.len()
    );
    assert!(
        failed.is_empty(),
        "failing SQL cases:\n{}",
        failed.join("\n")
    );
    assert!(passed > 0, "no SQL case ran");
}

/// Every statement of the suite, cut short and with a word dropped: each
/// variant is either accepted or refused with an error, and never panics
/// the engine, which keeps serving the next statement.
#[test]
fn damaged_statements_get_errors_not_panics() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = Broker::open(dir.path(), BrokerConfig::default()).expect("broker");
    let local = broker.local();
    let engine = Engine::start(
        Arc::new(LocalCluster::new(local.clone())),
        EngineConfig::default(),
    )
    .expect("engine");
    let mut files: Vec<PathBuf> = std::fs::read_dir(cases_dir())
        .expect("cases dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    let mut variants = 0;
    let mut refused = 0;
    for f in files {
        let doc: Json =
            serde_json::from_str(&std::fs::read_to_string(&f).expect("read")).expect("JSON");
        for case in doc["tests"].as_array().expect("tests") {
            for r in case["inputs"].as_array().into_iter().flatten() {
                if let Some(t) = r["topic"].as_str() {
                    local.create_topic(t, 1, BTreeMap::new()).expect("topic");
                }
            }
            for s in case["statements"].as_array().into_iter().flatten() {
                let text = s.as_str().unwrap_or_default();
                let words: Vec<&str> = text.split_whitespace().collect();
                let mut damaged: Vec<String> = (1..text.len())
                    .step_by(11)
                    .filter(|i| text.is_char_boundary(*i))
                    .map(|i| text[..i].to_string())
                    .collect();
                for skip in (0..words.len()).step_by(3) {
                    let w: Vec<&str> = words
                        .iter()
                        .enumerate()
                        .filter(|(i, _)| *i != skip)
                        .map(|(_, w)| *w)
                        .collect();
                    damaged.push(w.join(" "));
                }
                for d in damaged {
                    variants += 1;
                    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        engine.execute(&d, &BTreeMap::new()).is_err()
                    }));
                    match outcome {
                        Ok(true) => refused += 1,
                        Ok(false) => {}
                        Err(_) => panic!("the engine panicked on {d:?}"),
                    }
                }
            }
            // The next case starts from an empty catalog.
            let _ = engine.execute("TERMINATE ALL;", &BTreeMap::new());
            for name in engine.catalog().sources.keys() {
                let kind = match engine.catalog().sources[name].kind {
                    runnel_sql::ast::SourceKind::Stream => "STREAM",
                    runnel_sql::ast::SourceKind::Table => "TABLE",
                };
                let _ = engine.execute(&format!("DROP {kind} IF EXISTS {name};"), &BTreeMap::new());
            }
        }
    }
    // Still serving.
    assert!(engine.execute("SHOW STREAMS;", &BTreeMap::new()).is_ok());
    eprintln!("{variants} damaged statements, {refused} refused with an error");
    assert!(
        refused > variants / 2,
        "most damaged statements are refused"
    );
    engine.shutdown();
}
