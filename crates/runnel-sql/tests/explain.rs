//! EXPLAIN output pinned by golden files: each representative query's
//! plan (output schema, sources, topology) is compared with
//! `tests/explain/<name>.txt`, so a planner change shows up in review as a
//! diff of those files. `UPDATE_GOLDEN=1 cargo test -p runnel-sql --test
//! explain` rewrites them.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use runnel_broker::{Broker, BrokerConfig};
use runnel_embed::LocalCluster;
use runnel_sql::engine::QueryDescription;
use runnel_sql::{Engine, EngineConfig, Outcome};

/// The catalog every query is explained against.
const DDL: &str = "
CREATE STREAM ORDERS (ID STRING KEY, USER_ID STRING, AMOUNT INT, ITEM STRING)
  WITH (KAFKA_TOPIC='orders', VALUE_FORMAT='JSON', PARTITIONS=2);
CREATE STREAM PAYMENTS (ID STRING KEY, ORDER_ID STRING, PAID INT)
  WITH (KAFKA_TOPIC='payments', VALUE_FORMAT='JSON', PARTITIONS=2);
CREATE TABLE USERS (ID STRING PRIMARY KEY, NAME STRING, REGION STRING)
  WITH (KAFKA_TOPIC='users', VALUE_FORMAT='JSON', PARTITIONS=2);
CREATE TABLE ACCOUNTS (ID STRING PRIMARY KEY, BALANCE BIGINT)
  WITH (KAFKA_TOPIC='accounts', VALUE_FORMAT='JSON', PARTITIONS=2);
";

/// Representative queries by golden file name.
const QUERIES: &[(&str, &str)] = &[
    (
        "filter_projection_csas",
        "CREATE STREAM BIG AS SELECT ID, AMOUNT * 2 AS DOUBLED, UCASE(ITEM) AS ITEM \
         FROM ORDERS WHERE AMOUNT > 10 EMIT CHANGES;",
    ),
    (
        "windowed_count_ctas",
        "CREATE TABLE PER_MINUTE AS SELECT USER_ID, COUNT(*) AS N FROM ORDERS \
         WINDOW TUMBLING (SIZE 1 MINUTE) GROUP BY USER_ID EMIT CHANGES;",
    ),
    (
        "session_window_sum",
        "CREATE TABLE SESSIONS AS SELECT USER_ID, SUM(AMOUNT) AS TOTAL FROM ORDERS \
         WINDOW SESSION (5 MINUTES) GROUP BY USER_ID EMIT CHANGES;",
    ),
    (
        "stream_table_join",
        "CREATE STREAM ENRICHED AS SELECT O.ID AS ID, O.AMOUNT AS AMOUNT, U.NAME AS NAME \
         FROM ORDERS O JOIN USERS U ON O.USER_ID = U.ID EMIT CHANGES;",
    ),
    (
        "table_table_join",
        "CREATE TABLE USER_BALANCES AS SELECT U.ID AS ID, U.NAME AS NAME, A.BALANCE AS BALANCE \
         FROM USERS U LEFT JOIN ACCOUNTS A ON U.ID = A.ID EMIT CHANGES;",
    ),
    (
        "stream_stream_join",
        "CREATE STREAM PAID AS SELECT O.ID AS ID, O.AMOUNT AS AMOUNT, P.PAID AS PAID \
         FROM ORDERS O JOIN PAYMENTS P WITHIN 1 HOUR ON O.ID = P.ORDER_ID EMIT CHANGES;",
    ),
    (
        "aggregate_having",
        "CREATE TABLE BIG_SPENDERS AS SELECT USER_ID, SUM(AMOUNT) AS TOTAL, COUNT(*) AS N \
         FROM ORDERS GROUP BY USER_ID HAVING SUM(AMOUNT) > 100 EMIT CHANGES;",
    ),
    (
        "table_group_by",
        "CREATE TABLE PER_REGION AS SELECT REGION, COUNT(*) AS USERS FROM USERS \
         GROUP BY REGION EMIT CHANGES;",
    ),
    (
        "partition_by",
        "CREATE STREAM BY_USER AS SELECT USER_ID, ID, AMOUNT FROM ORDERS \
         PARTITION BY USER_ID EMIT CHANGES;",
    ),
    (
        "insert_into_select",
        "INSERT INTO ORDERS SELECT ORDER_ID AS ID, ID AS USER_ID, PAID AS AMOUNT, \
         'payment' AS ITEM FROM PAYMENTS EMIT CHANGES;",
    ),
    (
        "push_select",
        "SELECT ID, AMOUNT FROM ORDERS WHERE ITEM = 'book' EMIT CHANGES;",
    ),
];

/// The reviewable text of an EXPLAIN: the query, its output columns, its
/// sources and its topology.
fn render(query: &str, d: &QueryDescription) -> String {
    let mut out = format!("{query}\n\nfields:\n");
    for c in &d.fields {
        out.push_str(&format!("  {} {}\n", c.name, c.ty));
    }
    out.push_str(&format!("sources: {}\n\n", d.sources.join(", ")));
    out.push_str(&d.topology);
    if !out.ends_with('\n') {
        out.push('\n');
    }
    out
}

fn golden_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/explain")
}

#[test]
fn explain_output_matches_golden_files() {
    let dir = tempfile::tempdir().expect("temp dir");
    let broker = Broker::open(dir.path(), BrokerConfig::default()).expect("broker opens");
    let engine = Engine::start(
        Arc::new(LocalCluster::new(broker.local())),
        EngineConfig::default(),
    )
    .expect("engine starts");
    if let Err((e, _)) = engine.execute(DDL, &BTreeMap::new()) {
        panic!("DDL: {e}");
    }
    let update = std::env::var_os("UPDATE_GOLDEN").is_some_and(|v| v != "0");
    let mut failures = Vec::new();
    for (name, query) in QUERIES {
        let got = match engine.execute(&format!("EXPLAIN {query}"), &BTreeMap::new()) {
            Ok(executed) => match executed.first().map(|e| &e.outcome) {
                Some(Outcome::QueryDescription(d)) => render(query, d),
                other => panic!("{name}: EXPLAIN answered {other:?}"),
            },
            Err((e, _)) => panic!("{name}: EXPLAIN failed: {e}"),
        };
        let path = golden_dir().join(format!("{name}.txt"));
        if update {
            std::fs::write(&path, &got).expect("golden file written");
            continue;
        }
        let want = std::fs::read_to_string(&path).unwrap_or_default();
        if want != got {
            failures.push(format!(
                "{name}: EXPLAIN differs from {}\n--- expected\n{want}\n--- got\n{got}",
                path.display()
            ));
        }
    }
    engine.shutdown();
    assert!(
        failures.is_empty(),
        "{}\n(rerun with UPDATE_GOLDEN=1 to accept the new plans)",
        failures.join("\n")
    );
}
