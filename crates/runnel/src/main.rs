//! The runnel command: serve the broker, administer topics, produce and consume.

/// `println!` for command output that reports a closed stdout (`runnel …
/// | head`) as an error, which `main` turns into a quiet exit, instead of
/// panicking.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout().lock(), $($arg)*)
    }};
}

mod admin;
mod client;
mod config;
mod connect_cmd;
mod consume;
mod demo;
mod group;
mod produce;
mod serve;
mod sql_cli;

/// mimalloc: the engine allocates and frees small records at a high rate,
/// where glibc's allocator spent ~30% of a windowed count (BENCHMARKS.md).
#[global_allocator]
static GLOBAL: runnel_alloc::MiMalloc = runnel_alloc::MiMalloc;

use anyhow::Result;
use clap::{Parser, Subcommand};

/// Runnel: an event-streaming platform that speaks the Kafka protocol.
#[derive(Parser, Debug)]
#[command(name = "runnel", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the broker (Kafka protocol on 9092, data in ./runnel-data by default).
    Serve(Box<serve::ServeArgs>),
    /// Create, list, describe, delete and configure topics on any Kafka-compatible broker.
    Topic(admin::TopicArgs),
    /// List, describe (offsets and lag) and delete consumer groups.
    Group(group::GroupArgs),
    /// Produce records read from stdin, one per line (kcat -P style).
    Produce(produce::ProduceArgs),
    /// Consume records and print them (kcat -C style).
    Consume(consume::ConsumeArgs),
    /// The talk's example applications, runnable against any broker.
    Demo(demo::DemoArgs),
    /// SQL shell against the ksqlDB-compatible API (interactive, -e or -f).
    Sql(sql_cli::SqlArgs),
    /// A Kafka Connect worker (REST on 127.0.0.1:8083) against any Kafka-compatible cluster.
    Connect(connect_cmd::ConnectArgs),
}

fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        // The reader of our output went away (`| head`): done, quietly, as
        // Unix tools are.
        Err(e) if is_broken_pipe(&e) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // A message with its causes, never a backtrace: these are the
            // user's errors (a broker down, a bad flag), whatever
            // RUST_BACKTRACE says.
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

fn run() -> Result<()> {
    let cli = Cli::parse();
    // Client commands report librdkafka's errors themselves; its own log of
    // them (e.g. a "global error" per partition end) would only repeat them.
    let default_filter = match cli.command {
        Command::Serve(_) | Command::Connect(_) => "info",
        Command::Demo(_) => "info,librdkafka=warn,rdkafka::client=warn",
        _ => "warn,librdkafka=off,rdkafka::client=off",
    };
    init_tracing(default_filter);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        match cli.command {
            Command::Serve(args) => serve::run(*args).await,
            Command::Topic(args) => admin::run(args).await,
            Command::Group(args) => group::run(args).await,
            Command::Produce(args) => produce::run(args).await,
            Command::Consume(args) => consume::run(args).await,
            Command::Demo(args) => demo::run(args).await,
            Command::Connect(args) => connect_cmd::run(args, serve::shutdown_signal()?).await,
            // A blocking client (line editor, HTTP): off the async threads.
            Command::Sql(args) => tokio::task::spawn_blocking(move || sql_cli::run(args)).await?,
        }
    })
}

fn init_tracing(default_filter: &str) {
    use std::io::IsTerminal;
    use tracing_subscriber::EnvFilter;
    let filter =
        EnvFilter::try_from_env("RUNNEL_LOG").unwrap_or_else(|_| EnvFilter::new(default_filter));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
}
