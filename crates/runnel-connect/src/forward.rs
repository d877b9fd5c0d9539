//! Requests one worker hands to another: what must happen where a
//! connector or a task runs (restarts) is forwarded to that worker's REST
//! API, as Kafka Connect forwards it, with `forward=false` so the
//! receiver acts only on what it runs and never forwards again.

use std::time::Duration;

use serde_json::Value as Json;

use crate::error::WorkerError;

/// How long a forwarded request may take (stopping a task waits up to
/// 10 s for its thread).
const TIMEOUT: Duration = Duration::from_secs(60);

/// Kafka Connect's answer while the group moves work around (409).
pub(crate) fn rebalancing(what: &str) -> WorkerError {
    WorkerError::Conflict(format!(
        "Cannot complete request because of a conflicting operation (e.g. worker rebalance): {what} is not assigned to this worker"
    ))
}

/// A path segment with everything but unreserved characters escaped.
pub(crate) fn segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The base URL of a worker named by its REST address (`host:port`, or a
/// URL already).
fn base(worker: &str) -> String {
    if worker.starts_with("http://") || worker.starts_with("https://") {
        worker.trim_end_matches('/').to_string()
    } else {
        format!("http://{worker}")
    }
}

/// POSTs `path` (no query) to `worker` with `forward=false`; its error
/// answers come back as the same errors.
pub(crate) fn post(worker: &str, path: &str) -> Result<(), WorkerError> {
    let url = format!("{}{path}?forward=false", base(worker));
    tracing::debug!(%url, "connect worker: forwarding a request");
    match ureq::post(&url).timeout(TIMEOUT).call() {
        Ok(_) => Ok(()),
        Err(ureq::Error::Status(code, response)) => {
            let body = response.into_string().unwrap_or_default();
            let message = serde_json::from_str::<Json>(&body)
                .ok()
                .and_then(|j| j.get("message").and_then(Json::as_str).map(str::to_string))
                .unwrap_or(body);
            Err(match code {
                400 => WorkerError::BadRequest(message),
                404 => WorkerError::NotFound(message),
                409 => WorkerError::Conflict(message),
                _ => WorkerError::Store(format!(
                    "the worker at {worker} answered {code}: {message}"
                )),
            })
        }
        // The owner is gone or unreachable: its work moves once the group
        // notices (the session timeout); until then, as during any
        // rebalance, the request cannot be served.
        Err(e) => Err(WorkerError::Conflict(format!(
            "Cannot complete request because of a conflicting operation (e.g. worker rebalance): the worker at {worker} did not answer: {e}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_and_bases() {
        assert_eq!(segment("my conn/1"), "my%20conn%2F1");
        assert_eq!(segment("a-b_c.d~"), "a-b_c.d~");
        assert_eq!(base("127.0.0.1:8083"), "http://127.0.0.1:8083");
        assert_eq!(base("https://w:1/"), "https://w:1");
    }
}
