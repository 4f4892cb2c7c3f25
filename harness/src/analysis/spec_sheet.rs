//! Utilisation of a target's spec sheet: a case run under `--profile P`
//! reports the FLOP/s and bytes/s it reached here as fractions of P's
//! sourced peak and bandwidth (`mfu_profile`, `mbu_profile`). Below 1 this
//! machine is slower than the target's roof at that workload; above 1 it is
//! faster than the target could ever be — what caps cannot emulate (a
//! faster CPU's bandwidth, a GPU's FLOP/s) shows here, in numbers.

use crate::profiles::Profile;
use crate::results::{CaseResult, Status};

/// Writes `mfu_profile` / `mbu_profile` (and the spec figures used, with
/// their sources as tags) on every ok case whose `profile` tag names one of
/// `profiles` (the run's, stored whole in its options).
pub fn apply(cases: &mut [CaseResult], profiles: &[Profile]) {
    for c in cases.iter_mut().filter(|c| c.status == Status::Ok) {
        let Some(p) = c
            .tags
            .get("profile")
            .and_then(|name| profiles.iter().find(|p| &p.name == name))
        else {
            continue;
        };
        let dtype = c.tags.get("quant").cloned().unwrap_or_else(|| "f32".into());
        if let (Some(peak), Some(v)) = (
            p.peak_flops_for(&dtype),
            c.metrics.get("gflops_per_s").copied(),
        ) {
            c.metrics.insert("mfu_profile".into(), v * 1e9 / peak);
            c.metrics
                .insert("profile_peak_gflops_per_s".into(), peak / 1e9);
            let key = if p.peak_flops_per_s.contains_key(&dtype) {
                dtype.as_str()
            } else {
                "f32"
            };
            if let Some(s) = p.peak_flops_per_s.get(key) {
                c.tags
                    .insert("profile_peak_source".into(), s.source.clone());
            }
        }
        if let (Some(bw), Some(v)) = (p.bandwidth(), c.metrics.get("gbytes_per_s").copied()) {
            c.metrics.insert("mbu_profile".into(), v * 1e9 / bw);
            c.metrics.insert("profile_gbytes_per_s".into(), bw / 1e9);
            if let Some(s) = &p.bandwidth_bytes_per_s {
                c.tags
                    .insert("profile_bandwidth_source".into(), s.source.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::fixtures::{case, jittered};

    #[test]
    fn a_case_under_a_profile_reports_the_fraction_of_its_spec_sheet() {
        let p = crate::profiles::find("t4-16gb").unwrap();
        let bw = p.bandwidth().unwrap();
        let peak = p.peak_flops_for("f32").unwrap();
        // A GEMM at 2·128³ FLOPs and 3·128²·4 bytes per iteration.
        let mut c = case("kernel/gemm-f32-128", "cpu", jittered(1e-3, 3, 1));
        c.tags.insert("profile".into(), p.name.clone());
        let mut other = c.clone();
        other
            .tags
            .insert("profile".into(), "not-in-this-run".into());
        let mut cases = vec![c, other];
        apply(&mut cases, std::slice::from_ref(&p));
        let m = &cases[0].metrics;
        let gf = m["gflops_per_s"];
        assert!((m["mfu_profile"] - gf * 1e9 / peak).abs() < 1e-12);
        assert!((m["mbu_profile"] - m["gbytes_per_s"] * 1e9 / bw).abs() < 1e-12);
        assert!(cases[0].tags["profile_bandwidth_source"].len() > 3);
        assert!(cases[0].tags.contains_key("profile_peak_source"));
        // A profile the run does not hold: nothing invented.
        assert!(!cases[1].metrics.contains_key("mfu_profile"));
    }
}
