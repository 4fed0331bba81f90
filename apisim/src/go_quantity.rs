//! A `ResourceList` value as kube-apiserver holds it after decoding: apimachinery's `resource.Quantity` from
//! `ParseQuantity`, then rounded up to milli units by `SetDefaults_ResourceList`. Validation messages print it
//! in two ways, both modelled here: `String()` (the text the client sent when `ParseQuantity` kept it, else
//! the canonical form), and Go's `%#v` of the struct, which `field.Invalid` prints for a `Quantity` passed by
//! value (`resource.Quantity{i:resource.int64Amount{value:1500, scale:-3}, d:…, s:"1500m", Format:"DecimalSI"}`).
//!
//! Values are exact (`i128` mantissa and decimal exponent); the canonical text is `hnc_api::quantity`'s. Not
//! modelled: the address Go prints for a value held as an `inf.Dec` (more than 18 digits, or a fractional
//! binary amount such as `1.5Gi`), and text beyond `i128`, which is not read at all.

use hnc_api::quantity::{self, Format};

/// A decoded quantity.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct GoQuantity {
    /// The value is `mantissa × 10^exponent`.
    mantissa: i128,
    exponent: i32,
    /// `int64Amount{value, scale}`, or None when Go holds the value as an `inf.Dec`.
    int: Option<(i64, i32)>,
    /// The cached string `s` (empty when not cached).
    cached: String,
    format: Format,
}

/// The parts `parseQuantityString` splits a quantity into.
struct Scanned<'a> {
    positive: bool,
    /// Sign and number, without the suffix.
    value: &'a str,
    /// Whole digits without leading zeros ("0" when none), and fraction digits.
    num: &'a str,
    denom: &'a str,
    suffix: &'a str,
}

/// apimachinery's `parseQuantityString`; None where it returns `ErrFormatWrong`.
fn scan(s: &str) -> Option<Scanned<'_>> {
    let b = s.as_bytes();
    let end = b.len();
    let mut pos = 0;
    let mut positive = true;
    match b.first() {
        Some(b'-') => {
            positive = false;
            pos = 1;
        }
        Some(b'+') => pos = 1,
        _ => {}
    }
    while pos < end && b[pos] == b'0' {
        pos += 1;
    }
    if pos >= end {
        return Some(Scanned { positive, value: "0", num: "0", denom: "", suffix: "" });
    }
    let start = pos;
    while pos < end && b[pos].is_ascii_digit() {
        pos += 1;
    }
    let num = if pos == start { "0" } else { &s[start..pos] };
    if pos >= end {
        return Some(Scanned { positive, value: s, num, denom: "", suffix: "" });
    }
    let mut denom = "";
    if b[pos] == b'.' {
        pos += 1;
        let from = pos;
        while pos < end && b[pos].is_ascii_digit() {
            pos += 1;
        }
        denom = &s[from..pos];
        if pos >= end {
            return Some(Scanned { positive, value: s, num, denom, suffix: "" });
        }
    }
    let value = &s[..pos];
    let suffix_start = pos;
    while pos < end && b"eEinumkKMGTP".contains(&b[pos]) {
        pos += 1;
    }
    if pos < end && matches!(b[pos], b'-' | b'+') {
        pos += 1;
    }
    while pos < end && b[pos].is_ascii_digit() {
        pos += 1;
    }
    (pos >= end).then(|| Scanned { positive, value, num, denom, suffix: &s[suffix_start..] })
}

/// `quantitySuffixer.interpret`: base (10 or 2), exponent and format of a suffix.
fn interpret(suffix: &str) -> Option<(u32, i32, Format)> {
    const DECIMAL: [(&str, i32); 10] = [
        ("n", -9),
        ("u", -6),
        ("m", -3),
        ("", 0),
        ("k", 3),
        ("M", 6),
        ("G", 9),
        ("T", 12),
        ("P", 15),
        ("E", 18),
    ];
    const BINARY: [(&str, i32); 6] = [("Ki", 10), ("Mi", 20), ("Gi", 30), ("Ti", 40), ("Pi", 50), ("Ei", 60)];
    if let Some((_, e)) = DECIMAL.iter().find(|(s, _)| *s == suffix) {
        return Some((10, *e, Format::DecimalSi));
    }
    if let Some((_, e)) = BINARY.iter().find(|(s, _)| *s == suffix) {
        return Some((2, *e, Format::BinarySi));
    }
    let exponent = suffix.strip_prefix(['e', 'E']).filter(|e| !e.is_empty())?.parse::<i32>().ok()?;
    Some((10, exponent, Format::DecimalExponent))
}

/// `x / 10^places`, rounded away from zero.
fn round_away(x: i128, places: u32) -> Option<i128> {
    let divisor = 10i128.checked_pow(places)?;
    Some(x / divisor + (x % divisor).signum())
}

/// apimachinery's `negativeScaleInt64`: `base / 10^scale`, rounded away from zero.
fn negative_scale_int64(base: i64, scale: i32) -> i64 {
    let mut value = base;
    let mut fraction = false;
    for _ in 0..scale {
        fraction |= value % 10 != 0;
        value /= 10;
        if value == 0 {
            return if !fraction {
                0
            } else if base > 0 {
                1
            } else {
                -1
            };
        }
    }
    if fraction {
        value += base.signum();
    }
    value
}

/// `m × 10^e` written out, without exponent or suffix.
fn plain(m: i128, e: i32) -> String {
    let sign = if m < 0 { "-" } else { "" };
    let digits = m.unsigned_abs().to_string();
    if e >= 0 {
        return format!("{sign}{digits}{}", "0".repeat(e.unsigned_abs() as usize));
    }
    let places = e.unsigned_abs() as usize;
    let digits = format!("{digits:0>width$}", width = places + 1);
    let (whole, fraction) = digits.split_at(digits.len() - places);
    format!("{sign}{whole}.{fraction}")
}

impl GoQuantity {
    /// A value as JSON carries it (a string, or a bare number), decoded into a `ResourceList`. None for
    /// anything else, for text `ParseQuantity` refuses, and beyond this arithmetic.
    pub(crate) fn from_json(value: &serde_json::Value) -> Option<GoQuantity> {
        let text = match value {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Number(n) => n.to_string(),
            _ => return None,
        };
        let mut q = Self::parse(text.trim())?;
        q.round_up_milli();
        Some(q)
    }

    /// apimachinery's `ParseQuantity`.
    fn parse(s: &str) -> Option<GoQuantity> {
        if s.is_empty() {
            return None;
        }
        if s == "0" {
            return Some(GoQuantity {
                mantissa: 0,
                exponent: 0,
                int: Some((0, 0)),
                cached: s.to_owned(),
                format: Format::DecimalSi,
            });
        }
        let Scanned { positive, value, num, denom, suffix } = scan(s)?;
        let (base, exponent, format) = interpret(suffix)?;
        let digits = i64::try_from(num.len() + denom.len()).ok()?;
        // The int64 fast path.
        let (precision, mut scale, factor) = match format {
            Format::BinarySi if denom.is_empty() => {
                let num_len = i64::try_from(num.len()).ok()?;
                (15 - num_len - i64::from(exponent) * 3 / 10 - 1, 0, 1i64 << exponent)
            }
            Format::BinarySi => (-1, 0, 1),
            _ => (18 - digits, i64::from(exponent), 1),
        };
        if precision >= 0 {
            scale -= i64::try_from(denom.len()).ok()?;
            if scale >= -9 {
                let shifted = format!("{num}{denom}");
                let parsed: i64 = shifted.parse().ok()?;
                if let Some(mut result) = parsed.checked_mul(factor) {
                    if !positive {
                        result = -result;
                    }
                    let scale = i32::try_from(scale).ok()?;
                    // "if the number is in canonical form, reuse the string"
                    let keep = match format {
                        Format::BinarySi => exponent % 10 == 0 && parsed & 0x07 != 0,
                        _ => scale % 3 == 0 && !shifted.ends_with("000") && !shifted.starts_with('0'),
                    };
                    return Some(GoQuantity {
                        mantissa: i128::from(result),
                        exponent: scale,
                        int: Some((result, scale)),
                        cached: if keep { s.to_owned() } else { String::new() },
                        format,
                    });
                }
            }
        }
        // The inf.Dec path.
        let unsigned = value.trim_start_matches(['-', '+']);
        let (whole, fraction) = unsigned.split_once('.').unwrap_or((unsigned, ""));
        if whole.is_empty() && fraction.is_empty() {
            return None;
        }
        let mut mantissa: i128 = format!("0{whole}{fraction}").parse().ok()?;
        if !positive {
            mantissa = -mantissa;
        }
        let mut exponent10 = -i32::try_from(fraction.len()).ok()?;
        if base == 10 {
            exponent10 = exponent10.checked_add(exponent)?;
        } else {
            mantissa = mantissa.checked_mul(1i128 << exponent)?;
        }
        if mantissa == 0 {
            exponent10 = 0;
        } else if exponent10 < -9 {
            mantissa = round_away(mantissa, (-9 - exponent10).unsigned_abs())?;
            exponent10 = -9;
        }
        let mut q = GoQuantity { mantissa, exponent: exponent10, int: None, cached: String::new(), format };
        if format == Format::BinarySi {
            let max = GoQuantity { mantissa: i128::from(i64::MAX), exponent: 0, ..q.clone() };
            if q.cmp_magnitude(&max)? == std::cmp::Ordering::Greater {
                q.mantissa = mantissa.signum() * i128::from(i64::MAX);
                q.exponent = 0;
            }
            let one = GoQuantity { mantissa: 1, exponent: 0, ..q.clone() };
            if q.mantissa != 0 && q.cmp_magnitude(&one)? == std::cmp::Ordering::Less {
                q.format = Format::DecimalSi;
            }
        }
        Some(q)
    }

    fn cmp_magnitude(&self, other: &GoQuantity) -> Option<std::cmp::Ordering> {
        let e = self.exponent.min(other.exponent);
        let scaled = |q: &GoQuantity| -> Option<u128> {
            q.mantissa.unsigned_abs().checked_mul(10u128.checked_pow((q.exponent - e).unsigned_abs())?)
        };
        Some(scaled(self)?.cmp(&scaled(other)?))
    }

    /// `RoundUp(resource.Milli)`, as `SetDefaults_ResourceList` applies it.
    fn round_up_milli(&mut self) {
        match self.int {
            Some((_, scale)) if scale >= -3 => {}
            Some((value, scale)) => {
                let value = negative_scale_int64(value, -3 - scale);
                self.int = Some((value, -3));
                (self.mantissa, self.exponent) = (i128::from(value), -3);
                self.cached.clear();
            }
            None => {
                if self.exponent < -3
                    && let Some(m) = round_away(self.mantissa, (-3 - self.exponent).unsigned_abs())
                {
                    (self.mantissa, self.exponent) = (m, -3);
                }
                self.cached.clear();
            }
        }
    }

    /// Below zero.
    pub(crate) fn is_negative(&self) -> bool {
        self.mantissa < 0
    }

    /// A whole number (`MilliValue() % 1000 == 0` once rounded to milli units, short of int64 overflow).
    pub(crate) fn is_whole(&self) -> bool {
        self.exponent >= 0
            || 10i128.checked_pow(self.exponent.unsigned_abs()).is_none_or(|d| self.mantissa % d == 0)
    }

    /// `String()`: the cached text, else the canonical form.
    pub(crate) fn string(&self) -> String {
        if !self.cached.is_empty() {
            return self.cached.clone();
        }
        let (m, e) = (self.mantissa, self.exponent);
        // Text that hnc_api's parser reads back as this value, written in this format.
        let text = match self.format {
            Format::DecimalSi => plain(m, e),
            Format::DecimalExponent => format!("{m}e{e}"),
            // m × 10^e = (m × 5^10 × 10^(e-10)) Ki, exactly.
            Format::BinarySi => match m.checked_mul(9_765_625) {
                Some(m) => format!("{}Ki", plain(m, e - 10)),
                None => plain(m, e),
            },
        };
        quantity::canonical(&text)
    }

    /// Go's `%#v` of the struct.
    pub(crate) fn go_syntax(&self) -> String {
        let format = match self.format {
            Format::DecimalSi => "DecimalSI",
            Format::DecimalExponent => "DecimalExponent",
            Format::BinarySi => "BinarySI",
        };
        let ((value, scale), dec) = match self.int {
            Some(i) => (i, "(*inf.Dec)(nil)"),
            None => ((0, 0), "(*inf.Dec)(0xc000000000)"),
        };
        format!(
            "resource.Quantity{{i:resource.int64Amount{{value:{value}, scale:{scale}}}, d:resource.infDecAmount{{Dec:{dec}}}, s:{:?}, Format:\"{format}\"}}",
            self.cached
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn q(text: &str) -> GoQuantity {
        GoQuantity::from_json(&json!(text)).unwrap_or_else(|| panic!("{text} decodes"))
    }

    #[test]
    fn the_sent_text_is_kept_when_parse_quantity_keeps_it() {
        for (input, string) in [
            ("0", "0"),
            ("1500m", "1500m"),
            ("-1", "-1"),
            ("+5", "+5"),
            ("2Gi", "2Gi"),
            ("8Gi", "8Gi"),
            ("1.5", "1500m"),
            ("-1.5", "-1500m"),
            ("1000", "1k"),
            ("1e3", "1e3"),
            ("1.0001", "1001m"),
            ("0.9999", "1"),
            ("-0.0001", "-1m"),
            ("1.5Gi", "1536Mi"),
            (" 3 ", "3"),
        ] {
            assert_eq!(q(input).string(), string, "{input}");
        }
    }

    #[test]
    fn the_struct_prints_as_go_prints_it() {
        assert_eq!(
            q("1500m").go_syntax(),
            "resource.Quantity{i:resource.int64Amount{value:1500, scale:-3}, d:resource.infDecAmount{Dec:(*inf.Dec)(nil)}, s:\"1500m\", Format:\"DecimalSI\"}"
        );
        // As kubelet's hugepages errors show them: 8Gi is not cached, 2Gi is.
        assert_eq!(
            q("8Gi").go_syntax(),
            "resource.Quantity{i:resource.int64Amount{value:8589934592, scale:0}, d:resource.infDecAmount{Dec:(*inf.Dec)(nil)}, s:\"\", Format:\"BinarySI\"}"
        );
        assert!(
            q("2Gi").go_syntax().contains(
                "value:2147483648, scale:0}, d:resource.infDecAmount{Dec:(*inf.Dec)(nil)}, s:\"2Gi\""
            )
        );
        assert!(
            q("1.0001")
                .go_syntax()
                .starts_with("resource.Quantity{i:resource.int64Amount{value:1001, scale:-3}")
        );
        assert!(q("1.5Gi").go_syntax().contains("(*inf.Dec)(0x"));
    }

    #[test]
    fn signs_and_whole_numbers_are_read_after_rounding_to_milli_units() {
        assert!(q("-1").is_negative() && q("-0.0001").is_negative() && !q("0").is_negative());
        assert!(q("3").is_whole() && q("2k").is_whole() && q("1e3").is_whole() && q("0.9999").is_whole());
        assert!(!q("1500m").is_whole() && !q("1.0001").is_whole() && !q("1n").is_whole());
        assert_eq!(GoQuantity::from_json(&json!(3)), Some(q("3")));
        let zero = format!("0.{}Gi", "0".repeat(60));
        assert!(q(&zero).is_whole() && !q(&zero).is_negative() && q(&zero).string() == "0");
    }

    #[test]
    fn text_parse_quantity_refuses_is_not_read() {
        for text in ["", "lots", "1.2.3", "5Xi", "5ki", "1e", "--1"] {
            assert_eq!(GoQuantity::from_json(&json!(text)), None, "{text}");
        }
        // Go reads it; this arithmetic does not.
        assert_eq!(GoQuantity::from_json(&json!("1e99999999999")), None);
        assert_eq!(GoQuantity::from_json(&json!(true)), None);
    }
}
