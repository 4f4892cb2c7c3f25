//! `capbench compare --engines BASE,NEW`: engines side by side. The same
//! workload under the same caps, run on two backends (capbench's `cpu`
//! against `llamacpp`, `torch`, …) in one run or in two runs of one
//! machine, is one pair; the comparison itself is `compare`'s (ratio of the
//! raw time samples, hierarchical bootstrap CI, threshold), so an engine
//! comparison carries the same statistics as the regression gate.

use std::collections::BTreeSet;

use crate::results::{CaseResult, RunFile};

/// The cases of `base_run` on backend `base` and those of `new_run` on
/// backend `new`, each relabelled `base→new` so that a workload under the
/// same caps pairs with itself across the two engines; `None` when no
/// workload under the same caps ran on both.
pub fn engine_sides(
    base_run: &RunFile,
    new_run: &RunFile,
    base: &str,
    new: &str,
) -> Option<(RunFile, RunFile)> {
    let label = format!("{base}→{new}");
    let side = |run: &RunFile, on: &str| {
        let mut r = run.clone();
        r.cases.retain(|c| c.backend == on);
        for c in &mut r.cases {
            c.backend = label.clone();
        }
        r
    };
    let (b, n) = (side(base_run, base), side(new_run, new));
    let keys: BTreeSet<String> = b.cases.iter().map(CaseResult::identity).collect();
    n.cases
        .iter()
        .any(|c| keys.contains(&c.identity()))
        .then_some((b, n))
}

/// The backends a run's cases ran on, for the error that names them.
pub fn backends_in(run: &RunFile) -> Vec<String> {
    let set: BTreeSet<&str> = run.cases.iter().map(|c| c.backend.as_str()).collect();
    set.into_iter().map(str::to_string).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::compare::{CompareOptions, Verdict, compare_runs};
    use crate::analysis::fixtures::{case, jittered, run};

    const W: &str = "decode/dense-tiny/q4_0";

    #[test]
    fn one_run_pairs_each_workload_across_two_engines() {
        let r = run(
            "m",
            vec![
                case(W, "cpu", jittered(0.010, 3, 0)),
                case(W, "llamacpp", jittered(0.008, 3, 1)),
                case("decode/dense-tiny/f16", "cpu", jittered(0.02, 3, 2)),
            ],
        );
        let (b, n) = engine_sides(&r, &r, "cpu", "llamacpp").expect("one pair");
        assert_eq!(b.cases.len(), 2);
        assert_eq!(n.cases.len(), 1);
        let opts = CompareOptions {
            threshold: 0.05,
            allow_machine_mismatch: false,
            calibration: None,
        };
        let c = compare_runs(&b, &n, &opts);
        let pair = c
            .cases
            .iter()
            .find(|x| x.key == format!("{W}@cpu→llamacpp"))
            .expect("the pair, keyed by both engines");
        // llama.cpp's 8 ms against capbench's 10 ms: 1.25× the rate.
        assert!((pair.ratio.unwrap() - 1.25).abs() < 0.02, "{pair:?}");
        assert_eq!(pair.verdict, Verdict::Improved);
        // The f16 case ran on one engine only: not in the new side.
        assert!(c.cases.iter().any(|x| x.verdict == Verdict::Incomparable));
    }

    #[test]
    fn no_common_workload_is_none_and_the_backends_are_named() {
        let r = run("m", vec![case(W, "cpu", jittered(0.010, 2, 0))]);
        assert!(engine_sides(&r, &r, "cpu", "llamacpp").is_none());
        assert_eq!(backends_in(&r), vec!["cpu".to_string()]);
    }
}
