//! The fit/no-fit frontier of a workload under memory caps: between the
//! largest cap it failed to fit in and the smallest cap it ran in.

/// Where a workload stops fitting, from (cap in bytes, whether it ran) pairs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FitFrontier {
    /// Largest cap that did not fit, if any did not.
    pub largest_no_fit_bytes: Option<f64>,
    /// Smallest cap that fit, if any did.
    pub smallest_fit_bytes: Option<f64>,
    /// A cap that did not fit lies above one that did: the runs disagree
    /// (noise in peak memory, or different settings) and the frontier is
    /// not a clean threshold.
    pub inconsistent: bool,
}

pub fn frontier(caps: &[(f64, bool)]) -> Option<FitFrontier> {
    if caps.is_empty() {
        return None;
    }
    let max_of = |fits: bool| {
        caps.iter()
            .filter(|c| c.1 == fits)
            .map(|c| c.0)
            .fold(None, |m: Option<f64>, x| Some(m.map_or(x, |m| m.max(x))))
    };
    let min_fit = caps
        .iter()
        .filter(|c| c.1)
        .map(|c| c.0)
        .fold(None, |m: Option<f64>, x| Some(m.map_or(x, |m| m.min(x))));
    let max_no_fit = max_of(false);
    Some(FitFrontier {
        largest_no_fit_bytes: max_no_fit,
        smallest_fit_bytes: min_fit,
        inconsistent: matches!((max_no_fit, min_fit), (Some(n), Some(f)) if n >= f),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frontier_lies_between_largest_failure_and_smallest_success() {
        let f = frontier(&[(8.0, true), (2.0, false), (4.0, true), (1.0, false)]).unwrap();
        assert_eq!(f.largest_no_fit_bytes, Some(2.0));
        assert_eq!(f.smallest_fit_bytes, Some(4.0));
        assert!(!f.inconsistent);
        let f = frontier(&[(8.0, false), (4.0, true)]).unwrap();
        assert!(f.inconsistent);
        assert_eq!(frontier(&[]), None);
    }
}
