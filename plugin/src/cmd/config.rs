//! `kubectl hns config describe | set-resource | delete-type`: reads and edits the `config` HNCConfiguration.
//! A missing `config` reads as a blank one, which a write creates (POST) rather than replaces (PUT).

use hnc_api::keys::names::CONFIG;
use hnc_api::{HNCConfiguration, ResourceSpec, SyncMode};
use kube::api::{DynamicObject, PostParams};

use super::{Failure, Out};
use crate::client::{Ctx, decode};
use crate::render::render_config_describe;

/// Prints the synchronized types and cluster conditions.
pub async fn describe(ctx: &Ctx, out: &mut Out<'_>) -> Result<(), Failure> {
    let config = read_config(ctx).await?;
    out.print(&render_config_describe(&config));
    Ok(())
}

/// Sets the mode of `group`/`resource`, adding the entry if there is none. Silent on success, as upstream.
pub async fn set_resource(
    ctx: &Ctx,
    out: &mut Out<'_>,
    resource: &str,
    group: &str,
    mode: &str,
    force: bool,
) -> Result<(), Failure> {
    let mode = normalize_mode(mode);
    // An unknown mode is sent as typed, for the API server's schema to refuse with its own message.
    let known = match mode.as_str() {
        "" => Ok(None),
        text => parse_mode(text).map(Some).ok_or(text),
    };
    let mut config = read_config(ctx).await?;
    let resources = &mut config.spec.resources;
    let index = match resources.iter().position(|r| r.group == group && r.resource == resource) {
        Some(i) => {
            let switching_on = matches!(known, Ok(Some(SyncMode::Propagate | SyncMode::AllowPropagate)));
            if resources[i].mode == Some(SyncMode::Ignore) && switching_on && !force {
                out.line(&format!(
                    "Switching directly from 'Ignore' to 'Propagate' mode or 'AllowPropagate' mode could cause \
                     existing {resource:?} objects in child namespaces to be overwritten by objects from \
                     ancestor namespaces."
                ));
                out.line("If you are sure you want to proceed with this operation, use the '--force' flag.");
                return Err(Failure(
                    "If you are not sure and would like to see what source objects would be overwritten,please \
                     switch to 'Remove' first. To see how to enable propagation safely, refer to \
                     https://github.com/kubernetes-sigs/hierarchical-namespaces/blob/master/docs/user-guide/how-to.md#admin-types"
                        .to_owned(),
                ));
            }
            i
        }
        None => {
            resources.push(ResourceSpec {
                group: group.to_owned(),
                resource: resource.to_owned(),
                mode: None,
            });
            resources.len() - 1
        }
    };
    resources[index].mode = known.unwrap_or(None);
    let mut body = serde_json::to_value(&config).map_err(|e| Failure(format!("Error: {e}")))?;
    if let Err(text) = known {
        body["spec"]["resources"][index]["mode"] = text.into();
    }
    write_config(ctx, body, config.metadata.creation_timestamp.is_some()).await
}

/// Removes every entry for `group`/`resource`.
pub async fn delete_type(ctx: &Ctx, out: &mut Out<'_>, group: &str, resource: &str) -> Result<(), Failure> {
    let mut config = read_config(ctx).await?;
    let before = config.spec.resources.len();
    config.spec.resources.retain(|r| !(r.group == group && r.resource == resource));
    if config.spec.resources.len() == before {
        out.line(&format!(
            "Nothing to delete; No configuration for type with group: {group}, resource: {resource}"
        ));
        return Ok(());
    }
    let body = serde_json::to_value(&config).map_err(|e| Failure(format!("Error: {e}")))?;
    write_config(ctx, body, config.metadata.creation_timestamp.is_some()).await?;
    out.line(&format!("Configuration for type with group: {group}, resource: {resource} is deleted"));
    Ok(())
}

/// Upstream's mode normalisation: title case (`propagate` → `Propagate`, `IGNORE` → `Ignore`), and
/// `Allowpropagate` → `AllowPropagate`.
pub fn normalize_mode(text: &str) -> String {
    let mut titled = String::with_capacity(text.len());
    let mut word_start = true;
    for c in text.chars() {
        if c.is_alphanumeric() {
            if word_start {
                titled.extend(c.to_uppercase());
            } else {
                titled.extend(c.to_lowercase());
            }
            word_start = false;
        } else {
            titled.push(c);
            word_start = true;
        }
    }
    if titled == "Allowpropagate" { SyncMode::AllowPropagate.as_str().to_owned() } else { titled }
}

fn parse_mode(text: &str) -> Option<SyncMode> {
    [SyncMode::Propagate, SyncMode::Ignore, SyncMode::Remove, SyncMode::AllowPropagate]
        .into_iter()
        .find(|m| m.as_str() == text)
}

async fn read_config(ctx: &Ctx) -> Result<HNCConfiguration, Failure> {
    let api = ctx.hnc_api::<HNCConfiguration>(None);
    match ctx.call(api.get(CONFIG)).await.and_then(decode) {
        Ok(config) => Ok(config),
        Err(e) if e.is_not_found() => Ok(HNCConfiguration::new(CONFIG, Default::default())),
        Err(e) => Err(Failure(format!("Error reading the HNC Configuration: {e}"))),
    }
}

/// Creates or replaces `config` from its JSON (which may carry a mode the typed API cannot hold).
async fn write_config(ctx: &Ctx, body: serde_json::Value, exists: bool) -> Result<(), Failure> {
    let object: DynamicObject = serde_json::from_value(body).map_err(|e| Failure(format!("Error: {e}")))?;
    let api = ctx.hnc_api::<HNCConfiguration>(None);
    let params = PostParams::default();
    let result = if exists {
        ctx.call(api.replace(CONFIG, &params, &object)).await
    } else {
        ctx.call(api.create(&params, &object)).await
    };
    result.map(drop).map_err(|e| Failure(format!("\nCould not update the HNC Configuration: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_are_title_cased_like_upstream() {
        for (input, want) in [
            ("propagate", "Propagate"),
            ("IGNORE", "Ignore"),
            ("remove", "Remove"),
            ("allowpropagate", "AllowPropagate"),
            ("allowPropagate", "AllowPropagate"),
            ("AllowPropagate", "AllowPropagate"),
            ("", ""),
            ("allow-propagate", "Allow-Propagate"),
        ] {
            assert_eq!(normalize_mode(input), want, "{input}");
        }
        assert_eq!(parse_mode("AllowPropagate"), Some(SyncMode::AllowPropagate));
        assert_eq!(parse_mode("Allow-Propagate"), None);
    }
}
