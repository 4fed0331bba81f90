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

impl ApiError {
    fn new(code: u16, reason: &'static str, message: String) -> Self {
        ApiError { code, reason, message, details: None }
    }

    fn with_details(mut self, name: &str, group: &str, kind: &str) -> Self {
        self.details = Some(json!({"name": name, "group": group, "kind": kind}));
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

    /// 422 Invalid with one cause.
    pub fn invalid(kind: &str, group: &str, name: &str, field: &str, detail: &str) -> Self {
        let kind_group = if group.is_empty() { kind.to_owned() } else { format!("{kind}.{group}") };
        let mut e =
            Self::new(422, "Invalid", format!("{kind_group} \"{name}\" is invalid: {field}: {detail}"));
        e.details = Some(json!({"name": name, "group": group, "kind": kind,
            "causes": [{"reason": "FieldValueInvalid", "message": detail, "field": field}]}));
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

    /// 415 UnsupportedMediaType.
    pub fn unsupported_media_type(content_type: &str) -> Self {
        Self::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json (got {content_type})"
            ),
        )
    }

    /// 429 from a per-user rate limit, as API Priority and Fairness answers.
    pub fn throttled(retry_after: u32) -> Self {
        let mut e = Self::new(429, "TooManyRequests", "Too many requests, please try again later.".into());
        e.details = Some(json!({"retryAfterSeconds": retry_after}));
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
