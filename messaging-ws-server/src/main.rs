//! `messaging-ws-server`: see `messaging_ws_server::cli` and `--help`.

/// mimalloc rather than glibc's malloc: under load the SQLite writer thread spent ~40 % of
/// its waits on glibc's arena lock, shared with the runtime's threads (docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    messaging_ws_server::cli::main()
}
