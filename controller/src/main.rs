//! `hnc-controller`: the sharded Hierarchical Namespace Controller.

use clap::Parser;

fn main() -> std::process::ExitCode {
    let flags = hnc_controller::flags::Flags::parse();
    hnc_controller::run::main(flags)
}
