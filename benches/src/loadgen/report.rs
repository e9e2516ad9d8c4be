//! A run's report: figures, the checks of behaviour, what bounded the run, the server it
//! ran against and the CPU both processes used, as a table or as JSON.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::{Map, Value};

use super::Error;
use super::procfs::Process;

/// The server a run measured, as it describes itself.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ServerInfo {
    /// The server's version (`messaging_build_info` of `/metrics`).
    pub version: String,
    /// The store and its durability (`messaging_build_info` of `/metrics`).
    pub store: String,
    /// The `limits` of the server's `hello` (rate limits raised for benchmarking show here).
    pub limits: Value,
}

/// One measured figure.
#[derive(Clone, Debug, Serialize)]
pub struct Figure {
    /// What was measured.
    pub name: String,
    /// The value.
    pub value: f64,
    /// Its unit.
    pub unit: &'static str,
}

/// One check of behaviour (never of speed).
#[derive(Clone, Debug, Serialize)]
pub struct Check {
    /// What must hold.
    pub name: String,
    /// Whether it held.
    pub passed: bool,
    /// The counts behind it.
    pub detail: String,
}

/// CPU time used during the run.
#[derive(Clone, Debug, Serialize)]
pub struct Cpu {
    /// Wall time of the measured part, seconds.
    pub wall_s: f64,
    /// The server's user + system CPU seconds (when its pid was given).
    pub server_s: Option<f64>,
    /// The load generator's user + system CPU seconds.
    pub loadgen_s: f64,
}

/// Measures the CPU both processes use between [`CpuMeter::start`] and [`CpuMeter::stop`].
#[derive(Debug)]
pub struct CpuMeter {
    server: Process,
    began: Instant,
    server_cpu: Option<Duration>,
    own_cpu: Duration,
}

impl CpuMeter {
    /// Starts measuring (`server` may be unknown).
    #[must_use]
    pub fn start(server: Option<u32>) -> Self {
        let server = Process(server);
        let server_cpu = server.0.and_then(|_| server.cpu_time().ok());
        let own_cpu = Process(None).cpu_time().unwrap_or_default();
        Self { server, began: Instant::now(), server_cpu, own_cpu }
    }

    /// The CPU used since `start`.
    #[must_use]
    pub fn stop(&self) -> Cpu {
        let server_s = match (self.server_cpu, self.server.cpu_time().ok()) {
            (Some(before), Some(after)) => Some(after.saturating_sub(before).as_secs_f64()),
            _ => None,
        };
        let own = Process(None).cpu_time().unwrap_or_default().saturating_sub(self.own_cpu);
        Cpu { wall_s: self.began.elapsed().as_secs_f64(), server_s, loadgen_s: own.as_secs_f64() }
    }
}

/// The report of one run.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// The mode that ran.
    pub mode: &'static str,
    /// The server measured.
    pub server: ServerInfo,
    /// The run's parameters.
    pub parameters: Map<String, Value>,
    /// The figures.
    pub figures: Vec<Figure>,
    /// The checks of behaviour.
    pub checks: Vec<Check>,
    /// What bounded the run (the offered load, a limit, the CPU).
    pub bounded_by: String,
    /// CPU time of both processes.
    pub cpu: Cpu,
}

impl Report {
    /// Whether every check passed.
    #[must_use]
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|check| check.passed)
    }

    /// The report as an aligned text table.
    #[must_use]
    pub fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "mode        {}", self.mode);
        let _ = writeln!(out, "server      {} ({})", self.server.version, self.server.store);
        let _ = writeln!(out, "limits      {}", self.server.limits);
        let _ = writeln!(out, "parameters  {}", Value::Object(self.parameters.clone()));
        let width = self.figures.iter().map(|f| f.name.len()).max().unwrap_or(0);
        for figure in &self.figures {
            let _ = writeln!(
                out,
                "  {:width$}  {:>14} {}",
                figure.name,
                format_value(figure.value),
                figure.unit
            );
        }
        for check in &self.checks {
            let verdict = if check.passed { "ok  " } else { "FAIL" };
            let _ = writeln!(out, "  [{verdict}] {} ({})", check.name, check.detail);
        }
        let _ = writeln!(out, "bounded by  {}", self.bounded_by);
        let server_cpu = self
            .cpu
            .server_s
            .map_or_else(|| "unknown (no --server-pid)".to_owned(), |s| format!("{s:.2} s"));
        let _ = writeln!(
            out,
            "cpu         server {server_cpu}, load generator {:.2} s, over {:.2} s wall (2 cores shared)",
            self.cpu.loadgen_s, self.cpu.wall_s
        );
        out
    }

    /// The report as JSON.
    ///
    /// # Errors
    /// Never in practice (every field serializes).
    pub fn json(&self) -> Result<String, Error> {
        Ok(serde_json::to_string_pretty(self)?)
    }
}

fn format_value(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{value:.0}")
    } else if value.abs() >= 100.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.3}")
    }
}

/// A figure.
#[must_use]
pub fn figure(name: impl Into<String>, value: f64, unit: &'static str) -> Figure {
    Figure { name: name.into(), value, unit }
}

/// A check.
#[must_use]
pub fn check(name: impl Into<String>, passed: bool, detail: impl Into<String>) -> Check {
    Check { name: name.into(), passed, detail: detail.into() }
}

/// A run's parameters from a JSON object literal (anything else gives none).
#[must_use]
pub fn parameters(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}
