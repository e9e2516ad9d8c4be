//! The marketplace example as a server: `cargo run --example marketplace` serves it on
//! http://127.0.0.1:8080 with its data in `./marketplace-data` (see `--help`). The app is
//! the `marketplace` library of this package (`marketplace/lib.rs`); this is its `main`.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;
use marketplace::Marketplace;

/// A listing marketplace whose buyers and sellers chat through the messaging library.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// Where to listen.
    #[arg(long, default_value = "127.0.0.1:8080")]
    addr: SocketAddr,
    /// Where the data lives (created if missing): `messaging.db`, the messaging store, and
    /// `marketplace.db`, the app's users and listings.
    #[arg(long, default_value = "marketplace-data", conflicts_with = "temp")]
    data_dir: PathBuf,
    /// Keep the data in a temporary directory, deleted at exit.
    #[arg(long)]
    temp: bool,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let args = Args::parse();
    let temp = if args.temp { Some(tempfile::tempdir()?) } else { None };
    let data_dir = temp.as_ref().map_or(args.data_dir, |dir| dir.path().to_path_buf());
    let market = Marketplace::open(&data_dir).await?;
    let listener = tokio::net::TcpListener::bind(args.addr).await?;
    announce(&format!(
        "marketplace on http://{} (data in {}; Ctrl-C stops)",
        listener.local_addr()?,
        data_dir.display()
    ));
    market
        .serve(listener, async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}

#[allow(clippy::print_stdout)]
fn announce(line: &str) {
    println!("{line}");
}
