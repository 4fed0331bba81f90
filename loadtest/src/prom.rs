//! Just enough of the Prometheus text format to read the controllers' and apisim's `/metrics`: samples with
//! labels, sums over label sets, and quantiles estimated from histogram buckets.

use std::collections::BTreeMap;

/// One sample.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// Every sample in `text`.
pub fn parse(text: &str) -> Vec<Sample> {
    text.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()).filter_map(parse_line).collect()
}

fn parse_line(line: &str) -> Option<Sample> {
    let (head, value) = line.rsplit_once(' ')?;
    let value: f64 = value.trim().parse().ok()?;
    let (name, labels) = match head.find('{') {
        None => (head.trim().to_owned(), BTreeMap::new()),
        Some(i) => {
            let body = head[i + 1..].trim_end().strip_suffix('}')?;
            let mut labels = BTreeMap::new();
            let mut rest = body;
            while let Some(eq) = rest.find("=\"") {
                let key = rest[..eq].trim_start_matches(',').trim().to_owned();
                let after = &rest[eq + 2..];
                let mut end = 0;
                let bytes = after.as_bytes();
                while end < bytes.len() && !(bytes[end] == b'"' && (end == 0 || bytes[end - 1] != b'\\')) {
                    end += 1;
                }
                labels.insert(key, after[..end].replace("\\\"", "\""));
                rest = after.get(end + 1..).unwrap_or("");
            }
            (head[..i].to_owned(), labels)
        }
    };
    Some(Sample { name, labels, value })
}

/// Sum of `name` over the label sets matching every `(key, value)` in `filter`.
pub fn sum(samples: &[Sample], name: &str, filter: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|s| {
            s.name == name && filter.iter().all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|s| s.value)
        .sum()
}

/// Cumulative bucket counts of histogram `name` (summed over other labels), by upper bound.
pub fn buckets(samples: &[Sample], name: &str) -> Vec<(f64, f64)> {
    let bucket = format!("{name}_bucket");
    let mut by_le: BTreeMap<u64, (f64, f64)> = BTreeMap::new();
    for s in samples.iter().filter(|s| s.name == bucket) {
        let Some(le) = s.labels.get("le") else { continue };
        let le: f64 = if le == "+Inf" { f64::INFINITY } else { le.parse().unwrap_or(f64::NAN) };
        by_le.entry(le.to_bits()).or_insert((le, 0.0)).1 += s.value;
    }
    let mut out: Vec<(f64, f64)> = by_le.into_values().collect();
    out.sort_by(|a, b| a.0.total_cmp(&b.0));
    out
}

/// Bucket-wise difference `after - before` (for one phase's share of a cumulative histogram).
pub fn bucket_delta(after: &[(f64, f64)], before: &[(f64, f64)]) -> Vec<(f64, f64)> {
    after
        .iter()
        .map(|(le, n)| (*le, n - before.iter().find(|(b, _)| b == le).map_or(0.0, |(_, m)| *m)))
        .collect()
}

/// The `q` quantile from cumulative buckets, interpolated linearly inside the bucket (as `histogram_quantile`).
pub fn quantile(buckets: &[(f64, f64)], q: f64) -> Option<f64> {
    let total = buckets.last()?.1;
    if total <= 0.0 {
        return None;
    }
    let rank = q * total;
    let mut prev = (0.0, 0.0);
    for &(le, count) in buckets {
        if count >= rank {
            if le.is_infinite() {
                return Some(prev.0);
            }
            let width = count - prev.1;
            let frac = if width > 0.0 { (rank - prev.1) / width } else { 1.0 };
            return Some(prev.0 + (le - prev.0) * frac);
        }
        prev = (le, count);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "# HELP x\nhnc_writes_total{verb=\"create\",resource=\"roles.rbac.authorization.k8s.io\",outcome=\"written\"} 7\n\
hnc_writes_total{verb=\"patch\",resource=\"namespaces\",outcome=\"written\"} 3\n\
hnc_write_queue_depth 0\n\
lat_bucket{le=\"0.1\"} 5\nlat_bucket{le=\"1\"} 10\nlat_bucket{le=\"+Inf\"} 10\n";

    #[test]
    fn sums_and_filters_samples() {
        let s = parse(TEXT);
        assert_eq!(sum(&s, "hnc_writes_total", &[]), 10.0);
        assert_eq!(sum(&s, "hnc_writes_total", &[("verb", "create")]), 7.0);
        assert_eq!(sum(&s, "hnc_write_queue_depth", &[]), 0.0);
    }

    #[test]
    fn estimates_quantiles_from_buckets() {
        let b = buckets(&parse(TEXT), "lat");
        assert_eq!(b.len(), 3);
        assert!((quantile(&b, 0.5).unwrap() - 0.1).abs() < 1e-9);
        assert!((quantile(&b, 0.75).unwrap() - 0.55).abs() < 1e-9);
    }
}
