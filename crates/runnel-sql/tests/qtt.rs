//! The data-driven SQL suite: every case of `tests/cases/*.json`
//! (statements in, records in, records and pull-query rows out; see
//! `tests/cases/README.md`) run against the real engine on an in-process
//! broker.
//!
//! `tests/cases/pending.txt` lists cases the engine does not pass yet, one
//! `file.json: case name — reason` per line. A pending case that passes
//! fails the suite, so the list stays true.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may stop at the first surprise

mod common;

use common::*;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use runnel_broker::{Broker, BrokerConfig};
use runnel_embed::LocalCluster;
use runnel_sql::{Engine, EngineConfig};
use serde_json::Value as Json;

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
