//! ksqlDB's REST entities (the `@type` bodies `/ksql` answers with),
//! rendered from what the engine says a statement did
//! ([`runnel_sql::Executed`]). The engine knows no JSON shapes; this
//! module is the one place they are written.

use runnel_sql::ast::SourceKind;
use runnel_sql::catalog::{QueryInfo, SourceInfo};
use runnel_sql::engine::{
    Executed, Outcome, Property, PropertyScope, QueryDescription, RunningQuery, SourceDescription,
};
use runnel_sql::functions::{FunctionInfo, FunctionKind};
use runnel_sql::schema::{Column, WindowType, ROWTIME};
use runnel_sql::types::SqlType;
use serde_json::{json, Value as Json};

/// The entity of one statement.
pub fn to_json(e: &Executed) -> Json {
    let text = e.statement_text.as_str();
    match &e.outcome {
        Outcome::Status {
            message,
            command: Some(c),
        } => json!({
            "@type": "currentStatus",
            "statementText": text,
            "commandId": format!("statement/{}", c.seq),
            "commandStatus": {"status": "SUCCESS", "message": message, "queryId": c.query_id},
            "commandSequenceNumber": c.seq,
            "warnings": []
        }),
        Outcome::Status {
            message,
            command: None,
        } => {
            json!({"@type": "currentStatus", "statementText": text, "commandStatus": {"status": "SUCCESS", "message": message}, "warnings": []})
        }
        Outcome::Streams(list) => {
            json!({"@type": "streams", "statementText": text, "streams": sources(list), "warnings": []})
        }
        Outcome::Tables(list) => {
            json!({"@type": "tables", "statementText": text, "tables": sources(list), "warnings": []})
        }
        Outcome::SourceDescriptions(descs) => {
            let descs: Vec<Json> = descs.iter().map(source_description).collect();
            json!({"@type": "source_descriptions", "statementText": text, "sourceDescriptions": descs, "warnings": []})
        }
        Outcome::SourceDescription(d) => {
            json!({"@type": "sourceDescription", "statementText": text, "sourceDescription": source_description(d), "warnings": []})
        }
        Outcome::Queries(list) => {
            let list: Vec<Json> = list.iter().map(running_query).collect();
            json!({"@type": "queries", "statementText": text, "queries": list, "warnings": []})
        }
        Outcome::Topics(topics) => {
            let list: Vec<Json> = topics
                .iter()
                .map(|(n, p)| json!({"name": n, "replicaInfo": vec![1; usize::try_from(*p).unwrap_or(0)]}))
                .collect();
            json!({"@type": "kafka_topics", "statementText": text, "topics": list, "warnings": []})
        }
        Outcome::Properties(props) => {
            let props: Vec<Json> = props.iter().map(property).collect();
            json!({"@type": "properties", "statementText": text, "properties": props, "overwrittenProperties": [], "defaultProperties": [], "warnings": []})
        }
        Outcome::Functions(list) => {
            let list: Vec<Json> = list
                .iter()
                .map(|f| json!({"name": f.name, "category": f.category, "type": function_type(f)}))
                .collect();
            json!({"@type": "function_names", "statementText": text, "functions": list, "warnings": []})
        }
        Outcome::Variables(vars) => {
            let list: Vec<Json> = vars
                .iter()
                .map(|(k, v)| json!({"name": k, "value": v}))
                .collect();
            json!({"@type": "variables", "statementText": text, "variables": list, "warnings": []})
        }
        Outcome::Function(info) => {
            json!({"@type": "describe_function", "statementText": text, "name": info.name, "description": info.description,
                  "author": "Runnel", "version": env!("CARGO_PKG_VERSION"), "path": "internal",
                  "functions": [{"arguments": [], "returnType": "", "description": info.description, "argumentTypes": [info.signature]}],
                  "type": function_type(info),
                  "warnings": []})
        }
        Outcome::QueryDescription(d) => {
            json!({"@type": "queryDescription", "statementText": text, "queryDescription": query_description(d), "warnings": []})
        }
        Outcome::ConnectorInfo(info) => {
            let info = json!({"name": info["name"], "config": info["config"], "tasks": info["tasks"], "type": info["type"]});
            json!({"@type": "connector_info", "statementText": text, "info": info, "warnings": []})
        }
        Outcome::Connectors {
            connectors,
            warnings,
        } => {
            let list: Vec<Json> = connectors
                .iter()
                .map(|c| json!({"name": c.name, "type": c.kind, "className": c.class, "state": c.state}))
                .collect();
            json!({"@type": "connector_list", "statementText": text, "warnings": warning_list(warnings), "connectors": list})
        }
        Outcome::ConnectorDescription(d) => {
            let sources: Vec<Json> = d
                .sources
                .iter()
                .map(|s| {
                    source_description(&SourceDescription {
                        source: s.clone(),
                        read_queries: Vec::new(),
                        write_queries: Vec::new(),
                        extended: false,
                    })
                })
                .collect();
            json!({"@type": "connector_description", "statementText": text, "connectorClass": d.class,
                   "status": d.status, "sources": sources, "topics": d.topics, "warnings": warning_list(&d.warnings)})
        }
        Outcome::DroppedConnector(name) => {
            json!({"@type": "drop_connector", "statementText": text, "connectorName": name, "warnings": []})
        }
        Outcome::Warning(message) => {
            json!({"@type": "warning_entity", "statementText": text, "message": message, "warnings": []})
        }
    }
}

/// ksqlDB's `KsqlWarning` list.
fn warning_list(warnings: &[String]) -> Vec<Json> {
    warnings.iter().map(|m| json!({"message": m})).collect()
}

/// The command id and status of a statement numbered in the command
/// sequence (what `/status/{commandId}` answers).
pub fn command_status(e: &Executed) -> Option<(String, Json)> {
    match &e.outcome {
        Outcome::Status {
            message,
            command: Some(c),
        } => Some((
            format!("statement/{}", c.seq),
            json!({"status": "SUCCESS", "message": message, "queryId": c.query_id}),
        )),
        _ => None,
    }
}

fn sources(list: &[SourceInfo]) -> Vec<Json> {
    list.iter()
        .map(|s| {
            json!({"type": s.kind.to_string(), "name": s.name, "topic": s.topic,
                   "keyFormat": s.key_format.to_string(), "valueFormat": s.value_format.to_string(),
                   "isWindowed": s.window.is_some()})
        })
        .collect()
}

fn running_query(r: &RunningQuery) -> Json {
    let q = &r.info;
    json!({"queryString": q.sql, "sinks": [q.sink], "sinkKafkaTopics": [q.sink_topic],
           "id": q.id, "statusCount": {r.state.clone(): 1}, "queryType": "PERSISTENT", "state": r.state})
}

/// A query reading or writing a described source.
fn source_query(q: &QueryInfo) -> Json {
    json!({"queryString": q.sql, "sinks": [q.sink], "sinkKafkaTopics": [q.sink_topic], "id": q.id, "queryType": "PERSISTENT", "state": "RUNNING"})
}

fn source_description(d: &SourceDescription) -> Json {
    let s = &d.source;
    let mut fields: Vec<Json> = Vec::new();
    fields.push(json!({"name": ROWTIME, "schema": type_json(&SqlType::BigInt)}));
    for c in &s.schema.key {
        fields.push(json!({"name": c.name, "schema": type_json(&c.ty), "type": if s.kind == SourceKind::Table { "PRIMARY_KEY" } else { "KEY" }}));
    }
    for c in &s.schema.value {
        fields.push(json!({"name": c.name, "schema": type_json(&c.ty)}));
    }
    for h in &s.headers {
        let mut f =
            json!({"name": h.column.name, "schema": type_json(&h.column.ty), "type": "HEADER"});
        if let Some(k) = &h.key {
            f["headerKey"] = json!(k);
        }
        fields.push(f);
    }
    let readers: Vec<Json> = d.read_queries.iter().map(source_query).collect();
    let writers: Vec<Json> = d.write_queries.iter().map(source_query).collect();
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
        "extended": d.extended,
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

fn property(p: &Property) -> Json {
    let scope = match p.scope {
        PropertyScope::Ksql => "KSQL",
        PropertyScope::Session => "SESSION",
    };
    json!({"name": p.name, "scope": scope, "value": p.value})
}

fn function_type(f: &FunctionInfo) -> &'static str {
    match f.kind {
        FunctionKind::Scalar => "SCALAR",
        FunctionKind::Aggregate => "AGGREGATE",
        FunctionKind::Table => "TABLE",
    }
}

fn fields(columns: &[Column]) -> Vec<Json> {
    columns
        .iter()
        .map(|c| json!({"name": c.name, "schema": type_json(&c.ty)}))
        .collect()
}

fn query_description(d: &QueryDescription) -> Json {
    if d.persistent {
        json!({
            "id": d.id, "statementText": d.statement_text, "windowType": Json::Null, "fields": fields(&d.fields),
            "sources": d.sources, "sinks": d.sinks, "topology": d.topology, "executionPlan": d.topology,
            "overriddenProperties": {}, "state": d.state, "queryType": "PERSISTENT"})
    } else {
        json!({
            "id": d.id, "statementText": d.statement_text, "fields": fields(&d.fields), "sources": d.sources, "sinks": d.sinks,
            "topology": d.topology, "executionPlan": d.topology, "overriddenProperties": {}, "state": d.state})
    }
}

/// ksqlDB's JSON description of a type.
pub fn type_json(t: &SqlType) -> Json {
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
    use runnel_sql::engine::CommandRef;

    fn executed(outcome: Outcome) -> Executed {
        Executed {
            statement_text: "S;".to_string(),
            outcome,
        }
    }

    #[test]
    fn commands_carry_their_id_and_sequence_number() {
        let e = executed(Outcome::Status {
            message: "Created query with ID Q_1".into(),
            command: Some(CommandRef {
                seq: 1,
                query_id: Some("Q_1".into()),
            }),
        });
        assert_eq!(
            to_json(&e).to_string(),
            r#"{"@type":"currentStatus","statementText":"S;","commandId":"statement/1","commandStatus":{"status":"SUCCESS","message":"Created query with ID Q_1","queryId":"Q_1"},"commandSequenceNumber":1,"warnings":[]}"#
        );
        let (id, status) = command_status(&e).expect("a command");
        assert_eq!(id, "statement/1");
        assert_eq!(status["queryId"], json!("Q_1"));
    }

    #[test]
    fn other_statements_have_no_command_id() {
        let e = executed(Outcome::Status {
            message: "Inserted 1 row".into(),
            command: None,
        });
        assert_eq!(
            to_json(&e).to_string(),
            r#"{"@type":"currentStatus","statementText":"S;","commandStatus":{"status":"SUCCESS","message":"Inserted 1 row"},"warnings":[]}"#
        );
        assert!(command_status(&e).is_none());
    }

    #[test]
    fn explained_plans_and_running_queries_differ_in_shape() {
        let d = QueryDescription {
            id: String::new(),
            statement_text: "EXPLAIN SELECT …".into(),
            fields: vec![Column::new("V", SqlType::Int)],
            sources: vec!["S".into()],
            sinks: Vec::new(),
            topology: "Topologies:\n".into(),
            state: "NOT_RUNNING".into(),
            persistent: false,
        };
        let plan = to_json(&executed(Outcome::QueryDescription(d.clone())));
        let q = &plan["queryDescription"];
        assert_eq!(q["fields"][0]["schema"]["type"], json!("INTEGER"));
        assert_eq!(q["executionPlan"], q["topology"]);
        assert!(q.get("queryType").is_none() && q.get("windowType").is_none());
        let running = to_json(&executed(Outcome::QueryDescription(QueryDescription {
            persistent: true,
            ..d
        })));
        assert_eq!(
            running["queryDescription"]["queryType"],
            json!("PERSISTENT")
        );
        assert_eq!(running["queryDescription"]["windowType"], Json::Null);
    }

    #[test]
    fn nested_types_describe_their_members() {
        let t = SqlType::Array(Box::new(SqlType::Decimal {
            precision: 4,
            scale: 2,
        }));
        assert_eq!(
            type_json(&t),
            json!({"type": "ARRAY", "fields": null, "memberSchema": {"type": "DECIMAL", "fields": null, "memberSchema": null, "parameters": {"precision": 4, "scale": 2}}})
        );
    }
}
