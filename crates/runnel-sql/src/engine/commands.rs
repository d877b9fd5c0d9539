//! The command topic: every accepted statement is recorded there (with
//! its request properties and the engine process that ran it), replayed
//! on start, and followed in the background so statements other engines
//! on the same cluster record run here too.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Weak;
use std::thread::JoinHandle;
use std::time::Duration;

use runnel_streams::backend::{ProducedRecord, TopicPartition};

use super::{backend_err, lock, now_ms, Engine, Inner};
use crate::error::SqlError;

/// One recorded statement.
#[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub(super) struct Command {
    pub(super) statement: String,
    #[serde(default)]
    pub(super) props: BTreeMap<String, String>,
    /// The engine process that ran and recorded it (absent in records of
    /// earlier versions): an engine skips its own records when it follows
    /// the topic, having run them already.
    #[serde(default)]
    pub(super) origin: String,
}

impl Command {
    /// The record value: a JSON object.
    pub(super) fn encode(&self) -> Result<Vec<u8>, SqlError> {
        serde_json::to_vec(self).map_err(|e| SqlError::server(e.to_string()))
    }

    /// A record value back; fields later versions added may be absent.
    pub(super) fn decode(value: &[u8]) -> Result<Command, serde_json::Error> {
        serde_json::from_slice(value)
    }
}

/// How often an engine looks for statements other engines sharing its
/// command topic recorded.
pub(super) const COMMAND_POLL: Duration = Duration::from_millis(250);

/// Starts the `sql-commands` thread: every [`COMMAND_POLL`] it runs the
/// statements other engines recorded since, until the engine stops or is
/// dropped.
pub(super) fn follow(weak: Weak<Inner>) -> Result<JoinHandle<()>, SqlError> {
    std::thread::Builder::new()
        .name("sql-commands".into())
        .spawn(move || {
            let mut failures = 0u64;
            loop {
                std::thread::sleep(COMMAND_POLL);
                let Some(inner) = weak.upgrade() else { return };
                if inner.stopping.load(Ordering::SeqCst) {
                    return;
                }
                let engine = Engine { inner };
                let _turn = lock(&engine.inner.commands);
                match engine.catch_up(false) {
                    Ok(_) if failures > 0 => {
                        tracing::info!(failures, "reading the command topic again");
                        failures = 0;
                    }
                    Ok(_) => {}
                    // Once, then about once a minute while it lasts.
                    Err(e) => {
                        if failures.is_multiple_of(240) {
                            tracing::warn!(error = %e, failures, "cannot read the command topic");
                        }
                        failures += 1;
                    }
                }
            }
        })
        .map_err(|e| SqlError::server(format!("cannot start the command follower: {e}")))
}

impl Engine {
    /// Runs the statements recorded in the command topic since the last
    /// one this engine saw, except its own (already run); returns how many
    /// ran. The caller holds `commands`. `replay` reports progress.
    pub(super) fn catch_up(&self, replay: bool) -> Result<usize, SqlError> {
        let from = lock(&self.inner.state).seq;
        let mut commands = Vec::new();
        lock(&self.inner.admin)
            .read_partition(
                &TopicPartition::new(&self.inner.config.command_topic, 0),
                from,
                &mut |r| {
                    if r.offset < from {
                        return;
                    }
                    match r.value.as_deref().map(Command::decode) {
                        Some(Ok(c)) => commands.push((r.offset, Some(c))),
                        Some(Err(e)) => {
                            tracing::warn!(offset = r.offset, error = %e, "skipping an unreadable command");
                            commands.push((r.offset, None));
                        }
                        None => commands.push((r.offset, None)),
                    }
                },
            )
            .map_err(backend_err)?;
        let total = commands.len();
        let mut ran = 0;
        for (i, (offset, c)) in commands.into_iter().enumerate() {
            lock(&self.inner.state).seq = offset;
            if let Some(c) = c.filter(|c| c.origin != self.inner.origin) {
                let types = lock(&self.inner.state).types.clone();
                match crate::parser::parse_one_with_types(&c.statement, &types) {
                    Ok(p) => {
                        if let Err(e) = self.run(&p, &c.props, false) {
                            tracing::warn!(statement = %c.statement, error = %e, "a recorded statement failed");
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "a recorded statement no longer parses"),
                }
                ran += 1;
            }
            if replay && (i + 1) % 100 == 0 {
                tracing::info!(replayed = i + 1, total, "replaying the command topic");
            }
            lock(&self.inner.state).seq = offset + 1;
        }
        Ok(ran)
    }

    pub(super) fn record(
        &self,
        record: bool,
        text: &str,
        props: &BTreeMap<String, String>,
    ) -> Result<(), SqlError> {
        if !record {
            return Ok(());
        }
        let cmd = Command {
            statement: text.to_string(),
            props: props.clone(),
            origin: self.inner.origin.clone(),
        };
        let value = cmd.encode()?;
        let mut admin = lock(&self.inner.admin);
        admin
            .send(vec![ProducedRecord {
                topic: self.inner.config.command_topic.clone(),
                partition: 0,
                timestamp: now_ms(),
                key: None,
                value: Some(value),
                headers: Vec::new(),
            }])
            .and_then(|_| admin.commit(&[]))
            .map_err(backend_err)?;
        drop(admin);
        // Past this record (skipped: it ran) and any another engine wrote.
        self.catch_up(false)?;
        Ok(())
    }

    /// The number of commands recorded.
    pub fn command_count(&self) -> i64 {
        lock(&self.inner.state).seq
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_command_reads_back_as_written() {
        let c = Command {
            statement: "CREATE STREAM S (V INT) WITH (KAFKA_TOPIC='s', VALUE_FORMAT='JSON');"
                .to_string(),
            props: BTreeMap::from([("auto.offset.reset".to_string(), "latest".to_string())]),
            origin: "42-7".to_string(),
        };
        let bytes = c.encode().expect("encodes");
        assert_eq!(Command::decode(&bytes).expect("decodes"), c);
    }

    #[test]
    fn the_record_format_is_a_stable_json_object() {
        let c = Command {
            statement: "TERMINATE ALL;".to_string(),
            props: BTreeMap::new(),
            origin: "o".to_string(),
        };
        assert_eq!(
            String::from_utf8(c.encode().expect("encodes")).expect("utf-8"),
            r#"{"statement":"TERMINATE ALL;","props":{},"origin":"o"}"#
        );
    }

    #[test]
    fn records_of_earlier_versions_have_no_props_nor_origin() {
        let c = Command::decode(br#"{"statement":"DROP STREAM S;"}"#).expect("decodes");
        assert_eq!(c.statement, "DROP STREAM S;");
        assert!(c.props.is_empty());
        // An empty origin is never this engine's: the record runs.
        assert_eq!(c.origin, "");
    }

    #[test]
    fn an_unreadable_record_is_an_error_not_a_panic() {
        assert!(Command::decode(b"not json").is_err());
        assert!(Command::decode(br#"{"props":{}}"#).is_err());
    }
}
