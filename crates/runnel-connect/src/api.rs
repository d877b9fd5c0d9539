//! The Kafka Connect REST API over a [`Worker`]: Kafka's paths, bodies,
//! status codes and `{"error_code":…,"message":…}` errors.

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::Router;
use runnel_connect_api::{Config, ConnectorKind};
use runnel_service::HttpApi;
use serde_json::{json, Value as Json};

use crate::error::WorkerError;
use crate::storage::TargetState;
use crate::worker::Worker;

/// The Kafka Connect version this API answers as.
pub const CONNECT_VERSION: &str = "3.9.0";

/// The path segments the API claims on a listener it shares.
pub const SEGMENTS: [&str; 4] = ["/", "/health", "/connectors", "/connector-plugins"];

/// The API serving `worker`.
pub fn api(worker: Worker) -> HttpApi {
    HttpApi::new("connect", routes(worker), &SEGMENTS).not_found(not_found)
}

/// The routes alone (with their state).
pub fn routes(worker: Worker) -> Router {
    Router::new()
        .route("/", get(root))
        .route("/health", get(health))
        .route("/connectors", get(list).post(create))
        .route("/connectors/{name}", get(info).delete(delete))
        .route(
            "/connectors/{name}/config",
            get(get_config).put(put_config).patch(patch_config),
        )
        .route("/connectors/{name}/status", get(status))
        .route("/connectors/{name}/tasks", get(tasks))
        .route("/connectors/{name}/tasks/{id}/status", get(task_status))
        .route("/connectors/{name}/tasks/{id}/restart", post(task_restart))
        .route("/connectors/{name}/topics", get(topics))
        .route("/connectors/{name}/topics/reset", put(topics_reset))
        .route("/connectors/{name}/pause", put(pause))
        .route("/connectors/{name}/resume", put(resume))
        .route("/connectors/{name}/stop", put(stop))
        .route("/connectors/{name}/restart", post(restart))
        .route(
            "/connectors/{name}/offsets",
            get(offsets).patch(alter_offsets).delete(reset_offsets),
        )
        .route("/connector-plugins", get(plugins))
        .route("/connector-plugins/{class}/config", get(plugin_config))
        .route(
            "/connector-plugins/{class}/config/validate",
            put(validate_config),
        )
        .route("/connectors/{name}/tasks-config", get(tasks_config))
        .with_state(worker)
}

fn json_response(status: StatusCode, body: Json) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn error(status: u16, message: impl Into<String>) -> Response {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    json_response(
        code,
        json!({"error_code": status, "message": message.into()}),
    )
}

impl IntoResponse for WorkerError {
    fn into_response(self) -> Response {
        error(self.status(), self.to_string())
    }
}

async fn not_found() -> Response {
    error(404, "HTTP 404 Not Found")
}

/// Runs a blocking worker call.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, WorkerError> + Send + 'static,
) -> Result<T, WorkerError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| WorkerError::Store(format!("the request failed: {e}")))?
}

fn parse_body(body: &Bytes) -> Result<Json, WorkerError> {
    if body.is_empty() {
        return Err(WorkerError::BadRequest("Request body is empty".into()));
    }
    serde_json::from_slice(body)
        .map_err(|e| WorkerError::BadRequest(format!("Invalid JSON in the request body: {e}")))
}

/// A JSON object of strings as a config; numbers and booleans are taken as
/// their text, as Kafka's Jackson mapping does.
fn to_config(v: &Json) -> Result<Config, WorkerError> {
    let o = v.as_object().ok_or_else(|| {
        WorkerError::BadRequest("The connector configuration must be a JSON object".into())
    })?;
    let mut c = Config::new();
    for (k, v) in o {
        let s = match v {
            Json::String(s) => s.clone(),
            Json::Number(n) => n.to_string(),
            Json::Bool(b) => b.to_string(),
            Json::Null => continue,
            _ => {
                return Err(WorkerError::BadRequest(format!(
                    "Configuration value of {k} must be a string"
                )))
            }
        };
        c.insert(k.clone(), s);
    }
    Ok(c)
}

fn query_params(q: &Option<String>) -> Vec<(String, String)> {
    q.as_deref()
        .unwrap_or("")
        .split('&')
        .filter(|s| !s.is_empty())
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (kv.to_string(), String::new()),
        })
        .collect()
}

fn flag(params: &[(String, String)], name: &str) -> Result<bool, WorkerError> {
    match params.iter().find(|(k, _)| k == name) {
        None => Ok(false),
        Some((_, v)) if v.eq_ignore_ascii_case("true") => Ok(true),
        Some((_, v)) if v.eq_ignore_ascii_case("false") => Ok(false),
        Some((_, v)) => Err(WorkerError::BadRequest(format!(
            "Invalid value {v} for query parameter {name}"
        ))),
    }
}

async fn root() -> Response {
    json_response(
        StatusCode::OK,
        json!({
            "version": CONNECT_VERSION,
            "commit": format!("runnel-{}", env!("CARGO_PKG_VERSION")),
            "kafka_cluster_id": "runnel",
        }),
    )
}

async fn health() -> Response {
    json_response(
        StatusCode::OK,
        json!({"status": "healthy", "message": "Worker has completed startup and is ready to handle requests."}),
    )
}

async fn list(State(w): State<Worker>, RawQuery(q): RawQuery) -> Result<Response, WorkerError> {
    let params = query_params(&q);
    let expand: Vec<String> = params
        .iter()
        .filter(|(k, _)| k == "expand")
        .map(|(_, v)| v.clone())
        .collect();
    // Kafka answers unknown expansions with empty entries.
    blocking(move || {
        let names = w.connectors();
        if expand.is_empty() {
            return Ok(json_response(StatusCode::OK, json!(names)));
        }
        let mut out = serde_json::Map::new();
        for n in names {
            let mut entry = serde_json::Map::new();
            if expand.iter().any(|e| e == "status") {
                entry.insert("status".into(), w.status(&n)?);
            }
            if expand.iter().any(|e| e == "info") {
                entry.insert("info".into(), w.info(&n)?.to_json());
            }
            out.insert(n, Json::Object(entry));
        }
        Ok(json_response(StatusCode::OK, Json::Object(out)))
    })
    .await
}

fn parse_initial(v: &Json) -> Result<Option<TargetState>, WorkerError> {
    match v {
        Json::Null => Ok(None),
        Json::String(s) => match s.to_ascii_uppercase().as_str() {
            "RUNNING" => Ok(Some(TargetState::Started)),
            "PAUSED" => Ok(Some(TargetState::Paused)),
            "STOPPED" => Ok(Some(TargetState::Stopped)),
            _ => Err(WorkerError::BadRequest(format!(
                "Invalid initial state {s}: must be one of RUNNING, PAUSED, STOPPED"
            ))),
        },
        _ => Err(WorkerError::BadRequest(
            "initial_state must be a string".into(),
        )),
    }
}

async fn create(State(w): State<Worker>, body: Bytes) -> Result<Response, WorkerError> {
    let body = parse_body(&body)?;
    let mut config = match body.get("config") {
        Some(c) => to_config(c)?,
        None => Config::new(),
    };
    let name = match body.get("name").and_then(Json::as_str) {
        Some(n) => n.to_string(),
        None => config.get("name").cloned().ok_or_else(|| {
            WorkerError::BadRequest("Connector name cannot be empty or missing".into())
        })?,
    };
    if name.trim().is_empty() {
        return Err(WorkerError::BadRequest(
            "Connector name cannot be empty".into(),
        ));
    }
    if body.get("config").is_none_or(|c| !c.is_object()) {
        return Err(WorkerError::BadRequest(
            "Connector config is missing".into(),
        ));
    }
    let initial = parse_initial(body.get("initial_state").unwrap_or(&Json::Null))?;
    config.entry("name".into()).or_insert_with(|| name.clone());
    blocking(move || {
        let info = w.create(&name, config, initial)?;
        let mut r = json_response(StatusCode::CREATED, info.to_json());
        if let Ok(v) = format!("/connectors/{name}").parse() {
            r.headers_mut().insert(header::LOCATION, v);
        }
        Ok(r)
    })
    .await
}

async fn info(State(w): State<Worker>, Path(name): Path<String>) -> Result<Response, WorkerError> {
    blocking(move || Ok(json_response(StatusCode::OK, w.info(&name)?.to_json()))).await
}

async fn delete(
    State(w): State<Worker>,
    Path(name): Path<String>,
) -> Result<Response, WorkerError> {
    blocking(move || {
        w.delete(&name)?;
        Ok(StatusCode::NO_CONTENT.into_response())
    })
    .await
}

async fn get_config(
    State(w): State<Worker>,
    Path(name): Path<String>,
) -> Result<Response, WorkerError> {
    blocking(move || Ok(json_response(StatusCode::OK, json!(w.info(&name)?.config)))).await
}

async fn put_config(
    State(w): State<Worker>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Response, WorkerError> {
    let config = to_config(&parse_body(&body)?)?;
    blocking(move || {
        let (created, info) = w.put_config(&name, config)?;
        let status = if created {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        };
        Ok(json_response(status, info.to_json()))
    })
    .await
}

async fn patch_config(
    State(w): State<Worker>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Response, WorkerError> {
    let body = parse_body(&body)?;
    let o = body
        .as_object()
        .ok_or_else(|| WorkerError::BadRequest("The config patch must be a JSON object".into()))?;
    let mut patch = BTreeMap::new();
    for (k, v) in o {
        let v = match v {
            Json::Null => None,
            Json::String(s) => Some(s.clone()),
            Json::Number(n) => Some(n.to_string()),
            Json::Bool(b) => Some(b.to_string()),
            _ => {
                return Err(WorkerError::BadRequest(format!(
                    "Configuration value of {k} must be a string"
                )))
            }
        };
        patch.insert(k.clone(), v);
    }
    blocking(move || {
        Ok(json_response(
            StatusCode::OK,
            w.patch_config(&name, patch)?.to_json(),
        ))
    })
    .await
}

async fn status(
    State(w): State<Worker>,
    Path(name): Path<String>,
) -> Result<Response, WorkerError> {
    blocking(move || Ok(json_response(StatusCode::OK, w.status(&name)?))).await
}

async fn tasks(State(w): State<Worker>, Path(name): Path<String>) -> Result<Response, WorkerError> {
    blocking(move || {
        let tasks = w.tasks(&name)?;
        let body: Vec<Json> = tasks
            .into_iter()
            .map(|(id, c)| json!({"id": {"connector": name, "task": id}, "config": c}))
            .collect();
        Ok(json_response(StatusCode::OK, json!(body)))
    })
    .await
}

async fn tasks_config(
    State(w): State<Worker>,
    Path(name): Path<String>,
) -> Result<Response, WorkerError> {
    blocking(move || {
        let tasks = w.tasks(&name)?;
        let mut out = serde_json::Map::new();
        for (id, c) in tasks {
            out.insert(format!("{name}-{id}"), json!(c));
        }
        Ok(json_response(StatusCode::OK, Json::Object(out)))
    })
    .await
}

fn task_id(id: &str) -> Result<i32, WorkerError> {
    id.parse()
        .map_err(|_| WorkerError::NotFound("HTTP 404 Not Found".into()))
}

async fn task_status(
    State(w): State<Worker>,
    Path((name, id)): Path<(String, String)>,
) -> Result<Response, WorkerError> {
    let id = task_id(&id)?;
    blocking(move || Ok(json_response(StatusCode::OK, w.task_status(&name, id)?))).await
}

/// Kafka's `forward` query parameter: false on a request another worker
/// forwarded (it is not forwarded again).
fn forward(params: &[(String, String)]) -> Result<bool, WorkerError> {
    Ok(!params.iter().any(|(k, _)| k == "forward") || flag(params, "forward")?)
}

async fn task_restart(
    State(w): State<Worker>,
    Path((name, id)): Path<(String, String)>,
    RawQuery(q): RawQuery,
) -> Result<Response, WorkerError> {
    let id = task_id(&id)?;
    let forward = forward(&query_params(&q))?;
    blocking(move || {
        w.restart_task_anywhere(&name, id, forward)?;
        Ok(StatusCode::NO_CONTENT.into_response())
    })
    .await
}

async fn topics(
    State(w): State<Worker>,
    Path(name): Path<String>,
) -> Result<Response, WorkerError> {
    blocking(move || {
        let t = w.active_topics(&name)?;
        Ok(json_response(
            StatusCode::OK,
            json!({ name: {"topics": t} }),
        ))
    })
    .await
}

async fn topics_reset(
    State(w): State<Worker>,
    Path(name): Path<String>,
) -> Result<Response, WorkerError> {
    blocking(move || {
        w.reset_topics(&name)?;
        Ok(StatusCode::ACCEPTED.into_response())
    })
    .await
}

async fn set_target(w: Worker, name: String, t: TargetState) -> Result<Response, WorkerError> {
    blocking(move || {
        w.set_target(&name, t)?;
        Ok(StatusCode::ACCEPTED.into_response())
    })
    .await
}

async fn pause(State(w): State<Worker>, Path(name): Path<String>) -> Result<Response, WorkerError> {
    set_target(w, name, TargetState::Paused).await
}

async fn resume(
    State(w): State<Worker>,
    Path(name): Path<String>,
) -> Result<Response, WorkerError> {
    set_target(w, name, TargetState::Started).await
}

async fn stop(State(w): State<Worker>, Path(name): Path<String>) -> Result<Response, WorkerError> {
    // Kafka answers a stop with 204 (pause and resume with 202).
    set_target(w, name, TargetState::Stopped).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn restart(
    State(w): State<Worker>,
    Path(name): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Response, WorkerError> {
    let params = query_params(&q);
    let include = flag(&params, "includeTasks")?;
    let only_failed = flag(&params, "onlyFailed")?;
    let forward = forward(&params)?;
    blocking(move || {
        Ok(match w.restart(&name, include, only_failed, forward)? {
            Some(body) => json_response(StatusCode::ACCEPTED, body),
            None => StatusCode::NO_CONTENT.into_response(),
        })
    })
    .await
}

async fn offsets(
    State(w): State<Worker>,
    Path(name): Path<String>,
) -> Result<Response, WorkerError> {
    blocking(move || Ok(json_response(StatusCode::OK, w.offsets(&name)?))).await
}

async fn alter_offsets(
    State(w): State<Worker>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Response, WorkerError> {
    let body = parse_body(&body)?;
    blocking(move || {
        Ok(json_response(
            StatusCode::OK,
            w.alter_offsets(&name, &body)?,
        ))
    })
    .await
}

async fn reset_offsets(
    State(w): State<Worker>,
    Path(name): Path<String>,
) -> Result<Response, WorkerError> {
    blocking(move || Ok(json_response(StatusCode::OK, w.reset_offsets(&name)?))).await
}

async fn plugins(State(w): State<Worker>, RawQuery(q): RawQuery) -> Result<Response, WorkerError> {
    let params = query_params(&q);
    let connectors_only = match params.iter().find(|(k, _)| k == "connectorsOnly") {
        None => true,
        Some((_, v)) => !v.eq_ignore_ascii_case("false"),
    };
    let mut out: Vec<Json> = w
        .plugins()
        .iter()
        .map(|p| json!({"class": p.class(), "type": p.kind().as_str(), "version": p.version()}))
        .collect();
    if !connectors_only {
        let version = env!("CARGO_PKG_VERSION");
        for t in crate::transforms::TRANSFORMS {
            out.push(json!({"class": t, "type": "transformation", "version": version}));
        }
        for p in crate::transforms::PREDICATES {
            out.push(json!({"class": p, "type": "predicate", "version": version}));
        }
        for c in crate::convert::CLASSES {
            out.push(json!({"class": c, "type": "converter", "version": version}));
        }
    }
    Ok(json_response(StatusCode::OK, json!(out)))
}

async fn plugin_config(
    State(w): State<Worker>,
    Path(class): Path<String>,
) -> Result<Response, WorkerError> {
    let plugin = w
        .plugins()
        .iter()
        .find(|p| p.class() == class || p.aliases().contains(&class))
        .cloned()
        .ok_or_else(|| WorkerError::NotFound(format!("Unknown plugin {class}.")))?;
    let keys: Vec<Json> = plugin
        .config_def()
        .keys
        .iter()
        .map(|k| {
            json!({
                "name": k.name, "type": k.kind.as_str(), "required": k.required(),
                "default_value": k.default, "importance": k.importance.as_str(),
                "documentation": k.doc, "group": k.group, "width": "NONE",
                "display_name": k.display_name, "dependents": [], "order": -1
            })
        })
        .collect();
    Ok(json_response(StatusCode::OK, json!(keys)))
}

async fn validate_config(
    State(w): State<Worker>,
    Path(class): Path<String>,
    body: Bytes,
) -> Result<Response, WorkerError> {
    let mut config = to_config(&parse_body(&body)?)?;
    match config.get("connector.class") {
        None => {
            config.insert("connector.class".into(), class.clone());
        }
        Some(c) => {
            let plugin = w
                .plugins()
                .iter()
                .find(|p| p.class() == class || p.aliases().contains(&class))
                .cloned();
            let same = plugin.is_some_and(|p| p.class() == c || p.aliases().contains(c));
            if !same {
                return Err(WorkerError::BadRequest(
                    "Included connector type ".to_string()
                        + c
                        + " does not match request type "
                        + &class,
                ));
            }
        }
    }
    blocking(move || {
        let (body, _) = w.validate(&config)?;
        Ok(json_response(StatusCode::OK, body))
    })
    .await
}

/// The kind names the REST API writes (kept here so the type is used).
pub fn kind_name(k: ConnectorKind) -> &'static str {
    k.as_str()
}
