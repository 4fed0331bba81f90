//! Validation and pruning of custom resources against their CRD's structural schema, as kube-apiserver does:
//! unknown fields are dropped (pruned) unless `x-kubernetes-preserve-unknown-fields`; types, enums, required
//! fields, patterns and bounds are enforced; `metadata.name` may be constrained (HNC's singleton enums). A null
//! where the schema does not say `nullable` is dropped, as kube-apiserver prunes it before defaulting.

use regex::Regex;
use serde_json::Value;

use crate::error::Cause;

/// One validation failure.
pub type FieldError = Cause;

fn error(reason: &'static str, path: &str, message: String) -> FieldError {
    Cause { reason, field: path.to_owned(), message }
}

/// The OpenAPI type name of a JSON value, as kube-apiserver's schema errors name it.
fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn nullable(schema: &Value) -> bool {
    schema.get("nullable").and_then(Value::as_bool) == Some(true)
}

/// Prunes `obj` in place and returns every violation of `schema`.
pub fn validate(schema: &Value, obj: &mut Value) -> Vec<FieldError> {
    let mut errors = Vec::new();
    // apiVersion, kind and metadata are validated by the server itself; only metadata.name constraints apply.
    if let Some(name_schema) = schema.pointer("/properties/metadata/properties/name")
        && let Some(name) = obj.pointer("/metadata/name").cloned()
    {
        let mut name = name;
        check(name_schema, &mut name, "metadata.name", &mut errors);
    }
    if let (Some(props), Some(fields)) =
        (schema.get("properties").and_then(Value::as_object), obj.as_object_mut())
    {
        let keys: Vec<String> = fields.keys().cloned().collect();
        for key in keys {
            if matches!(key.as_str(), "apiVersion" | "kind" | "metadata") {
                continue;
            }
            match props.get(&key) {
                Some(sub) if fields.get(&key).is_some_and(Value::is_null) && !nullable(sub) => {
                    fields.remove(&key);
                }
                Some(sub) => {
                    if let Some(value) = fields.get_mut(&key) {
                        check(sub, value, &key, &mut errors);
                    }
                }
                None if !preserves(schema) => {
                    fields.remove(&key);
                }
                None => {}
            }
        }
        required(schema, fields, "", &mut errors);
    }
    errors
}

fn preserves(schema: &Value) -> bool {
    schema.get("x-kubernetes-preserve-unknown-fields").and_then(Value::as_bool) == Some(true)
}

fn required(
    schema: &Value,
    fields: &serde_json::Map<String, Value>,
    path: &str,
    errors: &mut Vec<FieldError>,
) {
    for req in schema.get("required").and_then(Value::as_array).into_iter().flatten() {
        if let Some(req) = req.as_str()
            && !fields.contains_key(req)
        {
            errors.push(error("FieldValueRequired", &join(path, req), "Required value".into()));
        }
    }
}

fn join(path: &str, field: &str) -> String {
    if path.is_empty() { field.to_owned() } else { format!("{path}.{field}") }
}

fn check(schema: &Value, value: &mut Value, path: &str, errors: &mut Vec<FieldError>) {
    if value.is_null() && nullable(schema) {
        return;
    }
    let int_or_string = schema.get("x-kubernetes-int-or-string").and_then(Value::as_bool) == Some(true);
    let type_ok = match (schema.get("type").and_then(Value::as_str), &*value) {
        _ if int_or_string => value.is_i64() || value.is_u64() || value.is_string(),
        (None, _) => true,
        (Some("object"), Value::Object(_))
        | (Some("array"), Value::Array(_))
        | (Some("string"), Value::String(_)) => true,
        (Some("boolean"), Value::Bool(_)) => true,
        (Some("integer"), Value::Number(n)) => n.is_i64() || n.is_u64(),
        (Some("number"), Value::Number(_)) => true,
        _ => false,
    };
    if !type_ok {
        let want = if int_or_string { "integer or string" } else { schema["type"].as_str().unwrap_or("?") };
        let found = type_name(value);
        errors.push(error(
            "FieldValueTypeInvalid",
            path,
            format!("Invalid value: \"{found}\": {path} in body must be of type {want}: \"{found}\""),
        ));
        return;
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
        && !allowed.contains(value)
    {
        let list: Vec<String> = allowed.iter().map(|v| v.to_string()).collect();
        errors.push(error(
            "FieldValueNotSupported",
            path,
            format!("Unsupported value: {}: supported values: {}", short(value), list.join(", ")),
        ));
    }
    let shown = short(value);
    match value {
        Value::String(s) => {
            if let Some(max) = schema.get("maxLength").and_then(Value::as_u64)
                && s.chars().count() as u64 > max
            {
                errors.push(error(
                    "FieldValueTooLong",
                    path,
                    format!("Too long: may not be more than {max} bytes"),
                ));
            }
            if let Some(min) = schema.get("minLength").and_then(Value::as_u64)
                && (s.chars().count() as u64) < min
            {
                errors.push(error(
                    "FieldValueInvalid",
                    path,
                    format!("Invalid value: {shown}: {path} in body should be at least {min} chars long"),
                ));
            }
            if let Some(pattern) = schema.get("pattern").and_then(Value::as_str)
                && Regex::new(pattern).is_ok_and(|re| !re.is_match(s))
            {
                errors.push(error(
                    "FieldValueInvalid",
                    path,
                    format!("Invalid value: {shown}: {path} in body should match '{pattern}'"),
                ));
            }
        }
        Value::Number(n) => {
            if let (Some(min), Some(x)) = (schema.get("minimum").and_then(Value::as_f64), n.as_f64())
                && x < min
            {
                errors.push(error(
                    "FieldValueInvalid",
                    path,
                    format!("Invalid value: {n}: {path} in body should be greater than or equal to {min}"),
                ));
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for (i, item) in items.iter_mut().enumerate() {
                    check(item_schema, item, &format!("{path}[{i}]"), errors);
                }
            }
        }
        Value::Object(fields) => {
            let props = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties").filter(|a| a.is_object());
            let keys: Vec<String> = fields.keys().cloned().collect();
            for key in keys {
                let sub = props.and_then(|p| p.get(&key)).or(additional);
                match sub {
                    Some(sub) if fields.get(&key).is_some_and(Value::is_null) && !nullable(sub) => {
                        fields.remove(&key);
                    }
                    Some(sub) => {
                        if let Some(v) = fields.get_mut(&key) {
                            check(sub, v, &join(path, &key), errors);
                        }
                    }
                    None if !preserves(schema) && (props.is_some() || additional.is_none()) => {
                        fields.remove(&key);
                    }
                    None => {}
                }
            }
            required(schema, fields, path, errors);
        }
        _ => {}
    }
}

fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.len() > 64 { format!("{}...", &s[..64]) } else { s }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Value {
        json!({"type": "object", "properties": {
            "metadata": {"type": "object", "properties": {"name": {"type": "string", "enum": ["hierarchy"]}}},
            "spec": {"type": "object", "properties": {
                "parent": {"type": "string"},
                "mode": {"type": "string", "enum": ["Propagate", "Remove"]},
                "items": {"type": "array", "items": {"type": "object", "required": ["key"], "properties": {"key": {"type": "string"}}}},
                "hard": {"type": "object", "additionalProperties": {"x-kubernetes-int-or-string": true, "anyOf": [{"type": "integer"}, {"type": "string"}]}}
            }}
        }})
    }

    #[test]
    fn unknown_fields_are_pruned() {
        let mut obj =
            json!({"metadata": {"name": "hierarchy"}, "spec": {"parent": "p", "bogus": 1}, "extra": true});
        assert!(validate(&schema(), &mut obj).is_empty());
        assert_eq!(obj, json!({"metadata": {"name": "hierarchy"}, "spec": {"parent": "p"}}));
    }

    #[test]
    fn singleton_names_types_enums_and_required_fields() {
        let mut obj = json!({"metadata": {"name": "other"}, "spec": {"parent": 5, "mode": "Sideways", "items": [{}], "hard": {"cpu": "1", "pods": 2, "x": true}}});
        let errors = validate(&schema(), &mut obj);
        let mut paths: Vec<&str> = errors.iter().map(|c| c.field.as_str()).collect();
        paths.sort();
        assert_eq!(
            paths,
            ["metadata.name", "spec.hard.x", "spec.items[0].key", "spec.mode", "spec.parent"],
            "{errors:?}"
        );
    }
}
