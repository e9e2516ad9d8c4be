//! `messaging-loadgen`: drives a running `messaging-ws-server` over loopback the way its
//! users would, speaking docs/protocol.md, and reports what users compare servers by:
//! handshakes per second, server memory per idle connection, sustained durable messages
//! per second with send→deliver latency (sending over WebSocket or HTTP, receiving over
//! WebSocket or server-sent events), and the "Romeo & Juliet" sequential exercise.
//!
//! Every report also carries the checks of behaviour (nothing lost, nothing repeated,
//! every connection held), what bounded the run, the server's own description and the CPU
//! time of both processes, which share the machine.

pub mod cli;
pub mod client;
mod driver;
pub mod fleet;
pub mod handshakes;
pub mod http_client;
pub mod idle;
pub mod procfs;
pub mod report;
pub mod romeo;
pub mod server_info;
pub mod smoke;
pub mod soak;
pub mod sse;
pub mod summary;
pub mod sustained;

use report::CpuMeter;

/// The load generator's error: anything that stops a run, as text for the operator.
pub type Error = Box<dyn std::error::Error + Send + Sync>;

/// Connections the load generator keeps for itself (stdio, the runtime, the metrics
/// request) below its open-file limit.
const RESERVED_FILES: u64 = 64;

/// What every mode needs besides its parameters.
#[derive(Clone, Copy, Debug)]
pub struct Run {
    /// The server's process id, to read its memory and CPU time.
    pub server_pid: Option<u32>,
}

/// A connection count after the machine's limits.
#[derive(Clone, Debug)]
pub struct Bounded {
    /// Connections the run may open.
    pub count: usize,
    /// Whether the limit lowered the asked count.
    pub clamped: bool,
    /// What bounds the count, for the report.
    pub bounded_by: String,
}

impl Run {
    /// Starts measuring CPU time.
    #[must_use]
    pub fn cpu(&self) -> CpuMeter {
        CpuMeter::start(self.server_pid)
    }

    /// Waits until the server is idle (under 5 % of a core over 300 ms, at most 60 s), so
    /// a mode does not measure the tail of the previous one (a mass disconnect's writes).
    pub async fn quiesce(&self) {
        let Some(pid) = self.server_pid else { return };
        let server = procfs::Process(Some(pid));
        let window = std::time::Duration::from_millis(300);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while std::time::Instant::now() < deadline {
            let Ok(before) = server.cpu_time() else { return };
            tokio::time::sleep(window).await;
            let Ok(after) = server.cpu_time() else { return };
            if after.saturating_sub(before) * 20 < window {
                return;
            }
        }
    }

    /// `asked` connections, or fewer when this process's open-file limit cannot hold them.
    #[must_use]
    pub fn bound_connections(&self, asked: usize) -> Bounded {
        let limit = procfs::open_file_limit().unwrap_or(1024);
        let room = usize::try_from(limit.saturating_sub(RESERVED_FILES)).unwrap_or(usize::MAX);
        if asked > room {
            Bounded {
                count: room,
                clamped: true,
                bounded_by: format!(
                    "the load generator's open-file limit ({limit}): {room} of the {asked} connections asked"
                ),
            }
        } else {
            Bounded {
                count: asked,
                clamped: false,
                bounded_by: format!("the {asked} connections asked"),
            }
        }
    }
}

/// A histogram of durations in microseconds, 1 µs to 10 minutes, 3 significant digits
/// (values above are counted at 10 minutes).
///
/// # Errors
/// Never in practice (the bounds are valid).
pub fn micros_histogram() -> Result<hdrhistogram::Histogram<u64>, Error> {
    Ok(hdrhistogram::Histogram::new_with_bounds(1, 600_000_000, 3)?)
}

/// Microseconds as milliseconds, to 0.01 ms.
#[must_use]
pub fn micros_to_ms(micros: u64) -> f64 {
    (micros as f64 / 10.0).round() / 100.0
}
