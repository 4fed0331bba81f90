//! `kubectl hns set NAMESPACE [-p PARENT | -r] [-a | -f]`: changes a namespace's parent and its cascading
//! deletion setting, printing one line per requested change, then writes the HierarchyConfiguration once.

use hnc_api::HierarchyConfigurationSpec;

use super::hierarchy::{get_hierarchy, update_reason, write_hierarchy};
use super::{Failure, Out};
use crate::client::Ctx;

/// The requested changes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SetRequest {
    /// `-r/--root`: remove the parent.
    pub root: bool,
    /// `-p/--parent`, never empty.
    pub parent: Option<String>,
    /// `-a/--allowCascadingDeletion`.
    pub allow: bool,
    /// `-f/--forbidCascadingDeletion`.
    pub forbid: bool,
}

/// What `set` prints and whether it goes on to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetPlan {
    /// The lines describing each requested change, in upstream's order.
    pub lines: Vec<String>,
    /// How many properties changed.
    pub changes: usize,
    /// Set when the request is contradictory; printed after `lines`, then the command fails.
    pub error: Option<String>,
}

/// Applies `request` to `spec` (the namespace's current spec) and says what to print. Checks happen where
/// upstream makes them, so `-p P -a -f` still prints the parent line before refusing.
pub fn plan_set(namespace: &str, spec: &mut HierarchyConfigurationSpec, request: &SetRequest) -> SetPlan {
    let mut plan = SetPlan { lines: Vec::new(), changes: 0, error: None };
    if request.root && request.parent.is_some() {
        plan.error =
            Some("Cannot give the namespace a parent and make it a root at the same time".to_owned());
        return plan;
    }
    let old_parent = spec.parent_name().map(str::to_owned);
    if request.root {
        match &old_parent {
            // The trailing space is upstream's.
            None => plan.lines.push(format!("{namespace} is already a root namespace; unchanged ")),
            Some(old) => {
                spec.parent = None;
                plan.lines.push(format!("Unsetting the parent of {namespace} (was previously {old})"));
                plan.changes += 1;
            }
        }
    }
    if let Some(parent) = &request.parent {
        match &old_parent {
            Some(old) if old == parent => {
                plan.lines.push(format!("Parent of {namespace} is already {parent}; unchanged"));
            }
            old => {
                spec.parent = Some(parent.clone());
                plan.lines.push(match old {
                    None => format!("Setting the parent of {namespace} to {parent}"),
                    Some(old) => format!("Changing the parent of {namespace} from {old} to {parent}"),
                });
                plan.changes += 1;
            }
        }
    }
    if request.allow && request.forbid {
        plan.error =
            Some("Cannot set both --allowCascadingDeletion and --forbidCascadingDeletion".to_owned());
        return plan;
    }
    if request.allow || request.forbid {
        let allow = request.allow;
        if spec.allow_cascading_deletion.unwrap_or(false) == allow {
            plan.lines
                .push(format!("Cascading deletion for '{namespace}' is already set to {allow}; unchanged"));
        } else {
            // `false` is written by leaving the field out, as upstream's `omitempty` does.
            spec.allow_cascading_deletion = allow.then_some(true);
            plan.lines.push(if allow {
                format!("Allowing cascading deletion on '{namespace}'")
            } else {
                format!("Forbidding cascading deletion on '{namespace}'")
            });
            plan.changes += 1;
        }
    }
    plan
}

/// The line after a successful write (sic: upstream's "Succesfully").
pub fn success_line(namespace: &str, changes: usize) -> String {
    let word = if changes == 1 { "property" } else { "properties" };
    format!("Succesfully updated {changes} {word} of the hierarchical configuration of {namespace}")
}

/// Reads the namespace's HierarchyConfiguration, prints the planned changes and writes them.
pub async fn run(ctx: &Ctx, out: &mut Out<'_>, namespace: &str, request: &SetRequest) -> Result<(), Failure> {
    let mut hc = get_hierarchy(ctx, namespace).await?;
    let plan = plan_set(namespace, &mut hc.spec, request);
    for line in &plan.lines {
        out.line(line);
    }
    if let Some(error) = plan.error {
        return Err(Failure(error));
    }
    if plan.changes == 0 {
        out.line("No changes made");
        return Ok(());
    }
    write_hierarchy(ctx, &hc, &update_reason(namespace)).await?;
    out.line(&success_line(namespace, plan.changes));
    Ok(())
}

#[cfg(test)]
mod tests {
    use pretty_assertions::assert_eq;

    use super::*;

    fn spec(parent: Option<&str>, allow: Option<bool>) -> HierarchyConfigurationSpec {
        HierarchyConfigurationSpec {
            parent: parent.map(str::to_owned),
            allow_cascading_deletion: allow,
            ..Default::default()
        }
    }

    fn request(root: bool, parent: Option<&str>, allow: bool, forbid: bool) -> SetRequest {
        SetRequest { root, parent: parent.map(str::to_owned), allow, forbid }
    }

    #[test]
    fn setting_changing_and_keeping_a_parent() {
        let mut s = spec(None, None);
        let plan = plan_set("team", &mut s, &request(false, Some("acme"), false, false));
        assert_eq!(plan.lines, ["Setting the parent of team to acme"]);
        assert_eq!((plan.changes, s.parent.as_deref()), (1, Some("acme")));

        let plan = plan_set("team", &mut s, &request(false, Some("corp"), false, false));
        assert_eq!(plan.lines, ["Changing the parent of team from acme to corp"]);

        let plan = plan_set("team", &mut s, &request(false, Some("corp"), false, false));
        assert_eq!(
            (plan.lines.as_slice(), plan.changes),
            (&["Parent of team is already corp; unchanged".to_owned()][..], 0)
        );
    }

    #[test]
    fn making_a_root() {
        let mut s = spec(Some("acme"), None);
        let plan = plan_set("team", &mut s, &request(true, None, false, false));
        assert_eq!(plan.lines, ["Unsetting the parent of team (was previously acme)"]);
        assert_eq!((plan.changes, s.parent), (1, None));

        let plan = plan_set("team", &mut spec(Some(""), None), &request(true, None, false, false));
        assert_eq!(plan.lines, ["team is already a root namespace; unchanged "]);
        assert_eq!(plan.changes, 0);
    }

    #[test]
    fn cascading_deletion_both_ways() {
        let mut s = spec(None, None);
        let plan = plan_set("n", &mut s, &request(false, None, true, false));
        assert_eq!(
            (plan.lines, s.allow_cascading_deletion),
            (vec!["Allowing cascading deletion on 'n'".to_owned()], Some(true))
        );

        let plan = plan_set("n", &mut s, &request(false, None, true, false));
        assert_eq!(plan.lines, ["Cascading deletion for 'n' is already set to true; unchanged"]);

        let plan = plan_set("n", &mut s, &request(false, None, false, true));
        assert_eq!(
            (plan.lines, s.allow_cascading_deletion),
            (vec!["Forbidding cascading deletion on 'n'".to_owned()], None)
        );

        let plan = plan_set("n", &mut s, &request(false, None, false, true));
        assert_eq!(plan.lines, ["Cascading deletion for 'n' is already set to false; unchanged"]);
    }

    #[test]
    fn two_changes_at_once_and_the_success_line() {
        let mut s = spec(None, None);
        let plan = plan_set("n", &mut s, &request(false, Some("p"), true, false));
        assert_eq!(plan.changes, 2);
        assert_eq!(
            success_line("n", 2),
            "Succesfully updated 2 properties of the hierarchical configuration of n"
        );
        assert_eq!(
            success_line("n", 1),
            "Succesfully updated 1 property of the hierarchical configuration of n"
        );
    }

    #[test]
    fn contradictions_are_refused_where_upstream_refuses_them() {
        let plan = plan_set("n", &mut spec(None, None), &request(true, Some("p"), false, false));
        assert!(plan.lines.is_empty());
        assert_eq!(
            plan.error.as_deref(),
            Some("Cannot give the namespace a parent and make it a root at the same time")
        );

        // The parent line is printed before the cascading-deletion contradiction is noticed.
        let plan = plan_set("n", &mut spec(None, None), &request(false, Some("p"), true, true));
        assert_eq!(plan.lines, ["Setting the parent of n to p"]);
        assert_eq!(
            plan.error.as_deref(),
            Some("Cannot set both --allowCascadingDeletion and --forbidCascadingDeletion")
        );
    }
}
