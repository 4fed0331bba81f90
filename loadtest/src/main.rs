//! The `hnc-loadtest` command; see `hnc-loadtest --help`.

use clap::Parser;

/// mimalloc rather than glibc's malloc: the harness serves apisim in-process, and serving large paged lists
/// over TLS, glibc spent half of the process's CPU consolidating its heaps (perf, a 20,000-namespace relist
/// storm).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    hnc_loadtest::app::main(hnc_loadtest::cli::Cli::parse())
}
