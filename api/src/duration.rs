//! Durations as Go writes and parses them (`time.ParseDuration`): the API server's `?timeout=` query parameter,
//! kubectl's `--request-timeout`. One parser for the workspace.

use std::time::Duration;

/// The longest duration Go has: `math.MaxInt64` nanoseconds (about 2562047h).
pub const MAX_GO: Duration = Duration::from_nanos(i64::MAX as u64);

/// Parses a non-negative Go duration: one or more decimal numbers each with a unit — `ns`, `us` (`µs`), `ms`,
/// `s`, `m`, `h` — as in `300ms`, `1.5s`, `1m0s`, `2h45m`; `0` alone is zero; less than a nanosecond is zero,
/// as Go truncates. `None` for anything else: no unit, an unknown unit, a sign other than a leading `+`, or a
/// total beyond [`MAX_GO`], which Go refuses too ([`parse_go_checked`] tells the two apart).
pub fn parse_go(text: &str) -> Option<Duration> {
    parse_go_checked(text).ok()
}

/// Why a text is not a Go duration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DurationError {
    /// Not the syntax: no unit, an unknown unit, a sign, a malformed number.
    Malformed,
    /// Well formed, but longer than [`MAX_GO`].
    TooLong,
}

/// [`parse_go`], saying why a text is refused.
pub fn parse_go_checked(text: &str) -> Result<Duration, DurationError> {
    use DurationError::{Malformed, TooLong};
    let mut rest = text.strip_prefix('+').unwrap_or(text);
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    if rest.is_empty() {
        return Err(Malformed);
    }
    let mut total = Duration::ZERO;
    while !rest.is_empty() {
        let number_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        let (number, tail) = rest.split_at(number_len);
        let number: f64 = number.parse().map_err(|_| Malformed)?;
        let unit_len = tail.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let seconds = match unit {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(Malformed),
        };
        let part = Duration::try_from_secs_f64(number * seconds).map_err(|_| TooLong)?;
        total = total.checked_add(part).ok_or(TooLong)?;
        rest = tail;
    }
    if total > MAX_GO { Err(TooLong) } else { Ok(total) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations_as_the_api_server_and_kubectl_write_them() {
        let ms = Duration::from_millis;
        assert_eq!(parse_go("10s"), Some(ms(10_000)));
        assert_eq!(parse_go("1m0s"), Some(ms(60_000)));
        assert_eq!(parse_go("1.5s"), Some(ms(1500)));
        assert_eq!(parse_go("4000ms"), Some(ms(4000)));
        assert_eq!(parse_go("1h2m3s"), Some(Duration::from_secs(3723)));
        assert_eq!(parse_go("+2s"), Some(ms(2000)));
        assert_eq!(parse_go("0"), Some(Duration::ZERO));
        for bad in ["", "+", "10", "s", "10x", "-1s", "1..5s", "1e3s", ".s", "1e400h"] {
            assert_eq!(parse_go(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn totals_beyond_a_duration_are_refused_not_wrapped() {
        assert_eq!(parse_go_checked("99999999999999999999999h"), Err(DurationError::TooLong));
        assert_eq!(parse_go_checked("5x"), Err(DurationError::Malformed));
        let huge = "5000000000000000000s".repeat(4);
        assert_eq!(parse_go(&huge), None);
        assert_eq!(parse_go("99999999999999999999999h"), None);
        assert_eq!(parse_go("2562047h"), Some(Duration::from_secs(2562047 * 3600)));
        assert_eq!(parse_go("2562048h"), None);
        assert_eq!(parse_go(".1ns"), Some(Duration::ZERO));
    }
}
