//! Statements that read the catalog: SHOW/LIST, DESCRIBE, EXPLAIN.

use std::sync::Arc;

use serde_json::{json, Value as Json};

use super::{backend_err, lock, Engine, Entity, State};
use crate::ast::{DescribeTarget, ExplainTarget, ShowWhat, SourceKind, Statement};
use crate::catalog::SourceInfo;
use crate::error::SqlError;
use crate::plan::{Planner, Sink};
use crate::schema::{WindowType, ROWTIME};
use crate::types::SqlType;

impl Engine {
    pub(super) fn show(
        &self,
        what: &ShowWhat,
        extended: bool,
        text: &str,
    ) -> Result<Entity, SqlError> {
        let st = lock(&self.inner.state);
        Ok(match what {
            ShowWhat::Streams | ShowWhat::Tables => {
                let kind = if *what == ShowWhat::Streams {
                    SourceKind::Stream
                } else {
                    SourceKind::Table
                };
                if extended {
                    let descs: Vec<Json> = st
                        .catalog
                        .sources
                        .values()
                        .filter(|s| s.kind == kind)
                        .map(|s| self.source_description(&st, s, true))
                        .collect();
                    return Ok(
                        json!({"@type": "source_descriptions", "statementText": text, "sourceDescriptions": descs, "warnings": []}),
                    );
                }
                let list: Vec<Json> = st
                    .catalog
                    .sources
                    .values()
                    .filter(|s| s.kind == kind)
                    .map(|s| {
                        json!({"type": s.kind.to_string(), "name": s.name, "topic": s.topic,
                               "keyFormat": s.key_format.to_string(), "valueFormat": s.value_format.to_string(),
                               "isWindowed": s.window.is_some()})
                    })
                    .collect();
                if kind == SourceKind::Stream {
                    json!({"@type": "streams", "statementText": text, "streams": list, "warnings": []})
                } else {
                    json!({"@type": "tables", "statementText": text, "tables": list, "warnings": []})
                }
            }
            ShowWhat::Queries => {
                let list: Vec<Json> = st
                    .running
                    .values()
                    .map(|r| {
                        let state = lock(&r.state).clone();
                        json!({"queryString": r.info.sql, "sinks": [r.info.sink], "sinkKafkaTopics": [r.info.sink_topic],
                               "id": r.info.id, "statusCount": {state.clone(): 1}, "queryType": "PERSISTENT", "state": state})
                    })
                    .collect();
                json!({"@type": "queries", "statementText": text, "queries": list, "warnings": []})
            }
            ShowWhat::Topics { all } => {
                drop(st);
                let topics = self.inner.cluster.topics().map_err(backend_err)?;
                let list: Vec<Json> = topics
                    .into_iter()
                    // As ksqlDB's, SHOW TOPICS leaves out the queries' own
                    // changelog and repartition topics.
                    .filter(|(n, _)| *all || !internal_topic(&self.inner.config.service_id, n))
                    .map(|(n, p)| json!({"name": n, "replicaInfo": vec![1; usize::try_from(p).unwrap_or(0)]}))
                    .collect();
                json!({"@type": "kafka_topics", "statementText": text, "topics": list, "warnings": []})
            }
            ShowWhat::Properties => {
                let mut props: Vec<Json> = vec![
                    json!({"name": "ksql.service.id", "scope": "KSQL", "value": self.inner.config.service_id}),
                    json!({"name": "ksql.streams.commit.interval.ms", "scope": "KSQL", "value": self.inner.config.commit_interval.as_millis().to_string()}),
                    json!({"name": "processing.guarantee", "scope": "KSQL", "value": st.props.get("processing.guarantee").cloned().unwrap_or_else(|| "at_least_once".into())}),
                ];
                for (k, v) in &st.props {
                    if k != "processing.guarantee" {
                        props.push(json!({"name": k, "scope": "SESSION", "value": v}));
                    }
                }
                json!({"@type": "properties", "statementText": text, "properties": props, "overwrittenProperties": [], "defaultProperties": [], "warnings": []})
            }
            ShowWhat::Functions => {
                let list: Vec<Json> = self
                    .inner
                    .functions
                    .list()
                    .into_iter()
                    .map(|f| {
                        json!({"name": f.name, "category": f.category, "type": match f.kind {
                            crate::functions::FunctionKind::Scalar => "SCALAR",
                            crate::functions::FunctionKind::Aggregate => "AGGREGATE",
                            crate::functions::FunctionKind::Table => "TABLE",
                        }})
                    })
                    .collect();
                json!({"@type": "function_names", "statementText": text, "functions": list, "warnings": []})
            }
            ShowWhat::Variables => {
                let list: Vec<Json> = st
                    .variables
                    .iter()
                    .map(|(k, v)| json!({"name": k, "value": v}))
                    .collect();
                json!({"@type": "variables", "statementText": text, "variables": list, "warnings": []})
            }
        })
    }

    pub(super) fn source_description(&self, st: &State, s: &SourceInfo, extended: bool) -> Json {
        let mut fields: Vec<Json> = Vec::new();
        fields.push(json!({"name": ROWTIME, "schema": type_json(&SqlType::BigInt)}));
        for c in &s.schema.key {
            fields.push(json!({"name": c.name, "schema": type_json(&c.ty), "type": if s.kind == SourceKind::Table { "PRIMARY_KEY" } else { "KEY" }}));
        }
        for c in &s.schema.value {
            fields.push(json!({"name": c.name, "schema": type_json(&c.ty)}));
        }
        let readers: Vec<Json> = st.catalog.readers_of(&s.name).iter().map(|q| json!({"queryString": q.sql, "sinks": [q.sink], "sinkKafkaTopics": [q.sink_topic], "id": q.id, "queryType": "PERSISTENT", "state": "RUNNING"})).collect();
        let writers: Vec<Json> = st.catalog.writers_of(&s.name).iter().map(|q| json!({"queryString": q.sql, "sinks": [q.sink], "sinkKafkaTopics": [q.sink_topic], "id": q.id, "queryType": "PERSISTENT", "state": "RUNNING"})).collect();
        json!({
            "name": s.name,
            "windowType": match s.window { None => Json::Null, Some(WindowType::Time{..}) => json!("TUMBLING"), Some(WindowType::Session) => json!("SESSION") },
            "readQueries": readers,
            "writeQueries": writers,
            "fields": fields,
            "type": s.kind.to_string(),
            "timestamp": s.timestamp.clone().unwrap_or_default(),
            "statistics": "",
            "errorStats": "",
            "extended": extended,
            "keyFormat": s.key_format.to_string(),
            "valueFormat": s.value_format.to_string(),
            "topic": s.topic,
            "partitions": s.partitions,
            "replication": 1,
            "statement": s.sql,
            "queryOffsetSummaries": [],
            "sourceConstraints": [],
        })
    }

    pub(super) fn describe(
        &self,
        target: &DescribeTarget,
        extended: bool,
        text: &str,
    ) -> Result<Entity, SqlError> {
        let st = lock(&self.inner.state);
        match target {
            DescribeTarget::Source(name) => {
                let Some(s) = st.catalog.source(&name.name) else {
                    return Err(self.not_found(&st, name));
                };
                Ok(
                    json!({"@type": "sourceDescription", "statementText": text, "sourceDescription": self.source_description(&st, s, extended), "warnings": []}),
                )
            }
            DescribeTarget::Streams | DescribeTarget::Tables => {
                let kind = if matches!(target, DescribeTarget::Streams) {
                    SourceKind::Stream
                } else {
                    SourceKind::Table
                };
                let descs: Vec<Json> = st
                    .catalog
                    .sources
                    .values()
                    .filter(|s| s.kind == kind)
                    .map(|s| self.source_description(&st, s, extended))
                    .collect();
                Ok(
                    json!({"@type": "source_descriptions", "statementText": text, "sourceDescriptions": descs, "warnings": []}),
                )
            }
            DescribeTarget::Function(name) => {
                let Some(info) = self
                    .inner
                    .functions
                    .list()
                    .into_iter()
                    .find(|f| f.name.eq_ignore_ascii_case(&name.name))
                else {
                    let mut msg = format!("Can't find any functions with the name '{}'", name.name);
                    if let Some(s) = self.inner.functions.suggest(&name.name) {
                        msg.push_str(&format!("; did you mean {s}?"));
                    }
                    return Err(SqlError::not_found(Some(name.pos), msg));
                };
                Ok(
                    json!({"@type": "describe_function", "statementText": text, "name": info.name, "description": info.description,
                          "author": "Runnel", "version": env!("CARGO_PKG_VERSION"), "path": "internal",
                          "functions": [{"arguments": [], "returnType": "", "description": info.description, "argumentTypes": [info.signature]}],
                          "type": match info.kind { crate::functions::FunctionKind::Scalar => "SCALAR", crate::functions::FunctionKind::Aggregate => "AGGREGATE", crate::functions::FunctionKind::Table => "TABLE" },
                          "warnings": []}),
                )
            }
        }
    }

    pub(super) fn explain(&self, target: &ExplainTarget, text: &str) -> Result<Entity, SqlError> {
        let st = lock(&self.inner.state);
        match target {
            ExplainTarget::QueryId(id) => {
                let Some(q) = st
                    .catalog
                    .queries
                    .values()
                    .find(|q| q.id.eq_ignore_ascii_case(&id.name))
                else {
                    return Err(SqlError::not_found(Some(id.pos), format!("Query with id:{} does not exist, use SHOW QUERIES to view the full set of running queries.", id.name)));
                };
                let sink = st.catalog.source(&q.sink);
                let fields: Vec<Json> = sink
                    .map(|s| {
                        s.schema
                            .columns()
                            .map(|c| json!({"name": c.name, "schema": type_json(&c.ty)}))
                            .collect()
                    })
                    .unwrap_or_default();
                let state = st
                    .running
                    .get(&q.id)
                    .map(|r| lock(&r.state).clone())
                    .unwrap_or_else(|| "UNKNOWN".into());
                Ok(
                    json!({"@type": "queryDescription", "statementText": text, "queryDescription": {
                    "id": q.id, "statementText": q.sql, "windowType": Json::Null, "fields": fields,
                    "sources": q.sources, "sinks": [q.sink], "topology": q.topology, "executionPlan": q.topology,
                    "overriddenProperties": {}, "state": state, "queryType": "PERSISTENT"}, "warnings": []}),
                )
            }
            ExplainTarget::Statement(stmt) => {
                let query = match stmt.as_ref() {
                    Statement::CreateAs { query, .. } | Statement::InsertSelect { query, .. } | Statement::Select(query) => query,
                    _ => return Err(SqlError::new("EXPLAIN works on queries: SELECT, CREATE … AS SELECT, INSERT INTO … SELECT")),
                };
                let mut planner = Planner::new(&st.catalog, &self.inner.functions, "EXPLAIN");
                let planned = planner.plan(query, "EXPLAIN", Sink::Callback(Arc::new(|_| {})))?;
                let topology = planner
                    .builder
                    .build()
                    .map_err(|e| SqlError::new(e.to_string()))?;
                let fields: Vec<Json> = planned
                    .schema
                    .columns()
                    .map(|c| json!({"name": c.name, "schema": type_json(&c.ty)}))
                    .collect();
                Ok(
                    json!({"@type": "queryDescription", "statementText": text, "queryDescription": {
                    "id": "", "statementText": text, "fields": fields, "sources": planned.sources, "sinks": [],
                    "topology": topology.describe(), "executionPlan": topology.describe(), "overriddenProperties": {}, "state": "NOT_RUNNING"}, "warnings": []}),
                )
            }
        }
    }
}

/// Whether `topic` belongs to the system or to a query's internals
/// (state changelogs and repartition topics are named after the query's
/// application id, which starts with the service id), not to a user.
fn internal_topic(service_id: &str, topic: &str) -> bool {
    topic.starts_with('_')
        || topic
            .strip_prefix(service_id)
            .is_some_and(|rest| rest.starts_with("query_") || rest.starts_with("transient_"))
}

/// ksqlDB's JSON description of a type.
pub(super) fn type_json(t: &SqlType) -> Json {
    match t {
        SqlType::Array(inner) => {
            json!({"type": "ARRAY", "fields": Json::Null, "memberSchema": type_json(inner)})
        }
        SqlType::Map(_, v) => {
            json!({"type": "MAP", "fields": Json::Null, "memberSchema": type_json(v)})
        }
        SqlType::Struct(fields) => {
            json!({"type": "STRUCT", "fields": fields.iter().map(|(n, t)| json!({"name": n, "schema": type_json(t)})).collect::<Vec<_>>(), "memberSchema": Json::Null})
        }
        SqlType::Decimal { precision, scale } => {
            json!({"type": "DECIMAL", "fields": Json::Null, "memberSchema": Json::Null, "parameters": {"precision": precision, "scale": scale}})
        }
        SqlType::Int => {
            json!({"type": "INTEGER", "fields": Json::Null, "memberSchema": Json::Null})
        }
        other => {
            json!({"type": other.to_string(), "fields": Json::Null, "memberSchema": Json::Null})
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_topics_are_the_systems_and_the_queries_own() {
        assert!(internal_topic("runnel_", "_runnel-sql-commands"));
        assert!(internal_topic("runnel_", "__consumer_offsets"));
        assert!(internal_topic(
            "runnel_",
            "runnel_query_CTAS_T_1-Aggregate-Materialize-changelog"
        ));
        assert!(internal_topic(
            "runnel_",
            "runnel_transient_3_x-repartition"
        ));
        assert!(!internal_topic("runnel_", "orders"));
        assert!(!internal_topic("runnel_", "runnel_orders"));
        assert!(!internal_topic("other_", "runnel_query_CTAS_T_1-changelog"));
    }
}
