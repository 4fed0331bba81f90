//! The controller binary, built into this package so the harness and its smoke test can start replicas as
//! child processes without a separate build step.

use clap::Parser;

fn main() -> std::process::ExitCode {
    hnc_controller::run::main(hnc_controller::flags::Flags::parse())
}
