//! What the load generator reads about processes from Linux's `/proc`: resident memory,
//! CPU time, and the open-file limit that bounds how many connections a process holds.

use std::collections::BTreeMap;
use std::time::Duration;

use super::Error;

/// Clock ticks per second of `/proc/<pid>/stat` times (`USER_HZ`, 100 on Linux).
const USER_HZ: u64 = 100;

/// A process to observe: `None` is the load generator itself.
#[derive(Clone, Copy, Debug)]
pub struct Process(pub Option<u32>);

impl Process {
    fn path(self, file: &str) -> String {
        match self.0 {
            Some(pid) => format!("/proc/{pid}/{file}"),
            None => format!("/proc/self/{file}"),
        }
    }

    /// Resident set size in KiB.
    ///
    /// # Errors
    /// When the process is gone or `/proc` is unreadable.
    pub fn rss_kib(self) -> Result<u64, Error> {
        let status = std::fs::read_to_string(self.path("status"))?;
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .ok_or_else(|| "no VmRSS line in /proc/<pid>/status".into())
    }

    /// User plus system CPU time used so far.
    ///
    /// # Errors
    /// When the process is gone or `/proc` is unreadable.
    pub fn cpu_time(self) -> Result<Duration, Error> {
        let stat = std::fs::read_to_string(self.path("stat"))?;
        stat_cpu(&stat).map(|(_, time)| time)
    }

    /// CPU time used so far by the process's live threads, summed by thread name (threads
    /// of one pool share a name): which part of a server a drift is in.
    ///
    /// # Errors
    /// When the process is gone or `/proc` is unreadable.
    pub fn thread_cpu_times(self) -> Result<BTreeMap<String, Duration>, Error> {
        let mut times = BTreeMap::new();
        for task in std::fs::read_dir(self.path("task"))? {
            // A thread that ended between the listing and the read is skipped.
            let Ok(stat) = std::fs::read_to_string(task?.path().join("stat")) else { continue };
            let (name, time) = stat_cpu(&stat)?;
            *times.entry(name.to_owned()).or_insert(Duration::ZERO) += time;
        }
        Ok(times)
    }
}

/// The command name and user plus system CPU time of a `stat` file (proc_pid_stat(5)).
fn stat_cpu(stat: &str) -> Result<(&str, Duration), Error> {
    // The command name may hold spaces and parentheses: it runs from the first '(' to the
    // last ')', and the fields follow.
    let (head, rest) = stat.rsplit_once(')').ok_or("unreadable /proc/<pid>/stat")?;
    let name = head.split_once('(').map_or("", |(_, name)| name);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of stat(5), i.e. 12 and 13 after the ')'.
    let ticks = |index: usize| fields.get(index).and_then(|f| f.parse::<u64>().ok());
    match (ticks(11), ticks(12)) {
        (Some(user), Some(system)) => {
            Ok((name, Duration::from_millis((user + system) * 1000 / USER_HZ)))
        }
        _ => Err("unreadable /proc/<pid>/stat".into()),
    }
}

/// The soft limit on open files of this process.
///
/// # Errors
/// When `/proc/self/limits` is unreadable.
pub fn open_file_limit() -> Result<u64, Error> {
    let limits = std::fs::read_to_string("/proc/self/limits")?;
    limits
        .lines()
        .find(|line| line.starts_with("Max open files"))
        .and_then(|line| line.split_whitespace().nth(3))
        .and_then(|soft| soft.parse().ok())
        .ok_or_else(|| "no open-file limit in /proc/self/limits".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        let me = Process(None);
        assert!(me.rss_kib().unwrap() > 0);
        assert!(me.cpu_time().is_ok());
        assert!(open_file_limit().unwrap() > 0);
        assert!(Process(Some(u32::MAX)).rss_kib().is_err());
    }

    /// Threads are summed by name, and a name with spaces and parentheses is read whole.
    #[test]
    fn reads_threads_by_name() {
        let spin = || {
            let started = std::time::Instant::now();
            while started.elapsed() < Duration::from_millis(60) {
                std::hint::black_box(0_u64);
            }
        };
        let odd = std::thread::Builder::new().name("a (b) c".into()).spawn(move || {
            spin();
            let times = Process(None).thread_cpu_times().unwrap();
            assert!(times.contains_key("a (b) c"), "{times:?}");
            times
        });
        let times = odd.unwrap().join().unwrap();
        assert!(times.values().all(|t| *t < Duration::from_secs(3600)));
        assert_eq!(
            stat_cpu("1 (x) y) S 0 0 0 0 0 0 0 0 0 0 250 50 0").unwrap(),
            ("x) y", Duration::from_secs(3))
        );
        assert!(stat_cpu("garbage").is_err());
        assert!(Process(Some(u32::MAX)).thread_cpu_times().is_err());
    }
}
