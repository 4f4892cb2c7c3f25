//! How the harness reaches CUDA from a binary that need not link it. candle
//! links libcuda at load time (cudarc's `dynamic-linking`, fixed by candle),
//! so a binary built with `cuda` does not even start where the driver is
//! missing. CUDA cases therefore run in a CUDA worker — this binary when it
//! was built with `cuda`, else `capbench-cuda` beside it (built by
//! scripts/build-cuda.sh) — and the harness probes the driver with `dlopen`
//! before starting one.

pub mod cuda_driver;

use std::path::{Path, PathBuf};
use std::process::Command;

use capbench_workloads::backend::{Backend, BackendStatus, candle};

/// The CUDA worker's file name beside `capbench`.
pub const CUDA_WORKER_NAME: &str = "capbench-cuda";
/// Overrides where the CUDA worker is (a path to the executable).
pub const CUDA_WORKER_ENV: &str = "CAPBENCH_CUDA_WORKER";

/// The executable that runs CUDA cases.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CudaWorker {
    /// This binary was built with the `cuda` feature.
    ThisBinary,
    /// A separate executable built with `cuda` (and linked to libcuda).
    Separate(PathBuf),
}

impl CudaWorker {
    /// The executable to spawn for a CUDA case.
    pub fn exe(&self, this: &Path) -> PathBuf {
        match self {
            CudaWorker::ThisBinary => this.to_path_buf(),
            CudaWorker::Separate(p) => p.clone(),
        }
    }
}

/// This binary if it has CUDA; else `$CAPBENCH_CUDA_WORKER`; else
/// `capbench-cuda` in this binary's folder; else none.
pub fn cuda_worker() -> Option<CudaWorker> {
    if (Backend::Cuda { ordinal: 0 }).compiled_in() {
        return Some(CudaWorker::ThisBinary);
    }
    if let Some(p) = std::env::var_os(CUDA_WORKER_ENV).filter(|p| !p.is_empty()) {
        return Some(CudaWorker::Separate(PathBuf::from(p)));
    }
    let sibling = std::env::current_exe().ok()?.with_file_name(format!(
        "{CUDA_WORKER_NAME}{}",
        std::env::consts::EXE_SUFFIX
    ));
    sibling.is_file().then_some(CudaWorker::Separate(sibling))
}

/// Why CUDA cases cannot start here, or `Ok` with the worker to start:
/// a CUDA worker must exist and the driver must load and see a GPU.
pub fn cuda_ready(ordinal: usize) -> Result<CudaWorker, CudaUnready> {
    let worker = cuda_worker().ok_or_else(|| {
        CudaUnready::NotCompiled(
            Backend::Cuda { ordinal }
                .ensure_compiled()
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default(),
        )
    })?;
    match cuda_driver::probe() {
        Ok(d) if ordinal >= d.devices as usize => Err(CudaUnready::Unavailable(format!(
            "CUDA driver {} sees {} GPU(s); cuda:{ordinal} does not exist",
            d.version_string(),
            d.devices
        ))),
        Ok(_) => Ok(worker),
        // Other systems: candle itself says whether a device opens.
        Err(cuda_driver::CudaDriverError::UnsupportedOs) if worker == CudaWorker::ThisBinary => {
            Ok(worker)
        }
        Err(e) => Err(CudaUnready::Unavailable(e.to_string())),
    }
}

/// Why CUDA cases cannot run here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CudaUnready {
    /// Neither this binary nor a CUDA worker beside it has CUDA.
    NotCompiled(String),
    /// CUDA is built, but this machine has no driver or no such GPU.
    Unavailable(String),
}

/// `capbench list backends`'s entry for cuda, asked of whichever binary
/// runs CUDA cases (after the driver probe, so nothing fails to load).
pub fn cuda_status() -> BackendStatus {
    let unusable = |compiled_in: bool, note: String| BackendStatus {
        backend: "cuda".into(),
        compiled_in,
        usable: false,
        note,
        devices: vec![],
    };
    match cuda_ready(0) {
        Err(CudaUnready::NotCompiled(note)) => unusable(false, note),
        Err(CudaUnready::Unavailable(note)) => unusable(true, note),
        Ok(CudaWorker::ThisBinary) => candle::probe(Backend::Cuda { ordinal: 0 }),
        Ok(CudaWorker::Separate(exe)) => match separate_worker_status(&exe) {
            Ok(s) => s,
            Err(e) => unusable(true, e),
        },
    }
}

/// Runs `<worker> list backends --json` and takes its cuda entry.
fn separate_worker_status(exe: &Path) -> Result<BackendStatus, String> {
    let out = Command::new(exe)
        .args(["list", "backends", "--json"])
        .output()
        .map_err(|e| format!("CUDA worker {} could not start: {e}", exe.display()))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(format!(
            "CUDA worker {} failed ({}): {}",
            exe.display(),
            out.status,
            err.lines().next().unwrap_or("")
        ));
    }
    let all: Vec<BackendStatus> = serde_json::from_slice(&out.stdout)
        .map_err(|e| format!("CUDA worker {} printed no backend list: {e}", exe.display()))?;
    let mut s = all
        .into_iter()
        .find(|b| b.backend == "cuda")
        .ok_or_else(|| format!("CUDA worker {} lists no cuda backend", exe.display()))?;
    if !s.compiled_in {
        return Err(format!(
            "{} is not a CUDA worker ({}); rebuild it with scripts/build-cuda.sh",
            exe.display(),
            s.note
        ));
    }
    let via = format!("via {}", exe.display());
    s.note = if s.note.is_empty() {
        via
    } else {
        format!("{} ({via})", s.note)
    };
    Ok(s)
}

/// Every backend family as `capbench list backends` shows it, with cuda
/// asked of the CUDA worker (see `cuda_status`).
pub fn probe_all() -> Vec<BackendStatus> {
    vec![
        candle::probe(Backend::Cpu),
        cuda_status(),
        candle::probe(Backend::Metal { ordinal: 0 }),
        capbench_workloads::backend::wgpu::probe(),
        capbench_workloads::backend::llamacpp::probe(),
    ]
}
