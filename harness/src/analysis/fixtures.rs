//! Synthetic runs for unit tests: fixed environments and cases built from
//! given per-process samples through the real aggregation code.

use capbench_workloads::WorkloadSpec;

use crate::meter::ProcessUsage;
use crate::results::{
    CapsRecord, CaseResult, Env, ExitInfo, PlannedCase, ProcessRecord, RunFile, RunOptions,
    RunTotals, SCHEMA_VERSION, Status, WorkerOutput,
};
use crate::suite::Sampling;

pub fn env(machine_id: &str) -> Env {
    Env {
        machine_id: machine_id.into(),
        hostname: "fixture-host".into(),
        cpu_model: "Fixture CPU".into(),
        cpu_vendor: "fixture".into(),
        physical_cores: Some(2),
        logical_cores: 2,
        cpu_frequency_mhz: 2000,
        memory_total_bytes: 8 << 30,
        os_name: "FixtureOS".into(),
        os_version: "1".into(),
        kernel_version: "1.0".into(),
        arch: "x86_64".into(),
        rustc_version: "rustc 1.95.0".into(),
        capbench_version: "0.1.0".into(),
        git_commit: "0000000".into(),
        git_state: "clean".into(),
        build_profile: "release".into(),
        target_features: vec![],
        cpu_features_runtime: vec![],
        capbench_features: vec![],
        threads_used: 2,
        load_avg_before: [0.0; 3],
        load_avg_after: Some([0.0; 3]),
        backends: vec![],
        energy_sources: vec![],
    }
}

pub fn process(index: usize, status: Status, samples: Vec<f64>) -> ProcessRecord {
    ProcessRecord {
        index,
        status,
        status_detail: String::new(),
        exit: ExitInfo::default(),
        oom_requested_bytes: None,
        oom_in_use_bytes: None,
        oom_cap_bytes: None,
        oom_peak_bytes: None,
        worker: Some(WorkerOutput {
            status,
            status_detail: String::new(),
            device: None,
            verification: None,
            timer: "wall_clock_after_device_sync".into(),
            threads_used: 2,
            work_per_iter: None,
            prepare_s: 0.0,
            verify_s: 0.0,
            warmup_iters: 0,
            samples_wall_s: samples,
            extra_samples: Default::default(),
            stop_reason: "ci_target".into(),
            ci_half_width_rel: None,
            injected_extra_work: None,
            within_wall_s: None,
            usage: ProcessUsage::default(),
            memory: None,
            caps_applied: None,
            oom: None,
            energy: None,
            device_memory: None,
            weights: None,
            verified_by_process: None,
        }),
    }
}

/// A case of `workload` on `backend` whose processes measured `groups` (s).
pub fn case(workload: &str, backend: &str, groups: Vec<Vec<f64>>) -> CaseResult {
    let spec = WorkloadSpec::parse(workload).expect("fixture workload name");
    let planned = PlannedCase {
        id: format!("{workload}@{backend}"),
        workload: workload.into(),
        backend: backend.into(),
        caps: CapsRecord::default(),
        sampling: None,
    };
    let processes = groups
        .into_iter()
        .enumerate()
        .map(|(i, g)| process(i, Status::Ok, g))
        .collect();
    crate::analysis::aggregate::case_result(
        &planned,
        &spec,
        processes,
        "2026-01-01T00:00:00Z".into(),
        1.0,
    )
}

/// `n` processes × 40 samples around `median_s` with ±1% deterministic jitter.
pub fn jittered(median_s: f64, n: usize, salt: usize) -> Vec<Vec<f64>> {
    (0..n)
        .map(|p| {
            (0..40)
                .map(|i| {
                    let j = ((i * 7 + p * 13 + salt * 5) % 21) as f64 - 10.0;
                    median_s * (1.0 + 0.001 * j)
                })
                .collect()
        })
        .collect()
}

pub fn run(machine_id: &str, cases: Vec<CaseResult>) -> RunFile {
    RunFile {
        schema_version: SCHEMA_VERSION,
        run_id: format!("fixture-{machine_id}"),
        started_at: "2026-01-01T00:00:00Z".into(),
        finished_at: "2026-01-01T00:01:00Z".into(),
        env: env(machine_id),
        options: RunOptions {
            suite: "fixture".into(),
            suite_source: "built-in".into(),
            backends: vec!["cpu".into()],
            workload_filter: vec![],
            threads: None,
            case_timeout_s: 60.0,
            sampling: Sampling::default(),
            inject_slowdown: None,
            corpus: None,
            model: None,
            mem_caps_bytes: vec![],
            device_mem_caps_bytes: vec![],
            cpus: None,
            wgpu_limits: None,
            profiles: vec![],
            external_backends: vec![],
            array_sizing: Default::default(),
        },
        not_planned: vec![],
        totals: RunTotals {
            cases: cases.len(),
            ..Default::default()
        },
        cases,
        ceilings: vec![],
        ceiling_brackets: vec![],
    }
}
