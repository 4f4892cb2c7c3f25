//! The upper bounds on every count and duration capbench accepts (flags,
//! suite files, stored plans): beyond them the input is refused with exit
//! 2 before anything is allocated or started from it. README, "What
//! capbench promises about bad input and failures", lists them.

/// Worker processes per case (`--repeat`, `sampling.repeat`).
pub const MAX_REPEAT: usize = 1000;
/// A/A runs of `calibrate --runs`.
pub const MAX_CALIBRATE_RUNS: usize = 100;
/// Seconds a worker may run (`--case-timeout`, `case_timeout_s`): a week.
pub const MAX_CASE_TIMEOUT_S: f64 = 7.0 * 24.0 * 3600.0;
/// Samples and warm-up iterations of one process (`sampling.min_samples`,
/// `max_samples`, `warmup_iters`).
pub const MAX_SAMPLES: usize = 10_000_000;
/// Sampling time budget of one process (`sampling.max_time_s`): a day.
pub const MAX_SAMPLING_TIME_S: f64 = 24.0 * 3600.0;
/// CPU threads of a worker (`--threads`, `threads`).
pub const MAX_THREADS: usize = 4096;

/// `value` in 1..=max, or the message naming `what` and the bound.
pub fn count(what: &str, value: usize, max: usize) -> Result<usize, String> {
    if value == 0 {
        return Err(format!("{what} must be at least 1"));
    }
    if value > max {
        return Err(format!("{what} {value} is beyond the limit of {max}"));
    }
    Ok(value)
}

/// A duration in seconds, positive, finite and at most `max`.
pub fn seconds(what: &str, value: f64, max: f64) -> Result<f64, String> {
    if !(value > 0.0 && value.is_finite()) {
        return Err(format!("{what} must be a positive number of seconds"));
    }
    if value > max {
        return Err(format!(
            "{what} {value} s is beyond the limit of {max} s ({} days)",
            max / 86400.0
        ));
    }
    Ok(value)
}

/// clap parser of `--repeat`.
pub fn parse_repeat(s: &str) -> Result<usize, String> {
    count("--repeat", parse_usize(s)?, MAX_REPEAT)
}

/// clap parser of `calibrate --runs` (at least 2: A/A needs a pair).
pub fn parse_calibrate_runs(s: &str) -> Result<usize, String> {
    let n = count("--runs", parse_usize(s)?, MAX_CALIBRATE_RUNS)?;
    if n < 2 {
        return Err("--runs must be at least 2".into());
    }
    Ok(n)
}

/// clap parser of `--threads`.
pub fn parse_threads(s: &str) -> Result<usize, String> {
    count("--threads", parse_usize(s)?, MAX_THREADS)
}

/// clap parser of `--case-timeout`.
pub fn parse_case_timeout(s: &str) -> Result<f64, String> {
    let v = s
        .trim()
        .parse::<f64>()
        .map_err(|_| format!("'{s}' is not a number of seconds"))?;
    seconds("--case-timeout", v, MAX_CASE_TIMEOUT_S)
}

fn parse_usize(s: &str) -> Result<usize, String> {
    s.trim()
        .parse::<usize>()
        .map_err(|_| format!("'{s}' is not a whole number ≥ 1"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_durations_beyond_the_limits_are_refused() {
        assert_eq!(parse_repeat("3"), Ok(3));
        for bad in ["0", "1001", "1000000000", "4611686018427387904", "-1", "x"] {
            assert!(parse_repeat(bad).is_err(), "{bad}");
        }
        assert!(parse_calibrate_runs("1").is_err());
        assert!(parse_calibrate_runs("101").is_err());
        assert_eq!(parse_calibrate_runs("2"), Ok(2));
        for bad in ["1e20", "inf", "NaN", "0", "-5", "604801"] {
            assert!(parse_case_timeout(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_case_timeout("0.5"), Ok(0.5));
        assert!(parse_threads("0").is_err() && parse_threads("5000").is_err());
    }
}
