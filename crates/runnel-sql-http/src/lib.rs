//! The ksqlDB-compatible REST API over runnel-sql's engine: `/ksql`,
//! `/query`, `/query-stream`, `/close-query`, `/inserts-stream`, `/info`,
//! `/healthcheck` and `/status`, in ksqlDB's request and response shapes.
//!
//! The engine is blocking; every call into it runs on tokio's blocking
//! pool, and each query's rows are moved from the engine's channel to the
//! HTTP response by a thread of its own, which also notices when the
//! client goes away or `/close-query` names the query.
//!
//! `serve` also gives the engine its pull forwarder: a pull query that
//! needs partitions another engine on the same cluster hosts is sent to
//! that engine's `/query-stream` (`forward.rs`).

pub mod entity;
mod forward;
mod query;
pub mod service;

pub use service::SqlService;

pub use forward::pull_forwarder;

/// How long a forwarded pull query may take.
const FORWARD_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

pub use query::DELIMITED;

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use runnel_service::HttpApi;
use runnel_sql::{Engine, SqlError};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value as Json};
use tokio::net::TcpListener;

/// Why the server could not run.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("HTTP server failed: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Mount(#[from] runnel_service::ServiceError),
}

/// ksqlDB's generic "bad request" code (malformed bodies, unknown ids).
pub const BAD_REQUEST: u32 = 40000;
/// ksqlDB's "not found" code (unknown command ids, unknown routes).
pub const NOT_FOUND: u32 = 40400;
/// ksqlDB's "method not allowed" code.
pub const METHOD_NOT_ALLOWED: u32 = 40500;
/// ksqlDB's server error code.
pub const SERVER_ERROR: u32 = 50000;

/// What the handlers share.
struct Shared {
    engine: Engine,
    /// Running push queries by id: set the flag to close one.
    running: Mutex<HashMap<String, Arc<AtomicBool>>>,
    /// The `commandStatus` of each command this server ran, by command id.
    commands: Mutex<BTreeMap<String, Json>>,
    /// Tells long-lived streams (inserts) that the server is stopping.
    stopping: tokio::sync::watch::Sender<bool>,
}

type AppState = Arc<Shared>;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Shared {
    /// Closes every running push query (on shutdown, so their responses end).
    fn close_all(&self) {
        for flag in lock(&self.running).values() {
            flag.store(true, Ordering::SeqCst);
        }
        let _ = self.stopping.send(true);
    }
}

/// The path segments the API claims on a listener it shares with others.
pub const SEGMENTS: [&str; 8] = [
    "/ksql",
    "/query",
    "/query-stream",
    "/close-query",
    "/inserts-stream",
    "/info",
    "/healthcheck",
    "/status",
];

/// The API serving `engine`, to mount alone or beside other APIs: ksqlDB's
/// routes, its 404 body when alone, and closing the running push queries
/// when its listener stops. Also gives the engine its pull forwarder.
pub fn api(engine: Engine) -> HttpApi {
    engine.set_pull_forwarder(forward::pull_forwarder(FORWARD_TIMEOUT));
    let state = new_state(engine);
    let closing = state.clone();
    HttpApi::new("ksql", routes(state), &SEGMENTS)
        .not_found(not_found)
        .on_stop(move || closing.close_all())
}

fn new_state(engine: Engine) -> AppState {
    let (stopping, _) = tokio::sync::watch::channel(false);
    Arc::new(Shared {
        engine,
        running: Mutex::new(HashMap::new()),
        commands: Mutex::new(BTreeMap::new()),
        stopping,
    })
}

fn routes(state: AppState) -> Router {
    // Each route answers other methods with ksqlDB's 405 error body (set
    // per route, so the API can share a listener with others).
    Router::new()
        .route("/ksql", post(ksql).fallback(method_not_allowed))
        .route("/query", post(query::query).fallback(method_not_allowed))
        .route(
            "/query-stream",
            post(query::query_stream).fallback(method_not_allowed),
        )
        .route(
            "/close-query",
            post(query::close_query).fallback(method_not_allowed),
        )
        .route(
            "/inserts-stream",
            post(query::inserts_stream).fallback(method_not_allowed),
        )
        .route("/info", get(info).fallback(method_not_allowed))
        .route(
            "/healthcheck",
            get(healthcheck).fallback(method_not_allowed),
        )
        .route("/status", get(statuses).fallback(method_not_allowed))
        .route(
            "/status/{*command_id}",
            get(status).fallback(method_not_allowed),
        )
        .with_state(state)
}

/// ksqlDB's answer to a method a route does not take.
async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    ApiError::generic(
        StatusCode::METHOD_NOT_ALLOWED,
        METHOD_NOT_ALLOWED,
        format!("HTTP 405 Method Not Allowed: {method} {}", uri.path()),
    )
}

/// Serves the API alone on `listener` until `shutdown` completes; then
/// closes the running push queries so their responses end, and waits for
/// the open requests to finish. The engine itself is left running: its
/// owner shuts it down.
pub async fn serve(
    engine: Engine,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), HttpError> {
    let addr = listener.local_addr()?.to_string();
    let (app, hooks) = runnel_service::mount(&addr, vec![api(engine)])?;
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            shutdown.await;
            for h in hooks {
                h();
            }
        })
        .await?;
    Ok(())
}

/// An error response in ksqlDB's shape.
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    body: Json,
}

impl ApiError {
    /// A `generic_error` body.
    pub(crate) fn generic(status: StatusCode, code: u32, message: impl Into<String>) -> Self {
        ApiError {
            status,
            body: json!({"@type": "generic_error", "error_code": code, "message": message.into()}),
        }
    }

    /// A `statement_error` body: the statement, and what ran before it failed.
    pub(crate) fn statement(e: &SqlError, text: &str, entities: Vec<Json>) -> Self {
        let code = Engine::error_code(e);
        if let runnel_sql::error::ErrorKind::Remote(status) = e.kind {
            // Another service's refusal is passed on with its status, in
            // a plain error body, as ksqlDB does for Kafka Connect's.
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
            return ApiError::generic(status, code, e.to_string());
        }
        let status = if code >= SERVER_ERROR {
            StatusCode::INTERNAL_SERVER_ERROR
        } else {
            StatusCode::BAD_REQUEST
        };
        ApiError {
            status,
            body: json!({
                "@type": "statement_error",
                "error_code": code,
                "message": e.to_string(),
                "statementText": text,
                "entities": entities,
            }),
        }
    }

    pub(crate) fn server(message: impl Into<String>) -> Self {
        ApiError::generic(StatusCode::INTERNAL_SERVER_ERROR, SERVER_ERROR, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        json_response(self.status, &self.body)
    }
}

pub(crate) fn json_response(status: StatusCode, body: &Json) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// Parses a request body, or answers 400 with what is wrong with it.
pub(crate) fn parse_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        ApiError::generic(
            StatusCode::BAD_REQUEST,
            BAD_REQUEST,
            format!("Invalid request body: {e}"),
        )
    })
}

/// Property overrides as the engine takes them: strings by name.
pub(crate) fn props_map(props: &serde_json::Map<String, Json>) -> BTreeMap<String, String> {
    props
        .iter()
        .map(|(k, v)| {
            let v = match v {
                Json::String(s) => s.clone(),
                other => other.to_string(),
            };
            (k.clone(), v)
        })
        .collect()
}

/// Runs blocking engine work off the async threads.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::server(format!("the statement's task failed: {e}")))
}

#[derive(Deserialize)]
struct KsqlRequest {
    ksql: String,
    #[serde(default, rename = "streamsProperties")]
    streams_properties: serde_json::Map<String, Json>,
}

/// The statement among `text`'s that failed: the one the error's position
/// falls in (a parse error stops the request before anything runs, in
/// whichever statement it is), else the one after those that ran.
fn failed_statement(text: &str, ran: usize, e: &SqlError) -> String {
    let Ok(statements) = runnel_sql::parser::split_statements_at(text) else {
        return text.to_string();
    };
    let by_position = e.pos.filter(|p| p.line > 0).and_then(|p| {
        statements
            .iter()
            .rev()
            .find(|(start, _)| line_col(text, *start) <= (p.line, p.col))
    });
    by_position
        .or_else(|| statements.get(ran))
        .map(|(_, s)| s.clone())
        .unwrap_or_else(|| text.to_string())
}

/// The 1-based line and column of byte `offset` in `text`, as the parser
/// counts them.
fn line_col(text: &str, offset: usize) -> (u32, u32) {
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (
        u32::try_from(line).unwrap_or(u32::MAX),
        u32::try_from(col).unwrap_or(u32::MAX),
    )
}

async fn ksql(State(state): State<AppState>, body: Bytes) -> Result<Response, ApiError> {
    let req: KsqlRequest = parse_body(&body)?;
    let props = props_map(&req.streams_properties);
    let engine = state.engine.clone();
    let text = req.ksql.clone();
    match blocking(move || engine.execute(&text, &props)).await? {
        Ok(executed) => {
            let mut commands = lock(&state.commands);
            for e in &executed {
                if let Some((id, status)) = entity::command_status(e) {
                    commands.insert(id, status);
                }
            }
            let entities = executed.iter().map(entity::to_json).collect();
            Ok(json_response(StatusCode::OK, &Json::Array(entities)))
        }
        Err((e, executed)) => {
            let failed = failed_statement(&req.ksql, executed.len(), &e);
            let entities = executed.iter().map(entity::to_json).collect();
            Err(ApiError::statement(&e, &failed, entities))
        }
    }
}

async fn info() -> Response {
    json_response(
        StatusCode::OK,
        &json!({"KsqlServerInfo": {
            "version": env!("CARGO_PKG_VERSION"),
            "kafkaClusterId": "runnel",
            "ksqlServiceId": "runnel_",
            "serverStatus": "RUNNING",
        }}),
    )
}

async fn healthcheck(State(state): State<AppState>) -> Response {
    let engine = state.engine.clone();
    // The engine answers (its state lock is free) and no query has failed.
    let states = blocking(move || engine.query_states()).await;
    let (responsive, queries_ok) = match &states {
        Ok(s) => (true, !s.values().any(|v| v.eq_ignore_ascii_case("ERROR"))),
        Err(_) => (false, false),
    };
    let healthy = responsive;
    json_response(
        if healthy {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        },
        &json!({"isHealthy": healthy, "details": {
            "metastore": {"isHealthy": responsive},
            "kafka": {"isHealthy": responsive},
            "commandRunner": {"isHealthy": responsive},
            "persistentQueries": {"isHealthy": queries_ok},
        }}),
    )
}

async fn statuses(State(state): State<AppState>) -> Response {
    let commands = lock(&state.commands).clone();
    json_response(
        StatusCode::OK,
        &json!({"commandStatuses": commands
            .iter()
            .map(|(k, v)| (k.clone(), v.get("status").cloned().unwrap_or(Json::Null)))
            .collect::<serde_json::Map<_, _>>()}),
    )
}

async fn status(
    State(state): State<AppState>,
    Path(command_id): Path<String>,
) -> Result<Response, ApiError> {
    if let Some(s) = lock(&state.commands).get(&command_id) {
        return Ok(json_response(StatusCode::OK, s));
    }
    // Commands from before this server started were replayed from the
    // command topic: they ran, but their messages are not kept.
    let seq = command_id
        .strip_prefix("statement/")
        .and_then(|n| n.parse::<i64>().ok());
    let engine = state.engine.clone();
    let count = blocking(move || engine.command_count()).await?;
    match seq {
        Some(n) if (0..count).contains(&n) => Ok(json_response(
            StatusCode::OK,
            &json!({"status": "SUCCESS", "message": "Executed (replayed from the command topic)"}),
        )),
        _ => Err(ApiError::generic(
            StatusCode::NOT_FOUND,
            NOT_FOUND,
            format!("Command not found: {command_id}"),
        )),
    }
}

async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::generic(
        StatusCode::NOT_FOUND,
        NOT_FOUND,
        format!("No such endpoint: {}", uri.path()),
    )
}

/// The body of a streamed response.
pub(crate) fn stream_body<S>(stream: S) -> Body
where
    S: futures_util::Stream<Item = Bytes> + Send + 'static,
{
    use futures_util::StreamExt;
    Body::from_stream(stream.map(Ok::<_, std::convert::Infallible>))
}

#[cfg(test)]
mod tests;
