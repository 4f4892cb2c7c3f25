//! The invariants of a stored case that serde's shape check cannot see:
//! readers refuse a run file that breaks them (exit 2, naming the case),
//! so `compare`, `report` and `check` never reason from impossible data —
//! a case "ok" with no samples, a negative or infinite time.

use std::path::Path;

use super::{CaseResult, Status};
use crate::error::{HarnessError, Result};

/// Checks one case; `place` locates it in its file ("cases[3]", "line 7").
pub fn check_case(path: &Path, place: &str, c: &CaseResult) -> Result<()> {
    let bad = |field: String, m: String| {
        HarnessError::bad_input(
            path,
            format!("{place} (case {}): {field}", c.id),
            m,
            "the file was edited or damaged: restore it, or re-run the case",
        )
    };
    for (i, p) in c.processes.iter().enumerate() {
        let Some(w) = &p.worker else { continue };
        if p.status == Status::Ok && w.samples_wall_s.is_empty() {
            return Err(bad(
                format!("processes[{i}].worker.samples_wall_s"),
                "a process with status ok holds no samples".into(),
            ));
        }
        if let Some((j, v)) = w
            .samples_wall_s
            .iter()
            .enumerate()
            .find(|(_, v)| !(v.is_finite() && **v >= 0.0))
        {
            return Err(bad(
                format!("processes[{i}].worker.samples_wall_s[{j}]"),
                format!("{v} is not a time in seconds (finite, ≥ 0)"),
            ));
        }
    }
    if c.status == Status::Ok
        && let Some(s) = &c.stats
    {
        if s.processes_ok == 0 || s.pooled_wall_s.n == 0 || s.process_medians_wall_s.is_empty() {
            return Err(bad(
                "stats".into(),
                format!(
                    "status ok with {} successful processes and {} samples",
                    s.processes_ok, s.pooled_wall_s.n
                ),
            ));
        }
        let times = [s.wall_s_median, s.wall_s_ci95_low, s.wall_s_ci95_high];
        if let Some(v) = times
            .iter()
            .chain(&s.process_medians_wall_s)
            .find(|v| !(v.is_finite() && **v >= 0.0))
        {
            return Err(bad(
                "stats".into(),
                format!("{v} is not a time in seconds (finite, ≥ 0)"),
            ));
        }
    }
    if let Some(h) = &c.headline
        && !(h.value.is_finite() && h.ci95_low.is_finite() && h.ci95_high.is_finite())
    {
        return Err(bad(
            "headline".into(),
            format!(
                "value {} [{}, {}] is not a finite number",
                h.value, h.ci95_low, h.ci95_high
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::fixtures::{case, run};
    use crate::results::io::{parse_versioned, read_run_file};

    /// An edited run file (the finding: zero samples and a negative one
    /// were read, and compare called a case with equal headlines
    /// "regressed") is refused with the case named.
    #[test]
    fn impossible_samples_are_refused_naming_the_case() {
        let tmp = tempfile::tempdir().unwrap();
        let good = run(
            "m",
            vec![case("kernel/gemm-f32-64", "cpu", vec![vec![1e-3; 5]; 2])],
        );
        let path = tmp.path().join("run.json");
        let write = |r: &crate::results::RunFile| {
            std::fs::write(&path, serde_json::to_string(r).unwrap()).unwrap()
        };
        write(&good);
        read_run_file(&path).unwrap();

        let mut empty = good.clone();
        empty.cases[0].processes[0]
            .worker
            .as_mut()
            .unwrap()
            .samples_wall_s
            .clear();
        let mut negative = good.clone();
        negative.cases[0].processes[1]
            .worker
            .as_mut()
            .unwrap()
            .samples_wall_s[2] = -1e-3;
        let mut no_stats = good.clone();
        no_stats.cases[0].stats.as_mut().unwrap().processes_ok = 0;
        for (r, field) in [
            (empty, "samples_wall_s"),
            (negative, "samples_wall_s[2]"),
            (no_stats, "stats"),
        ] {
            write(&r);
            let e = read_run_file(&path).unwrap_err();
            assert_eq!(e.exit_code(), 2);
            let e = e.to_string();
            assert!(
                e.contains("kernel/gemm-f32-64") && e.contains(field) && e.contains("run.json"),
                "{e}"
            );
        }
        // A journal line is held to the same rules.
        let mut bad = good.cases[0].clone();
        bad.processes[0].worker.as_mut().unwrap().samples_wall_s[0] = -5.0;
        let line = serde_json::to_string(&bad).unwrap();
        let parsed: CaseResult = parse_versioned(&path, "line 1", &line).unwrap();
        assert!(check_case(&path, "line 1", &parsed).is_err());
    }
}
