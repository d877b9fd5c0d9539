//! The stream engine as a separate process against `runnel serve`: the
//! talk's slide-8 application (`runnel demo unstable-apps run`) is killed
//! with SIGKILL mid-stream and restarted, or scaled out over three
//! instances one of which dies, and its output tables are checked against
//! an independent computation of the same input.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may stop at the first surprise

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::Server;
use runnel_streams::backend::Backend;
use runnel_streams::talk;
use runnel_streams::{Guarantee, KafkaBackend, KafkaBackendConfig, TopicPartition};

/// A fixed day boundary, so the test's own computation sees the same days.
const START: i64 = 1_700_006_400_000 - 1_700_006_400_000 % talk::DAY_MS;

fn cli(server: &Server, args: &[&str]) {
    let out = Command::new(env!("CARGO_BIN_EXE_runnel"))
        .args(args)
        .args(["-b", &server.bootstrap()])
        .env("RUNNEL_LOG", "warn")
        .output()
        .expect("run runnel");
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Writes generated events for three days from `START` + `phase` × 3 days
/// (later phases are later in event time, so none of them is late).
fn generate(server: &Server, seed: u64, events: usize, phase: i64) -> Vec<talk::Generated> {
    let start = START + phase * 3 * talk::DAY_MS;
    let (seed_s, events_s, start_s) = (seed.to_string(), events.to_string(), start.to_string());
    cli(
        server,
        &[
            "demo",
            "unstable-apps",
            "generate",
            "--seed",
            &seed_s,
            "--events",
            &events_s,
            "--days",
            "3",
            "--start-ms",
            &start_s,
        ],
    );
    talk::generate(seed, events, 3, start)
}

/// One `runnel demo unstable-apps run` process.
struct App {
    child: Option<Child>,
    log: PathBuf,
}

impl App {
    fn start(server: &Server, dir: &Path, instance: &str, exactly_once: bool) -> App {
        let log = dir.join(format!("app-{instance}.log"));
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("open app log");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_runnel"));
        cmd.args(["demo", "unstable-apps", "run", "-b", &server.bootstrap()])
            // A long commit interval: kills land while results of
            // uncommitted input are already out (at-least-once) or in an open
            // transaction (exactly-once).
            .args(["--instance-id", instance, "--commit-ms", "2000"])
            // Windows stay for the whole test. The two inputs are consumed
            // independently, so after a restart one may be processed days
            // of event time ahead of the other (a partition whose cached
            // end offset is stale looks caught up); a window the other side
            // already expired would then miss join updates, as in Kafka
            // Streams. Counts are exact either way.
            .args(["--grace-secs", "1209600"])
            // Every update goes out (no record cache), so the exactly-once
            // check can see each count 1, 2, …, n exactly once.
            .args(["--cache-max-bytes", "0"])
            .arg("--state-dir")
            .arg(dir.join(format!("state-{instance}")))
            .args([
                "-X",
                "session.timeout.ms=6000",
                "-X",
                "heartbeat.interval.ms=500",
            ])
            .env("RUNNEL_LOG", "info,librdkafka=warn,rdkafka::client=warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(file);
        if exactly_once {
            cmd.arg("--exactly-once");
        }
        App {
            child: Some(cmd.spawn().expect("start the app")),
            log,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the instance logged that it created a task.
    fn wait_for_tasks(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self.log().contains("task created") {
            assert!(
                Instant::now() < deadline,
                "no task created:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for App {
    fn drop(&mut self) {
        self.kill();
    }
}

type Table = BTreeMap<(String, i64), i64>;

/// (opens, crashes) per (app, day) computed straight from the input.
fn expected(events: &[talk::Generated]) -> (Table, Table) {
    let (mut opens, mut crashes) = (Table::new(), Table::new());
    for e in events {
        let day = e.timestamp - e.timestamp.rem_euclid(talk::DAY_MS);
        let t = if e.topic == talk::APPS_OPENED {
            &mut opens
        } else {
            &mut crashes
        };
        *t.entry((e.app_id.clone(), day)).or_default() += 1;
    }
    (opens, crashes)
}

/// Every committed update of an output topic, per (app, day), in order.
fn updates(server: &Server, topic: &str, field: &str) -> BTreeMap<(String, i64), Vec<i64>> {
    let mut b = KafkaBackend::new(
        KafkaBackendConfig::new(server.bootstrap(), "streams-test-reader")
            .with_guarantee(Guarantee::AtLeastOnce),
    )
    .expect("reader");
    let mut out: BTreeMap<(String, i64), Vec<i64>> = BTreeMap::new();
    let n = b.partition_count(topic).expect("metadata").unwrap_or(0);
    for p in 0..n {
        b.read_partition(&TopicPartition::new(topic, p), 0, &mut |r| {
            let k = r.key.expect("keyed output");
            let (app, start) = k.split_at(k.len() - 8);
            let key = (
                String::from_utf8(app.to_vec()).unwrap(),
                i64::from_be_bytes(start.try_into().unwrap()),
            );
            // A deleted row (a tombstone) reads as 0.
            let v = r
                .value
                .map(|v| {
                    serde_json::from_slice::<serde_json::Value>(&v).unwrap()[field]
                        .as_i64()
                        .unwrap()
                })
                .unwrap_or(0);
            out.entry(key).or_default().push(v);
        })
        .expect("read output");
    }
    out
}

fn latest(u: &BTreeMap<(String, i64), Vec<i64>>) -> Table {
    u.iter()
        .filter_map(|(k, v)| v.last().map(|l| (k.clone(), *l)))
        .collect()
}

/// Polls the output until both count tables equal the expected ones.
fn wait_for_tables(server: &Server, want: &(Table, Table)) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let opens = latest(&updates(server, talk::OPENED_PER_DAY, "OPENS"));
        let crashes = latest(&updates(server, talk::CRASHED_PER_DAY, "CRASHES"));
        if opens == want.0 && crashes == want.1 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "tables never matched: opens {opens:?}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn crash_and_restart(exactly_once: bool) {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        &dir.path().join("data"),
        &["--group-initial-rebalance-delay-ms", "0"],
    );
    let mut events = generate(&server, 7, 20_000, 0);
    let mut app = App::start(&server, dir.path(), "0", exactly_once);
    for round in 0..3u64 {
        app.wait_for_tasks();
        // More input while the instance works, then a kill at an arbitrary
        // point of its processing.
        events.extend(generate(&server, 100 + round, 10_000, 1 + round as i64));
        std::thread::sleep(Duration::from_millis(150 + 170 * round));
        app.kill();
        app = App::start(&server, dir.path(), "0", exactly_once);
    }
    let want = expected(&events);
    wait_for_tables(&server, &want);
    let opens = updates(&server, talk::OPENED_PER_DAY, "OPENS");
    if exactly_once {
        // Each window's committed updates count 1, 2, ..., n: nothing
        // processed twice and nothing lost across four kills.
        for (k, seq) in &opens {
            let n = want.0[k];
            assert_eq!(seq, &(1..=n).collect::<Vec<_>>(), "updates of {k:?}");
        }
    } else {
        for (k, seq) in &opens {
            assert!(
                seq.iter().all(|v| *v >= 1 && *v <= want.0[k]),
                "{k:?}: {seq:?}"
            );
        }
    }
    // The unstable apps agree with the counts.
    let unstable = updates(&server, talk::UNSTABLE_APPS, "CRASHES");
    for (k, c) in &want.1 {
        let o = want.0.get(k).copied().unwrap_or(0);
        let listed = unstable
            .get(k)
            .and_then(|v| v.last())
            .is_some_and(|c| *c > 0);
        if o > 0 && *c as f64 / o as f64 > 0.1 {
            assert!(
                listed,
                "{k:?} ({c}/{o}) should be unstable; its updates: {:?}",
                unstable.get(k)
            );
        }
    }
    app.kill();
}

#[test]
fn exactly_once_app_killed_three_times_outputs_each_update_once() {
    crash_and_restart(true);
}

#[test]
fn at_least_once_app_killed_three_times_ends_with_correct_tables() {
    crash_and_restart(false);
}

#[test]
fn three_instances_share_the_work_and_survivors_take_over_a_dead_ones_tasks() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        &dir.path().join("data"),
        &["--group-initial-rebalance-delay-ms", "0"],
    );
    let mut events = generate(&server, 11, 10_000, 0);
    let mut apps: Vec<App> = (0..3)
        .map(|i| App::start(&server, dir.path(), &i.to_string(), false))
        .collect();
    for a in &apps {
        a.wait_for_tasks();
    }
    // Let the group settle on three members, each with its own tasks.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let spread = apps
            .iter()
            .all(|a| a.log().matches("task created").count() >= 1);
        if spread && Instant::now() > deadline - Duration::from_secs(25) {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    apps[1].kill();
    events.extend(generate(&server, 12, 20_000, 1));
    wait_for_tables(&server, &expected(&events));
    let survivors_tasks: usize = [0, 2]
        .iter()
        .map(|i| apps[*i].log().matches("task created").count())
        .sum();
    assert!(
        survivors_tasks > 3,
        "the survivors created the dead instance's tasks too"
    );
}

/// A second instance on a state directory in use is refused at start,
/// naming the directory and the process that has it, instead of joining
/// the group and failing when its first store opens.
#[test]
fn a_second_instance_on_a_state_directory_in_use_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[]);
    generate(&server, 7, 200, 0);
    let first = App::start(&server, dir.path(), "a", false);
    first.wait_for_tasks();
    // A fresh state directory needs no repair, and says none.
    assert!(
        !first.log().contains("repairing state database"),
        "{}",
        first.log()
    );
    let pid = first.child.as_ref().expect("running").id();
    let out = Command::new(env!("CARGO_BIN_EXE_runnel"))
        .args(["demo", "unstable-apps", "run", "-b", &server.bootstrap()])
        .args(["--instance-id", "b", "--state-dir"])
        .arg(dir.path().join("state-a"))
        .stdin(Stdio::null())
        .output()
        .expect("run a second instance");
    assert!(!out.status.success(), "the second instance started");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "state directory {} is in use by another instance (pid {pid})",
            dir.path().join("state-a").display()
        )),
        "{err}"
    );
}
