//! The `hnc-loadtest` command; see `hnc-loadtest --help`.

use clap::Parser;

fn main() -> std::process::ExitCode {
    hnc_loadtest::app::main(hnc_loadtest::cli::Cli::parse())
}
