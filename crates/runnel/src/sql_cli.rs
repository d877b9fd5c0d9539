//! `runnel sql`: a ksql-CLI-like client of the SQL API — interactive with
//! history and completion, or running `-e` statements and `-f` scripts.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use rustyline::completion::{Completer, Pair};
use rustyline::error::ReadlineError;
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::history::DefaultHistory;
use rustyline::validate::Validator;
use rustyline::{Context as RlContext, Editor, Helper};
use serde_json::{json, Value as Json};

#[derive(Args, Debug)]
pub struct SqlArgs {
    /// The SQL API to talk to.
    #[arg(
        long,
        env = "RUNNEL_SQL_SERVER",
        default_value = "http://localhost:8088"
    )]
    server: String,
    /// Run the statements of this file, then exit (1 on the first error).
    #[arg(short = 'f', long = "file", conflicts_with = "execute")]
    file: Option<PathBuf>,
    /// Run these statements, then exit (1 on the first error).
    #[arg(short = 'e', long = "execute")]
    execute: Option<String>,
}

/// Set by Ctrl-C while a query streams: the query is closed.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);
/// Whether a query is streaming (Ctrl-C then closes it instead of exiting).
static STREAMING: AtomicBool = AtomicBool::new(false);

pub fn run(args: SqlArgs) -> Result<()> {
    ctrlc::set_handler(|| {
        if STREAMING.load(Ordering::SeqCst) {
            INTERRUPTED.store(true, Ordering::SeqCst);
        } else {
            std::process::exit(130);
        }
    })
    .context("cannot handle Ctrl-C")?;
    let client = Client::new(&args.server);
    let mut out = std::io::stdout();
    let batch = if let Some(text) = &args.execute {
        client.run_script(text, Path::new("."), None, &mut out)
    } else if let Some(path) = &args.file {
        std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))
            .and_then(|text| {
                let dir = path.parent().unwrap_or(Path::new("."));
                client.run_script(&text, dir, Some(path), &mut out)
            })
    } else {
        return interactive(&client);
    };
    if let Err(e) = batch {
        // The server's message, with its `line L:C:` position; no backtrace.
        let _ = out.flush();
        eprintln!("{e:#}");
        std::process::exit(1);
    }
    Ok(())
}

/// The SQL API over HTTP.
pub struct Client {
    base: String,
    agent: ureq::Agent,
}

/// What a request came back with when it failed: the server's message,
/// which carries the statement's `line L:C:` position.
fn server_error(e: ureq::Error) -> anyhow::Error {
    match e {
        ureq::Error::Status(code, r) => {
            let body: Json = r.into_json().unwrap_or(Json::Null);
            match body.get("message").and_then(Json::as_str) {
                Some(m) => anyhow!("{m}"),
                None => anyhow!("the server answered {code}: {body}"),
            }
        }
        ureq::Error::Transport(t) => anyhow!("cannot reach the SQL API: {t}"),
    }
}

/// What kind of statement, by its first word(s).
#[derive(Debug, PartialEq, Eq)]
enum Kind {
    Pull,
    Push,
    Print,
    Other,
}

fn kind_of(stmt: &str) -> Kind {
    let upper = strip_comments(stmt).to_ascii_uppercase();
    let words: Vec<&str> = upper.split_whitespace().collect();
    match words.first().copied() {
        Some("PRINT") => Kind::Print,
        Some("SELECT") => {
            if words.windows(2).any(|w| w[0] == "EMIT") {
                Kind::Push
            } else {
                Kind::Pull
            }
        }
        _ => Kind::Other,
    }
}

/// The text without `--` line comments and `/* */` comments (for telling
/// statements apart; strings are left alone).
fn strip_comments(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars().peekable();
    let mut quote: Option<char> = None;
    while let Some(c) = chars.next() {
        match quote {
            Some(q) => {
                out.push(c);
                if c == q {
                    quote = None;
                }
            }
            None if c == '\'' || c == '"' || c == '`' => {
                quote = Some(c);
                out.push(c);
            }
            None if c == '-' && chars.peek() == Some(&'-') => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        out.push('\n');
                        break;
                    }
                }
            }
            None if c == '/' && chars.peek() == Some(&'*') => {
                chars.next();
                let mut prev = ' ';
                for c in chars.by_ref() {
                    if prev == '*' && c == '/' {
                        break;
                    }
                    prev = c;
                }
                out.push(' ');
            }
            None => out.push(c),
        }
    }
    out
}

/// `RUN SCRIPT 'path';`: the path, when `stmt` is one.
fn run_script_path(stmt: &str) -> Option<String> {
    let s = strip_comments(stmt);
    let s = s.trim().trim_end_matches(';').trim();
    let words: Vec<&str> = s.splitn(3, char::is_whitespace).collect();
    if words.len() == 3
        && words[0].eq_ignore_ascii_case("RUN")
        && words[1].eq_ignore_ascii_case("SCRIPT")
    {
        let p = words[2].trim();
        let p = p
            .strip_prefix('\'')
            .and_then(|p| p.strip_suffix('\''))
            .unwrap_or(p);
        return Some(p.replace("''", "'"));
    }
    None
}

impl Client {
    /// A client of the API at `server`: a URL, or `host:port` like every
    /// other subcommand's addresses.
    pub fn new(server: &str) -> Client {
        Client {
            base: base_url(server),
            agent: ureq::AgentBuilder::new()
                .timeout_connect(Duration::from_secs(5))
                .build(),
        }
    }

    fn post(&self, path: &str) -> ureq::Request {
        self.agent
            .post(&format!("{}{path}", self.base))
            .set("Content-Type", "application/json")
    }

    /// Runs statements through `/ksql`.
    fn ksql(&self, stmt: &str) -> Result<Vec<Json>> {
        let r = self
            .post("/ksql")
            .send_string(&json!({"ksql": stmt, "streamsProperties": {}}).to_string())
            .map_err(server_error)?;
        let body: Json = r.into_json().context("the server's answer is not JSON")?;
        match body {
            Json::Array(a) => Ok(a),
            other => bail!("unexpected answer: {other}"),
        }
    }

    fn close_query(&self, id: &str) -> Result<()> {
        self.post("/close-query")
            .send_string(&json!({ "queryId": id }).to_string())
            .map_err(server_error)?;
        Ok(())
    }

    /// Stream and table names, for completion.
    fn source_names(&self) -> Vec<String> {
        let mut names = Vec::new();
        for (stmt, field) in [("SHOW STREAMS;", "streams"), ("SHOW TABLES;", "tables")] {
            if let Ok(entities) = self.ksql(stmt) {
                for e in entities {
                    if let Some(list) = e.get(field).and_then(Json::as_array) {
                        names.extend(
                            list.iter()
                                .filter_map(|s| s.get("name").and_then(Json::as_str))
                                .map(str::to_string),
                        );
                    }
                }
            }
        }
        names
    }

    /// Runs every statement of `text`, stopping at the first error.
    /// `RUN SCRIPT` paths are relative to `dir`.
    /// Runs a script's statements in order, stopping at the first error.
    /// With the script's `file`, errors name `file:line:col` in it.
    pub fn run_script(
        &self,
        text: &str,
        dir: &Path,
        file: Option<&Path>,
        out: &mut dyn Write,
    ) -> Result<()> {
        let statements = runnel_sql::parser::split_statements_at(text).map_err(|e| match file {
            Some(f) => anyhow!("{}: {e}", f.display()),
            None => anyhow!("{e}"),
        })?;
        for (offset, stmt) in statements {
            match (self.run_statement(&stmt, dir, out), file) {
                (Ok(()), _) => {}
                // A nested script's error names its own file already.
                (Err(e), _) if e.downcast_ref::<ScriptError>().is_some() => return Err(e),
                (Err(e), Some(f)) => {
                    return Err(ScriptError(in_script(f, text, offset, &format!("{e:#}"))).into())
                }
                (Err(e), None) => return Err(e),
            }
        }
        Ok(())
    }

    /// Runs one statement and prints what it returned.
    pub fn run_statement(&self, stmt: &str, dir: &Path, out: &mut dyn Write) -> Result<()> {
        if let Some(path) = run_script_path(stmt) {
            let path = dir.join(path);
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            let dir = path.parent().unwrap_or(Path::new("."));
            return self.run_script(&text, dir, Some(&path), out);
        }
        match kind_of(stmt) {
            Kind::Other => {
                for e in self.ksql(stmt)? {
                    print_entity(&e, out)?;
                }
                Ok(())
            }
            kind => self.query(stmt, kind, out),
        }
    }

    /// Runs a query over `/query-stream`: a pull query's rows as one table;
    /// a push query's rows as they come until it ends or Ctrl-C closes it.
    fn query(&self, stmt: &str, kind: Kind, out: &mut dyn Write) -> Result<()> {
        let r = self
            .post("/query-stream")
            .set("Accept", runnel_sql_http::DELIMITED)
            .send_string(&json!({"sql": stmt, "properties": {}}).to_string())
            .map_err(server_error)?;
        let mut lines = BufReader::new(r.into_reader()).lines();
        let header: Json = match lines.next() {
            Some(l) => serde_json::from_str(&l?).context("the query's header is not JSON")?,
            None => bail!("the query returned nothing"),
        };
        let id = header
            .get("queryId")
            .and_then(Json::as_str)
            .unwrap_or("")
            .to_string();
        let names: Vec<String> = header
            .get("columnNames")
            .and_then(Json::as_array)
            .map(|a| a.iter().map(cell).collect())
            .unwrap_or_default();
        if kind == Kind::Pull {
            let mut rows = Vec::new();
            for l in lines {
                let row: Json = serde_json::from_str(&l?).context("a row is not JSON")?;
                rows.push(row_cells(&row)?);
            }
            print_table(&names, &rows, out)?;
            writeln!(out, "Query terminated")?;
            return Ok(());
        }
        // Push query or PRINT: a reader thread, so Ctrl-C is noticed while
        // no row arrives.
        let (tx, rx) = mpsc::channel::<std::io::Result<String>>();
        std::thread::spawn(move || {
            for l in lines {
                if tx.send(l).is_err() {
                    return;
                }
            }
        });
        INTERRUPTED.store(false, Ordering::SeqCst);
        STREAMING.store(true, Ordering::SeqCst);
        let streaming = StreamingGuard;
        let mut widths: Vec<usize> = names.iter().map(|n| n.chars().count().max(12)).collect();
        if kind == Kind::Push {
            print_rule(&widths, out)?;
            print_row(&names, &widths, out)?;
            print_rule(&widths, out)?;
        }
        let mut closed = false;
        loop {
            if INTERRUPTED.swap(false, Ordering::SeqCst) && !closed {
                closed = true;
                if let Err(e) = self.close_query(&id) {
                    writeln!(out, "cannot close the query: {e}")?;
                    break;
                }
            }
            match rx.recv_timeout(Duration::from_millis(100)) {
                Ok(line) => {
                    let row: Json = serde_json::from_str(&line?).context("a row is not JSON")?;
                    match &row {
                        Json::String(s) => writeln!(out, "{s}")?,
                        Json::Array(_) => {
                            let cells = row_cells(&row)?;
                            // A wider value than its column so far (a
                            // 13-digit WINDOWSTART, a long string): the
                            // columns grow and the header is shown again.
                            if widen(&mut widths, &cells) && kind == Kind::Push {
                                print_rule(&widths, out)?;
                                print_row(&names, &widths, out)?;
                                print_rule(&widths, out)?;
                            }
                            print_row(&cells, &widths, out)?
                        }
                        other => match other.get("message").and_then(Json::as_str) {
                            Some(m) => bail!("{m}"),
                            None => writeln!(out, "{other}")?,
                        },
                    }
                    out.flush()?;
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        drop(streaming);
        if kind == Kind::Push {
            print_rule(&widths, out)?;
        }
        writeln!(out, "Query terminated")?;
        Ok(())
    }
}

/// Resets the Ctrl-C mode when a streaming query ends, however it ends.
struct StreamingGuard;

impl Drop for StreamingGuard {
    fn drop(&mut self) {
        STREAMING.store(false, Ordering::SeqCst);
    }
}

/// A value as a table cell.
fn cell(v: &Json) -> String {
    match v {
        Json::String(s) => s.clone(),
        Json::Null => "null".to_string(),
        other => other.to_string(),
    }
}

fn row_cells(row: &Json) -> Result<Vec<String>> {
    match row {
        Json::Array(a) => Ok(a.iter().map(cell).collect()),
        other => match other.get("message").and_then(Json::as_str) {
            Some(m) => bail!("{m}"),
            None => bail!("unexpected row: {other}"),
        },
    }
}

/// What `help` prints in the shell.
const HELP: &str = "\
Type SQL statements in the ksqlDB dialect, each ending with ';' (a statement
may span lines). Some to start with:

  SHOW STREAMS;  SHOW TABLES;  SHOW QUERIES;  SHOW TOPICS;  SHOW FUNCTIONS;
  DESCRIBE <source> [EXTENDED];  DESCRIBE FUNCTION <name>;  EXPLAIN <query id>;
  CREATE STREAM|TABLE ... WITH (KAFKA_TOPIC='...', VALUE_FORMAT='JSON');
  CREATE STREAM|TABLE <name> AS SELECT ...;     a persistent query
  SELECT ... FROM <table> WHERE <key> = ...;    a pull query
  SELECT ... FROM <source> EMIT CHANGES;        a push query (Ctrl-C stops it)
  INSERT INTO <stream> (cols) VALUES (...);  PRINT '<topic>' FROM BEGINNING;
  SET 'auto.offset.reset'='earliest';  UNSET '...';  RUN SCRIPT '<file.sql>';
  TERMINATE <query id>;  DROP STREAM|TABLE <name> [DELETE TOPIC];

Shell: 'help' shows this, 'exit' or 'quit' (or Ctrl-D) leaves, the arrow keys
walk the history, Tab completes keywords and source names.
";

/// Grows `widths` to fit `cells`; whether any grew.
fn widen(widths: &mut [usize], cells: &[String]) -> bool {
    let mut grew = false;
    for (w, c) in widths.iter_mut().zip(cells) {
        let n = c.chars().count();
        if n > *w {
            *w = n;
            grew = true;
        }
    }
    grew
}

fn print_rule(widths: &[usize], out: &mut dyn Write) -> std::io::Result<()> {
    let mut s = String::from("+");
    for w in widths {
        s.push_str(&"-".repeat(w + 2));
        s.push('+');
    }
    writeln!(out, "{s}")
}

fn print_row(cells: &[String], widths: &[usize], out: &mut dyn Write) -> std::io::Result<()> {
    let mut s = String::from("|");
    for (i, w) in widths.iter().enumerate() {
        let c = cells.get(i).map(String::as_str).unwrap_or("");
        s.push_str(&format!(" {c:<w$} |"));
    }
    writeln!(out, "{s}")
}

/// An aligned table with a rule above and below the header and at the end.
pub fn print_table(headers: &[String], rows: &[Vec<String>], out: &mut dyn Write) -> Result<()> {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(c.chars().count());
            }
        }
    }
    print_rule(&widths, out)?;
    print_row(headers, &widths, out)?;
    print_rule(&widths, out)?;
    for r in rows {
        print_row(r, &widths, out)?;
    }
    print_rule(&widths, out)?;
    Ok(())
}

/// A field's type from its `schema` object.
fn type_text(schema: &Json) -> String {
    let t = schema.get("type").and_then(Json::as_str).unwrap_or("?");
    match t {
        "ARRAY" => format!(
            "ARRAY<{}>",
            type_text(schema.get("memberSchema").unwrap_or(&Json::Null))
        ),
        "MAP" => format!(
            "MAP<STRING, {}>",
            type_text(schema.get("memberSchema").unwrap_or(&Json::Null))
        ),
        "STRUCT" => {
            let fields: Vec<String> = schema
                .get("fields")
                .and_then(Json::as_array)
                .map(|f| {
                    f.iter()
                        .map(|f| {
                            format!(
                                "{} {}",
                                cell(f.get("name").unwrap_or(&Json::Null)),
                                type_text(f.get("schema").unwrap_or(&Json::Null))
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            format!("STRUCT<{}>", fields.join(", "))
        }
        other => other.to_string(),
    }
}

/// Columns picked from a list of objects: (header, field).
fn list_table(list: &[Json], columns: &[(&str, &str)], out: &mut dyn Write) -> Result<()> {
    let headers: Vec<String> = columns.iter().map(|(h, _)| h.to_string()).collect();
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|item| {
            columns
                .iter()
                .map(|(_, f)| match item.get(*f) {
                    Some(Json::Array(a)) => a.iter().map(cell).collect::<Vec<_>>().join(", "),
                    Some(v) => cell(v),
                    None => String::new(),
                })
                .collect()
        })
        .collect();
    print_table(&headers, &rows, out)
}

fn describe_source(d: &Json, out: &mut dyn Write) -> Result<()> {
    let get = |f: &str| cell(d.get(f).unwrap_or(&Json::Null));
    writeln!(out)?;
    writeln!(out, "Name                 : {}", get("name"))?;
    writeln!(out, "Type                 : {}", get("type"))?;
    writeln!(out, "Kafka topic          : {}", get("topic"))?;
    writeln!(
        out,
        "Key format           : {}  Value format: {}",
        get("keyFormat"),
        get("valueFormat")
    )?;
    let fields: Vec<Vec<String>> = d
        .get("fields")
        .and_then(Json::as_array)
        .map(|f| {
            f.iter()
                .map(|f| {
                    let mut ty = type_text(f.get("schema").unwrap_or(&Json::Null));
                    match f.get("type").and_then(Json::as_str) {
                        Some("KEY") => ty.push_str(" (key)"),
                        Some("PRIMARY_KEY") => ty.push_str(" (primary key)"),
                        Some("HEADER") => match f.get("headerKey").and_then(Json::as_str) {
                            Some(k) => ty.push_str(&format!(" (header('{k}'))")),
                            None => ty.push_str(" (headers)"),
                        },
                        _ => {}
                    }
                    vec![cell(f.get("name").unwrap_or(&Json::Null)), ty]
                })
                .collect()
        })
        .unwrap_or_default();
    print_table(&["Field".into(), "Type".into()], &fields, out)?;
    for (title, field) in [
        ("Queries that read from this source", "readQueries"),
        ("Queries that write into this source", "writeQueries"),
    ] {
        if let Some(q) = d
            .get(field)
            .and_then(Json::as_array)
            .filter(|q| !q.is_empty())
        {
            writeln!(out, "{title}")?;
            list_table(q, &[("Query ID", "id"), ("Query", "queryString")], out)?;
        }
    }
    Ok(())
}

/// Prints one `/ksql` entity the way the ksql CLI does.
pub fn print_entity(e: &Json, out: &mut dyn Write) -> Result<()> {
    let ty = e.get("@type").and_then(Json::as_str).unwrap_or("");
    let list = |f: &str| -> Vec<Json> {
        e.get(f)
            .and_then(Json::as_array)
            .cloned()
            .unwrap_or_default()
    };
    match ty {
        "currentStatus" => {
            let msg = e
                .pointer("/commandStatus/message")
                .map(cell)
                .unwrap_or_default();
            print_table(&["Message".into()], &[vec![msg]], out)?;
        }
        "streams" => list_table(
            &list("streams"),
            &[
                ("Stream Name", "name"),
                ("Kafka Topic", "topic"),
                ("Key Format", "keyFormat"),
                ("Value Format", "valueFormat"),
                ("Windowed", "isWindowed"),
            ],
            out,
        )?,
        "tables" => list_table(
            &list("tables"),
            &[
                ("Table Name", "name"),
                ("Kafka Topic", "topic"),
                ("Key Format", "keyFormat"),
                ("Value Format", "valueFormat"),
                ("Windowed", "isWindowed"),
            ],
            out,
        )?,
        "queries" => list_table(
            &list("queries"),
            &[
                ("Query ID", "id"),
                ("Query Type", "queryType"),
                ("Status", "state"),
                ("Sink Name", "sinks"),
                ("Sink Kafka Topic", "sinkKafkaTopics"),
                ("Query String", "queryString"),
            ],
            out,
        )?,
        "kafka_topics" => {
            let topics: Vec<Json> = list("topics")
                .into_iter()
                .map(|t| {
                    let partitions = t
                        .get("replicaInfo")
                        .and_then(Json::as_array)
                        .map_or(0, Vec::len);
                    json!({"name": t.get("name"), "partitions": partitions})
                })
                .collect();
            list_table(
                &topics,
                &[("Kafka Topic", "name"), ("Partitions", "partitions")],
                out,
            )?
        }
        "properties" => list_table(
            &list("properties"),
            &[("Property", "name"), ("Scope", "scope"), ("Value", "value")],
            out,
        )?,
        "function_names" => list_table(
            &list("functions"),
            &[("Function Name", "name"), ("Category", "category")],
            out,
        )?,
        "sourceDescription" => {
            describe_source(e.get("sourceDescription").unwrap_or(&Json::Null), out)?
        }
        "source_descriptions" => {
            for d in list("sourceDescriptions") {
                describe_source(&d, out)?;
            }
        }
        "connector_list" => {
            list_table(
                &list("connectors"),
                &[
                    ("Connector Name", "name"),
                    ("Type", "type"),
                    ("Class", "className"),
                    ("Status", "state"),
                ],
                out,
            )?;
            for w in list("warnings") {
                writeln!(
                    out,
                    "WARNING: {}",
                    w.get("message").map(cell).unwrap_or_default()
                )?;
            }
        }
        "connector_info" => {
            let name = e.pointer("/info/name").map(cell).unwrap_or_default();
            print_table(
                &["Message".into()],
                &[vec![format!("Created connector {name}")]],
                out,
            )?;
        }
        "drop_connector" => {
            let name = e.get("connectorName").map(cell).unwrap_or_default();
            print_table(
                &["Message".into()],
                &[vec![format!("Dropped connector \"{name}\"")]],
                out,
            )?;
        }
        "warning_entity" => {
            writeln!(out, "{}", e.get("message").map(cell).unwrap_or_default())?;
        }
        "connector_description" => {
            let field = |p: &str| e.pointer(p).map(cell).unwrap_or_default();
            for (label, value) in [
                ("Name", field("/status/name")),
                ("Class", field("/connectorClass")),
                ("Type", field("/status/type")),
                ("State", field("/status/connector/state")),
                ("WorkerId", field("/status/connector/worker_id")),
            ] {
                writeln!(out, "{label:<17}: {value}")?;
            }
            let tasks = e
                .pointer("/status/tasks")
                .and_then(Json::as_array)
                .cloned()
                .unwrap_or_default();
            writeln!(out)?;
            list_table(
                &tasks,
                &[
                    ("Task ID", "id"),
                    ("State", "state"),
                    ("Error Trace", "trace"),
                ],
                out,
            )?;
            let topics: Vec<Json> = list("topics")
                .into_iter()
                .map(|t| json!({"topic": t}))
                .collect();
            if !topics.is_empty() {
                writeln!(out)?;
                list_table(&topics, &[("Related Topics", "topic")], out)?;
            }
        }
        _ => writeln!(out, "{}", serde_json::to_string_pretty(e)?)?,
    }
    Ok(())
}

const KEYWORDS: &[&str] = &[
    "SELECT",
    "FROM",
    "WHERE",
    "GROUP",
    "BY",
    "HAVING",
    "EMIT",
    "CHANGES",
    "FINAL",
    "LIMIT",
    "CREATE",
    "STREAM",
    "TABLE",
    "SOURCE",
    "SINK",
    "CONNECTOR",
    "CONNECTORS",
    "AS",
    "WITH",
    "INSERT",
    "INTO",
    "VALUES",
    "DROP",
    "DELETE",
    "TOPIC",
    "IF",
    "EXISTS",
    "NOT",
    "OR",
    "REPLACE",
    "AND",
    "NULL",
    "IS",
    "IN",
    "LIKE",
    "BETWEEN",
    "CASE",
    "WHEN",
    "THEN",
    "ELSE",
    "END",
    "CAST",
    "JOIN",
    "LEFT",
    "RIGHT",
    "FULL",
    "OUTER",
    "INNER",
    "ON",
    "WITHIN",
    "GRACE",
    "PERIOD",
    "WINDOW",
    "TUMBLING",
    "HOPPING",
    "SESSION",
    "SIZE",
    "ADVANCE",
    "PARTITION",
    "SHOW",
    "LIST",
    "STREAMS",
    "TABLES",
    "QUERIES",
    "TOPICS",
    "PROPERTIES",
    "FUNCTIONS",
    "VARIABLES",
    "DESCRIBE",
    "EXTENDED",
    "EXPLAIN",
    "TERMINATE",
    "PRINT",
    "BEGINNING",
    "INTERVAL",
    "SET",
    "UNSET",
    "DEFINE",
    "UNDEFINE",
    "RUN",
    "SCRIPT",
    "KEY",
    "PRIMARY",
    "KAFKA_TOPIC",
    "VALUE_FORMAT",
    "KEY_FORMAT",
    "FORMAT",
    "PARTITIONS",
    "COUNT",
    "SUM",
    "MIN",
    "MAX",
    "AVG",
    "EXIT",
    "QUIT",
];

/// Completion of keywords and of stream and table names.
struct SqlHelper {
    names: BTreeSet<String>,
}

impl Completer for SqlHelper {
    type Candidate = Pair;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _ctx: &RlContext<'_>,
    ) -> rustyline::Result<(usize, Vec<Pair>)> {
        let before = &line[..pos];
        let start = before
            .char_indices()
            .rev()
            .find(|(_, c)| !(c.is_alphanumeric() || *c == '_'))
            .map_or(0, |(i, c)| i + c.len_utf8());
        let word = &before[start..];
        if word.is_empty() {
            return Ok((pos, Vec::new()));
        }
        Ok((start, complete_word(word, &self.names)))
    }
}

/// Candidates for `word`: names first (as spelled), then keywords in the
/// word's case.
fn complete_word(word: &str, names: &BTreeSet<String>) -> Vec<Pair> {
    let upper = word.to_ascii_uppercase();
    let lower_case = word.chars().all(|c| !c.is_ascii_uppercase());
    let mut out: Vec<Pair> = names
        .iter()
        .filter(|n| n.to_ascii_uppercase().starts_with(&upper))
        .map(|n| Pair {
            display: n.clone(),
            replacement: n.clone(),
        })
        .collect();
    out.extend(
        KEYWORDS
            .iter()
            .chain(runnel_sql::parser::TYPE_NAMES)
            .filter(|k| k.starts_with(&upper) && !names.contains(**k))
            .map(|k| {
                let k = if lower_case {
                    k.to_ascii_lowercase()
                } else {
                    k.to_string()
                };
                Pair {
                    display: k.clone(),
                    replacement: k,
                }
            }),
    );
    out
}

impl Hinter for SqlHelper {
    type Hint = String;
}
impl Highlighter for SqlHelper {}
impl Validator for SqlHelper {}
impl Helper for SqlHelper {}

/// Whether the buffered input ends a statement (or cannot be split for a
/// reason more lines won't fix, which the server then reports).
fn complete_input(buffer: &str) -> bool {
    match runnel_sql::parser::split_statements(buffer) {
        Ok(s) => s.last().is_none_or(|l| l.trim_end().ends_with(';')),
        // An open string or comment needs more lines (Ctrl-C drops them).
        Err(e) if e.message.contains("unterminated") => false,
        Err(_) => buffer.trim_end().ends_with(';'),
    }
}

fn history_path() -> Option<PathBuf> {
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".runnel_sql_history"))
}

fn interactive(client: &Client) -> Result<()> {
    let mut rl: Editor<SqlHelper, DefaultHistory> = Editor::new()?;
    rl.set_helper(Some(SqlHelper {
        names: client.source_names().into_iter().collect(),
    }));
    let history = history_path();
    if let Some(h) = &history {
        let _ = rl.load_history(h);
    }
    let mut out = std::io::stdout();
    println!("runnel sql {} — {}", env!("CARGO_PKG_VERSION"), client.base);
    println!("Statements end with ';'. 'help' lists what you can type; Ctrl-C stops a running query; 'exit' leaves.");
    let mut buffer = String::new();
    loop {
        let prompt = if buffer.is_empty() {
            "runnel> "
        } else {
            "      > "
        };
        match rl.readline(prompt) {
            Ok(line) => {
                if buffer.is_empty() {
                    let word = line.trim().trim_end_matches(';').trim();
                    if word.eq_ignore_ascii_case("exit") || word.eq_ignore_ascii_case("quit") {
                        break;
                    }
                    if word.eq_ignore_ascii_case("help") {
                        print!("{HELP}");
                        continue;
                    }
                    if word.is_empty() {
                        continue;
                    }
                }
                buffer.push_str(&line);
                buffer.push('\n');
                if !complete_input(&buffer) {
                    continue;
                }
                let text = std::mem::take(&mut buffer);
                let _ = rl.add_history_entry(text.trim_end());
                if let Err(e) = client.run_script(&text, Path::new("."), None, &mut out) {
                    eprintln!("{e:#}");
                }
                if let Some(h) = rl.helper_mut() {
                    h.names = client.source_names().into_iter().collect();
                }
            }
            Err(ReadlineError::Interrupted) => buffer.clear(),
            Err(ReadlineError::Eof) => break,
            Err(e) => return Err(e.into()),
        }
    }
    if let Some(h) = &history {
        let _ = rl.save_history(h);
    }
    Ok(())
}

/// An error already placed in a script file (`file:line:col: …`).
#[derive(Debug)]
struct ScriptError(String);

impl std::fmt::Display for ScriptError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ScriptError {}

/// `message` about the statement starting at byte `offset` of a script's
/// `text`, as `file:line:col: …` in the script: a `line L:C: ` position
/// relative to the statement is moved to the file; without one the
/// statement's start is named.
fn in_script(file: &Path, text: &str, offset: usize, message: &str) -> String {
    let before = text.get(..offset).unwrap_or("");
    let start_line = before.matches('\n').count() + 1;
    let start_col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    // Without ksqlDB's stage prefixes (a position follows them).
    let message = [
        "Exception while preparing statement: ",
        "Failed to prepare statement: ",
    ]
    .iter()
    .find_map(|p| message.strip_prefix(p))
    .unwrap_or(message);
    // The server's two spellings (ksqlDB's): a syntax error's
    // "line L:C: …" and an analysis error's "Line: L, Col: C: …".
    let syntax = || {
        let rest = message.strip_prefix("line ")?;
        let (pos, msg) = rest.split_once(": ")?;
        let (l, c) = pos.split_once(':')?;
        Some((l.parse::<usize>().ok()?, c.parse::<usize>().ok()?, msg))
    };
    let analysis = || {
        let rest = message.strip_prefix("Line: ")?;
        let (l, rest) = rest.split_once(", Col: ")?;
        let (c, msg) = rest.split_once(": ")?;
        Some((l.parse::<usize>().ok()?, c.parse::<usize>().ok()?, msg))
    };
    // The position Runnel writes after a message ksqlDB writes without one.
    let trailing = || {
        let (msg, pos) = message.strip_suffix(')')?.rsplit_once(" (Line: ")?;
        let (l, c) = pos.split_once(", Col: ")?;
        Some((l.parse::<usize>().ok()?, c.parse::<usize>().ok()?, msg))
    };
    let positioned = syntax().or_else(analysis).or_else(trailing);
    match positioned {
        Some((l, c, msg)) => {
            let line = start_line + l - 1;
            let col = if l == 1 { start_col + c - 1 } else { c };
            format!("{}:{line}:{col}: {msg}", file.display())
        }
        None => format!("{}:{start_line}:{start_col}: {message}", file.display()),
    }
}

/// `server` as a base URL: `http://` is assumed for `host:port`.
fn base_url(server: &str) -> String {
    let server = server.trim_end_matches('/');
    if server.contains("://") {
        server.to_string()
    } else {
        format!("http://{server}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_errors_name_the_file_line_and_column() {
        let text = "CREATE STREAM a (k INT KEY) WITH (KAFKA_TOPIC='a', VALUE_FORMAT='JSON');\n\n  SELECT x\n    FROM nope;";
        let offset = text.find("SELECT").unwrap();
        let f = Path::new("etl.sql");
        // Line 2, column 10 of the statement: line 4 of the file.
        assert_eq!(
            in_script(f, text, offset, "line 2:10: unknown source NOPE"),
            "etl.sql:4:10: unknown source NOPE"
        );
        // Line 1 of the statement starts at its column in the file.
        assert_eq!(
            in_script(f, text, offset, "line 1:8: unknown column X"),
            "etl.sql:3:10: unknown column X"
        );
        assert_eq!(
            in_script(f, text, offset, "Line: 2, Col: 10: unknown source NOPE"),
            "etl.sql:4:10: unknown source NOPE"
        );
        assert_eq!(
            in_script(
                f,
                text,
                offset,
                "Exception while preparing statement: Line: 2, Col: 10: Column 'ID' is ambiguous."
            ),
            "etl.sql:4:10: Column 'ID' is ambiguous."
        );
        assert_eq!(
            in_script(
                f,
                text,
                offset,
                "Failed to prepare statement: 'U' is not a valid stream/table name or alias. (Line: 2, Col: 4)"
            ),
            "etl.sql:4:4: 'U' is not a valid stream/table name or alias."
        );
        assert_eq!(
            in_script(f, text, offset, "cannot reach the SQL API"),
            "etl.sql:3:3: cannot reach the SQL API"
        );
    }

    #[test]
    fn push_query_columns_grow_to_fit_their_values() {
        let mut widths = vec![12, 12];
        assert!(!widen(&mut widths, &["a".into(), "12345".into()]));
        assert!(widen(&mut widths, &["maps".into(), "1765065600000".into()]));
        assert_eq!(widths, [12, 13]);
        let mut out = Vec::new();
        print_row(&["maps".into(), "1765065600000".into()], &widths, &mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "| maps         | 1765065600000 |\n"
        );
    }

    #[test]
    fn servers_are_urls_or_host_and_port() {
        assert_eq!(base_url("127.0.0.1:8088"), "http://127.0.0.1:8088");
        assert_eq!(base_url("http://localhost:8088/"), "http://localhost:8088");
        assert_eq!(
            base_url("https://ksql.example:443"),
            "https://ksql.example:443"
        );
    }

    #[test]
    fn statement_kinds() {
        assert_eq!(kind_of("SELECT * FROM T WHERE K='a';"), Kind::Pull);
        assert_eq!(kind_of("select * from s emit changes;"), Kind::Push);
        assert_eq!(
            kind_of("-- a comment\nSELECT 1 FROM S EMIT CHANGES;"),
            Kind::Push
        );
        assert_eq!(kind_of("SELECT 'EMIT' FROM T;"), Kind::Pull);
        assert_eq!(kind_of("PRINT 's' FROM BEGINNING;"), Kind::Print);
        assert_eq!(kind_of("/* x */ SHOW STREAMS;"), Kind::Other);
    }

    #[test]
    fn run_script_paths() {
        assert_eq!(
            run_script_path("RUN SCRIPT '/tmp/a.sql';").as_deref(),
            Some("/tmp/a.sql")
        );
        assert_eq!(
            run_script_path("run script 'it''s.sql'").as_deref(),
            Some("it's.sql")
        );
        assert_eq!(run_script_path("SHOW STREAMS;"), None);
    }

    #[test]
    fn tables_align() {
        let mut out = Vec::new();
        print_table(
            &["K".into(), "COUNT".into()],
            &[vec!["abc".into(), "2".into()]],
            &mut out,
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "+-----+-------+\n| K   | COUNT |\n+-----+-------+\n| abc | 2     |\n+-----+-------+\n"
        );
    }

    #[test]
    fn input_is_complete_at_a_top_level_semicolon() {
        assert!(complete_input("SHOW STREAMS;\n"));
        assert!(!complete_input("CREATE STREAM S (A INT)\n"));
        assert!(!complete_input("SELECT ';\n"));
        assert!(complete_input("SELECT ';' FROM T;\n"));
    }

    #[test]
    fn completes_names_and_keywords() {
        let names: BTreeSet<String> = ["PAGEVIEWS".to_string(), "PEOPLE".to_string()].into();
        let got: Vec<String> = complete_word("pe", &names)
            .into_iter()
            .map(|p| p.replacement)
            .collect();
        assert_eq!(got, ["PEOPLE", "period"]);
        let got: Vec<String> = complete_word("SEL", &names)
            .into_iter()
            .map(|p| p.replacement)
            .collect();
        assert_eq!(got, ["SELECT"]);
    }
}
