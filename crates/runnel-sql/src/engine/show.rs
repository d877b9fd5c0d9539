//! Statements that read the catalog: SHOW/LIST, DESCRIBE, EXPLAIN.

use std::sync::Arc;

use super::result::{
    Outcome, Property, PropertyScope, QueryDescription, RunningQuery, SourceDescription,
};
use super::{backend_err, lock, Engine, State};
use crate::ast::{DescribeTarget, ExplainTarget, ShowWhat, SourceKind, Statement};
use crate::catalog::SourceInfo;
use crate::error::SqlError;
use crate::plan::{Planner, Sink};

impl Engine {
    pub(super) fn show(&self, what: &ShowWhat, extended: bool) -> Result<Outcome, SqlError> {
        let st = lock(&self.inner.state);
        Ok(match what {
            ShowWhat::Connectors(scope) => {
                // Kafka Connect is asked over HTTP: not under the lock.
                drop(st);
                return self.show_connectors(*scope);
            }
            ShowWhat::Streams | ShowWhat::Tables => {
                let kind = if *what == ShowWhat::Streams {
                    SourceKind::Stream
                } else {
                    SourceKind::Table
                };
                let sources = st.catalog.sources.values().filter(|s| s.kind == kind);
                if extended {
                    return Ok(Outcome::SourceDescriptions(
                        sources.map(|s| source_description(&st, s, true)).collect(),
                    ));
                }
                let list: Vec<SourceInfo> = sources.cloned().collect();
                if kind == SourceKind::Stream {
                    Outcome::Streams(list)
                } else {
                    Outcome::Tables(list)
                }
            }
            ShowWhat::Queries => Outcome::Queries(
                st.running
                    .values()
                    .map(|r| RunningQuery {
                        info: r.info.clone(),
                        state: lock(&r.state).clone(),
                    })
                    .collect(),
            ),
            ShowWhat::Topics { all } => {
                drop(st);
                let topics = self.inner.cluster.topics().map_err(backend_err)?;
                Outcome::Topics(
                    topics
                        .into_iter()
                        // As ksqlDB's, SHOW TOPICS leaves out the queries' own
                        // changelog and repartition topics.
                        .filter(|(n, _)| *all || !internal_topic(&self.inner.config.service_id, n))
                        .collect(),
                )
            }
            ShowWhat::Properties => {
                let ksql = |name: &str, value: String| Property {
                    name: name.to_string(),
                    scope: PropertyScope::Ksql,
                    value,
                };
                let mut props = vec![
                    ksql("ksql.service.id", self.inner.config.service_id.clone()),
                    ksql(
                        "ksql.streams.commit.interval.ms",
                        self.inner.config.commit_interval.as_millis().to_string(),
                    ),
                    ksql(
                        "processing.guarantee",
                        st.props
                            .get("processing.guarantee")
                            .cloned()
                            .unwrap_or_else(|| "at_least_once".into()),
                    ),
                ];
                for (k, v) in &st.props {
                    if k != "processing.guarantee" {
                        props.push(Property {
                            name: k.clone(),
                            scope: PropertyScope::Session,
                            value: v.clone(),
                        });
                    }
                }
                Outcome::Properties(props)
            }
            ShowWhat::Functions => Outcome::Functions(self.inner.functions.list()),
            ShowWhat::Variables => Outcome::Variables(
                st.variables
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            ),
        })
    }

    pub(super) fn describe(
        &self,
        target: &DescribeTarget,
        extended: bool,
    ) -> Result<Outcome, SqlError> {
        let st = lock(&self.inner.state);
        match target {
            DescribeTarget::Connector(name) => {
                drop(st);
                self.describe_connector(name)
            }
            DescribeTarget::Source(name) => {
                let Some(s) = st.catalog.source(&name.name) else {
                    return Err(self.not_found(&st, name));
                };
                Ok(Outcome::SourceDescription(source_description(
                    &st, s, extended,
                )))
            }
            DescribeTarget::Streams | DescribeTarget::Tables => {
                let kind = if matches!(target, DescribeTarget::Streams) {
                    SourceKind::Stream
                } else {
                    SourceKind::Table
                };
                Ok(Outcome::SourceDescriptions(
                    st.catalog
                        .sources
                        .values()
                        .filter(|s| s.kind == kind)
                        .map(|s| source_description(&st, s, extended))
                        .collect(),
                ))
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
                Ok(Outcome::Function(info))
            }
        }
    }

    pub(super) fn explain(&self, target: &ExplainTarget, text: &str) -> Result<Outcome, SqlError> {
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
                let fields = st
                    .catalog
                    .source(&q.sink)
                    .map(|s| s.schema.columns().cloned().collect())
                    .unwrap_or_default();
                let state = st
                    .running
                    .get(&q.id)
                    .map(|r| lock(&r.state).clone())
                    .unwrap_or_else(|| "UNKNOWN".into());
                Ok(Outcome::QueryDescription(QueryDescription {
                    id: q.id.clone(),
                    statement_text: q.sql.clone(),
                    fields,
                    sources: q.sources.clone(),
                    sinks: vec![q.sink.clone()],
                    topology: q.topology.clone(),
                    state,
                    persistent: true,
                }))
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
                Ok(Outcome::QueryDescription(QueryDescription {
                    id: String::new(),
                    statement_text: text.to_string(),
                    fields: planned.schema.columns().cloned().collect(),
                    sources: planned.sources,
                    sinks: Vec::new(),
                    topology: topology.describe(),
                    state: "NOT_RUNNING".to_string(),
                    persistent: false,
                }))
            }
        }
    }
}

/// A source with the persistent queries reading and writing it.
fn source_description(st: &State, s: &SourceInfo, extended: bool) -> SourceDescription {
    SourceDescription {
        source: s.clone(),
        read_queries: st
            .catalog
            .readers_of(&s.name)
            .into_iter()
            .cloned()
            .collect(),
        write_queries: st
            .catalog
            .writers_of(&s.name)
            .into_iter()
            .cloned()
            .collect(),
        extended,
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
