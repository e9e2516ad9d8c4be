//! The load generator's binary; see `messaging_benches::loadgen`.

fn main() -> std::process::ExitCode {
    messaging_benches::loadgen::cli::main()
}
