//! Rebuilds the crate when a migration is added: `sqlx::migrate!` embeds `migrations/` at
//! compile time, and Cargo does not otherwise watch that folder.

#![allow(clippy::print_stdout, reason = "a build script speaks to Cargo on stdout")]

fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
