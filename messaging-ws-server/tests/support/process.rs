//! The server binary as a child process: started with `--listen 127.0.0.1:0`, its address
//! read from its log, killed when dropped.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use messaging_core::UserId;

pub const BINARY: &str = env!("CARGO_BIN_EXE_messaging-ws-server");

/// A server process; killed if the test ends without stopping it.
pub struct Process {
    pub child: Child,
    pub addr: SocketAddr,
    /// Its log lines so far.
    pub logs: Arc<Mutex<Vec<String>>>,
}

/// A command without the settings the environment of the test may carry.
pub fn binary(dir: &Path) -> Command {
    let mut command = Command::new(BINARY);
    command
        .current_dir(dir)
        .env_remove("MESSAGING_DATABASE_URL")
        .env_remove("MESSAGING_JWT_SECRET")
        .env_remove("MESSAGING_JWT_SECRET_FILE");
    command
}

impl Process {
    /// Starts `messaging-ws-server` in `dir` with `args` (plus `--listen 127.0.0.1:0`) and
    /// waits for its "serving" log line.
    pub fn start(dir: &Path, args: &[&str]) -> Self {
        Self::spawn(binary(dir), args)
    }

    /// Same, under a shell that first sets the open file limit: `soft` of `hard`.
    pub fn start_with_fd_limit(dir: &Path, args: &[&str], soft: u64, hard: u64) -> Self {
        let mut command = Command::new("sh");
        command
            .current_dir(dir)
            .env_remove("MESSAGING_DATABASE_URL")
            .env_remove("MESSAGING_JWT_SECRET")
            .env_remove("MESSAGING_JWT_SECRET_FILE")
            .arg("-c")
            .arg(format!("ulimit -Sn {soft} && ulimit -Hn {hard} && exec \"$0\" \"$@\""))
            .arg(BINARY);
        Self::spawn(command, args)
    }

    pub fn spawn(mut command: Command, args: &[&str]) -> Self {
        let mut child = command
            .args(args)
            .args(["--listen", "127.0.0.1:0", "--log-level", "info"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the server binary");
        let stderr = child.stderr.take().expect("stderr");
        let (found, addr) = std::sync::mpsc::channel();
        let logs = Arc::new(Mutex::new(Vec::new()));
        let kept = logs.clone();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stderr).lines();
            let mut sent = false;
            for line in lines.by_ref().map_while(Result::ok) {
                if !sent && let Some(at) = line.split("address=").nth(1) {
                    let _ = found.send(at.trim().to_owned());
                    sent = true;
                }
                kept.lock().unwrap().push(line);
            }
        });
        let addr = match addr.recv_timeout(Duration::from_secs(60)) {
            Ok(addr) => addr.parse().expect("a socket address"),
            Err(_) => panic!("the server did not log its address: {:?}", logs.lock().unwrap()),
        };
        Self { child, addr, logs }
    }

    /// Whether a log line so far contains `text`.
    pub fn logged(&self, text: &str) -> bool {
        self.logs.lock().unwrap().iter().any(|line| line.contains(text))
    }

    pub fn url(&self) -> String {
        format!("ws://{}/v1/ws", self.addr)
    }

    /// SIGTERM, then the exit status.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let status = Command::new("kill").args(["-TERM", &pid]).status().expect("kill");
        assert!(status.success());
        for _ in 0..200 {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("the server did not exit within 10 s of SIGTERM");
    }
}

impl Process {
    /// SIGKILL, as a crash: nothing runs on the way out.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn token_from_binary(dir: &Path, args: &[&str], user: UserId) -> String {
    let output = binary(dir)
        .arg("token")
        .args(["--user", &user.to_string()])
        .args(args)
        .output()
        .expect("run token");
    assert!(output.status.success(), "token failed: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).expect("UTF-8").trim().to_owned()
}
