//! Kubernetes resource quantities (`1.5`, `100m`, `2Gi`, `1e3`), parsed exactly and printed in canonical form,
//! as apimachinery's `Quantity` does. One implementation for everything that reads or prints quota amounts: the
//! `kubectl hns hrq` rendering prints every quantity of an HRQ's status canonically (`1.5` as `1500m`, `1024Mi` as
//! `1Gi`), and quota arithmetic needs sums and comparisons without floating point (`0.1 + 0.2` CPU is `300m`,
//! exactly).
//!
//! The printing rules: the suffix picks the format (none or `k`/`M`/`m`/… → decimal SI, `e3` → decimal exponent,
//! `Ki`/`Mi`/… → binary SI); values are rounded up to nano units; a decimal value is printed as an integer times
//! a power of ten that is a multiple of three; a binary value as an integer times the largest power of 1024
//! that divides it, unless it is fractional or smaller than 1024, which prints in decimal SI. Text that is not a
//! quantity, or too large for this arithmetic (beyond 10^38), is printed unchanged.

use std::cmp::Ordering;

/// The canonical text of `text`, or `text` itself when it does not parse.
pub fn canonical(text: &str) -> String {
    parse(text).and_then(Quantity::canonical).unwrap_or_else(|| text.to_owned())
}

/// How a quantity was written, which decides how it prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// No suffix, or a decimal SI suffix (`m`, `k`, `M`, ...).
    DecimalSi,
    /// `e<n>`.
    DecimalExponent,
    /// A binary SI suffix (`Ki`, `Mi`, ...).
    BinarySi,
}

/// A quantity: `mantissa × 10^exponent`, exact, and how it was written.
#[derive(Debug, Clone, Copy)]
pub struct Quantity {
    mantissa: i128,
    exponent: i32,
    format: Format,
}

const DECIMAL_SUFFIXES: [(&str, i32); 9] =
    [("n", -9), ("u", -6), ("m", -3), ("k", 3), ("M", 6), ("G", 9), ("T", 12), ("P", 15), ("E", 18)];
const BINARY_SUFFIXES: [&str; 7] = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"];

/// Parses a quantity as apimachinery's `ParseQuantity` accepts it; None when it is not one, or too large for
/// exact arithmetic here (more than 36 significant digits, or an exponent beyond ±36).
pub fn parse(text: &str) -> Option<Quantity> {
    let (negative, rest) = match text.as_bytes().first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    let number_end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
    let (number, suffix) = rest.split_at(number_end);
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() && fraction.is_empty() || fraction.contains('.') {
        return None;
    }
    let digits = format!("{whole}{fraction}");
    let significant = digits.trim_start_matches('0');
    if significant.len() > 36 {
        return None;
    }
    let mut mantissa: i128 = if significant.is_empty() { 0 } else { significant.parse().ok()? };
    let mut exponent = -i32::try_from(fraction.len()).ok()?;
    let format = if suffix.is_empty() {
        Format::DecimalSi
    } else if let Some((_, e)) = DECIMAL_SUFFIXES.iter().find(|(s, _)| *s == suffix) {
        exponent += e;
        Format::DecimalSi
    } else if let Some(power) = BINARY_SUFFIXES.iter().skip(1).position(|s| *s == suffix) {
        mantissa = mantissa.checked_mul(1i128 << (10 * (power + 1)))?;
        Format::BinarySi
    } else if let Some(e) = suffix.strip_prefix(['e', 'E']) {
        exponent += e.parse::<i32>().ok().filter(|e| e.abs() <= 36)?;
        Format::DecimalExponent
    } else {
        return None;
    };
    if negative {
        mantissa = -mantissa;
    }
    Some(Quantity { mantissa, exponent, format })
}

impl Quantity {
    /// The canonical text, as apimachinery's `Quantity.String()` prints it; None beyond this arithmetic.
    pub fn canonical(mut self) -> Option<String> {
        // Round up (away from zero) to nano units: a request for a tiny amount still gets some.
        if self.exponent < -9 {
            let divisor = 10i128.checked_pow(u32::try_from(-9 - self.exponent).ok()?)?;
            let (quotient, remainder) = (self.mantissa / divisor, self.mantissa % divisor);
            self.mantissa = quotient + remainder.signum();
            self.exponent = -9;
        }
        if self.mantissa == 0 {
            return Some("0".to_owned());
        }
        let mut format = self.format;
        if format == Format::BinarySi {
            // apimachinery caps binary quantities at the largest int64.
            let max = i128::from(i64::MAX);
            let (whole, exact) = self.whole_part()?;
            if whole.abs() > max || (whole.abs() == max && !exact) {
                return Some((whole.signum() * max).to_string());
            }
            if exact && whole.abs() >= 1024 {
                return Some(binary(whole));
            }
            format = Format::DecimalSi;
        }
        while self.mantissa % 10 == 0 {
            self.mantissa /= 10;
            self.exponent += 1;
        }
        let shift = self.exponent.rem_euclid(3);
        self.mantissa = self.mantissa.checked_mul(10i128.pow(shift.unsigned_abs()))?;
        self.exponent -= shift;
        let suffix = match (format, self.exponent) {
            (_, 0) => String::new(),
            (Format::DecimalExponent, e) => format!("e{e}"),
            (_, e) => DECIMAL_SUFFIXES.iter().find(|(_, x)| *x == e)?.0.to_owned(),
        };
        Some(format!("{}{suffix}", self.mantissa))
    }

    /// The value truncated toward zero, and whether that is exact.
    fn whole_part(&self) -> Option<(i128, bool)> {
        if self.exponent >= 0 {
            let whole = self.mantissa.checked_mul(10i128.checked_pow(self.exponent.unsigned_abs())?)?;
            return Some((whole, true));
        }
        let divisor = 10i128.checked_pow(self.exponent.unsigned_abs())?;
        Some((self.mantissa / divisor, self.mantissa % divisor == 0))
    }
}

fn binary(mut value: i128) -> String {
    let mut power = 0;
    while value % 1024 == 0 && power + 1 < BINARY_SUFFIXES.len() {
        value /= 1024;
        power += 1;
    }
    format!("{value}{}", BINARY_SUFFIXES[power])
}

impl Quantity {
    /// Zero, in decimal SI.
    pub const ZERO: Quantity = Quantity { mantissa: 0, exponent: 0, format: Format::DecimalSi };

    /// A whole number, in decimal SI.
    pub const fn from_int(n: i64) -> Quantity {
        Quantity { mantissa: n as i128, exponent: 0, format: Format::DecimalSi }
    }

    /// How it was written.
    pub fn format(&self) -> Format {
        self.format
    }

    /// The value as a float (for metrics; inexact beyond 2^53).
    pub fn to_f64(&self) -> f64 {
        self.mantissa as f64 * 10f64.powi(self.exponent)
    }

    /// True below zero.
    pub fn is_negative(&self) -> bool {
        self.mantissa < 0
    }

    /// The exact sum, written as `self` was; None when it leaves this arithmetic.
    pub fn checked_add(self, other: Quantity) -> Option<Quantity> {
        let (a, b, exponent) = aligned(self, other)?;
        Some(Quantity { mantissa: a.checked_add(b)?, exponent, format: self.format })
    }

    /// The exact difference, written as `self` was; None when it leaves this arithmetic.
    pub fn checked_sub(self, other: Quantity) -> Option<Quantity> {
        let (a, b, exponent) = aligned(self, other)?;
        Some(Quantity { mantissa: a.checked_sub(b)?, exponent, format: self.format })
    }

    /// Compares the values exactly (not how they were written); None when they cannot be brought to one
    /// exponent within this arithmetic.
    pub fn checked_cmp(&self, other: &Quantity) -> Option<Ordering> {
        let (a, b, _) = aligned(*self, *other)?;
        Some(a.cmp(&b))
    }
}

/// Both mantissas at the smaller exponent, and that exponent.
fn aligned(a: Quantity, b: Quantity) -> Option<(i128, i128, i32)> {
    let exponent = a.exponent.min(b.exponent);
    let scale = |q: Quantity| -> Option<i128> {
        let shift = u32::try_from(q.exponent - exponent).ok()?;
        q.mantissa.checked_mul(10i128.checked_pow(shift)?)
    };
    Some((scale(a)?, scale(b)?, exponent))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_values_use_a_power_of_ten_that_is_a_multiple_of_three() {
        for (input, want) in [
            ("0", "0"),
            ("0m", "0"),
            ("1", "1"),
            ("1.5", "1500m"),
            ("0.1", "100m"),
            ("1000m", "1"),
            ("1500", "1500"),
            ("2000", "2k"),
            ("1.5k", "1500"),
            ("10k", "10k"),
            ("100m", "100m"),
            ("250M", "250M"),
            ("05", "5"),
            ("+5", "5"),
            ("-2.5", "-2500m"),
            ("1e3", "1e3"),
            ("1.5e3", "1500"),
            ("1E6", "1e6"),
            ("0.0000000001", "1n"),
            ("1.0000000001", "1000000001n"),
        ] {
            assert_eq!(canonical(input), want, "{input}");
        }
    }

    #[test]
    fn binary_values_use_the_largest_power_of_1024() {
        for (input, want) in [
            ("1Gi", "1Gi"),
            ("1024Mi", "1Gi"),
            ("1.5Gi", "1536Mi"),
            ("0.5Gi", "512Mi"),
            ("1000Ki", "1000Ki"),
            ("1.5Ki", "1536"),
            ("0.5Ki", "512"),
            ("1.1Ki", "1126400m"),
            ("1024Pi", "1Ei"),
            ("8Ei", "9223372036854775807"),
        ] {
            assert_eq!(canonical(input), want, "{input}");
        }
    }

    #[test]
    fn unparsable_text_prints_unchanged() {
        assert_eq!(canonical("lots"), "lots");
        assert_eq!(canonical("1.2.3"), "1.2.3");
        assert_eq!(canonical("5Xi"), "5Xi");
        assert_eq!(canonical(""), "");
    }

    fn q(text: &str) -> Quantity {
        parse(text).unwrap_or_else(|| panic!("{text} parses"))
    }

    #[test]
    fn sums_and_differences_are_exact() {
        let sum = |a: &str, b: &str| q(a).checked_add(q(b)).and_then(Quantity::canonical).unwrap();
        assert_eq!(sum("0.1", "0.2"), "300m", "no floating point");
        assert_eq!(sum("100m", "1"), "1100m");
        assert_eq!(sum("1Gi", "512Mi"), "1536Mi", "written as the left side");
        assert_eq!(sum("1k", "1e3"), "2k");
        assert_eq!(sum("1n", "1"), "1000000001n");
        let diff = |a: &str, b: &str| q(a).checked_sub(q(b)).and_then(Quantity::canonical).unwrap();
        assert_eq!(diff("1", "100m"), "900m");
        assert_eq!(diff("1Gi", "1Gi"), "0");
        assert!(q("1").checked_sub(q("2")).unwrap().is_negative());
    }

    #[test]
    fn comparisons_are_by_value() {
        assert_eq!(q("1").checked_cmp(&q("1000m")), Some(Ordering::Equal));
        assert_eq!(q("1Ki").checked_cmp(&q("1024")), Some(Ordering::Equal));
        assert_eq!(q("1k").checked_cmp(&q("1Ki")), Some(Ordering::Less));
        assert_eq!(q("1.5").checked_cmp(&q("1499m")), Some(Ordering::Greater));
        assert_eq!(q("-1").checked_cmp(&Quantity::ZERO), Some(Ordering::Less));
        assert_eq!(q("0.000000001").checked_cmp(&Quantity::ZERO), Some(Ordering::Greater));
    }

    #[test]
    fn arithmetic_beyond_range_is_refused_not_wrapped() {
        // 10^36 at nano precision is 10^45 nano units, beyond i128.
        assert!(q("1e36").checked_add(q("1n")).is_none());
        assert!(q("1e36").checked_cmp(&q("1n")).is_none());
        assert_eq!(q("1e36").checked_cmp(&q("1")), Some(Ordering::Greater));
    }
}
