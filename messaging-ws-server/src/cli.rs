//! The command line: `serve` (the default), `token`, `migrate` and `move`. Every flag can
//! also be given through the environment variable named in `--help`.
//!
//! Secrets are never flag values (every user of the machine sees those in `ps`): the
//! HS256 secret comes from `--jwt-secret-file` or the environment variable
//! `MESSAGING_JWT_SECRET`, and the database URL, which may hold a password, is never
//! echoed by `--help`.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use messaging_core::transfer::{MoveOptions, Progress};
use messaging_core::{Limits, UserId};
use messaging_store_sqlite::Synchronous;

use crate::admission;
use crate::auth::{self, AuthSettings, Verifier};
use crate::backend::{self, Database, StoreSettings};
use crate::config::Transport;
use crate::http::service_keys::ServiceKeys;
use crate::relocate::{self, MoveRequest};
use crate::secret;
use crate::server::{self, Config};
use crate::webhooks::WebhookSettings;

/// The standalone WebSocket server of the messaging library (protocol v1).
#[derive(Debug, Parser)]
#[command(name = "messaging-ws-server", version, about, args_conflicts_with_subcommands = true)]
pub struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve WebSocket clients (the default when no command is given).
    Serve(Box<ServeArgs>),
    /// Print a token for a user, signed with the server's HS256 secret.
    Token(TokenArgs),
    /// Apply the store's migrations and exit.
    Migrate(StoreArgs),
    /// Move a SQLite database into an empty PostgreSQL database, then check that both
    /// answer alike (stop the server first; see docs/operations.md).
    Move(MoveArgs),
}

/// Where the data is and how tokens are checked (every command).
#[derive(Debug, Clone, Args)]
struct StoreArgs {
    /// `postgres://…` for PostgreSQL (cross-instance delivery); otherwise a SQLite file.
    #[arg(
        long,
        env = "MESSAGING_DATABASE_URL",
        hide_env_values = true,
        default_value = "messaging.db"
    )]
    database_url: String,
    /// A file holding the HS256 secret (surrounding whitespace ignored; keep it mode 0600),
    /// or the secret itself in the environment variable MESSAGING_JWT_SECRET (never a flag
    /// value). With SQLite and no secret nor public key, one is generated into
    /// `<database>.jwt-secret`. Required with PostgreSQL unless a public key is given.
    #[arg(long, env = "MESSAGING_JWT_SECRET_FILE")]
    jwt_secret_file: Option<PathBuf>,
    /// PEM public key (RSA: RS256, EC P-256: ES256) of the host's auth service. HS256 is then
    /// off unless a secret is also given.
    #[arg(long, env = "MESSAGING_JWT_PUBLIC_KEY")]
    jwt_public_key: Option<PathBuf>,
    /// A file of service API keys (one per line, at least 32 bytes; blank lines and `#`
    /// comments skipped), re-read on SIGHUP; `MESSAGING_SERVICE_KEY` adds one more. Without
    /// any key the service routes (`/v1/service/…`) do not exist.
    #[arg(long, env = "MESSAGING_SERVICE_KEY_FILE")]
    service_key_file: Option<PathBuf>,
    /// Required `iss` claim.
    #[arg(long, env = "MESSAGING_JWT_ISSUER")]
    jwt_issuer: Option<String>,
    /// Required `aud` claim.
    #[arg(long, env = "MESSAGING_JWT_AUDIENCE")]
    jwt_audience: Option<String>,
    #[command(flatten)]
    logs: LogArgs,
}

/// How the command logs (every command).
#[derive(Debug, Clone, Args)]
struct LogArgs {
    /// Log filter (`info`, `debug`, `messaging_ws_server=trace`, …).
    #[arg(long, env = "MESSAGING_LOG", default_value = "info")]
    log_level: String,
    /// Logs as JSON lines.
    #[arg(long, env = "MESSAGING_LOG_JSON")]
    log_json: bool,
}

#[derive(Debug, Clone, Args)]
struct MoveArgs {
    /// The SQLite database to move (it must exist, and no server may be writing to it).
    #[arg(long)]
    from: PathBuf,
    /// The PostgreSQL database to move into: `postgres://…`, empty (the command applies
    /// the migrations), or holding a move that stopped halfway, with `--resume`.
    #[arg(long, env = "MESSAGING_MOVE_TO", hide_env_values = true)]
    to: String,
    /// Go on with a move into `--to` that stopped halfway (killed, or a failure): it
    /// continues from its last page, and ends as a move never stopped would.
    #[arg(long)]
    resume: bool,
    /// Records per page (one transaction of the target each).
    #[arg(long, default_value_t = 1_000, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    page: u32,
    /// Only check a finished move (the check after a move that was cut short): read both
    /// databases back and compare them.
    #[arg(long, conflicts_with = "resume")]
    check: bool,
    #[command(flatten)]
    logs: LogArgs,
}

#[derive(Debug, Clone, Args)]
struct ServeArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// Address to listen on.
    #[arg(long, env = "MESSAGING_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Largest frame a client may send; larger closes the connection with 1009.
    #[arg(long, env = "MESSAGING_MAX_FRAME_BYTES", default_value_t = 65_536)]
    max_frame_bytes: usize,
    /// Largest message body (UTF-8 bytes); larger is `too_large`.
    #[arg(long, env = "MESSAGING_MAX_BODY_BYTES", default_value_t = 8_192)]
    max_body_bytes: usize,
    /// Most connections at once; past it, upgrades get HTTP 503.
    #[arg(long, env = "MESSAGING_MAX_CONNECTIONS", default_value_t = 20_000)]
    max_connections: usize,
    /// Requests per second per connection (token bucket refill).
    #[arg(long, env = "MESSAGING_OPS_PER_S", default_value_t = 100)]
    ops_per_s: u32,
    /// Requests a connection may burst (token bucket capacity).
    #[arg(long, env = "MESSAGING_OPS_BURST", default_value_t = 200)]
    ops_burst: u32,
    /// Frames waiting for a slow reader before it is closed with 4000 `lagged`.
    #[arg(long, env = "MESSAGING_MAX_QUEUE_FRAMES", default_value_t = 1_024)]
    max_queue_frames: usize,
    /// Seconds between pings; a peer silent for two intervals is dropped.
    #[arg(long, env = "MESSAGING_HEARTBEAT_S", default_value_t = 25)]
    heartbeat_s: u64,
    /// Seconds a client has to send its HTTP request headers.
    #[arg(long, env = "MESSAGING_HANDSHAKE_TIMEOUT_S", default_value_t = 10)]
    handshake_timeout_s: u64,
    /// How long receivers show a typing indicator (ms).
    #[arg(long, env = "MESSAGING_TYPING_EXPIRES_MS", default_value_t = 6_000)]
    typing_expires_ms: u64,
    /// SQLite fsync policy: `full` (durable against power loss) or `normal`.
    #[arg(long, env = "MESSAGING_SQLITE_SYNCHRONOUS", value_enum, default_value_t = SyncMode::Full)]
    sqlite_synchronous: SyncMode,
    /// PostgreSQL: the most connections this instance opens to the database for requests
    /// and writes (5 or more: the two writers and three for reads); its
    /// listener takes one more. Keep `instances × (this + 1)` under the database's
    /// `max_connections`.
    #[arg(
        long,
        env = "MESSAGING_PG_POOL_SIZE",
        default_value_t = 16,
        value_parser = clap::value_parser!(u32).range(5..=10_000)
    )]
    pg_pool_size: u32,
    /// The most a request waits for its answer (ms); past it: `unavailable`.
    #[arg(long, env = "MESSAGING_ANSWER_TIMEOUT_MS", default_value_t = 5_000)]
    answer_timeout_ms: u64,
    /// The most a reply page's encoded items may take (bytes); a page that would pass it
    /// holds fewer items and says there is more.
    #[arg(long, env = "MESSAGING_REPLY_BUDGET_BYTES", default_value_t = 1_048_576)]
    reply_budget_bytes: usize,
    /// Outbound bytes waiting for a slow reader before it is closed with 4000 `lagged`
    /// (at least twice --reply-budget-bytes).
    #[arg(long, env = "MESSAGING_MAX_QUEUE_BYTES", default_value_t = 4_194_304)]
    max_queue_bytes: usize,
    /// Sessions one user may hold on this instance; past it, upgrades get HTTP 503.
    #[arg(long, env = "MESSAGING_MAX_SESSIONS_PER_USER", default_value_t = 32)]
    max_sessions_per_user: usize,
    /// A user's searches per second, across their connections (token bucket refill).
    #[arg(long, env = "MESSAGING_SEARCH_PER_S", default_value_t = 5)]
    search_per_s: u32,
    /// A user's search burst (token bucket capacity).
    #[arg(long, env = "MESSAGING_SEARCH_BURST", default_value_t = 20)]
    search_burst: u32,
    /// The most users one user may block; `block` beyond it is `conflict`.
    #[arg(long, env = "MESSAGING_MAX_BLOCKS_PER_USER", default_value_t = 10_000)]
    max_blocks_per_user: usize,
    /// Connections from one address still sending their request headers; past it, new
    /// ones from that address are closed at once (default: no cap). Trusted proxies are
    /// not counted.
    #[arg(long, env = "MESSAGING_MAX_PENDING_PER_IP")]
    max_pending_per_ip: Option<usize>,
    /// A proxy whose `X-Forwarded-For` names the client (repeatable; the environment
    /// variable takes a comma-separated list). Others' `X-Forwarded-For` is ignored.
    #[arg(long = "trusted-proxy", env = "MESSAGING_TRUSTED_PROXY", value_delimiter = ',')]
    trusted_proxy: Vec<IpAddr>,
    /// An origin whose browser pages may call the HTTP routes, as browsers send it
    /// (`https://app.example`; repeatable; the environment variable takes a
    /// comma-separated list). Without it no CORS headers are sent.
    #[arg(long = "cors-origin", env = "MESSAGING_CORS_ORIGIN", value_delimiter = ',')]
    cors_origin: Vec<String>,
    /// POST durable events to this URL (docs/protocol.md "Webhooks"), signed with the
    /// secret of --webhook-secret-file or MESSAGING_WEBHOOK_SECRET (one of them required).
    #[arg(long, env = "MESSAGING_WEBHOOK_URL")]
    webhook_url: Option<String>,
    /// The webhook secret's file (at least 16 bytes; surrounding whitespace trimmed).
    #[arg(long, env = "MESSAGING_WEBHOOK_SECRET_FILE")]
    webhook_secret_file: Option<PathBuf>,
    /// Only these durable events (comma-separated names, e.g.
    /// `message.created,message.deleted`); default: all.
    #[arg(long = "webhook-events", env = "MESSAGING_WEBHOOK_EVENTS", value_delimiter = ',')]
    webhook_events: Vec<String>,
    /// Events per webhook request at most (1 to 1,000).
    #[arg(long, env = "MESSAGING_WEBHOOK_BATCH", default_value_t = 100)]
    webhook_batch: usize,
}

/// The webhook settings the flags ask for (`None`: webhooks off).
fn webhook_settings(args: &ServeArgs) -> Result<Option<WebhookSettings>, String> {
    let from_env = std::env::var("MESSAGING_WEBHOOK_SECRET").ok().filter(|s| !s.is_empty());
    let secret = match (&args.webhook_secret_file, from_env) {
        (Some(path), _) => Some(
            secret::read(path)
                .map_err(|e| format!("--webhook-secret-file {}: {e}", path.display()))?,
        ),
        (None, Some(secret)) => Some(secret.into_bytes()),
        (None, None) => None,
    };
    let Some(url) = &args.webhook_url else {
        if secret.is_some() || !args.webhook_events.is_empty() {
            return Err("a webhook secret or --webhook-events without --webhook-url".into());
        }
        return Ok(None);
    };
    let secret = secret
        .ok_or("--webhook-url needs a secret: --webhook-secret-file or MESSAGING_WEBHOOK_SECRET")?;
    let mut settings = WebhookSettings::new(url, &secret)
        .and_then(|s| s.batch(args.webhook_batch))
        .map_err(|e| e.to_string())?;
    if !args.webhook_events.is_empty() {
        settings = settings.events(&args.webhook_events).map_err(|e| e.to_string())?;
    }
    Ok(Some(settings))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum SyncMode {
    Full,
    Normal,
}

#[derive(Debug, Clone, Args)]
struct TokenArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// The user (a UUID).
    #[arg(long)]
    user: uuid::Uuid,
    /// How long the token is valid (`30m`, `1h`, `7d`).
    #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
    ttl: Duration,
}

/// Parses the command line and runs it.
#[must_use]
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let command = cli.command.unwrap_or_else(|| Command::Serve(Box::new(cli.serve)));
    let logs = match &command {
        Command::Serve(args) => &args.store.logs,
        Command::Token(args) => &args.store.logs,
        Command::Migrate(args) => &args.logs,
        Command::Move(args) => &args.logs,
    };
    init_logs(logs);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => return fail(&format!("cannot start the runtime: {error}")),
    };
    let outcome = runtime.block_on(async {
        match command {
            Command::Serve(args) => serve(*args).await,
            Command::Token(args) => token(&args),
            Command::Migrate(args) => migrate(&args).await,
            Command::Move(args) => move_database(&args).await,
        }
    });
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => fail(&message),
    }
}

fn fail(message: &str) -> ExitCode {
    tracing::error!("{message}");
    #[allow(clippy::print_stderr, reason = "the error is the program's last word")]
    {
        eprintln!("error: {message}");
    }
    ExitCode::FAILURE
}

fn init_logs(args: &LogArgs) {
    let filter = tracing_subscriber::EnvFilter::try_new(&args.log_level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    let _ = if args.log_json { builder.json().try_init() } else { builder.try_init() };
}

/// Re-reads the service keys on every SIGHUP (a failed read keeps the keys in force).
fn reload_on_hangup(keys: Arc<ServiceKeys>) {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut hangups) = signal(SignalKind::hangup()) else {
        tracing::warn!("SIGHUP cannot be caught here: service keys are read at start only");
        return;
    };
    tokio::spawn(async move {
        while hangups.recv().await.is_some() {
            match keys.reload() {
                Ok(count) => tracing::info!(count, "service keys re-read"),
                Err(error) => tracing::warn!(%error, "service keys not re-read; the old ones stay"),
            }
        }
    });
}

async fn serve(args: ServeArgs) -> Result<(), String> {
    let database = Database::parse(&args.store.database_url).map_err(|e| e.to_string())?;
    let limits = Limits::default()
        .with_max_body_bytes(args.max_body_bytes)
        .with_max_queue_frames(args.max_queue_frames)
        .with_typing_expires_ms(args.typing_expires_ms)
        .with_reply_budget_bytes(args.reply_budget_bytes)
        .with_max_blocks_per_user(args.max_blocks_per_user);
    let transport = Transport::default()
        .max_frame_bytes(args.max_frame_bytes)
        .max_connections(connections_allowed(args.max_connections))
        .rate_limit(args.ops_per_s, args.ops_burst)
        .heartbeat(Duration::from_secs(args.heartbeat_s))
        .handshake_timeout(Duration::from_secs(args.handshake_timeout_s.max(1)))
        .answer_timeout(Duration::from_millis(args.answer_timeout_ms))
        .max_queue_bytes(args.max_queue_bytes)
        .max_sessions_per_user(args.max_sessions_per_user)
        .search_rate(args.search_per_s, args.search_burst)
        .max_pending_per_ip(args.max_pending_per_ip)
        .trusted_proxies(args.trusted_proxy.clone())
        .cors_origins(args.cors_origin.clone());
    transport.check(limits.reply_budget_bytes)?;
    let auth = auth_settings(&args.store, &database, Purpose::Serve)?;
    let verifier = Verifier::new(&auth).map_err(|e| e.to_string())?;
    let webhooks = webhook_settings(&args)?;
    let settings = StoreSettings {
        sqlite_synchronous: match args.sqlite_synchronous {
            SyncMode::Full => Synchronous::Full,
            SyncMode::Normal => Synchronous::Normal,
        },
        limits,
        answer_timeout: Duration::from_millis(args.answer_timeout_ms.max(1)),
        pg_pool_size: args.pg_pool_size,
    };
    let opened = backend::open(&database, &settings)
        .await
        .map_err(|e| format!("opening {}: {e}", database.describe()))?;
    tracing::info!(store = %database.describe(), "store open");
    let listener = listen(args.listen).map_err(|e| format!("listening on {}: {e}", args.listen))?;
    let service_keys = Arc::new(ServiceKeys::load(
        args.store.service_key_file.as_deref(),
        std::env::var("MESSAGING_SERVICE_KEY").ok().as_deref(),
    )?);
    reload_on_hangup(service_keys.clone());
    let config = Config {
        messenger: opened.messenger.clone(),
        service_keys,
        verifier,
        transport,
        store_label: opened.store_label.clone(),
        webhooks,
    };
    server::run(listener, config, shutdown_signal()).await.map_err(|e| e.to_string())?;
    opened.close().await;
    Ok(())
}

/// Raises the open file limit to its hard limit and lowers `max_connections` to what the
/// limit can hold (logged at warn when it does).
fn connections_allowed(max_connections: usize) -> usize {
    let Some((limit, before)) = admission::raise_fd_limit() else { return max_connections };
    if limit > before {
        tracing::info!("open file limit raised from {before} to {limit}");
    }
    let allowed = admission::clamp_connections(max_connections, limit);
    if allowed < max_connections {
        tracing::warn!(
            "--max-connections {max_connections} lowered to {allowed}: the open file limit is \
             {limit}, of which {} are kept for the store, the listener and the runtime \
             (raise the hard limit, e.g. `ulimit -Hn` or systemd's LimitNOFILE)",
            admission::FD_HEADROOM
        );
    }
    allowed
}

fn token(args: &TokenArgs) -> Result<(), String> {
    let database = Database::parse(&args.store.database_url).map_err(|e| e.to_string())?;
    let auth = auth_settings(&args.store, &database, Purpose::Token)?;
    let Some(secret) = &auth.secret else {
        return Err("`token` signs with the HS256 secret: give MESSAGING_JWT_SECRET or \
                    --jwt-secret-file"
            .into());
    };
    let token = auth::mint(secret, UserId::from(args.user), args.ttl, &auth)
        .map_err(|e| format!("signing: {e}"))?;
    #[allow(clippy::print_stdout, reason = "the token is the command's output")]
    {
        println!("{token}");
    }
    Ok(())
}

async fn migrate(args: &StoreArgs) -> Result<(), String> {
    let database = Database::parse(&args.database_url).map_err(|e| e.to_string())?;
    backend::migrate(&database)
        .await
        .map_err(|e| format!("migrating {}: {e}", database.describe()))?;
    tracing::info!(store = %database.describe(), "migrations applied");
    Ok(())
}

/// `move`: copies with progress (once a second, and at the end of each section), then
/// checks; differences fail the command. `--check` runs the check alone.
async fn move_database(args: &MoveArgs) -> Result<(), String> {
    let to = Database::parse(&args.to).map_err(|e| e.to_string())?;
    let Database::Postgres(url) = &to else {
        return Err("--to: a move goes into PostgreSQL (postgres://…)".into());
    };
    let page = args.page as usize;
    if !args.check {
        copy(args, url, &to).await?;
    }
    tracing::info!(from = %args.from.display(), to = %to.describe(), "checking");
    let checked = relocate::check_database(&args.from, url, page).await.map_err(|e| {
        format!(
            "checking {}: {e} (the move itself finished: run the same command with --check \
             instead of --resume to check it again)",
            to.describe()
        )
    })?;
    let verified = &checked.verified;
    if !verified.is_identical() {
        for mismatch in &verified.mismatches {
            tracing::error!(
                what = %mismatch.what,
                source = %mismatch.source,
                target = %mismatch.target,
                "the stores differ"
            );
        }
        return Err(format!(
            "the check found {} differences between the SQLite database and PostgreSQL (the \
             first ones are logged above); do not serve from PostgreSQL",
            verified.differences
        ));
    }
    let counts: Vec<String> =
        verified.sections.iter().map(|(section, n)| format!("{} {n}", section.name())).collect();
    tracing::info!(
        users = verified.users,
        contexts = verified.contexts,
        searches = verified.searches,
        took = format!("{:.1} s", checked.took.as_secs_f64()),
        "verified: {}; every listing's conversations, a search in every conversation, and \
         every user's conversations, unread totals and events, read back alike from both",
        counts.join(", ")
    );
    Ok(())
}

/// The copy of `move`, with its progress.
async fn copy(args: &MoveArgs, url: &str, to: &Database) -> Result<(), String> {
    let request = MoveRequest {
        from: args.from.clone(),
        to: url.to_owned(),
        options: MoveOptions { resume: args.resume, page: args.page as usize },
    };
    tracing::info!(from = %args.from.display(), to = %to.describe(), resume = args.resume, "moving");
    let mut shown: Option<(messaging_core::transfer::Section, std::time::Instant)> = None;
    let mut progress = |p: &Progress| {
        let due = shown
            .is_none_or(|(section, at)| section != p.section || at.elapsed() >= PROGRESS_EVERY);
        if due || p.copied == p.total {
            tracing::info!(
                section = p.section.name(),
                copied = p.copied,
                total = p.total,
                rate = format!("{:.0}/s", p.rate()),
                "moving"
            );
            shown = Some((p.section, std::time::Instant::now()));
        }
    };
    let report = relocate::move_database(&request, &mut progress).await.map_err(|e| {
        // A failure midway leaves every page written so far, with its checkpoint.
        let hint = if e.code() == "unavailable" || e.is_backend() {
            " (what was copied stays: run the same command with --resume to go on)"
        } else {
            ""
        };
        format!("moving into {}: {e}{hint}", to.describe())
    })?;
    let counts: Vec<String> =
        report.sections.iter().map(|(section, n)| format!("{} {n}", section.name())).collect();
    tracing::info!(
        head = report.head,
        copied = report.copied,
        took = format!("{:.1} s", report.took.as_secs_f64()),
        resumed = report.resumed_from.is_some(),
        "moved: {}",
        counts.join(", ")
    );
    Ok(())
}

/// How often `move` reports its progress.
const PROGRESS_EVERY: Duration = Duration::from_secs(1);

#[derive(Clone, Copy, PartialEq, Eq)]
enum Purpose {
    Serve,
    Token,
}

/// The keys from the flags; with SQLite and none given, the generated secret.
fn auth_settings(
    args: &StoreArgs,
    database: &Database,
    purpose: Purpose,
) -> Result<AuthSettings, String> {
    let public_key_pem = args
        .jwt_public_key
        .as_ref()
        .map(|path| {
            std::fs::read(path)
                .map_err(|e| format!("reading the public key {}: {e}", path.display()))
        })
        .transpose()?;
    let mut secret = given_secret(args)?;
    if secret.is_none() && public_key_pem.is_none() {
        match database {
            Database::Sqlite(path) => {
                let file = secret::path_beside(path);
                let (generated, created) = secret::load_or_create(&file)
                    .map_err(|e| format!("the JWT secret file {}: {e}", file.display()))?;
                if !created {
                    warn_if_readable_by_others(&file);
                }
                if created || purpose == Purpose::Serve {
                    tracing::info!(
                        "JWT secret (HS256) {} {}; mint a token with: messaging-ws-server token --user <uuid>{}",
                        if created { "generated into" } else { "read from" },
                        file.display(),
                        database_flag(args),
                    );
                }
                secret = Some(generated);
            }
            Database::Postgres(_) => {
                return Err("with PostgreSQL, give MESSAGING_JWT_SECRET, --jwt-secret-file or \
                            --jwt-public-key (every instance must verify the same tokens)"
                    .into());
            }
        }
    }
    Ok(AuthSettings {
        secret,
        public_key_pem,
        issuer: args.jwt_issuer.clone(),
        audience: args.jwt_audience.clone(),
    })
}

/// The environment variable holding the HS256 secret itself.
const SECRET_VARIABLE: &str = "MESSAGING_JWT_SECRET";

/// The secret from `--jwt-secret-file` or `MESSAGING_JWT_SECRET` (an empty variable counts
/// as unset); both at once is ambiguous, so refused.
fn given_secret(args: &StoreArgs) -> Result<Option<Vec<u8>>, String> {
    let from_env = std::env::var_os(SECRET_VARIABLE).filter(|value| !value.is_empty());
    match (&args.jwt_secret_file, from_env) {
        (Some(_), Some(_)) => Err(format!(
            "the JWT secret is given twice: use either {SECRET_VARIABLE} or --jwt-secret-file"
        )),
        (Some(path), None) => {
            let secret = secret::read(path)
                .map_err(|e| format!("the JWT secret file {}: {e}", path.display()))?;
            warn_if_readable_by_others(path);
            Ok(Some(secret))
        }
        (None, Some(value)) => Ok(Some(value.into_encoded_bytes())),
        (None, None) => Ok(None),
    }
}

/// Warns when a secret file may be read by group or others.
fn warn_if_readable_by_others(path: &Path) {
    match secret::loose_permissions(path) {
        Ok(Some(mode)) => tracing::warn!(
            "the JWT secret file {} is readable by group or others (mode {mode:o}); \
             restrict it: chmod 600 {}",
            path.display(),
            path.display()
        ),
        Ok(None) => {}
        Err(error) => tracing::warn!(%error, "cannot read the mode of {}", path.display()),
    }
}

/// `--database-url …` when it is not the default (so the printed command finds the file).
fn database_flag(args: &StoreArgs) -> String {
    if args.database_url == "messaging.db" {
        String::new()
    } else {
        format!(" --database-url {}", args.database_url)
    }
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(signal) => signal,
                Err(error) => {
                    tracing::warn!(%error, "cannot listen for SIGTERM; Ctrl-C only");
                    let _ = interrupt.await;
                    return;
                }
            };
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
    tracing::info!("shutdown requested");
}

/// Connections the kernel may hold for `accept` (tokio's default is 1,024): a burst of
/// connects larger than that would wait for SYN retransmits (one second and more).
const LISTEN_BACKLOG: u32 = 4096;

/// A listener on `address` (address reuse on, as servers restart on the same port).
fn listen(address: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = match address {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.bind(address)?;
    socket.listen(LISTEN_BACKLOG)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn serve_is_the_default_and_flags_parse() {
        let cli = Cli::try_parse_from(["messaging-ws-server", "--listen", "127.0.0.1:0"]).unwrap();
        assert!(cli.command.is_none());
        assert_eq!(cli.serve.listen.port(), 0);
        let cli = Cli::try_parse_from([
            "messaging-ws-server",
            "token",
            "--user",
            "0190b5a0-0000-7000-8000-000000000001",
            "--ttl",
            "30m",
        ])
        .unwrap();
        assert!(
            matches!(cli.command, Some(Command::Token(TokenArgs { ttl, .. })) if ttl == Duration::from_secs(1800))
        );
        assert!(Cli::try_parse_from(["messaging-ws-server", "token", "--user", "nope"]).is_err());
        let pool =
            |size: &str| Cli::try_parse_from(["messaging-ws-server", "--pg-pool-size", size]);
        assert_eq!(pool("40").unwrap().serve.pg_pool_size, 40);
        assert!(pool("4").is_err(), "below the writers, the feed and two for requests");
    }

    #[test]
    fn admission_flags_parse_and_secrets_are_not_flags() {
        let cli = Cli::try_parse_from([
            "messaging-ws-server",
            "--trusted-proxy",
            "10.0.0.1",
            "--trusted-proxy",
            "::1",
            "--max-pending-per-ip",
            "4",
            "--answer-timeout-ms",
            "250",
            "--max-blocks-per-user",
            "7",
        ])
        .unwrap();
        let serve = cli.serve;
        assert_eq!(
            serve.trusted_proxy,
            ["10.0.0.1".parse::<IpAddr>().unwrap(), "::1".parse().unwrap()]
        );
        assert_eq!(serve.max_pending_per_ip, Some(4));
        assert_eq!((serve.answer_timeout_ms, serve.max_blocks_per_user), (250, 7));
        assert_eq!(
            (serve.max_sessions_per_user, serve.search_per_s, serve.search_burst),
            (32, 5, 20)
        );
        assert_eq!((serve.reply_budget_bytes, serve.max_queue_bytes), (1_048_576, 4_194_304));
        assert!(Cli::try_parse_from(["messaging-ws-server", "--jwt-secret", "x"]).is_err());
    }
}
