//! How the harness reaches CUDA from a binary that need not link it. candle
//! links libcuda at load time (cudarc's `dynamic-linking`, fixed by candle),
//! and so does llama.cpp's CUDA backend (its memory pool calls the driver
//! API), so a binary built with `cuda` or `llamacpp-cuda` does not even
//! start where the driver is missing. Their cases (`cuda`, `llamacpp:cuda`)
//! therefore run in a CUDA worker — this binary when it was built with the
//! backend, else `capbench-cuda` beside it (built by scripts/build-cuda.sh)
//! — and the harness probes the driver with `dlopen` before starting one.

pub mod cuda_driver;

use std::path::{Path, PathBuf};
use std::process::Command;

use capbench_workloads::backend::{Backend, BackendStatus, LlamaOffload, candle};

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
    worker_for(&Backend::Cuda { ordinal: 0 })
}

/// This binary if `backend` is compiled into it; else the CUDA worker, if
/// there is one (whether it has `backend` is its own answer) and it is not
/// this binary: `capbench-cuda` lacking a backend would otherwise find
/// itself beside itself and ask itself, without end.
fn worker_for(backend: &Backend) -> Option<CudaWorker> {
    if backend.compiled_in() {
        return Some(CudaWorker::ThisBinary);
    }
    let this = std::env::current_exe().ok()?;
    let candidate = match std::env::var_os(CUDA_WORKER_ENV).filter(|p| !p.is_empty()) {
        Some(p) => PathBuf::from(p),
        None => {
            let sibling = this.with_file_name(format!(
                "{CUDA_WORKER_NAME}{}",
                std::env::consts::EXE_SUFFIX
            ));
            if !sibling.is_file() {
                return None;
            }
            sibling
        }
    };
    (!same_file(&candidate, &this)).then_some(CudaWorker::Separate(candidate))
}

/// Whether two paths name one file (links and `..` resolved).
fn same_file(a: &Path, b: &Path) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// Why CUDA cases cannot start here, or `Ok` with the worker to start:
/// a CUDA worker must exist and the driver must load and see a GPU.
pub fn cuda_ready(ordinal: usize) -> Result<CudaWorker, CudaUnready> {
    ready(&Backend::Cuda { ordinal }, ordinal)
}

/// The same for `llamacpp:cuda` (llama.cpp's first CUDA device).
pub fn llamacpp_cuda_ready() -> Result<CudaWorker, CudaUnready> {
    ready(&Backend::LlamaCpp(LlamaOffload::Cuda), 0)
}

fn ready(backend: &Backend, ordinal: usize) -> Result<CudaWorker, CudaUnready> {
    let worker = worker_for(backend).ok_or_else(|| {
        CudaUnready::NotCompiled(
            backend
                .ensure_compiled()
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default(),
        )
    })?;
    match cuda_driver::probe() {
        Ok(d) if ordinal >= d.devices as usize => Err(CudaUnready::Unavailable(format!(
            "CUDA driver {} sees {} GPU(s); {} does not exist",
            d.version_string(),
            d.devices,
            match backend {
                Backend::Cuda { .. } => format!("cuda:{ordinal}"),
                other => format!("GPU {ordinal} for {other}"),
            }
        ))),
        Ok(_) => Ok(worker),
        // Other systems: the engine itself says whether a device opens.
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
    let all = worker_backends(exe)?;
    let mut s = all
        .into_iter()
        .find(|b| b.backend == "cuda")
        .ok_or_else(|| format!("CUDA worker {} lists no cuda backend", exe.display()))?;
    if !s.compiled_in {
        return Err(format!(
            "{} has no candle CUDA backend ({}); rebuild it with scripts/build-cuda.sh \
             (built with --llamacpp-only, it runs llamacpp:cuda only)",
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
        llamacpp_status(),
    ]
}

/// `capbench list backends`'s llamacpp entry: this binary's, plus
/// `llamacpp:cuda` as the CUDA worker has it when this binary lacks it.
fn llamacpp_status() -> BackendStatus {
    let mut s = capbench_workloads::backend::llamacpp::probe();
    let offload = Backend::LlamaCpp(LlamaOffload::Cuda);
    if offload.compiled_in() {
        return s;
    }
    let mut say = |note: String| {
        s.note = if s.note.is_empty() {
            note
        } else {
            format!("{}; {note}", s.note)
        };
    };
    match llamacpp_cuda_ready() {
        // No CUDA worker: the entry's own hint stands.
        Err(CudaUnready::NotCompiled(_)) => {}
        Err(CudaUnready::Unavailable(m)) => say(format!("{offload}: {m}")),
        Ok(CudaWorker::ThisBinary) => {}
        Ok(CudaWorker::Separate(exe)) => match worker_llamacpp_cuda(&exe) {
            Ok(dev) => s.devices.push(dev),
            Err(m) => say(format!("{offload}: {m}")),
        },
    }
    s
}

/// The `llamacpp:cuda` device a separate CUDA worker lists, or why none.
pub fn worker_llamacpp_cuda(
    exe: &Path,
) -> Result<capbench_workloads::backend::DeviceRecord, String> {
    let offload = Backend::LlamaCpp(LlamaOffload::Cuda).to_string();
    let entry = worker_backends(exe)?
        .into_iter()
        .find(|b| b.backend == "llamacpp")
        .ok_or_else(|| format!("CUDA worker {} lists no llamacpp backend", exe.display()))?;
    let note = entry.note.clone();
    entry
        .devices
        .into_iter()
        .find(|d| d.backend == offload)
        .map(|mut d| {
            d.details.push(format!("via={}", exe.display()));
            d
        })
        .ok_or_else(|| {
            format!(
                "the CUDA worker {} has no {offload} device ({note}); build it with \
                 scripts/build-cuda.sh --llamacpp",
                exe.display()
            )
        })
}

/// `<worker> list backends --json`, parsed — asked once per worker and
/// process: `list backends` wants its cuda and its llamacpp:cuda entry, and
/// a run checks the backend and then records the environment, and each ask
/// starts the worker (which opens the driver, cuBLAS and llama.cpp).
fn worker_backends(exe: &Path) -> Result<Vec<BackendStatus>, String> {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    type Answers = HashMap<PathBuf, Result<Vec<BackendStatus>, String>>;
    static ASKED: OnceLock<Mutex<Answers>> = OnceLock::new();
    let asked = ASKED.get_or_init(Default::default);
    if let Some(a) = asked.lock().expect("lock").get(exe) {
        return a.clone();
    }
    let answer = ask_worker(exe);
    asked
        .lock()
        .expect("lock")
        .insert(exe.to_path_buf(), answer.clone());
    answer
}

fn ask_worker(exe: &Path) -> Result<Vec<BackendStatus>, String> {
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
    serde_json::from_slice(&out.stdout)
        .map_err(|e| format!("CUDA worker {} printed no backend list: {e}", exe.display()))
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    /// A stand-in worker whose `list backends --json` prints `json`.
    fn worker_printing(dir: &Path, json: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let exe = dir.join("capbench-cuda");
        let body = dir.join("backends.json");
        std::fs::write(&body, json).unwrap();
        std::fs::write(&exe, format!("#!/bin/sh\ncat '{}'\n", body.display())).unwrap();
        std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
        exe
    }

    fn device(backend: &str) -> serde_json::Value {
        serde_json::json!({
            "backend": backend, "name": "NVIDIA H100 80GB HBM3 (llama.cpp CUDA)",
            "api": "cuda", "device_type": "gpu", "driver": "llama.cpp",
            "driver_info": "", "index": 1, "details": []
        })
    }

    fn listing(devices: Vec<serde_json::Value>) -> String {
        serde_json::json!([
            {"backend": "cpu", "compiled_in": true, "usable": true, "note": "", "devices": []},
            {"backend": "llamacpp", "compiled_in": true, "usable": true,
             "note": "llama.cpp CPU: AVX2 = 1", "devices": devices}
        ])
        .to_string()
    }

    #[test]
    fn a_path_to_this_binary_is_the_same_file_and_another_is_not() {
        let this = std::env::current_exe().unwrap();
        let tmp = tempfile::tempdir().unwrap();
        let link = tmp.path().join("capbench-cuda");
        std::os::unix::fs::symlink(&this, &link).unwrap();
        assert!(same_file(&link, &this));
        std::fs::create_dir(tmp.path().join("x")).unwrap();
        let other = worker_printing(&tmp.path().join("x"), "[]");
        assert!(!same_file(&other, &this));
        assert!(!same_file(&tmp.path().join("missing"), &this));
    }

    #[test]
    fn the_workers_llamacpp_cuda_device_is_taken_with_where_it_came_from() {
        let tmp = tempfile::tempdir().unwrap();
        let exe = worker_printing(
            tmp.path(),
            &listing(vec![device("llamacpp"), device("llamacpp:cuda")]),
        );
        let d = worker_llamacpp_cuda(&exe).unwrap();
        assert_eq!(d.backend, "llamacpp:cuda");
        assert_eq!(d.index, Some(1));
        assert!(
            d.details.contains(&format!("via={}", exe.display())),
            "{:?}",
            d.details
        );
    }

    #[test]
    fn a_worker_is_asked_once_per_process() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let exe = worker_printing(tmp.path(), &listing(vec![device("llamacpp:cuda")]));
        // The same worker, counting its starts.
        let starts = tmp.path().join("starts");
        let body = std::fs::read_to_string(&exe).unwrap();
        let counted = body.replacen("cat ", &format!("echo >> '{}'\ncat ", starts.display()), 1);
        std::fs::write(&exe, counted).unwrap();
        std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
        worker_llamacpp_cuda(&exe).unwrap();
        worker_llamacpp_cuda(&exe).unwrap();
        assert!(separate_worker_status(&exe).is_err(), "it lists no cuda");
        assert_eq!(std::fs::read_to_string(&starts).unwrap().lines().count(), 1);
    }

    #[test]
    fn a_worker_without_llamacpp_cuda_is_named_with_the_fix() {
        let tmp = tempfile::tempdir().unwrap();
        let exe = worker_printing(tmp.path(), &listing(vec![device("llamacpp")]));
        let e = worker_llamacpp_cuda(&exe).unwrap_err();
        assert!(e.contains("has no llamacpp:cuda device"), "{e}");
        assert!(e.contains("llama.cpp CPU: AVX2 = 1"), "{e}");
        assert!(e.contains("scripts/build-cuda.sh --llamacpp"), "{e}");

        // Another worker (answers are kept per worker and process).
        let other = tempfile::tempdir().unwrap();
        let exe = worker_printing(other.path(), "not json");
        let e = worker_llamacpp_cuda(&exe).unwrap_err();
        assert!(e.contains("printed no backend list"), "{e}");
    }
}
