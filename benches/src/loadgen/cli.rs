//! The command line of `messaging-loadgen`.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

use super::client::Target;
use super::handshakes::{self, Handshakes};
use super::idle::{self, Idle};
use super::report::Report;
use super::soak::{self, Soak};
use super::sustained::{self, Load, ReceiveOver, SendOver};
use super::{Error, Run, romeo, smoke, summary};

/// Load generator for messaging-ws-server: speaks docs/protocol.md over loopback and measures.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// The server's address.
    #[arg(long, env = "MESSAGING_LOADGEN_SERVER", default_value = "127.0.0.1:8080", global = true)]
    server: SocketAddr,
    /// The file holding the server's HS256 secret, to mint tokens (the server's generated
    /// one by default). The secret itself may instead be in the environment variable
    /// MESSAGING_JWT_SECRET (never a flag value: flags are visible in `ps`).
    #[arg(
        long,
        visible_alias = "secret-file",
        env = "MESSAGING_JWT_SECRET_FILE",
        default_value = "messaging.db.jwt-secret",
        global = true
    )]
    jwt_secret_file: PathBuf,
    /// The server's process id, to read its memory and CPU time.
    #[arg(long, global = true)]
    server_pid: Option<u32>,
    /// Loopback source addresses to spread connections over (127.0.0.1 … 127.0.0.N).
    #[arg(long, default_value_t = 32, global = true)]
    sources: u8,
    /// Print the report as JSON instead of a table.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Debug, Subcommand)]
enum Mode {
    /// Opens N connections as fast as the server takes them: handshakes per second.
    Handshakes {
        /// Connections to open.
        #[arg(long, default_value_t = 10_000)]
        connections: usize,
        /// Handshakes in flight at once.
        #[arg(long, default_value_t = 256)]
        concurrency: usize,
    },
    /// Holds N connections that each sent one message: server RSS per idle connection.
    Idle {
        /// Connections to hold.
        #[arg(long, default_value_t = 19_000)]
        connections: usize,
        /// Handshakes in flight at once.
        #[arg(long, default_value_t = 256)]
        concurrency: usize,
        /// Seconds to wait before each memory reading.
        #[arg(long, default_value_t = 3.0)]
        settle_s: f64,
    },
    /// Pairs of users sending at a fixed rate (open loop) or keeping a window of sends in
    /// flight (closed loop), over WebSocket or HTTP, receiving over WebSocket or SSE:
    /// throughput and latency.
    Load {
        /// Pairs of users (two users each).
        #[arg(long, default_value_t = 5_000)]
        pairs: usize,
        /// Messages per second each user sends.
        #[arg(long, default_value_t = 1.0)]
        rate: f64,
        /// Seconds of load before the measured window.
        #[arg(long, default_value_t = 5.0)]
        warmup_s: f64,
        /// Seconds measured.
        #[arg(long, default_value_t = 30.0)]
        duration_s: f64,
        /// Bytes of each message body.
        #[arg(long, default_value_t = 100)]
        body_bytes: usize,
        /// Handshakes in flight while connecting.
        #[arg(long, default_value_t = 256)]
        concurrency: usize,
        /// Longest wait for replies and pushes after the last send, seconds.
        #[arg(long, default_value_t = 30.0)]
        drain_s: f64,
        /// Closed loop: each user keeps this many sends in flight, whatever the rate
        /// (measures the server's capacity; 0: open loop at --rate).
        #[arg(long, default_value_t = 0)]
        window: usize,
        /// How users send: `send` frames on their WebSocket, or `POST
        /// /v1/conversations/{id}/messages` on keep-alive HTTP connections (one client per
        /// user; as many connections as it has sends in flight, up to 6 in the open loop).
        #[arg(long, value_enum, default_value_t = SendOver::Ws)]
        send: SendOver,
        /// How users receive: pushes on their WebSocket, or their event stream
        /// (`GET /v1/events`).
        #[arg(long, value_enum, default_value_t = ReceiveOver::Ws)]
        receive: ReceiveOver,
    },
    /// A long open-loop load with reconnects (resumed by `sync`), `sync` and `search`
    /// requests and event streams that drop and resume mixed in, sampled every
    /// --sample-s: the server's memory, open files and WAL, and the send→deliver tail, to
    /// show they stay flat.
    Soak {
        /// Pairs of users (two users each).
        #[arg(long, default_value_t = 500)]
        pairs: usize,
        /// Messages per second each user sends.
        #[arg(long, default_value_t = 9.0)]
        rate: f64,
        /// Seconds of load.
        #[arg(long, default_value_t = 1800.0)]
        duration_s: f64,
        /// Seconds between samples.
        #[arg(long, default_value_t = 10.0)]
        sample_s: f64,
        /// Reconnects per second over the fleet (each resumes with `sync`).
        #[arg(long, default_value_t = 5.0)]
        reconnects_per_s: f64,
        /// `sync` requests per second over the fleet.
        #[arg(long, default_value_t = 20.0)]
        syncs_per_s: f64,
        /// `search` requests per second over the fleet.
        #[arg(long, default_value_t = 20.0)]
        searches_per_s: f64,
        /// Users that also hold an event stream (`GET /v1/events`).
        #[arg(long, default_value_t = 100)]
        sse_users: usize,
        /// Event-stream drops per second over those users (each resumes with
        /// `Last-Event-ID`).
        #[arg(long, default_value_t = 2.0)]
        sse_resumes_per_s: f64,
        /// Bytes of each message body.
        #[arg(long, default_value_t = 100)]
        body_bytes: usize,
        /// Handshakes in flight while connecting.
        #[arg(long, default_value_t = 256)]
        concurrency: usize,
        /// The server's SQLite file, to sample its WAL.
        #[arg(long)]
        database: Option<PathBuf>,
        /// Where each sample is written as a JSON line.
        #[arg(long)]
        series: Option<PathBuf>,
    },
    /// Lines of dialogue sent one at a time, alternating between two users.
    Romeo {
        /// Lines to send.
        #[arg(long, default_value_t = romeo::LINES)]
        lines: usize,
    },
    /// Medians of reports saved with `--json` (one file per run), as a Markdown table.
    Median {
        /// The report files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Every mode, small and short, against a server started in this process; fails on
    /// any failed check (never on speed).
    Smoke {
        /// The database of the in-process server (default: a fresh SQLite file).
        #[arg(long)]
        database_url: Option<String>,
    },
}

/// Runs the command line; the exit code is 1 when a run fails or a check does not hold.
#[must_use]
pub fn main() -> ExitCode {
    let args = Args::parse();
    if let Mode::Median { files } = &args.mode {
        return match summary::medians(files) {
            Ok(table) => {
                let _ = write!(std::io::stdout(), "{table}");
                if table.contains("FAILED CHECK") { ExitCode::FAILURE } else { ExitCode::SUCCESS }
            }
            Err(error) => fail(&error.to_string()),
        };
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => return fail(&format!("cannot start the runtime: {error}")),
    };
    match runtime.block_on(execute(&args)) {
        Ok(reports) => {
            let mut out = std::io::stdout().lock();
            let written = if args.json {
                let values: Vec<_> =
                    reports.iter().filter_map(|r| serde_json::to_value(r).ok()).collect();
                let text = if values.len() == 1 {
                    serde_json::to_string_pretty(&values[0])
                } else {
                    serde_json::to_string_pretty(&values)
                };
                writeln!(out, "{}", text.unwrap_or_default())
            } else {
                reports.iter().try_for_each(|report| writeln!(out, "{}", report.table()))
            };
            if written.is_err() {
                return ExitCode::FAILURE;
            }
            if reports.iter().all(Report::passed) {
                ExitCode::SUCCESS
            } else {
                fail("a check failed (see FAIL above)")
            }
        }
        Err(error) => fail(&error.to_string()),
    }
}

fn fail(message: &str) -> ExitCode {
    let _ = writeln!(std::io::stderr(), "messaging-loadgen: {message}");
    ExitCode::FAILURE
}

async fn execute(args: &Args) -> Result<Vec<Report>, Error> {
    if let Mode::Smoke { database_url } = &args.mode {
        return smoke::run(database_url.as_deref()).await;
    }
    let target = Target::new(args.server, &secret(args)?, args.sources);
    let run = Run { server_pid: args.server_pid };
    let report = match &args.mode {
        Mode::Handshakes { connections, concurrency } => {
            handshakes::run(
                &target,
                &run,
                Handshakes { connections: *connections, concurrency: *concurrency },
            )
            .await?
        }
        Mode::Idle { connections, concurrency, settle_s } => {
            let settle = Duration::try_from_secs_f64(*settle_s)?;
            idle::run(
                &target,
                &run,
                Idle { connections: *connections, concurrency: *concurrency, settle },
            )
            .await?
        }
        Mode::Load {
            pairs,
            rate,
            warmup_s,
            duration_s,
            body_bytes,
            concurrency,
            drain_s,
            window,
            send,
            receive,
        } => {
            let load = Load {
                pairs: *pairs,
                rate_per_user: *rate,
                warmup: Duration::try_from_secs_f64(*warmup_s)?,
                duration: Duration::try_from_secs_f64(*duration_s)?,
                body_bytes: *body_bytes,
                concurrency: *concurrency,
                drain: Duration::try_from_secs_f64(*drain_s)?,
                window: *window,
                send: *send,
                receive: *receive,
            };
            sustained::run(&target, &run, load).await?
        }
        Mode::Soak {
            pairs,
            rate,
            duration_s,
            sample_s,
            reconnects_per_s,
            syncs_per_s,
            searches_per_s,
            sse_users,
            sse_resumes_per_s,
            body_bytes,
            concurrency,
            database,
            series,
        } => {
            let soak = Soak {
                pairs: *pairs,
                rate_per_user: *rate,
                duration: Duration::try_from_secs_f64(*duration_s)?,
                sample_every: Duration::try_from_secs_f64(sample_s.max(0.1))?,
                reconnects_per_s: *reconnects_per_s,
                syncs_per_s: *syncs_per_s,
                searches_per_s: *searches_per_s,
                sse_users: *sse_users,
                sse_resumes_per_s: *sse_resumes_per_s,
                body_bytes: *body_bytes,
                concurrency: *concurrency,
                database: database.clone(),
                series: series.clone(),
            };
            soak::run(&target, &run, soak).await?
        }
        Mode::Romeo { lines } => romeo::run(&target, &run, *lines).await?,
        Mode::Smoke { .. } | Mode::Median { .. } => return Err("handled above".into()),
    };
    Ok(vec![report])
}

fn secret(args: &Args) -> Result<Vec<u8>, Error> {
    if let Some(secret) = std::env::var_os("MESSAGING_JWT_SECRET").filter(|s| !s.is_empty()) {
        return Ok(secret.into_encoded_bytes());
    }
    let text = std::fs::read_to_string(&args.jwt_secret_file).map_err(|error| {
        format!(
            "no MESSAGING_JWT_SECRET, and the secret file {} is unreadable ({error}); run \
             from the server's directory or give --jwt-secret-file",
            args.jwt_secret_file.display()
        )
    })?;
    Ok(text.trim().as_bytes().to_vec())
}
