//! Just enough of Kubernetes' protobuf encoding to read access reviews, which newer kubectl sends only as
//! protobuf (`kubectl auth can-i`). Every other request body must be JSON (415 otherwise).
//!
//! Wire format: the magic `k8s\0`, then a `runtime.Unknown` { typeMeta = 1, raw = 2, ... } whose `raw` holds the
//! object: { metadata = 1, spec = 2 }. Spec fields (authorization/v1): resourceAttributes = 1, user = 3,
//! groups = 4 (SubjectAccessReview only). ResourceAttributes: namespace = 1, verb = 2, group = 3, version = 4,
//! resource = 5, subresource = 6, name = 7.

use serde_json::{Value, json};

const MAGIC: &[u8] = b"k8s\0";

/// Decodes an access review (Subject… or SelfSubject…) into its JSON form.
pub fn decode_access_review(body: &[u8]) -> Result<Value, String> {
    let unknown = body.strip_prefix(MAGIC).ok_or("not a Kubernetes protobuf body")?;
    let raw = fields(unknown)?
        .into_iter()
        .find(|(n, _)| *n == 2)
        .map(|(_, v)| v)
        .ok_or("no object in the envelope")?;
    let spec = fields(raw)?.into_iter().find(|(n, _)| *n == 2).map(|(_, v)| v).unwrap_or_default();
    let mut out = json!({"spec": {}});
    let mut groups = Vec::new();
    for (n, v) in fields(spec)? {
        match n {
            1 => {
                let mut ra = serde_json::Map::new();
                for (k, v) in fields(v)? {
                    let key = match k {
                        1 => "namespace",
                        2 => "verb",
                        3 => "group",
                        4 => "version",
                        5 => "resource",
                        6 => "subresource",
                        7 => "name",
                        _ => continue,
                    };
                    ra.insert(key.into(), json!(text(v)?));
                }
                out["spec"]["resourceAttributes"] = Value::Object(ra);
            }
            3 => out["spec"]["user"] = json!(text(v)?),
            4 => groups.push(json!(text(v)?)),
            _ => {}
        }
    }
    if !groups.is_empty() {
        out["spec"]["groups"] = json!(groups);
    }
    Ok(out)
}

fn text(bytes: &[u8]) -> Result<String, String> {
    String::from_utf8(bytes.to_vec()).map_err(|_| "string field is not UTF-8".to_owned())
}

/// The length-delimited fields of a message (varint and fixed fields are skipped).
fn fields(mut buf: &[u8]) -> Result<Vec<(u64, &[u8])>, String> {
    let mut out = Vec::new();
    while !buf.is_empty() {
        let key = varint(&mut buf)?;
        let (number, wire) = (key >> 3, key & 7);
        match wire {
            0 => {
                varint(&mut buf)?;
            }
            1 => buf = buf.get(8..).ok_or("truncated fixed64")?,
            2 => {
                let len = usize::try_from(varint(&mut buf)?).map_err(|_| "length overflows")?;
                let value = buf.get(..len).ok_or("truncated field")?;
                out.push((number, value));
                buf = &buf[len..];
            }
            5 => buf = buf.get(4..).ok_or("truncated fixed32")?,
            other => return Err(format!("unsupported wire type {other}")),
        }
    }
    Ok(out)
}

fn varint(buf: &mut &[u8]) -> Result<u64, String> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = buf.split_first().ok_or("truncated varint")?;
        *buf = rest;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err("varint too long".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(number: u64, bytes: &[u8]) -> Vec<u8> {
        let mut out = vec![((number << 3) | 2) as u8, bytes.len() as u8];
        out.extend_from_slice(bytes);
        out
    }

    #[test]
    fn decodes_a_subject_access_review() {
        let ra = [
            field(1, b"team-a"),
            field(2, b"update"),
            field(3, b"hnc.x-k8s.io"),
            field(5, b"hierarchyconfigurations"),
        ]
        .concat();
        let spec = [field(1, &ra), field(3, b"alice"), field(4, b"g1"), field(4, b"g2")].concat();
        let object = [field(1, b""), field(2, &spec)].concat();
        let envelope =
            [b"k8s\0".to_vec(), field(1, &field(2, b"SubjectAccessReview")), field(2, &object)].concat();
        let review = decode_access_review(&envelope).unwrap();
        assert_eq!(
            review,
            json!({"spec": {"user": "alice", "groups": ["g1", "g2"], "resourceAttributes": {
                "namespace": "team-a", "verb": "update", "group": "hnc.x-k8s.io", "resource": "hierarchyconfigurations"}}})
        );
        assert!(decode_access_review(b"{}").is_err());
        assert!(decode_access_review(b"k8s\0\x12\x7f").is_err(), "truncated input is an error, not a panic");
    }
}
