//! llama.cpp as an engine backend (`llamacpp`, `llamacpp:cuda|vulkan|metal`)
//! through the `llama-cpp-2` crate: the process-wide llama.cpp backend, how
//! a model file is opened on it, and its description for the result file.
//! The decode/prefill workload on it lives in `kinds/decode/llamacpp.rs`.

use std::path::Path;
use std::sync::OnceLock;

use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::model::params::LlamaModelParams;

use super::{Backend, BackendStatus, DeviceRecord};
use crate::device::LlamaOffload;
use crate::error::{Result, WorkloadError};

/// llama.cpp's backend may be initialised once per process; every case of
/// the process shares it.
static BACKEND: OnceLock<std::result::Result<LlamaBackend, String>> = OnceLock::new();

fn unavailable(offload: LlamaOffload, reason: String) -> WorkloadError {
    WorkloadError::Unsupported {
        workload: "llama.cpp".into(),
        backend: Backend::LlamaCpp(offload).to_string(),
        reason,
    }
}

/// The process's llama.cpp backend, its log silenced: llama.cpp writes
/// hundreds of lines per model to stderr, which would bury the worker's own
/// messages; errors still reach the case through the API's results.
pub fn backend(offload: LlamaOffload) -> Result<&'static LlamaBackend> {
    Backend::LlamaCpp(offload).ensure_compiled()?;
    let b = BACKEND.get_or_init(|| {
        llama_cpp_2::send_logs_to_tracing(
            llama_cpp_2::LogOptions::default().with_logs_enabled(false),
        );
        LlamaBackend::init().map_err(|e| e.to_string())
    });
    b.as_ref()
        .map_err(|e| unavailable(offload, format!("llama.cpp did not initialise: {e}")))
}

/// `Ok` when cases on `offload` can run here (llama.cpp initialises; a GPU
/// offload has a device of that GPU backend).
pub fn check_usable(offload: LlamaOffload) -> Result<()> {
    backend(offload)?;
    if offload != LlamaOffload::Cpu && offload_device(offload).is_none() {
        return Err(no_gpu(offload));
    }
    Ok(())
}

/// The ggml backend names of each GPU offload, as ggml registers them.
fn ggml_backend_names(offload: LlamaOffload) -> &'static [&'static str] {
    match offload {
        LlamaOffload::Cpu => &[],
        LlamaOffload::Cuda => &["cuda"],
        LlamaOffload::Vulkan => &["vulkan"],
        LlamaOffload::Metal => &["mtl", "metal"],
    }
}

/// The first device of `offload`'s own ggml backend. A build with two GPU
/// backends (CUDA and Vulkan both see an NVIDIA card) must run
/// `llamacpp:cuda` on the CUDA device, never on whichever comes first.
fn offload_device(offload: LlamaOffload) -> Option<llama_cpp_2::LlamaBackendDevice> {
    let names = ggml_backend_names(offload);
    llama_cpp_2::list_llama_ggml_backend_devices()
        .into_iter()
        .find(|d| names.contains(&d.backend.to_lowercase().as_str()))
}

fn no_gpu(offload: LlamaOffload) -> WorkloadError {
    let mut why =
        "this llama.cpp build has no GPU device here (no driver, or built without the GPU backend)"
            .to_string();
    if offload == LlamaOffload::Vulkan {
        // ggml-vulkan skips CPU-type devices unless they are named.
        why.push_str(
            "; a software Vulkan device (Mesa's lavapipe) is used only when named: \
             GGML_VK_VISIBLE_DEVICES=0 (its index in `vulkaninfo --summary`)",
        );
    }
    unavailable(offload, why)
}

/// Mesa's lavapipe, SwiftShader: Vulkan devices that run on the host CPU,
/// which ggml reports as GPUs.
fn software_vulkan(description: &str) -> bool {
    let d = description.to_lowercase();
    ["llvmpipe", "lavapipe", "swiftshader"]
        .iter()
        .any(|s| d.contains(s))
}

/// Opens a GGUF file on `offload`: every layer on the GPU for the GPU
/// offloads, none for `llamacpp` (the host CPU).
pub fn open_model(offload: LlamaOffload, path: &Path) -> Result<LlamaModel> {
    check_usable(offload)?;
    let b = backend(offload)?;
    let select = |params: LlamaModelParams, devices: &[usize], what: &str| {
        params
            .with_devices(devices)
            .map_err(|e| WorkloadError::LlamaCpp {
                op: "select the device",
                message: format!("{what}: {e}"),
            })
    };
    let params = match offload_device(offload) {
        // An empty device list is llama.cpp's `--device none`: no GPU at
        // all, so a build with a GPU backend cannot quietly move the
        // prompt's large matmuls of a `llamacpp` (host CPU) case onto a GPU
        // (llama.cpp's op offload does that for weights left on the host).
        None => select(
            LlamaModelParams::default().with_n_gpu_layers(0),
            &[],
            "host CPU",
        )?,
        // Every layer, on that one device only.
        Some(d) => select(
            LlamaModelParams::default().with_n_gpu_layers(u32::MAX),
            &[d.index],
            &format!("{} ({})", d.name, d.description),
        )?,
    };
    LlamaModel::load_from_file(b, path, &params).map_err(|e| WorkloadError::LlamaCpp {
        op: "load the model",
        message: format!("{}: {e}", path.display()),
    })
}

/// The SIMD and library features llama.cpp was compiled with
/// (`llama_print_system_info`), e.g. `CPU : SSE3 = 1 | AVX2 = 1 | …`.
pub fn system_info() -> String {
    // SAFETY: returns a pointer to a static, NUL-terminated buffer that
    // llama.cpp owns; it is copied before any other llama.cpp call.
    unsafe {
        let p = llama_cpp_sys_2::llama_print_system_info();
        if p.is_null() {
            return String::new();
        }
        std::ffi::CStr::from_ptr(p)
            .to_string_lossy()
            .trim()
            .to_string()
    }
}

/// Whether llama.cpp's CPU kernels were compiled with AVX2 on a host that
/// has it: a build without it would run several times slower than a
/// user's own llama.cpp, and the record must say so.
fn simd_note(info: &str) -> Option<String> {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && !info.contains("AVX2 = 1") {
        return Some(
            "llama.cpp was compiled without AVX2 on a host that has it (build with the repository's .cargo/config.toml, which passes -march=native): its figures understate llama.cpp".into(),
        );
    }
    let _ = info;
    None
}

/// The device a llamacpp case ran on, with llama.cpp's compile features.
pub fn record(offload: LlamaOffload, threads: usize) -> DeviceRecord {
    let info = system_info();
    let mut details = vec![
        format!("threads={threads}"),
        format!("offload={}", offload.as_str()),
        format!("system_info={info}"),
    ];
    details.extend(simd_note(&info).map(|n| format!("warning={n}")));
    let gpu = offload_device(offload);
    let software = gpu
        .as_ref()
        .is_some_and(|d| software_vulkan(&d.description));
    if software {
        details.push(
            "software_device=a Vulkan device that runs on the host CPU: a correctness target, \
             not a GPU figure"
                .into(),
        );
    }
    DeviceRecord {
        backend: Backend::LlamaCpp(offload).to_string(),
        name: match &gpu {
            Some(d) => format!("{} (llama.cpp {})", d.description, d.backend),
            None => "host CPU (llama.cpp ggml-cpu)".into(),
        },
        api: match offload {
            LlamaOffload::Cpu => "host".into(),
            other => other.as_str().into(),
        },
        device_type: if gpu.is_some() && !software {
            "gpu"
        } else {
            "cpu"
        }
        .into(),
        driver: "llama.cpp (llama-cpp-2 0.1.160)".into(),
        driver_info: info,
        index: gpu.map(|d| d.index),
        details,
    }
}

/// `capbench list backends`: compiled in, initialises, and (for the GPU
/// offloads) has a GPU device.
pub fn probe() -> BackendStatus {
    let b = Backend::LlamaCpp(LlamaOffload::Cpu);
    let status = |usable: bool, note: String| BackendStatus {
        backend: b.family().into(),
        compiled_in: true,
        usable,
        note,
        devices: vec![],
    };
    match backend(LlamaOffload::Cpu) {
        Err(e) => status(false, e.to_string()),
        Ok(_) => {
            let info = system_info();
            let mut note = format!("llama.cpp CPU: {info}");
            if let Some(w) = simd_note(&info) {
                note = format!("{note}; {w}");
            }
            let mut s = status(true, note);
            s.devices.push(record(LlamaOffload::Cpu, 0));
            // Each GPU offload built in: its device (a row the parent reads
            // from a CUDA worker, too), or why it has none here.
            for offload in [
                LlamaOffload::Cuda,
                LlamaOffload::Vulkan,
                LlamaOffload::Metal,
            ] {
                if !Backend::LlamaCpp(offload).compiled_in() {
                    continue;
                }
                match check_usable(offload) {
                    Ok(()) => s.devices.push(record(offload, 0)),
                    Err(e) => s.note.push_str(&format!("; {e}")),
                }
            }
            s
        }
    }
}
