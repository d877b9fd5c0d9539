//! The REST API on an in-process broker, over HTTP: status codes and
//! bodies, deletes, config and mode, restarts, and two instances writing
//! at once.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use runnel_broker::{Broker, BrokerConfig};
use runnel_cluster::{Cluster, Guarantee, TopicPartition};
use runnel_embed::LocalCluster;
use serde_json::{json, Value as Json};

use crate::{Registry, RegistryConfig};

/// One registry instance serving its API on a loopback port.
struct Node {
    registry: Registry,
    base: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Node {
    fn start(cluster: Arc<dyn Cluster>) -> Node {
        let config = RegistryConfig {
            poll: Duration::from_millis(50),
            ..RegistryConfig::default()
        };
        let registry = Registry::start(cluster, config).unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let r = registry.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let l = tokio::net::TcpListener::from_std(listener).unwrap();
                axum::serve(l, crate::api::routes(r))
                    .with_graceful_shutdown(async {
                        let _ = rx.await;
                    })
                    .await
                    .unwrap();
            });
        });
        Node {
            registry,
            base,
            stop: Some(tx),
            thread: Some(thread),
        }
    }

    fn call(&self, method: &str, path: &str, body: Option<Json>) -> (u16, Json) {
        let req = ureq::request(method, &format!("{}{path}", self.base))
            .set("Content-Type", "application/vnd.schemaregistry.v1+json");
        let result = match body {
            Some(b) => req.send_string(&b.to_string()),
            None => req.call(),
        };
        let (status, resp) = match result {
            Ok(r) => (r.status(), r),
            Err(ureq::Error::Status(code, r)) => (code, r),
            Err(e) => panic!("{method} {path}: {e}"),
        };
        let text = resp.into_string().unwrap();
        let json = serde_json::from_str(&text).unwrap_or(Json::String(text));
        (status, json)
    }

    fn get(&self, path: &str) -> (u16, Json) {
        self.call("GET", path, None)
    }

    fn post(&self, path: &str, body: Json) -> (u16, Json) {
        self.call("POST", path, Some(body))
    }

    fn put(&self, path: &str, body: Json) -> (u16, Json) {
        self.call("PUT", path, Some(body))
    }

    fn delete(&self, path: &str) -> (u16, Json) {
        self.call("DELETE", path, None)
    }

    /// Registers an Avro schema; the id.
    fn register(&self, subject: &str, schema: &str) -> i32 {
        let (status, body) = self.post(
            &format!("/subjects/{subject}/versions"),
            json!({ "schema": schema }),
        );
        assert_eq!(status, 200, "register under {subject}: {body}");
        body["id"].as_i64().unwrap() as i32
    }

    fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
        self.registry.shutdown();
    }
}

fn open_broker(dir: &Path) -> Arc<Broker> {
    Broker::open(dir, BrokerConfig::default()).unwrap()
}

fn cluster(broker: &Arc<Broker>) -> Arc<dyn Cluster> {
    Arc::new(LocalCluster::new(broker.local()))
}

fn record(fields: &[(&str, &str)]) -> String {
    let fields: Vec<Json> = fields
        .iter()
        .map(|(name, ty)| json!({"name": name, "type": ty}))
        .collect();
    json!({"type": "record", "name": "R", "namespace": "t", "fields": fields}).to_string()
}

/// A small named Avro schema, distinct per name.
fn p(name: &str) -> String {
    json!({"type": "enum", "name": name, "symbols": ["A"]}).to_string()
}

fn error_code(body: &Json) -> i64 {
    body["error_code"].as_i64().unwrap_or(0)
}

#[test]
fn register_look_up_and_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open_broker(dir.path());
    let n = Node::start(cluster(&broker));
    let v1 = record(&[("a", "string")]);
    let id = n.register("orders-value", &v1);
    assert_eq!(id, 1);
    // The same schema again, in another spelling: the same id, no new version.
    let respelled =
        serde_json::to_string_pretty(&serde_json::from_str::<Json>(&v1).unwrap()).unwrap();
    assert_eq!(n.register("orders-value", &respelled), 1);
    assert_eq!(n.get("/subjects/orders-value/versions"), (200, json!([1])));
    // The same schema under another subject shares its id.
    assert_eq!(n.register("other-value", &v1), 1);
    let id2 = n.register("strings", &p("string"));
    assert_eq!(id2, 2);
    // A bare primitive, as key schemas often are.
    assert_eq!(n.register("keys", "\"string\""), 3);
    assert_eq!(
        n.get("/subjects/keys/versions/1/schema"),
        (200, json!("string"))
    );

    assert_eq!(
        n.get("/subjects"),
        (
            200,
            json!(["keys", "orders-value", "other-value", "strings"])
        )
    );
    assert_eq!(
        n.get("/subjects?subjectPrefix=o"),
        (200, json!(["orders-value", "other-value"]))
    );
    assert_eq!(
        n.get("/subjects?offset=2&limit=1"),
        (200, json!(["other-value"]))
    );
    let (s, body) = n.get("/subjects/orders-value/versions/1");
    assert_eq!(s, 200);
    assert_eq!(
        body,
        json!({"subject": "orders-value", "version": 1, "id": 1, "schema": v1})
    );
    assert_eq!(n.get("/subjects/orders-value/versions/latest").1, body);
    assert_eq!(n.get("/subjects/orders-value/versions/-1").1, body);
    let (s, raw) = n.get("/subjects/orders-value/versions/1/schema");
    assert_eq!(s, 200);
    assert_eq!(raw, serde_json::from_str::<Json>(&v1).unwrap());
    assert_eq!(n.get("/schemas/ids/1"), (200, json!({"schema": v1})));
    assert_eq!(
        n.get("/schemas/ids/1/subjects"),
        (200, json!(["orders-value", "other-value"]))
    );
    assert_eq!(
        n.get("/schemas/ids/1/versions"),
        (
            200,
            json!([{"subject": "orders-value", "version": 1}, {"subject": "other-value", "version": 1}])
        )
    );
    assert_eq!(
        n.get("/schemas/types"),
        (200, json!(["JSON", "PROTOBUF", "AVRO"]))
    );

    // Look-up by schema.
    let (s, found) = n.post("/subjects/other-value", json!({"schema": respelled}));
    assert_eq!(s, 200, "{found}");
    assert_eq!(found["id"], 1);
    assert_eq!(found["version"], 1);
    assert_eq!(found["subject"], "other-value");
    let (s, e) = n.post("/subjects/other-value", json!({"schema": p("int")}));
    assert_eq!((s, error_code(&e)), (404, 40403), "{e}");
    let (s, e) = n.post("/subjects/nope", json!({"schema": p("int")}));
    assert_eq!((s, error_code(&e)), (404, 40401), "{e}");

    // Not found, invalid version, invalid schema, bad bodies: never a 500.
    let (s, e) = n.get("/subjects/nope/versions");
    assert_eq!((s, error_code(&e)), (404, 40401));
    assert_eq!(e["message"], "Subject 'nope' not found.");
    let (s, e) = n.get("/subjects/orders-value/versions/9");
    assert_eq!((s, error_code(&e)), (404, 40402));
    for bad in ["0", "-2", "x", "99999999999"] {
        let (s, e) = n.get(&format!("/subjects/orders-value/versions/{bad}"));
        assert_eq!((s, error_code(&e)), (422, 42202), "{bad}: {e}");
    }
    let (s, e) = n.get("/schemas/ids/77");
    assert_eq!((s, error_code(&e)), (404, 40403));
    for bad in ["abc", "-1", "99999999999"] {
        let (s, e) = n.get(&format!("/schemas/ids/{bad}"));
        assert_eq!((s, error_code(&e)), (404, 40403));
        assert_eq!(e["message"], format!("Schema {bad} not found"));
    }
    let (s, e) = n.post(
        "/subjects/x/versions",
        json!({"schema": "{\"type\": \"record\", \"name\": \"R\"}"}),
    );
    assert_eq!((s, error_code(&e)), (422, 42201), "{e}");
    assert!(!e["message"].as_str().unwrap().is_empty());
    let (s, e) = n.post("/subjects/x/versions", json!({"schema": "not json"}));
    assert_eq!((s, error_code(&e)), (422, 42201), "{e}");
    let (s, e) = n.post("/subjects/x/versions", json!({}));
    assert_eq!((s, error_code(&e)), (422, 42201), "{e}");
    let (s, e) = n.post(
        "/subjects/x/versions",
        json!({"schema": p("int"), "schemaType": "XML"}),
    );
    assert_eq!((s, error_code(&e)), (422, 42201), "{e}");
    let (s, e) = n.call("POST", "/subjects/x/versions", None);
    assert_eq!(s, 400, "{e}");
    let (s, e) = n.get("/no/such/path");
    assert_eq!(s, 404, "{e}");
    let (s, e) = n.call("PATCH", "/subjects", None);
    assert_eq!((s, error_code(&e)), (405, 405), "{e}");
    // Every schema, or each subject's latest.
    let (s, all) = n.get("/schemas?subjectPrefix=o");
    assert_eq!(s, 200);
    assert_eq!(
        all.as_array()
            .unwrap()
            .iter()
            .map(|x| (x["subject"].clone(), x["version"].clone(), x["id"].clone()))
            .collect::<Vec<_>>(),
        vec![
            (json!("orders-value"), json!(1), json!(1)),
            (json!("other-value"), json!(1), json!(1))
        ]
    );
    assert_eq!(
        n.get("/schemas?latestOnly=true&limit=1").1,
        json!([{"subject": "keys", "version": 1, "id": 3, "schema": "\"string\""}])
    );
    // No failed registration left anything behind.
    assert_eq!(n.get("/subjects/x/versions").0, 404);
    assert_eq!(n.registry.max_id(), 3);
    n.stop();
}

#[test]
fn compatibility_levels_decide_registrations() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open_broker(dir.path());
    let n = Node::start(cluster(&broker));
    let v1 = record(&[("a", "int")]);
    n.register("s", &v1);
    // BACKWARD (the default): a new field needs a default.
    let no_default = record(&[("a", "int"), ("b", "string")]);
    let (s, e) = n.post("/subjects/s/versions", json!({"schema": no_default}));
    assert_eq!((s, error_code(&e)), (409, 40901), "{e}");
    assert!(
        e["message"].as_str().unwrap().contains("incompatible"),
        "{e}"
    );
    let (s, c) = n.post(
        "/compatibility/subjects/s/versions/latest?verbose=true",
        json!({"schema": no_default}),
    );
    assert_eq!(s, 200);
    assert_eq!(c["is_compatible"], false);
    let messages = c["messages"].as_array().unwrap();
    assert!(
        messages
            .iter()
            .any(|m| m.as_str().unwrap().contains("oldSchemaVersion: 1")),
        "{c}"
    );
    assert_eq!(
        n.post(
            "/compatibility/subjects/s/versions",
            json!({"schema": no_default})
        ),
        (200, json!({"is_compatible": false}))
    );
    // Unknown subject, `latest`: nothing to be incompatible with.
    assert_eq!(
        n.post(
            "/compatibility/subjects/new/versions/latest",
            json!({"schema": no_default})
        ),
        (200, json!({"is_compatible": true}))
    );
    let (s, e) = n.post(
        "/compatibility/subjects/s/versions/7",
        json!({"schema": no_default}),
    );
    assert_eq!((s, error_code(&e)), (404, 40402));
    // An invalid schema: 42201, or an explanation with verbose.
    let (s, e) = n.post(
        "/compatibility/subjects/s/versions/1",
        json!({"schema": "{"}),
    );
    assert_eq!((s, error_code(&e)), (422, 42201));
    let (s, c) = n.post(
        "/compatibility/subjects/s/versions/1?verbose=true",
        json!({"schema": "{"}),
    );
    assert_eq!(s, 200);
    assert_eq!(c["is_compatible"], false);

    // Transitive levels check every version, the others only the latest:
    // v2 drops `a`; v3 brings it back as a string, which v2 allows and
    // v1 (an int) does not.
    let v2 = record(&[]);
    n.register("s", &v2);
    let v3 = json!({"type": "record", "name": "R", "namespace": "t",
        "fields": [{"name": "a", "type": "string", "default": ""}]})
    .to_string();
    assert_eq!(
        n.put("/config/s", json!({"compatibility": "BACKWARD_TRANSITIVE"})),
        (200, json!({"compatibility": "BACKWARD_TRANSITIVE"}))
    );
    let (s, e) = n.post("/subjects/s/versions", json!({"schema": v3}));
    assert_eq!((s, error_code(&e)), (409, 40901), "{e}");
    n.put("/config/s", json!({"compatibility": "backward"}));
    assert_eq!(n.register("s", &v3), 3);

    // FORWARD: old readers must read the new data; FULL: both ways.
    n.register("f", &record(&[("a", "int"), ("b", "int")]));
    n.put("/config/f", json!({"compatibility": "FORWARD"}));
    // Dropping a field old readers need with no default: not forward.
    let (s, _) = n.post(
        "/subjects/f/versions",
        json!({"schema": record(&[("a", "int")])}),
    );
    assert_eq!(s, 409);
    // Adding a field without a default is forward compatible.
    let added = record(&[("a", "int"), ("b", "int"), ("c", "int")]);
    assert_eq!(n.register("f", &added), 5);
    n.put("/config/f", json!({"compatibility": "FULL"}));
    let (s, _) = n.post(
        "/subjects/f/versions",
        json!({"schema": record(&[("a", "int"), ("b", "int"), ("c", "int"), ("d", "int")])}),
    );
    assert_eq!(s, 409, "a field without a default is not backward");
    // NONE lets anything in.
    n.put("/config/f", json!({"compatibility": "NONE"}));
    assert_eq!(n.register("f", &p("string")), 6);
    n.stop();
}

#[test]
fn config_and_mode() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open_broker(dir.path());
    let n = Node::start(cluster(&broker));
    assert_eq!(
        n.get("/config"),
        (200, json!({"compatibilityLevel": "BACKWARD"}))
    );
    let (s, e) = n.put("/config", json!({"compatibility": "SIDEWAYS"}));
    assert_eq!((s, error_code(&e)), (422, 42203));
    let (s, e) = n.put("/config", json!("nonsense"));
    assert_eq!((s, error_code(&e)), (422, 42203));
    assert_eq!(
        n.put("/config", json!({"compatibility": "FULL"})),
        (200, json!({"compatibility": "FULL"}))
    );
    assert_eq!(
        n.get("/config"),
        (200, json!({"compatibilityLevel": "FULL"}))
    );
    let (s, e) = n.get("/config/s");
    assert_eq!((s, error_code(&e)), (404, 40408));
    assert_eq!(
        n.get("/config/s?defaultToGlobal=true"),
        (200, json!({"compatibilityLevel": "FULL"}))
    );
    n.put("/config/s", json!({"compatibility": "NONE"}));
    assert_eq!(
        n.get("/config/s"),
        (200, json!({"compatibilityLevel": "NONE"}))
    );
    assert_eq!(
        n.delete("/config/s"),
        (200, json!({"compatibilityLevel": "NONE"}))
    );
    assert_eq!(n.get("/config/s").0, 404);
    assert_eq!(
        n.delete("/config"),
        (200, json!({"compatibilityLevel": "FULL"}))
    );
    assert_eq!(
        n.get("/config"),
        (200, json!({"compatibilityLevel": "BACKWARD"}))
    );

    // Modes.
    assert_eq!(n.get("/mode"), (200, json!({"mode": "READWRITE"})));
    let (s, e) = n.put("/mode", json!({"mode": "WRITEONLY"}));
    assert_eq!((s, error_code(&e)), (422, 42204));
    n.register("s", &p("int"));
    n.put("/config/s", json!({"compatibility": "NONE"}));
    assert_eq!(
        n.put("/mode/s", json!({"mode": "READONLY"})),
        (200, json!({"mode": "READONLY"}))
    );
    let (s, e) = n.post("/subjects/s/versions", json!({"schema": p("long")}));
    assert_eq!((s, error_code(&e)), (422, 42205), "{e}");
    let (s, e) = n.delete("/subjects/s");
    assert_eq!((s, error_code(&e)), (422, 42205), "{e}");
    // Other subjects are not read-only.
    n.register("t", &p("int"));
    assert_eq!(n.get("/mode/t").0, 404);
    assert_eq!(
        n.get("/mode/t?defaultToGlobal=true"),
        (200, json!({"mode": "READWRITE"}))
    );
    assert_eq!(n.delete("/mode/s"), (200, json!({"mode": "READONLY"})));
    assert_eq!(n.register("s", &p("long")), 2);

    // IMPORT: only where no subject has a live version, unless forced.
    let (s, e) = n.put("/mode", json!({"mode": "IMPORT"}));
    assert_eq!((s, error_code(&e)), (422, 42205), "{e}");
    assert_eq!(
        n.put("/mode/imported", json!({"mode": "IMPORT"})),
        (200, json!({"mode": "IMPORT"}))
    );
    // An id can only be given in IMPORT mode, and is required there.
    let (s, e) = n.post(
        "/subjects/s/versions",
        json!({"schema": p("double"), "id": 50}),
    );
    assert_eq!((s, error_code(&e)), (422, 42205), "{e}");
    let (s, e) = n.post(
        "/subjects/imported/versions",
        json!({"schema": p("double")}),
    );
    assert_eq!((s, error_code(&e)), (422, 42205), "{e}");
    // Imported with its id and version, no compatibility check.
    assert_eq!(
        n.post(
            "/subjects/imported/versions",
            json!({"schema": p("double"), "id": 100, "version": 7})
        ),
        (200, json!({"id": 100}))
    );
    assert_eq!(
        n.post(
            "/subjects/imported/versions",
            json!({"schema": record(&[("x", "int")]), "id": 101, "version": 8})
        ),
        (200, json!({"id": 101}))
    );
    // An id held by another schema cannot be overwritten.
    let (s, e) = n.post(
        "/subjects/imported/versions",
        json!({"schema": p("boolean"), "id": 100, "version": 9}),
    );
    assert_eq!((s, error_code(&e)), (422, 42205), "{e}");
    assert_eq!(n.get("/subjects/imported/versions"), (200, json!([7, 8])));
    assert_eq!(
        n.get("/schemas/ids/100"),
        (200, json!({"schema": p("double")}))
    );
    n.put("/mode/imported", json!({"mode": "READWRITE"}));
    // New ids come after the imported ones.
    assert_eq!(n.register("later", &p("bytes")), 102);
    n.stop();
}

#[test]
fn soft_and_permanent_deletes_follow_confluents_rules() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open_broker(dir.path());
    let n = Node::start(cluster(&broker));
    n.put("/config", json!({"compatibility": "NONE"}));
    assert_eq!(n.register("s", &p("int")), 1);
    assert_eq!(n.register("s", &p("long")), 2);
    assert_eq!(n.register("s", &p("string")), 3);

    // A version: soft first, then permanent.
    let (s, e) = n.delete("/subjects/s/versions/2?permanent=true");
    assert_eq!((s, error_code(&e)), (404, 40407), "{e}");
    assert_eq!(n.delete("/subjects/s/versions/2"), (200, json!(2)));
    let (s, e) = n.delete("/subjects/s/versions/2");
    assert_eq!((s, error_code(&e)), (404, 40406), "{e}");
    assert_eq!(n.get("/subjects/s/versions"), (200, json!([1, 3])));
    assert_eq!(
        n.get("/subjects/s/versions?deleted=true"),
        (200, json!([1, 2, 3]))
    );
    assert_eq!(n.get("/subjects/s/versions/2").0, 404);
    assert_eq!(n.get("/subjects/s/versions/2?deleted=true").1["id"], 2);
    // A soft-deleted schema still resolves by id (old records use it).
    assert_eq!(n.get("/schemas/ids/2").0, 200);
    assert_eq!(n.get("/schemas/ids/2/versions"), (200, json!([])));
    assert_eq!(
        n.get("/schemas/ids/2/versions?deleted=true"),
        (200, json!([{"subject": "s", "version": 2}]))
    );
    assert_eq!(
        n.delete("/subjects/s/versions/2?permanent=true"),
        (200, json!(2))
    );
    let (s, e) = n.get("/schemas/ids/2");
    assert_eq!((s, error_code(&e)), (404, 40403));
    let (s, e) = n.delete("/subjects/s/versions/2?permanent=true");
    assert_eq!((s, error_code(&e)), (404, 40402), "{e}");
    // Versions keep counting after a delete; the deleted id is not reused.
    assert_eq!(n.register("s", &p("boolean")), 4);
    assert_eq!(n.get("/subjects/s/versions"), (200, json!([1, 3, 4])));

    // A subject: soft first, then permanent.
    let (s, e) = n.delete("/subjects/s?permanent=true");
    assert_eq!((s, error_code(&e)), (404, 40405), "{e}");
    n.put("/config/s", json!({"compatibility": "FULL"}));
    assert_eq!(n.delete("/subjects/s"), (200, json!([1, 3, 4])));
    let (s, e) = n.delete("/subjects/s");
    assert_eq!((s, error_code(&e)), (404, 40404), "{e}");
    assert_eq!(n.get("/subjects"), (200, json!([])));
    assert_eq!(n.get("/subjects?deleted=true"), (200, json!(["s"])));
    assert_eq!(n.get("/subjects?deletedOnly=true"), (200, json!(["s"])));
    assert_eq!(n.get("/subjects/s/versions").0, 404);
    // Registering again revives the subject with the next version.
    assert_eq!(n.register("s", &p("int")), 1);
    assert_eq!(n.get("/subjects/s/versions"), (200, json!([5])));
    // The soft-deleted version 1 held the same schema: it made way.
    assert_eq!(
        n.get("/subjects/s/versions?deleted=true"),
        (200, json!([3, 4, 5]))
    );
    assert_eq!(n.delete("/subjects/s"), (200, json!([5])));
    assert_eq!(
        n.delete("/subjects/s?permanent=true"),
        (200, json!([3, 4, 5]))
    );
    assert_eq!(n.get("/subjects?deleted=true"), (200, json!([])));
    // Its config went with it.
    assert_eq!(n.get("/config/s").0, 404);
    let (s, e) = n.delete("/subjects/s");
    assert_eq!((s, error_code(&e)), (404, 40401), "{e}");
    // Ids 1..4 are gone for good: the next one is 5.
    assert_eq!(n.register("s", &p("float")), 5);
    n.stop();
}

#[test]
fn references_resolve_and_protect_what_they_name() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open_broker(dir.path());
    let n = Node::start(cluster(&broker));
    let address = json!({"type": "record", "name": "Address", "namespace": "t",
        "fields": [{"name": "city", "type": "string"}]})
    .to_string();
    assert_eq!(n.register("address", &address), 1);
    let person = json!({"type": "record", "name": "Person", "namespace": "t",
        "fields": [{"name": "home", "type": "t.Address"}]})
    .to_string();
    // Without the reference the type is unknown.
    let (s, e) = n.post("/subjects/person/versions", json!({"schema": person}));
    assert_eq!((s, error_code(&e)), (422, 42201), "{e}");
    let refs = json!([{"name": "t.Address", "subject": "address", "version": 1}]);
    let (s, body) = n.post(
        "/subjects/person/versions",
        json!({"schema": person, "references": refs}),
    );
    assert_eq!((s, body), (200, json!({"id": 2})));
    let (_, v) = n.get("/subjects/person/versions/1");
    assert_eq!(v["references"], refs);
    assert_eq!(n.get("/schemas/ids/2").1["references"], refs);
    assert_eq!(
        n.get("/subjects/address/versions/1/referencedby"),
        (200, json!([2]))
    );
    // A reference to a version that does not exist.
    let (s, e) = n.post(
        "/subjects/p2/versions",
        json!({"schema": person, "references": [{"name": "t.Address", "subject": "address", "version": 9}]}),
    );
    assert_eq!((s, error_code(&e)), (422, 42201), "{e}");
    // What is referenced cannot be deleted.
    let (s, e) = n.delete("/subjects/address/versions/1");
    assert_eq!((s, error_code(&e)), (422, 42206), "{e}");
    let (s, e) = n.delete("/subjects/address");
    assert_eq!((s, error_code(&e)), (422, 42206), "{e}");
    n.stop();
}

/// Everything an instance acknowledged is there after a restart, broker
/// included: subjects, versions, ids, deletes, configs and modes.
#[test]
fn a_restart_keeps_every_subject_version_id_config_and_mode() {
    let dir = tempfile::tempdir().unwrap();
    let expected: Vec<(String, (u16, Json))>;
    let paths = [
        "/subjects?deleted=true",
        "/subjects",
        "/subjects/a/versions?deleted=true",
        "/subjects/a/versions",
        "/subjects/a/versions/1",
        "/subjects/a/versions/2",
        "/subjects/a/versions/3?deleted=true",
        "/subjects/b/versions",
        "/subjects/b/versions/latest",
        "/subjects/gone/versions?deleted=true",
        "/schemas/ids/1",
        "/schemas/ids/2",
        "/schemas/ids/3",
        "/schemas/ids/4",
        "/schemas/ids/5",
        "/config",
        "/config/a",
        "/mode",
        "/mode/b",
        "/mode/imp",
        "/subjects/imp/versions/3",
    ];
    {
        let broker = open_broker(dir.path());
        let n = Node::start(cluster(&broker));
        n.put("/config", json!({"compatibility": "NONE"}));
        n.register("a", &p("int"));
        n.register("a", &p("long"));
        n.register("a", &p("string"));
        n.register("b", &p("long"));
        n.register("gone", &p("bytes"));
        n.delete("/subjects/a/versions/3");
        n.delete("/subjects/gone");
        n.put("/config/a", json!({"compatibility": "FULL_TRANSITIVE"}));
        n.put("/mode/b", json!({"mode": "READONLY"}));
        n.put("/mode/imp", json!({"mode": "IMPORT"}));
        n.post(
            "/subjects/imp/versions",
            json!({"schema": p("double"), "id": 40, "version": 3}),
        );
        expected = paths.iter().map(|p| (p.to_string(), n.get(p))).collect();
        n.stop();
        broker.log().close().unwrap();
    }
    let broker = open_broker(dir.path());
    let n = Node::start(cluster(&broker));
    for (path, before) in &expected {
        assert_eq!(&n.get(path), before, "{path} after the restart");
    }
    // And ids continue after the highest one.
    assert_eq!(n.register("c", &p("float")), 41);
    n.stop();
}

/// The records are Confluent's: what a Confluent registry sharing the
/// topic would read.
#[test]
fn the_topic_holds_confluents_records() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open_broker(dir.path());
    let c = cluster(&broker);
    let n = Node::start(c.clone());
    n.register("s", &p("int"));
    n.delete("/subjects/s");
    n.put("/config", json!({"compatibility": "FULL"}));
    n.stop();
    let mut backend = c.backend("reader-test", Guarantee::AtLeastOnce).unwrap();
    let mut records = Vec::new();
    backend
        .read_partition(&TopicPartition::new("_schemas", 0), 0, &mut |r| {
            records.push((
                String::from_utf8(r.key.unwrap()).unwrap(),
                r.value.map(|v| String::from_utf8(v).unwrap()),
            ))
        })
        .unwrap();
    assert_eq!(
        records,
        vec![
            (
                r#"{"keytype":"SCHEMA","subject":"s","version":1,"magic":1}"#.to_string(),
                Some(format!(
                    r#"{{"subject":"s","version":1,"id":1,"schemaType":"AVRO","schema":{},"deleted":false}}"#,
                    Json::String(p("int"))
                ))
            ),
            (
                r#"{"keytype":"DELETE_SUBJECT","subject":"s","magic":0}"#.to_string(),
                Some(r#"{"subject":"s","version":1}"#.to_string())
            ),
            (
                r#"{"keytype":"CONFIG","magic":0}"#.to_string(),
                Some(r#"{"compatibilityLevel":"FULL"}"#.to_string())
            ),
        ]
    );
}

/// Two instances on one cluster take registrations at the same moment:
/// every distinct schema gets its own id, the same schema one id, and
/// both instances agree on all of it.
#[test]
fn two_instances_registering_at_once_never_share_an_id() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open_broker(dir.path());
    let a = Arc::new(Node::start(cluster(&broker)));
    let b = Arc::new(Node::start(cluster(&broker)));
    a.put("/config", json!({"compatibility": "NONE"}));
    const EACH: usize = 25;
    let barrier = Arc::new(std::sync::Barrier::new(4));
    let mut threads = Vec::new();
    for (t, node) in [a.clone(), b.clone(), a.clone(), b.clone()]
        .into_iter()
        .enumerate()
    {
        let barrier = barrier.clone();
        threads.push(std::thread::spawn(move || {
            barrier.wait();
            let mut got = Vec::new();
            for i in 0..EACH {
                // Distinct schemas, under one shared subject and one of
                // the thread's own; plus one schema every thread registers.
                let own = format!("{{\"type\":\"fixed\",\"name\":\"f{t}_{i}\",\"size\":1}}");
                let subject = if i % 2 == 0 { "shared" } else { "mine" };
                let subject = format!("{subject}-{}", if i % 2 == 0 { 0 } else { t });
                got.push((own.clone(), node.register(&subject, &own)));
                got.push(("common".into(), node.register("common", &p("string"))));
            }
            got
        }));
    }
    let mut by_schema: std::collections::HashMap<String, i32> = Default::default();
    let mut ids: std::collections::HashMap<i32, String> = Default::default();
    for t in threads {
        for (schema, id) in t.join().unwrap() {
            if let Some(prev) = by_schema.insert(schema.clone(), id) {
                assert_eq!(prev, id, "{schema} got two ids");
            }
            if let Some(prev) = ids.insert(id, schema.clone()) {
                assert_eq!(prev, schema, "id {id} given to two schemas");
            }
        }
    }
    assert_eq!(by_schema.len(), 4 * EACH + 1);
    // Both instances see the same registry.
    let deadline = Instant::now() + Duration::from_secs(10);
    let paths = [
        "/subjects",
        "/subjects/shared-0/versions",
        "/subjects/common/versions",
    ];
    loop {
        let same = paths.iter().all(|p| a.get(p) == b.get(p));
        if same || Instant::now() > deadline {
            for p in paths {
                assert_eq!(a.get(p), b.get(p), "{p}");
            }
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(a.get("/subjects/common/versions"), (200, json!([1])));
    let (_, shared) = a.get("/subjects/shared-0/versions");
    assert_eq!(shared.as_array().unwrap().len(), 4 * EACH / 2 + 2);
    for (schema, id) in &by_schema {
        let (s, body) = b.get(&format!("/schemas/ids/{id}"));
        assert_eq!(s, 200);
        let stored: Json = serde_json::from_str(body["schema"].as_str().unwrap()).unwrap();
        let common = p("string");
        let sent: Json =
            serde_json::from_str(if schema == "common" { &common } else { schema }).unwrap();
        assert_eq!(stored, sent, "id {id}");
    }
    for n in [a, b] {
        if let Ok(n) = Arc::try_unwrap(n) {
            n.stop();
        }
    }
}

#[test]
fn protobuf_and_json_schemas_carry_their_type() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open_broker(dir.path());
    let n = Node::start(cluster(&broker));
    let proto = "syntax = \"proto3\";\npackage t;\nmessage Order {\n  string id = 1;\n  int64 amount = 2;\n}\n";
    let (s, body) = n.post(
        "/subjects/orders-value/versions",
        json!({"schema": proto, "schemaType": "PROTOBUF"}),
    );
    assert_eq!((s, &body), (200, &json!({"id": 1})), "{body}");
    let (_, v) = n.get("/subjects/orders-value/versions/1");
    assert_eq!(v["schemaType"], "PROTOBUF");
    assert_eq!(v["schema"], proto);
    assert_eq!(n.get("/schemas/ids/1").1["schemaType"], "PROTOBUF");
    // The same text as AVRO is not a valid Avro schema.
    let (s, e) = n.post("/subjects/o2/versions", json!({"schema": proto}));
    assert_eq!((s, error_code(&e)), (422, 42201), "{e}");
    // A field number reused with another type is not backward compatible.
    let changed = proto.replace("int64 amount = 2", "string amount = 2");
    let (s, c) = n.post(
        "/compatibility/subjects/orders-value/versions/latest?verbose=true",
        json!({"schema": changed, "schemaType": "PROTOBUF"}),
    );
    assert_eq!(s, 200);
    assert_eq!(c["is_compatible"], false, "{c}");
    // Adding a field is.
    let added = proto.replace("}\n", "  string note = 3;\n}\n");
    assert_eq!(
        n.post(
            "/subjects/orders-value/versions",
            json!({"schema": added, "schemaType": "protobuf"})
        ),
        (200, json!({"id": 2}))
    );

    let schema = json!({"type": "object", "properties": {"a": {"type": "integer"}}}).to_string();
    let (s, body) = n.post(
        "/subjects/j/versions",
        json!({"schema": schema, "schemaType": "JSON"}),
    );
    assert_eq!((s, &body), (200, &json!({"id": 3})), "{body}");
    assert_eq!(n.get("/subjects/j/versions/1").1["schemaType"], "JSON");
    // Looked up in another spelling, same type.
    let respelled =
        serde_json::to_string_pretty(&serde_json::from_str::<Json>(&schema).unwrap()).unwrap();
    let (s, found) = n.post(
        "/subjects/j",
        json!({"schema": respelled, "schemaType": "JSON"}),
    );
    assert_eq!((s, found["id"].clone()), (200, json!(3)), "{found}");
    // Without its type it is read as Avro, which it is not.
    let (s, e) = n.post("/subjects/j", json!({"schema": schema}));
    assert_eq!((s, error_code(&e)), (422, 42201), "{e}");
    n.stop();
}

#[test]
fn normalize_stores_the_canonical_form() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open_broker(dir.path());
    let n = Node::start(cluster(&broker));
    let spaced = "{ \"type\" : \"record\", \"name\" : \"R\", \"fields\" : [ ] }";
    assert_eq!(
        n.post(
            "/subjects/s/versions?normalize=true",
            json!({"schema": spaced})
        ),
        (200, json!({"id": 1}))
    );
    let stored = n.get("/subjects/s/versions/1").1["schema"].clone();
    assert_ne!(stored, json!(spaced));
    assert!(!stored.as_str().unwrap().contains(' '), "{stored}");
    // Without normalize the text is kept as registered.
    n.put("/config/t", json!({"compatibility": "NONE"}));
    let other = "{ \"type\" : \"enum\", \"name\" : \"E\", \"symbols\" : [\"A\"] }";
    n.post("/subjects/t/versions", json!({"schema": other}));
    assert_eq!(n.get("/subjects/t/versions/1").1["schema"], json!(other));
    // normalize in a subject's config does it too.
    n.put("/config/u", json!({"normalize": true}));
    assert_eq!(
        n.get("/config/u"),
        (
            200,
            json!({"compatibilityLevel": "BACKWARD", "normalize": true})
        )
    );
    let third = "{ \"type\" : \"fixed\", \"name\" : \"F\", \"size\" : 2 }";
    n.post("/subjects/u/versions", json!({"schema": third}));
    assert!(!n.get("/subjects/u/versions/1").1["schema"]
        .as_str()
        .unwrap()
        .contains(' '));
    n.stop();
}

/// A topic a Confluent registry wrote (plain, not transactional writes; its
/// NOOP and CONTEXT keys, records with and without `schemaType`, fields of
/// its later versions, a soft-deleted subject, the global config and mode)
/// is served as that registry would serve it, and new ids follow its ids.
#[test]
fn a_topic_written_by_confluents_registry_is_read_as_it_wrote_it() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open_broker(dir.path());
    let c = cluster(&broker);
    c.create_topic(&runnel_cluster::NewTopic::new("_schemas", 1).compacted())
        .unwrap();
    let avro = r#"{"type":"record","name":"Order","fields":[{"name":"id","type":"long"}]}"#;
    let proto = "syntax = \"proto3\";\nmessage Pay {\n  string id = 1;\n}\n";
    let records: Vec<(String, Option<String>)> = vec![
        (r#"{"keytype":"NOOP","magic":0}"#.into(), None),
        (
            r#"{"keytype":"CONTEXT","tenant":"default","context":".","magic":0}"#.into(),
            Some(r#"{"tenant":"default","context":"."}"#.into()),
        ),
        (
            r#"{"keytype":"SCHEMA","subject":"orders-value","version":1,"magic":1}"#.into(),
            Some(json!({"subject": "orders-value", "version": 1, "id": 7, "schema": avro, "deleted": false}).to_string()),
        ),
        (
            r#"{"keytype":"SCHEMA","subject":"pay-value","version":1,"magic":1}"#.into(),
            Some(json!({"subject": "pay-value", "version": 1, "id": 8, "md5": "x",
                "schemaType": "PROTOBUF", "metadata": null, "ruleSet": null,
                "schema": proto, "deleted": false}).to_string()),
        ),
        (
            r#"{"keytype":"SCHEMA","subject":"gone","version":1,"magic":1}"#.into(),
            Some(json!({"subject": "gone", "version": 1, "id": 7, "schema": avro, "deleted": false}).to_string()),
        ),
        (
            r#"{"keytype":"DELETE_SUBJECT","subject":"gone","magic":0}"#.into(),
            Some(r#"{"subject":"gone","version":1}"#.into()),
        ),
        (
            r#"{"keytype":"CONFIG","magic":0}"#.into(),
            Some(r#"{"compatibilityLevel":"FULL"}"#.into()),
        ),
        (
            r#"{"keytype":"CONFIG","subject":"pay-value","magic":0}"#.into(),
            Some(r#"{"subject":"pay-value","compatibilityLevel":"NONE"}"#.into()),
        ),
        (
            r#"{"keytype":"MODE","magic":0}"#.into(),
            Some(r#"{"mode":"READWRITE"}"#.into()),
        ),
    ];
    let mut backend = c.backend("confluent-like", Guarantee::AtLeastOnce).unwrap();
    backend
        .send(
            records
                .into_iter()
                .map(|(k, v)| runnel_cluster::ProducedRecord {
                    topic: "_schemas".into(),
                    partition: 0,
                    timestamp: 1,
                    key: Some(k.into_bytes()),
                    value: v.map(String::into_bytes),
                    headers: Vec::new(),
                })
                .collect(),
        )
        .unwrap();
    backend.commit(&[]).unwrap();

    let n = Node::start(c);
    assert_eq!(
        n.get("/subjects"),
        (200, json!(["orders-value", "pay-value"]))
    );
    assert_eq!(
        n.get("/subjects?deleted=true"),
        (200, json!(["gone", "orders-value", "pay-value"]))
    );
    assert_eq!(
        n.get("/subjects/orders-value/versions/1"),
        (
            200,
            json!({"subject": "orders-value", "version": 1, "id": 7, "schema": avro})
        )
    );
    assert_eq!(
        n.get("/schemas/ids/8"),
        (200, json!({"schemaType": "PROTOBUF", "schema": proto}))
    );
    assert_eq!(
        n.get("/config"),
        (200, json!({"compatibilityLevel": "FULL"}))
    );
    assert_eq!(
        n.get("/config/pay-value"),
        (200, json!({"compatibilityLevel": "NONE"}))
    );
    assert_eq!(
        n.get("/schemas/ids/7/subjects?deleted=true"),
        (200, json!(["gone", "orders-value"]))
    );
    // The same schema is found under its id; a new one gets the next id.
    let (_, found) = n.post("/subjects/orders-value", json!({"schema": avro}));
    assert_eq!(found["id"], 7);
    assert_eq!(n.register("other", &p("X")), 9);
    n.stop();
}
