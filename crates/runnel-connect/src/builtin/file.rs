//! Kafka's file connectors: `FileStreamSource` reads a file's lines into
//! a topic (each line one record, a string value without key; the source
//! offset is the byte position after the line, the source partition the
//! file name, as Kafka's) — without `file`, the worker process's standard
//! input (no position: `{"filename": null}` / `{"position": null}`, as
//! Kafka's; one reader thread for the process, so a restarted task goes on
//! where the last one stopped) —, `FileStreamSink` appends each record's
//! value as a line.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::time::Duration;

use runnel_connect_api::{
    Config, ConfigDef, ConfigKey, ConfigType, ConnectError, ConnectorContext, ConnectorKind,
    ConnectorPlugin, Importance, OffsetReader, Schema, SinkRecord, SinkTask, SourceOffset,
    SourcePartition, SourceRecord, SourceTask, Validator, Value,
};

pub const SOURCE_CLASS: &str = "org.apache.kafka.connect.file.FileStreamSourceConnector";
pub const SINK_CLASS: &str = "org.apache.kafka.connect.file.FileStreamSinkConnector";

/// How long a poll waits for more lines when the file has none.
const IDLE: Duration = Duration::from_millis(200);

fn aliases(class: &str) -> Vec<String> {
    let simple = class.rsplit('.').next().unwrap_or(class).to_string();
    let short = simple.trim_end_matches("Connector").to_string();
    vec![simple, short]
}

/// `FileStreamSourceConnector`.
#[derive(Debug, Default)]
pub struct FileSource;

fn source_def() -> ConfigDef {
    ConfigDef::new()
        .define(ConfigKey::new(
            "file",
            ConfigType::String,
            Some(""),
            Importance::High,
            "Source filename. If not specified, the standard input will be used",
        ))
        .define(
            ConfigKey::new(
                "topic",
                ConfigType::List,
                None,
                Importance::High,
                "The topic to publish data to",
            )
            .validator(Validator::NonEmpty),
        )
        .define(
            ConfigKey::new(
                "batch.size",
                ConfigType::Int,
                Some("2000"),
                Importance::Low,
                "The maximum number of records the source task can read from the file each time it is polled",
            )
            .validator(Validator::Range {
                min: Some(1),
                max: None,
            }),
        )
}

impl ConnectorPlugin for FileSource {
    fn class(&self) -> &str {
        SOURCE_CLASS
    }
    fn aliases(&self) -> Vec<String> {
        aliases(SOURCE_CLASS)
    }
    fn kind(&self) -> ConnectorKind {
        ConnectorKind::Source
    }
    fn version(&self) -> &str {
        env!("CARGO_PKG_VERSION")
    }
    fn config_def(&self) -> ConfigDef {
        source_def()
    }
    fn validate(&self, config: &Config) -> Vec<runnel_connect_api::ConfigValue> {
        let mut out = source_def().validate(config);
        if let Some(t) = config.get("topic") {
            if t.contains(',') {
                if let Some(v) = out.iter_mut().find(|v| v.name == "topic") {
                    v.errors
                        .push("'topic' in FileStreamSourceConnector configuration requires definition of a single topic.".into());
                }
            }
        }
        out
    }
    fn task_configs(&self, config: &Config, _max: usize) -> Result<Vec<Config>, ConnectError> {
        // One file, one task.
        Ok(vec![config.clone()])
    }
    fn source_task(&self) -> Result<Box<dyn SourceTask>, ConnectError> {
        Ok(Box::new(FileSourceTask::default()))
    }
}

/// The lines of the process's standard input, read by one thread for the
/// whole process (a read of stdin cannot be interrupted; a task polls the
/// channel instead, so it stops at once).
fn stdin_lines() -> &'static std::sync::Mutex<std::sync::mpsc::Receiver<Vec<u8>>> {
    static LINES: std::sync::OnceLock<std::sync::Mutex<std::sync::mpsc::Receiver<Vec<u8>>>> =
        std::sync::OnceLock::new();
    LINES.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(10_000);
        let spawned = std::thread::Builder::new()
            .name("connect-stdin".into())
            .spawn(move || {
                let mut input = std::io::stdin().lock();
                loop {
                    let mut line = Vec::new();
                    match input.read_until(b'\n', &mut line) {
                        Ok(0) | Err(_) => return,
                        Ok(_) => {
                            if tx.send(line).is_err() {
                                return;
                            }
                        }
                    }
                }
            });
        if let Err(e) = spawned {
            tracing::warn!("cannot start the standard input reader: {e}");
        }
        std::sync::Mutex::new(rx)
    })
}

/// A record of one line (its end of line removed); `position`: the byte
/// after it (`None` for standard input).
fn line_record(
    partition: &SourcePartition,
    topic: &str,
    position: Option<u64>,
    mut line: Vec<u8>,
) -> SourceRecord {
    line.pop();
    if line.ends_with(b"\r") {
        line.pop();
    }
    let mut offset = SourceOffset::new();
    offset.insert(
        "position".into(),
        position.map_or(serde_json::Value::Null, Into::into),
    );
    SourceRecord::new(
        partition.clone(),
        offset,
        topic.to_string(),
        None,
        Value::Null,
        Some(Schema::string()),
        Value::String(String::from_utf8_lossy(&line).into_owned()),
    )
}

#[derive(Default)]
struct FileSourceTask {
    path: String,
    topic: String,
    batch: usize,
    reader: Option<BufReader<File>>,
    position: u64,
    partial: Vec<u8>,
}

impl FileSourceTask {
    fn partition(&self) -> SourcePartition {
        let mut p = SourcePartition::new();
        let name = if self.path.is_empty() {
            serde_json::Value::Null
        } else {
            self.path.clone().into()
        };
        p.insert("filename".into(), name);
        p
    }

    /// Lines from standard input: what came within [`IDLE`].
    fn poll_stdin(&mut self) -> Result<Vec<SourceRecord>, ConnectError> {
        let partition = self.partition();
        let lines = stdin_lines().lock().unwrap_or_else(|p| p.into_inner());
        let mut out = Vec::new();
        let deadline = std::time::Instant::now() + IDLE;
        while out.len() < self.batch {
            let wait = deadline.saturating_duration_since(std::time::Instant::now());
            let next = if out.is_empty() {
                lines.recv_timeout(wait).ok()
            } else {
                lines.try_recv().ok()
            };
            let Some(line) = next else { break };
            self.partial.extend_from_slice(&line);
            if !self.partial.ends_with(b"\n") {
                // The input ended in the middle of a line: Kafka drops it.
                self.partial.clear();
                break;
            }
            let line = std::mem::take(&mut self.partial);
            out.push(line_record(&partition, &self.topic, None, line));
        }
        Ok(out)
    }
}

impl SourceTask for FileSourceTask {
    fn start(
        &mut self,
        config: &Config,
        _context: &ConnectorContext,
        offsets: &dyn OffsetReader,
    ) -> Result<(), ConnectError> {
        let def = source_def();
        let e =
            |e: runnel_connect_api::ConfigError| ConnectError::config(e.name, e.value, e.message);
        self.path = def.string(config, "file").map_err(e)?;
        self.topic = def.string(config, "topic").map_err(e)?;
        self.batch =
            usize::try_from(def.int(config, "batch.size").map_err(e)?.max(1)).unwrap_or(2000);
        if self.path.is_empty() {
            return Ok(());
        }
        self.position = offsets
            .offset(&self.partition())
            .and_then(|o| o.get("position").and_then(|p| p.as_u64()))
            .unwrap_or(0);
        Ok(())
    }

    fn poll(&mut self) -> Result<Vec<SourceRecord>, ConnectError> {
        if self.path.is_empty() {
            return self.poll_stdin();
        }
        if self.reader.is_none() {
            match File::open(&self.path) {
                Ok(mut f) => {
                    f.seek(SeekFrom::Start(self.position)).map_err(|e| {
                        ConnectError::Fatal(format!("cannot seek in {}: {e}", self.path))
                    })?;
                    self.reader = Some(BufReader::new(f));
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    // Kafka waits for the file to appear.
                    std::thread::sleep(IDLE);
                    return Ok(Vec::new());
                }
                Err(e) => {
                    return Err(ConnectError::Fatal(format!(
                        "Couldn't find or open file {}: {e}",
                        self.path
                    )))
                }
            }
        }
        let partition = self.partition();
        let Some(reader) = self.reader.as_mut() else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        while out.len() < self.batch {
            let mut buf = Vec::new();
            let n = reader
                .read_until(b'\n', &mut buf)
                .map_err(|e| ConnectError::Retriable(format!("cannot read {}: {e}", self.path)))?;
            if n == 0 {
                break;
            }
            self.partial.extend_from_slice(&buf);
            if !self.partial.ends_with(b"\n") {
                // A line still being written: wait for its end.
                break;
            }
            self.position += self.partial.len() as u64;
            let line = std::mem::take(&mut self.partial);
            out.push(line_record(
                &partition,
                &self.topic,
                Some(self.position),
                line,
            ));
        }
        if out.is_empty() {
            std::thread::sleep(IDLE);
            // Pick up a file that was truncated or replaced.
            if let Ok(meta) = std::fs::metadata(&self.path) {
                if meta.len() < self.position {
                    self.reader = None;
                    self.position = 0;
                    self.partial.clear();
                }
            }
        }
        Ok(out)
    }

    fn stop(&mut self) {
        self.reader = None;
    }
}

/// `FileStreamSinkConnector`.
#[derive(Debug, Default)]
pub struct FileSink;

fn sink_def() -> ConfigDef {
    ConfigDef::new().define(
        ConfigKey::new(
            "file",
            ConfigType::String,
            None,
            Importance::High,
            "Destination filename.",
        )
        .validator(Validator::NonEmpty),
    )
}

impl ConnectorPlugin for FileSink {
    fn class(&self) -> &str {
        SINK_CLASS
    }
    fn aliases(&self) -> Vec<String> {
        aliases(SINK_CLASS)
    }
    fn kind(&self) -> ConnectorKind {
        ConnectorKind::Sink
    }
    fn version(&self) -> &str {
        env!("CARGO_PKG_VERSION")
    }
    fn config_def(&self) -> ConfigDef {
        sink_def()
    }
    fn task_configs(&self, config: &Config, max: usize) -> Result<Vec<Config>, ConnectError> {
        Ok(vec![config.clone(); max.max(1)])
    }
    fn sink_task(&self) -> Result<Box<dyn SinkTask>, ConnectError> {
        Ok(Box::new(FileSinkTask { file: None }))
    }
}

struct FileSinkTask {
    file: Option<std::io::BufWriter<File>>,
}

impl SinkTask for FileSinkTask {
    fn start(&mut self, config: &Config, _context: &ConnectorContext) -> Result<(), ConnectError> {
        let path = sink_def()
            .string(config, "file")
            .map_err(|e| ConnectError::config(e.name, e.value, e.message))?;
        let f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| {
                ConnectError::Fatal(format!(
                    "Couldn't find or create file '{path}' for FileStreamSinkTask: {e}"
                ))
            })?;
        self.file = Some(std::io::BufWriter::new(f));
        Ok(())
    }

    fn put(&mut self, records: Vec<SinkRecord>) -> Result<(), ConnectError> {
        let Some(f) = self.file.as_mut() else {
            return Err(ConnectError::Fatal("the sink task was not started".into()));
        };
        for r in records {
            let line = crate::convert::value_to_text(&r.value);
            f.write_all(line.as_bytes())
                .and_then(|()| f.write_all(b"\n"))
                .map_err(|e| ConnectError::Retriable(format!("cannot write: {e}")))?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), ConnectError> {
        if let Some(f) = self.file.as_mut() {
            f.flush()
                .and_then(|()| f.get_ref().sync_data())
                .map_err(|e| ConnectError::Retriable(format!("cannot flush: {e}")))?;
        }
        Ok(())
    }

    fn stop(&mut self) {
        if let Some(mut f) = self.file.take() {
            let _ = f.flush();
        }
    }
}

/// Reads a whole file (tests and tools).
pub fn read_all(path: &str) -> std::io::Result<String> {
    let mut s = String::new();
    File::open(path)?.read_to_string(&mut s)?;
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    struct NoOffsets;
    impl OffsetReader for NoOffsets {
        fn offset(&self, _: &SourcePartition) -> Option<SourceOffset> {
            None
        }
    }
    struct At(u64);
    impl OffsetReader for At {
        fn offset(&self, _: &SourcePartition) -> Option<SourceOffset> {
            let mut o = SourceOffset::new();
            o.insert("position".into(), self.0.into());
            Some(o)
        }
    }

    #[test]
    fn source_reads_whole_lines_and_resumes_at_its_offset() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("in.txt");
        std::fs::write(&path, "a\nbb\npartial").unwrap();
        let mut config = Config::new();
        config.insert("file".into(), path.display().to_string());
        config.insert("topic".into(), "t".into());
        let cx = ConnectorContext {
            connector: "c".into(),
            task: 0,
        };
        let mut t = FileSource.source_task().unwrap();
        t.start(&config, &cx, &NoOffsets).unwrap();
        let recs = t.poll().unwrap();
        let values: Vec<_> = recs.iter().map(|r| r.value.clone()).collect();
        assert_eq!(
            values,
            [Value::String("a".into()), Value::String("bb".into())]
        );
        assert_eq!(recs[1].source_offset["position"], 5);
        assert_eq!(
            recs[0].source_partition["filename"],
            path.display().to_string()
        );
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        f.write_all(b" line\n").unwrap();
        let recs = t.poll().unwrap();
        assert_eq!(recs[0].value, Value::String("partial line".into()));
        let mut t2 = FileSource.source_task().unwrap();
        t2.start(&config, &cx, &At(2)).unwrap();
        assert_eq!(t2.poll().unwrap().len(), 2, "resumes after the first line");
        let mut bad = config.clone();
        bad.insert("topic".into(), "a,b".into());
        assert!(FileSource
            .validate(&bad)
            .iter()
            .any(|v| !v.errors.is_empty()));
    }
}
