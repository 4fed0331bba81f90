//! The command line: upstream's commands, flags (including their camel-case long names) and exit codes, and the
//! dispatch from a parsed command line to the command that runs it.
//!
//! Exit codes: 0 on success (and for `--help`); 1 for every failure, including a malformed command line, as
//! upstream's cobra-based plugin does.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, CommandFactory, Parser, Subcommand};

use crate::client::{RequestTimeout, connect};
use crate::cmd::{self, Failure, Out};

/// The version `version` and `--version` print: `HNC_VERSION` at build time, else the crate version.
pub const VERSION: &str = match option_env!("HNC_VERSION") {
    Some(v) => v,
    None => env!("CARGO_PKG_VERSION"),
};

const AFTER_HELP: &str = "\
Not provided: `get`, which lists objects through HNC's aggregated API (resources.hnc.x-k8s.io), and this HNC \
does not serve that API.

Use \"kubectl hns <command> --help\" for more information about a command.";

/// Manipulates hierarchical namespaces provided by HNC.
#[derive(Debug, Parser)]
#[command(
    name = "kubectl-hns",
    bin_name = "kubectl hns",
    disable_version_flag = true,
    after_help = AFTER_HELP
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalFlags,
    /// Print the version of the plugin
    #[arg(long)]
    pub version: bool,
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Flags every command accepts (kubectl's connection flags).
#[derive(Debug, Clone, Args)]
pub struct GlobalFlags {
    /// Path to the kubeconfig file to use for CLI requests
    #[arg(long, global = true, value_name = "PATH")]
    pub kubeconfig: Option<PathBuf>,
    /// The name of the kubeconfig context to use
    #[arg(long, global = true, value_name = "NAME")]
    pub context: Option<String>,
    /// The name of the kubeconfig cluster to use
    #[arg(long, global = true, value_name = "NAME")]
    pub cluster: Option<String>,
    /// The name of the kubeconfig user to use
    #[arg(long, global = true, value_name = "NAME")]
    pub user: Option<String>,
    /// The namespace to act in: the parent for create and delete, where to look for hrq (default: the
    /// kubeconfig context's namespace, else "default")
    #[arg(short = 'n', long, global = true, value_name = "NAMESPACE")]
    pub namespace: Option<String>,
    /// How long to wait for each request to the API server (e.g. 1s, 2m, 3h; 0 waits forever)
    #[arg(long, global = true, default_value = "5s", value_parser = RequestTimeout::parse, value_name = "DURATION")]
    pub request_timeout: RequestTimeout,
    /// Username to impersonate for the operation
    #[arg(long = "as", global = true, value_name = "USER")]
    pub as_user: Option<String>,
    /// Group to impersonate for the operation; repeat for several groups
    #[arg(long = "as-group", global = true, value_name = "GROUP")]
    pub as_group: Vec<String>,
    /// UID to impersonate for the operation
    #[arg(long = "as-uid", global = true, value_name = "UID")]
    pub as_uid: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Creates a subnamespace under the given parent (kubectl hns create CHILD -n PARENT)
    Create {
        /// The subnamespace to create
        #[arg(value_name = "CHILD")]
        child: String,
    },
    /// Deletes a subnamespace under the given parent (kubectl hns delete CHILD -n PARENT)
    #[command(after_help = "Examples:\n  # Delete the 'foo' anchor in the parent 'bar' namespace\n  \
        kubectl hns delete foo -n bar\n\n  # Allow 'foo' to be cascading deleted and delete it\n  \
        kubectl hns delete foo -n bar --allowCascadingDeletion")]
    Delete {
        /// The subnamespace to delete
        #[arg(value_name = "CHILD")]
        child: String,
        /// Allows cascading deletion of its subnamespaces.
        #[arg(short = 'a', long = "allowCascadingDeletion")]
        allow_cascading_deletion: bool,
    },
    /// Sets hierarchical properties of the given namespace
    #[command(
        after_help = "Examples:\n  # Make 'foo' the parent of 'bar'\n  kubectl hns set bar --parent foo\n\n  \
        # Make 'bar' a root (remove its parent)\n  kubectl hns set bar --root\n\n  \
        # Allow 'foo', or any of its descendants, to be cascading deleted\n  kubectl hns set foo -a\n\n  \
        # Forbid cascading deletion on 'foo' and its subtree (unless allowed on a descendant)\n  \
        kubectl hns set foo -f"
    )]
    Set {
        /// The namespace to change
        #[arg(value_name = "NAMESPACE")]
        target: String,
        /// Sets the parent namespace
        #[arg(short = 'p', long, value_name = "PARENT")]
        parent: Option<String>,
        /// Removes the current parent namespace, making this namespace a root
        #[arg(short = 'r', long)]
        root: bool,
        /// Allows cascading deletion of its subnamespaces.
        #[arg(short = 'a', long = "allowCascadingDeletion")]
        allow_cascading_deletion: bool,
        /// Protects cascading deletion of its subnamespaces.
        #[arg(short = 'f', long = "forbidCascadingDeletion")]
        forbid_cascading_deletion: bool,
    },
    /// Displays information about the hierarchy configuration
    Describe {
        /// The namespace to describe
        #[arg(value_name = "NAMESPACE")]
        target: String,
    },
    /// Display one or more hierarchy trees
    Tree {
        /// The roots of the trees to display
        #[arg(value_name = "NAMESPACE")]
        roots: Vec<String>,
        /// Displays all trees on the cluster
        #[arg(short = 'A', long)]
        all_namespaces: bool,
    },
    /// Manipulates the HNC configuration
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Display one or more HierarchicalResourceQuota
    Hrq {
        /// Names of the quotas to show (all in the namespace if none)
        #[arg(value_name = "NAME")]
        names: Vec<String>,
        /// Displays all HierarchicalResourceQuota on the cluster
        #[arg(short = 'A', long)]
        all_namespaces: bool,
        /// Displays Labels of HierarchicalResourceQuota
        #[arg(long)]
        show_labels: bool,
    },
    /// Show version of HNC plugin
    Version,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Displays information about the HNC configuration
    Describe,
    /// Sets the HNC configuration of a specific resource
    #[command(after_help = "Examples:\n  # Set configuration of a core type\n  \
        kubectl hns config set-resource secrets --mode Ignore\n\n  # Set configuration of a custom type\n  \
        kubectl hns config set-resource crontabs --group stable.example.com --mode Propagate")]
    SetResource {
        /// The resource (plural or singular), e.g. secrets
        #[arg(value_name = "RESOURCE")]
        resource: String,
        /// The group of the resource; may be omitted for core resources (or explicitly set to the empty string)
        #[arg(long, default_value = "")]
        group: String,
        /// The synchronization mode: one of Propagate, Remove, Ignore and AllowPropagate
        #[arg(long, default_value = "")]
        mode: String,
        /// Allow the synchronization mode to be changed directly from Ignore to Propagate or AllowPropagate
        /// despite the dangers of doing so
        #[arg(short = 'f', long)]
        force: bool,
    },
    /// Delete the HNC configuration of a specific type
    #[command(after_help = "Examples:\n  # Delete configuration of a core type\n  \
        kubectl hns config delete-type --resource secrets\n\n  # Delete configuration of a custom type\n  \
        kubectl hns config delete-type --group stable.example.com --resource crontabs")]
    DeleteType {
        /// group of the resource
        #[arg(long, default_value = "")]
        group: String,
        /// resource to be configured
        #[arg(long, default_value = "")]
        resource: String,
    },
}

/// The whole program: parses `std::env::args`, runs the command, prints to stdout, returns the exit status.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            let _ = error.print();
            return if error.use_stderr() { ExitCode::FAILURE } else { ExitCode::SUCCESS };
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("Error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut stdout = std::io::stdout().lock();
    let mut out = Out::new(&mut stdout);
    let result = runtime.block_on(run(cli, &mut out));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure(text)) => {
            out.line(&text);
            let _ = stdout.flush();
            ExitCode::FAILURE
        }
    }
}

/// Runs a parsed command line, printing to `out`.
pub async fn run(cli: Cli, out: &mut Out<'_>) -> Result<(), Failure> {
    let command = match cli.command {
        _ if cli.version => return version(out),
        Some(Command::Version) => return version(out),
        Some(command) => command,
        None => {
            // Only global flags: like upstream's root command, show the help.
            out.print(&Cli::command().render_help().to_string());
            return Ok(());
        }
    };
    let ctx = connect(&cli.global).await.map_err(|e| Failure(format!("Error: {e}")))?;
    let namespace_flag = cli.global.namespace.as_deref();
    match command {
        Command::Create { child } => cmd::create::run(&ctx, out, &child, namespace_flag).await,
        Command::Delete { child, allow_cascading_deletion } => {
            cmd::delete::run(&ctx, out, &child, namespace_flag, allow_cascading_deletion).await
        }
        Command::Set { target, parent, root, allow_cascading_deletion, forbid_cascading_deletion } => {
            let request = cmd::set::SetRequest {
                root,
                // Upstream treats `--parent ""` as no --parent at all.
                parent: parent.filter(|p| !p.is_empty()),
                allow: allow_cascading_deletion,
                forbid: forbid_cascading_deletion,
            };
            cmd::set::run(&ctx, out, &target, &request).await
        }
        Command::Describe { target } => cmd::describe::run(&ctx, out, &target).await,
        Command::Tree { roots, all_namespaces } => cmd::tree::run(&ctx, out, &roots, all_namespaces).await,
        Command::Config(ConfigCommand::Describe) => cmd::config::describe(&ctx, out).await,
        Command::Config(ConfigCommand::SetResource { resource, group, mode, force }) => {
            cmd::config::set_resource(&ctx, out, &resource, &group, &mode, force).await
        }
        Command::Config(ConfigCommand::DeleteType { group, resource }) => {
            cmd::config::delete_type(&ctx, out, &group, &resource).await
        }
        Command::Hrq { names, all_namespaces, show_labels } => {
            let namespace = (!all_namespaces).then(|| ctx.namespace(namespace_flag));
            cmd::hrq::run(&ctx, out, &names, namespace.as_deref(), show_labels).await
        }
        Command::Version => version(out),
    }
}

/// `kubectl-hns version <version>`; needs no cluster.
fn version(out: &mut Out<'_>) -> Result<(), Failure> {
    out.line(&format!("kubectl-hns version {VERSION}"));
    Ok(())
}
