//! `kubectl hns config describe`: the types HNC synchronizes and its cluster conditions, from the status of the
//! `config` HNCConfiguration (spec §12).

use std::fmt::Write as _;

use hnc_api::{HNCConfiguration, SyncMode};

use super::tree::condition_text;

/// The text of `config describe`. Types come from `status.resources` (what HNC actually does), not the spec.
pub fn render_config_describe(config: &HNCConfiguration) -> String {
    let status = config.status.clone().unwrap_or_default();
    let mut out = String::from("Synchronized resources:\n");
    for r in &status.resources {
        let action = match r.mode.as_deref() {
            Some(m) if m == SyncMode::Propagate.as_str() => "Propagating",
            Some(m) if m == SyncMode::Remove.as_str() => "Removing",
            Some(m) if m == SyncMode::AllowPropagate.as_str() => "AllowPropagate",
            _ => "Ignoring",
        };
        // The core group prints as "(/v1)": upstream's code, not its docs' "(v1)" (spec §18 item 10).
        let _ = writeln!(out, "* {action}: {} ({}/{})", r.resource, r.group, r.version);
    }
    out.push_str("\nConditions:\n");
    for cond in &status.conditions {
        let _ = writeln!(out, "{}", condition_text(cond));
    }
    out
}

#[cfg(test)]
mod tests {
    use hnc_api::condition::{reasons, types};
    use hnc_api::{Condition, HNCConfigurationStatus, ResourceStatus};
    use pretty_assertions::assert_eq;

    use super::*;

    fn status(group: &str, resource: &str, mode: Option<&str>) -> ResourceStatus {
        ResourceStatus {
            group: group.to_owned(),
            version: "v1".to_owned(),
            resource: resource.to_owned(),
            mode: mode.map(str::to_owned),
            ..Default::default()
        }
    }

    #[test]
    fn every_mode_and_the_core_group() {
        let mut config = HNCConfiguration::new("config", Default::default());
        config.status = Some(HNCConfigurationStatus {
            resources: vec![
                status("", "configmaps", Some("Remove")),
                status("", "secrets", Some("Propagate")),
                status("example.com", "widgets", Some("AllowPropagate")),
                status("example.com", "gadgets", Some("Ignore")),
                status("rbac.authorization.k8s.io", "roles", Some("Propagate")),
            ],
            conditions: vec![Condition::new(
                types::BAD_CONFIGURATION,
                reasons::RESOURCE_NOT_FOUND,
                "no matches for /, Resource=nothings",
                "2025-01-01T00:00:00Z",
            )],
        });
        assert_eq!(
            render_config_describe(&config),
            "Synchronized resources:\n\
             * Removing: configmaps (/v1)\n\
             * Propagating: secrets (/v1)\n\
             * AllowPropagate: widgets (example.com/v1)\n\
             * Ignoring: gadgets (example.com/v1)\n\
             * Propagating: roles (rbac.authorization.k8s.io/v1)\n\
             \n\
             Conditions:\n\
             BadConfiguration (ResourceNotFound): no matches for /, Resource=nothings\n"
        );
    }

    #[test]
    fn a_config_without_status_prints_both_headings() {
        let config = HNCConfiguration::new("config", Default::default());
        assert_eq!(render_config_describe(&config), "Synchronized resources:\n\nConditions:\n");
    }
}
