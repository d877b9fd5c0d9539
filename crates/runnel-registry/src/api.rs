//! The Confluent Schema Registry REST API over a [`Registry`].

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use runnel_schema::SchemaType;
use runnel_service::HttpApi;
use serde::Deserialize;
use serde_json::{json, Value as Json};

use crate::error::RegistryError;
use crate::registry::{Registry, SchemaRequest, VersionSpec};
use crate::state::{Level, Mode};

/// The content type of every response, as Confluent's registry answers.
pub const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";

/// The path segments the API claims on a listener it shares.
pub const SEGMENTS: [&str; 7] = [
    "/",
    "/subjects",
    "/schemas",
    "/config",
    "/mode",
    "/compatibility",
    "/contexts",
];

/// The API serving `registry`, to mount alone or beside other APIs.
pub fn api(registry: Registry) -> HttpApi {
    HttpApi::new("schema-registry", routes(registry), &SEGMENTS).not_found(not_found)
}

/// The routes alone (with their state).
pub fn routes(registry: Registry) -> Router {
    Router::new()
        .route("/", get(root))
        .route("/contexts", get(contexts))
        .route("/subjects", get(list_subjects))
        .route("/subjects/{subject}", post(lookup).delete(delete_subject))
        .route(
            "/subjects/{subject}/versions",
            get(list_versions).post(register),
        )
        .route(
            "/subjects/{subject}/versions/{version}",
            get(get_version).delete(delete_version),
        )
        .route(
            "/subjects/{subject}/versions/{version}/schema",
            get(get_version_schema),
        )
        .route(
            "/subjects/{subject}/versions/{version}/referencedby",
            get(referenced_by),
        )
        .route("/schemas", get(list_schemas))
        .route("/schemas/types", get(schema_types))
        .route("/schemas/ids/{id}", get(schema_by_id))
        .route("/schemas/ids/{id}/schema", get(schema_by_id_raw))
        .route("/schemas/ids/{id}/subjects", get(schema_subjects))
        .route("/schemas/ids/{id}/versions", get(schema_versions))
        .route(
            "/compatibility/subjects/{subject}/versions",
            post(compat_all),
        )
        .route(
            "/compatibility/subjects/{subject}/versions/{version}",
            post(compat_version),
        )
        .route(
            "/config",
            get(get_global_config)
                .put(put_global_config)
                .delete(delete_global_config),
        )
        .route(
            "/config/{subject}",
            get(get_config).put(put_config).delete(delete_config),
        )
        .route("/mode", get(get_global_mode).put(put_global_mode))
        .route(
            "/mode/{subject}",
            get(get_mode).put(put_mode).delete(delete_mode),
        )
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(registry)
}

type Reg = State<Registry>;

fn body(status: StatusCode, value: &Json) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, CONTENT_TYPE)],
        value.to_string(),
    )
        .into_response()
}

fn ok(value: Json) -> Response {
    body(StatusCode::OK, &value)
}

fn error(e: &RegistryError) -> Response {
    let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    body(
        status,
        &json!({"error_code": e.code(), "message": e.to_string()}),
    )
}

/// Runs a blocking registry call off the async threads.
async fn run<T, F>(registry: Registry, f: F) -> Response
where
    T: Send + 'static,
    F: FnOnce(&Registry) -> Result<T, RegistryError> + Send + 'static,
    T: Into<Json>,
{
    match tokio::task::spawn_blocking(move || f(&registry)).await {
        Ok(Ok(v)) => ok(v.into()),
        Ok(Err(e)) => error(&e),
        Err(e) => error(&RegistryError::Store(format!("the request failed: {e}"))),
    }
}

async fn method_not_allowed() -> Response {
    body(
        StatusCode::METHOD_NOT_ALLOWED,
        &json!({"error_code": 405, "message": "HTTP 405 Method Not Allowed"}),
    )
}

async fn not_found() -> Response {
    body(StatusCode::NOT_FOUND, &runnel_service::not_found_body())
}

/// Query parameters, decoded.
struct Params(HashMap<String, String>);

impl Params {
    fn new(raw: Option<String>) -> Params {
        let mut map = HashMap::new();
        for pair in raw.as_deref().unwrap_or("").split('&') {
            if pair.is_empty() {
                continue;
            }
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            map.insert(decode(k), decode(v));
        }
        Params(map)
    }

    /// A boolean parameter: true only when it says `true`.
    fn flag(&self, name: &str) -> bool {
        self.0
            .get(name)
            .is_some_and(|v| v.eq_ignore_ascii_case("true"))
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    fn int(&self, name: &str) -> Option<i64> {
        self.get(name).and_then(|v| v.trim().parse().ok())
    }
}

/// Percent-decoding of a query component (`+` is a space).
fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Offset and limit of a listing (`limit` -1 or absent: all).
fn page<T>(items: Vec<T>, p: &Params) -> Vec<T> {
    let offset = p.int("offset").unwrap_or(0).max(0) as usize;
    let limit = p.int("limit").unwrap_or(-1);
    let it = items.into_iter().skip(offset);
    if limit >= 0 {
        it.take(limit as usize).collect()
    } else {
        it.collect()
    }
}

fn parse_body<T: for<'de> Deserialize<'de>>(bytes: &Bytes) -> Result<T, RegistryError> {
    serde_json::from_slice(bytes).map_err(|e| {
        RegistryError::BadRequest(format!("the request body is not the JSON expected: {e}"))
    })
}

fn to_json<T: serde::Serialize>(v: T) -> Json {
    serde_json::to_value(v).unwrap_or(Json::Null)
}

fn parse_id(id: &str) -> Result<i32, RegistryError> {
    match id.parse::<i32>() {
        Ok(n) if n >= 0 => Ok(n),
        _ => Err(RegistryError::NoSuchId(id.to_string())),
    }
}

async fn root() -> Response {
    ok(json!({}))
}

async fn contexts() -> Response {
    ok(json!(["."]))
}

async fn list_subjects(State(r): Reg, RawQuery(q): RawQuery) -> Response {
    let p = Params::new(q);
    run(r, move |r| {
        let prefix = p.get("subjectPrefix").unwrap_or("").to_string();
        let list = r.subjects(&prefix, p.flag("deleted"), p.flag("deletedOnly"));
        Ok(json!(page(list, &p)))
    })
    .await
}

async fn list_versions(
    State(r): Reg,
    Path(subject): Path<String>,
    RawQuery(q): RawQuery,
) -> Response {
    let p = Params::new(q);
    run(r, move |r| {
        let v = r.versions(&subject, p.flag("deleted"), p.flag("deletedOnly"))?;
        Ok(json!(page(v, &p)))
    })
    .await
}

async fn register(
    State(r): Reg,
    Path(subject): Path<String>,
    RawQuery(q): RawQuery,
    bytes: Bytes,
) -> Response {
    let p = Params::new(q);
    run(r, move |r| {
        let req: SchemaRequest = parse_body(&bytes)?;
        let id = r.register(&subject, &req, p.flag("normalize"))?;
        Ok(json!({ "id": id }))
    })
    .await
}

async fn lookup(
    State(r): Reg,
    Path(subject): Path<String>,
    RawQuery(q): RawQuery,
    bytes: Bytes,
) -> Response {
    let p = Params::new(q);
    run(r, move |r| {
        let req: SchemaRequest = parse_body(&bytes)?;
        Ok(to_json(r.lookup(&subject, &req, p.flag("deleted"))?))
    })
    .await
}

async fn delete_subject(
    State(r): Reg,
    Path(subject): Path<String>,
    RawQuery(q): RawQuery,
) -> Response {
    let p = Params::new(q);
    run(r, move |r| {
        Ok(json!(r.delete_subject(&subject, p.flag("permanent"))?))
    })
    .await
}

async fn get_version(
    State(r): Reg,
    Path((subject, version)): Path<(String, String)>,
    RawQuery(q): RawQuery,
) -> Response {
    let p = Params::new(q);
    run(r, move |r| {
        let v = VersionSpec::parse(&version)?;
        Ok(to_json(r.version(&subject, v, p.flag("deleted"))?))
    })
    .await
}

async fn get_version_schema(
    State(r): Reg,
    Path((subject, version)): Path<(String, String)>,
    RawQuery(q): RawQuery,
) -> Response {
    let p = Params::new(q);
    let result = tokio::task::spawn_blocking(move || {
        let v = VersionSpec::parse(&version)?;
        r.version(&subject, v, p.flag("deleted"))
    })
    .await;
    match result {
        Ok(Ok(s)) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, CONTENT_TYPE)],
            s.schema,
        )
            .into_response(),
        Ok(Err(e)) => error(&e),
        Err(e) => error(&RegistryError::Store(e.to_string())),
    }
}

async fn referenced_by(
    State(r): Reg,
    Path((subject, version)): Path<(String, String)>,
) -> Response {
    run(r, move |r| {
        let v = VersionSpec::parse(&version)?;
        Ok(json!(r.referenced_by(&subject, v)?))
    })
    .await
}

async fn delete_version(
    State(r): Reg,
    Path((subject, version)): Path<(String, String)>,
    RawQuery(q): RawQuery,
) -> Response {
    let p = Params::new(q);
    run(r, move |r| {
        let v = VersionSpec::parse(&version)?;
        Ok(json!(r.delete_version(&subject, v, p.flag("permanent"))?))
    })
    .await
}

async fn list_schemas(State(r): Reg, RawQuery(q): RawQuery) -> Response {
    let p = Params::new(q);
    run(r, move |r| {
        let prefix = p.get("subjectPrefix").unwrap_or("").to_string();
        let list = r.schemas(&prefix, p.flag("deleted"), p.flag("latestOnly"));
        Ok(to_json(page(list, &p)))
    })
    .await
}

async fn schema_types() -> Response {
    let names: Vec<&str> = SchemaType::ALL.iter().map(|t| t.name()).collect();
    ok(json!(names))
}

async fn schema_by_id(State(r): Reg, Path(id): Path<String>) -> Response {
    run(r, move |r| Ok(to_json(r.schema_by_id(parse_id(&id)?)?))).await
}

async fn schema_by_id_raw(State(r): Reg, Path(id): Path<String>) -> Response {
    let result = tokio::task::spawn_blocking(move || r.schema_by_id(parse_id(&id)?)).await;
    match result {
        Ok(Ok(s)) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, CONTENT_TYPE)],
            s.schema,
        )
            .into_response(),
        Ok(Err(e)) => error(&e),
        Err(e) => error(&RegistryError::Store(e.to_string())),
    }
}

async fn schema_subjects(State(r): Reg, Path(id): Path<String>, RawQuery(q): RawQuery) -> Response {
    let p = Params::new(q);
    run(r, move |r| {
        let mut subjects: Vec<String> = r
            .id_versions(parse_id(&id)?, p.flag("deleted"))?
            .into_iter()
            .map(|(s, _)| s)
            .collect();
        subjects.dedup();
        Ok(json!(page(subjects, &p)))
    })
    .await
}

async fn schema_versions(State(r): Reg, Path(id): Path<String>, RawQuery(q): RawQuery) -> Response {
    let p = Params::new(q);
    run(r, move |r| {
        let list: Vec<Json> = r
            .id_versions(parse_id(&id)?, p.flag("deleted"))?
            .into_iter()
            .map(|(subject, version)| json!({"subject": subject, "version": version}))
            .collect();
        Ok(json!(page(list, &p)))
    })
    .await
}

fn compat_body(c: crate::registry::Compatibility, verbose: bool) -> Json {
    if verbose {
        json!({"is_compatible": c.is_compatible, "messages": c.messages})
    } else {
        json!({"is_compatible": c.is_compatible})
    }
}

async fn compat_all(
    State(r): Reg,
    Path(subject): Path<String>,
    RawQuery(q): RawQuery,
    bytes: Bytes,
) -> Response {
    let p = Params::new(q);
    run(r, move |r| {
        let req: SchemaRequest = parse_body(&bytes)?;
        let verbose = p.flag("verbose");
        Ok(compat_body(
            r.check_compatibility(&subject, None, &req, verbose)?,
            verbose,
        ))
    })
    .await
}

async fn compat_version(
    State(r): Reg,
    Path((subject, version)): Path<(String, String)>,
    RawQuery(q): RawQuery,
    bytes: Bytes,
) -> Response {
    let p = Params::new(q);
    run(r, move |r| {
        let v = VersionSpec::parse(&version)?;
        let req: SchemaRequest = parse_body(&bytes)?;
        let verbose = p.flag("verbose");
        Ok(compat_body(
            r.check_compatibility(&subject, Some(v), &req, verbose)?,
            verbose,
        ))
    })
    .await
}

fn config_body(c: &crate::registry::Config) -> Json {
    let mut body = json!({"compatibilityLevel": c.level.name()});
    if let Some(n) = c.normalize {
        body["normalize"] = json!(n);
    }
    body
}

#[derive(Deserialize)]
struct ConfigUpdate {
    #[serde(default)]
    compatibility: Option<String>,
    /// Accepted as well, as some clients send it.
    #[serde(default, rename = "compatibilityLevel")]
    compatibility_level: Option<String>,
    #[serde(default)]
    normalize: Option<bool>,
}

fn update_config(
    r: &Registry,
    subject: Option<&str>,
    bytes: &Bytes,
) -> Result<Json, RegistryError> {
    let u: ConfigUpdate = parse_body(bytes).map_err(|_| RegistryError::InvalidCompatibility)?;
    let level = match u.compatibility.or(u.compatibility_level) {
        Some(l) => Some(l.parse::<Level>()?),
        None => None,
    };
    r.set_config(subject, level, u.normalize)?;
    let mut body = json!({});
    if let Some(l) = level {
        body["compatibility"] = json!(l.name());
    }
    if let Some(n) = u.normalize {
        body["normalize"] = json!(n);
    }
    Ok(body)
}

async fn get_global_config(State(r): Reg) -> Response {
    run(r, |r| Ok(config_body(&r.config(None, true)?))).await
}

async fn put_global_config(State(r): Reg, bytes: Bytes) -> Response {
    run(r, move |r| update_config(r, None, &bytes)).await
}

async fn delete_global_config(State(r): Reg) -> Response {
    run(r, |r| Ok(config_body(&r.delete_config(None)?))).await
}

async fn get_config(State(r): Reg, Path(subject): Path<String>, RawQuery(q): RawQuery) -> Response {
    let p = Params::new(q);
    run(r, move |r| {
        Ok(config_body(
            &r.config(Some(&subject), p.flag("defaultToGlobal"))?,
        ))
    })
    .await
}

async fn put_config(State(r): Reg, Path(subject): Path<String>, bytes: Bytes) -> Response {
    run(r, move |r| update_config(r, Some(&subject), &bytes)).await
}

async fn delete_config(State(r): Reg, Path(subject): Path<String>) -> Response {
    run(r, move |r| {
        Ok(config_body(&r.delete_config(Some(&subject))?))
    })
    .await
}

#[derive(Deserialize)]
struct ModeUpdate {
    #[serde(default)]
    mode: Option<String>,
}

fn update_mode(
    r: &Registry,
    subject: Option<&str>,
    bytes: &Bytes,
    force: bool,
) -> Result<Json, RegistryError> {
    let u: ModeUpdate = parse_body(bytes).map_err(|_| RegistryError::InvalidMode)?;
    let mode: Mode = u.mode.as_deref().unwrap_or("").parse()?;
    r.set_mode(subject, mode, force)?;
    Ok(json!({"mode": mode.name()}))
}

async fn get_global_mode(State(r): Reg) -> Response {
    run(r, |r| Ok(json!({"mode": r.mode(None, true)?.name()}))).await
}

async fn put_global_mode(State(r): Reg, RawQuery(q): RawQuery, bytes: Bytes) -> Response {
    let p = Params::new(q);
    run(r, move |r| update_mode(r, None, &bytes, p.flag("force"))).await
}

async fn get_mode(State(r): Reg, Path(subject): Path<String>, RawQuery(q): RawQuery) -> Response {
    let p = Params::new(q);
    run(r, move |r| {
        Ok(json!({"mode": r.mode(Some(&subject), p.flag("defaultToGlobal"))?.name()}))
    })
    .await
}

async fn put_mode(
    State(r): Reg,
    Path(subject): Path<String>,
    RawQuery(q): RawQuery,
    bytes: Bytes,
) -> Response {
    let p = Params::new(q);
    run(r, move |r| {
        update_mode(r, Some(&subject), &bytes, p.flag("force"))
    })
    .await
}

async fn delete_mode(State(r): Reg, Path(subject): Path<String>) -> Response {
    run(r, move |r| {
        Ok(json!({"mode": r.delete_mode(&subject)?.name()}))
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_components_are_percent_decoded() {
        assert_eq!(decode("a%2Fb+c"), "a/b c");
        assert_eq!(decode("100%"), "100%");
        assert_eq!(decode("%zz"), "%zz");
        let p = Params::new(Some("subjectPrefix=t%2D&deleted=TRUE&limit=2".into()));
        assert_eq!(p.get("subjectPrefix"), Some("t-"));
        assert!(p.flag("deleted"));
        assert_eq!(p.int("limit"), Some(2));
        assert!(!p.flag("permanent"));
    }
}
