//! The soak's samples: the server's memory, open files and WAL, and the interval's
//! counters and latencies, every interval; and how flat the series came out.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;

use super::Soak;
use super::shared::{Latencies, Shared};
use crate::loadgen::procfs::Process;
use crate::loadgen::report::{Figure, figure};
use crate::loadgen::{Run, micros_to_ms};

/// One sample of the run.
#[derive(Clone, Debug, Serialize)]
pub struct Sample {
    /// Seconds since the load started.
    pub t_s: f64,
    /// The server's resident memory, KiB.
    pub rss_kib: Option<u64>,
    /// Cores the server used in the interval (its CPU seconds per second).
    pub server_cores: Option<f64>,
    /// Cores the load generator used in the interval.
    pub loadgen_cores: Option<f64>,
    /// Cores each of the server's threads used in the interval, by thread name (a pool's
    /// threads summed; the SQLite store's are `sqlite-writer`, `sqlite-search` and
    /// `sqlite-ckpt`, tokio's `tokio-rt-worker`).
    pub thread_cores: BTreeMap<String, f64>,
    /// Bytes of the SQLite database file (it grows with every message).
    pub db_bytes: Option<u64>,
    /// The server's open files (sockets included).
    pub open_files: Option<u64>,
    /// Bytes of the SQLite WAL.
    pub wal_bytes: Option<u64>,
    /// Messages acknowledged per second in the interval.
    pub stored_per_s: f64,
    /// Live `message.created` pushes per second in the interval.
    pub delivered_per_s: f64,
    /// Send→deliver of the interval's live pushes, ms.
    pub deliver_p50_ms: f64,
    /// Same, p99.
    pub deliver_p99_ms: f64,
    /// Same, p99.9.
    pub deliver_p999_ms: f64,
    /// Same, max.
    pub deliver_max_ms: f64,
    /// `search` round trip p99 in the interval, ms.
    pub search_p99_ms: f64,
    /// Reconnects, `sync` requests, searches and stream resumes in the interval.
    pub reconnects: u64,
    /// See `reconnects`.
    pub syncs: u64,
    /// See `reconnects`.
    pub searches: u64,
    /// See `reconnects`.
    pub sse_resumes: u64,
    /// Errors so far (failed sends, requests, reconnects, gaps).
    pub errors: u64,
}

/// Samples the server and the interval's counters every `every` until the end.
pub(super) async fn sampler(shared: Arc<Shared>, run: Run, params: Soak) -> Vec<Sample> {
    let server = Process(run.server_pid);
    let wal = params.database.as_ref().map(|db| {
        let mut name = db.as_os_str().to_owned();
        name.push("-wal");
        PathBuf::from(name)
    });
    let mut series_file = params.series.as_ref().and_then(|path| std::fs::File::create(path).ok());
    let mut samples = Vec::new();
    let started = Instant::now();
    let mut next = started + params.sample_every;
    let mut last = (0_u64, 0_u64);
    let loadgen = Process(None);
    let mut last_cpu = (server.cpu_time().ok(), loadgen.cpu_time().ok());
    let mut last_threads = server_threads(run.server_pid);
    eprintln!(
        "{:>7} {:>9} {:>5} {:>5} {:>6} {:>6} {:>10} {:>8} {:>8} {:>8} {:>8} {:>8} {:>9} {:>4} {:>5} {:>5} {:>4} {:>5}",
        "t_s",
        "rss_kib",
        "srv",
        "gen",
        "db_mb",
        "fds",
        "wal_bytes",
        "stored",
        "deliv",
        "p50_ms",
        "p99_ms",
        "p999_ms",
        "search99",
        "reco",
        "syncs",
        "srch",
        "sse",
        "errs"
    );
    while next <= shared.stop + Duration::from_millis(10) {
        tokio::time::sleep_until(next.into()).await;
        let elapsed = params.sample_every.as_secs_f64();
        next += params.sample_every;
        let fresh = Latencies::new().ok();
        let latencies = match (shared.latencies.lock(), fresh) {
            (Ok(mut held), Some(fresh)) => Some(std::mem::replace(&mut *held, fresh)),
            _ => None,
        };
        let acked = shared.counters.acked.load(Ordering::Relaxed);
        let delivered = shared.counters.delivered.load(Ordering::Relaxed);
        let q = |h: &Histogram<u64>, q: f64| micros_to_ms(h.value_at_quantile(q));
        let cpu = (server.cpu_time().ok(), loadgen.cpu_time().ok());
        let cores = |now: Option<Duration>, before: Option<Duration>| {
            Some(((now?.saturating_sub(before?)).as_secs_f64() / elapsed * 100.0).round() / 100.0)
        };
        let threads = server_threads(run.server_pid);
        let thread_cores = threads
            .iter()
            .map(|(name, now)| {
                let before = last_threads.get(name).copied().unwrap_or(Duration::ZERO);
                (name.clone(), cores(Some(*now), Some(before)).unwrap_or(0.0))
            })
            .collect();
        let sample = Sample {
            t_s: (started.elapsed().as_secs_f64() * 10.0).round() / 10.0,
            rss_kib: server.rss_kib().ok(),
            server_cores: cores(cpu.0, last_cpu.0),
            loadgen_cores: cores(cpu.1, last_cpu.1),
            thread_cores,
            db_bytes: params
                .database
                .as_ref()
                .and_then(|db| std::fs::metadata(db).ok())
                .map(|m| m.len()),
            open_files: open_files(run.server_pid),
            wal_bytes: wal.as_ref().and_then(|path| std::fs::metadata(path).ok()).map(|m| m.len()),
            stored_per_s: ((acked - last.0) as f64 / elapsed).round(),
            delivered_per_s: ((delivered - last.1) as f64 / elapsed).round(),
            deliver_p50_ms: latencies.as_ref().map_or(0.0, |l| q(&l.deliver_us, 0.5)),
            deliver_p99_ms: latencies.as_ref().map_or(0.0, |l| q(&l.deliver_us, 0.99)),
            deliver_p999_ms: latencies.as_ref().map_or(0.0, |l| q(&l.deliver_us, 0.999)),
            deliver_max_ms: latencies.as_ref().map_or(0.0, |l| micros_to_ms(l.deliver_us.max())),
            search_p99_ms: latencies.as_ref().map_or(0.0, |l| q(&l.search_us, 0.99)),
            reconnects: shared.counters.reconnects.swap(0, Ordering::Relaxed),
            syncs: shared.counters.syncs.swap(0, Ordering::Relaxed),
            searches: shared.counters.searches.swap(0, Ordering::Relaxed),
            sse_resumes: shared.counters.sse_resumes.swap(0, Ordering::Relaxed),
            errors: shared.counters.errors.load(Ordering::Relaxed),
        };
        last = (acked, delivered);
        last_cpu = cpu;
        last_threads = threads;
        let show = |v: Option<u64>| v.map_or_else(|| "-".to_owned(), |v| v.to_string());
        eprintln!(
            "{:>7.1} {:>9} {:>5} {:>5} {:>6} {:>6} {:>10} {:>8} {:>8} {:>8.2} {:>8.2} {:>8.2} {:>9.2} {:>4} {:>5} {:>5} {:>4} {:>5}",
            sample.t_s,
            show(sample.rss_kib),
            sample.server_cores.map_or_else(|| "-".to_owned(), |c| format!("{c:.2}")),
            sample.loadgen_cores.map_or_else(|| "-".to_owned(), |c| format!("{c:.2}")),
            sample.db_bytes.map_or_else(|| "-".to_owned(), |b| (b >> 20).to_string()),
            show(sample.open_files),
            show(sample.wal_bytes),
            sample.stored_per_s,
            sample.delivered_per_s,
            sample.deliver_p50_ms,
            sample.deliver_p99_ms,
            sample.deliver_p999_ms,
            sample.search_p99_ms,
            sample.reconnects,
            sample.syncs,
            sample.searches,
            sample.sse_resumes,
            sample.errors
        );
        if let Some(file) = series_file.as_mut()
            && let Ok(line) = serde_json::to_string(&sample)
        {
            let _ = writeln!(file, "{line}");
        }
        samples.push(sample);
    }
    samples
}

/// The server's CPU time by thread name; empty without its pid or `/proc`.
fn server_threads(pid: Option<u32>) -> BTreeMap<String, Duration> {
    pid.and_then(|pid| Process(Some(pid)).thread_cpu_times().ok()).unwrap_or_default()
}

/// The server's open files: the entries of `/proc/<pid>/fd`.
pub(super) fn open_files(pid: Option<u32>) -> Option<u64> {
    let pid = pid?;
    let entries = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?;
    Some(entries.count() as u64)
}

/// A measure of the series: its name, unit, and how it is read off a sample.
pub(super) type Measure<'a> = (&'a str, &'a str, &'a dyn Fn(&Sample) -> Option<f64>);

/// How flat the series is: each measure early (the mean of the second tenth, past the
/// warm-up) and late (the mean of the last tenth), and its largest sample.
pub(super) fn flatness(samples: &[Sample]) -> Vec<Figure> {
    let tenth = (samples.len() / 10).max(1);
    let early = samples.get(tenth..(2 * tenth).min(samples.len())).unwrap_or(samples);
    let late = samples.get(samples.len().saturating_sub(tenth)..).unwrap_or(samples);
    let mean = |part: &[Sample], f: &dyn Fn(&Sample) -> Option<f64>| {
        let values: Vec<f64> = part.iter().filter_map(f).collect();
        if values.is_empty() { 0.0 } else { values.iter().sum::<f64>() / values.len() as f64 }
    };
    let max = |f: &dyn Fn(&Sample) -> Option<f64>| samples.iter().filter_map(f).fold(0.0, f64::max);
    let mut figures = Vec::new();
    let measures: [Measure<'_>; 6] = [
        ("server RSS", "KiB", &|s| s.rss_kib.map(|v| v as f64)),
        ("server CPU", "cores", &|s| s.server_cores),
        ("server open files", "", &|s| s.open_files.map(|v| v as f64)),
        ("WAL", "bytes", &|s| s.wal_bytes.map(|v| v as f64)),
        ("send→deliver p99", "ms", &|s| Some(s.deliver_p99_ms)),
        ("send→deliver p99.9", "ms", &|s| Some(s.deliver_p999_ms)),
    ];
    for (name, unit, f) in measures {
        figures.push(figure(
            format!("{name}, early (2nd tenth)"),
            (mean(early, f) * 100.0).round() / 100.0,
            unit,
        ));
        figures.push(figure(
            format!("{name}, late (last tenth)"),
            (mean(late, f) * 100.0).round() / 100.0,
            unit,
        ));
        figures.push(figure(format!("{name}, largest sample"), max(f), unit));
    }
    figures
}
