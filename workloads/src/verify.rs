//! Output checks against the CPU reference: every backend's answer is compared
//! before any timing, and the worst differences are recorded either way.

use serde::{Deserialize, Serialize};

/// What the check compared and how far apart the answers were.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Verification {
    pub passed: bool,
    /// What the output was compared against.
    pub reference: String,
    pub elements_checked: u64,
    pub max_abs_diff: f64,
    /// max |out - ref| / max(|ref|, 1e-6) over elements.
    pub max_rel_diff: f64,
    /// max |out - ref| / max |ref| — the figure the tolerance applies to,
    /// so near-zero reference elements do not blow up the check.
    pub scaled_max_diff: f64,
    pub tolerance: f64,
    pub nan_or_inf: u64,
    /// Model workloads: mean KL(reference ‖ output) of next-token
    /// distributions, nats.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mean_kl: Option<f64>,
    /// Model workloads: fraction of positions whose argmax token agrees.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top1_agreement: Option<f64>,
    /// What else was checked, in words (loss, gradient completeness, …).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub note: String,
}

/// Compares `out` with `reference` element-wise; `tolerance` bounds the
/// scaled max difference (see `Verification::scaled_max_diff`).
pub fn compare(out: &[f32], reference: &[f64], tolerance: f64, what: &str) -> Verification {
    let n = out.len().min(reference.len());
    let max_ref = reference.iter().fold(0.0f64, |m, r| m.max(r.abs()));
    let mut max_abs = 0.0f64;
    let mut max_rel = 0.0f64;
    let mut bad = 0u64;
    for (o, r) in out.iter().zip(reference) {
        let o = *o as f64;
        if !o.is_finite() {
            bad += 1;
            continue;
        }
        let d = (o - r).abs();
        max_abs = max_abs.max(d);
        max_rel = max_rel.max(d / r.abs().max(1e-6));
    }
    let scaled = if max_ref > 0.0 {
        max_abs / max_ref
    } else {
        max_abs
    };
    let length_ok = out.len() == reference.len();
    Verification {
        passed: length_ok && bad == 0 && scaled <= tolerance,
        reference: what.to_string(),
        elements_checked: n as u64,
        max_abs_diff: max_abs,
        max_rel_diff: max_rel,
        scaled_max_diff: scaled,
        tolerance,
        nan_or_inf: bad,
        mean_kl: None,
        top1_agreement: None,
        note: String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identical_passes_and_perturbed_fails() {
        let r = vec![1.0f64, -2.0, 4.0];
        let ok = compare(&[1.0, -2.0, 4.0], &r, 1e-6, "t");
        assert!(ok.passed);
        assert_eq!(ok.max_abs_diff, 0.0);
        let bad = compare(&[1.0, -2.0, 4.5], &r, 1e-6, "t");
        assert!(!bad.passed);
        assert!((bad.max_abs_diff - 0.5).abs() < 1e-12);
        assert!((bad.scaled_max_diff - 0.125).abs() < 1e-12);
    }

    #[test]
    fn nan_fails_and_is_counted() {
        let v = compare(&[f32::NAN, 1.0], &[0.0, 1.0], 1.0, "t");
        assert!(!v.passed);
        assert_eq!(v.nan_or_inf, 1);
    }

    #[test]
    fn length_mismatch_fails() {
        assert!(!compare(&[1.0], &[1.0, 2.0], 1.0, "t").passed);
    }
}
