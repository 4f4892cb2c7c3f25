//! Pure statistics over timing samples. No I/O, no clocks: every function is
//! deterministic (bootstraps take an explicit seed) and unit-tested against
//! values computed by hand.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// Bootstrap resamples for confidence intervals: 2000 is the usual choice for
/// percentile intervals (Efron & Tibshirani 1993, §19.3 recommend ≥ 1000).
pub const BOOTSTRAP_RESAMPLES: usize = 2000;
/// Seed for the bootstrap, so re-analysing stored samples gives the same CI.
pub const BOOTSTRAP_SEED: u64 = 0xB007_57A9;

/// Descriptive statistics of one sample set (units are those of the input).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub n: usize,
    pub mean: f64,
    /// Sample standard deviation (n − 1 denominator); 0 for n < 2.
    pub stddev: f64,
    pub median: f64,
    /// Median absolute deviation from the median, unscaled.
    pub mad: f64,
    pub min: f64,
    pub max: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    /// 95% confidence interval of the median.
    pub ci95_low: f64,
    pub ci95_high: f64,
    /// How the interval was computed.
    pub ci_method: String,
    /// Tukey fences: outside 1.5·IQR (mild, includes severe) and 3·IQR (severe).
    pub outliers_mild: usize,
    pub outliers_severe: usize,
}

fn sorted(xs: &[f64]) -> Vec<f64> {
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    v
}

/// Median of already sorted data; NaN when empty.
fn median_sorted(s: &[f64]) -> f64 {
    match s.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => s[n / 2],
        n => (s[n / 2 - 1] + s[n / 2]) / 2.0,
    }
}

pub fn median(xs: &[f64]) -> f64 {
    median_sorted(&sorted(xs))
}

pub fn mean(xs: &[f64]) -> f64 {
    if xs.is_empty() {
        return f64::NAN;
    }
    xs.iter().sum::<f64>() / xs.len() as f64
}

/// Sample standard deviation (Bessel-corrected).
pub fn stddev(xs: &[f64]) -> f64 {
    if xs.len() < 2 {
        return 0.0;
    }
    let m = mean(xs);
    (xs.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (xs.len() - 1) as f64).sqrt()
}

/// Median absolute deviation: median(|x − median(x)|), unscaled
/// (multiply by 1.4826 for a normal-consistent σ estimate).
pub fn mad(xs: &[f64]) -> f64 {
    let m = median(xs);
    median(&xs.iter().map(|x| (x - m).abs()).collect::<Vec<_>>())
}

/// Percentile `p` in [0, 100] by linear interpolation between closest ranks
/// (Hyndman & Fan 1996 type 7, the default of R and NumPy).
pub fn percentile_sorted(s: &[f64], p: f64) -> f64 {
    if s.is_empty() {
        return f64::NAN;
    }
    let h = (s.len() - 1) as f64 * (p / 100.0).clamp(0.0, 1.0);
    let lo = h.floor() as usize;
    let hi = h.ceil() as usize;
    s[lo] + (h - lo as f64) * (s[hi] - s[lo])
}

pub fn percentile(xs: &[f64], p: f64) -> f64 {
    percentile_sorted(&sorted(xs), p)
}

/// Counts Tukey outliers (Tukey 1977): beyond Q1 − k·IQR or Q3 + k·IQR with
/// k = 1.5 (mild, severe included) and k = 3 (severe).
pub fn tukey_outliers(xs: &[f64]) -> (usize, usize) {
    let s = sorted(xs);
    let q1 = percentile_sorted(&s, 25.0);
    let q3 = percentile_sorted(&s, 75.0);
    let iqr = q3 - q1;
    let count = |k: f64| {
        s.iter()
            .filter(|x| **x < q1 - k * iqr || **x > q3 + k * iqr)
            .count()
    };
    (count(1.5), count(3.0))
}

/// Percentile-bootstrap 95% CI of the median (Efron & Tibshirani 1993,
/// ch. 13): resample with replacement, take the 2.5th and 97.5th percentiles
/// of the resampled medians.
pub fn bootstrap_median_ci(xs: &[f64], resamples: usize, seed: u64) -> (f64, f64) {
    if xs.len() < 2 {
        let m = median(xs);
        return (m, m);
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut buf = vec![0.0; xs.len()];
    let mut meds: Vec<f64> = (0..resamples)
        .map(|_| {
            for b in buf.iter_mut() {
                *b = xs[rng.random_range(0..xs.len())];
            }
            median(&buf)
        })
        .collect();
    meds.sort_by(f64::total_cmp);
    (
        percentile_sorted(&meds, 2.5),
        percentile_sorted(&meds, 97.5),
    )
}

/// Distribution-free 95% CI of the median from order statistics: the ranks
/// n/2 ∓ 1.96·√n/2 of the binomial(n, ½) normal approximation (Conover,
/// *Practical Nonparametric Statistics*, 1999, §3.2). Cheap and exact enough
/// to decide when to stop sampling; `None` for fewer than 6 samples.
pub fn order_statistic_median_ci(sorted_xs: &[f64]) -> Option<(f64, f64)> {
    let n = sorted_xs.len();
    if n < 6 {
        return None;
    }
    let half_width = 1.96 * (n as f64).sqrt() / 2.0;
    let lo = ((n as f64 / 2.0 - half_width).floor() as isize).max(0) as usize;
    let hi = ((n as f64 / 2.0 + half_width).ceil() as usize).min(n - 1);
    Some((sorted_xs[lo], sorted_xs[hi]))
}

/// Everything in `Summary`, with the CI from a seeded percentile bootstrap.
pub fn summarize(xs: &[f64]) -> Summary {
    let s = sorted(xs);
    let (lo, hi) = bootstrap_median_ci(xs, BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED);
    let (mild, severe) = tukey_outliers(xs);
    Summary {
        n: xs.len(),
        mean: mean(xs),
        stddev: stddev(xs),
        median: median_sorted(&s),
        mad: mad(xs),
        min: s.first().copied().unwrap_or(f64::NAN),
        max: s.last().copied().unwrap_or(f64::NAN),
        p50: percentile_sorted(&s, 50.0),
        p90: percentile_sorted(&s, 90.0),
        p99: percentile_sorted(&s, 99.0),
        ci95_low: lo,
        ci95_high: hi,
        ci_method: format!(
            "percentile bootstrap of the median, within one process ({BOOTSTRAP_RESAMPLES} resamples)"
        ),
        outliers_mild: mild,
        outliers_severe: severe,
    }
}

/// Hierarchical (two-level) bootstrap 95% CI for the median of per-group
/// medians (Davison & Hinkley 1997, §3.8; Saravanan et al. 2020,
/// "Application of the hierarchical bootstrap to multi-level data"): resample
/// groups (worker processes) with replacement, then samples within each
/// chosen group, and take the median of the group medians. The interval thus
/// carries the between-process variation that iterations inside one process
/// cannot show. Returns (point estimate, low, high).
pub fn hierarchical_median_ci(groups: &[Vec<f64>], resamples: usize, seed: u64) -> (f64, f64, f64) {
    let Some(mut h) = Hierarchical::new(groups) else {
        return (f64::NAN, f64::NAN, f64::NAN);
    };
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut stats: Vec<f64> = (0..resamples).map(|_| h.resample(&mut rng)).collect();
    stats.sort_by(f64::total_cmp);
    (
        h.point(),
        percentile_sorted(&stats, 2.5),
        percentile_sorted(&stats, 97.5),
    )
}

/// Hierarchical-bootstrap 95% CI of the ratio `stat(a) / stat(b)`, where
/// `stat` is the median of group medians and the two sides are resampled
/// independently (Davison & Hinkley 1997, §3.8 for the two-level scheme;
/// percentile interval of the ratio). `None` when a side has no samples.
pub fn hierarchical_ratio_ci(
    a: &[Vec<f64>],
    b: &[Vec<f64>],
    resamples: usize,
    seed: u64,
) -> Option<(f64, f64, f64)> {
    let mut ha = Hierarchical::new(a)?;
    let mut hb = Hierarchical::new(b)?;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut ratios: Vec<f64> = (0..resamples)
        .map(|_| ha.resample(&mut rng) / hb.resample(&mut rng))
        .collect();
    ratios.sort_by(f64::total_cmp);
    Some((
        ha.point() / hb.point(),
        percentile_sorted(&ratios, 2.5),
        percentile_sorted(&ratios, 97.5),
    ))
}

/// One side of a two-level bootstrap: groups (processes) of samples.
struct Hierarchical<'a> {
    groups: Vec<&'a Vec<f64>>,
    buf: Vec<f64>,
    group_meds: Vec<f64>,
}

impl<'a> Hierarchical<'a> {
    fn new(groups: &'a [Vec<f64>]) -> Option<Self> {
        let groups: Vec<&Vec<f64>> = groups.iter().filter(|g| !g.is_empty()).collect();
        if groups.is_empty() {
            return None;
        }
        let n = groups.len();
        Some(Hierarchical {
            groups,
            buf: Vec::new(),
            group_meds: vec![0.0; n],
        })
    }

    /// Median of the group medians, on the data as measured.
    fn point(&self) -> f64 {
        median(&self.groups.iter().map(|g| median(g)).collect::<Vec<_>>())
    }

    /// Resample groups with replacement, then samples within each chosen
    /// group; return the median of the resampled group medians.
    fn resample(&mut self, rng: &mut ChaCha8Rng) -> f64 {
        for i in 0..self.group_meds.len() {
            let g = self.groups[rng.random_range(0..self.groups.len())];
            self.buf.clear();
            self.buf
                .extend((0..g.len()).map(|_| g[rng.random_range(0..g.len())]));
            self.group_meds[i] = median(&self.buf);
        }
        median(&self.group_meds)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn location_and_spread_match_hand_values() {
        let xs = [2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0];
        assert!(close(mean(&xs), 5.0));
        // Σ(x−5)² = 32; 32/7
        assert!(close(stddev(&xs), (32.0f64 / 7.0).sqrt()));
        assert!(close(median(&xs), 4.5));
        // |x − 4.5| = 2.5 .5 .5 .5 .5 .5 2.5 4.5 → median 0.5
        assert!(close(mad(&xs), 0.5));
        assert!(close(median(&[3.0, 1.0, 2.0]), 2.0));
        assert!(median(&[]).is_nan());
    }

    #[test]
    fn percentiles_follow_type_7() {
        let xs = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0];
        assert!(close(percentile(&xs, 50.0), 5.5));
        // h = 9·0.9 = 8.1 → 9 + 0.1·1
        assert!(close(percentile(&xs, 90.0), 9.1));
        assert!(close(percentile(&xs, 99.0), 9.91));
        assert!(close(percentile(&xs, 0.0), 1.0));
        assert!(close(percentile(&xs, 100.0), 10.0));
    }

    #[test]
    fn tukey_counts_mild_and_severe() {
        // Q1 = 2.25, Q3 = 4.75 on 1..=6 without the outliers; add 12 and 30.
        let xs = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 12.0, 30.0];
        // sorted: Q1 = 2.75, Q3 = 7.5, IQR = 4.75: mild > 14.625, severe > 21.75
        let (mild, severe) = tukey_outliers(&xs);
        assert_eq!((mild, severe), (1, 1));
        assert_eq!(tukey_outliers(&[1.0, 1.0, 1.0]), (0, 0));
    }

    #[test]
    fn bootstrap_ci_brackets_the_median_and_is_seeded() {
        let xs: Vec<f64> = (0..200).map(|i| 1.0 + (i % 17) as f64 * 0.01).collect();
        let m = median(&xs);
        let (lo, hi) = bootstrap_median_ci(&xs, 2000, 1);
        assert!(lo <= m && m <= hi, "{lo} {m} {hi}");
        assert!(hi - lo < 0.05);
        assert_eq!(bootstrap_median_ci(&xs, 2000, 1), (lo, hi));
        assert_eq!(bootstrap_median_ci(&[4.0], 10, 1), (4.0, 4.0));
        // A constant sample has a zero-width interval.
        assert_eq!(bootstrap_median_ci(&[2.0; 30], 500, 3), (2.0, 2.0));
    }

    #[test]
    fn order_statistic_ci_uses_the_binomial_ranks() {
        let xs: Vec<f64> = (1..=100).map(|i| i as f64).collect();
        // n = 100: 50 ∓ 9.8 → ranks 40 and 60 (0-based) → values 41 and 61
        assert_eq!(order_statistic_median_ci(&xs), Some((41.0, 61.0)));
        assert_eq!(order_statistic_median_ci(&xs[..5]), None);
    }

    #[test]
    fn hierarchical_ci_widens_with_between_group_spread() {
        let tight: Vec<Vec<f64>> = (0..5).map(|_| vec![1.0, 1.01, 0.99, 1.0, 1.02]).collect();
        let spread: Vec<Vec<f64>> = (0..5)
            .map(|g| {
                vec![
                    1.0 + g as f64 * 0.1,
                    1.01 + g as f64 * 0.1,
                    0.99 + g as f64 * 0.1,
                ]
            })
            .collect();
        let (p1, l1, h1) = hierarchical_median_ci(&tight, 1000, 7);
        let (p2, l2, h2) = hierarchical_median_ci(&spread, 1000, 7);
        assert!(close(p1, 1.0));
        assert!(close(p2, 1.2));
        assert!(h2 - l2 > 5.0 * (h1 - l1), "{l1} {h1} vs {l2} {h2}");
        assert!(l2 <= p2 && p2 <= h2);
    }

    #[test]
    fn ratio_ci_finds_a_known_shift_and_brackets_one_for_equal_sides() {
        // Three "processes" per side with a little jitter; B is 10% slower.
        let jitter = |base: f64, p: usize| -> Vec<f64> {
            (0..30)
                .map(|i| base * (1.0 + 0.004 * (((i * 7 + p * 3) % 11) as f64 - 5.0) / 5.0))
                .collect()
        };
        let a: Vec<Vec<f64>> = (0..3).map(|p| jitter(1.0, p)).collect();
        let b: Vec<Vec<f64>> = (0..3).map(|p| jitter(1.1, p)).collect();
        let (r, lo, hi) = hierarchical_ratio_ci(&a, &b, 1000, 1).unwrap();
        assert!((r - 1.0 / 1.1).abs() < 0.01, "{r}");
        assert!(hi < 0.95, "10% shift must be outside ±5%: {lo}..{hi}");
        let a2: Vec<Vec<f64>> = (3..6).map(|p| jitter(1.0, p)).collect();
        let (_, lo, hi) = hierarchical_ratio_ci(&a, &a2, 1000, 1).unwrap();
        assert!(lo <= 1.0 && 1.0 <= hi && hi - lo < 0.05, "{lo}..{hi}");
        assert!(hierarchical_ratio_ci(&a, &[], 10, 1).is_none());
    }

    #[test]
    fn summary_fills_every_field() {
        let xs: Vec<f64> = (1..=10).map(f64::from).collect();
        let s = summarize(&xs);
        assert_eq!(s.n, 10);
        assert!(close(s.median, 5.5) && close(s.p50, 5.5));
        assert!(close(s.min, 1.0) && close(s.max, 10.0));
        assert!(s.ci95_low <= 5.5 && s.ci95_high >= 5.5);
        assert_eq!(s.outliers_mild, 0);
    }
}
