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

    /// POSTs a JSON body expecting 200; the whole response as text (it
    /// must end within 30 s).
    fn post_text(&self, path: &str, body: &Json) -> String {
        let r = ureq::post(&self.url(path))
            .timeout(Duration::from_secs(30))
            .send_string(&body.to_string())
            .unwrap_or_else(|e| panic!("{path} {body}: {e}"));
        let mut text = String::new();
        r.into_reader().read_to_string(&mut text).unwrap();
        text
    }

    /// A query `/query` refuses with 400: its message.
    fn refused(&self, sql: &str, props: Json) -> String {
        let body = json!({"ksql": sql, "streamsProperties": props}).to_string();
        let (code, body) = self.post("/query", &body);
        assert_eq!(code, 400, "{sql}: {body}");
        body["message"].as_str().unwrap_or_default().to_string()
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
    assert!(body["message"]
        .as_str()
        .unwrap()
        .starts_with("Line: 1, Col: "));
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
    // A pull query's header marks its key columns KEY.
    assert_eq!(
        all[0]["header"]["schema"],
        json!("`K` STRING KEY, `N` BIGINT")
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
    // A push query from the earliest offset ends at its LIMIT with ksqlDB's
    // final message, each element on a line of its own ending with ",".
    let text = s.post_text(
        "/query",
        &json!({"ksql": "SELECT * FROM S EMIT CHANGES LIMIT 2;",
                "streamsProperties": {"auto.offset.reset": "earliest"}}),
    );
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    // A push query's header lists every column as a value column.
    assert!(
        lines[0].starts_with("[{\"header\":{\"queryId\":\"")
            && lines[0].ends_with("\"schema\":\"`K` STRING, `V` INTEGER\"}},"),
        "{text}"
    );
    assert_eq!(lines[1], r#"{"row":{"columns":["a",1]}},"#);
    assert_eq!(lines[2], r#"{"row":{"columns":["b",2]}},"#);
    assert_eq!(lines[3], r#"{"finalMessage":"Limit Reached"}]"#);

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

#[test]
fn push_queries_that_aggregate_end_at_their_limit() {
    let s = Srv::start();
    s.ksql(CREATE_S);
    for (k, v) in [("a", 1), ("b", 2), ("a", 3)] {
        s.ksql(&format!("INSERT INTO S (K, V) VALUES ('{k}', {v});"));
    }
    // Before, the response never ended: post_text's timeout failed it.
    let text = s.post_text(
        "/query",
        &json!({"ksql": "SELECT K, COUNT(*) AS N FROM S GROUP BY K EMIT CHANGES LIMIT 2;",
                "streamsProperties": {"auto.offset.reset": "earliest"}}),
    );
    let all: Json = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    let all = all.as_array().unwrap();
    assert_eq!(all.len(), 4, "{text}");
    assert_eq!(all[0]["header"]["schema"], json!("`K` STRING, `N` BIGINT"));
    assert_eq!(all[3], json!({"finalMessage": "Limit Reached"}));
    // Over /query-stream the rows end the response, with no final message.
    let lines: Vec<Json> = s
        .query_stream_with(
            "SELECT K, COUNT(*) AS N FROM S GROUP BY K EMIT CHANGES LIMIT 2;",
            json!({"auto.offset.reset": "earliest"}),
        )
        .collect();
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert!(lines[1].is_array() && lines[2].is_array(), "{lines:?}");
}

#[test]
fn a_push_query_header_arrives_before_any_row() {
    let s = Srv::start();
    s.ksql(CREATE_S);
    // A client reads the header line, then produces: the header must not
    // wait for a row.
    let r = ureq::post(&s.url("/query"))
        .timeout(Duration::from_secs(30))
        .send_string(&json!({"ksql": "SELECT * FROM S EMIT CHANGES LIMIT 1;"}).to_string())
        .unwrap();
    let mut lines = BufReader::new(r.into_reader()).lines();
    let header = lines.next().unwrap().unwrap();
    assert!(
        header.starts_with("[{\"header\":") && header.ends_with("}},"),
        "{header}"
    );
    s.ksql("INSERT INTO S (K, V) VALUES ('a', 1);");
    assert_eq!(
        lines.next().unwrap().unwrap(),
        r#"{"row":{"columns":["a",1]}},"#
    );
    assert_eq!(
        lines.next().unwrap().unwrap(),
        r#"{"finalMessage":"Limit Reached"}]"#
    );
    assert!(lines.next().is_none());
}

#[test]
fn pull_query_headers_mark_key_columns_and_rowtime_is_selectable() {
    let s = Srv::start();
    s.ksql(CREATE_S);
    s.ksql("CREATE TABLE T AS SELECT K, COUNT(*) AS N FROM S GROUP BY K EMIT CHANGES;");
    s.ksql(
        "CREATE TABLE W AS SELECT K, COUNT(*) AS N FROM S WINDOW TUMBLING (SIZE 1 HOUR) GROUP BY K EMIT CHANGES;",
    );
    s.ksql("INSERT INTO S (K, V, ROWTIME) VALUES ('a', 1, 7200500);");
    assert!(s.engine.wait_idle(Duration::from_secs(20)));
    let pull = |sql: &str| -> Json {
        serde_json::from_str(&s.post_text("/query", &json!({ "ksql": sql }))).unwrap()
    };
    // The key column is marked wherever the projection puts it, aliased or not.
    let all = pull("SELECT N, K AS ID FROM T WHERE K='a';");
    assert_eq!(
        all[0]["header"]["schema"],
        json!("`N` BIGINT, `ID` STRING KEY")
    );
    assert_eq!(all[1], json!({"row": {"columns": [1, "a"]}}));
    // ROWTIME: the timestamp of the record that last wrote the row.
    let all = pull("SELECT K, ROWTIME FROM T WHERE K='a';");
    assert_eq!(
        all[0]["header"]["schema"],
        json!("`K` STRING KEY, `ROWTIME` BIGINT")
    );
    assert_eq!(all[1], json!({"row": {"columns": ["a", 7200500]}}));
    // Window bounds are key columns too.
    let all = pull("SELECT *, ROWTIME FROM W WHERE K='a';");
    assert_eq!(
        all[0]["header"]["schema"],
        json!("`K` STRING KEY, `WINDOWSTART` BIGINT KEY, `WINDOWEND` BIGINT KEY, `N` BIGINT, `ROWTIME` BIGINT")
    );
    assert_eq!(
        all[1],
        json!({"row": {"columns": ["a", 7200000, 10800000, 1, 7200500]}})
    );
    // Window bounds compared with date-time text (ksqlDB reads it as a
    // timestamp).
    let all = pull("SELECT K, N FROM W WHERE K='a' AND WINDOWSTART >= '1970-01-01T02:00:00';");
    assert_eq!(all[1], json!({"row": {"columns": ["a", 1]}}));
    let all = pull("SELECT K, N FROM W WHERE K='a' AND WINDOWSTART > '1970-01-01T02:00:00Z';");
    assert_eq!(all.as_array().unwrap().len(), 1, "{all}");
    // A table scan refused when the session or request turns them off.
    let msg = s.refused(
        "SELECT * FROM T;",
        json!({"ksql.query.pull.table.scan.enabled": "false"}),
    );
    assert!(
        msg.contains("Query requires table scan to be enabled"),
        "{msg}"
    );
    // A key lookup still runs.
    let (code, body) = s.post(
        "/query",
        &json!({"ksql": "SELECT * FROM T WHERE K='a';",
                "streamsProperties": {"ksql.query.pull.table.scan.enabled": "false"}})
        .to_string(),
    );
    assert_eq!(code, 200, "{body}");
    // Comparing with NULL is a statement error (400), as in ksqlDB.
    let (code, body) = s.post(
        "/query",
        &json!({"ksql": "SELECT * FROM T WHERE K = NULL;"}).to_string(),
    );
    assert_eq!(code, 400, "{body}");
    assert_eq!(body["@type"], json!("statement_error"), "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("Comparison with NULL not supported: STRING = NULL\nUse 'IS NULL' or 'IS NOT NULL' instead."),
        "{body}"
    );
}

#[test]
fn pull_queries_on_streams_read_up_to_where_they_started() {
    let s = Srv::start();
    s.ksql("CREATE STREAM S (K STRING KEY, V INT) WITH (KAFKA_TOPIC='s', VALUE_FORMAT='JSON', PARTITIONS=2);");
    for (k, v) in [("a", 1), ("b", 2), ("c", 3)] {
        s.ksql(&format!("INSERT INTO S (K, V) VALUES ('{k}', {v});"));
    }
    let text = s.post_text(
        "/query",
        &json!({"ksql": "SELECT K, V FROM S WHERE V > 1;"}),
    );
    let all: Json = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    let all = all.as_array().unwrap();
    assert_eq!(
        all[0]["header"]["schema"],
        json!("`K` STRING, `V` INTEGER"),
        "{text}"
    );
    let mut rows: Vec<Json> = all[1..all.len() - 1]
        .iter()
        .map(|r| r["row"]["columns"].clone())
        .collect();
    rows.sort_by_key(|r| r[1].as_i64());
    assert_eq!(rows, vec![json!(["b", 2]), json!(["c", 3])], "{text}");
    assert_eq!(
        all[all.len() - 1],
        json!({"finalMessage": "Query Completed"})
    );
    // LIMIT, pseudo columns, and /query-stream (no final message there).
    let lines: Vec<Json> = s
        .query_stream("SELECT K, ROWOFFSET FROM S LIMIT 2;")
        .collect();
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert_eq!(lines[0]["columnNames"], json!(["K", "ROWOFFSET"]));
    // Turned off: ksqlDB's refusal.
    let msg = s.refused(
        "SELECT * FROM S;",
        json!({"ksql.query.pull.stream.enabled": false}),
    );
    assert!(
        msg.contains("Pull queries on streams are disabled."),
        "{msg}"
    );
}

#[test]
fn rows_as_protobuf_messages_on_both_endpoints() {
    let s = Srv::start();
    s.ksql(CREATE_S);
    s.ksql(
        "CREATE TABLE T AS SELECT K AS USERID, COUNT(*) AS COUNT FROM S GROUP BY K EMIT CHANGES;",
    );
    s.ksql("INSERT INTO S (K, V) VALUES ('USER_0', 1);");
    assert!(s.engine.wait_idle(Duration::from_secs(20)));
    let post = |path: &str, body: Json| -> String {
        let r = ureq::post(&s.url(path))
            .timeout(Duration::from_secs(30))
            .set("Accept", crate::query::PROTOBUF)
            .send_string(&body.to_string())
            .unwrap();
        assert_eq!(r.header("content-type"), Some(crate::query::PROTOBUF));
        let mut text = String::new();
        r.into_reader().read_to_string(&mut text).unwrap();
        text
    };
    // The message ksqlDB derives for (COUNT BIGINT, USERID STRING), and the
    // bytes it writes for (1, 'USER_0').
    let schema = "syntax = \"proto3\";\n\nmessage ConnectDefault1 {\n  int64 COUNT = 1;\n  string USERID = 2;\n}\n";
    let sql = "SELECT COUNT, USERID FROM T WHERE USERID='USER_0';";
    for (path, body) in [
        ("/query", json!({ "ksql": sql })),
        ("/query-stream", json!({ "sql": sql })),
    ] {
        let text = post(path, body);
        let all: Json = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
        assert_eq!(all[0]["header"]["protoSchema"], json!(schema), "{text}");
        assert_eq!(
            all[0]["header"]["schema"],
            json!("`COUNT` BIGINT, `USERID` STRING KEY")
        );
        assert_eq!(
            all[1],
            json!({"row": {"protobufBytes": "CAESBlVTRVJfMA=="}}),
            "{text}"
        );
        assert_eq!(all.as_array().unwrap().len(), 2, "{text}");
    }
    // A push query: framed as /query's, ending at its LIMIT.
    let text = post(
        "/query-stream",
        json!({"sql": "SELECT COUNT, USERID FROM T EMIT CHANGES LIMIT 1;",
               "properties": {"auto.offset.reset": "earliest"}}),
    );
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(lines[0].ends_with("}},"), "{text}");
    assert_eq!(lines[1], r#"{"row":{"protobufBytes":"CAESBlVTRVJfMA=="}},"#);
    assert_eq!(lines[2], r#"{"finalMessage":"Limit Reached"}]"#);
}

#[test]
fn decimals_keep_their_scale_in_rows() {
    let s = Srv::start();
    s.ksql("CREATE STREAM D (K STRING KEY, V DECIMAL(12, 2)) WITH (KAFKA_TOPIC='d', VALUE_FORMAT='JSON', PARTITIONS=1);");
    s.ksql("INSERT INTO D (K, V) VALUES ('a', 0);");
    s.ksql("INSERT INTO D (K, V) VALUES ('b', 1.5);");
    let sql = "SELECT K, V, ARRAY[V] AS A FROM D;";
    let text = s.post_text("/query", &json!({ "ksql": sql }));
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[1], r#"{"row":{"columns":["a",0.00,[0.00]]}},"#,
        "{text}"
    );
    assert_eq!(
        lines[2], r#"{"row":{"columns":["b",1.50,[1.50]]}},"#,
        "{text}"
    );
    let r = ureq::post(&s.url("/query-stream"))
        .send_string(&json!({ "sql": sql }).to_string())
        .unwrap();
    let mut text = String::new();
    r.into_reader().read_to_string(&mut text).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        &lines[1..],
        [r#"["a",0.00,[0.00]]"#, r#"["b",1.50,[1.50]]"#],
        "{text}"
    );
}
