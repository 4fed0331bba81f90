//! API errors as kube-apiserver returns them: a `Status` object with code, reason, message and details.

use serde_json::{Value, json};

/// An API error response.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    /// HTTP status code.
    pub code: u16,
    /// `reason` (NotFound, AlreadyExists, Conflict, Invalid, Forbidden, Gone, ...).
    pub reason: &'static str,
    /// Human-readable message.
    pub message: String,
    /// `details` (name, group, kind, causes, retryAfterSeconds).
    pub details: Option<Value>,
}

/// One cause of a 422 Invalid: reason (`FieldValueInvalid`, `FieldValueRequired`, ...), field path, message.
#[derive(Debug, Clone, PartialEq)]
pub struct Cause {
    /// `FieldValueInvalid`, `FieldValueRequired`, `FieldValueNotSupported`, `FieldValueTypeInvalid`, ...
    pub reason: &'static str,
    /// Field path (`metadata.name`, `spec.parent`).
    pub field: String,
    /// What is wrong, as `field.Error` prints it without the field.
    pub message: String,
}

impl Cause {
    /// A `FieldValueInvalid` cause.
    pub fn invalid(field: &str, message: String) -> Self {
        Cause { reason: "FieldValueInvalid", field: field.to_owned(), message }
    }

    /// A `FieldValueForbidden` cause.
    pub fn forbidden(field: &str, message: String) -> Self {
        Cause { reason: "FieldValueForbidden", field: field.to_owned(), message }
    }
}

impl ApiError {
    fn new(code: u16, reason: &'static str, message: String) -> Self {
        ApiError { code, reason, message, details: None }
    }

    /// `details` as Go's StatusDetails encodes them: empty name, group and kind are left out.
    fn with_details(mut self, name: &str, group: &str, kind: &str) -> Self {
        let mut details = serde_json::Map::new();
        for (k, v) in [("name", name), ("group", group), ("kind", kind)] {
            if !v.is_empty() {
                details.insert(k.into(), json!(v));
            }
        }
        self.details = Some(Value::Object(details));
        self
    }

    /// 404: `<resource> "<name>" not found`.
    pub fn not_found(group: &str, plural: &str, name: &str) -> Self {
        Self::new(404, "NotFound", format!("{} \"{name}\" not found", gr(group, plural)))
            .with_details(name, group, plural)
    }

    /// 409 AlreadyExists.
    pub fn already_exists(group: &str, plural: &str, name: &str) -> Self {
        Self::new(409, "AlreadyExists", format!("{} \"{name}\" already exists", gr(group, plural)))
            .with_details(name, group, plural)
    }

    /// 409 Conflict (stale resourceVersion or failed precondition).
    pub fn conflict(group: &str, plural: &str, name: &str, detail: &str) -> Self {
        Self::new(
            409,
            "Conflict",
            format!("Operation cannot be fulfilled on {} \"{name}\": {detail}", gr(group, plural)),
        )
        .with_details(name, group, plural)
    }

    /// 409 Conflict naming the kind rather than the resource, as delete preconditions are reported.
    pub fn conflict_kind(group: &str, kind: &str, name: &str, detail: &str) -> Self {
        Self::new(
            409,
            "Conflict",
            format!("Operation cannot be fulfilled on {} \"{name}\": {detail}", gr(group, kind)),
        )
        .with_details(name, group, kind)
    }

    /// 422 Invalid with one `FieldValueInvalid` cause.
    pub fn invalid(kind: &str, group: &str, name: &str, field: &str, detail: &str) -> Self {
        Self::invalid_causes(kind, group, name, vec![Cause::invalid(field, detail.to_owned())])
    }

    /// 422 Invalid with every cause; the message lists each distinct one once, in brackets when several.
    pub fn invalid_causes(kind: &str, group: &str, name: &str, causes: Vec<Cause>) -> Self {
        let kind_group = if group.is_empty() { kind.to_owned() } else { format!("{kind}.{group}") };
        let mut shown: Vec<String> = Vec::new();
        for c in &causes {
            let line = format!("{}: {}", c.field, c.message);
            if !shown.contains(&line) {
                shown.push(line);
            }
        }
        let listed = if shown.len() == 1 { shown.remove(0) } else { format!("[{}]", shown.join(", ")) };
        let mut e = Self::new(422, "Invalid", format!("{kind_group} \"{name}\" is invalid: {listed}"))
            .with_details(name, group, kind);
        if let Some(details) = e.details.as_mut() {
            details["causes"] = causes
                .iter()
                .map(|c| json!({"reason": c.reason, "message": c.message, "field": c.field}))
                .collect();
        }
        e
    }

    /// 422 for a JSON patch that cannot be applied (a failed `test` among them): kube-apiserver says no more
    /// than this, with empty details.
    pub fn patch_rejected() -> Self {
        let mut e = Self::new(
            422,
            "Invalid",
            "the server rejected our request due to an error in our request".into(),
        );
        e.details = Some(json!({}));
        e
    }

    /// 403 Forbidden.
    pub fn forbidden(group: &str, plural: &str, name: &str, detail: &str) -> Self {
        Self::new(403, "Forbidden", format!("{} \"{name}\" is forbidden: {detail}", gr(group, plural)))
            .with_details(name, group, plural)
    }

    /// 403 Forbidden with a complete message (admission denials carry the webhook's own message).
    pub fn forbidden_raw(message: String, attrs: &crate::rbac::Attributes) -> Self {
        Self::new(403, "Forbidden", message).with_details(&attrs.name, &attrs.group, &attrs.resource)
    }

    /// 403 Forbidden for an RBAC denial, worded like kube-apiserver: `<resource>[.<group>] ["<name>"] is
    /// forbidden: <reason>` (no name for collection requests such as create and list).
    pub fn forbidden_by_rbac(message: String, attrs: &crate::rbac::Attributes) -> Self {
        let what = match attrs.name.as_str() {
            "" => gr(&attrs.group, &attrs.resource),
            name => format!("{} \"{name}\"", gr(&attrs.group, &attrs.resource)),
        };
        Self::new(403, "Forbidden", format!("{what} is forbidden: {message}")).with_details(
            &attrs.name,
            &attrs.group,
            &attrs.resource,
        )
    }

    /// 400 BadRequest.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message.into())
    }

    /// 401 Unauthorized.
    pub fn unauthorized() -> Self {
        Self::new(401, "Unauthorized", "Unauthorized".into())
    }

    /// 405 MethodNotAllowed.
    pub fn method_not_allowed(message: impl Into<String>) -> Self {
        Self::new(405, "MethodNotAllowed", message.into())
    }

    /// 410 Gone / Expired for a watch or list from a compacted resourceVersion.
    pub fn expired(message: impl Into<String>) -> Self {
        Self::new(410, "Expired", message.into())
    }

    /// 415 UnsupportedMediaType, listing the media types the request could have used.
    pub fn unsupported_media_type(accepted: &[&str]) -> Self {
        Self::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: {}",
                accepted.join(", ")
            ),
        )
    }

    /// 429 from a per-user rate limit, as API Priority and Fairness answers.
    pub fn throttled(retry_after: u32) -> Self {
        let mut e = Self::new(429, "TooManyRequests", "Too many requests, please try again later.".into());
        e.details = Some(json!({"retryAfterSeconds": retry_after}));
        e
    }

    /// 504 for a request not served by its deadline, as kube-apiserver's handlers answer it (`finisher`:
    /// `NewTimeoutError("request did not complete within requested timeout - context deadline exceeded", 0)`).
    pub fn timeout() -> Self {
        let mut e = Self::new(
            504,
            "Timeout",
            "Timeout: request did not complete within requested timeout - context deadline exceeded".into(),
        );
        e.details = Some(json!({}));
        e
    }

    /// Any code, for injected faults.
    pub fn injected(code: u16, retry_after: Option<u32>) -> Self {
        let reason = match code {
            429 => "TooManyRequests",
            500 => "InternalError",
            503 => "ServiceUnavailable",
            504 => "Timeout",
            _ => "InternalError",
        };
        let mut e = Self::new(code, reason, format!("injected fault ({code})"));
        if let Some(secs) = retry_after {
            e.details = Some(json!({"retryAfterSeconds": secs}));
        }
        e
    }

    /// The `Status` of a delete that removed the object at once.
    pub fn deleted(group: &str, plural: &str, name: &str, uid: &str) -> Value {
        let mut details =
            Self::new(200, "", String::new()).with_details(name, group, plural).details.unwrap_or_default();
        details["uid"] = json!(uid);
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details})
    }

    /// The `Status` body.
    pub fn status(&self) -> Value {
        let mut s = json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": self.message, "reason": self.reason, "code": self.code,
        });
        if let Some(details) = &self.details {
            s["details"] = details.clone();
        }
        s
    }
}

/// `plural.group` as Kubernetes prints a GroupResource.
pub fn gr(group: &str, plural: &str) -> String {
    if group.is_empty() { plural.to_owned() } else { format!("{plural}.{group}") }
}
