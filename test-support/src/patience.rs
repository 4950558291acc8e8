//! One multiplier for every timing bound in the tests.

use std::sync::OnceLock;
use std::time::Duration;

/// The environment variable that holds the multiplier, a float of at least 1 (`2`, `1.5`).
pub const PATIENCE_VARIABLE: &str = "SCALELAB_TEST_PATIENCE";

/// How much longer than on a quiet developer machine every timing bound may be: the value of
/// `SCALELAB_TEST_PATIENCE`, or 1 when it is unset.
///
/// A value that is set but is not a finite number of at least 1 fails the test: silently
/// falling back to 1 would turn a loaded CI machine's slowness back into spurious failures,
/// and a value below 1 would tighten bounds below what the tests were written for (a lower
/// bound that follows a scaled sleep, for one, would then fail on any machine).
pub fn patience() -> f64 {
    static PATIENCE: OnceLock<f64> = OnceLock::new();
    *PATIENCE.get_or_init(|| match std::env::var(PATIENCE_VARIABLE) {
        Err(std::env::VarError::NotPresent) => 1.0,
        Err(error) => panic!("{PATIENCE_VARIABLE}: {error}"),
        Ok(text) => match text.trim().parse::<f64>() {
            Ok(value) if value.is_finite() && value >= 1.0 => value,
            _ => panic!("{PATIENCE_VARIABLE}={text:?} is not a number of at least 1"),
        },
    })
}

/// `bound` scaled by [`patience`]: use it for every upper bound that depends on how fast the
/// machine is (deadlines, client timeouts, "finished within" assertions).
///
/// Lower bounds ("not before the TTL ran out") must not be scaled, and a bound that proves
/// something about a configured value must stay below that value: scale the value alongside.
pub fn patient(bound: Duration) -> Duration {
    bound.mul_f64(patience())
}
