//! Planning: suite + flags → the list of cases, with the backends resolved
//! against this machine. Fails with exit-2 errors for anything the user can fix.

use std::path::PathBuf;

use capbench_workloads::backend::{Backend, LlamaOffload, candle, wgpu};
use capbench_workloads::registry::supports;

use crate::caps::size::parse_bytes;
use crate::caps::wgpu_limits::WgpuLimitsTier;
use crate::error::{HarnessError, Result};
use crate::profiles::Profile;
use crate::results::{
    CapsRecord, NotPlanned, Plan, PlannedCase, RunOptions, SCHEMA_VERSION, case_id, now_rfc3339,
};
use crate::suite;

/// Default per-process limit when neither flag nor suite sets one.
pub const DEFAULT_CASE_TIMEOUT_S: f64 = 600.0;

#[derive(Debug, Clone, Default)]
pub struct PlanRequest {
    pub suite: Option<String>,
    pub backends: Option<Vec<String>>,
    pub workload_globs: Vec<String>,
    pub threads: Option<usize>,
    pub case_timeout_s: Option<f64>,
    pub repeat: Option<usize>,
    pub inject_slowdown: Option<f64>,
    pub corpus: Option<PathBuf>,
    /// `--model FILE.gguf`.
    pub model: Option<PathBuf>,
    /// `--mem-cap` sizes as given ("8GiB"); one case per cap.
    pub mem_caps: Vec<String>,
    /// `--device-mem-cap` sizes as given; one case per cap.
    pub device_mem_caps: Vec<String>,
    /// `--cpus` CPU list ("0-1").
    pub cpus: Option<String>,
    /// `--wgpu-limits` tier name or file.
    pub wgpu_limits: Option<String>,
    /// `--profile` names or files; one case per profile.
    pub profiles: Vec<String>,
    /// `--power-limit` watts (NVML, cuda).
    pub power_limit_w: Option<f64>,
    /// `--lock-clocks MIN[:MAX]` MHz (NVML, cuda).
    pub lock_clocks: Option<String>,
}

/// Opens and checks `--model` (every tensor present, shaped and inside the
/// file) and fingerprints it.
fn model_record(path: &std::path::Path) -> Result<crate::results::ModelFileRecord> {
    use std::io::Read;
    let f = capbench_workloads::models::gguf::GgufFile::open(path).map_err(HarnessError::from)?;
    let mut r = std::io::BufReader::with_capacity(
        1 << 20,
        std::fs::File::open(path).map_err(HarnessError::io("read", path))?,
    );
    let mut h = crate::results::env::Fnv1a::default();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = r.read(&mut buf).map_err(HarnessError::io("read", path))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(crate::results::ModelFileRecord {
        path: std::fs::canonicalize(path)
            .unwrap_or(path.to_path_buf())
            .display()
            .to_string(),
        bytes: f.file_bytes,
        fnv1a: h.hex(),
        format: f.format.as_str().to_string(),
        tensor_types: f.dtypes.clone(),
        layers: f.cfg.n_layers,
        d_model: f.cfg.d_model,
        vocab: f.cfg.vocab,
    })
}

fn is_gguf_workload(w: &capbench_workloads::WorkloadSpec) -> bool {
    matches!(&w.params, capbench_workloads::spec::Params::Decode { model, .. } if model == capbench_workloads::spec::GGUF_MODEL)
}

/// Reads and checks `--corpus`: it must be readable UTF-8 text.
fn corpus_record(path: &std::path::Path) -> Result<crate::results::CorpusRecord> {
    let bytes = std::fs::read(path).map_err(|e| {
        HarnessError::bad_input(
            path,
            "whole file",
            format!("cannot read corpus: {e}"),
            "pass a readable UTF-8 text file",
        )
    })?;
    if let Err(e) = std::str::from_utf8(&bytes) {
        return Err(HarnessError::bad_input(
            path,
            format!("byte {}", e.valid_up_to()),
            "not valid UTF-8",
            "convert the corpus to UTF-8 text",
        ));
    }
    let mut h = crate::results::env::Fnv1a::default();
    h.update(&bytes);
    Ok(crate::results::CorpusRecord {
        path: std::fs::canonicalize(path)
            .unwrap_or(path.to_path_buf())
            .display()
            .to_string(),
        bytes: bytes.len() as u64,
        fnv1a: h.hex(),
    })
}

/// Whether a backend can run here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackendCheck {
    Usable,
    /// Not compiled in (the message names the feature to rebuild with).
    NotCompiled(String),
    /// Compiled in, but no device or driver here (the message says which).
    Unusable(String),
}

/// Checks that a backend is compiled in (in this binary, or for cuda in a
/// CUDA worker beside it) and has a device here.
pub fn check_backend(b: &Backend) -> BackendCheck {
    let unusable = |e: String| BackendCheck::Unusable(e);
    match b {
        Backend::Cpu => BackendCheck::Usable,
        Backend::Cuda { ordinal } => match crate::gpu::cuda_ready(*ordinal) {
            Err(crate::gpu::CudaUnready::NotCompiled(m)) => BackendCheck::NotCompiled(m),
            Err(crate::gpu::CudaUnready::Unavailable(m)) => unusable(m),
            Ok(crate::gpu::CudaWorker::ThisBinary) => match candle::device(b) {
                Ok(_) => BackendCheck::Usable,
                Err(e) => unusable(e.to_string()),
            },
            // The worker opens the device; the driver already answered.
            Ok(crate::gpu::CudaWorker::Separate(_)) => BackendCheck::Usable,
        },
        // llama.cpp's CUDA offload links libcuda too: in this binary when
        // built in, else the CUDA worker says whether it has a device.
        Backend::LlamaCpp(LlamaOffload::Cuda) => match crate::gpu::llamacpp_cuda_ready() {
            Err(crate::gpu::CudaUnready::NotCompiled(m)) => BackendCheck::NotCompiled(m),
            Err(crate::gpu::CudaUnready::Unavailable(m)) => unusable(m),
            Ok(crate::gpu::CudaWorker::ThisBinary) => {
                match capbench_workloads::backend::llamacpp::check_usable(LlamaOffload::Cuda) {
                    Ok(()) => BackendCheck::Usable,
                    Err(e) => unusable(e.to_string()),
                }
            }
            Ok(crate::gpu::CudaWorker::Separate(exe)) => {
                match crate::gpu::worker_llamacpp_cuda(&exe) {
                    Ok(_) => BackendCheck::Usable,
                    Err(m) => unusable(m),
                }
            }
        },
        other => {
            if let Err(e) = other.ensure_compiled() {
                return BackendCheck::NotCompiled(e.to_string());
            }
            let usable = match other {
                Backend::Wgpu(sel) => wgpu::check_usable(*sel)
                    .map(|_| ())
                    .map_err(|e| e.to_string()),
                Backend::LlamaCpp(o) => capbench_workloads::backend::llamacpp::check_usable(*o)
                    .map_err(|e| e.to_string()),
                _ => candle::device(other).map(|_| ()).map_err(|e| e.to_string()),
            };
            match usable {
                Ok(()) => BackendCheck::Usable,
                Err(e) => unusable(e),
            }
        }
    }
}

/// Explicit backends must be compiled in; a GPU backend of candle (cuda,
/// metal) that is compiled in but has no driver or device here is still
/// planned, and its cases are recorded `unavailable` with the reason while
/// the other backends run. wgpu without a matching adapter is a usage error.
/// With none given, every usable backend is taken and the others are
/// reported in `skipped`.
pub fn resolve_backends(requested: Option<&[String]>) -> Result<(Vec<Backend>, Vec<NotPlanned>)> {
    if let Some(list) = requested {
        let mut out: Vec<Backend> = Vec::new();
        for name in list {
            let b = Backend::parse(name).map_err(|e| HarnessError::usage(e.to_string()))?;
            match check_backend(&b) {
                BackendCheck::Usable => {}
                BackendCheck::Unusable(reason)
                    if matches!(b, Backend::Cuda { .. } | Backend::Metal { .. }) =>
                {
                    eprintln!("capbench: {b} cases will be recorded as unavailable: {reason}");
                }
                BackendCheck::NotCompiled(m) | BackendCheck::Unusable(m) => {
                    return Err(HarnessError::usage(m));
                }
            }
            if !out.contains(&b) {
                out.push(b);
            }
        }
        if out.is_empty() {
            return Err(HarnessError::usage("--backend names no backend"));
        }
        return Ok((out, vec![]));
    }
    let mut out = vec![];
    let mut skipped = vec![];
    for b in [
        Backend::Cpu,
        Backend::Cuda { ordinal: 0 },
        Backend::Metal { ordinal: 0 },
        Backend::Wgpu(capbench_workloads::WgpuSelector::Best),
    ] {
        match check_backend(&b) {
            BackendCheck::Usable => out.push(b),
            BackendCheck::NotCompiled(reason) | BackendCheck::Unusable(reason) => {
                skipped.push(NotPlanned {
                    workload: "*".into(),
                    backend: b.to_string(),
                    reason,
                })
            }
        }
    }
    Ok((out, skipped))
}

fn matches_any(globs: &[glob::Pattern], name: &str) -> bool {
    globs.is_empty() || globs.iter().any(|g| g.matches(name))
}

/// The parsed cap flags of a plan.
struct CapFlags {
    mem_caps: Vec<u64>,
    device_mem_caps: Vec<u64>,
    cpus: Option<Vec<usize>>,
    wgpu_limits: Option<WgpuLimitsTier>,
    profiles: Vec<Profile>,
    power_limit_w: Option<f64>,
    lock_clocks_mhz: Option<(u32, u32)>,
}

fn parse_cap_flags(req: &PlanRequest) -> Result<CapFlags> {
    let sizes = |flag: &str, list: &[String]| -> Result<Vec<u64>> {
        let mut v = Vec::new();
        for s in list {
            let b = parse_bytes(s).map_err(|m| HarnessError::usage(format!("{flag}: {m}")))?;
            if !v.contains(&b) {
                v.push(b);
            }
        }
        Ok(v)
    };
    let mem_caps = sizes("--mem-cap", &req.mem_caps)?;
    let device_mem_caps = sizes("--device-mem-cap", &req.device_mem_caps)?;
    let cpus = req
        .cpus
        .as_deref()
        .map(crate::caps::cpu::parse_cpu_list)
        .transpose()
        .map_err(HarnessError::usage)?;
    if let (Some(cpus), Some(here)) = (&cpus, crate::caps::cpu::affinity())
        && let Some(c) = cpus.iter().find(|c| !here.contains(c))
    {
        return Err(HarnessError::usage(format!(
            "--cpus: CPU {c} is not available here (this process may run on {})",
            crate::caps::cpu::format_cpu_list(&here)
        )));
    }
    let wgpu_limits = req
        .wgpu_limits
        .as_deref()
        .map(crate::caps::wgpu_limits::load)
        .transpose()?;
    let mut profiles = Vec::new();
    for name in &req.profiles {
        let p = crate::profiles::find(name)?;
        if !profiles.iter().any(|q: &Profile| q.name == p.name) {
            profiles.push(p);
        }
    }
    let sizes_given = !mem_caps.is_empty() || !device_mem_caps.is_empty();
    if !profiles.is_empty() && sizes_given {
        return Err(HarnessError::usage(
            "--profile sets the memory caps itself; leave out --mem-cap/--device-mem-cap (or run without --profile)",
        ));
    }
    if let Some(w) = req.power_limit_w
        && !(w.is_finite() && w > 0.0)
    {
        return Err(HarnessError::usage(format!(
            "--power-limit: {w} is not a positive number of watts"
        )));
    }
    let lock_clocks_mhz = req
        .lock_clocks
        .as_deref()
        .map(crate::caps::gpu_compute::parse_clocks)
        .transpose()
        .map_err(|m| HarnessError::usage(format!("--lock-clocks: {m}")))?;
    Ok(CapFlags {
        mem_caps,
        device_mem_caps,
        cpus,
        wgpu_limits,
        profiles,
        power_limit_w: req.power_limit_w,
        lock_clocks_mhz,
    })
}

/// The cap sets a case runs under on `backend`: one per profile, else one
/// per (memory cap × device memory cap), else one uncapped.
fn cap_sets(flags: &CapFlags, threads: Option<usize>, backend: &Backend) -> Vec<CapsRecord> {
    let cpus = flags.cpus.as_deref().map(crate::caps::cpu::format_cpu_list);
    let base = CapsRecord {
        threads,
        cpus,
        wgpu_limits: flags.wgpu_limits.clone(),
        power_limit_w: flags.power_limit_w,
        lock_clocks_mhz: flags.lock_clocks_mhz.map(|(a, b)| [a, b]),
        ..Default::default()
    };
    if !flags.profiles.is_empty() {
        return flags
            .profiles
            .iter()
            .map(|p| {
                let (host, device) = p.caps_on(backend);
                CapsRecord {
                    threads: threads.or(p.caps.threads),
                    mem_cap_bytes: host,
                    device_mem_cap_bytes: device,
                    wgpu_limits: flags.wgpu_limits.clone().or_else(|| {
                        p.caps
                            .wgpu_limits
                            .as_deref()
                            .and_then(WgpuLimitsTier::parse_name)
                    }),
                    profile: Some(p.name.clone()),
                    // A GPU profile on a CUDA GPU asks for the target's
                    // power budget (its TDP) as the board's power limit;
                    // outside the board's range it is recorded
                    // "not applied", like any power limit.
                    power_limit_w: flags.power_limit_w.or(match (p.kind, backend) {
                        (crate::profiles::ProfileKind::Gpu, Backend::Cuda { .. }) => p.tdp(),
                        _ => None,
                    }),
                    ..base.clone()
                }
            })
            .collect();
    }
    let mems: Vec<Option<u64>> = if flags.mem_caps.is_empty() {
        vec![None]
    } else {
        flags.mem_caps.iter().map(|m| Some(*m)).collect()
    };
    let devs: Vec<Option<u64>> = if flags.device_mem_caps.is_empty() {
        vec![None]
    } else {
        flags.device_mem_caps.iter().map(|m| Some(*m)).collect()
    };
    let mut out = Vec::new();
    for m in &mems {
        for d in &devs {
            out.push(CapsRecord {
                mem_cap_bytes: *m,
                device_mem_cap_bytes: *d,
                ..base.clone()
            });
        }
    }
    out
}

pub fn make_plan(req: &PlanRequest) -> Result<Plan> {
    let model = req.model.as_deref().map(model_record).transpose()?;
    let mut suite = suite::load(req.suite.as_deref().unwrap_or("quick"))?;
    if let Some(m) = &model {
        // --model alone runs the file; with --suite, the file's cases join it.
        let extra = [
            format!("decode/gguf/{}", m.format),
            format!("prefill/gguf/{}", m.format),
        ];
        if req.suite.is_none() {
            suite.name = "model".into();
            suite.source = "built-in (--model)".into();
            suite.workloads.clear();
        }
        for name in extra {
            if !suite.workloads.iter().any(|w| w.name == name) {
                suite
                    .workloads
                    .push(capbench_workloads::WorkloadSpec::parse(&name).expect("valid name"));
            }
        }
    }
    // An exact workload name (no glob characters) that the default suite
    // lacks is run as given: `--workload decode/llama-2-7b/q4_0` needs no
    // suite file.
    if req.suite.is_none() {
        for g in &req.workload_globs {
            let (name, sizing) = match suite::resolve_llc_sized(g) {
                Some((name, sizing)) => (name, Some(sizing)),
                None => (g.clone(), None),
            };
            if g.contains(['*', '?', '[']) || suite.workloads.iter().any(|w| w.name == name) {
                continue;
            }
            if let Some(s) = sizing {
                suite.sized.insert(name.clone(), s);
            }
            let spec = capbench_workloads::WorkloadSpec::parse(&name)
                .map_err(|e| HarnessError::usage(format!("--workload '{g}': {e}")))?;
            suite.workloads.push(spec);
        }
    }
    for w in suite.workloads.iter().filter(|w| is_gguf_workload(w)) {
        match &model {
            None => {
                return Err(HarnessError::usage(format!(
                    "{} runs a GGUF file: pass it with --model FILE.gguf",
                    w.name
                )));
            }
            Some(m) => {
                if let capbench_workloads::spec::Params::Decode { format, .. } = &w.params
                    && format.as_str() != m.format
                {
                    return Err(HarnessError::usage(format!(
                        "{}: the --model file is stored as {}; use decode/gguf/{}",
                        w.name, m.format, m.format
                    )));
                }
            }
        }
    }
    let mut sampling = suite.sampling.clone();
    if let Some(r) = req.repeat {
        sampling.repeat = r;
    }
    sampling
        .validate()
        .map_err(|m| HarnessError::usage(m.replace("sampling.repeat", "--repeat")))?;
    if let Some(f) = req.inject_slowdown
        && !(f > 0.0 && f <= 1.0)
    {
        return Err(HarnessError::usage("--inject-slowdown must be in (0, 1]"));
    }
    if req.threads == Some(0) {
        return Err(HarnessError::usage("--threads must be at least 1"));
    }
    let threads = req.threads.or(suite.threads);
    let case_timeout_s = req
        .case_timeout_s
        .or(suite.case_timeout_s)
        .unwrap_or(DEFAULT_CASE_TIMEOUT_S);
    crate::limits::seconds(
        "--case-timeout",
        case_timeout_s,
        crate::limits::MAX_CASE_TIMEOUT_S,
    )
    .map_err(HarnessError::usage)?;
    let globs: Vec<glob::Pattern> = req
        .workload_globs
        .iter()
        .map(|g| {
            // `kernel/read-llc` selects the size it resolved to.
            let g = suite::resolve_llc_sized(g).map_or(g.clone(), |(name, _)| name);
            glob::Pattern::new(&g).map_err(|e| {
                HarnessError::usage(format!("--workload '{g}' is not a valid glob: {e}"))
            })
        })
        .collect::<Result<_>>()?;
    let flags = parse_cap_flags(req)?;
    let requested = req.backends.as_deref().or(suite.backends.as_deref());
    let (requested, externals) = super::external::split_requested(requested, &suite)?;
    let (backends, mut not_planned) = match requested.as_deref() {
        Some([]) => (vec![], vec![]),
        r => resolve_backends(r)?,
    };
    let mut cases = Vec::new();
    for w in suite
        .workloads
        .iter()
        .filter(|w| matches_any(&globs, &w.name))
    {
        // Per backend: the cap sets its cases run under, or why none.
        let mut targets: Vec<(String, std::result::Result<Vec<CapsRecord>, String>)> = backends
            .iter()
            .map(|b| {
                let caps = supports(w, b).map(|()| cap_sets(&flags, threads, b));
                (b.to_string(), caps)
            })
            .collect();
        for e in &externals {
            // An external program runs on the host: the host's caps.
            let caps = match e.runs(&w.name) {
                true => Ok(cap_sets(&flags, threads, &Backend::Cpu)),
                false => Err(format!(
                    "the {} worker runs only {}",
                    e.name,
                    e.workloads.join(", ")
                )),
            };
            targets.push((e.name.clone(), caps));
        }
        for (b, caps) in targets {
            match caps {
                Ok(sets) => {
                    for caps in sets {
                        cases.push(PlannedCase {
                            id: case_id(&w.name, &b, &caps),
                            workload: w.name.clone(),
                            backend: b.clone(),
                            caps,
                            sampling: {
                                let mut s = suite.sampling_for(&w.name).clone();
                                if let Some(r) = req.repeat {
                                    s.repeat = r;
                                }
                                (s != sampling).then_some(s)
                            },
                        });
                    }
                }
                Err(reason) => not_planned.push(NotPlanned {
                    workload: w.name.clone(),
                    backend: b,
                    reason,
                }),
            }
        }
    }
    let mut backends: Vec<String> = backends.iter().map(|b| b.to_string()).collect();
    backends.extend(externals.iter().map(|e| e.name.clone()));
    if cases.is_empty() {
        return Err(HarnessError::usage(format!(
            "nothing to run: suite '{}' has no workload matching {:?} on {}",
            suite.name,
            req.workload_globs,
            backends.join(", ")
        )));
    }
    let started_at = now_rfc3339();
    Ok(Plan {
        schema_version: SCHEMA_VERSION,
        run_id: format!("{}-{}", compact_time(&started_at), std::process::id()),
        started_at,
        options: RunOptions {
            suite: suite.name,
            suite_source: suite.source,
            backends,
            workload_filter: req.workload_globs.clone(),
            threads,
            case_timeout_s,
            sampling,
            inject_slowdown: req.inject_slowdown,
            corpus: req.corpus.as_deref().map(corpus_record).transpose()?,
            model,
            mem_caps_bytes: flags.mem_caps,
            device_mem_caps_bytes: flags.device_mem_caps,
            cpus: flags.cpus.as_deref().map(crate::caps::cpu::format_cpu_list),
            wgpu_limits: flags.wgpu_limits,
            profiles: flags.profiles,
            external_backends: externals,
            array_sizing: suite
                .sized
                .into_iter()
                .filter(|(w, _)| cases.iter().any(|c| &c.workload == w))
                .collect(),
        },
        cases,
        not_planned,
    })
}

/// `2026-11-29T10:55:03Z` → `20261129T105503Z`, for folder names.
pub fn compact_time(rfc3339: &str) -> String {
    rfc3339.chars().filter(|c| *c != '-' && *c != ':').collect()
}

/// Creates the run folder: `--out DIR` (must not hold a run already) or a
/// fresh `results/local/<time>` folder.
pub fn create_run_dir(out: Option<PathBuf>) -> Result<PathBuf> {
    let dir = match out {
        Some(d) => {
            for f in [
                crate::results::io::PLAN_FILE,
                crate::results::io::CASES_FILE,
            ] {
                if d.join(f).exists() {
                    return Err(HarnessError::usage(format!(
                        "{} already holds a run ({f}); continue it with --resume {0} or choose another --out",
                        d.display()
                    )));
                }
            }
            d
        }
        None => {
            let base = PathBuf::from("results/local").join(compact_time(&now_rfc3339()));
            let mut d = base.clone();
            let mut n = 2;
            while d.exists() {
                d = PathBuf::from(format!("{}-{n}", base.display()));
                n += 1;
            }
            d
        }
    };
    std::fs::create_dir_all(&dir).map_err(HarnessError::io("create", &dir))?;
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_filters_by_glob_and_leaves_out_unsupported_combinations() {
        let req = PlanRequest {
            workload_globs: vec!["kernel/gemm-f32-12*".into(), "kernel/gemm-f16-*".into()],
            backends: Some(vec!["cpu".into()]),
            threads: Some(1),
            ..Default::default()
        };
        let plan = make_plan(&req).unwrap();
        let ids: Vec<_> = plan.cases.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "kernel/gemm-f32-128@cpu+threads=1",
                "kernel/gemm-f16-256@cpu+threads=1"
            ]
        );
        assert_eq!(plan.options.suite, "quick");
    }

    #[test]
    fn bad_flags_are_usage_errors() {
        let bad = |req: PlanRequest| make_plan(&req).unwrap_err().exit_code();
        assert_eq!(
            bad(PlanRequest {
                backends: Some(vec!["tpu".into()]),
                ..Default::default()
            }),
            2
        );
        assert_eq!(
            bad(PlanRequest {
                workload_globs: vec!["nothing*".into()],
                backends: Some(vec!["cpu".into()]),
                ..Default::default()
            }),
            2
        );
        assert_eq!(
            bad(PlanRequest {
                repeat: Some(0),
                ..Default::default()
            }),
            2
        );
        assert_eq!(
            bad(PlanRequest {
                suite: Some("nope".into()),
                ..Default::default()
            }),
            2
        );
    }

    #[test]
    fn a_gpu_profile_on_cuda_asks_for_its_tdp_as_the_power_limit() {
        let flags = |power_limit_w| CapFlags {
            mem_caps: vec![],
            device_mem_caps: vec![],
            cpus: None,
            wgpu_limits: None,
            profiles: vec![
                crate::profiles::find("t4-16gb").unwrap(),
                crate::profiles::find("m2-air-8gb").unwrap(),
            ],
            power_limit_w,
            lock_clocks_mhz: None,
        };
        let cuda = Backend::Cuda { ordinal: 0 };
        let sets = cap_sets(&flags(None), None, &cuda);
        // The T4's 70 W (sourced in its profile); the Air is no GPU card.
        assert_eq!(sets[0].power_limit_w, Some(70.0));
        assert_eq!(sets[1].power_limit_w, None);
        // Elsewhere nothing is asked; an explicit --power-limit wins.
        assert_eq!(
            cap_sets(&flags(None), None, &Backend::Cpu)[0].power_limit_w,
            None
        );
        assert_eq!(
            cap_sets(&flags(Some(150.0)), None, &cuda)[0].power_limit_w,
            Some(150.0)
        );
    }

    #[test]
    fn compact_time_strips_separators() {
        assert_eq!(compact_time("2026-11-29T10:55:03Z"), "20261129T105503Z");
    }
}
