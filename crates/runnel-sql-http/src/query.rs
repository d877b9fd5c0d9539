//! Queries and inserts: `/query` (chunked JSON array), `/query-stream`
//! (delimited lines or one JSON array), `/close-query` and
//! `/inserts-stream`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::RecvTimeoutError;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Response;
use futures_util::{stream, StreamExt};
use runnel_format::format::{CodecSpec, Format, RowSerde};
use runnel_format::protobuf;
use runnel_format::schema::Column;
use runnel_format::types::base64_encode;
use runnel_sql::format::write_json_text;
use runnel_sql::types::{SqlType, Value};
use runnel_sql::{QueryEvent, QueryStream};
use serde::Deserialize;
use serde_json::{json, Value as Json};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use crate::{
    blocking, json_response, lock, parse_body, props_map, stream_body, ApiError, AppState,
    BAD_REQUEST, SERVER_ERROR,
};

/// The delimited content type of `/query-stream` (its default).
pub const DELIMITED: &str = "application/vnd.ksqlapi.delimited.v1";

/// How often a query's pump looks for a closed client or `/close-query`.
const POLL: Duration = Duration::from_millis(100);

/// What a response needs to know about a started query.
struct Started {
    id: String,
    columns: Vec<(String, SqlType)>,
    key_flags: Vec<bool>,
    is_pull: bool,
    /// PRINT: text lines, no header.
    text: bool,
    events: mpsc::Receiver<QueryEvent>,
}

/// Starts `sql` and a thread moving its events to a tokio channel; push
/// queries are registered for `/close-query` until they end.
async fn start(
    state: &AppState,
    sql: String,
    props: std::collections::BTreeMap<String, String>,
) -> Result<Started, ApiError> {
    let engine = state.engine.clone();
    let text = sql.clone();
    let qs: QueryStream = blocking(move || engine.query(&text, &props))
        .await?
        .map_err(|e| ApiError::statement(&e, &sql, Vec::new()))?;
    let closed = Arc::new(AtomicBool::new(false));
    if !qs.is_pull {
        lock(&state.running).insert(qs.id.clone(), closed.clone());
    }
    let started = Started {
        id: qs.id.clone(),
        columns: qs.columns.clone(),
        key_flags: qs.key_flags.clone(),
        is_pull: qs.is_pull,
        text: qs.columns.is_empty(),
        events: {
            let (tx, rx) = mpsc::channel(256);
            let id = qs.id.clone();
            let st = state.clone();
            std::thread::Builder::new()
                .name(format!("sql-query-{id}"))
                .spawn(move || {
                    pump(&qs, &tx, &closed);
                    qs.close();
                    lock(&st.running).remove(&qs.id);
                })
                .map_err(|e| {
                    lock(&state.running).remove(&id);
                    ApiError::server(format!("cannot start the query's thread: {e}"))
                })?;
            rx
        },
    };
    Ok(started)
}

/// Moves events until the query ends (its last event, a final message or
/// an error, included), the client goes away or the query is closed.
fn pump(qs: &QueryStream, tx: &mpsc::Sender<QueryEvent>, closed: &AtomicBool) {
    loop {
        if closed.load(Ordering::SeqCst) {
            return;
        }
        match qs.rows.recv_timeout(POLL) {
            Ok(ev) => {
                let last = matches!(ev, QueryEvent::Final(_));
                if tx.blocking_send(ev).is_err() || last {
                    return;
                }
            }
            Err(RecvTimeoutError::Timeout) => {
                if tx.is_closed() {
                    return;
                }
            }
            Err(RecvTimeoutError::Disconnected) => return,
        }
    }
}

/// A row's values as JSON text (decimals with their scale, as ksqlDB
/// writes them); a tombstone (key columns only) padded with nulls.
fn row_json(row: &[Value], width: usize) -> String {
    let mut out = String::from("[");
    for i in 0..row.len().max(width) {
        if i > 0 {
            out.push(',');
        }
        write_json_text(row.get(i).unwrap_or(&Value::Null), &mut out);
    }
    out.push(']');
    out
}

/// ksqlDB's schema string: "`K` STRING KEY, `N` BIGINT".
fn schema_string(columns: &[(String, SqlType)], key_flags: &[bool]) -> String {
    columns
        .iter()
        .enumerate()
        .map(|(i, (n, t))| {
            let key = if key_flags.get(i).copied().unwrap_or(false) {
                " KEY"
            } else {
                ""
            };
            format!("`{n}` {t}{key}")
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn error_json(message: &str) -> Json {
    json!({"@type": "generic_error", "error_code": SERVER_ERROR, "message": message})
}

#[derive(Deserialize)]
pub(crate) struct QueryRequest {
    ksql: String,
    #[serde(default, rename = "streamsProperties")]
    streams_properties: serde_json::Map<String, Json>,
}

/// `POST /query`: one JSON array, streamed as rows arrive (see
/// [`framed`]); rows as Protobuf messages when the client accepts
/// `application/vnd.ksql.v1+protobuf`.
pub(crate) async fn query(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let req: QueryRequest = parse_body(&body)?;
    let q = start(&state, req.ksql, props_map(&req.streams_properties)).await?;
    if q.text {
        let events = ReceiverStream::new(q.events);
        let body = stream_body(events.filter_map(|ev| async move {
            match ev {
                QueryEvent::Text(l) => Some(Bytes::from(format!("{l}\n"))),
                QueryEvent::Error(e) => Some(Bytes::from(format!("{e}\n"))),
                _ => None,
            }
        }));
        return Ok(streamed(body, "application/json"));
    }
    if wants_protobuf(&headers) {
        return protobuf_rows(q);
    }
    let width = q.columns.len();
    let header = json!({"header": {
        "queryId": q.id,
        "schema": schema_string(&q.columns, &q.key_flags),
    }});
    let body = framed(q, header, move |r| {
        format!("{{\"columns\":{}}}", row_json(&r, width))
    });
    Ok(streamed(body, "application/json"))
}

/// ksqlDB's framing of `/query` (and of Protobuf rows on either
/// endpoint): one JSON array. A push query's header goes out at once with
/// its `,\n` (a client may wait for it before producing), each row follows
/// with its own, and a final message or an error closes the array; a pull
/// query's elements are separated by `,\n` and the last closes the array.
/// `row` renders the text of a row's `"row"` object.
fn framed(q: Started, header: Json, row: impl Fn(Vec<Value>) -> String + Send + 'static) -> Body {
    let width = q.columns.len();
    let item = move |ev: QueryEvent| match ev {
        QueryEvent::Row(r) => format!("{{\"row\":{}}}", row(r)),
        QueryEvent::Tombstone(r) => format!(
            "{{\"row\":{{\"columns\":{},\"tombstone\":true}}}}",
            row_json(&r, width)
        ),
        QueryEvent::Text(t) | QueryEvent::Final(t) => json!({"finalMessage": t}).to_string(),
        QueryEvent::Error(e) => json!({"errorMessage": error_json(&e)}).to_string(),
    };
    let events = ReceiverStream::new(q.events);
    if q.is_pull {
        let rows = events.map(move |ev| Bytes::from(format!(",\n{}", item(ev))));
        stream_body(
            stream::once(async move { Bytes::from(format!("[{header}")) })
                .chain(rows)
                .chain(stream::once(async { Bytes::from_static(b"]\n") })),
        )
    } else {
        // A push query that is closed ends the response as ksqlDB's does:
        // after the last row, without a closing bracket.
        let rows = events.map(move |ev| {
            let last = matches!(ev, QueryEvent::Final(_) | QueryEvent::Error(_));
            let sep = if last { "]\n" } else { ",\n" };
            Bytes::from(format!("{}{sep}", item(ev)))
        });
        stream_body(stream::once(async move { Bytes::from(format!("[{header},\n")) }).chain(rows))
    }
}

/// The Protobuf content type of `/query` and `/query-stream`.
pub const PROTOBUF: &str = "application/vnd.ksql.v1+protobuf";

fn wants_protobuf(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains(PROTOBUF))
}

/// Rows as ksqlDB sends them to a client accepting Protobuf: the header
/// carries the proto3 schema it derives from the columns
/// (`ConnectDefault1`, fields numbered in column order) and each row is
/// that message, base64-encoded, without any schema-registry framing.
fn protobuf_rows(q: Started) -> Result<Response, ApiError> {
    let columns: Vec<Column> = q
        .columns
        .iter()
        .map(|(n, t)| Column::new(n, t.clone()))
        .collect();
    let proto = protobuf::schema_for(&columns, protobuf::DEFAULT_MESSAGE_NAME).map_err(|e| {
        ApiError::server(format!("no Protobuf schema for the query's columns: {e}"))
    })?;
    let serde = RowSerde::with_spec(Format::PROTOBUF_NOSR, CodecSpec::new(&columns, true));
    let header = json!({"header": {
        "queryId": q.id,
        "schema": schema_string(&q.columns, &q.key_flags),
        "protoSchema": proto,
    }});
    let body = framed(q, header, move |r| match serde.encode(&r) {
        Ok(bytes) => {
            json!({"protobufBytes": base64_encode(&bytes.unwrap_or_default())}).to_string()
        }
        Err(e) => json!({"errorMessage": error_json(&e.to_string())}).to_string(),
    });
    Ok(streamed(body, PROTOBUF))
}

fn streamed(body: Body, content_type: &'static str) -> Response {
    let mut resp = Response::new(body);
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(content_type),
    );
    resp
}

#[derive(Deserialize)]
pub(crate) struct QueryStreamRequest {
    sql: String,
    #[serde(default)]
    properties: serde_json::Map<String, Json>,
}

/// Whether the client asked for one JSON array rather than delimited lines.
fn wants_json(headers: &HeaderMap) -> bool {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    accept.contains("application/json") && !accept.contains(DELIMITED)
}

/// `POST /query-stream`: a header object, then one array per row.
pub(crate) async fn query_stream(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let req: QueryStreamRequest = parse_body(&body)?;
    let q = start(&state, req.sql, props_map(&req.properties)).await?;
    if !q.text && wants_protobuf(&headers) {
        return protobuf_rows(q);
    }
    let json_array = wants_json(&headers);
    let width = q.columns.len();
    let header = json!({
        "queryId": q.id,
        "columnNames": q.columns.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>(),
        "columnTypes": q.columns.iter().map(|(_, t)| t.to_string()).collect::<Vec<_>>(),
    });
    let text = q.text;
    // As ksqlDB's: no final message, and table deletions are not rows.
    let items = ReceiverStream::new(q.events).filter_map(move |ev| async move {
        match ev {
            QueryEvent::Row(r) => Some(row_json(&r, width)),
            QueryEvent::Tombstone(_) | QueryEvent::Final(_) => None,
            QueryEvent::Text(t) if text => Some(Json::String(t).to_string()),
            QueryEvent::Text(t) => Some(json!({"finalMessage": t}).to_string()),
            QueryEvent::Error(e) => Some(error_json(&e).to_string()),
        }
    });
    let resp = if json_array {
        let body = stream::once(async move { Bytes::from(format!("[{header}")) })
            .chain(items.map(|i| Bytes::from(format!(",{i}"))))
            .chain(stream::once(async { Bytes::from_static(b"]") }));
        streamed(stream_body(body), "application/json")
    } else {
        let body = stream::once(async move { Bytes::from(format!("{header}\n")) })
            .chain(items.map(|i| Bytes::from(format!("{i}\n"))));
        streamed(stream_body(body), DELIMITED)
    };
    Ok(resp)
}

#[derive(Deserialize)]
pub(crate) struct CloseRequest {
    #[serde(rename = "queryId")]
    query_id: String,
}

/// `POST /close-query`: stops a running push query.
pub(crate) async fn close_query(
    State(state): State<AppState>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let req: CloseRequest = parse_body(&body)?;
    match lock(&state.running).get(&req.query_id) {
        Some(flag) => {
            flag.store(true, Ordering::SeqCst);
            Ok(json_response(StatusCode::OK, &json!({})))
        }
        None => Err(ApiError::generic(
            StatusCode::BAD_REQUEST,
            BAD_REQUEST,
            format!("No query with id {}", req.query_id),
        )),
    }
}

#[derive(Deserialize)]
struct InsertsTarget {
    target: String,
}

/// Lines of a streamed request body.
struct Lines {
    body: axum::body::BodyDataStream,
    buf: Vec<u8>,
    done: bool,
}

impl Lines {
    /// The next non-empty line, `None` at the end, or why the body failed.
    async fn next(&mut self) -> Option<Result<Vec<u8>, String>> {
        loop {
            if let Some(i) = self.buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=i).collect();
                let line = trim(&line[..line.len() - 1]);
                if line.is_empty() {
                    continue;
                }
                return Some(Ok(line.to_vec()));
            }
            if self.done {
                let rest = std::mem::take(&mut self.buf);
                let rest = trim(&rest);
                return (!rest.is_empty()).then(|| Ok(rest.to_vec()));
            }
            match self.body.next().await {
                Some(Ok(chunk)) => self.buf.extend_from_slice(&chunk),
                Some(Err(e)) => return Some(Err(e.to_string())),
                None => self.done = true,
            }
        }
    }
}

fn trim(b: &[u8]) -> &[u8] {
    let start = b
        .iter()
        .position(|c| !c.is_ascii_whitespace())
        .unwrap_or(b.len());
    let end = b
        .iter()
        .rposition(|c| !c.is_ascii_whitespace())
        .map_or(start, |e| e + 1);
    &b[start..end.max(start)]
}

/// `POST /inserts-stream`: `{"target": S}`, then one row object per line,
/// each acknowledged by a line of its own as it is written.
pub(crate) async fn inserts_stream(
    State(state): State<AppState>,
    request: Request,
) -> Result<Response, ApiError> {
    let mut lines = Lines {
        body: request.into_body().into_data_stream(),
        buf: Vec::new(),
        done: false,
    };
    let first = match lines.next().await {
        Some(Ok(l)) => l,
        Some(Err(e)) => {
            return Err(ApiError::generic(
                StatusCode::BAD_REQUEST,
                BAD_REQUEST,
                format!("cannot read the request: {e}"),
            ))
        }
        None => {
            return Err(ApiError::generic(
                StatusCode::BAD_REQUEST,
                BAD_REQUEST,
                "Invalid request body: expected {\"target\": \"<stream>\"} first",
            ))
        }
    };
    let target: InsertsTarget = parse_body(&first)?;
    let engine = state.engine.clone();
    let name = target.target.clone();
    let known = blocking(move || {
        let catalog = engine.catalog();
        catalog.source(&name.to_ascii_uppercase()).is_some() || catalog.source(&name).is_some()
    })
    .await?;
    if !known {
        return Err(ApiError::generic(
            StatusCode::BAD_REQUEST,
            runnel_sql::Engine::error_code(&runnel_sql::SqlError::not_found(None, "")),
            format!("Cannot insert into an unknown stream: {}", target.target),
        ));
    }
    let (tx, rx) = mpsc::channel::<Bytes>(256);
    let mut stopping = state.stopping.subscribe();
    let engine = state.engine.clone();
    tokio::spawn(async move {
        let mut seq: u64 = 0;
        loop {
            let line = tokio::select! {
                l = lines.next() => l,
                _ = stopping.wait_for(|s| *s) => None,
            };
            let ack = match line {
                None => break,
                Some(Err(e)) => {
                    tracing::debug!(error = %e, "inserts stream ended");
                    break;
                }
                Some(Ok(line)) => insert_line(&engine, &target.target, &line, seq).await,
            };
            seq += 1;
            if tx.send(Bytes::from(format!("{ack}\n"))).await.is_err() {
                break;
            }
        }
    });
    Ok(streamed(
        stream_body(ReceiverStream::new(rx)),
        "application/json",
    ))
}

async fn insert_line(engine: &runnel_sql::Engine, target: &str, line: &[u8], seq: u64) -> Json {
    let error = |code: u32, message: String| json!({"status": "error", "seq": seq, "error_code": code, "message": message});
    let obj = match serde_json::from_slice::<Json>(line) {
        Ok(Json::Object(o)) => o,
        Ok(_) => return error(BAD_REQUEST, "Invalid row: expected a JSON object".into()),
        Err(e) => return error(BAD_REQUEST, format!("Invalid row: {e}")),
    };
    let engine = engine.clone();
    let target = target.to_string();
    match blocking(move || engine.insert_json(&target, &obj)).await {
        Ok(Ok(())) => json!({"status": "ok", "seq": seq}),
        Ok(Err(e)) => error(runnel_sql::Engine::error_code(&e), e.to_string()),
        Err(e) => error(SERVER_ERROR, format!("{:?}", e.body)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_marks_keys() {
        let cols = vec![
            ("K".to_string(), SqlType::String),
            ("N".to_string(), SqlType::BigInt),
        ];
        assert_eq!(schema_string(&cols, &[true]), "`K` STRING KEY, `N` BIGINT");
        assert_eq!(
            schema_string(&cols, &[false, true]),
            "`K` STRING, `N` BIGINT KEY"
        );
    }

    #[test]
    fn tombstones_pad_with_nulls() {
        assert_eq!(
            row_json(&[Value::String("a".into())], 2),
            json!(["a", null]).to_string()
        );
    }

    #[test]
    fn trims_lines() {
        assert_eq!(trim(b"  {}\r"), b"{}");
        assert_eq!(trim(b"   "), b"");
    }

    #[test]
    fn accept_header_picks_the_format() {
        let mut h = HeaderMap::new();
        assert!(!wants_json(&h));
        h.insert(header::ACCEPT, "application/json".parse().unwrap());
        assert!(wants_json(&h));
        h.insert(header::ACCEPT, DELIMITED.parse().unwrap());
        assert!(!wants_json(&h));
    }
}
