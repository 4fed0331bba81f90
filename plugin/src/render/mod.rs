//! Pure rendering: every line `kubectl hns` prints for `describe`, `tree`, `config describe` and `hrq`, made
//! from API objects already read — no I/O here, so the formats are unit-tested against spec §12 directly.
//!
//! Go's formatting helpers that upstream's output depends on live beside them: `text/tabwriter` alignment,
//! apimachinery's `HumanDuration` ages and `Quantity` canonical text.

pub mod age;
pub mod config;
pub mod describe;
pub mod hrq;
pub mod quantity;
pub mod tabwriter;
pub mod tree;

pub use config::render_config_describe;
pub use describe::{AnchorSummary, describe_header, render_describe, render_quotas, render_quotas_error};
pub use hrq::render_hrq_table;
pub use tree::{Forest, Roots, TreeNode, TreeOutput, render_tree};
