//! ksqlDB's own query-validation tests (QTT), run in process: a developer
//! tool, not part of CI. It reads ksqlDB's QTT JSON files at run time from
//! `RUNNEL_QTT_DIR` (they are under the Confluent Community License and are
//! never committed here), translates each case into the form of our own
//! cases (`tests/cases/README.md`) and runs it with the same machinery as
//! `qtt.rs`, judging as ksqlDB's test driver does.
//!
//! ```text
//! RUNNEL_QTT_DIR=/tmp/qtt/ksqldb-functional-tests/src/test/resources/query-validation-tests \
//!   cargo test -p runnel-sql --test qtt_ksql -- --nocapture
//! ```
//! `RUNNEL_QTT_FILES=count.json,avro.json` selects files,
//! `RUNNEL_QTT_CASES=substring` cases by name, and `RUNNEL_QTT_REPORT=path`
//! writes one tab-separated line per case: file, name, pass/fail/skip,
//! reason. Without `RUNNEL_QTT_DIR` the test does nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may stop at the first surprise

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;

use regex::Regex;
use serde_json::{json, Value as Json};

/// Functions that exist only in ksqlDB's test jar: cases calling them
/// cannot run anywhere else.
const TEST_UDFS: &[&str] = &[
    "FIVE_ARG",
    "FOUR_ARG",
    "GENERIC_VAR_ARG",
    "MID_VAR_ARG",
    "MULTI_ARG",
    "OBJ_COL_ARG",
    "VAR_ARG",
    "WHENCONDITION",
    "WHENRESULT",
    "BAD_TEST_UDAF",
    "BAD_TEST_UDTF",
    "TEST_UDAF",
    "TEST_UDTF",
    "THROWING_UDTF",
    "BAD_TEST_UDF",
    "BAD_UDF",
    "TEST_UDF",
];

/// The formats that need a schema registry.
const REGISTRY_FORMATS: &[&str] = &["AVRO", "PROTOBUF", "JSON_SR"];

/// A QTT file: `//` comment lines are allowed.
fn load(path: &std::path::Path) -> Result<Json, String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let text: Vec<&str> = text
        .lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect();
    serde_json::from_str(&text.join("\n")).map_err(|e| e.to_string())
}

/// The concrete cases of one QTT test: its `format` list replaces
/// `{FORMAT}` in the statements, its `config` list `{CONFIG}` in the
/// properties, as ksqlDB's driver does (names get " - FORMAT").
fn expand(test: &Json) -> Vec<(String, Json)> {
    let name = test["name"].as_str().unwrap_or("?").to_string();
    let formats: Vec<Option<String>> = match test["format"].as_array() {
        Some(f) if !f.is_empty() => f.iter().map(|x| x.as_str().map(String::from)).collect(),
        _ => vec![None],
    };
    let configs: Vec<Option<String>> = match test["config"].as_array() {
        Some(c) if !c.is_empty() => c.iter().map(|x| x.as_str().map(String::from)).collect(),
        _ => vec![None],
    };
    let mut out = Vec::new();
    for f in &formats {
        for c in &configs {
            let mut t = test.clone();
            let mut n = name.clone();
            if let Some(f) = f {
                if let Some(ss) = t["statements"].as_array_mut() {
                    for s in ss {
                        if let Some(text) = s.as_str() {
                            *s = Json::String(text.replace("{FORMAT}", f));
                        }
                    }
                }
                n = format!("{n} - {f}");
            }
            if let Some(c) = c {
                if let Some(props) = t["properties"].as_object_mut() {
                    for v in props.values_mut() {
                        if v.as_str() == Some("{CONFIG}") {
                            *v = Json::String(c.clone());
                        }
                    }
                }
                n = format!("{n} - {c}");
            }
            out.push((n, t));
        }
    }
    out
}

fn statements_text(t: &Json) -> String {
    t["statements"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Json::as_str)
        .collect::<Vec<_>>()
        .join("\n")
        .to_ascii_uppercase()
}

/// Whether the case needs a schema registry (the statements name one of
/// its formats), as issue 17 counts them.
fn needs_registry(t: &Json) -> bool {
    let text = statements_text(t);
    REGISTRY_FORMATS.iter().any(|f| {
        Regex::new(&format!(r"FORMAT\s*=\s*'{f}'"))
            .unwrap()
            .is_match(&text)
    })
}

/// Why the case cannot run in process, if it cannot.
fn skip_reason(t: &Json) -> Option<String> {
    if t["enabled"].as_bool() == Some(false) {
        return Some("disabled in ksqlDB's suite (enabled=false)".to_string());
    }
    if let Some(max) = t["versions"]["max"].as_str() {
        return Some(format!("for ksqlDB versions up to {max} only"));
    }
    let text = statements_text(t);
    if TEST_UDFS
        .iter()
        .any(|f| Regex::new(&format!(r"\b{f}\s*\(")).unwrap().is_match(&text))
    {
        return Some("calls a UDF of ksqlDB's test jar".to_string());
    }
    None
}

/// The value of `KEY='v'` in a statement's WITH clause.
fn with_prop(statement: &str, key: &str) -> Option<String> {
    let re = Regex::new(&format!(r"(?is)\b{key}\s*=\s*'([^']*)'")).unwrap();
    re.captures(statement).map(|c| c[1].to_string())
}

/// A QTT schema (JSON for Avro and JSON Schema, text for Protobuf) as a
/// registration of `subject`; referenced schemas first.
fn registrations(
    subject: &str,
    format: &str,
    schema: &Json,
    refs: &Json,
    id: Option<i64>,
) -> Vec<Json> {
    let schema_type = match format.to_ascii_uppercase().as_str() {
        "PROTOBUF" => Some("PROTOBUF"),
        "JSON_SR" | "JSON" => Some("JSON"),
        "AVRO" => None,
        _ => return Vec::new(),
    };
    let mut out = Vec::new();
    let mut references = Vec::new();
    for r in refs.as_array().into_iter().flatten() {
        let Some(name) = r["name"].as_str() else {
            continue;
        };
        let fmt = r["format"].as_str().unwrap_or(format);
        out.extend(registrations(name, fmt, &r["schema"], &Json::Null, None));
        references.push(json!({"name": name, "subject": name, "version": 1}));
    }
    let mut reg = json!({"subject": subject, "schema": schema});
    if let Some(t) = schema_type {
        reg["schemaType"] = json!(t);
    }
    if !references.is_empty() {
        reg["references"] = Json::Array(references);
    }
    if let Some(id) = id {
        reg["id"] = json!(id);
    }
    out.push(reg);
    out
}

/// One QTT case as one of ours.
fn translate(t: &Json) -> Json {
    let statements = t["statements"].clone();
    let mut case = json!({
        "name": t["name"],
        "statements": statements,
        "onlyListedTopics": true,
        "qttCompare": true,
    });
    // Topics: those declared, and those CREATE statements read without
    // making them (ksqlDB's driver creates every topic a source names).
    let mut topics: BTreeMap<String, i64> = BTreeMap::new();
    let create =
        Regex::new(r"^\s*CREATE\s+(OR\s+REPLACE\s+)?(SOURCE\s+)?(STREAM|TABLE)\b").unwrap();
    let as_select = Regex::new(r"\bAS\s+SELECT\b").unwrap();
    let partitions = Regex::new(r"(?i)\bPARTITIONS\s*=\s*'?(\d+)").unwrap();
    for s in t["statements"].as_array().into_iter().flatten() {
        let Some(s) = s.as_str() else { continue };
        let upper = s.to_ascii_uppercase();
        let is_create = create.is_match(&upper);
        if !is_create || as_select.is_match(&upper) {
            continue;
        }
        if let Some(c) = partitions.captures(s) {
            // ksqlDB's test driver makes such a topic with the statement's
            // partition count before producing to it.
            if let (Some(topic), Ok(n)) = (with_prop(s, "KAFKA_TOPIC"), c[1].parse::<i64>()) {
                topics.entry(topic).or_insert(n);
            }
            continue;
        }
        if let Some(topic) = with_prop(s, "KAFKA_TOPIC") {
            topics.entry(topic).or_insert(1);
        }
    }
    let mut schemas = Vec::new();
    for tp in t["topics"].as_array().into_iter().flatten() {
        let Some(name) = tp["name"].as_str() else {
            continue;
        };
        // A declared partition count holds for topics no input is
        // produced to; inputs' topics keep one partition unless a CREATE
        // statement sizes them (the inputs are then read in input order).
        let input = t["inputs"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|i| i["topic"].as_str() == Some(name));
        match tp["partitions"].as_i64() {
            Some(n) if !input => {
                topics.insert(name.to_string(), n);
            }
            _ => {
                topics.entry(name.to_string()).or_insert(1);
            }
        }
        let fallback = tp["format"].as_str().unwrap_or("");
        for (part, schema, format, refs, id) in [
            (
                "value",
                "valueSchema",
                "valueFormat",
                "valueSchemaReferences",
                "valueSchemaId",
            ),
            (
                "key",
                "keySchema",
                "keyFormat",
                "keySchemaReferences",
                "keySchemaId",
            ),
        ] {
            let s = if tp[schema].is_null() && part == "value" {
                &tp["schema"]
            } else {
                &tp[schema]
            };
            if s.is_null() {
                continue;
            }
            let f = tp[format].as_str().unwrap_or(fallback);
            schemas.extend(registrations(
                &format!("{name}-{part}"),
                f,
                s,
                &tp[refs],
                tp[id].as_i64(),
            ));
        }
    }
    case["topics"] = Json::Array(
        topics
            .iter()
            .map(|(n, p)| json!({"name": n, "partitions": p}))
            .collect(),
    );
    let text = statements_text(t);
    let props_text = t["properties"].to_string().to_ascii_uppercase();
    if !schemas.is_empty()
        || REGISTRY_FORMATS
            .iter()
            .any(|f| text.contains(f) || props_text.contains(f))
    {
        case["registry"] = json!(true);
        case["schemas"] = Json::Array(schemas);
    }
    if let Some(p) = t.get("properties") {
        case["properties"] = p.clone();
    }
    let inputs = t["inputs"].as_array().cloned().unwrap_or_default();
    let no_inputs = inputs.is_empty();
    case["inputs"] = Json::Array(inputs);
    // Outputs: a missing key is a null key; missing headers are none;
    // with no inputs (INSERT VALUES) a timestamp 0 is not checked.
    let outputs: Vec<Json> = t["outputs"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|o| {
            let mut o = o.clone();
            if o.get("key").is_none() {
                o["key"] = Json::Null;
            }
            if o.get("headers").is_none() {
                o["headers"] = json!([]);
            }
            if no_inputs && o["timestamp"].as_i64() == Some(0) {
                if let Some(m) = o.as_object_mut() {
                    m.remove("timestamp");
                }
            }
            o
        })
        .collect();
    case["outputs"] = Json::Array(outputs);
    if let Some(e) = t.get("expectedException") {
        case["expectedError"] = json!({
            "message": e["message"].as_str().unwrap_or(""),
            "caseSensitive": true,
        });
    }
    // Post-conditions.
    let post = &t["post"];
    if let Some(sources) = post["sources"].as_array() {
        case["sources"] = Json::Array(sources.clone());
    }
    if let Some(b) = post["topics"]["blacklist"].as_str() {
        case["topicsAbsent"] = json!([b]);
    }
    let mut present = Vec::new();
    let mut subjects = Vec::new();
    for tp in post["topics"]["topics"].as_array().into_iter().flatten() {
        let Some(name) = tp["name"].as_str() else {
            continue;
        };
        // ksqlDB's internal topics (`_confluent-ksql-…`) are named after
        // its own topology: Runnel's differ, so they are not checked.
        if name.starts_with("_confluent-ksql-") {
            continue;
        }
        present.push(json!(name));
        for (part, schema) in [("value", "valueSchema"), ("key", "keySchema")] {
            if let Some(s) = tp.get(schema).filter(|s| !s.is_null()) {
                // Schema text parsed as JSON where it is JSON (Avro, JSON
                // Schema); Protobuf's text compared as text.
                subjects.push(json!({"subject": format!("{name}-{part}"), "schema": s}));
            }
        }
    }
    if !present.is_empty() {
        case["topicsPresent"] = Json::Array(present);
    }
    if !subjects.is_empty() && case.get("registry").is_some() {
        case["subjects"] = Json::Array(subjects);
    }
    case
}

/// A failure's class, for the summary: the start of its message with
/// names and numbers left out.
fn failure_class(reason: &str) -> String {
    let first = reason.lines().next().unwrap_or("");
    let classes: &[(&str, &str)] = &[
        ("expected an error", "refusal expected, statement accepted"),
        ("error does not mention", "refused, with another message"),
        ("needs a schema registry", "format needs a schema registry"),
        ("duplicate column", "duplicate column name"),
        ("records, got", "wrong number of output records"),
        ("differs", "wrong output record"),
        ("cannot decode", "output cannot be decoded"),
        ("post: no source", "post: source missing"),
        ("post:", "post: source or topic differs"),
        ("subject", "registered schema differs"),
        ("did not become idle", "queries did not become idle"),
        ("no stream or table writes", "output topic has no source"),
        ("panicked", "panicked"),
    ];
    for (needle, class) in classes {
        if first.contains(needle) {
            if *class == "refused, with another message" {
                return class.to_string();
            }
            return class.to_string();
        }
    }
    if let Some(rest) = first.split_once("failed: ") {
        // Refused: the error's first words.
        let words: Vec<&str> = rest.1.split_whitespace().take(5).collect();
        return format!("statement refused: {}", words.join(" "));
    }
    let words: Vec<&str> = first.split_whitespace().take(6).collect();
    words.join(" ")
}

#[derive(Default)]
struct Tally {
    passed: usize,
    failed: usize,
    skipped: usize,
}

#[test]
fn ksql_qtt() {
    let Ok(dir) = std::env::var("RUNNEL_QTT_DIR") else {
        eprintln!("RUNNEL_QTT_DIR is not set: ksqlDB's QTT cases not run");
        return;
    };
    let only_files: Option<Vec<String>> = std::env::var("RUNNEL_QTT_FILES")
        .ok()
        .map(|f| f.split(',').map(|s| s.trim().to_string()).collect());
    let only_cases = std::env::var("RUNNEL_QTT_CASES").ok();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("RUNNEL_QTT_DIR is a directory")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .filter(|p| {
            only_files.as_ref().is_none_or(|keep| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| keep.iter().any(|k| k == n))
            })
        })
        .collect();
    files.sort();
    let mut report = Vec::new();
    // Per group ("plain", "registry"): tallies; failure classes; skips.
    let mut groups: BTreeMap<&str, Tally> = BTreeMap::new();
    let mut classes: BTreeMap<(&str, String), usize> = BTreeMap::new();
    let mut skips: BTreeMap<String, usize> = BTreeMap::new();
    let mut per_file = Vec::new();
    let started = std::time::Instant::now();
    // Panics of a case are reported as its failure, not printed.
    std::panic::set_hook(Box::new(|_| {}));
    for f in &files {
        let fname = f
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();
        let doc = match load(f) {
            Ok(d) => d,
            Err(e) => {
                eprintln!("{fname}: cannot read: {e}");
                continue;
            }
        };
        let mut tally = Tally::default();
        for test in doc["tests"].as_array().into_iter().flatten() {
            for (name, t) in expand(test) {
                if only_cases
                    .as_ref()
                    .is_some_and(|c| !name.contains(c.as_str()))
                {
                    continue;
                }
                let group = if needs_registry(&t) {
                    "registry"
                } else {
                    "plain"
                };
                let g = groups.entry(group).or_default();
                if let Some(why) = skip_reason(&t) {
                    tally.skipped += 1;
                    g.skipped += 1;
                    *skips.entry(why.clone()).or_default() += 1;
                    report.push(format!("{fname}\t{name}\tskip\t{why}"));
                    continue;
                }
                let case = translate(&t);
                let outcome = std::panic::catch_unwind(|| common::run_case(&case))
                    .unwrap_or_else(|_| Err("panicked".to_string()));
                match outcome {
                    Ok(()) => {
                        tally.passed += 1;
                        g.passed += 1;
                        report.push(format!("{fname}\t{name}\tpass\t"));
                    }
                    Err(e) => {
                        tally.failed += 1;
                        g.failed += 1;
                        let class = failure_class(&e);
                        *classes.entry((group, class.clone())).or_default() += 1;
                        let brief: String = e.chars().take(600).collect();
                        eprintln!("FAIL {fname} :: {name}\n  {}", brief.replace('\n', "\n  "));
                        let one_line: String =
                            e.replace(['\n', '\t'], " ").chars().take(2000).collect();
                        report.push(format!("{fname}\t{name}\tfail\t{class}: {one_line}"));
                    }
                }
            }
        }
        eprintln!(
            "{fname}: {} passed, {} failed, {} skipped ({:.0}s)",
            tally.passed,
            tally.failed,
            tally.skipped,
            started.elapsed().as_secs_f64()
        );
        per_file.push((fname, tally));
    }
    let _ = std::panic::take_hook();
    eprintln!("\n== per file ==");
    for (f, t) in &per_file {
        eprintln!(
            "{f}: {} passed, {} failed, {} skipped",
            t.passed, t.failed, t.skipped
        );
    }
    eprintln!("\n== skipped, by reason ==");
    for (why, n) in &skips {
        eprintln!("{n:5}  {why}");
    }
    for (group, title) in [
        ("plain", "no schema registry"),
        ("registry", "schema registry (AVRO, PROTOBUF, JSON_SR)"),
    ] {
        let Some(t) = groups.get(group) else { continue };
        eprintln!(
            "\n== {title}: {} of {} passed ({} failed, {} skipped) ==",
            t.passed,
            t.passed + t.failed,
            t.failed,
            t.skipped
        );
        let mut by_count: Vec<(&String, &usize)> = classes
            .iter()
            .filter(|((g, _), _)| *g == group)
            .map(|((_, c), n)| (c, n))
            .collect();
        by_count.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        for (c, n) in by_count.iter().take(40) {
            eprintln!("{n:5}  {c}");
        }
    }
    let all = groups.values().fold(Tally::default(), |a, t| Tally {
        passed: a.passed + t.passed,
        failed: a.failed + t.failed,
        skipped: a.skipped + t.skipped,
    });
    eprintln!(
        "\nksqlDB QTT: {} passed, {} failed, {} skipped in {:.0}s",
        all.passed,
        all.failed,
        all.skipped,
        started.elapsed().as_secs_f64()
    );
    if let Ok(path) = std::env::var("RUNNEL_QTT_REPORT") {
        let mut out = std::fs::File::create(&path).expect("report file");
        for l in &report {
            writeln!(out, "{l}").expect("write report");
        }
        eprintln!("report: {path}");
    }
}
