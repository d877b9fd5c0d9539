//! ksqlDB's connector statements — CREATE SOURCE|SINK CONNECTOR, SHOW
//! [SOURCE|SINK] CONNECTORS, DESCRIBE CONNECTOR, DROP CONNECTOR — run
//! against a Kafka Connect REST API (`ksql.connect.url`; `runnel serve`
//! points it at its own connector runtime).
//!
//! As in ksqlDB, these statements are not recorded in the command topic:
//! Kafka Connect keeps connectors in its own topics. A failure Kafka
//! Connect reports is passed on with its HTTP status (error code
//! status × 100) and its body in the message, as ksqlDB does.

use std::time::Duration;

use serde_json::{json, Value as Json};

use super::result::{ConnectorDescription, ConnectorSummary, Outcome};
use super::{lock, Engine};
use crate::ast::{ConnectorKind, Ident};
use crate::error::SqlError;

/// Kafka Connect's REST API at one base URL.
pub(super) struct ConnectClient {
    base: String,
    agent: ureq::Agent,
}

/// A failed call: the HTTP status (0 when Connect was not reached) and the
/// body or transport error.
struct Failure {
    status: u16,
    body: String,
}

impl Failure {
    /// The statement's error: ksqlDB's "<what>: <Connect's body>" with
    /// Connect's status, or a server error when Connect was not reached.
    fn into_error(self, what: &str) -> SqlError {
        let message = format!("{what}: {}", self.body);
        if self.status == 0 {
            SqlError::server(message)
        } else {
            SqlError::remote(self.status, message)
        }
    }
}

impl ConnectClient {
    pub(super) fn new(base: &str) -> ConnectClient {
        ConnectClient {
            base: base.trim_end_matches('/').to_string(),
            agent: ureq::AgentBuilder::new()
                .timeout_connect(Duration::from_secs(5))
                .timeout(Duration::from_secs(30))
                .build(),
        }
    }

    fn call(&self, method: &str, path: &str, body: Option<&Json>) -> Result<(u16, Json), Failure> {
        let url = format!("{}{}", self.base, path);
        let request = self
            .agent
            .request(method, &url)
            .set("Accept", "application/json");
        let response = match body {
            Some(b) => request.send_json(b.clone()),
            None => request.call(),
        };
        match response {
            Ok(r) => {
                let status = r.status();
                let text = r.into_string().map_err(|e| Failure {
                    status: 0,
                    body: e.to_string(),
                })?;
                let json = if text.trim().is_empty() {
                    Json::Null
                } else {
                    serde_json::from_str(&text).map_err(|e| Failure {
                        status,
                        body: format!("unreadable response from {url}: {e}"),
                    })?
                };
                Ok((status, json))
            }
            Err(ureq::Error::Status(status, r)) => Err(Failure {
                status,
                body: r.into_string().unwrap_or_default(),
            }),
            Err(e) => Err(Failure {
                status: 0,
                body: format!("cannot reach Kafka Connect at {}: {e}", self.base),
            }),
        }
    }

    fn get(&self, path: &str) -> Result<Json, Failure> {
        self.call("GET", path, None).map(|(_, j)| j)
    }

    fn connectors(&self) -> Result<Vec<String>, Failure> {
        let list = self.get("/connectors")?;
        Ok(list
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|n| n.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default())
    }
}

/// A connector name in a URL path.
fn path_segment(name: &str) -> String {
    let mut out = String::new();
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// ksqlDB's one-line state: the connector's state, and for a running one
/// how many of its tasks run (`RUNNING (1/1 tasks RUNNING)`; `WARNING`
/// when it has tasks and none runs).
fn summarize_state(status: &Json) -> String {
    let state = status["connector"]["state"].as_str().unwrap_or("UNKNOWN");
    if state != "RUNNING" {
        return state.to_string();
    }
    let tasks = status["tasks"].as_array().map(Vec::as_slice).unwrap_or(&[]);
    let running = tasks
        .iter()
        .filter(|t| t["state"].as_str() == Some("RUNNING"))
        .count();
    let overall = if !tasks.is_empty() && running == 0 {
        "WARNING"
    } else {
        "RUNNING"
    };
    format!("{overall} ({running}/{} tasks RUNNING)", tasks.len())
}

impl Engine {
    fn connect_client(&self) -> Result<ConnectClient, SqlError> {
        match &self.inner.config.connect_url {
            Some(url) => Ok(ConnectClient::new(url)),
            None => Err(SqlError::server(
                "No Kafka Connect is configured: set ksql.connect.url (runnel serve --connect-url)",
            )),
        }
    }

    /// CREATE SOURCE|SINK CONNECTOR. As in ksqlDB, SOURCE or SINK is not
    /// checked against the class: Kafka Connect decides what it is.
    pub(super) fn create_connector(
        &self,
        if_not_exists: bool,
        name: &Ident,
        config: &[(String, String)],
    ) -> Result<Outcome, SqlError> {
        let client = self.connect_client()?;
        let exists = client
            .connectors()
            .map_err(|f| f.into_error("Failed to check for existing connector"))?
            .contains(&name.name);
        if exists {
            let message = format!("Connector {} already exists", name.name);
            if if_not_exists {
                return Ok(Outcome::Warning(message));
            }
            return Err(SqlError::remote(409, message));
        }
        let mut properties: serde_json::Map<String, Json> = config
            .iter()
            .map(|(k, v)| (k.clone(), Json::String(v.clone())))
            .collect();
        properties.insert("name".into(), Json::String(name.name.clone()));
        let class = properties
            .get("connector.class")
            .and_then(Json::as_str)
            .map(str::to_string);
        // Validate first, as ksqlDB does, so that every field's problem is
        // reported at once and nothing is created.
        match class.as_deref().map(str::trim) {
            None => {
                return Err(SqlError::at(
                    name.pos,
                    format!(
                        "Validation error: Connector config {} contains no connector type",
                        Json::Object(properties.clone())
                    ),
                ))
            }
            Some("") => {
                return Err(SqlError::at(
                    name.pos,
                    "Validation error: Connector type cannot be empty",
                ))
            }
            Some(class) => {
                let path = format!("/connector-plugins/{}/config/validate", path_segment(class));
                let body = Json::Object(properties.clone());
                let infos = client
                    .call("PUT", &path, Some(&body))
                    .map_err(|f| SqlError::at(name.pos, format!("Validation error: {}", f.body)))?
                    .1;
                let errors: Vec<String> = infos["configs"]
                    .as_array()
                    .map(Vec::as_slice)
                    .unwrap_or(&[])
                    .iter()
                    .filter_map(|c| {
                        let errs: Vec<&str> = c["value"]["errors"]
                            .as_array()?
                            .iter()
                            .filter_map(Json::as_str)
                            .collect();
                        (!errs.is_empty()).then(|| {
                            format!(
                                "{} - {}",
                                c["value"]["name"].as_str().unwrap_or("?"),
                                errs.join(". ")
                            )
                        })
                    })
                    .collect();
                if !errors.is_empty() {
                    return Err(SqlError::at(
                        name.pos,
                        format!("Validation error: {}", errors.join("\n")),
                    ));
                }
            }
        }
        let (_, info) = client
            .call(
                "POST",
                "/connectors",
                Some(&json!({"name": name.name, "config": Json::Object(properties)})),
            )
            .map_err(|f| f.into_error("Failed to create connector"))?;
        Ok(Outcome::ConnectorInfo(info))
    }

    pub(super) fn show_connectors(
        &self,
        scope: Option<ConnectorKind>,
    ) -> Result<Outcome, SqlError> {
        let client = self.connect_client()?;
        let names = client
            .connectors()
            .map_err(|f| f.into_error("Failed to list connectors"))?;
        let mut connectors = Vec::new();
        let mut warnings = Vec::new();
        for name in names {
            let seg = path_segment(&name);
            match client.get(&format!("/connectors/{seg}")) {
                Ok(info) => {
                    let kind = info["type"].as_str().unwrap_or("unknown").to_string();
                    if scope.is_some_and(|s| s.as_str() != kind) {
                        continue;
                    }
                    let state = match client.get(&format!("/connectors/{seg}/status")) {
                        Ok(status) => Some(summarize_state(&status)),
                        Err(f) => {
                            warnings.push(format!(
                                "Could not get the status of connector {name}: {}",
                                f.body
                            ));
                            None
                        }
                    };
                    connectors.push(ConnectorSummary {
                        class: info["config"]["connector.class"]
                            .as_str()
                            .map(str::to_string),
                        name,
                        kind,
                        state,
                    });
                }
                Err(f) => {
                    if scope.is_none() {
                        connectors.push(ConnectorSummary {
                            name: name.clone(),
                            kind: "unknown".into(),
                            class: None,
                            state: None,
                        });
                    }
                    warnings.push(format!("Could not describe connector {name}: {}", f.body));
                }
            }
        }
        Ok(Outcome::Connectors {
            connectors,
            warnings,
        })
    }

    pub(super) fn describe_connector(&self, name: &Ident) -> Result<Outcome, SqlError> {
        let client = self.connect_client()?;
        let seg = path_segment(&name.name);
        let status = client
            .get(&format!("/connectors/{seg}/status"))
            .map_err(|f| f.into_error("Failed to query connector status"))?;
        let info = client
            .get(&format!("/connectors/{seg}"))
            .map_err(|f| f.into_error("Failed to describe connector"))?;
        let mut warnings = Vec::new();
        let topics: Vec<String> = match client.get(&format!("/connectors/{seg}/topics")) {
            Ok(t) => t[&name.name]["topics"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|t| t.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default(),
            Err(f) if f.status == 404 => Vec::new(),
            Err(f) => {
                warnings.push(format!(
                    "Could not list related topics due to error: {}",
                    f.body
                ));
                Vec::new()
            }
        };
        // The streams and tables over the topics the connector uses.
        let sources = {
            let st = lock(&self.inner.state);
            st.catalog
                .sources
                .values()
                .filter(|s| topics.contains(&s.topic))
                .cloned()
                .collect()
        };
        Ok(Outcome::ConnectorDescription(Box::new(
            ConnectorDescription {
                class: info["config"]["connector.class"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                status,
                sources,
                topics,
                warnings,
            },
        )))
    }

    pub(super) fn drop_connector(
        &self,
        if_exists: bool,
        name: &Ident,
    ) -> Result<Outcome, SqlError> {
        let client = self.connect_client()?;
        match client.call(
            "DELETE",
            &format!("/connectors/{}", path_segment(&name.name)),
            None,
        ) {
            Ok(_) => Ok(Outcome::DroppedConnector(name.name.clone())),
            Err(f) if if_exists && f.status == 404 => Ok(Outcome::Warning(format!(
                "Connector '{}' does not exist.",
                name.name
            ))),
            Err(f) => Err(f.into_error("Failed to drop connector")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_state_summary_counts_running_tasks_as_ksqldb_does() {
        let s = |c: &str, tasks: &[&str]| json!({"connector": {"state": c}, "tasks": tasks.iter().map(|t| json!({"state": t})).collect::<Vec<_>>()});
        assert_eq!(
            summarize_state(&s("RUNNING", &["RUNNING"])),
            "RUNNING (1/1 tasks RUNNING)"
        );
        assert_eq!(
            summarize_state(&s("RUNNING", &["FAILED", "RUNNING"])),
            "RUNNING (1/2 tasks RUNNING)"
        );
        assert_eq!(
            summarize_state(&s("RUNNING", &["FAILED"])),
            "WARNING (0/1 tasks RUNNING)"
        );
        assert_eq!(
            summarize_state(&s("RUNNING", &[])),
            "RUNNING (0/0 tasks RUNNING)"
        );
        assert_eq!(summarize_state(&s("PAUSED", &["PAUSED"])), "PAUSED");
    }

    #[test]
    fn names_are_escaped_in_paths() {
        assert_eq!(path_segment("my conn/x"), "my%20conn%2Fx");
        assert_eq!(path_segment("JDBC_SOURCE-1.a~"), "JDBC_SOURCE-1.a~");
    }
}
