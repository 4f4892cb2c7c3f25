//! External backends: programs that are not capbench (PyTorch, …) run as
//! case workers through the worker protocol (docs/worker-protocol.md). This
//! file plans them, probes them, enforces the host caps from outside, and
//! turns their result files into the same `WorkerOutput` the internal worker
//! writes — checked, so a worker cannot claim a verification it did not pass.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use capbench_workloads::spec::Params;
use capbench_workloads::{DType, Verification, WorkPerIter, WorkloadSpec};
use serde::Deserialize;

use crate::error::{HarnessError, Result};
use crate::results::{AppliedCaps, CapsRecord, Status, WorkPerIterRecord, WorkerOutput};
use crate::suite::{ExternalBackend, Suite};

/// The protocol version this capbench writes in jobs and accepts in results.
pub const PROTOCOL_VERSION: u32 = 1;
/// How long `COMMAND --probe` may take (a Python import of torch is slow on
/// a loaded machine).
const PROBE_TIMEOUT: Duration = Duration::from_secs(120);
/// The worker scripts capbench ships, written where `{builtin}` points.
const BUILTIN_WORKERS: &[(&str, &str)] = &[(
    "torch_worker.py",
    include_str!("../../../workers/torch_worker.py"),
)];

/// Splits `--backend`/`backends` into capbench's own names (`None`: every
/// usable one) and the external backends asked for.
pub fn split_requested(
    requested: Option<&[String]>,
    suite: &Suite,
) -> Result<(Option<Vec<String>>, Vec<ExternalBackend>)> {
    let Some(list) = requested else {
        return Ok((None, vec![]));
    };
    let mut own = Vec::new();
    let mut external: Vec<ExternalBackend> = Vec::new();
    for name in list {
        match suite.external(name) {
            Some(e) if !external.contains(e) => external.push(e.clone()),
            Some(_) => {}
            None => own.push(name.clone()),
        }
    }
    if own.is_empty() && external.is_empty() {
        return Err(HarnessError::usage("--backend names no backend"));
    }
    Ok((Some(own), external))
}

/// The program line of an external backend, `{builtin}` expanded to `dir`
/// (where the shipped worker scripts are written).
pub fn command_line(e: &ExternalBackend, dir: &Path) -> Result<Vec<OsString>> {
    if e.command.iter().any(|a| a.contains("{builtin}")) {
        std::fs::create_dir_all(dir).map_err(HarnessError::io("create", dir))?;
        for (name, text) in BUILTIN_WORKERS {
            let p = dir.join(name);
            std::fs::write(&p, text).map_err(HarnessError::io("write", &p))?;
        }
    }
    let dir = dir.display().to_string();
    Ok(e.command
        .iter()
        .map(|a| a.replace("{builtin}", &dir).into())
        .collect())
}

/// An external engine's input files by role, or the case's status and
/// why they were not written.
pub type Inputs = std::result::Result<BTreeMap<String, std::path::PathBuf>, (Status, String)>;

/// The largest model whose f32 weights capbench writes for an external
/// engine: beyond it the files (and a training step's f64 reference) would
/// not fit where such an engine runs.
const MAX_INPUT_WEIGHT_BYTES: f64 = 8.0 * (1u64 << 30) as f64;

/// Writes the inputs of `spec` for an external engine into `dir`: none
/// for a workload capbench writes no inputs for (the worker decides).
pub fn write_inputs(spec: &WorkloadSpec, dir: &Path) -> Inputs {
    use capbench_workloads::spec::Typed;
    let model = match spec.params.typed() {
        Typed::Train(p) => Some(p.model),
        Typed::Decode(p) => Some(p.model),
        _ => None,
    };
    if let Some(cfg) = model.as_deref().and_then(capbench_workloads::models::shape) {
        let bytes = cfg.param_count() as f64 * 4.0;
        if bytes > MAX_INPUT_WEIGHT_BYTES {
            return Err((
                Status::Unsupported,
                format!(
                    "external engines get the weights as f32 files, and {}'s are {}; capbench writes at most {}",
                    cfg.name,
                    crate::format::human_bytes(bytes as u64),
                    crate::format::human_bytes(MAX_INPUT_WEIGHT_BYTES as u64)
                ),
            ));
        }
    }
    match capbench_workloads::kinds::engine_inputs::write(spec, dir) {
        Ok(m) => Ok(m),
        Err(capbench_workloads::WorkloadError::Unsupported { .. }) => Ok(BTreeMap::new()),
        Err(e) => Err((Status::Error, format!("writing the engine's inputs: {e}"))),
    }
}

/// An external backend's line in `capbench list backends`: its probe's
/// answer (the shipped scripts are written to a scratch folder for it).
pub fn status(e: &ExternalBackend) -> capbench_workloads::BackendStatus {
    let dir = std::env::temp_dir().join(format!("capbench-workers-{}", std::process::id()));
    let answer = command_line(e, &dir)
        .map_err(|err| (Status::HarnessError, err.to_string()))
        .and_then(|cmd| probe(e, &cmd));
    let _ = std::fs::remove_dir_all(&dir);
    let shown = format!("external: {}", e.command.join(" "));
    let (usable, note) = match answer {
        Ok(engine) => (true, format!("{engine} ({shown})")),
        Err((_, why)) => (false, format!("{why} ({shown})")),
    };
    capbench_workloads::BackendStatus {
        backend: e.name.clone(),
        compiled_in: true,
        usable,
        note,
        devices: vec![],
    }
}

/// What `COMMAND --probe` answered.
#[derive(Debug, Clone, Deserialize)]
struct ProbeAnswer {
    protocol_version: u32,
    #[serde(default)]
    engine: String,
}

/// Runs `COMMAND --probe`: `Ok(engine)` when the worker can run here, else
/// the status (`unavailable` for a missing program or requirement) and why.
pub fn probe(
    e: &ExternalBackend,
    cmd: &[OsString],
) -> std::result::Result<String, (Status, String)> {
    let shown = e.command.join(" ");
    let mut c = Command::new(&cmd[0]);
    c.args(&cmd[1..])
        .arg("--probe")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = match c.spawn() {
        Ok(ch) => ch,
        Err(err) => {
            let why = match err.kind() {
                std::io::ErrorKind::NotFound => "not found".to_string(),
                _ => err.to_string(),
            };
            return Err((
                Status::Unavailable,
                format!(
                    "the {} worker cannot start: {}: {why} (set the suite's [backend.{}] command)",
                    e.name,
                    cmd[0].to_string_lossy(),
                    e.name
                ),
            ));
        }
    };
    let out = match wait_with_timeout(child, PROBE_TIMEOUT) {
        Some(o) => o,
        None => {
            return Err((
                Status::Unavailable,
                format!(
                    "`{shown} --probe` did not answer within {} s",
                    PROBE_TIMEOUT.as_secs()
                ),
            ));
        }
    };
    let stderr = String::from_utf8_lossy(&out.stderr);
    let last_line = stderr.lines().rev().find(|l| !l.trim().is_empty());
    if !out.status.success() {
        return Err((
            Status::Unavailable,
            format!(
                "the {} worker is unavailable here: {}",
                e.name,
                last_line.unwrap_or("`--probe` failed without a message")
            ),
        ));
    }
    match serde_json::from_slice::<ProbeAnswer>(&out.stdout) {
        Ok(a) if a.protocol_version == PROTOCOL_VERSION => Ok(a.engine),
        Ok(a) => Err((
            Status::Error,
            format!(
                "`{shown}` speaks worker protocol v{}, this capbench v{PROTOCOL_VERSION}",
                a.protocol_version
            ),
        )),
        Err(err) => Err((
            Status::Error,
            format!(
                "`{shown} --probe` printed no protocol answer ({err}); see docs/worker-protocol.md#probe"
            ),
        )),
    }
}

fn wait_with_timeout(
    mut child: std::process::Child,
    limit: Duration,
) -> Option<std::process::Output> {
    let started = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(_)) => return child.wait_with_output().ok(),
            Ok(None) if started.elapsed() >= limit => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(_) => return None,
        }
    }
}

/// The bound a verification of `spec` must meet, as capbench's own backends
/// apply it (workloads' kinds), and whether it bounds the mean KL
/// (quantized and half-precision decode) or the scaled max difference.
pub fn tolerance_of(spec: &WorkloadSpec) -> (f64, bool) {
    match &spec.params {
        Params::Gemm { dtype, .. } => (dtype.gemm_tolerance(), false),
        Params::Train { dtype, .. } | Params::TrainQuality { dtype, .. } => match dtype {
            DType::Bf16 => (0.15, false),
            _ => (1e-3, false),
        },
        Params::Decode { format, .. } => match format.as_str() {
            "f32" => (1e-4, false),
            "q4_0" => (0.1, true),
            _ => (0.01, true),
        },
        Params::Stream { .. } => (0.0, false),
        _ => (1e-4, false),
    }
}

/// A result file as protocol v1 defines it (docs/worker-protocol.md#result).
/// Unknown fields are ignored, so a newer worker's extras do not fail it.
#[derive(Debug, Clone, Deserialize)]
pub struct ExternalOutput {
    pub protocol_version: u32,
    pub status: Status,
    #[serde(default)]
    pub status_detail: String,
    /// Engine and version, e.g. `torch 2.5.1+cpu`.
    #[serde(default)]
    pub engine: String,
    #[serde(default)]
    pub device: Option<capbench_workloads::device::DeviceRecord>,
    #[serde(default)]
    pub verification: Option<Verification>,
    #[serde(default)]
    pub timer: String,
    #[serde(default)]
    pub threads_used: Option<usize>,
    #[serde(default)]
    pub prepare_s: f64,
    #[serde(default)]
    pub verify_s: f64,
    #[serde(default)]
    pub warmup_iters: usize,
    #[serde(default)]
    pub samples_wall_s: Vec<f64>,
    #[serde(default)]
    pub extra_samples: BTreeMap<String, Vec<f64>>,
    #[serde(default)]
    pub stop_reason: String,
    #[serde(default)]
    pub work_per_iter: Option<WorkPerIterRecord>,
}

/// capbench's analytic work of one iteration: the same figure its own
/// backends report, so rates are comparable across engines. `None` for a
/// GGUF file (known only once the file is read).
fn work_of(spec: &WorkloadSpec) -> Option<WorkPerIterRecord> {
    let w = match &spec.params {
        Params::Train { .. } | Params::TrainQuality { .. } => {
            capbench_workloads::cost::work::of(spec)
        }
        Params::Decode { .. } => {
            let w = capbench_workloads::cost::work::of(spec);
            if w.headline_per_iter == 0.0 {
                return None;
            }
            w
        }
        Params::Stream { .. } => WorkPerIter::gbytes(spec.flops_per_iter(), spec.bytes_per_iter()),
        _ => WorkPerIter::gflops(spec.flops_per_iter(), spec.bytes_per_iter()),
    };
    Some(w.into())
}

/// Reads and checks an external worker's result; `Err` says what breaks
/// protocol v1 (the case is then `error`, never a measurement).
pub fn read_output(
    text: &str,
    spec: &WorkloadSpec,
    tolerance: (f64, bool),
) -> std::result::Result<WorkerOutput, String> {
    let o: ExternalOutput = serde_json::from_str(text)
        .map_err(|e| format!("not protocol v{PROTOCOL_VERSION} JSON: {e}"))?;
    if o.protocol_version != PROTOCOL_VERSION {
        return Err(format!(
            "protocol_version {} (this capbench reads v{PROTOCOL_VERSION})",
            o.protocol_version
        ));
    }
    let mut status = o.status;
    let mut detail = o.status_detail.clone();
    let mut samples = o.samples_wall_s.clone();
    if status == Status::Ok {
        check_ok(&o, tolerance)?;
    }
    // A failed check is never timed: whatever samples came with it go.
    if let Some(v) = &o.verification
        && !v.passed
    {
        if status == Status::Ok {
            status = Status::FailedVerification;
        }
        if detail.is_empty() {
            detail = format!(
                "output differs from the reference: scaled max diff {:.3e} > tolerance {:.1e}",
                v.scaled_max_diff, v.tolerance
            );
        }
        samples.clear();
    }
    let within = (!samples.is_empty()).then(|| crate::stats::summarize(&samples));
    let ci_half_width_rel = {
        let mut sorted = samples.clone();
        sorted.sort_by(f64::total_cmp);
        crate::stats::order_statistic_median_ci(&sorted).and_then(|(lo, hi)| {
            let med = crate::stats::median(&sorted);
            med.is_normal().then(|| (hi - lo) / 2.0 / med)
        })
    };
    let mut device = o.device.clone();
    if device.is_none() && !o.engine.is_empty() {
        device = Some(capbench_workloads::device::DeviceRecord {
            backend: String::new(),
            name: "host CPU".into(),
            api: "host".into(),
            device_type: "cpu".into(),
            driver: o.engine.clone(),
            driver_info: String::new(),
            index: None,
            details: vec![],
        });
    }
    Ok(WorkerOutput {
        status,
        status_detail: detail,
        device,
        verification: o.verification,
        timer: o.timer,
        threads_used: o.threads_used.unwrap_or(0),
        work_per_iter: work_of(spec).or(o.work_per_iter),
        prepare_s: o.prepare_s,
        verify_s: o.verify_s,
        warmup_iters: o.warmup_iters,
        samples_wall_s: samples.clone(),
        extra_samples: if samples.is_empty() {
            BTreeMap::new()
        } else {
            o.extra_samples
        },
        stop_reason: o.stop_reason,
        ci_half_width_rel,
        injected_extra_work: None,
        within_wall_s: within,
        usage: Default::default(),
        energy: None,
        memory: None,
        caps_applied: None,
        oom: None,
        device_memory: None,
        weights: None,
        verified_by_process: None,
    })
}

/// What an `ok` result must hold: a passed verification within capbench's
/// tolerance, and finite positive samples.
fn check_ok(
    o: &ExternalOutput,
    (tolerance, on_kl): (f64, bool),
) -> std::result::Result<(), String> {
    let Some(v) = &o.verification else {
        return Err("status ok without a verification record: every case is checked against capbench's reference before timing".into());
    };
    let (what, figure) = match on_kl {
        true => ("mean KL", v.mean_kl.unwrap_or(f64::NAN)),
        false => ("scaled max diff", v.scaled_max_diff),
    };
    let within = figure <= tolerance; // false for NaN
    if v.passed && (v.nan_or_inf > 0 || !within) {
        return Err(format!(
            "verification says passed, but {what} is {figure:.3e} with {} non-finite values against capbench's tolerance {tolerance:.1e}",
            v.nan_or_inf
        ));
    }
    if v.passed && o.samples_wall_s.is_empty() {
        return Err("status ok without samples".into());
    }
    if let Some(bad) = o
        .samples_wall_s
        .iter()
        .chain(o.extra_samples.values().flatten())
        .find(|s| !s.is_finite())
    {
        return Err(format!("a sample is {bad}"));
    }
    if let Some(bad) = o.samples_wall_s.iter().find(|s| **s <= 0.0) {
        return Err(format!(
            "samples_wall_s holds {bad}: times are positive seconds"
        ));
    }
    Ok(())
}

/// The caps as capbench applies them to an external worker from outside,
/// each with how (docs/worker-protocol.md#caps).
pub fn applied_caps(caps: &CapsRecord, threads: Option<usize>) -> AppliedCaps {
    let mut a = AppliedCaps {
        threads_requested: caps.threads,
        threads_pool: threads.unwrap_or(0),
        cpus_requested: caps.cpus.clone(),
        mem_cap_bytes: caps.mem_cap_bytes,
        ..Default::default()
    };
    if let Some(t) = threads {
        a.enforced_by.push(format!(
            "threads {t}: OMP_NUM_THREADS, MKL_NUM_THREADS and RAYON_NUM_THREADS set for the worker, and caps.threads in its job (the worker sizes its pools; capbench cannot check this from outside)"
        ));
    }
    if let Some(c) = &caps.cpus {
        a.cpus_observed = Some(c.clone());
        a.enforced_by.push(format!(
            "--cpus {c}: set on the worker process by capbench before it starts (sched_setaffinity), inherited by all its threads"
        ));
    }
    if let Some(m) = caps.mem_cap_bytes {
        a.rss_watch = true;
        a.enforced_by.push(format!(
            "--mem-cap {}: the worker's whole resident set (interpreter and libraries included) is read by capbench every 10 ms; over the cap the worker is killed and the case is oom",
            crate::format::human_bytes(m)
        ));
    }
    if let Some(d) = caps.device_mem_cap_bytes {
        a.not_applied.push(format!(
            "--device-mem-cap {d}: external workers run on the host here"
        ));
    }
    if let Some(w) = &caps.wgpu_limits {
        a.not_applied
            .push(format!("--wgpu-limits {}: not a wgpu backend", w.as_str()));
    }
    if caps.power_limit_w.is_some() || caps.lock_clocks_mhz.is_some() {
        a.not_applied
            .push("--power-limit/--lock-clocks: not a CUDA backend".into());
    }
    a
}

/// Resident set and its peak (VmRSS, VmHWM) of a process, bytes (Linux).
pub fn rss_of(pid: u32) -> Option<(u64, u64)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb = |key: &str| -> Option<u64> {
        let l = s.lines().find(|l| l.starts_with(key))?;
        l[key.len()..]
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse::<u64>()
            .ok()
            .map(|k| k * 1024)
    };
    Some((kb("VmRSS:")?, kb("VmHWM:")?))
}

/// Restricts the child to `cpus` between fork and exec, so every thread the
/// worker starts inherits the set.
#[cfg(target_os = "linux")]
pub fn pin_child(cmd: &mut Command, cpus: &[usize]) {
    use std::os::unix::process::CommandExt;
    // Built before the fork: nothing allocates in the child.
    // SAFETY: cpu_set_t is plain data; CPU_SET stays inside it for cpu <
    // CPU_SETSIZE (parse_cpu_list bounds the CPUs at 1024).
    let set = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        for &c in cpus {
            libc::CPU_SET(c, &mut set);
        }
        set
    };
    // SAFETY: sched_setaffinity is async-signal-safe and only reads `set`.
    unsafe {
        cmd.pre_exec(move || {
            if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

#[cfg(not(target_os = "linux"))]
pub fn pin_child(_cmd: &mut Command, _cpus: &[usize]) {}
