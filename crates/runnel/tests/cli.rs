//! The `runnel` CLI against the real server: topic admin, produce, consume.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may stop at the first surprise

mod common;

use std::io::Write;
use std::process::{Command, Output, Stdio};

use common::Server;

fn runnel(server: &Server, args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_runnel"))
        .args(args)
        .env("RUNNEL_BOOTSTRAP", server.bootstrap())
        .env("RUNNEL_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run runnel");
    let mut input = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).unwrap();
    }
    drop(input);
    child.wait_with_output().unwrap()
}

fn ok(server: &Server, args: &[&str], stdin: Option<&str>) -> String {
    let out = runnel(server, args, stdin);
    assert!(
        out.status.success(),
        "runnel {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn topic_commands_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[]);
    ok(
        &server,
        &[
            "topic",
            "create",
            "orders",
            "-p",
            "3",
            "-c",
            "retention.ms=60000",
        ],
        None,
    );
    let list = ok(&server, &["topic", "list"], None);
    assert!(list.contains("orders\t3 partition(s)"), "{list}");

    let dup = runnel(&server, &["topic", "create", "orders"], None);
    assert!(!dup.status.success());
    assert!(String::from_utf8_lossy(&dup.stderr).contains("TopicAlreadyExists"));

    ok(
        &server,
        &[
            "topic",
            "alter-config",
            "orders",
            "--set",
            "retention.bytes=1048576",
            "--delete",
            "retention.ms",
        ],
        None,
    );
    let described = ok(&server, &["topic", "describe", "orders"], None);
    assert!(described.contains("PartitionCount: 3"), "{described}");
    assert!(
        described.contains("retention.bytes\t1048576\ttopic"),
        "{described}"
    );
    assert!(
        described.contains("retention.ms\t604800000\tdefault"),
        "{described}"
    );

    let bad = runnel(
        &server,
        &[
            "topic",
            "alter-config",
            "orders",
            "--set",
            "retention.ms=later",
        ],
        None,
    );
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("InvalidConfig"));

    ok(&server, &["topic", "delete", "orders"], None);
    assert!(!ok(&server, &["topic", "list"], None).contains("orders"));
}

#[test]
fn produce_and_consume_like_kcat() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[]);
    ok(&server, &["topic", "create", "greetings", "-p", "1"], None);
    ok(
        &server,
        &[
            "produce",
            "greetings",
            "-K",
            ":",
            "-H",
            "source=cli",
            "--timestamp",
            "1700000000000",
            "-z",
            "lz4",
        ],
        Some("alice:hello\nbob:hi\ncarol:hey\n"),
    );
    let all = ok(
        &server,
        &[
            "consume",
            "greetings",
            "-o",
            "beginning",
            "-e",
            "-f",
            "%o %k=%s %h %T\\n",
        ],
        None,
    );
    assert_eq!(
        all,
        "0 alice=hello source=cli 1700000000000\n1 bob=hi source=cli 1700000000000\n2 carol=hey source=cli 1700000000000\n"
    );
    let tail = ok(&server, &["consume", "greetings", "-o", "-1", "-e"], None);
    assert_eq!(tail, "hey\n");
    let from = ok(
        &server,
        &[
            "consume",
            "greetings",
            "-o",
            "1",
            "-e",
            "-c",
            "1",
            "-f",
            "%s\\n",
        ],
        None,
    );
    assert_eq!(from, "hi\n");
    let by_time = ok(
        &server,
        &["consume", "greetings", "-o", "s@1700000000000", "-e"],
        None,
    );
    assert_eq!(by_time.lines().count(), 3);
    let json = ok(
        &server,
        &["consume", "greetings", "-o", "beginning", "-e", "-J"],
        None,
    );
    let first: serde_json::Value = serde_json::from_str(json.lines().next().unwrap()).unwrap();
    assert_eq!(first["key"], "alice");
    assert_eq!(first["payload"], "hello");
    assert_eq!(first["headers"], serde_json::json!(["source", "cli"]));
    assert_eq!(first["offset"], 0);
}

/// A second server on a data directory in use must refuse to start, naming
/// the directory and the process that has it (two writers on one log
/// overwrite each other's acknowledged records); once the first is gone,
/// the directory opens again.
#[test]
fn a_second_server_on_a_data_directory_in_use_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut first = Server::start(&data, &[]);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_runnel"))
        .args(["serve", "--no-sql", "--data-dir"])
        .arg(&data)
        .args(["--listen", &format!("127.0.0.1:{}", common::free_port())])
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run a second runnel serve");
    assert!(!out.status.success(), "the second server started");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("data directory {} is in use", data.display()))
            && err.contains(&format!("pid {}", first.pid())),
        "{err}"
    );
    assert_eq!(first.terminate(), Some(0));
    let mut again = Server::start(&data, &[]);
    assert_eq!(again.terminate(), Some(0));
}

/// `runnel produce` places a keyed record where the Java client, Kafka
/// Streams, ksqlDB and Runnel's own SQL INSERT and stream engine do
/// (murmur2), not where librdkafka's default CRC32 partitioner would, so a
/// table fed both ways holds one row per key.
#[test]
fn produce_places_keys_with_the_java_clients_murmur2() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[]);
    ok(&server, &["topic", "create", "placed", "-p", "4"], None);
    let keys = [
        "maps", "mail", "chat", "camera", "clock", "notes", "music", "files",
    ];
    let input: String = keys.iter().map(|k| format!("{k}:v\n")).collect();
    ok(&server, &["produce", "placed", "-K", ":"], Some(&input));
    let placed = ok(
        &server,
        &[
            "consume",
            "placed",
            "-o",
            "beginning",
            "-e",
            "-f",
            "%k %p\\n",
        ],
        None,
    );
    let mut got: Vec<(String, i32)> = placed
        .lines()
        .map(|l| {
            let (k, p) = l.split_once(' ').unwrap();
            (k.to_string(), p.parse().unwrap())
        })
        .collect();
    got.sort();
    let mut want: Vec<(String, i32)> = keys
        .iter()
        .map(|k| {
            (
                k.to_string(),
                runnel_streams::serdes::partition_for(k.as_bytes(), 4),
            )
        })
        .collect();
    want.sort();
    assert_eq!(got, want);
    // librdkafka's default (CRC32) would have put at least one of these
    // keys elsewhere: the test tells the two partitioners apart.
    let crc_differs = keys.iter().any(|k| {
        let crc = crc32fast_ieee(k.as_bytes()) % 4;
        i64::from(crc) != i64::from(runnel_streams::serdes::partition_for(k.as_bytes(), 4))
    });
    assert!(crc_differs);
}

/// CRC-32 (IEEE), what librdkafka's `consistent` partitioners hash with.
fn crc32fast_ieee(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// A user's error (here: no broker there) is one message, never a
/// backtrace, even with RUST_BACKTRACE=1 set as many Rust users have it.
#[test]
fn errors_are_messages_not_backtraces() {
    let out = Command::new(env!("CARGO_BIN_EXE_runnel"))
        .args([
            "topic",
            "list",
            "-b",
            &format!("127.0.0.1:{}", common::free_port()),
        ])
        .env("RUST_BACKTRACE", "1")
        .stdin(Stdio::null())
        .output()
        .expect("run runnel");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with("error: "), "{err}");
    assert!(!err.to_lowercase().contains("backtrace"), "{err}");
    assert!(err.lines().count() <= 3, "{err}");
}

/// `runnel sql --server host:port`, like every other subcommand's address.
#[test]
fn sql_takes_a_host_and_port() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with_sql(&dir.path().join("data"), &[]);
    let addr = server.sql_addr.expect("sql").to_string();
    let out = Command::new(env!("CARGO_BIN_EXE_runnel"))
        .args(["sql", "--server", &addr, "-e", "SHOW STREAMS;"])
        .stdin(Stdio::null())
        .output()
        .expect("run runnel sql");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Producing to an address where no broker answers fails within seconds,
/// naming the address (it used to wait for the delivery timeout, 5 min).
#[test]
fn produce_to_no_broker_fails_fast() {
    let addr = format!("127.0.0.1:{}", common::free_port());
    let started = std::time::Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_runnel"))
        .args(["produce", "t", "-b", &addr])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run runnel produce");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"hello\n")
        .expect("write");
    let out = child.wait_with_output().expect("wait");
    assert!(!out.status.success());
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("cannot reach a broker at {addr}")),
        "{err}"
    );
}

/// Output into a closed pipe (`runnel … | head`) ends the command quietly:
/// no panic, no error, exit 0, as with Unix tools.
#[test]
fn a_closed_stdout_ends_commands_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[]);
    ok(&server, &["topic", "create", "piped", "-p", "3"], None);
    ok(&server, &["produce", "piped"], Some("a\nb\nc\n"));
    for args in [
        vec!["topic", "describe", "piped"],
        vec!["topic", "list"],
        vec!["consume", "piped", "-o", "beginning", "-e"],
    ] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_runnel"))
            .args(&args)
            .args(["-b", &server.bootstrap()])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run runnel");
        // The reader is gone before the first line is written.
        drop(child.stdout.take());
        let out = child.wait_with_output().expect("wait");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{args:?}: {err}");
        assert!(
            !err.contains("panicked") && !err.contains("error"),
            "{args:?}: {err}"
        );
    }
}

/// `runnel sql -f` names the failing statement's place in the file, not in
/// the statement.
#[test]
fn sql_script_errors_name_file_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with_sql(&dir.path().join("data"), &[]);
    let script = dir.path().join("etl.sql");
    std::fs::write(
        &script,
        "CREATE STREAM s (k STRING KEY, v INT)\n  WITH (KAFKA_TOPIC='s', VALUE_FORMAT='JSON', PARTITIONS=1);\n\nCREATE STREAM t AS\n  SELECT nope FROM s;\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_runnel"))
        .args(["sql", "--server", &server.sql_url(), "-f"])
        .arg(&script)
        .stdin(Stdio::null())
        .output()
        .expect("run runnel sql -f");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    // NOPE is on line 5, column 10 of the file (line 2 of its statement).
    assert!(
        err.contains(&format!("{}:5:10:", script.display())),
        "{err}"
    );
}

/// The shell's `help` lists what can be typed.
#[test]
fn the_sql_shell_has_help() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with_sql(&dir.path().join("data"), &[]);
    let mut child = Command::new(env!("CARGO_BIN_EXE_runnel"))
        .args(["sql", "--server", &server.sql_url()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run runnel sql");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"help\nexit\n")
        .expect("write");
    let out = child.wait_with_output().expect("wait");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("SHOW STREAMS;") && text.contains("EMIT CHANGES"),
        "{text}"
    );
}

/// SIGTERM as soon as the port accepts connections (the server may still
/// be starting its services) stops the server cleanly, exit 0, rather than
/// killing it before its signal handler is in place.
#[test]
fn sigterm_during_start_up_is_a_clean_stop() {
    for i in 0..5 {
        let dir = tempfile::tempdir().unwrap();
        let mut server = Server::start(&dir.path().join("data"), &[]);
        assert_eq!(server.terminate(), Some(0), "start {i}");
    }
}

/// The schema registry listens where `--registry-listen` (or the config
/// file's `registry_listen`) says, and `--no-registry` turns it off.
#[test]
fn the_schema_registry_follows_its_settings() {
    let dir = tempfile::tempdir().unwrap();
    let port = common::free_port();
    let listen = format!("127.0.0.1:{port}");
    let mut server = Server::start(&dir.path().join("a"), &["--registry-listen", &listen]);
    let url = format!("http://{listen}");
    let body = wait_for_http(&format!("{url}/subjects"));
    assert_eq!(body, "[]");
    let registered = ureq::post(&format!("{url}/subjects/t-value/versions"))
        .set("Content-Type", "application/vnd.schemaregistry.v1+json")
        .send_string(r#"{"schema": "\"string\""}"#)
        .unwrap()
        .into_string()
        .unwrap();
    assert_eq!(registered, r#"{"id":1}"#);
    assert_eq!(server.terminate(), Some(0));

    // From the config file; then off with the flag, the file unchanged.
    let port = common::free_port();
    let config = dir.path().join("runnel.toml");
    std::fs::write(&config, format!("registry_listen = \"127.0.0.1:{port}\"\n")).unwrap();
    let config_s = config.to_str().unwrap();
    let mut server = Server::start(&dir.path().join("b"), &["--config", config_s]);
    assert_eq!(
        wait_for_http(&format!("http://127.0.0.1:{port}/subjects")),
        "[]"
    );
    assert_eq!(server.terminate(), Some(0));
    let mut server = Server::start(
        &dir.path().join("c"),
        &["--config", config_s, "--no-registry"],
    );
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "the registry listens despite --no-registry"
    );
    assert_eq!(server.terminate(), Some(0));
}

/// The connect worker listens where `--connect-listen` (or the config
/// file's `connect_listen`) says, keeps its connectors across a restart,
/// and `--no-connect` turns it off.
#[test]
fn the_connect_worker_follows_its_settings() {
    let dir = tempfile::tempdir().unwrap();
    let port = common::free_port();
    let listen = format!("127.0.0.1:{port}");
    let args = ["--connect-listen", listen.as_str()];
    let mut server = Server::start(&dir.path().join("a"), &args);
    let url = format!("http://{listen}");
    assert_eq!(wait_for_http(&format!("{url}/connectors")), "[]");
    let input = dir.path().join("in.txt");
    std::fs::write(&input, "x\n").unwrap();
    let created = ureq::post(&format!("{url}/connectors"))
        .send_json(ureq::json!({"name": "f", "config": {
            "connector.class": "FileStreamSource",
            "file": input.to_str().unwrap(),
            "topic": "lines"}}))
        .unwrap();
    assert_eq!(created.status(), 201);
    assert_eq!(server.terminate(), Some(0));
    let mut server = Server::start(&dir.path().join("a"), &args);
    assert_eq!(wait_for_http(&format!("{url}/connectors")), r#"["f"]"#);
    assert_eq!(server.terminate(), Some(0));

    let port = common::free_port();
    let config = dir.path().join("runnel.toml");
    std::fs::write(
        &config,
        format!("connect_listen = \"127.0.0.1:{port}\"\nno_registry = true\n"),
    )
    .unwrap();
    let config_s = config.to_str().unwrap();
    let mut server = Server::start(&dir.path().join("b"), &["--config", config_s]);
    assert_eq!(
        wait_for_http(&format!("http://127.0.0.1:{port}/connectors")),
        "[]"
    );
    assert_eq!(server.terminate(), Some(0));
    let mut server = Server::start(
        &dir.path().join("c"),
        &["--config", config_s, "--no-connect"],
    );
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "the connect worker listens despite --no-connect"
    );
    assert_eq!(server.terminate(), Some(0));
}

/// GETs `url` until it answers 200 (the HTTP APIs start after the Kafka
/// listener); the body.
fn wait_for_http(url: &str) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        match ureq::get(url).call() {
            Ok(r) => return r.into_string().unwrap(),
            Err(e) => {
                assert!(std::time::Instant::now() < deadline, "{url}: {e}");
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
        }
    }
}
