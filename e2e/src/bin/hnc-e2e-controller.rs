//! The controller binary, for end-to-end tests to run as child processes.

use clap::Parser;

fn main() -> std::process::ExitCode {
    hnc_controller::run::main(hnc_controller::flags::Flags::parse())
}
