//! `kubectl-hns`: see the `hnc_plugin` crate documentation.

fn main() -> std::process::ExitCode {
    hnc_plugin::cli::main()
}
