//! The shape of a service of `runnel serve`: name, on/off switch, listener, readiness, shutdown order; HTTP APIs on their own ports or mounted together.
//!
//! Every part of the platform the binary runs — the Kafka listener, the
//! ksqlDB API, and next the schema registry, connectors, the console and
//! metrics — is a [`Service`]. A [`Supervisor`] takes the enabled ones in
//! start order and:
//!
//! 1. binds the HTTP listeners they ask for, one per address: APIs that ask
//!    for the same address share it, each under the first path segments it
//!    claims ([`HttpApi`]); two APIs claiming the same segment on one
//!    listener are refused ([`ServiceError::Overlap`]) instead of one
//!    silently shadowing the other. A listener asked for only by default
//!    (`required: false`) that cannot be bound disables its services with a
//!    warning, so a second server on one host still serves what it can;
//! 2. starts the services one after another: a service is ready when its
//!    [`Service::start`] returns, and the next one starts only then (the SQL
//!    engine needs the broker it runs on);
//! 3. serves until the stop future completes or a service ends on its own
//!    (an error, or a task that should have run until told to stop);
//! 4. stops: the HTTP listeners first (open requests get a drain timeout),
//!    then each service in reverse start order — its stop signal, its task,
//!    its shutdown — so the broker, started first, flushes the log last.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::time::{Duration, Instant};

use axum::handler::Handler;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{info, warn};

/// A boxed future, as services return them.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// Why a service could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("{service}: cannot listen on {addr}: {source}")]
    Listen {
        service: String,
        addr: String,
        source: std::io::Error,
    },
    #[error("{first} and {second} both claim {segment} on the listener at {addr}")]
    Overlap {
        first: String,
        second: String,
        segment: String,
        addr: String,
    },
    #[error("{service}: {message}")]
    Failed { service: String, message: String },
    #[error("{service} stopped on its own before it was asked to")]
    Ended { service: String },
}

impl ServiceError {
    /// A failure of `service`.
    pub fn failed(service: impl Into<String>, message: impl fmt::Display) -> Self {
        ServiceError::Failed {
            service: service.into(),
            message: message.to_string(),
        }
    }
}

/// The HTTP listener a service asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpListen {
    /// `host:port` to bind.
    pub addr: String,
    /// False when the address is only the ecosystem's default port: if it
    /// is taken, the service is left out with a warning instead of the
    /// whole server failing.
    pub required: bool,
}

/// An HTTP API a service offers.
pub struct HttpApi {
    name: String,
    router: Router,
    segments: Vec<String>,
    not_found: Option<Router>,
    on_stop: StopHooks,
}

impl fmt::Debug for HttpApi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpApi")
            .field("name", &self.name)
            .field("segments", &self.segments)
            .finish_non_exhaustive()
    }
}

impl HttpApi {
    /// An API named `name` whose `router` (with its state, without a
    /// fallback) serves paths under the first `segments` it claims:
    /// `"/ksql"` claims `/ksql` and everything below it, `"/"` the root
    /// path alone.
    pub fn new(name: impl Into<String>, router: Router, segments: &[&str]) -> Self {
        HttpApi {
            name: name.into(),
            router,
            segments: segments.iter().map(|s| s.to_string()).collect(),
            not_found: None,
            on_stop: Vec::new(),
        }
    }

    /// What the API answers for a path it does not know when it is alone
    /// on its listener (each ecosystem has its own 404 body). Mounted with
    /// others, unknown paths get [`not_found_body`].
    pub fn not_found<H, T>(mut self, handler: H) -> Self
    where
        H: Handler<T, ()>,
        T: 'static,
    {
        self.not_found = Some(Router::new().fallback(handler));
        self
    }

    /// Runs `f` when the API's listener begins to stop (to end long-lived
    /// responses such as push queries, so the drain can finish).
    pub fn on_stop(mut self, f: impl FnOnce() + Send + 'static) -> Self {
        self.on_stop.push(Box::new(f));
        self
    }

    /// The API's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// The body of a 404 for a path no API on a shared listener claims: the
/// shape Schema Registry and Kafka Connect use.
pub fn not_found_body() -> serde_json::Value {
    serde_json::json!({"error_code": 404, "message": "HTTP 404 Not Found"})
}

async fn shared_not_found() -> impl IntoResponse {
    (
        StatusCode::NOT_FOUND,
        [(header::CONTENT_TYPE, "application/json")],
        not_found_body().to_string(),
    )
}

/// The first path segment a route or claim starts with, with its leading
/// slash (`/` for the root).
fn first_segment(path: &str) -> String {
    let rest = path.trim_start_matches('/');
    match rest.split('/').next() {
        Some(seg) if !seg.is_empty() => format!("/{seg}"),
        _ => "/".to_string(),
    }
}

/// Stop hooks of the APIs on one listener.
pub type StopHooks = Vec<Box<dyn FnOnce() + Send>>;

/// Puts `apis` on one router for the listener at `addr`; returns it with
/// the APIs' stop hooks.
pub fn mount(addr: &str, apis: Vec<HttpApi>) -> Result<(Router, StopHooks), ServiceError> {
    let mut claimed: BTreeMap<String, String> = BTreeMap::new();
    for api in &apis {
        for s in &api.segments {
            let segment = first_segment(s);
            if let Some(first) = claimed.insert(segment.clone(), api.name.clone()) {
                return Err(ServiceError::Overlap {
                    first,
                    second: api.name.clone(),
                    segment,
                    addr: addr.to_string(),
                });
            }
        }
    }
    let alone = apis.len() == 1;
    let mut router = Router::new();
    let mut hooks = Vec::new();
    for api in apis {
        router = router.merge(api.router);
        if alone {
            if let Some(nf) = api.not_found {
                router = router.merge(nf);
            }
        }
        hooks.extend(api.on_stop);
    }
    if !alone {
        router = router.fallback(shared_not_found);
    }
    Ok((router, hooks))
}

/// Tells a service to stop.
#[derive(Debug, Clone)]
pub struct StopSignal(watch::Receiver<bool>);

impl StopSignal {
    /// Completes once the service must stop.
    pub async fn wait(mut self) {
        let _ = self.0.wait_for(|s| *s).await;
    }

    /// Whether the stop has been asked.
    pub fn is_stopped(&self) -> bool {
        *self.0.borrow()
    }
}

/// What a service is given to start.
#[derive(Debug)]
pub struct StartContext {
    /// Fires when the service must stop.
    pub stop: StopSignal,
    /// The address its HTTP listener is bound to, if it asked for one.
    pub http_addr: Option<SocketAddr>,
}

/// A started service.
#[derive(Default)]
pub struct Running {
    /// Its HTTP API, served on the listener it asked for.
    pub api: Option<HttpApi>,
    /// Work that runs until the stop signal (a protocol loop). Ending
    /// before the stop ends the whole server.
    pub task: Option<BoxFuture<Result<(), ServiceError>>>,
    /// Called after the task ended (and after the HTTP listeners stopped):
    /// releases what the service holds.
    #[allow(clippy::type_complexity)]
    pub shutdown: Option<Box<dyn FnOnce() -> BoxFuture<Result<(), ServiceError>> + Send>>,
}

impl fmt::Debug for Running {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Running")
            .field("api", &self.api)
            .field("task", &self.task.is_some())
            .field("shutdown", &self.shutdown.is_some())
            .finish()
    }
}

/// One part of the platform `runnel serve` runs.
pub trait Service: Send + 'static {
    /// Its name in logs and errors ("kafka", "ksql", …).
    fn name(&self) -> &str;
    /// The HTTP listener its API needs, if it has one.
    fn http_listen(&self) -> Option<HttpListen> {
        None
    }
    /// Starts the service; returns once it is ready to serve.
    fn start(self: Box<Self>, cx: StartContext) -> BoxFuture<Result<Running, ServiceError>>;
}

/// Runs services: starts them in order, serves, stops them in reverse.
pub struct Supervisor {
    services: Vec<Box<dyn Service>>,
    drain: Duration,
}

impl fmt::Debug for Supervisor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.services.iter().map(|s| s.name()).collect();
        f.debug_struct("Supervisor")
            .field("services", &names)
            .field("drain", &self.drain)
            .finish()
    }
}

impl Default for Supervisor {
    fn default() -> Self {
        Supervisor::new()
    }
}

struct Started {
    name: String,
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<Result<(), ServiceError>>>,
    #[allow(clippy::type_complexity)]
    shutdown: Option<Box<dyn FnOnce() -> BoxFuture<Result<(), ServiceError>> + Send>>,
}

/// Why serving ended.
enum Ended {
    Asked,
    Service(usize, Result<(), ServiceError>),
    Http(String, std::io::Error),
}

impl Supervisor {
    /// No services yet; open requests get 10 s to finish when stopping.
    pub fn new() -> Self {
        Supervisor {
            services: Vec::new(),
            drain: Duration::from_secs(10),
        }
    }

    /// Adds a service; services start in the order they are added.
    pub fn add(&mut self, service: impl Service) -> &mut Self {
        self.services.push(Box::new(service));
        self
    }

    /// How long stopping waits for open HTTP requests.
    pub fn drain_timeout(&mut self, d: Duration) -> &mut Self {
        self.drain = d;
        self
    }

    /// Runs every service until `until` completes or one of them ends,
    /// then stops them all. Returns the first failure.
    pub async fn run(self, until: impl Future<Output = ()> + Send) -> Result<(), ServiceError> {
        let Supervisor { services, drain } = self;
        // 1. Listeners, one per address.
        let mut listeners: BTreeMap<String, TcpListener> = BTreeMap::new();
        let mut kept: Vec<(Box<dyn Service>, Option<String>)> = Vec::new();
        let mut refused: BTreeMap<String, String> = BTreeMap::new();
        for s in services {
            let Some(listen) = s.http_listen() else {
                kept.push((s, None));
                continue;
            };
            if listeners.contains_key(&listen.addr) {
                kept.push((s, Some(listen.addr)));
                continue;
            }
            if let Some(e) = refused.get(&listen.addr) {
                if listen.required {
                    return Err(ServiceError::failed(s.name(), e));
                }
                warn!(service = s.name(), addr = %listen.addr, "listener unavailable; service left out");
                continue;
            }
            match TcpListener::bind(&listen.addr).await {
                Ok(l) => {
                    listeners.insert(listen.addr.clone(), l);
                    kept.push((s, Some(listen.addr)));
                }
                Err(e) if !listen.required => {
                    warn!(service = s.name(), addr = %listen.addr, error = %e,
                        "cannot listen on the default address; running without this service");
                    refused.insert(listen.addr, e.to_string());
                }
                Err(e) => {
                    return Err(ServiceError::Listen {
                        service: s.name().to_string(),
                        addr: listen.addr,
                        source: e,
                    })
                }
            }
        }

        // 2. Start in order.
        let mut started: Vec<Started> = Vec::new();
        let mut apis: BTreeMap<String, Vec<HttpApi>> = BTreeMap::new();
        for (s, addr) in kept {
            let name = s.name().to_string();
            let http_addr = match &addr {
                Some(a) => listeners.get(a).and_then(|l| l.local_addr().ok()),
                None => None,
            };
            let (stop_tx, stop_rx) = watch::channel(false);
            let t0 = Instant::now();
            let cx = StartContext {
                stop: StopSignal(stop_rx),
                http_addr,
            };
            match s.start(cx).await {
                Ok(running) => {
                    info!(service = %name, elapsed_ms = t0.elapsed().as_millis() as u64,
                        listen = ?http_addr, "service ready");
                    if let (Some(api), Some(a)) = (running.api, addr) {
                        apis.entry(a).or_default().push(api);
                    }
                    started.push(Started {
                        name,
                        stop: stop_tx,
                        task: running.task.map(tokio::spawn),
                        shutdown: running.shutdown,
                    });
                }
                Err(e) => {
                    stop_all(started).await;
                    return Err(e);
                }
            }
        }

        // 3. Serve HTTP.
        let (http_stop_tx, http_stop_rx) = watch::channel(false);
        let mut servers: Vec<(String, JoinHandle<std::io::Result<()>>)> = Vec::new();
        for (addr, list) in apis {
            let (router, hooks) = match mount(&addr, list) {
                Ok(m) => m,
                Err(e) => {
                    stop_all(started).await;
                    return Err(e);
                }
            };
            let Some(listener) = listeners.remove(&addr) else {
                continue;
            };
            let mut rx = http_stop_rx.clone();
            let serve = axum::serve(listener, router).with_graceful_shutdown(async move {
                let _ = rx.wait_for(|s| *s).await;
                for h in hooks {
                    h();
                }
            });
            servers.push((addr, tokio::spawn(async move { serve.await })));
        }

        // 4. Serve until asked or until something ends.
        let ended = {
            let watch_tasks = async {
                let mut pending: Vec<_> = Vec::new();
                for (i, s) in started.iter_mut().enumerate() {
                    if let Some(t) = s.task.as_mut() {
                        pending.push(Box::pin(async move {
                            let r = match t.await {
                                Ok(r) => r,
                                Err(e) => Err(ServiceError::failed("task", e)),
                            };
                            (i, r)
                        }));
                    }
                }
                if pending.is_empty() {
                    std::future::pending::<()>().await;
                }
                let (i, r) = first_of(pending).await;
                Ended::Service(i, r)
            };
            let watch_http = async {
                let mut pending: Vec<_> = Vec::new();
                for (addr, h) in servers.iter_mut() {
                    let addr = addr.clone();
                    pending.push(Box::pin(async move {
                        let r = match h.await {
                            Ok(r) => r,
                            Err(e) => Err(std::io::Error::other(e)),
                        };
                        (addr, r)
                    }));
                }
                if pending.is_empty() {
                    std::future::pending::<()>().await;
                }
                let (addr, r) = first_of(pending).await;
                Ended::Http(
                    addr,
                    r.err().unwrap_or_else(|| std::io::Error::other("ended")),
                )
            };
            tokio::select! {
                _ = until => Ended::Asked,
                e = watch_tasks => e,
                e = watch_http => e,
            }
        };
        let mut first_error = match ended {
            Ended::Asked => None,
            Ended::Service(i, r) => {
                let name = started[i].name.clone();
                started[i].task = None;
                match r {
                    Ok(()) => Some(ServiceError::Ended { service: name }),
                    Err(e) => Some(e),
                }
            }
            Ended::Http(addr, e) => Some(ServiceError::Failed {
                service: format!("HTTP listener {addr}"),
                message: e.to_string(),
            }),
        };

        // 5. Stop: HTTP first, then services in reverse order.
        let _ = http_stop_tx.send(true);
        for (addr, mut h) in servers {
            match tokio::time::timeout(drain, &mut h).await {
                Ok(Ok(Ok(()))) => {}
                Ok(Ok(Err(e))) => {
                    first_error.get_or_insert(ServiceError::Failed {
                        service: format!("HTTP listener {addr}"),
                        message: e.to_string(),
                    });
                }
                Ok(Err(_)) => {}
                Err(_) => {
                    warn!(addr = %addr, "HTTP clients still connected after the drain timeout; closing them");
                    h.abort();
                }
            }
        }
        if let Some(e) = stop_all(started).await {
            first_error.get_or_insert(e);
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// Stops started services in reverse order; returns the first error.
async fn stop_all(started: Vec<Started>) -> Option<ServiceError> {
    let mut first = None;
    for s in started.into_iter().rev() {
        let _ = s.stop.send(true);
        if let Some(t) = s.task {
            match t.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    first.get_or_insert(e);
                }
                Err(e) => {
                    first.get_or_insert(ServiceError::failed(&s.name, e));
                }
            }
        }
        if let Some(f) = s.shutdown {
            if let Err(e) = f().await {
                first.get_or_insert(e);
            }
        }
        info!(service = %s.name, "service stopped");
    }
    first
}

/// The output of whichever of `futures` completes first.
async fn first_of<F: Future + Unpin>(mut futures: Vec<F>) -> F::Output {
    std::future::poll_fn(move |cx| {
        for f in futures.iter_mut() {
            if let std::task::Poll::Ready(out) = Pin::new(f).poll(cx) {
                return std::task::Poll::Ready(out);
            }
        }
        std::task::Poll::Pending
    })
    .await
}

#[cfg(test)]
mod tests;
