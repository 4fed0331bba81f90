//! Bad input never panics the plugin's parsers: `--request-timeout` values (the quantities of an HRQ's status
//! are `hnc_api::quantity`'s, fuzzed in `api/tests/fuzz_parsers.rs`). Each property runs a bounded number of cases in CI; a longer run sets `PROPTEST_CASES` (see
//! docs/testing.md).

use std::time::Duration;

use hnc_plugin::client::RequestTimeout;
use proptest::prelude::*;

/// `cases` per property, unless `PROPTEST_CASES` asks for another number.
fn config(cases: u32) -> ProptestConfig {
    let default = ProptestConfig::default();
    let cases = if std::env::var_os("PROPTEST_CASES").is_some() { default.cases } else { cases };
    ProptestConfig { cases, ..default }
}

/// Go's longest duration, `math.MaxInt64` nanoseconds.
const LONGEST: Duration = Duration::new(9_223_372_036, 854_775_807);

fn duration_text() -> impl Strategy<Value = String> {
    let number = prop_oneof!["[0-9]{1,3}", "[0-9]{15,25}", "[0-9]{0,3}\\.[0-9]{0,3}", Just("9".repeat(400))];
    let unit = prop_oneof![
        Just("ns"),
        Just("us"),
        Just("µs"),
        Just("ms"),
        Just("s"),
        Just("m"),
        Just("h"),
        Just(""),
        Just("x"),
        Just("-")
    ];
    prop::collection::vec((number, unit), 1..4)
        .prop_map(|parts| parts.into_iter().map(|(n, u)| format!("{n}{u}")).collect())
}

proptest! {
    #![proptest_config(config(1000))]

    #[test]
    fn request_timeouts_parse_to_a_go_duration_or_an_error(text in prop_oneof![duration_text(), any::<String>()]) {
        match RequestTimeout::parse(&text) {
            Ok(timeout) => {
                if let Some(duration) = timeout.duration {
                    prop_assert!(duration <= LONGEST, "{:?} → {:?}", text, duration);
                    prop_assert!(!duration.is_zero());
                }
            }
            Err(error) => prop_assert!(error.contains(&format!("{text:?}")), "{}", error),
        }
    }

    #[test]
    fn whole_seconds_within_gos_range_are_exact(seconds in 0..=9_223_372_036u64, bare in any::<bool>()) {
        let text = if bare { seconds.to_string() } else { format!("{seconds}s") };
        let parsed = RequestTimeout::parse(&text).map_err(TestCaseError::fail)?;
        prop_assert_eq!(parsed.duration, (seconds > 0).then(|| Duration::from_secs(seconds)));
    }
}
