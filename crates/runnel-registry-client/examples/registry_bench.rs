//! Schema registry look-ups under many concurrent clients: p50/p99 of
//! (a) schemas by id over HTTP (no client cache), (b) look-ups by schema
//! under a subject (`POST /subjects/{s}`), and (c) the client's cached
//! `schema_by_id` once warm, each from `--clients` threads at once.
//!
//!     cargo run --release -p runnel-registry-client --example registry_bench -- [--clients 100] [--requests 200] [--url URL]
//!
//! Without `--url` it starts Runnel's registry on an in-process broker.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark stops at the first surprise

use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use runnel_registry_client::RegistryClient;
use runnel_schema::SchemaType;

const SCHEMAS: usize = 50;

fn schema(i: usize) -> String {
    format!(
        r#"{{"type":"record","name":"R{i}","namespace":"bench","fields":[{{"name":"id","type":"long"}},{{"name":"f{i}","type":"string"}}]}}"#
    )
}

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map_or(default, |v| v.parse().expect("a number"))
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Runs `op(thread, i)` `requests` times on each of `clients` threads at
/// once; prints one JSON line with throughput and latency percentiles.
fn run(name: &str, clients: usize, requests: usize, op: Arc<dyn Fn(usize, usize) + Send + Sync>) {
    let barrier = Arc::new(Barrier::new(clients + 1));
    let threads: Vec<_> = (0..clients)
        .map(|t| {
            let barrier = barrier.clone();
            let op = op.clone();
            std::thread::spawn(move || {
                barrier.wait();
                let mut lat = Vec::with_capacity(requests);
                for i in 0..requests {
                    let start = Instant::now();
                    op(t, i);
                    lat.push(start.elapsed());
                }
                lat
            })
        })
        .collect();
    barrier.wait();
    let start = Instant::now();
    let mut all: Vec<Duration> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    let elapsed = start.elapsed();
    all.sort();
    println!(
        "{{\"test\":\"{name}\",\"clients\":{clients},\"requests\":{},\"per_sec\":{:.0},\"p50_ms\":{:.3},\"p99_ms\":{:.3},\"max_ms\":{:.3}}}",
        all.len(),
        all.len() as f64 / elapsed.as_secs_f64(),
        percentile(&all, 0.50).as_secs_f64() * 1e3,
        percentile(&all, 0.99).as_secs_f64() * 1e3,
        all.last().map_or(0.0, |d| d.as_secs_f64() * 1e3),
    );
}

fn main() {
    let clients = arg("--clients", 100);
    let requests = arg("--requests", 200);
    let args: Vec<String> = std::env::args().collect();
    let local = if args.iter().any(|a| a == "--url") {
        None
    } else {
        Some(runnel_testkit::TestRegistry::start())
    };
    let url = match &local {
        Some(r) => r.url().to_string(),
        None => args[args.iter().position(|a| a == "--url").unwrap() + 1].clone(),
    };
    eprintln!("registry at {url}; registering {SCHEMAS} schemas");
    let setup = RegistryClient::new(&url);
    let ids: Arc<Vec<i32>> = Arc::new(
        (0..SCHEMAS)
            .map(|i| {
                setup
                    .register(
                        &format!("bench-{i}-value"),
                        SchemaType::Avro,
                        &schema(i),
                        &[],
                        false,
                    )
                    .unwrap()
            })
            .collect(),
    );
    let texts: Arc<Vec<String>> = Arc::new((0..SCHEMAS).map(schema).collect());

    // (a) by id, every request over HTTP: a fresh agent per thread, no cache.
    let agents: Arc<Vec<ureq::Agent>> =
        Arc::new((0..clients).map(|_| ureq::Agent::new()).collect());
    {
        let (url, ids, agents) = (url.clone(), ids.clone(), agents.clone());
        run(
            "by_id_http",
            clients,
            requests,
            Arc::new(move |t, i| {
                let id = ids[(t + i) % ids.len()];
                let r = agents[t]
                    .get(&format!("{url}/schemas/ids/{id}"))
                    .call()
                    .unwrap();
                assert_eq!(r.status(), 200);
                let _ = r.into_string().unwrap();
            }),
        );
    }
    // (b) by schema under its subject.
    {
        let (url, texts, agents) = (url.clone(), texts.clone(), agents.clone());
        run(
            "by_schema_http",
            clients,
            requests,
            Arc::new(move |t, i| {
                let n = (t + i) % texts.len();
                let body = serde_json::json!({ "schema": texts[n] }).to_string();
                let r = agents[t]
                    .post(&format!("{url}/subjects/bench-{n}-value"))
                    .set("Content-Type", "application/vnd.schemaregistry.v1+json")
                    .send_string(&body)
                    .unwrap();
                assert_eq!(r.status(), 200);
                let _ = r.into_string().unwrap();
            }),
        );
    }
    // (c) the client's cache, one client per thread (as serializers hold one).
    {
        let clients_v: Arc<Vec<RegistryClient>> =
            Arc::new((0..clients).map(|_| RegistryClient::new(&url)).collect());
        let ids = ids.clone();
        // Warm: each client has fetched every schema once (not timed), as
        // a long-running serializer has.
        for c in clients_v.iter() {
            for id in ids.iter() {
                c.schema_by_id(*id).unwrap();
            }
        }
        run(
            "by_id_cached_client",
            clients,
            requests,
            Arc::new(move |t, i| {
                let id = ids[(t + i) % ids.len()];
                clients_v[t].schema_by_id(id).unwrap();
            }),
        );
    }
}
