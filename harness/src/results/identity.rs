//! The one identity of a case: its workload, backend and every cap it ran
//! under. Planning names cases with it, resume skips by it, and compare,
//! calibration, merge, check and report pair cases by it, so two cases of
//! one cap sweep never collide.

use std::path::Path;

use super::{CapsRecord, CaseResult, RunFile};
use crate::error::{HarnessError, Result};
use crate::format::compact_bytes;

/// `workload@backend`, then each cap that is set: `+profile=NAME` (which
/// implies its memory and wgpu caps, so those are named only without one),
/// `+threads=N`, `+cpus=L`, `+power=150W`, `+clocks=900:1200MHz`,
/// `+mem=8GiB`, `+devmem=4GiB`, `+wgpu=downlevel`.
pub fn case_id(workload: &str, backend: &str, caps: &CapsRecord) -> String {
    let mut id = format!("{workload}@{backend}");
    if let Some(p) = &caps.profile {
        id.push_str(&format!("+profile={p}"));
    }
    if let Some(t) = caps.threads {
        id.push_str(&format!("+threads={t}"));
    }
    if let Some(c) = &caps.cpus {
        id.push_str(&format!("+cpus={c}"));
    }
    if let Some(w) = caps.power_limit_w {
        id.push_str(&format!("+power={w}W"));
    }
    if let Some([lo, hi]) = caps.lock_clocks_mhz {
        id.push_str(&format!("+clocks={lo}:{hi}MHz"));
    }
    if caps.profile.is_none() {
        if let Some(m) = caps.mem_cap_bytes {
            id.push_str(&format!("+mem={}", compact_bytes(m)));
        }
        if let Some(m) = caps.device_mem_cap_bytes {
            id.push_str(&format!("+devmem={}", compact_bytes(m)));
        }
        if let Some(w) = &caps.wgpu_limits {
            id.push_str(&format!("+wgpu={}", w.as_str()));
        }
    }
    id
}

impl CaseResult {
    /// This case's identity, from what it records (not its stored `id`
    /// string, which a hand-edited file could get wrong).
    pub fn identity(&self) -> String {
        case_id(&self.workload.name, &self.backend, &self.caps)
    }
}

impl RunFile {
    /// The first case identity that appears more than once: such a file
    /// breaks the schema's one-result-per-case rule, and pairing its cases
    /// would count one case twice.
    pub fn duplicate_case(&self) -> Option<String> {
        let mut seen = std::collections::HashSet::new();
        self.cases
            .iter()
            .map(CaseResult::identity)
            .find(|id| !seen.insert(id.clone()))
    }

    /// Refuses a run (read from `path`) that holds a case twice (exit 2).
    pub fn check_one_result_per_case(&self, path: &Path) -> Result<()> {
        match self.duplicate_case() {
            None => Ok(()),
            Some(id) => Err(HarnessError::bad_input(
                path,
                format!("case {id}"),
                "this case appears more than once; a run holds one result per case",
                "keep one result per case: re-run it, or remove the repeated line from cases.jsonl and run.json",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::fixtures::{case, run};

    #[test]
    fn every_cap_is_part_of_the_identity() {
        let mut caps = CapsRecord {
            threads: Some(2),
            mem_cap_bytes: Some(1 << 30),
            ..Default::default()
        };
        assert_eq!(
            case_id("kernel/gemm-f32-128", "cpu", &caps),
            "kernel/gemm-f32-128@cpu+threads=2+mem=1GiB"
        );
        caps.mem_cap_bytes = Some(2 << 30);
        assert_eq!(
            case_id("kernel/gemm-f32-128", "cpu", &caps),
            "kernel/gemm-f32-128@cpu+threads=2+mem=2GiB"
        );
        caps.profile = Some("t4-16gb".into());
        assert_eq!(
            case_id("kernel/gemm-f32-128", "cpu", &caps),
            "kernel/gemm-f32-128@cpu+profile=t4-16gb+threads=2"
        );
    }

    #[test]
    fn a_repeated_case_is_found() {
        let mut a = case("kernel/gemm-f32-128", "cpu", vec![vec![1.0]]);
        let mut b = a.clone();
        a.caps.mem_cap_bytes = Some(1 << 30);
        b.caps.mem_cap_bytes = Some(2 << 30);
        let mut r = run("m", vec![a.clone(), b]);
        assert_eq!(r.duplicate_case(), None);
        r.cases.push(a);
        assert_eq!(
            r.duplicate_case().as_deref(),
            Some("kernel/gemm-f32-128@cpu+mem=1GiB")
        );
    }
}
