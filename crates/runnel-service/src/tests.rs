use std::sync::{Arc, Mutex};

use axum::routing::get;

use super::*;

/// A service with an HTTP API answering `GET <segment>` with its name,
/// that records its start and stop in `log`.
struct Api {
    name: &'static str,
    segment: &'static str,
    addr: String,
    log: Arc<Mutex<Vec<String>>>,
}

impl Service for Api {
    fn name(&self) -> &str {
        self.name
    }
    fn http_listen(&self) -> Option<HttpListen> {
        Some(HttpListen {
            addr: self.addr.clone(),
            required: true,
        })
    }
    fn start(self: Box<Self>, cx: StartContext) -> BoxFuture<Result<Running, ServiceError>> {
        Box::pin(async move {
            self.log
                .lock()
                .unwrap()
                .push(format!("start {}", self.name));
            let name = self.name;
            let router = Router::new().route(self.segment, get(move || async move { name }));
            let log = self.log.clone();
            let api = HttpApi::new(name, router, &[self.segment])
                .not_found(move || async move { (StatusCode::NOT_FOUND, format!("{name} 404")) });
            let stop = cx.stop;
            Ok(Running {
                api: Some(api),
                task: Some(Box::pin(async move {
                    stop.wait().await;
                    Ok(())
                })),
                shutdown: Some(Box::new(move || {
                    Box::pin(async move {
                        log.lock().unwrap().push(format!("stop {name}"));
                        Ok(())
                    })
                })),
            })
        })
    }
}

fn free_addr() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().to_string()
}

async fn get_text(url: String) -> (u16, String) {
    tokio::task::spawn_blocking(move || match ureq::get(&url).call() {
        Ok(r) => (r.status(), r.into_string().unwrap()),
        Err(ureq::Error::Status(code, r)) => (code, r.into_string().unwrap()),
        Err(e) => panic!("{url}: {e}"),
    })
    .await
    .unwrap()
}

/// Waits until `addr` answers `GET path` with 200.
async fn wait_ready(addr: &str, path: &str) {
    for _ in 0..200 {
        let url = format!("http://{addr}{path}");
        let ok = tokio::task::spawn_blocking(move || ureq::get(&url).call().is_ok())
            .await
            .unwrap();
        if ok {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("{addr}{path} never answered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apis_share_a_listener_without_shadowing_and_stop_in_reverse_order() {
    let addr = free_addr();
    let log = Arc::new(Mutex::new(Vec::new()));
    let mut sup = Supervisor::new();
    for (name, segment) in [("first", "/one"), ("second", "/two")] {
        sup.add(Api {
            name,
            segment,
            addr: addr.clone(),
            log: log.clone(),
        });
    }
    let (stop_tx, mut stop_rx) = watch::channel(false);
    let run = tokio::spawn(sup.run(async move {
        let _ = stop_rx.wait_for(|s| *s).await;
    }));
    wait_ready(&addr, "/one").await;
    assert_eq!(
        get_text(format!("http://{addr}/one")).await,
        (200, "first".into())
    );
    assert_eq!(
        get_text(format!("http://{addr}/two")).await,
        (200, "second".into())
    );
    // Neither API's own 404 answers for the other: the shared one does.
    let (code, body) = get_text(format!("http://{addr}/three")).await;
    assert_eq!(code, 404);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&body).unwrap(),
        not_found_body()
    );
    stop_tx.send(true).unwrap();
    run.await.unwrap().unwrap();
    assert_eq!(
        *log.lock().unwrap(),
        ["start first", "start second", "stop second", "stop first"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_alone_answers_unknown_paths_its_own_way() {
    let addr = free_addr();
    let log = Arc::new(Mutex::new(Vec::new()));
    let mut sup = Supervisor::new();
    sup.add(Api {
        name: "solo",
        segment: "/one",
        addr: addr.clone(),
        log,
    });
    let (stop_tx, mut stop_rx) = watch::channel(false);
    let run = tokio::spawn(sup.run(async move {
        let _ = stop_rx.wait_for(|s| *s).await;
    }));
    wait_ready(&addr, "/one").await;
    assert_eq!(
        get_text(format!("http://{addr}/nope")).await,
        (404, "solo 404".into())
    );
    stop_tx.send(true).unwrap();
    run.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlapping_apis_on_one_listener_are_refused() {
    let addr = free_addr();
    let log = Arc::new(Mutex::new(Vec::new()));
    let mut sup = Supervisor::new();
    for name in ["first", "second"] {
        sup.add(Api {
            name,
            segment: "/status",
            addr: addr.clone(),
            log: log.clone(),
        });
    }
    let err = sup.run(std::future::pending()).await.unwrap_err();
    assert!(
        matches!(&err, ServiceError::Overlap { first, second, segment, .. }
            if first == "first" && second == "second" && segment == "/status"),
        "{err}"
    );
    // Both had started; both were stopped again.
    assert_eq!(
        *log.lock().unwrap(),
        ["start first", "start second", "stop second", "stop first"]
    );
}

/// A service whose task ends by itself.
struct Quitter;

impl Service for Quitter {
    fn name(&self) -> &str {
        "quitter"
    }
    fn start(self: Box<Self>, _cx: StartContext) -> BoxFuture<Result<Running, ServiceError>> {
        Box::pin(async {
            Ok(Running {
                task: Some(Box::pin(async {
                    Err(ServiceError::failed("quitter", "boom"))
                })),
                ..Running::default()
            })
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_service_stops_the_others_and_is_reported() {
    let addr = free_addr();
    let log = Arc::new(Mutex::new(Vec::new()));
    let mut sup = Supervisor::new();
    sup.add(Api {
        name: "api",
        segment: "/one",
        addr,
        log: log.clone(),
    });
    sup.add(Quitter);
    let err = sup.run(std::future::pending()).await.unwrap_err();
    assert_eq!(err.to_string(), "quitter: boom");
    assert_eq!(*log.lock().unwrap(), ["start api", "stop api"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_taken_default_port_leaves_the_service_out_but_a_required_one_fails() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    struct Optional(String, Arc<Mutex<Vec<String>>>);
    impl Service for Optional {
        fn name(&self) -> &str {
            "optional"
        }
        fn http_listen(&self) -> Option<HttpListen> {
            Some(HttpListen {
                addr: self.0.clone(),
                required: false,
            })
        }
        fn start(self: Box<Self>, _cx: StartContext) -> BoxFuture<Result<Running, ServiceError>> {
            self.1.lock().unwrap().push("started".into());
            Box::pin(async { Ok(Running::default()) })
        }
    }
    let log = Arc::new(Mutex::new(Vec::new()));
    let mut sup = Supervisor::new();
    sup.add(Optional(addr.clone(), log.clone()));
    sup.run(async {}).await.unwrap();
    assert!(log.lock().unwrap().is_empty(), "left out, never started");

    let mut sup = Supervisor::new();
    sup.add(Api {
        name: "api",
        segment: "/one",
        addr: addr.clone(),
        log: log.clone(),
    });
    let err = sup.run(async {}).await.unwrap_err();
    assert!(matches!(err, ServiceError::Listen { .. }), "{err}");
    drop(taken);
}

#[test]
fn first_segments() {
    assert_eq!(first_segment("/"), "/");
    assert_eq!(first_segment("/ksql"), "/ksql");
    assert_eq!(first_segment("/status/{*id}"), "/status");
    assert_eq!(first_segment("/subjects/{s}/versions"), "/subjects");
    assert_eq!(first_segment("//"), "/");
}
