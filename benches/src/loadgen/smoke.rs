//! The smoke run: every mode, small and short, against a server started in this process
//! on a fresh database, so the load generator itself cannot rot. It checks behaviour
//! (every message acknowledged and delivered once, every connection held), never speed.
//! The sustained load runs over every transport: WebSocket, HTTP sends, SSE delivery.

use std::net::SocketAddr;
use std::time::Duration;

use messaging_ws_server::backend::{self, Database, StoreSettings};
use messaging_ws_server::{AuthSettings, Config, Transport, Verifier};
use tokio::sync::oneshot;

use super::client::Target;
use super::handshakes::{self, Handshakes};
use super::idle::{self, Idle};
use super::report::Report;
use super::soak::{self, Soak};
use super::sustained::{self, Load, ReceiveOver, SendOver};
use super::{Error, Run, romeo};

/// A server running in this process until dropped.
struct InProcess {
    addr: SocketAddr,
    secret: Vec<u8>,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    opened: backend::Opened,
}

impl InProcess {
    async fn start(database: &Database) -> Result<Self, Error> {
        let settings = StoreSettings::new(messaging_core::Limits::default());
        let opened = backend::open(database, &settings).await?;
        let mut secret = vec![0_u8; 32];
        getrandom::fill(&mut secret)?;
        let verifier = Verifier::new(&AuthSettings {
            secret: Some(secret.clone()),
            ..AuthSettings::default()
        })?;
        // Rate limits raised: the load sends faster than a person would.
        let transport = Transport::default().rate_limit(10_000, 10_000);
        let config = Config {
            messenger: opened.messenger.clone(),
            // No service API in the smoke run.
            service_keys: std::sync::Arc::default(),
            verifier,
            transport,
            store_label: opened.store_label.clone(),
            webhooks: None,
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(messaging_ws_server::run(listener, config, async move {
            let _ = stopped.await;
        }));
        Ok(Self { addr, secret, stop: Some(stop), task, opened })
    }

    async fn stop(mut self) -> Result<(), Error> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.task.await??;
        self.opened.close().await;
        Ok(())
    }
}

/// Runs every mode briefly against a server in this process over `database` (a fresh
/// SQLite file in a temporary directory when `None`).
///
/// # Errors
/// When the server cannot start or a mode cannot run; failed checks are in the reports.
pub async fn run(database: Option<&str>) -> Result<Vec<Report>, Error> {
    let dir = tempfile::tempdir()?;
    let database = match database {
        Some(url) => Database::parse(url)?,
        None => Database::Sqlite(dir.path().join("smoke.db")),
    };
    let server = InProcess::start(&database).await?;
    let target = Target::new(server.addr, &server.secret, 4);
    // The server shares this process: its "RSS" and CPU are this process's.
    let run = Run { server_pid: Some(std::process::id()) };
    let mut reports = Vec::new();
    reports.push(
        handshakes::run(&target, &run, Handshakes { connections: 200, concurrency: 32 }).await?,
    );
    reports.push(
        idle::run(
            &target,
            &run,
            Idle { connections: 200, concurrency: 32, settle: Duration::from_millis(100) },
        )
        .await?,
    );
    // Open loop (20 pairs at 20 messages/s each), then closed loop (4 in flight each).
    let small = Load {
        pairs: 20,
        rate_per_user: 20.0,
        warmup: Duration::from_millis(500),
        duration: Duration::from_secs(2),
        body_bytes: 100,
        concurrency: 16,
        drain: Duration::from_secs(20),
        window: 0,
        send: SendOver::Ws,
        receive: ReceiveOver::Ws,
    };
    reports.push(sustained::run(&target, &run, small).await?);
    let saturated = Load { pairs: 10, duration: Duration::from_secs(1), window: 4, ..small };
    reports.push(sustained::run(&target, &run, saturated).await?);
    // HTTP sends and SSE delivery, open and closed loop, then each crossed with WebSocket.
    let http_sse = Load { pairs: 10, send: SendOver::Http, receive: ReceiveOver::Sse, ..small };
    reports.push(sustained::run(&target, &run, http_sse).await?);
    let http_sse_saturated = Load { duration: Duration::from_secs(1), window: 4, ..http_sse };
    reports.push(sustained::run(&target, &run, http_sse_saturated).await?);
    let brief = Load { pairs: 4, duration: Duration::from_millis(500), ..small };
    let http_ws = Load { send: SendOver::Http, ..brief };
    reports.push(sustained::run(&target, &run, http_ws).await?);
    reports.push(sustained::run(&target, &run, Load { receive: ReceiveOver::Sse, ..brief }).await?);
    reports.push(romeo::run(&target, &run, 300).await?);
    // The soak, for seconds: every chore often, so each path runs and is checked.
    let wal = match &database {
        Database::Sqlite(path) => Some(path.clone()),
        Database::Postgres(_) => None,
    };
    let soak = Soak {
        pairs: 10,
        rate_per_user: 20.0,
        duration: Duration::from_secs(3),
        sample_every: Duration::from_secs(1),
        reconnects_per_s: 10.0,
        syncs_per_s: 10.0,
        searches_per_s: 10.0,
        sse_users: 6,
        sse_resumes_per_s: 4.0,
        body_bytes: 100,
        concurrency: 16,
        database: wal,
        series: None,
    };
    reports.push(soak::run(&target, &run, soak).await?);
    server.stop().await?;
    Ok(reports)
}
