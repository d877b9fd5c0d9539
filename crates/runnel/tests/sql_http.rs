//! The SQL API of the real `runnel serve` binary: statements over
//! `POST /ksql` on records a real Kafka client produced, results read back
//! with a Kafka consumer, pull and push queries over `/query-stream`, the
//! `runnel sql` shell, and the catalog surviving a restart.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may stop at the first surprise

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::Command;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::Server;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};
use serde_json::{json, Value as Json};

fn post(url: &str, path: &str, body: &Json) -> (u16, Json) {
    match ureq::post(&format!("{url}{path}")).send_string(&body.to_string()) {
        Ok(r) => (r.status(), r.into_json().expect("a JSON answer")),
        Err(ureq::Error::Status(code, r)) => (code, r.into_json().expect("a JSON error")),
        Err(e) => panic!("{path}: {e}"),
    }
}

fn ksql(url: &str, text: &str) -> Json {
    let (code, body) = post(url, "/ksql", &json!({ "ksql": text }));
    assert_eq!(code, 200, "{text}: {body}");
    body
}

/// A pull query's rows over `/query-stream` (the header line dropped), or
/// its error status and body.
fn try_pull(url: &str, sql: &str) -> Result<Vec<Json>, String> {
    let r = match ureq::post(&format!("{url}/query-stream"))
        .send_string(&json!({ "sql": sql }).to_string())
    {
        Ok(r) => r,
        Err(ureq::Error::Status(code, r)) => {
            return Err(format!("{code} {}", r.into_string().unwrap_or_default()))
        }
        Err(e) => panic!("{sql}: {e}"),
    };
    let lines: Vec<Json> = BufReader::new(r.into_reader())
        .lines()
        .map(|l| serde_json::from_str(&l.unwrap()).unwrap())
        .collect();
    assert!(lines[0].get("columnNames").is_some(), "{lines:?}");
    Ok(lines[1..].to_vec())
}

/// Retries a pull query until it returns `want` (tables fill
/// asynchronously; on a cluster, a table's partitions are hosted once the
/// query's consumer group has assigned them).
fn pull_until(url: &str, sql: &str, want: &[Json]) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let got = try_pull(url, sql);
        if got.as_deref() == Ok(want) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{sql}: got {got:?}, want {want:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn producer(server: &Server) -> BaseProducer {
    ClientConfig::new()
        .set("bootstrap.servers", server.bootstrap())
        .set("linger.ms", "1")
        .set("message.timeout.ms", "20000")
        .create()
        .expect("producer")
}

fn produce(p: &BaseProducer, topic: &str, records: &[(&str, Json)]) {
    for (k, v) in records {
        let value = v.to_string();
        p.send(BaseRecord::to(topic).key(*k).payload(&value))
            .map_err(|(e, _)| e)
            .expect("send");
    }
    p.flush(Duration::from_secs(20)).expect("flush");
}

/// The latest value per key of `topic`'s partition 0, once `done` holds.
fn read_table(
    server: &Server,
    topic: &str,
    done: impl Fn(&BTreeMap<String, Json>) -> bool,
) -> BTreeMap<String, Json> {
    read_table_all(server, topic, 1, done)
}

/// Produces three clicks to `broker` with a real client, counts them per
/// key with a CTAS sent to the SQL API at `url`, and checks the counts in
/// the table's topic (read with a Kafka consumer) and by pull query.
/// Returns the producer.
fn count_clicks(broker: &Server, url: &str) -> BaseProducer {
    let p = producer(broker);
    produce(
        &p,
        "clicks",
        &[
            ("a", json!({"V": 1})),
            ("b", json!({"V": 2})),
            ("a", json!({"V": 3})),
        ],
    );
    let out = ksql(
        url,
        "CREATE STREAM S (K STRING KEY, V INT) WITH (KAFKA_TOPIC='clicks', VALUE_FORMAT='JSON');\n\
         CREATE TABLE T AS SELECT K, COUNT(*) AS N FROM S GROUP BY K;",
    );
    assert_eq!(out.as_array().unwrap().len(), 2, "{out}");
    let counts = read_table(broker, "T", |t| {
        t.get("a") == Some(&json!({"N": 2})) && t.get("b") == Some(&json!({"N": 1}))
    });
    assert_eq!(counts.len(), 2);
    pull_until(url, "SELECT * FROM T WHERE K='a';", &[json!(["a", 2])]);
    p
}

fn runnel_sql(server: &Server, statements: &str) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_runnel"))
        .args(["sql", "--server", &server.sql_url(), "-e", statements])
        .env("RUNNEL_LOG", "warn")
        .output()
        .expect("run runnel sql")
}

#[test]
fn statements_over_kafka_records_pull_push_and_the_shell() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with_sql(&dir.path().join("data"), &[]);
    let p = count_clicks(&server, &server.sql_url());

    // A push query sees a record produced after it started. It reads from
    // the earliest offset: the engine pins a "latest" start only after the
    // query has answered, so a record produced right after the header could
    // be missed (reported as an engine change).
    let r = ureq::post(&format!("{}/query-stream", server.sql_url()))
        .send_string(
            &json!({"sql": "SELECT K, V FROM S EMIT CHANGES;",
                    "properties": {"auto.offset.reset": "earliest"}})
            .to_string(),
        )
        .unwrap();
    let (tx, rx) = mpsc::channel::<Json>();
    std::thread::spawn(move || {
        for l in BufReader::new(r.into_reader()).lines() {
            let Ok(l) = l else { return };
            if tx.send(serde_json::from_str(&l).unwrap()).is_err() {
                return;
            }
        }
    });
    let header = rx.recv_timeout(Duration::from_secs(20)).unwrap();
    assert_eq!(header["columnNames"], json!(["K", "V"]));
    for want in [json!(["a", 1]), json!(["b", 2]), json!(["a", 3])] {
        assert_eq!(rx.recv_timeout(Duration::from_secs(20)).unwrap(), want);
    }
    produce(&p, "clicks", &[("c", json!({"V": 7}))]);
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(20)).unwrap(),
        json!(["c", 7])
    );
    let (code, body) = post(
        &server.sql_url(),
        "/close-query",
        &json!({"queryId": header["queryId"]}),
    );
    assert_eq!(code, 200, "{body}");
    // Closed: the response ends.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Ok(row) => assert!(row.is_array(), "{row}"),
            Err(mpsc::RecvTimeoutError::Timeout) => {
                assert!(Instant::now() < deadline, "the push query did not end")
            }
        }
    }

    // The shell prints tables.
    let out = runnel_sql(&server, "SELECT * FROM T WHERE K='b'; SHOW TABLES;");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("| K | N |"), "{stdout}");
    assert!(stdout.contains("| b | 1 |"), "{stdout}");
    assert!(stdout.contains("| Table Name |"), "{stdout}");
    assert!(stdout.contains("| T          | T           |"), "{stdout}");

    // The first error stops it, with its position, and exit code 1.
    let out = runnel_sql(&server, "SHOW STREAMS; SELECT * FROM NOPE; SHOW TABLES;");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.starts_with("Line: 1, Col: 15:"), "{stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("| S           | clicks"), "{stdout}");
    assert!(!stdout.contains("Table Name"), "{stdout}");
}

#[test]
fn the_catalog_and_tables_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start_with_sql(&dir.path().join("data"), &[]);
    ksql(&server.sql_url(),
        "CREATE STREAM S (K STRING KEY, V INT) WITH (KAFKA_TOPIC='s', VALUE_FORMAT='JSON', PARTITIONS=1);\n\
         CREATE TABLE T AS SELECT K, COUNT(*) AS N FROM S GROUP BY K;\n\
         INSERT INTO S (K, V) VALUES ('a', 1);\n\
         INSERT INTO S (K, V) VALUES ('a', 2);",
    );
    pull_until(
        &server.sql_url(),
        "SELECT * FROM T WHERE K='a';",
        &[json!(["a", 2])],
    );

    assert_eq!(server.terminate(), Some(0), "SIGTERM exits cleanly");
    server.restart();

    let tables = ksql(&server.sql_url(), "SHOW TABLES;");
    let names: Vec<&Json> = tables[0]["tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| &t["name"])
        .collect();
    assert_eq!(names, [&json!("T")], "{tables}");
    pull_until(
        &server.sql_url(),
        "SELECT * FROM T WHERE K='a';",
        &[json!(["a", 2])],
    );
    // The replayed query runs: new input still counts.
    ksql(&server.sql_url(), "INSERT INTO S (K, V) VALUES ('a', 3);");
    pull_until(
        &server.sql_url(),
        "SELECT * FROM T WHERE K='a';",
        &[json!(["a", 3])],
    );
}

/// `runnel serve --bootstrap-servers`: only the SQL engine and its API, on
/// an external Kafka-compatible cluster.
struct SqlOnly {
    child: std::process::Child,
    url: String,
}

impl SqlOnly {
    fn start(bootstrap: &str, log: &std::path::Path) -> SqlOnly {
        let addr: std::net::SocketAddr = format!("127.0.0.1:{}", common::free_port())
            .parse()
            .unwrap();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("open the SQL server's log");
        let child = Command::new(env!("CARGO_BIN_EXE_runnel"))
            .args(["serve", "--bootstrap-servers", bootstrap, "--sql-listen"])
            .arg(addr.to_string())
            .env("RUNNEL_LOG", "info")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start runnel serve --bootstrap-servers");
        let deadline = Instant::now() + Duration::from_secs(60);
        while std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            assert!(Instant::now() < deadline, "the SQL API did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        SqlOnly {
            child,
            url: format!("http://{addr}"),
        }
    }

    /// SIGTERMs the server and returns its exit code: its queries leave
    /// their consumer groups, so a successor gets their partitions at once
    /// (after a SIGKILL, only once the group's session timeout expires).
    fn terminate(mut self) -> Option<i32> {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

impl Drop for SqlOnly {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The names `SHOW TOPICS` lists.
fn topic_names(url: &str) -> Vec<String> {
    let out = ksql(url, "SHOW TOPICS;");
    out[0]["topics"]
        .as_array()
        .unwrap_or_else(|| panic!("{out}"))
        .iter()
        .filter_map(|t| t["name"].as_str().map(str::to_string))
        .collect()
}

#[test]
fn the_sql_engine_runs_on_an_external_cluster() {
    let dir = tempfile::tempdir().unwrap();
    // The "external" cluster: a broker without SQL, reached over TCP only.
    let broker = Server::start(&dir.path().join("cluster"), &[]);
    let log = dir.path().join("sql.log");
    let sql = SqlOnly::start(&broker.bootstrap(), &log);
    // Results land in the cluster, where any Kafka client reads them.
    count_clicks(&broker, &sql.url);
    let topics = topic_names(&sql.url);
    assert!(
        topics.iter().any(|t| t == "clicks") && topics.iter().any(|t| t == "T"),
        "{topics:?}"
    );

    // Statements and state live in the cluster: a new SQL server (the old
    // one stopped) replays the catalog and restores the table from its
    // changelog, then keeps counting.
    assert_eq!(sql.terminate(), Some(0), "SIGTERM exits cleanly");
    let sql = SqlOnly::start(&broker.bootstrap(), &log);
    pull_until(&sql.url, "SELECT * FROM T WHERE K='a';", &[json!(["a", 2])]);
    ksql(&sql.url, "INSERT INTO S (K, V) VALUES ('a', 4);");
    pull_until(&sql.url, "SELECT * FROM T WHERE K='a';", &[json!(["a", 3])]);

    // DROP … DELETE TOPIC deletes the table's topic on the cluster.
    ksql(&sql.url, "DROP TABLE T DELETE TOPIC;");
    let deadline = Instant::now() + Duration::from_secs(30);
    while topic_names(&sql.url).iter().any(|t| t == "T") {
        assert!(Instant::now() < deadline, "topic T was not deleted");
        std::thread::sleep(Duration::from_millis(100));
    }
    // A bad statement is still a clean error.
    let (code, body) = post(&sql.url, "/ksql", &json!({"ksql": "SELECT * FROM NOPE;"}));
    assert_eq!(code, 400, "{body}");
}

/// The latest value per key of every partition of `topic`, once `done`
/// holds.
fn read_table_all(
    server: &Server,
    topic: &str,
    partitions: i32,
    done: impl Fn(&BTreeMap<String, Json>) -> bool,
) -> BTreeMap<String, Json> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", server.bootstrap())
        .set("group.id", "sql-http-test")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .unwrap();
    }
    c.assign(&tpl).unwrap();
    let mut table = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done(&table) {
        assert!(Instant::now() < deadline, "{topic} holds {table:?}");
        if let Some(Ok(m)) = c.poll(Duration::from_millis(200)) {
            let key = String::from_utf8_lossy(m.key().unwrap_or_default()).to_string();
            let value: Json = m
                .payload()
                .map(|p| serde_json::from_slice(p).unwrap())
                .unwrap_or(Json::Null);
            table.insert(key, value);
        }
    }
    table
}

/// Members of consumer group `group`.
fn group_members(server: &Server, group: &str) -> usize {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", server.bootstrap())
        .create()
        .expect("consumer");
    let groups = c
        .fetch_group_list(Some(group), Duration::from_secs(10))
        .expect("group list");
    groups
        .groups()
        .iter()
        .find(|g| g.name() == group)
        .map_or(0, |g| g.members().len())
}

#[test]
fn sql_servers_on_one_cluster_share_statements_query_partitions_and_pull_queries() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Server::start(&dir.path().join("cluster"), &[]);
    let a = SqlOnly::start(&broker.bootstrap(), &dir.path().join("a.log"));
    let b = SqlOnly::start(&broker.bootstrap(), &dir.path().join("b.log"));
    ksql(
        &a.url,
        "CREATE STREAM S (K STRING KEY, V INT) WITH (KAFKA_TOPIC='clicks', VALUE_FORMAT='JSON', PARTITIONS=2);\n\
         CREATE TABLE T AS SELECT K, COUNT(*) AS N FROM S GROUP BY K;",
    );
    // B runs what A recorded, with the same query id (so the same group).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let queries = ksql(&b.url, "SHOW QUERIES;");
        let ids: Vec<&Json> = queries[0]["queries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|q| &q["id"])
            .collect();
        if ids == [&json!("CTAS_T_1")] {
            break;
        }
        assert!(Instant::now() < deadline, "B runs {ids:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
    // Both servers are members of the query's group, each with a partition.
    let deadline = Instant::now() + Duration::from_secs(30);
    while group_members(&broker, "runnel_query_CTAS_T_1") != 2 {
        assert!(
            Instant::now() < deadline,
            "the query's group never had 2 members"
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    let keys = ["a", "b", "c", "d", "e", "f", "g", "h"];
    let p = producer(&broker);
    let mut records = Vec::new();
    for (i, k) in keys.iter().enumerate() {
        for v in 0..=i % 3 {
            records.push((*k, json!({ "V": v })));
        }
    }
    produce(&p, "clicks", &records);
    let want: BTreeMap<String, Json> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| (k.to_string(), json!({ "N": i % 3 + 1 })))
        .collect();
    let got = read_table_all(&broker, "T", 2, |t| *t == want);
    assert_eq!(got, want);

    // Each server answers pull queries for every key, asking the other for
    // the partition it hosts; a scan gathers both halves.
    for url in [&a.url, &b.url] {
        for (i, k) in keys.iter().enumerate() {
            pull_until(
                url,
                &format!("SELECT * FROM T WHERE K='{k}';"),
                &[json!([k, i % 3 + 1])],
            );
        }
        let mut all = try_pull(url, "SELECT * FROM T;").expect("a scan");
        all.sort_by_key(|r| r[0].as_str().map(str::to_string));
        let want_rows: Vec<Json> = keys
            .iter()
            .enumerate()
            .map(|(i, k)| json!([k, i % 3 + 1]))
            .collect();
        assert_eq!(all, want_rows, "{url}");
        let limited = try_pull(url, "SELECT * FROM T LIMIT 3;").expect("a scan");
        assert_eq!(limited.len(), 3, "{limited:?}");
    }

    // A stops: B takes over its partition, restores its part of the table
    // from the changelog and answers for every key.
    assert_eq!(a.terminate(), Some(0));
    for (i, k) in keys.iter().enumerate() {
        pull_until(
            &b.url,
            &format!("SELECT * FROM T WHERE K='{k}';"),
            &[json!([k, i % 3 + 1])],
        );
    }
}
