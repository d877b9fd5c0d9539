//! Pull queries for partitions another engine hosts: sent to that engine's
//! `/query-stream` to be answered from its local partitions only.

use std::io::{BufRead, BufReader};
use std::sync::Arc;
use std::time::Duration;

use runnel_sql::{PullForwarder, PULL_LOCAL_ONLY};
use serde_json::{json, Value as Json};

/// A [`PullForwarder`] over HTTP with `timeout` per request.
pub fn pull_forwarder(timeout: Duration) -> PullForwarder {
    let agent = ureq::AgentBuilder::new().timeout(timeout).build();
    Arc::new(move |host: &str, sql: &str| {
        let body = json!({ "sql": sql, "properties": { PULL_LOCAL_ONLY: "true" } });
        let response = agent
            .post(&format!("http://{host}/query-stream"))
            .send_string(&body.to_string())
            .map_err(|e| match e {
                ureq::Error::Status(code, r) => {
                    format!("{code} {}", r.into_string().unwrap_or_default())
                }
                e => e.to_string(),
            })?;
        rows(BufReader::new(response.into_reader()))
    })
}

/// The rows of a `/query-stream` response: a header object, then one JSON
/// array per row; an object after the header is an error.
fn rows(reader: impl BufRead) -> Result<Vec<Vec<Json>>, String> {
    let mut out = Vec::new();
    for (i, line) in reader.lines().enumerate() {
        let line = line.map_err(|e| e.to_string())?;
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Json>(&line) {
            Ok(Json::Array(row)) => out.push(row),
            Ok(Json::Object(_)) if i == 0 => {}
            Ok(other) => return Err(format!("unexpected response line: {other}")),
            Err(e) => return Err(format!("response line {}: {e}", i + 1)),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_follow_the_header_and_an_error_line_fails() {
        let ok = "{\"queryId\":\"q\",\"columnNames\":[\"K\"]}\n[\"a\",1]\n\n[\"b\",2]\n";
        assert_eq!(
            rows(ok.as_bytes()).unwrap(),
            vec![vec![json!("a"), json!(1)], vec![json!("b"), json!(2)]]
        );
        let err = "{\"columnNames\":[]}\n[\"a\",1]\n{\"@type\":\"generic_error\"}\n";
        assert!(rows(err.as_bytes()).is_err());
        assert!(rows("not json\n".as_bytes()).is_err());
    }
}
