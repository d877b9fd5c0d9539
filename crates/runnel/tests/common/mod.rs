//! Starts the real `runnel serve` binary for integration tests.
#![allow(dead_code)]

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A `runnel serve` child process on a free loopback port.
pub struct Server {
    child: Option<Child>,
    pub addr: SocketAddr,
    /// The SQL API's address, when started with [`Server::start_with_sql`].
    pub sql_addr: Option<SocketAddr>,
    pub data_dir: PathBuf,
    extra: Vec<String>,
}

pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    l.local_addr().expect("local addr").port()
}

impl Server {
    /// Starts a server on a new port with its data in `data_dir`.
    pub fn start(data_dir: &Path, extra: &[&str]) -> Server {
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let mut s = Server {
            child: None,
            addr,
            sql_addr: None,
            data_dir: data_dir.to_path_buf(),
            extra: extra.iter().map(|s| s.to_string()).collect(),
        };
        s.spawn();
        s
    }

    /// Starts a server that also serves the SQL API on a free port.
    pub fn start_with_sql(data_dir: &Path, extra: &[&str]) -> Server {
        let sql: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let sql_s = sql.to_string();
        let mut args = vec!["--sql-listen", sql_s.as_str()];
        args.extend_from_slice(extra);
        let mut s = Server::start(data_dir, &args);
        s.sql_addr = Some(sql);
        s.wait_for(sql);
        s
    }

    /// The SQL API's base URL.
    pub fn sql_url(&self) -> String {
        format!(
            "http://{}",
            self.sql_addr.expect("started with the SQL API")
        )
    }

    fn wait_for(&self, addr: SocketAddr) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            assert!(
                Instant::now() < deadline,
                "server did not start listening on {addr}; see {}",
                self.log_path().display()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.data_dir.with_extension("server.log"))
            .expect("open server log");
        let child = Command::new(env!("CARGO_BIN_EXE_runnel"))
            .arg("serve")
            .arg("--data-dir")
            .arg(&self.data_dir)
            .arg("--listen")
            .arg(self.addr.to_string())
            .args(&self.extra)
            // Only the tests that use the SQL API run the engine.
            .args((!self.extra.iter().any(|a| a == "--sql-listen")).then_some("--no-sql"))
            // Nor the schema registry.
            .args(
                (!self
                    .extra
                    .iter()
                    .any(|a| a == "--registry-listen" || a == "--config"))
                .then_some("--no-registry"),
            )
            // Nor the connect worker.
            .args(
                (!self
                    .extra
                    .iter()
                    .any(|a| a == "--connect-listen" || a == "--config"))
                .then_some("--no-connect"),
            )
            .env("RUNNEL_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start runnel serve");
        self.child = Some(child);
        self.wait_for(self.addr);
        if let Some(sql) = self.sql_addr {
            self.wait_for(sql);
        }
    }

    /// The server process's id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("server running").id()
    }

    pub fn log_path(&self) -> PathBuf {
        self.data_dir.with_extension("server.log")
    }

    pub fn bootstrap(&self) -> String {
        self.addr.to_string()
    }

    /// SIGKILLs the server (no flush, no clean shutdown).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts the server again on the same port and data directory.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// SIGTERMs the server and returns its exit code.
    pub fn terminate(&mut self) -> Option<i32> {
        let mut c = self.child.take()?;
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(c.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(status)) = c.try_wait() {
                return status.code();
            }
            if Instant::now() > deadline {
                let _ = c.kill();
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}
