//! The API against the real engine on an in-process broker, over HTTP.

use std::io::{BufRead, BufReader, Read};
use std::sync::Arc;
use std::time::Duration;

use runnel_broker::{Broker, BrokerConfig};
use runnel_embed::LocalCluster;
use runnel_sql::{Engine, EngineConfig};
use serde_json::{json, Value as Json};

struct Srv {
    base: String,
    engine: Engine,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

impl Srv {
    fn start() -> Srv {
        let dir = tempfile::tempdir().unwrap();
        let mut config = BrokerConfig::default();
        config.group.initial_rebalance_delay = Duration::ZERO;
        let broker = Broker::open(dir.path(), config).unwrap();
        let engine = Engine::start(
            Arc::new(LocalCluster::new(broker.local())),
            EngineConfig::default(),
        )
        .unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let e = engine.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let l = tokio::net::TcpListener::from_std(listener).unwrap();
                crate::serve(e, l, async {
                    let _ = rx.await;
                })
                .await
                .unwrap();
            });
        });
        Srv {
            base,
            engine,
            stop: Some(tx),
            thread: Some(thread),
            _dir: dir,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// POSTs a body; the status and the body as JSON (errors included).
    fn post(&self, path: &str, body: &str) -> (u16, Json) {
        match ureq::post(&self.url(path))
            .set("Content-Type", "application/json")
            .send_string(body)
        {
            Ok(r) => (r.status(), r.into_json().unwrap()),
            Err(ureq::Error::Status(code, r)) => (code, r.into_json().unwrap()),
            Err(e) => panic!("{path}: {e}"),
        }
    }

    fn get(&self, path: &str) -> (u16, Json) {
        match ureq::get(&self.url(path)).call() {
            Ok(r) => (r.status(), r.into_json().unwrap()),
            Err(ureq::Error::Status(code, r)) => (code, r.into_json().unwrap()),
            Err(e) => panic!("{path}: {e}"),
        }
    }

    fn ksql(&self, text: &str) -> Json {
        let (code, body) = self.post("/ksql", &json!({"ksql": text}).to_string());
        assert_eq!(code, 200, "{text}: {body}");
        body
    }

    /// Lines of a /query-stream response (delimited), read as they come.
    fn query_stream(&self, sql: &str) -> impl Iterator<Item = Json> {
        self.query_stream_with(sql, json!({}))
    }

    fn query_stream_with(&self, sql: &str, properties: Json) -> impl Iterator<Item = Json> {
        // A row that never comes fails the test instead of hanging it.
        let r = ureq::post(&self.url("/query-stream"))
            .timeout(Duration::from_secs(30))
            .set("Accept", crate::query::DELIMITED)
            .send_string(&json!({"sql": sql, "properties": properties}).to_string())
            .unwrap();
        assert_eq!(r.header("content-type"), Some(crate::query::DELIMITED));
        BufReader::new(r.into_reader())
            .lines()
            .map(|l| serde_json::from_str(&l.unwrap()).unwrap())
    }
}

impl Drop for Srv {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.engine.shutdown();
    }
}

const CREATE_S: &str = "CREATE STREAM S (K STRING KEY, V INT) WITH (KAFKA_TOPIC='s', VALUE_FORMAT='JSON', PARTITIONS=1);";

#[test]
fn info_healthcheck_and_unknown_routes() {
    let s = Srv::start();
    let (code, info) = s.get("/info");
    assert_eq!(code, 200);
    assert_eq!(
        info["KsqlServerInfo"]["version"],
        json!(env!("CARGO_PKG_VERSION"))
    );
    assert_eq!(info["KsqlServerInfo"]["serverStatus"], json!("RUNNING"));
    let (code, health) = s.get("/healthcheck");
    assert_eq!(code, 200);
    assert_eq!(health["isHealthy"], json!(true));
    assert_eq!(health["details"]["kafka"]["isHealthy"], json!(true));
    let (code, body) = s.get("/nope");
    assert_eq!(code, 404);
    assert_eq!(body["error_code"], json!(crate::NOT_FOUND));
    // A known path with the wrong method: ksqlDB's 405 error body, not an
    // empty one.
    let (code, body) = s.get("/ksql");
    assert_eq!(code, 405);
    assert_eq!(body["@type"], json!("generic_error"));
    assert_eq!(body["error_code"], json!(crate::METHOD_NOT_ALLOWED));
    let (code, body) = s.post("/info", "{}");
    assert_eq!(
        (code, body["error_code"].clone()),
        (405, json!(crate::METHOD_NOT_ALLOWED))
    );
}

#[test]
fn malformed_bodies_are_400_and_the_server_keeps_serving() {
    let s = Srv::start();
    for path in ["/ksql", "/query", "/query-stream", "/close-query"] {
        let (code, body) = s.post(path, "{not json");
        assert_eq!(code, 400, "{path}");
        assert_eq!(body["@type"], json!("generic_error"), "{path}");
        assert_eq!(body["error_code"], json!(crate::BAD_REQUEST), "{path}");
        assert!(
            body["message"]
                .as_str()
                .unwrap()
                .contains("Invalid request"),
            "{path}: {body}"
        );
    }
    // Well-formed JSON of the wrong shape.
    let (code, _) = s.post("/ksql", r#"{"sql": "SHOW STREAMS;"}"#);
    assert_eq!(code, 400);
    let (code, body) = s.post("/inserts-stream", "[1, 2]\n");
    assert_eq!(code, 400, "{body}");
    let (code, body) = s.post("/inserts-stream", "");
    assert_eq!(code, 400, "{body}");
    let (code, body) = s.post("/close-query", r#"{"queryId": "transient_999"}"#);
    assert_eq!(code, 400, "{body}");
    assert_eq!(s.get("/info").0, 200);
}

#[test]
fn statement_errors_carry_the_position_and_what_ran_before() {
    let s = Srv::start();
    let (code, body) = s.post(
        "/ksql",
        &json!({"ksql": format!("{CREATE_S}\nSELEC * FROM S;")}).to_string(),
    );
    assert_eq!(code, 400, "{body}");
    assert_eq!(body["@type"], json!("statement_error"));
    assert_eq!(body["error_code"], json!(40001));
    let msg = body["message"].as_str().unwrap();
    assert!(msg.starts_with("line 2:1:"), "{msg}");
    // A parse error stops the whole request before anything runs, and
    // names the statement it is in.
    assert_eq!(body["entities"], json!([]));
    assert_eq!(body["statementText"], json!("SELEC * FROM S;"));

    s.ksql(CREATE_S);
    let (code, body) = s.post(
        "/ksql",
        &json!({"ksql": "SHOW STREAMS;\nDESCRIBE NOPE;"}).to_string(),
    );
    assert_eq!(code, 400, "{body}");
    assert_eq!(body["statementText"], json!("DESCRIBE NOPE;"));
    assert_eq!(body["entities"].as_array().unwrap().len(), 1);
    assert_eq!(body["entities"][0]["@type"], json!("streams"));

    let (code, body) = s.post(
        "/query-stream",
        &json!({"sql": "SELECT * FROM NOPE EMIT CHANGES;"}).to_string(),
    );
    assert_eq!(code, 400, "{body}");
    assert!(body["message"].as_str().unwrap().starts_with("line 1:"));
}

#[test]
fn command_status() {
    let s = Srv::start();
    let out = s.ksql(CREATE_S);
    let id = out[0]["commandId"].as_str().unwrap().to_string();
    let (code, st) = s.get(&format!("/status/{id}"));
    assert_eq!(code, 200, "{st}");
    assert_eq!(st["status"], json!("SUCCESS"));
    assert_eq!(st["message"], json!("Stream created"));
    let (code, all) = s.get("/status");
    assert_eq!(code, 200);
    assert_eq!(all["commandStatuses"][&id], json!("SUCCESS"));
    let (code, body) = s.get("/status/statement/12345");
    assert_eq!(code, 404, "{body}");
    assert_eq!(body["error_code"], json!(crate::NOT_FOUND));
}

#[test]
fn push_query_streams_rows_until_closed() {
    let s = Srv::start();
    s.ksql(CREATE_S);
    s.ksql("INSERT INTO S (K, V) VALUES ('a', 1);");
    // From the earliest offset: the engine pins a "latest" start only after
    // answering, so a row written right after the header could be missed.
    let mut lines = s.query_stream_with(
        "SELECT K, V FROM S EMIT CHANGES;",
        json!({"auto.offset.reset": "earliest"}),
    );
    let header = lines.next().unwrap();
    assert_eq!(header["columnNames"], json!(["K", "V"]));
    assert_eq!(header["columnTypes"], json!(["STRING", "INTEGER"]));
    let qid = header["queryId"].as_str().unwrap().to_string();
    assert_eq!(lines.next().unwrap(), json!(["a", 1]));
    // The query is running: rows written now reach it.
    s.ksql("INSERT INTO S (K, V) VALUES ('b', 2);");
    assert_eq!(lines.next().unwrap(), json!(["b", 2]));
    let (code, body) = s.post("/close-query", &json!({ "queryId": qid }).to_string());
    assert_eq!(code, 200, "{body}");
    // The response ends once the query is closed.
    assert!(lines.next().is_none());
}

#[test]
fn ctas_inserts_stream_and_pull_queries() {
    let s = Srv::start();
    s.ksql(CREATE_S);
    let out = s.ksql("CREATE TABLE T AS SELECT K, COUNT(*) AS N FROM S GROUP BY K EMIT CHANGES;");
    assert_eq!(out[0]["@type"], json!("currentStatus"), "{out}");

    let body = "{\"target\": \"S\"}\n{\"K\": \"a\", \"V\": 1}\n{not json}\n{\"K\": \"a\", \"V\": 2}\n\n{\"K\": \"b\", \"V\": \"x\"}\n";
    let r = ureq::post(&s.url("/inserts-stream"))
        .send_string(body)
        .unwrap();
    let mut text = String::new();
    r.into_reader().read_to_string(&mut text).unwrap();
    let acks: Vec<Json> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(acks.len(), 4, "{text}");
    assert_eq!(acks[0], json!({"status": "ok", "seq": 0}));
    assert_eq!(acks[1]["status"], json!("error"));
    assert_eq!(acks[1]["seq"], json!(1));
    assert_eq!(acks[2], json!({"status": "ok", "seq": 2}));
    assert_eq!(acks[3]["status"], json!("error"), "{text}");
    assert!(s.engine.wait_idle(Duration::from_secs(20)));

    let lines: Vec<Json> = s.query_stream("SELECT * FROM T WHERE K='a';").collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert_eq!(lines[0]["columnNames"], json!(["K", "N"]));
    assert_eq!(lines[1], json!(["a", 2]));

    // The same over /query-stream as one JSON array.
    let r = ureq::post(&s.url("/query-stream"))
        .set("Accept", "application/json")
        .send_string(&json!({"sql": "SELECT * FROM T WHERE K='a';"}).to_string())
        .unwrap();
    let all: Json = r.into_json().unwrap();
    assert_eq!(all[1], json!(["a", 2]), "{all}");

    // And over /query, ksqlDB's older chunked array.
    let (code, all) = s.post(
        "/query",
        &json!({"ksql": "SELECT * FROM T WHERE K='a';", "streamsProperties": {}}).to_string(),
    );
    assert_eq!(code, 200);
    // (The engine reports no key columns for pull queries, so no KEY here.)
    let schema = all[0]["header"]["schema"].as_str().unwrap();
    assert!(
        schema.starts_with("`K` STRING") && schema.ends_with(", `N` BIGINT"),
        "{schema}"
    );
    assert_eq!(all[1], json!({"row": {"columns": ["a", 2]}}));
    assert_eq!(all.as_array().unwrap().len(), 2);

    let tables = s.ksql("SHOW TABLES;");
    assert_eq!(tables[0]["tables"][0]["name"], json!("T"), "{tables}");
}

#[test]
fn query_endpoint_push_with_limit_and_print() {
    let s = Srv::start();
    s.ksql(CREATE_S);
    s.ksql("INSERT INTO S (K, V) VALUES ('a', 1);");
    s.ksql("INSERT INTO S (K, V) VALUES ('b', 2);");
    // A push query from the earliest offset ends at its LIMIT, closing the array.
    let (code, all) = s.post(
        "/query",
        &json!({"ksql": "SELECT * FROM S EMIT CHANGES LIMIT 2;",
                "streamsProperties": {"auto.offset.reset": "earliest"}})
        .to_string(),
    );
    assert_eq!(code, 200, "{all}");
    assert_eq!(
        all[0]["header"]["schema"],
        json!("`K` STRING KEY, `V` INTEGER")
    );
    assert_eq!(all[1], json!({"row": {"columns": ["a", 1]}}));
    assert_eq!(all[2], json!({"row": {"columns": ["b", 2]}}));
    assert_eq!(all.as_array().unwrap().len(), 3);

    // PRINT streams plain text lines.
    let r = ureq::post(&s.url("/query"))
        .send_string(&json!({"ksql": "PRINT 's' FROM BEGINNING LIMIT 2;"}).to_string())
        .unwrap();
    let mut text = String::new();
    r.into_reader().read_to_string(&mut text).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(
        lines[0].contains("key: a") && lines[0].contains("\"V\":1"),
        "{text}"
    );
}
