//! `messaging-ws-server`: see `messaging_ws_server::cli` and `--help`.

fn main() -> std::process::ExitCode {
    messaging_ws_server::cli::main()
}
